#!/usr/bin/env bash
# The main job, end to end on a fresh machine: build stagecraft, make a busybox base image offline,
# build the multi-stage example into an image, and print the stage/layer size report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
bin=$PWD/target/release/stagecraft
example=examples/busybox-multistage
export STAGECRAFT_ROOT=${STAGECRAFT_ROOT:-$PWD/target/demo-store}
shared=${STAGECRAFT_SHARED_DIR:-$PWD/../shared}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$shared/fixtures/make-busybox-image" "$work/busybox" >/dev/null
"$bin" load --tag busybox:latest -i "$work/busybox"

echo "== stagecraft build --dry-run $example"
"$bin" build --dry-run "$example"
echo
echo "== stagecraft build --target tester $example"
"$bin" build --progress=plain --target tester "$example"
echo
echo "== stagecraft build -t demo/site:latest --report $example"
"$bin" build --progress=plain -t demo/site:latest --report \
    --output "type=oci,dest=$work/site.oci.tar" "$example"
echo
echo "== stagecraft size --stage demo/site:latest"
"$bin" size --stage demo/site:latest
echo
echo "== rebuild (fully cached)"
"$bin" build --progress=plain -t demo/site:latest "$example" 2>&1 | tail -1
