#!/usr/bin/env bash
# Layer pipeline throughput against the usual tools, measured in the same run on the same input:
# sha256 (ours vs coreutils sha256sum), gzip level 6 (ours vs `pigz -p 2`), zstd level 3 (ours).
# usage: bench/layer-throughput.sh [SIZE_MB]   (default 1024: a 1 GiB tar of /usr)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
command -v pigz >/dev/null || apt-get install -y -qq pigz >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{ tar cf - /usr 2>/dev/null || true; } | head -c "$((size_mb * 1024 * 1024))" > "$work/layer.tar" || true
cargo build --release --quiet -p stagecraft-layer --example throughput
ours=$(target/release/examples/throughput "$work/layer.tar")
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
sha256sum_s=$(t sha256sum "$work/layer.tar")
pigz_s=$(t sh -c "pigz -6 -p 2 -c '$work/layer.tar' > '$work/out.gz'")
sha_s=$(echo "$ours" | awk '$1=="sha256"{print $2}')
gzip_s=$(echo "$ours" | awk '$1=="gzip"{print $2}')
zstd_s=$(echo "$ours" | awk '$1=="zstd"{print $2}')
mb=$size_mb
printf '%-28s %8s %10s\n' "operation" "seconds" "MB/s"
for row in "sha256 (stagecraft):$sha_s" "sha256sum (coreutils):$sha256sum_s" "gzip -6 (stagecraft):$gzip_s" "pigz -6 -p 2:$pigz_s" "zstd -3 (stagecraft):$zstd_s"; do
    name=${row%%:*}; secs=${row##*:}
    printf '%-28s %8.2f %10.0f\n' "$name" "$secs" "$(echo "$mb / $secs" | bc -l)"
done
echo
printf 'hashing vs sha256sum:  %.2fx faster (goal >= 0.9x)\n' "$(echo "$sha256sum_s / $sha_s" | bc -l)"
printf 'gzip vs pigz -p 2:     %.2fx (goal >= 1.0x)\n' "$(echo "$pigz_s / $gzip_s" | bc -l)"
printf 'zstd vs our gzip:      %.2fx faster\n' "$(echo "$gzip_s / $zstd_s" | bc -l)"
