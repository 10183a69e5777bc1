#!/usr/bin/env bash
# W3's incremental `COPY src/ ./` (12,000 files, ~83 MB of layer, one file edited between builds),
# for one binary or two alternated (before/after), with what the step cannot avoid as it is made
# today measured in the same run on the same files: hard-linking the earlier snapshot's 12,000
# files into a new tree (`cp -al`), writing and fsyncing a layer tar of that size (`dd
# conv=fsync`: what a step did before lazy blobs) and hashing it (`openssl dgst -sha256`: what a
# step that records a lazy blob still does). It prints
# medians of the step's time (its `--progress=json` event), of the whole rebuild and of the
# rebuild's CPU seconds, the ratio after/before, and the step's time over those references.
# usage: bench/incremental-copy.sh [ROUNDS]   (default 5; root; ~1 minute per round)
#   STAGECRAFT_BIN=PATH the binary measured (default: target/release/stagecraft, built)
#   STAGECRAFT_BIN_BEFORE=PATH a second binary, alternated with the first, order swapped per round
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
shared=${STAGECRAFT_SHARED_DIR:-$PWD/../shared}
[ -n "${STAGECRAFT_BIN:-}" ] || cargo build --release --quiet -p stagecraft
# shellcheck source=scripts/lib/daemons.sh
source scripts/lib/daemons.sh
# shellcheck source=scripts/lib/registry.sh
source scripts/lib/registry.sh
work=$(mktemp -d /tmp/stagecraft-incremental.XXXXXX)
cleanup() {
    stop_pidfile "$work/reg/registry.pid"
    rm -rf "$work"
}
trap cleanup EXIT
# private copies: a concurrent `cargo build` must not swap a binary in the middle of the run
cp "${STAGECRAFT_BIN:-target/release/stagecraft}" "$work/after"
bins=("$work/after")
if [ -n "${STAGECRAFT_BIN_BEFORE:-}" ]; then
    cp "$STAGECRAFT_BIN_BEFORE" "$work/before"
    bins=("$work/before" "$work/after")
fi
registry=$(start_busybox_registry "$shared" "$work")
python3 bench/gen-context.py w1 "$work/w1" "$registry/busybox:latest"
export STAGECRAFT_ROOT=$work/store
"${bins[0]}" build -q -t bench/w1 "$work/w1" >/dev/null

python3 - "$work" "$rounds" "${bins[@]}" <<'PY'
import glob, os, resource, statistics, subprocess, sys, time

sys.path.insert(0, "bench")
from steps import stagecraft_builds

work, rounds, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
names = ["before", "after"][-len(bins):]


def timed(*cmd):
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def rebuild(binary, edit):
    """Edits one source file, rebuilds; returns the COPY step's seconds, wall and CPU seconds."""
    subprocess.run(["python3", "bench/gen-context.py", "touch", f"{work}/w1", str(edit)], check=True)
    subprocess.run(["sync"], check=True)  # no build pays for the previous one's writeback
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run([binary, "build", "--progress=json", "-t", "bench/w1", f"{work}/w1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"build failed:\n{done.stderr[-3000:]}")
    step = [s for build in stagecraft_builds(done.stderr.splitlines()) for s in build.steps
            if s.name == "COPY src/ ./"]
    if not step or step[0].status != "done":
        sys.exit(f"COPY src/ ./ did not run: {step}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return step[0].duration, wall, cpu


runs = {name: [] for name in names}
edit = 0
for r in range(rounds):
    for i in range(len(bins)):
        k = (i + r) % len(bins)
        edit += 1
        runs[names[k]].append(rebuild(bins[k], edit))
        print(f"bench: round {r + 1} {names[k]}: COPY %.3fs, rebuild %.3fs, CPU %.3fs" % runs[names[k]][-1],
              file=sys.stderr)

# The references, on the files the runs just made: the newest snapshot holding src/app (the
# COPY's) and its layer tar (a snapshot is named by its diff ID, which is the plain tar's digest).
# A lazy blob (a rootful store's step layer) is never written: a tar of the same files stands in.
app = max(glob.glob(f"{work}/store/snapshots/*/fs/src/app"), key=os.path.getmtime)
snapshot = os.path.dirname(app)
blob = f"{work}/store/blobs/sha256/" + os.path.basename(os.path.dirname(os.path.dirname(snapshot)))
if not os.path.exists(blob):
    blob = f"{work}/layer.tar"
    subprocess.run(["tar", "--sort=name", "-cf", blob, "-C", snapshot, "."], check=True)
size = os.path.getsize(blob)
link, write, sha = [], [], []
for _ in range(3):
    subprocess.run(["sync"], check=True)
    link.append(timed("cp", "-al", snapshot, f"{work}/linked"))
    subprocess.run(["rm", "-rf", f"{work}/linked"], check=True)
    subprocess.run(["sync"], check=True)
    write.append(timed("dd", f"if={blob}", f"of={work}/written", "bs=1M", "conv=fsync", "status=none"))
    os.remove(f"{work}/written")
    sha.append(timed("openssl", "dgst", "-sha256", blob))
median = statistics.median
copy = {name: median(r[0] for r in runs[name]) for name in names}
for name in names:
    print(f"{name:>6}: COPY src/ ./ %.3fs, W3 rebuild %.3fs, rebuild CPU %.3fs (medians of {rounds})"
          % (copy[name], median(r[1] for r in runs[name]), median(r[2] for r in runs[name])))
if len(names) == 2:
    print("after/before: COPY %.2fx, rebuild %.2fx, CPU %.2fx" % tuple(
        median(r[i] for r in runs["after"]) / median(r[i] for r in runs["before"]) for i in range(3)))
floor = median(link) + median(write)
hashed = median(link) + median(sha)
print(f"references (medians of 3): cp -al of the 12,000 files %.3fs, write+fsync of {size / 1e6:.0f} MB "
      "%.3fs, its sha256 %.3fs; link + write = %.3fs, link + sha256 = %.3fs"
      % (median(link), median(write), median(sha), floor, hashed))
print("COPY step (after) / (link + write) = %.2fx, / (link + sha256, a lazy blob's floor) = %.2fx; "
      "the goal, 0.15 s, / (link + sha256) = %.2fx" % (copy["after"] / floor, copy["after"] / hashed, 0.15 / hashed))
print("load", open("/proc/loadavg").read().strip())
PY
