//! Parsing throughput on a large generated Dockerfile (the goal: 5,000 instructions < 20 ms).

use std::fmt::Write;

fn main() {
    divan::main();
}

/// A realistic mix: stages, continuations, JSON and shell forms, ENV pairs, heredocs.
fn large_dockerfile(instructions: usize) -> String {
    let mut text = String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\n");
    let mut count = 2;
    let mut stage = 0;
    while count < instructions {
        writeln!(text, "FROM ${{BASE}} AS stage{stage}").unwrap();
        text.push_str("WORKDIR /src\nENV A=1 B=\"two words\" C=${A}\n");
        text.push_str("COPY --chown=1000:1000 package.json package-lock.json ./\n");
        text.push_str("RUN --mount=type=cache,target=/root/.npm \\\n    npm ci && \\\n    # a comment inside\n    npm run build\n");
        text.push_str("COPY <<EOF /etc/app.conf\nkey=value\nEOF\n");
        text.push_str("LABEL org.opencontainers.image.title=\"app\" version=1\n");
        text.push_str("HEALTHCHECK --interval=30s CMD [\"curl\", \"-f\", \"http://localhost/\"]\n");
        text.push_str("CMD [\"node\", \"server.js\"]\n");
        count += 9;
        stage += 1;
    }
    text
}

#[divan::bench]
fn parse_5000_instructions(bencher: divan::Bencher) {
    let text = large_dockerfile(5_000);
    bencher.bench(|| {
        let file = stagecraft_dockerfile::parse_str("Dockerfile", divan::black_box(&text)).unwrap();
        assert!(file.instructions.len() >= 5_000);
        file
    });
}
