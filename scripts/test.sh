#!/usr/bin/env bash
# README's test command: installs what is missing, builds every binary, then
# runs every test — unit, snapshot, privileged netns/kernel tests and the
# scenario suite. The plugin crates' own tests run their debug binaries; the
# scenario suite runs the release binaries as shipped (scripts/build.sh:
# static, non-PIE), so both builds are exercised.
# The output ends with cargo's own summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --all-targets --quiet
scripts/build.sh
export CNI_CONFORMANCE_PLUGINS="${CARGO_TARGET_DIR:-$PWD/target}/release"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(sed -n 's/^test result: [a-zA-Z]*\. \([0-9][0-9]*\) passed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "error: no test was executed" >&2
  exit 1
fi
exit "$rc"
