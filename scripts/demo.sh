#!/usr/bin/env bash
# The main job, end to end on a fresh machine: build stagecraft, then read the multi-stage Go
# example the way a build will: its syntax tree and the files its context would send.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
bin=target/release/stagecraft
example=examples/go-static

echo "== stagecraft parse -f $example/Dockerfile"
"$bin" parse -f "$example/Dockerfile"
echo
echo "== stagecraft context $example"
"$bin" context "$example"
