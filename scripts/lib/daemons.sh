# shellcheck shell=bash
# Stopping what a script started (sourced by bench/run.sh and scripts/fleet.sh): by pid file,
# never by process name, so nothing else on the machine is touched.

stop_pidfile() {  # PIDFILE: SIGTERM, wait up to 20 s, then SIGKILL
    local pid
    [ -s "$1" ] || return 0
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

stop_dockerd() {  # DATADIR (as given to ../shared/fixtures/start-dockerd): dockerd, then its containerd
    # dockerd's pid file disappears when it exits: read both pids before stopping either
    local containerd_pid=$1/containerd.pid.saved
    cp "$1/exec/containerd/containerd.pid" "$containerd_pid" 2>/dev/null
    stop_pidfile "$1/dockerd.pid"
    stop_pidfile "$containerd_pid"
}

unmount_below() {  # DIR: whatever is still mounted below DIR (overlays of dockerd, Buildah), deepest first
    # (nothing mounted there is no failure, under `set -o pipefail` either)
    findmnt -rn -o TARGET | { grep -F "$1/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
}
