//! Linting throughput on a large generated Dockerfile (the goal: 5,000 lines in < 50 ms).

use std::fmt::Write;

fn main() {
    divan::main();
}

/// A realistic multi-stage mix with at least `lines` lines: global ARGs, build stages that copy
/// manifests, install with cache mounts, pipe through shells and continuations, runtime stages
/// that copy from them, plus a few problems so that findings are produced too.
fn large_dockerfile(lines: usize) -> String {
    let mut text = String::from(
        "# syntax=docker/dockerfile:1\n# check=skip=UnreachableStage\nARG NODE_VERSION=20\nARG GO_VERSION=1.22\n",
    );
    let mut stage = 0;
    while text.lines().count() < lines {
        writeln!(
            text,
            "\nFROM node:${{NODE_VERSION}} AS web{stage}\n\
             WORKDIR /app\n\
             ENV NODE_ENV=production PORT=808{d}\n\
             COPY package.json package-lock.json ./\n\
             RUN --mount=type=cache,target=/root/.npm \\\n    npm ci --omit=dev && \\\n    # keep the lockfile honest\n    npm ls --depth=0\n\
             COPY . .\n\
             RUN npm run build && chown -R node:node /app/dist\n\
             \n\
             FROM golang:${{GO_VERSION}} AS api{stage}\n\
             WORKDIR /src\n\
             COPY go.mod go.sum ./\n\
             RUN --mount=type=cache,target=/go/pkg/mod go mod download\n\
             COPY . .\n\
             RUN CGO_ENABLED=0 go build -ldflags=\"-s -w\" -o /out/api ./cmd/api\n\
             RUN curl -fsSL https://example.com/tool.tgz | tar xz -C /usr/local/bin\n\
             \n\
             FROM debian:bookworm-slim AS runtime{stage}\n\
             RUN apt-get update \\\n    && apt-get install -y --no-install-recommends ca-certificates tini \\\n    && rm -rf /var/lib/apt/lists/*\n\
             COPY --from=api{stage} /out/api /usr/local/bin/api\n\
             COPY --from=web{stage} --chown=1000:1000 /app/dist /srv/www\n\
             LABEL org.opencontainers.image.title=\"api {stage}\" version=$VERSION\n\
             EXPOSE 8080/tcp\n\
             USER 1000:1000\n\
             HEALTHCHECK --interval=30s CMD [\"api\", \"health\"]\n\
             ENTRYPOINT [\"tini\", \"--\", \"api\"]",
            d = stage % 10
        )
        .expect("writing to a String");
        stage += 1;
    }
    text
}

#[divan::bench]
fn lint_5000_lines(bencher: divan::Bencher) {
    let text = large_dockerfile(5_000);
    let file = stagecraft_dockerfile::parse_str("Dockerfile", &text).expect("a valid Dockerfile");
    let options = stagecraft_lint::LintOptions::default();
    bencher.bench(|| {
        let findings = stagecraft_lint::lint(divan::black_box(&file), &options);
        assert!(!findings.is_empty());
        findings
    });
}
