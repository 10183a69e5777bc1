#!/usr/bin/env bash
# Builds the same workloads with stagecraft and with BuildKit (Debian's dockerd 20.10), alternating
# tools, and prints medians and the ratio stagecraft / BuildKit measured in this run.
#   W2 fully cached rebuild of a 3-stage build   W3 one source file changed
#   W4 50 x RUN true (cold, per-step overhead)    W6 two independent stages that sleep 2 s each
# usage: bench/run.sh [REPEATS]   (default 5). Needs root. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
shared=${STAGECRAFT_SHARED_DIR:-$PWD/../shared}
bash scripts/setup.sh
cargo build --release --quiet -p stagecraft
bin=$PWD/target/release/stagecraft
work=$(mktemp -d)
port=5490
cleanup() {
    kill "$(cat "$work/dd/dockerd.pid" 2>/dev/null)" "$(cat "$work/reg/registry.pid" 2>/dev/null)" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$shared/fixtures/make-busybox-image" "$work/bb" >/dev/null
"$shared/fixtures/start-registry" "$port" "$work/reg" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/bb:latest" "docker://127.0.0.1:$port/busybox:latest"
export DOCKER_HOST=$("$shared/fixtures/start-dockerd" "$work/dd" "127.0.0.1:$port")
export STAGECRAFT_ROOT=$work/store
base=127.0.0.1:$port/busybox:latest

# --- workloads ---------------------------------------------------------------------------------
mkdir -p "$work/w2/src"
for i in $(seq 1 200); do echo "file $i" > "$work/w2/src/f$i.txt"; done
cat > "$work/w2/Dockerfile" <<DF
FROM $base AS deps
WORKDIR /app
COPY src/f1.txt ./lock
RUN cat lock > /deps
FROM deps AS build
COPY src/ ./src/
RUN cat src/*.txt | wc -l > /count
FROM $base
COPY --from=build /count /count
COPY --from=deps /deps /deps
CMD ["cat", "/count"]
DF
mkdir -p "$work/w4"
{ echo "FROM $base"; for i in $(seq 1 50); do echo "RUN true # $i"; done; } > "$work/w4/Dockerfile"
mkdir -p "$work/w6"
cat > "$work/w6/Dockerfile" <<DF
FROM $base AS a
RUN sleep 2 && echo a > /a
FROM $base AS b
RUN sleep 2 && echo b > /b
FROM $base
COPY --from=a /a /a
COPY --from=b /b /b
DF

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR+1)/2; if (NR%2) print a[m]; else print (a[m-0.5]+a[m+0.5])/2}'; }
time_cmd() {
    local s e out
    s=$(now)
    if ! out=$("$@" 2>&1); then echo "bench: $* failed:" >&2; echo "$out" | tail -20 >&2; exit 1; fi
    e=$(now)
    echo "$e - $s" | bc -l
}
bk() { DOCKER_BUILDKIT=1 /usr/bin/docker build --network=host -q "$@"; }
sc() { "$bin" build --progress=quiet "$@"; }

declare -A result
run() {  # name, prepare-function, stagecraft args, buildkit args
    local name=$1 prepare=$2 sc_args=$3 bk_args=$4 i
    local sc_times=() bk_times=()
    for i in $(seq 1 "$repeats"); do
        $prepare
        t=$(time_cmd bk $bk_args) || exit 1
        bk_times+=("$t")
        $prepare
        t=$(time_cmd sc $sc_args) || exit 1
        sc_times+=("$t")
    done
    result[$name.sc]=$(printf '%s\n' "${sc_times[@]}" | median)
    result[$name.bk]=$(printf '%s\n' "${bk_times[@]}" | median)
}
noop() { :; }
touch_one() { echo "changed $RANDOM$RANDOM" > "$work/w2/src/f100.txt"; }

# Warm both caches once.
bk "$work/w2" >/dev/null; sc "$work/w2" >/dev/null
run W2 noop "$work/w2" "$work/w2"
run W3 touch_one "$work/w2" "$work/w2"
run W4 noop "--no-cache $work/w4" "--no-cache $work/w4"
run W6 noop "--no-cache $work/w6" "--no-cache $work/w6"

printf '\n%-34s %12s %12s %10s %s\n' workload stagecraft BuildKit ratio goal
for w in "W2 fully cached rebuild:0.5" "W3 one source file changed:0.7" "W4 50 x RUN true (no cache):0.5" "W6 2 x sleep 2 in parallel:"; do
    key=${w%% *}; label=${w%%:*}; goal=${w##*:}
    s=${result[$key.sc]}; b=${result[$key.bk]}
    printf '%-34s %11.3fs %11.3fs %9.2fx %s\n' "$label" "$s" "$b" "$(echo "$s / $b" | bc -l)" "${goal:+<= ${goal}x}"
done
printf '\nW6 against the longest stage (2 s): %.2fx (goal <= 1.15x)\n' "$(echo "${result[W6.sc]} / 2" | bc -l)"
