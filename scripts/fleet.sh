#!/usr/bin/env bash
# The fleet scenario: two CI runners ("A" and "B"), each a container of the stagecraft image
# (deploy/Dockerfile) with its own empty store, unprivileged, sharing one registry cache.
#   1. runner A builds examples/fleet-project cold, exports its step cache to the registry
#      (--cache-to type=registry,mode=max) and its cache mounts (stagecraft cache export --ref);
#   2. runner B, cold, imports the cache mounts and builds with --cache-from: it must run 0 steps;
#   3. one source file changes; runner B rebuilds and runs only the steps that depend on it;
#   4. runners A (main's commit) and B (the edit) export their caches to one ref at the same
#      time; two cold runners, one per commit, must each run 0 steps from that ref, which
#      holds only if neither export made the other's records unreachable.
# Ends with `fleet: runner B cold build ran 0 of N steps; after one edit ran K of N steps` and
# exits 0 only if that holds (K > 0 and K < N) and step 4 did.
#
# usage: scripts/fleet.sh   (root; installs what it needs; ~3 minutes, plus a one-time
#   debootstrap of the runtime base, kept in target/fleet/)
# The containers get exactly the settings the README's "Running in CI and Kubernetes" section
# names: no --privileged, no added capability, a non-root user, seccomp and the masked /proc
# paths relaxed (`FLEET_SECURITY` overrides them, to show what a tighter container says).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
shared=${STAGECRAFT_SHARED_DIR:-$repo/../shared}
bash scripts/setup.sh
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
cargo build --release --quiet -p stagecraft
bin=$repo/target/release/stagecraft
read -r -a security <<<"${FLEET_SECURITY:---security-opt seccomp=unconfined --security-opt systempaths=unconfined --device /dev/net/tun --cap-drop ALL --cap-add SETUID --cap-add SETGID}"

# shellcheck source=scripts/lib/daemons.sh
source scripts/lib/daemons.sh
# shellcheck source=scripts/lib/registry.sh
source scripts/lib/registry.sh
cleanup() {
    local code=$?
    set +e
    trap - EXIT INT TERM
    stop_dockerd "$work/dd"
    stop_pidfile "$work/reg/registry.pid"
    unmount_below "$work"
    rm -rf "$work"
    exit "$code"
}
work=$(mktemp -d /tmp/stagecraft-fleet.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
export STAGECRAFT_ROOT=$work/host-store

# busybox, the project's base, is in the registry as a CI runner would pull it
registry=$(start_busybox_registry "$shared" "$work")
DOCKER_HOST=$("$shared/fixtures/start-dockerd" "$work/dd" "$registry")
export DOCKER_HOST
docker=/usr/bin/docker

# --- the other base: a Debian bookworm minbase standing in for debian:bookworm-slim, the
# stagecraft image's base.
base_tar=$repo/target/fleet/debian-bookworm-minbase.tar
if [ ! -s "$base_tar" ]; then
    echo "fleet: debootstrap of the runtime base (once; kept in $base_tar)" >&2
    mkdir -p "$(dirname "$base_tar")"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" \
        "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
    tar -C "$work/rootfs" -cf "$base_tar.partial" . && mv "$base_tar.partial" "$base_tar"
    rm -rf "$work/rootfs"
fi
mkdir -p "$work/rootfs"
tar -C "$work/rootfs" -xf "$base_tar"
"$bin" import "$work/rootfs" debian:bookworm-slim >/dev/null
rm -rf "$work/rootfs"

# --- the stagecraft image, built by stagecraft from deploy/Dockerfile with this checkout's binary
echo "fleet: building the stagecraft image from deploy/Dockerfile" >&2
"$bin" build --progress=quiet -f deploy/Dockerfile \
    --build-arg BINARY_FROM=prebuilt --build-arg RUNTIME_IMAGE=debian:bookworm-slim \
    -t stagecraft:fleet -o "type=docker,dest=$work/stagecraft-image.tar" . >/dev/null
$docker load -q -i "$work/stagecraft-image.tar" >/dev/null

# --- the runners
cp -r examples/fleet-project "$work/project"
mkdir -p "$work/a" "$work/b"
chown 1000:1000 "$work/a" "$work/b"
run_in() {  # RUNNER ARGS...: stagecraft ARGS in the runner's container (its store a volume)
    local runner=$1; shift
    $docker run --rm --network host "${security[@]}" \
        -v "$work/$runner:/home/builder/.local/share/stagecraft" -v "$work/${project_dir:-project}:/work:ro" \
        stagecraft:fleet "$@"
}
declare -A steps_run steps_total seconds
build_in() {  # RUNNER LABEL ARGS...: one build; records steps run, total and wall time
    local runner=$1 label=$2 start end finished; shift 2
    start=$(date +%s.%N)
    if ! run_in "$runner" build --progress=json --build-arg "BASE=$registry/busybox:latest" \
            "$@" /work >"$work/$label.out" 2>"$work/$label.log"; then
        echo "fleet: $label failed:" >&2; tail -20 "$work/$label.log" >&2; exit 1
    fi
    end=$(date +%s.%N)
    finished=$(grep '"event":"build_finished"' "$work/$label.log" | tail -1)
    steps_run[$label]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["steps_run"])' "$finished")
    steps_total[$label]=$(python3 -c 'import json,sys; e=json.loads(sys.argv[1]); print(e["steps_run"]+e["steps_cached"])' "$finished")
    seconds[$label]=$(echo "$end - $start" | bc -l)
    printf 'fleet: %-28s %2d of %2d steps run, %6.2f s\n' "$label" "${steps_run[$label]}" "${steps_total[$label]}" "${seconds[$label]}" >&2
}
cache_ref=$registry/fleet/cache:main
mounts_ref=$registry/fleet/cache-mounts:main

build_in a "runner A cold" --cache-to "type=registry,ref=$cache_ref,mode=max"
run_in a cache export --ref "$mounts_ref" >/dev/null
run_in b cache import --ref "$mounts_ref" >/dev/null
build_in b "runner B cold" --cache-from "type=registry,ref=$cache_ref"
cp -r "$work/project" "$work/project-main"
echo "the pricing page, edited on a branch" > "$work/project/src/pricing.txt"
build_in b "runner B after one edit" --cache-from "type=registry,ref=$cache_ref"
# Two runners export to one ref at once (each from its own store: A has main's records, B
# the edit's); then a cold runner per commit builds from that ref alone. Last-writer-wins
# would leave one of them building steps.
shared_ref=$registry/fleet/cache:shared
mkdir -p "$work/d" "$work/e" && chown 1000:1000 "$work/d" "$work/e"
project_dir=project-main build_in a "runner A, export at once" --cache-to "type=registry,ref=$shared_ref,mode=max" &
export_a=$!
build_in b "runner B, export at once" --cache-to "type=registry,ref=$shared_ref,mode=max" &
export_b=$!
wait "$export_a"
wait "$export_b"
project_dir=project-main build_in d "cold, main, shared ref" --cache-from "type=registry,ref=$shared_ref"
build_in e "cold, edit, shared ref" --cache-from "type=registry,ref=$shared_ref"
# For scale: a cold build with nothing to import.
mkdir -p "$work/c" && chown 1000:1000 "$work/c"
build_in c "a cold build, no shared cache"

n=${steps_total[runner B cold]}
cold=${steps_run[runner B cold]}
edit=${steps_run[runner B after one edit]}
main_shared=${steps_run[cold, main, shared ref]}
edit_shared=${steps_run[cold, edit, shared ref]}
echo "fleet: after concurrent exports to one ref, cold runners ran $main_shared (main) and $edit_shared (edit) of $n steps" >&2
echo "fleet: runner B cold build ran $cold of $n steps; after one edit ran $edit of $n steps"
[ "$cold" -eq 0 ] && [ "$edit" -gt 0 ] && [ "$edit" -lt "$n" ] && [ "$main_shared" -eq 0 ] && [ "$edit_shared" -eq 0 ]
