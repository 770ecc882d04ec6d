#!/usr/bin/env bash
# README's demo command: installs what is missing, builds the release
# binaries, and runs the end-to-end demo in throwaway network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (it creates network namespaces, veths, nft rules and qdiscs)" >&2
  exit 1
fi
scripts/setup.sh
scripts/build.sh
exec target/release/cni-conformance demo --plugins target/release
