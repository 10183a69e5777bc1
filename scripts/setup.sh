#!/usr/bin/env bash
# Installs everything stagecraft's build, tests and demos need on a fresh machine of the
# project's kind (Debian, root, Rust toolchain present). Idempotent and quick when all is there.
set -euo pipefail

need_cmd() { command -v "$1" >/dev/null 2>&1; }

if ! need_cmd cargo; then
    echo "setup: cargo is missing; this project needs the machine's Rust toolchain" >&2
    exit 1
fi

# Debian packages the tests and demos use: static busybox for the offline base image, a local
# registry, skopeo and umoci as interoperability peers, dockerd (BuildKit) as the reference,
# headless Chromium to render the HTML size report, and newuidmap/newgidmap (uidmap) plus
# useradd (passwd) for rootless builds with subordinate ids and their tests.
apt_packages=(busybox-static skopeo umoci docker-registry docker.io chromium uidmap passwd)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! need_cmd cargo-nextest; then
    echo "setup: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi
