#!/usr/bin/env bash
# Fuzzes the parsers: `scripts/fuzz.sh SECONDS [TARGET...]` runs each target (default: all) for
# SECONDS and prints the executions and corpus size. Targets live in fuzz/fuzz_targets.
# Uses the nightly toolchain with AddressSanitizer when present, stable without sanitizer otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(parser expand dockerignore layer_apply image_json)
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    sanitizer=()
else
    fuzz=(cargo fuzz)
    sanitizer=(-s none)
fi
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log=$(mktemp)
    "${fuzz[@]}" run "${sanitizer[@]}" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>"$log" || { tail -40 "$log"; exit 1; }
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    echo "$target: ${seconds}s, $execs executions, corpus $corpus files, no crash"
    rm -f "$log"
done
