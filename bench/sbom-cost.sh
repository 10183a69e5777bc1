#!/usr/bin/env bash
# What `--sbom=true` costs a build (issue #15: under 5 % of a cold build, nothing on a fully
# cached rebuild), measured in the same run on the same context: RUNS cold builds without and
# with `--sbom=true`, alternating, each into a fresh copy of the store BASES (which holds the
# context's base images, e.g. made by scripts/make-bases.sh). Prints per run the build's wall
# and CPU seconds and the catalog time the build reports ("sbom: … (cataloged in X s)"), the
# catalog alone (`stagecraft sbom IMAGE` of the image built without one), then the medians and
# the ratios: catalog in the build / cold build without SBOM, and (with − without) / without
# (the second is noise-bound on a shared machine: builds vary by more than the catalog takes).
# Last, a fully cached rebuild with `--sbom=true`, which must say its catalog was kept.
# usage: BASES=/path/to/store bench/sbom-cost.sh CONTEXT [RUNS]   (3 runs by default)
#   STAGECRAFT_BIN selects the binary (default: target/release/stagecraft, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
context=$(realpath "$1")
runs=${2:-3}
bases=${BASES:?BASES names a store holding the base images of the context}
bin=${STAGECRAFT_BIN:-$PWD/target/release/stagecraft}
[ -x "$bin" ] || cargo build --release --quiet -p stagecraft
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# build STORE SBOM LOG: one cold (or cached) build; prints "wall cpu catalog-seconds".
build() {
    STAGECRAFT_ROOT=$1 /usr/bin/time -f "TIME %e %U %S" "$bin" build --progress=plain \
        --sbom="$2" -t sbom-cost "$context" >"$3" 2>&1
    local catalog
    catalog=$(grep -o 'cataloged in [0-9.]*' "$3" | awk '{print $3}' || true)
    grep '^TIME' "$3" | awk -v c="${catalog:--}" '{print $2, $3 + $4, c}'
}
fresh() { rm -rf "$work/store"; sync; cp -a "$bases" "$work/store"; sync; }
printf '%-4s %-6s %8s %8s %9s\n' run sbom wall cpu catalog
for run in $(seq "$runs"); do
    fresh
    read -r wall cpu _ < <(build "$work/store" false "$work/log")
    echo "$wall" >>"$work/wall-false"
    printf '%-4s %-6s %8s %8s %9s\n' "$run" false "$wall" "$cpu" -
    alone=$(STAGECRAFT_ROOT=$work/store /usr/bin/time -f '%e' "$bin" sbom sbom-cost 2>&1 >/dev/null)
    echo "$alone" >>"$work/alone"
    fresh
    read -r wall cpu catalog < <(build "$work/store" true "$work/log")
    echo "$wall" >>"$work/wall-true"
    echo "$catalog" >>"$work/catalog"
    printf '%-4s %-6s %8s %8s %9s   (catalog alone: %s s)\n' "$run" true "$wall" "$cpu" "$catalog" "$alone"
done
without=$(median <"$work/wall-false")
with=$(median <"$work/wall-true")
catalog=$(median <"$work/catalog")
alone=$(median <"$work/alone")
echo "median cold build: ${without} s without SBOM, ${with} s with; catalog in the build ${catalog} s, alone ${alone} s"
awk -v c="$catalog" -v w="$without" -v s="$with" 'BEGIN {
    printf "SBOM cost: catalog / cold build = %.1f %% (goal < 5 %%); (with - without) / without = %.1f %%\n",
        100 * c / w, 100 * (s - w) / w }'
read -r wall cpu _ < <(build "$work/store" true "$work/log")
if grep -q 'kept from an earlier build' "$work/log"; then
    echo "fully cached rebuild with --sbom=true: ${wall} s wall, ${cpu} s CPU, catalog kept (not made again)"
else
    echo "fully cached rebuild with --sbom=true: cataloged again" >&2
    grep 'sbom:' "$work/log" >&2 || true
    exit 1
fi
