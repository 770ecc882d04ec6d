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
failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) failed;.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
ignored=$(sed -n 's/^test result: .* \([0-9][0-9]*\) ignored;.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "error: no test was executed" >&2
  exit 1
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # cargo itself failed (a build error, a test binary that crashed): count it.
  failed=1
fi
# The last cargo summary belongs to a crate's (empty) doc-tests; close with
# the totals over every test binary, on a line of its own.
echo "workspace: $passed passed, $failed failed, $ignored skipped"
exit "$rc"
