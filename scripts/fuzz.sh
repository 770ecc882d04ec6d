#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each (issue #15).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 30 s, all targets)
# Env: FUZZ_SECONDS (same as the first argument), FUZZ_JOBS (parallel jobs per target, default 1).
# Not part of .ci/run; skips with a reason (exit 0) when nightly or cargo-fuzz is missing.
# A crash stops the run (exit 1); the reproducer is under fuzz/artifacts/<target>/ —
# turn it into a regression test in the owning crate.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-${FUZZ_SECONDS:-30}}"
shift || true
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "SKIP fuzz: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "SKIP fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi
cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    # Fuzz a scratch copy so the checked-in seed corpus stays small.
    work="$(mktemp -d)"
    cp -r "corpus/$t/." "$work/"
    echo "== $t: ${secs}s"
    log="$work.log"
    if ! cargo +nightly fuzz run -O "$t" "$work" -- -max_total_time="$secs" \
        -jobs="${FUZZ_JOBS:-1}" -workers="${FUZZ_JOBS:-1}" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "FAIL fuzz $t: see fuzz/artifacts/$t/"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    rate="$(grep -o 'exec/s: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')"
    cov="$(grep -o 'cov: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')"
    echo "ok $t: ${runs:-?} runs, ${rate:-?} exec/s, cov ${cov:-?}, 0 crashes"
    rm -rf "$work" "$log"
done
