#!/usr/bin/env bash
# Builds the same workloads with stagecraft, BuildKit (Debian's dockerd 20.10) and Buildah, rotating
# the tools' order in every repeat, and prints per-tool medians, the ratios stagecraft/BuildKit and
# stagecraft/Buildah measured in this run, and the project's goals.
#   W1 cold 6-stage build, 20,000-file ~300 MB context with a .dockerignore
#   W2 fully cached rebuild of W1        W3 one source file of W1 changed
#   W4 50 x RUN true, no cache            W5 1 GiB of big files COPY'd, output as a tar (all tools)
#   W6 two stages that sleep 2 s each     W7 examples/busybox-multistage, cold and cached
#   W8 cross-compiling Dockerfile for linux/amd64,linux/arm64 (stagecraft: one two-platform build
#      against two single-platform builds; BuildKit: dockerd 20.10's builder has no multi-platform
#      output, so its two single-platform builds are shown for scale)
#   W9 cold build of a 100,000-file context (~80 MB), all COPY'd, then one RUN reading it; beside
#      it, in the same rotation, `cp -a` of that context (the floor a COPY of it has here)
# W3 is also split into its two costly steps, `COPY src/ ./` and the RUN reading those files, as
# each tool reports them (stagecraft --progress=json, BuildKit --progress=plain; Buildah prints
# no step times). Export throughput: W5's image written as a gzip OCI archive (stagecraft
# `-o type=oci`, Buildah `push oci-archive:`; dockerd 20.10's BuildKit has no OCI output), MB/s
# of layer content, the two tools alternated.
# Also: stagecraft's context hashing against `sha256sum` (W5's files), its peak RSS on W5, and the
# sizes of W1's image from each tool.
#
# usage: bench/run.sh [REPEATS]   (default 3; W5 runs min(REPEATS, $W5_REPEATS=1) times)
#   Needs root. ~15 minutes with 3 repeats (W5_REPEATS=3) on 2 cores (more under heavy load). Exits non-zero if any build fails.
#   STAGECRAFT_BIN=PATH skips `cargo build`; BENCH_SCALE=0.1 shrinks file sizes for a quick trial.
# "Cold" means the tool starts from a new, empty state root (stagecraft: a new STAGECRAFT_ROOT;
# Buildah: a new --root/--runroot; BuildKit: dockerd restarted, untimed, on a new data-root), so
# every tool sends or hashes the full context and pulls the 1 MB base from the local registry
# inside the timing. Old state is not deleted until the run ends: on ext4 without a journal (this
# machine's root file system) the inode allocator skips inodes freed in the last 1-6 minutes
# (`recently_deleted`), which made every file a build created 5-10x slower right after the
# `rm -rf`/prune that used to make a tool cold — noise that fell on whichever tool ran next.
# Buildah itself removes its build containers, so each W9 build (100,000 files) gets a new file
# system of its own instead (see `w9_cold`).
# The run therefore needs free disk for every cold state it makes (checked at the start).
# Before every timed build, `sync` (untimed) writes back what the previous tool left dirty, so no
# tool pays for another's writeback in its fsyncs (ext4 data=ordered: an fsync waits for it).
# Before that, the context is read once (untimed, `warm_context`): every tool starts with it in
# the page cache, not only those that follow another tool's read of it.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
w5_repeats=$((repeats < ${W5_REPEATS:-1} ? repeats : ${W5_REPEATS:-1}))
scale=${BENCH_SCALE:-1}
w5_mib=$(awk -v s="$scale" 'BEGIN { printf "%d", 1024 * s }')
shared=${STAGECRAFT_SHARED_DIR:-$PWD/../shared}
repo=$PWD

bash scripts/setup.sh
command -v buildah >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
[ -x /usr/bin/time ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
[ -n "${STAGECRAFT_BIN:-}" ] || cargo build --release --quiet -p stagecraft

# shellcheck source=scripts/lib/daemons.sh
source scripts/lib/daemons.sh
# shellcheck source=scripts/lib/registry.sh
source scripts/lib/registry.sh
cleanup() {
    local code=$?
    set +e
    trap - EXIT INT TERM
    local state
    for state in "$work"/state/bh.*; do
        [ -d "$state" ] || continue
        buildah --root "$state/root" --runroot "$state/runroot" --storage-driver overlay rm -a >/dev/null 2>&1
        buildah --root "$state/root" --runroot "$state/runroot" --storage-driver overlay rmi -a -f >/dev/null 2>&1
    done
    [ -n "${dd:-}" ] && stop_dockerd "$dd"
    stop_pidfile "$work/reg/registry.pid"
    unmount_below "$work"
    rm -rf "$work"
    exit "$code"
}
work=$(mktemp -d /tmp/stagecraft-bench.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/tmp" "$work/out"
# a private copy: a concurrent `cargo build` must not swap the binary in the middle of the run
bin=$work/stagecraft
cp "${STAGECRAFT_BIN:-$repo/target/release/stagecraft}" "$bin"
export TMPDIR=$work/tmp   # Buildah and others write temporaries here, not in /tmp or /var/tmp

registry=$(start_busybox_registry "$shared" "$work")
free_gb=$(df -P --block-size=1G "$work" | awk 'NR == 2 { print $4 }')
need_gb=$(awk -v s="$scale" -v r="$repeats" 'BEGIN { printf "%d", (8 + 3 * r) * s + 4 }')
if ((free_gb < need_gb)); then
    echo "bench: $free_gb GB free below $work, the run keeps every cold state until it ends and needs ~$need_gb GB" >&2
    exit 1
fi
# Every tool's state lives in $work/state/TOOL.N; `cold TOOL` moves it to the next N.
state_seq=0
dd="" bh_store=()
cold() {  # TOOL: start the tool from a new, empty state root (the old one stays until the end)
    state_seq=$((state_seq + 1))
    local state=${w9_fs:-$work/state}/$1.$state_seq
    case $1 in
        sc) export STAGECRAFT_ROOT=$state ;;
        bk) [ -z "$dd" ] || stop_dockerd "$dd"
            dd=$state
            DOCKER_HOST=$("$shared/fixtures/start-dockerd" "$dd" "$registry")
            export DOCKER_HOST
            # the builder answers (untimed) before the first timed build
            /usr/bin/docker builder prune -af >/dev/null ;;
        bh) bh_store=(--root "$state/root" --runroot "$state/runroot" --storage-driver overlay) ;;
        cpa) ;;
    esac
    rm -rf "$work/out"/*
}
# W9 creates 100,000 files, and what that costs on this disk depends on what was deleted before
# it: ext4 without a journal (this machine's disk) passes over every inode deleted in the last
# 60 s (300 s while its inode table block is unwritten) on each allocation, so a build right
# after another tool's mass delete (Buildah removes its build containers) pays for that one.
# Each W9 build gets a file system of its own, new (a loop-mounted ext4 image, made as the disk
# is, without a journal) and removed after it: every tool meets the same untouched one.
w9_fs="" w9_fs_seq=0
release_w9_fs() {  # unmounts and removes the current W9 file system, if any
    [ -n "$w9_fs" ] || return 0
    if [[ -n $dd && $dd == "$w9_fs"/* ]]; then stop_dockerd "$dd"; dd=""; fi
    unmount_below "$w9_fs"
    umount "$w9_fs" || umount -l "$w9_fs"
    rm -f "$w9_fs.img"
    rmdir "$w9_fs"
    w9_fs=""
}
w9_cold() {  # TOOL: `cold TOOL`, its state on a new file system
    release_w9_fs
    w9_fs_seq=$((w9_fs_seq + 1))
    local fs=$work/w9fs.$w9_fs_seq
    truncate -s 4G "$fs.img"
    mkfs.ext4 -q -F -O ^has_journal -N 500000 "$fs.img"
    mkdir "$fs"
    mount -o loop "$fs.img" "$fs"
    w9_fs=$fs
    cold "$1"
}
for tool in sc bk bh; do cold "$tool"; done
base=$registry/busybox:latest
"$shared/fixtures/make-busybox-image" "$work/bbm" latest --platform linux/amd64,linux/arm64 >/dev/null
skopeo copy -q --all --dest-tls-verify=false "oci:$work/bbm:latest" "docker://$registry/busybox-multi:latest"
mbase=$registry/busybox-multi:latest
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- workloads (deterministic: bench/gen-context.py) -------------------------------------------
python3 bench/gen-context.py w1 "$work/w1" "$base" "$scale"
python3 bench/gen-context.py w5 "$work/w5" "$base" "$w5_mib"
w9_files=$(awk -v s="$scale" 'BEGIN { n = int(100000 * s); print (n < 1000 ? 1000 : n) }')
python3 bench/gen-context.py w9 "$work/w9" "$base" "$w9_files"
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
# The example as is, but without its `# syntax=` line: dockerd would fetch that frontend image
# from Docker Hub, which this machine cannot reach (all three tools read the same file).
cp -r examples/busybox-multistage "$work/w7"
sed -i '/^# syntax=/d' "$work/w7/Dockerfile"
# A shared dependency step (~2 s of hashing on the build platform), then the per-target step.
mkdir -p "$work/w8"
cat > "$work/w8/Dockerfile" <<DF
FROM --platform=\$BUILDPLATFORM $mbase AS build
RUN i=0; while [ \$i -lt 300 ]; do head -c 2000000 /dev/zero | sha256sum >/dev/null; i=\$((i+1)); done; echo deps > /deps
ARG TARGETARCH
RUN echo "app for \$TARGETARCH" > /app
FROM $mbase
COPY --from=build /app /app
DF
w1_sent=$("$bin" context "$work/w1" 2>&1 >/dev/null | tail -1)       # "N files, X MB (B bytes)"
w1_all=$(find "$work/w1" -type f | wc -l)
w1_all_mb=$(du -sb "$work/w1" | awk '{ printf "%.0f", $1 / 1e6 }')
w5_bytes=$(cat "$work"/w5/data/* | wc -c)

# --- tools -------------------------------------------------------------------------------------
tools=(sc bk bh)
declare -A tool_name=([sc]=stagecraft [bk]=BuildKit [bh]=Buildah)
rss_log=""
steps_log=""   # when set, stagecraft's and BuildKit's step timings are appended to $steps_log.TOOL
build_with() {  # TOOL ARGS...   (the same docker-build-style arguments for every tool)
    local tool=$1; shift
    case $tool in
        sc) local measure=()
            [ -z "$rss_log" ] || measure=(/usr/bin/time -v -a -o "$rss_log")
            if [ -n "$steps_log" ]; then
                # Progress goes to stderr (as buildx's), the image ID to stdout.
                "${measure[@]}" "$bin" build --progress=json "$@" 2>>"$steps_log.sc" >/dev/null
            else
                "${measure[@]}" "$bin" build --progress=quiet "$@"
            fi ;;
        bk) if [ -n "$steps_log" ]; then
                DOCKER_BUILDKIT=1 /usr/bin/docker build --network=host --progress=plain "$@" 2>>"$steps_log.bk"
            else
                DOCKER_BUILDKIT=1 /usr/bin/docker build --network=host -q "$@"
            fi ;;
        bh) buildah "${bh_store[@]}" bud --layers --runtime runc --network host --jobs 2 \
                --tls-verify=false -q "$@" ;;
        # Not a builder: `cp -a` of the context (the last argument) into a new directory, what
        # any tool's COPY of it costs on this file system at least (W9's floor).
        cpa) floor_seq=$((floor_seq + 1)); cp -a "${!#}" "${w9_fs:-$work}/floor.$floor_seq" ;;
    esac
}
floor_seq=0
noop() { :; }
edit_count=0
edit_one() { edit_count=$((edit_count + 1)); python3 "$repo/bench/gen-context.py" touch "$work/w1" "$edit_count"; }

now() { date +%s.%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { m = (NR + 1) / 2; if (NR % 2) print a[m]; else print (a[m - 0.5] + a[m + 0.5]) / 2 }'; }
time_cmd() {  # COMMAND...: prints its wall time; on failure prints its output's tail and fails
    local s e out
    s=$(now)
    if ! out=$("$@" 2>&1); then echo "bench: $* failed:" >&2; echo "$out" | tail -20 >&2; return 1; fi
    e=$(now)
    echo "$e - $s" | bc -l
}

# Reads every file of the context DIR (untimed) so that each tool starts with it in the page
# cache, as after a checkout. Without this, whichever tool builds first after a workload that
# pushed gigabytes through the cache (W5) read the 100,000-file W9 context from disk: 9.0 s
# instead of 3.9-5.8 s for stagecraft's cold W9 build in one measurement.
warm_context() {  # DIR
    find "$1" -type f -exec cat {} + >/dev/null
}
declare -A result
bench() {  # NAME REPEATS PREPARE ARGS...: every repeat runs each tool once, starting with a new one
    local name=$1 n=$2 prepare=$3 i j tool t
    shift 3
    declare -A times=()
    echo "bench: $name ($n x ${#tools[@]} builds)" >&2
    for i in $(seq 0 $((n - 1))); do
        for j in $(seq 0 $((${#tools[@]} - 1))); do
            tool=${tools[$(((i + j) % ${#tools[@]}))]}
            $prepare "$tool"
            warm_context "${!#}"
            sync
            t=$(time_cmd build_with "$tool" "$@") || exit 1
            times[$tool]+="$t "
        done
    done
    for tool in "${tools[@]}"; do
        # shellcheck disable=SC2086
        result[$name.$tool]=$(printf '%s\n' ${times[$tool]} | median)
    done
}

# --- runs --------------------------------------------------------------------------------------
t0=$(now)
bench W1 "$repeats" cold -t bench/w1 "$work/w1"
bench W2 "$repeats" noop -t bench/w1 "$work/w1"

# W1's image from each tool, exported, before W3 edits the context
mkdir -p "$work/sizes"
"$bin" save bench/w1 -o "$work/sizes/sc.tar" --format oci
/usr/bin/docker save bench/w1 -o "$work/sizes/bk.tar"
buildah "${bh_store[@]}" push -q bench/w1 "oci-archive:$work/sizes/bh.tar" >/dev/null
declare -A size
for tool in "${tools[@]}"; do size[$tool]=$(python3 bench/image-size.py "$work/sizes/$tool.tar"); done
size_own_sc=$("$bin" inspect -f '{{.Size}}' bench/w1 2>/dev/null || echo "?")
size_own_bk=$(/usr/bin/docker image inspect -f '{{.Size}}' bench/w1)
size_own_bh=$(buildah "${bh_store[@]}" images --format '{{.Size}}' localhost/bench/w1:latest)
rm -rf "$work/sizes"

steps_log=$work/w3-steps
bench W3 "$repeats" edit_one -t bench/w1 "$work/w1"
steps_log=""
# W3's COPY src/ and the RUN after it, per build, from each tool's own step timings: the median
# of the repeats (seconds), "-" when the log has none.
w3_steps() {  # TOOL
    python3 bench/steps.py w3 "$1" "$work/w3-steps.$1"
}
for tool in sc bk; do read -r "result[W3copy.$tool]" "result[W3run.$tool]" <<<"$(w3_steps "$tool")"; done
bench W4 "$repeats" noop --no-cache "$work/w4"
bench W6 "$repeats" noop --no-cache "$work/w6"
bench W7c "$repeats" cold --build-arg "BASE=$base" -t bench/w7 "$work/w7"
bench W7w "$repeats" noop --build-arg "BASE=$base" -t bench/w7 "$work/w7"

rss_log=$work/rss.log
steps_log=$work/w5-steps
bench W5 "$w5_repeats" cold -o "type=tar,dest=$work/out/w5.tar" "$work/w5"
steps_log=""
# Where stagecraft's W5 builds spent their time (from its progress events): before the COPY
# (the context's hashing), the COPY (copy, layer hash, sync) and after it (the type=tar
# export), medians; for telling the machine's I/O load in the run from the build's own work.
w5_phases=$(python3 bench/steps.py phases "$work/w5-steps.sc")
rss_log=$work/rss9.log
# With the floor in the rotation: creating 100,000 files is most of W9.
tools=(sc bk bh cpa)
bench W9 "$w5_repeats" w9_cold -t bench/w9 "$work/w9"
tools=(sc bk bh)
release_w9_fs
cold sc
cold bh
rss_log=""
peak_rss_kb=$(awk -F': ' '/Maximum resident set size/ { if ($2 > m) m = $2 } END { print m + 0 }' "$work/rss.log")
w9_rss_kb=$(awk -F': ' '/Maximum resident set size/ { if ($2 > m) m = $2 } END { print m + 0 }' "$work/rss9.log")
rm -rf "$work/out"/*

# Export throughput: W5's image (cached) written as a gzip OCI archive, stagecraft and Buildah
# alternated, each export from a warm cache and a fresh destination. stagecraft remembers a
# layer's compressed blob (the store's `layer-variant-*` cache records) and a later export
# reuses it: those records go before every timed export, so each one compresses, as Buildah's do.
echo "bench: export throughput ($w5_repeats x 2)" >&2
"$bin" build --progress=quiet -t bench/w5 "$work/w5" >/dev/null
buildah "${bh_store[@]}" bud --layers --runtime runc --network host --tls-verify=false -q -t bench/w5 "$work/w5" >/dev/null
export_sc=() export_bh=()
for i in $(seq 1 "$w5_repeats"); do
    for tool in $( ((i % 2)) && echo sc bh || echo bh sc); do
        rm -rf "$work/out"/*; sync
        case $tool in
            sc) rm -f "$STAGECRAFT_ROOT"/cache/layer-variant-*
                t=$(time_cmd "$bin" build --progress=quiet -o "type=oci,dest=$work/out/w5.oci.tar" "$work/w5") || exit 1
                export_sc+=("$t") ;;
            bh) t=$(time_cmd buildah "${bh_store[@]}" push -q localhost/bench/w5:latest "oci-archive:$work/out/w5.oci.tar") || exit 1
                export_bh+=("$t") ;;
        esac
    done
done
result[Wx.sc]=$(printf '%s\n' "${export_sc[@]}" | median)
result[Wx.bh]=$(printf '%s\n' "${export_bh[@]}" | median)
rm -rf "$work/out"/*

# Hashing: stagecraft's cached rebuild of W5 after every file was touched (new mtime, same bytes:
# the COPY's key hashes contents, so it is a cache hit, and the time is the walk + sha256 of
# 1 GiB) against one `sha256sum` process over the same files; alternated, page cache warm.
echo "bench: W5 hashing ($repeats x 2)" >&2
time_cmd "$bin" build --progress=quiet -t bench/w5 "$work/w5" >/dev/null
hash_sc=() hash_ref=()
for i in $(seq 1 "$repeats"); do
    touch "$work"/w5/data/*
    sync
    t=$(time_cmd "$bin" build --progress=quiet -t bench/w5 "$work/w5") || exit 1
    hash_sc+=("$t")
    t=$(time_cmd sha256sum "$work"/w5/data/*) || exit 1
    hash_ref+=("$t")
done
result[W5h.sc]=$(printf '%s\n' "${hash_sc[@]}" | median)
result[W5h.ref]=$(printf '%s\n' "${hash_ref[@]}" | median)
# W8: alternating, each build cold.
echo "bench: W8 multi-platform ($repeats x 5 builds)" >&2
w8_multi=() w8_singles=() w8_bk=()
for i in $(seq 1 "$repeats"); do
    cold sc; sync
    t=$(time_cmd "$bin" build --progress=quiet --platform linux/amd64,linux/arm64 "$work/w8") || exit 1
    w8_multi+=("$t")
    sum=0
    for p in linux/amd64 linux/arm64; do
        cold sc; sync
        t=$(time_cmd "$bin" build --progress=quiet --platform "$p" "$work/w8") || exit 1
        sum=$(echo "$sum + $t" | bc -l)
    done
    w8_singles+=("$sum")
    sum=0
    for p in linux/amd64 linux/arm64; do
        cold bk; sync
        t=$(time_cmd env DOCKER_BUILDKIT=1 /usr/bin/docker build --network=host -q --platform "$p" "$work/w8") || exit 1
        sum=$(echo "$sum + $t" | bc -l)
    done
    w8_bk+=("$sum")
done
result[W8.multi]=$(printf '%s\n' "${w8_multi[@]}" | median)
result[W8.singles]=$(printf '%s\n' "${w8_singles[@]}" | median)
result[W8.bk]=$(printf '%s\n' "${w8_bk[@]}" | median)
total=$(echo "$(now) - $t0" | bc -l)

# --- report ------------------------------------------------------------------------------------
missed=()
ratio() { echo "$1 / $2" | bc -l; }
check() {  # VALUE GOAL [ge]: "ok" or "MISSED"
    if [ "${3:-le}" = ge ]; then
        (( $(echo "$1 >= $2" | bc -l) )) && echo ok || echo MISSED
    else
        (( $(echo "$1 <= $2" | bc -l) )) && echo ok || echo MISSED
    fi
}
echo
echo "stagecraft $("$bin" --version 2>/dev/null | awk '{ print $NF }') vs BuildKit (dockerd $(/usr/bin/docker version -f '{{.Server.Version}}')) vs $(buildah --version | cut -d' ' -f1-3); $(nproc) cores"
echo "median of $repeats runs per tool (W5: $w5_repeats), tools rotated each repeat; load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "W1 context: $w1_all files, $w1_all_mb MB on disk; after .dockerignore: $w1_sent"
echo
printf '%-44s %10s %10s %10s %8s %8s  %-14s %s\n' workload stagecraft BuildKit Buildah sc/BK sc/Bh "goal vs BK" "goal vs Buildah"
rows=(
    "W1:W1 cold 6-stage build:1.0"
    "W2:W2 fully cached rebuild of W1:0.5"
    "W3:W3 one source file changed:0.7"
    "W4:W4 50 x RUN true (no cache):0.5"
    "W5:W5 1 GiB COPY, cold, output type=tar:"
    "W6:W6 2 stages x sleep 2 (no cache):"
    "W7c:W7 busybox-multistage example, cold:"
    "W7w:W7 busybox-multistage example, cached:"
    "W9:W9 cold build, 100,000-file context:"
)
for row in "${rows[@]}"; do
    IFS=: read -r key label goal <<<"$row"
    s=${result[$key.sc]} b=${result[$key.bk]} h=${result[$key.bh]}
    rb=$(ratio "$s" "$b") rh=$(ratio "$s" "$h")
    gb="" gh="<= 0.5x $(check "$rh" 0.5)"
    if [ -n "$goal" ]; then gb="<= ${goal}x $(check "$rb" "$goal")"; fi
    [[ $gb == *MISSED ]] && missed+=("$key vs BuildKit: $(printf '%.2f' "$rb")x > ${goal}x")
    [[ $gh == *MISSED ]] && missed+=("$key vs Buildah: $(printf '%.2f' "$rh")x > 0.5x")
    printf '%-44s %9.3fs %9.3fs %9.3fs %7.2fx %7.2fx  %-14s %s\n' "$label" "$s" "$b" "$h" "$rb" "$rh" "$gb" "$gh"
done

echo
# W3's two steps; Buildah reports no step times.
for part in copy:"COPY src/ ./" run:"RUN on the copied files"; do
    key=${part%%:*} label=${part#*:}
    s=${result[W3$key.sc]:--} b=${result[W3$key.bk]:--}
    rb=-
    [[ $s != - && $b != - ]] && rb=$(printf '%.2fx' "$(ratio "$s" "$b")")
    printf '%-44s %10s %10s %10s %8s\n' "W3 step: $label" "${s}s" "${b}s" "n/a" "$rb"
done
printf 'W9 stagecraft peak RSS (/usr/bin/time -v): %d MB  (goal < 100 MB: %s)\n' "$((w9_rss_kb / 1024))" \
    "$( ((w9_rss_kb / 1024 < 100)) && echo ok || echo MISSED)"
((w9_rss_kb / 1024 < 100)) || missed+=("W9 peak RSS: $((w9_rss_kb / 1024)) MB >= 100 MB")
printf 'W9 floor, cp -a of the context (in the rotation): %.2fs; stagecraft W9 / floor: %.2fx  (goal <= 4 s: %s)\n' \
    "${result[W9.cpa]}" "$(ratio "${result[W9.sc]}" "${result[W9.cpa]}")" "$(check "${result[W9.sc]}" 4)"
(( $(echo "${result[W9.sc]} <= 4" | bc -l) )) || missed+=("W9: $(printf '%.2f' "${result[W9.sc]}") s > 4 s")
printf 'Export, W5 as a gzip OCI archive:        stagecraft %.0f MB/s (%.2fs); Buildah %.0f MB/s (%.2fs); BuildKit (dockerd 20.10): no OCI output\n' \
    "$(echo "$w5_bytes / ${result[Wx.sc]} / 1000000" | bc -l)" "${result[Wx.sc]}" \
    "$(echo "$w5_bytes / ${result[Wx.bh]} / 1000000" | bc -l)" "${result[Wx.bh]}"
echo
w6=$(ratio "${result[W6.sc]}" 2)
printf 'W6 against its longest stage (2 s):      %.2fx  (goal <= 1.15x: %s)\n' "$w6" "$(check "$w6" 1.15)"
[ "$(check "$w6" 1.15)" = ok ] || missed+=("W6: $(printf '%.2f' "$w6")x the longest stage > 1.15x")
if (( $(echo "${result[W6.bh]} / 2 < 2" | bc -l) )); then
    printf '  (W6 <= 0.5x Buildah would need < %.2fs: below the 2 s the stages sleep, not attainable)\n' \
        "$(echo "${result[W6.bh]} / 2" | bc -l)"
fi
w8=$(ratio "${result[W8.multi]}" "${result[W8.singles]}")
printf 'W8 two-platform cross-compile build:     stagecraft %.2fs; its two single-platform builds %.2fs: %.2fx  (goal <= 0.6x: %s)\n' \
    "${result[W8.multi]}" "${result[W8.singles]}" "$w8" "$(check "$w8" 0.6)"
printf '                                         BuildKit (dockerd 20.10, no multi-platform output): two single-platform builds %.2fs; stagecraft two-platform / that: %.2fx\n' \
    "${result[W8.bk]}" "$(ratio "${result[W8.multi]}" "${result[W8.bk]}")"
[ "$(check "$w8" 0.6)" = ok ] || missed+=("W8: $(printf '%.2f' "$w8")x two single-platform builds > 0.6x")
mbs() { echo "$w5_bytes / $1 / 1000000" | bc -l; }
hr=$(ratio "${result[W5h.ref]}" "${result[W5h.sc]}")
printf 'W5 context hashing, %d MB (16 files):    stagecraft %.0f MB/s (cached rebuild after touch, %.2fs); sha256sum (1 core) %.0f MB/s (%.2fs)\n' \
    "$((w5_bytes / 1000000))" "$(mbs "${result[W5h.sc]}")" "${result[W5h.sc]}" "$(mbs "${result[W5h.ref]}")" "${result[W5h.ref]}"
printf '                                         ratio %.2fx  (goal >= 0.7x: %s)\n' "$hr" "$(check "$hr" 0.7 ge)"
[ "$(check "$hr" 0.7 ge)" = ok ] || missed+=("W5 hashing: $(printf '%.2f' "$hr")x sha256sum < 0.7x")
rss_mb=$((peak_rss_kb / 1024))
printf 'W5 stagecraft peak RSS (/usr/bin/time -v): %d MB  (goal < 150 MB: %s)\n' "$rss_mb" "$( ((rss_mb < 150)) && echo ok || echo MISSED)"
echo "W5 stagecraft phases, before the COPY / the COPY / the type=tar export: $w5_phases s"
((rss_mb < 150)) || missed+=("W5 peak RSS: $rss_mb MB >= 150 MB")

echo
echo "W1 image (runtime stage), exported: stagecraft save --format oci, docker save, buildah push oci-archive:"
printf '%-12s %7s %14s %14s %14s %8s %16s\n' tool layers "file bytes" "layer tar B" "blobs B" config "tool's own size"
for tool in "${tools[@]}"; do
    read -r nl fb tb sb cb <<<"${size[$tool]}"
    own=$(eval echo "\$size_own_$tool")
    printf '%-12s %7s %14s %14s %14s %8s %16s\n' "${tool_name[$tool]}" "$nl" "$fb" "$tb" "$sb" "$cb" "$own"
done
echo "(file bytes: regular-file content; layer tar B: uncompressed layers; blobs B: as stored, gzip for OCI, plain tar for docker save)"

echo
printf 'whole run: %.0f s of builds and measurements\n' "$total"
if ((${#missed[@]})); then
    echo "goals missed (${#missed[@]}):"
    printf '  - %s\n' "${missed[@]}"
else
    echo "all goals met"
fi
