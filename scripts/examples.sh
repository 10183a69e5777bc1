#!/usr/bin/env bash
# Builds the language examples on local stand-in bases (scripts/make-bases.sh), runs their tester
# stages, runs each runtime image's program with stagecraft's own executor, and prints the
# builder-versus-runtime size tables. Needs root and the Debian mirror (a few minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet -p stagecraft
bin=$PWD/target/release/stagecraft
export STAGECRAFT_ROOT=${STAGECRAFT_ROOT:-$PWD/target/demo-store}
shared=${STAGECRAFT_SHARED_DIR:-$PWD/../shared}
STAGECRAFT_BIN=$bin bash scripts/make-bases.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$shared/fixtures/make-busybox-image" "$work/busybox" >/dev/null
"$bin" load --tag busybox:latest -i "$work/busybox" >/dev/null

run_image() {  # image, command: runs the command inside the image with the build executor
    mkdir -p "$work/run-$1"
    printf 'FROM %s\nRUN %s\n' "$1" "$2" > "$work/run-$1/Dockerfile"
    "$bin" build --progress=plain --no-cache "$work/run-$1" 2>&1 | grep -E '^#[0-9]+ [^[]' | grep -vE 'DONE|cache miss' || true
}

echo "== go-static"
"$bin" build --progress=plain --target tester examples/go-static 2>&1 | tail -1
"$bin" build --progress=quiet -t examples/go-static:latest examples/go-static >/dev/null
"$bin" size --stage examples/go-static:latest | sed -n '/^STAGE/,$p'
mkdir -p "$work/go-run"
printf 'FROM busybox:latest\nCOPY --from=examples/go-static:latest /hello /hello\nRUN /hello\n' > "$work/go-run/Dockerfile"
"$bin" build --progress=plain --no-cache "$work/go-run" 2>&1 | grep -E 'hello from' || { echo "go-static: the binary did not run" >&2; exit 1; }

echo
echo "== python-venv"
"$bin" build --progress=plain --target tester examples/python-venv 2>&1 | grep -E '^#[0-9]+ (test_|OK|Ran)' || true
"$bin" build --progress=quiet -t examples/python-venv:latest examples/python-venv >/dev/null
"$bin" size --stage examples/python-venv:latest | sed -n '/^STAGE/,$p'
run_image examples/python-venv:latest "python app.py"

echo
echo "== node-app"
"$bin" build --progress=plain --target tester examples/node-app 2>&1 | grep -E '^#[0-9]+ (# |ok |✔|# pass)' || true
"$bin" build --progress=quiet -t examples/node-app:latest examples/node-app >/dev/null
"$bin" size --stage examples/node-app:latest | sed -n '/^STAGE/,$p'
run_image examples/node-app:latest "node server.js --once"

echo
echo "== rust-cli"
"$bin" build --progress=plain --target tester examples/rust-cli 2>&1 | grep -E '^#[0-9]+ test ' || true
"$bin" build --progress=quiet -t examples/rust-cli:latest examples/rust-cli >/dev/null
"$bin" size --stage examples/rust-cli:latest | sed -n '/^STAGE/,$p'
run_image examples/rust-cli:latest /usr/local/bin/rust-cli
