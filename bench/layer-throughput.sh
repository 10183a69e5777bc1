#!/usr/bin/env bash
# Layer pipeline throughput, measured in the same run on the same inputs: sha256 (ours vs
# coreutils sha256sum), gzip level 6 (ours vs `pigz -6`) and zstd level 3 (ours), each of ours
# through the whole layer pipeline (diff-id hash, compression, digest) once on one core
# (`taskset -c 0`) and once on every core, so the parallel efficiency is a ratio taken here and
# now: MB/s on N cores / (MB/s on one core × N); the goal is >= 0.9. Two inputs of the same size:
# a compressible one (a tar of /usr) and an incompressible one (bytes from /dev/urandom, written
# once: what a layer of media, archives or already compressed files is), because deflate's cost
# differs wildly between them and a gzip writer must not spend full deflate effort on bytes that
# do not shrink. Every figure is the median of RUNS runs (one-core and all-core runs alternate).
# Other processes share the CPU: on a busy machine the all-core figures drop, so the all-core runs
# also report the cores they got (CPU seconds / wall seconds) and the CPU seconds they spent
# against the one-core run's (1.00x: the parallel encoders do no extra work; what they lose on
# wall time, others took), and every figure also as MB per CPU second of the one-core run, which
# other processes disturb far less than wall time.
# BASELINE=PATH adds the same measurements of another build of the throughput example (e.g. one
# built from main, copied away) as gzip-before/zstd-before, and prints after/before ratios.
# usage: bench/layer-throughput.sh [SIZE_MB] [RUNS]   (default 1024 MB per input; 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
runs=${2:-3}
cores=$(nproc)
command -v pigz >/dev/null || apt-get install -y -qq pigz >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bytes=$((size_mb * 1024 * 1024))
{ tar cf - /usr 2>/dev/null || true; } | head -c "$bytes" > "$work/compressible" || true
head -c "$(stat -c %s "$work/compressible")" /dev/urandom > "$work/incompressible"
mb=$(echo "$(stat -c %s "$work/compressible") / 1000000" | bc -l)
cargo build --release --quiet -p stagecraft-layer --example throughput
example=target/release/examples/throughput
# "wall-seconds cpu-seconds" of a command (CPU: user + system, children included).
t() { local TIMEFORMAT='%R %U %S'; { time "$@" >/dev/null; } 2>&1 | awk '{print $1, $2 + $3}'; }
# One line per run, input and operation: "name kind mode wall-seconds cpu-seconds output-bytes".
for _ in $(seq "$runs"); do
    for kind in compressible incompressible; do
        in=$work/$kind
        ops=(gzip zstd)
        [ "$kind" = compressible ] && ops=(sha256 gzip zstd)
        taskset -c 0 "$example" "$in" "${ops[@]}" | awk -v k="$kind" '{print $1, k, "one", $2, $4, $3}'
        "$example" "$in" gzip zstd | awk -v k="$kind" '{print $1, k, "all", $2, $4, $3}'
        if [ -n "${BASELINE:-}" ]; then
            taskset -c 0 "$BASELINE" "$in" gzip zstd | awk -v k="$kind" '{print $1 "-before", k, "one", $2, $4, $3}'
            "$BASELINE" "$in" gzip zstd | awk -v k="$kind" '{print $1 "-before", k, "all", $2, $4, $3}'
        fi
        [ "$kind" = compressible ] && echo "sha256sum $kind one $(t taskset -c 0 sha256sum "$in") -"
        echo "pigz $kind one $(t taskset -c 0 sh -c "pigz -6 -p 1 -c '$in' > '$work/out.gz'") $(stat -c %s "$work/out.gz")"
        echo "pigz $kind all $(t sh -c "pigz -6 -p $cores -c '$in' > '$work/out.gz'") $(stat -c %s "$work/out.gz")"
    done
done > "$work/times"
median() {  # NAME KIND MODE [COLUMN]: the median of a column (4: wall, 5: cpu, 6: size) over the runs
    awk -v n="$1" -v k="$2" -v m="$3" -v c="${4:-4}" '$1==n && $2==k && $3==m && $c!="-" {print $c}' "$work/times" | sort -g |
        awk '{v[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
rate() { echo "$mb / $1" | bc -l; }
ratio() { echo "$1 / $2" | bc -l; }
printf '%s MB per input, %d cores, median of %d runs, load average %s\n' "$(printf '%.0f' "$mb")" "$cores" "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
for kind in compressible incompressible; do
    echo
    printf '%-14s %9s %7s %9s %7s %11s %11s %11s %9s %9s\n' "$kind" "1-core s" "MB/s" "${cores}-core s" "MB/s" "efficiency" "cores got" "cpu vs 1" "MB/cpu-s" "out/in"
    for name in sha256 gzip gzip-before zstd zstd-before sha256sum pigz; do
        one=$(median "$name" "$kind" one)
        [ -n "$one" ] || continue
        cpu_one=$(median "$name" "$kind" one 5)
        all=$(median "$name" "$kind" all)
        if [ -z "$all" ]; then
            printf '%-14s %9.2f %7.0f %9s %7s %11s %11s %11s %9.0f\n' "$name" "$one" "$(rate "$one")" - - - - - "$(rate "$cpu_one")"
            continue
        fi
        eff=$(echo "$(rate "$all") / ($(rate "$one") * $cores)" | bc -l)
        cpu_all=$(median "$name" "$kind" all 5)
        printf '%-14s %9.2f %7.0f %9.2f %7.0f %10.2fx %11.2f %10.2fx %9.0f %9.4f\n' "$name" "$one" "$(rate "$one")" "$all" "$(rate "$all")" "$eff" \
            "$(ratio "$cpu_all" "$all")" "$(ratio "$cpu_all" "$cpu_one")" "$(rate "$cpu_one")" \
            "$(echo "$(median "$name" "$kind" all 6) / ($mb * 1000000)" | bc -l)"
    done
done
echo
printf 'hashing vs sha256sum (1 core):  %.2fx faster (goal >= 0.9x)\n' "$(ratio "$(median sha256sum compressible one)" "$(median sha256 compressible one)")"
for kind in compressible incompressible; do
    printf '%-14s gzip vs pigz -p %d: %.2fx (goal >= 1.0x)\n' "$kind" "$cores" "$(ratio "$(median pigz "$kind" all)" "$(median gzip "$kind" all)")"
    for name in gzip zstd; do
        printf '%-14s %s efficiency on %d cores: %.2fx (goal >= 0.9x)\n' "$kind" "$name" "$cores" "$(echo "$(rate "$(median "$name" "$kind" all)") / ($(rate "$(median "$name" "$kind" one)") * $cores)" | bc -l)"
    done
    printf '%-14s zstd vs our gzip: %.2fx faster\n' "$kind" "$(ratio "$(median gzip "$kind" all)" "$(median zstd "$kind" all)")"
    [ -n "${BASELINE:-}" ] || continue
    for name in gzip zstd; do
        printf '%-14s %s after vs before: %.2fx on %d cores, %.2fx on 1 core (wall); %.2fx in MB per CPU second\n' "$kind" "$name" \
            "$(ratio "$(median "$name-before" "$kind" all)" "$(median "$name" "$kind" all)")" "$cores" \
            "$(ratio "$(median "$name-before" "$kind" one)" "$(median "$name" "$kind" one)")" \
            "$(ratio "$(median "$name-before" "$kind" one 5)" "$(median "$name" "$kind" one 5)")"
    done
done
