#!/usr/bin/env bash
# Makes local stand-ins for the official base images the language examples use (there is no
# Docker Hub here): Debian bookworm "minbase" roots with the toolchains from Debian's packages,
# imported into the store with `stagecraft import`. A few minutes per image, through the Debian
# mirror; images already in the store are skipped.
#   golang:1.19       golang-go, ca-certificates
#   python:3.11       python3, python3-pip, python3-venv
#   python:3.11-slim  python3
#   node:18           nodejs, npm
#   node:18-slim      nodejs
#   rust:1.63         cargo, rustc, gcc (Debian's toolchain)
#   debian:bookworm-slim  nothing beyond minbase
# usage: scripts/make-bases.sh [golang|python|python-slim|node|node-slim|rust|debian-slim ...]
#   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${STAGECRAFT_BIN:-$PWD/target/release/stagecraft}
[ -x "$bin" ] || cargo build --release --quiet -p stagecraft
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
wanted=("$@")
((${#wanted[@]})) || wanted=(golang python python-slim node node-slim rust debian-slim)
for base in "${wanted[@]}"; do
    extra=""
    case $base in
        golang) name=golang:1.19; packages=golang-go,ca-certificates ;;
        python) name=python:3.11; packages=python3,python3-pip,python3-venv ;;
        python-slim) name=python:3.11-slim; packages=python3 ;;
        node) name=node:18; packages=nodejs,ca-certificates; extra=npm ;;
        node-slim) name=node:18-slim; packages=nodejs ;;
        rust) name=rust:1.63; packages=ca-certificates; extra=cargo ;;
        debian-slim) name=debian:bookworm-slim; packages=ca-certificates ;;
        *) echo "make-bases: unknown base $base" >&2; exit 2 ;;
    esac
    if "$bin" inspect "$name" >/dev/null 2>&1; then
        echo "$name: already in the store"
        continue
    fi
    root=$(mktemp -d)
    echo "$name: debootstrap bookworm with $packages"
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >/dev/null
    if [ -n "$extra" ]; then
        # debootstrap cannot configure npm's hundreds of dependencies in one go: apt can.
        cp /etc/resolv.conf "$root/etc/resolv.conf"
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
        chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $extra" >/dev/null
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    # Trust what this machine trusts: package registries may sit behind a TLS-inspecting proxy
    # whose CA only the host knows, and RUN steps must reach the same registries the host does.
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        mkdir -p "$root/etc/ssl/certs"
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    "$bin" import "$root" "$name"
    rm -rf "$root"
done
