#!/usr/bin/env bash
# Layer pipeline throughput, measured in the same run on the same input: sha256 (ours vs
# coreutils sha256sum), gzip level 6 (ours vs `pigz -6`) and zstd level 3 (ours), each of ours
# through the whole layer pipeline (diff-id hash, compression, digest) once on one core
# (`taskset -c 0`) and once on every core, so the parallel efficiency is a ratio taken here and
# now: MB/s on N cores / (MB/s on one core × N); the goal is >= 0.9. Every figure is the median
# of RUNS runs (one-core and all-core runs alternate). Other processes share the CPU: on a busy
# machine the all-core figures drop, so the all-core runs also report the cores they got (CPU
# seconds / wall seconds) and the CPU seconds they spent against the one-core run's (1.00x: the
# parallel encoders do no extra work; what they lose on wall time, others took).
# usage: bench/layer-throughput.sh [SIZE_MB] [RUNS]   (default 1024 MB: a 1 GiB tar of /usr; 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${2:-3}
cores=$(nproc)
command -v pigz >/dev/null || apt-get install -y -qq pigz >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{ tar cf - /usr 2>/dev/null || true; } | head -c "$((size_mb * 1024 * 1024))" > "$work/layer.tar" || true
mb=$(echo "$(stat -c %s "$work/layer.tar") / 1000000" | bc -l)
cargo build --release --quiet -p stagecraft-layer --example throughput
example=target/release/examples/throughput
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
# One line per run and operation: "name mode wall-seconds cpu-seconds".
for _ in $(seq "$runs"); do
    taskset -c 0 "$example" "$work/layer.tar" | awk '{print $1, "one", $2, $4}'
    "$example" "$work/layer.tar" gzip zstd | awk '{print $1, "all", $2, $4}'
    echo "sha256sum one $(t taskset -c 0 sha256sum "$work/layer.tar") -"
    echo "pigz one $(t taskset -c 0 sh -c "pigz -6 -p 1 -c '$work/layer.tar' > '$work/out.gz'") -"
    echo "pigz all $(t sh -c "pigz -6 -p $cores -c '$work/layer.tar' > '$work/out.gz'") -"
done > "$work/times"
median() {  # NAME MODE [COLUMN]: the median of a column (3: wall, 4: cpu) over the runs
    awk -v n="$1" -v m="$2" -v c="${3:-3}" '$1==n && $2==m && $c!="-" {print $c}' "$work/times" | sort -g |
        awk '{v[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
rate() { echo "$mb / $1" | bc -l; }
ratio() { echo "$1 / $2" | bc -l; }
printf '%s MB, %d cores, median of %d runs, load average %s\n' "$(printf '%.0f' "$mb")" "$cores" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-12s %9s %7s %9s %7s %11s %11s %11s\n' "operation" "1-core s" "MB/s" "${cores}-core s" "MB/s" "efficiency" "cores got" "cpu vs 1"
for name in sha256 gzip zstd sha256sum pigz; do
    one=$(median "$name" one)
    all=$(median "$name" all)
    if [ -z "$all" ]; then
        printf '%-12s %9.2f %7.0f\n' "$name" "$one" "$(rate "$one")"
        continue
    fi
    eff=$(echo "$(rate "$all") / ($(rate "$one") * $cores)" | bc -l)
    printf '%-12s %9.2f %7.0f %9.2f %7.0f %10.2fx' "$name" "$one" "$(rate "$one")" "$all" "$(rate "$all")" "$eff"
    cpu_all=$(median "$name" all 4)
    if [ -n "$cpu_all" ]; then
        printf ' %11.2f %10.2fx' "$(ratio "$cpu_all" "$all")" "$(ratio "$cpu_all" "$(median "$name" one 4)")"
    fi
    echo
done
echo
printf 'hashing vs sha256sum (1 core): %.2fx faster (goal >= 0.9x)\n' "$(ratio "$(median sha256sum one)" "$(median sha256 one)")"
printf 'gzip vs pigz -p %d:             %.2fx (goal >= 1.0x)\n' "$cores" "$(ratio "$(median pigz all)" "$(median gzip all)")"
for name in gzip zstd; do
    printf '%s efficiency on %d cores:    %.2fx (goal >= 0.9x)\n' "$name" "$cores" "$(echo "$(rate "$(median "$name" all)") / ($(rate "$(median "$name" one)") * $cores)" | bc -l)"
done
printf 'zstd vs our gzip:              %.2fx faster\n' "$(ratio "$(median gzip all)" "$(median zstd all)")"
