# shellcheck shell=bash
# A local registry holding the offline busybox base (sourced by bench/run.sh and
# bench/incremental-copy.sh). Stop it with `stop_pidfile WORK/reg/registry.pid` (daemons.sh).

start_busybox_registry() {  # SHARED WORK: starts a registry on a free port of 127.0.0.1 (state
    # in WORK/reg), pushes ../shared/fixtures' busybox image (laid out in WORK/bb) to it as
    # busybox:latest, and prints the registry's HOST:PORT
    local shared=$1 work=$2 port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$shared/fixtures/make-busybox-image" "$work/bb" >/dev/null
    "$shared/fixtures/start-registry" "$port" "$work/reg" >/dev/null
    skopeo copy -q --dest-tls-verify=false "oci:$work/bb:latest" "docker://127.0.0.1:$port/busybox:latest"
    echo "127.0.0.1:$port"
}
