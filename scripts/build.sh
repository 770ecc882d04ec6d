#!/usr/bin/env bash
# Builds what we ship into target/release: the five plugins and cni-install
# (the DaemonSet's installer, which runs in an image with no libc) as static,
# non-PIE executables, and cni-conformance (with its cni-test-veth fixture).
#
# A plugin is a fresh process per verb, so start-up is part of every ADD:
# a static non-PIE binary has no dynamic loader, no shared-library lookups
# and no relocations to apply, about 0.3-0.5 ms less per invocation here.
# The flags go to the final link of each plugin binary only (`cargo rustc`):
# in RUSTFLAGS or .cargo/config.toml they would also reach build scripts and
# proc-macros, which cannot be static. Needs glibc's static archive (libc.a,
# from libc6-dev, which a Rust toolchain on Debian needs anyway).
#
# Do not follow this with `cargo build --release --workspace`: cargo would
# relink the plugins dynamically (different flags, same output path).
#
# `--shipped` builds only what the image ships (plugins and cni-install).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--shipped" ]; then
  cargo build --release --quiet -p conformance --bins
fi
for p in portmap bandwidth tuning loopback noop; do
  cargo rustc --release --quiet -p "$p" --bin "$p" -- \
    -C target-feature=+crt-static -C relocation-model=static
done
cargo rustc --release --quiet -p installer --bin cni-install -- \
  -C target-feature=+crt-static -C relocation-model=static
# The test-only fault hook (cni/src/failpoint.rs, feature cni/failpoints,
# enabled by dev-dependencies only) must not be in what we ship.
for b in portmap bandwidth tuning loopback noop cni-install; do
  if grep -q CNI_CRASHPOINT "${CARGO_TARGET_DIR:-target}/release/$b"; then
    echo "build.sh: $b contains the test-only fault hook (cni/failpoints)" >&2
    exit 1
  fi
done
