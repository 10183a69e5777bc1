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
# useradd (passwd) for rootless builds with subordinate ids and their tests, and slirp4netns,
# the user-mode network stack of RUN's network sandbox; ShellCheck for `lint`'s checks of RUN
# scripts; PyYAML reads deploy/'s recipes in their test.
apt_packages=(busybox-static skopeo umoci docker-registry docker.io chromium uidmap passwd slirp4netns shellcheck python3-yaml)
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

# The sandbox's stack opens /dev/net/tun; a rootless build can only when everyone may, the
# mode Debian's udev gives it (50-udev-default.rules). Machines without udev keep the kernel's
# 0600, and rootless RUN steps would fall back to the host's network.
if [[ -c /dev/net/tun && $(stat -c %a /dev/net/tun) != 666 ]]; then
    echo "setup: making /dev/net/tun usable by rootless builds (mode 0666, as udev does)" >&2
    chmod 0666 /dev/net/tun
fi

if ! need_cmd cargo-nextest; then
    echo "setup: installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi

# The SBOM tests (crates/sbom): the SPDX project's own validator (PyPI spdx-tools, the
# `pyspdxtools` command) checks the documents, and Debian's Go toolchain builds the binary whose
# embedded build information the Go cataloger must read as `go version -m` does. `pip list`
# (python3's pip, used below) and `npm ls` are the ground truth for the Python and Node.js
# catalogers; npm's global module tree (npm and its bundled packages, as the nodejs package of
# the project's machines installs them) is one of the trees they compare.
if ! need_cmd npm; then
    echo "setup: installing nodejs and npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if ! dpkg -s golang-go >/dev/null 2>&1; then
    echo "setup: installing golang-go" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends golang-go >/dev/null
fi
if ! need_cmd pyspdxtools; then
    echo "setup: installing spdx-tools (pyspdxtools)" >&2
    python3 -m pip install --quiet --disable-pip-version-check spdx-tools
fi

# Multi-platform builds run foreign RUN steps under qemu-user-static through binfmt_misc; the
# exec tests run an arm64 busybox. The shared fixture installs qemu-user-static and registers
# arm64 and arm with the F flag (idempotent); shared/ sits beside the repository.
shared=${STAGECRAFT_SHARED_DIR:-$(dirname "$0")/../../shared}
if [[ -f $shared/fixtures/setup-binfmt ]]; then
    bash "$shared/fixtures/setup-binfmt" >&2
else
    echo "setup: $shared/fixtures/setup-binfmt is missing; foreign-platform RUN tests will be skipped" >&2
fi
