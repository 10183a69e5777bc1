#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/integration/conformance tests, doc tests, fuzzing,
# docs, and the fleet scenario (scripts/fleet.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
# Every fuzz target for a short budget (corpus from earlier runs, if any, is kept in
# fuzz/corpus); longer runs: `bash scripts/fuzz.sh SECONDS`.
bash scripts/fuzz.sh 10
# Broken intra-doc links are errors too: every public item is documented, and links must resolve.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The fleet scenario: the stagecraft image (deploy/Dockerfile) as two unprivileged CI runners
# sharing a registry cache; the runner that starts cold must run no step.
bash scripts/fleet.sh
