#!/usr/bin/env bash
# Installs the system packages the tests, the demo and the conformance suite
# need, only when something is missing. Needs root (apt-get) on Debian.
set -euo pipefail

need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/ptp ] \
  || need+=(containernetworking-plugins)
# The reference portmap (v1.1.1) programs iptables; the benchmark and the
# reference run of the suite use it.
command -v iptables >/dev/null 2>&1 || need+=(iptables)
# The containerd end-to-end test (e2e-containerd): the runtime itself (its
# package depends on runc; ctr comes with it), the static busybox its test
# image is built from, and protoc for the k8s-cri crate's build script.
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
# (static: the image holds no libc; Debian's plain busybox is dynamic)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' \
  || need+=(busybox-static)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${need[*]}; run as root (apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need[@]}" >&2
fi

# The image test builds deploy/Containerfile with buildah (no daemon; vfs
# storage and chroot isolation need none of its recommended packages).
if ! command -v buildah >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing buildah" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends buildah >&2
  else
    echo "setup: buildah missing (the image test will skip); run as root to install it" >&2
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
