#!/usr/bin/env python3
"""Deterministic build contexts for bench/run.sh (same bytes on every run and machine).

usage: gen-context.py w1 DIR BASE [SCALE]   the 6-stage project: 20,000 files, ~300 MiB, a .dockerignore
       gen-context.py w5 DIR BASE [MIB]     big incompressible files (default 1024 MiB) and a COPY
       gen-context.py touch DIR N           W3's edit: one source file gets a line naming edit N
       gen-context.py w9 DIR BASE [FILES]   a context of many small files (default 100,000), all COPY'd

SCALE (default 1.0) shrinks W1's file sizes, not its file counts, for quick trials of the runner.
"""
import os, random, sys

MIB = 1 << 20

# W1: what a mid-sized project's checkout looks like. (directory, files, bytes each, text?, sent?)
#  sent: kept by the .dockerignore (.git, build output and logs are excluded, as usual)
W1_TREE = [
    ("lock",         20,    2048,          True,  True),   # dependency manifests
    ("src/app",      12000, 6 * 1024,      True,  True),   # 120 modules x 100 sources
    ("docs",         3000,  4 * 1024,      True,  True),
    ("tests",        2000,  3 * 1024,      True,  True),
    ("assets",       60,    5 * MIB // 2,  False, True),   # images, fonts: already compressed
    (".git/objects", 1500,  8 * 1024,      False, False),
    ("build",        1400,  36 * 1024,     False, False),
    ("logs",         18,    64 * 1024,     True,  False),
]
W1_FILES = sum(n for _, n, _, _, _ in W1_TREE) + 2  # + Dockerfile, .dockerignore

W1_DOCKERIGNORE = """\
.git
build/
logs/*.log
**/*.tmp
"""

# Six stages: deps -> build-app, build-assets and docs (independent builders), tester (on
# build-app, runs the tests), runtime (scratch: only artifacts, needs the tester's report so the
# tester stage is never skipped).
W1_DOCKERFILE = """\
FROM {base} AS deps
WORKDIR /deps
COPY lock/ ./lock/
RUN mkdir -p /opt/deps && cat lock/*.lock | md5sum > /opt/deps/DIGEST \\
 && for f in lock/*.lock; do cat "$f" "$f" "$f"; done > /opt/deps/libdeps.a

FROM deps AS build-app
WORKDIR /src
COPY src/ ./
RUN mkdir -p /out/app && find . -type f -name '*.c' | sort > /out/app/MANIFEST \\
 && xargs cat < /out/app/MANIFEST | md5sum > /out/app/BUILD_ID \\
 && cat $(grep '/mod00' /out/app/MANIFEST) > /out/app/app.bin

FROM {base} AS build-assets
WORKDIR /assets
COPY assets/ ./
RUN mkdir -p /out/assets && for f in *.bin; do head -c 131072 "$f" > "/out/assets/${{f%.bin}}.thumb"; done

FROM {base} AS docs
WORKDIR /docs
COPY docs/ ./
RUN mkdir -p /out/docs && find . -name '*.md' | sort | sed -n '1,300p' | xargs cat > /out/docs/manual.txt

FROM build-app AS tester
COPY tests/ /src/tests/
RUN test -s /out/app/app.bin && n=$(ls /src/tests | wc -l) && test "$n" -eq 2000 \\
 && {{ echo "tests passed: $n"; cat /out/app/BUILD_ID; }} > /out/test-report

FROM scratch AS runtime
COPY --from=deps /bin/busybox /bin/busybox
COPY --from=deps /opt/deps /opt/deps
COPY --from=build-app /out/app /app
COPY --from=build-assets /out/assets /app/assets
COPY --from=docs /out/docs /app/docs
COPY --from=tester /out/test-report /app/TESTED
USER 65532:65532
ENTRYPOINT ["/bin/busybox", "cat", "/app/TESTED"]
"""

W5_DOCKERFILE = """\
FROM {base}
COPY data/ /data/
"""


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def name_in(directory, i):
    if directory == "src/app":
        return f"{directory}/mod{i // 100:03d}/file{i % 100:02d}.c"
    ext = {"lock": "lock", "docs": "md", "tests": "sh", "assets": "bin", "logs": "log"}.get(directory, "o")
    sub = f"/{i // 250:02d}" if directory in ("docs", ".git/objects", "build") else ""
    return f"{directory}{sub}/f{i:05d}.{ext}"


def w1(out, base, scale):
    rng = random.Random(20261127)
    for directory, count, size, text, _ in W1_TREE:
        for i in range(count):
            # sizes vary +-50% around the mean, deterministically
            n = max(16, int(size * scale * (0.5 + rng.random())))
            data = rng.randbytes((n + 1) // 2).hex().encode()[:n] if text else rng.randbytes(n)
            write(os.path.join(out, name_in(directory, i)), data)
    write(os.path.join(out, ".dockerignore"), W1_DOCKERIGNORE.encode())
    write(os.path.join(out, "Dockerfile"), W1_DOCKERFILE.format(base=base).encode())


def w5(out, base, mib):
    rng = random.Random(5)
    files = 16
    per = mib * MIB // files
    for i in range(files):
        path = os.path.join(out, "data", f"blob{i:02d}.bin")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = per
            while left:
                n = min(left, 4 * MIB)
                f.write(rng.randbytes(n))
                left -= n
    write(os.path.join(out, "Dockerfile"), W5_DOCKERFILE.format(base=base).encode())


W9_DOCKERFILE = """\
FROM {base}
WORKDIR /ctx
COPY . .
RUN find . -type f | wc -l > /file-count
"""


def w9(out, base, files):
    # 100 files per directory, 1,000 directories in 10 groups: a monorepo's checkout, small files
    rng = random.Random(9)
    for i in range(files):
        n = 64 + int(rng.random() * 1536)
        data = rng.randbytes((n + 1) // 2).hex().encode()[:n]
        write(os.path.join(out, f"g{i // 10000:02d}/d{i // 100 % 100:02d}/f{i % 100:02d}.txt"), data)
    write(os.path.join(out, "Dockerfile"), W9_DOCKERFILE.format(base=base).encode())


def touch(out, n):
    path = os.path.join(out, name_in("src/app", 5 * 100 + 50))  # in mod005: part of app.bin
    with open(path, "rb") as f:
        lines = f.read().split(b"\n// edit ")[0]
    write(path, lines + f"\n// edit {n}\n".encode())


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    kind, out = sys.argv[1], sys.argv[2]
    if kind == "w1":
        w1(out, sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 1.0)
    elif kind == "w5":
        w5(out, sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 1024)
    elif kind == "w9":
        w9(out, sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 100000)
    elif kind == "touch":
        touch(out, int(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
