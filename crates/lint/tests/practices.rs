//! Best-practice rules (the hadolint ground), multi-stage aware: each fires on the bad pattern
//! and stays quiet on real-world Dockerfiles that follow the practice.

#[macro_use]
mod common;

use common::fires;

/// A Debian-based single-stage image that does everything right.
const GOOD_DEBIAN: &str = r#"# syntax=docker/dockerfile:1
FROM python:3.12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
USER 1000:1000
CMD ["python", "-m", "app"]
"#;

/// A multi-stage build whose build stage may be as messy as it likes: nothing of it ships.
const MESSY_BUILDER: &str = r#"FROM debian:bookworm AS build
USER root
RUN apt-get update && apt-get install -y build-essential
RUN pip install -r requirements.txt
RUN apk add gcc
RUN make
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/app /app
ENTRYPOINT ["/app"]
"#;

rule_cases! {
    untagged_base_image: "UntaggedBaseImage" {
        fires: ["FROM ubuntu\nRUN true\n", "FROM node AS build\nFROM build\n"],
        quiet: [
            "FROM ubuntu:24.04\n",
            // The builder picks the image with --build-arg.
            "ARG BASE=node\nFROM ${BASE}\n",
            "FROM alpine@sha256:0a4eaa0eecf5f8c050e5bba433f58c052be7587ee8af3e8b3910ef9ab5fbe9f5\n",
            "FROM golang:1.22 AS build\nFROM build AS test\nFROM scratch\nCOPY --from=build /a /a\n",
        ],
    }
    latest_tag: "LatestTag" {
        fires: ["FROM node:latest\n"],
        quiet: [
            "ARG BASE=busybox:latest\nFROM ${BASE}\n",
            "FROM node:20-slim\n",
            "FROM node:latest@sha256:0a4eaa0eecf5f8c050e5bba433f58c052be7587ee8af3e8b3910ef9ab5fbe9f5\n",
        ],
    }
    apt_get_no_install_recommends: "AptGetNoInstallRecommends" {
        fires: ["FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n"],
        quiet: [
            GOOD_DEBIAN,
            MESSY_BUILDER,
            "FROM debian:bookworm-slim\nRUN echo 'APT::Install-Recommends \"false\";' > /etc/apt/apt.conf.d/00norecommends\n\
             RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n",
        ],
    }
    apt_lists_not_cleaned: "AptListsNotCleaned" {
        fires: ["FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n"],
        quiet: [
            GOOD_DEBIAN,
            MESSY_BUILDER,
            "FROM debian:trixie-slim\nRUN set -eux; apt-get update; apt-get install -y --no-install-recommends tzdata; apt-get dist-clean\n",
            "FROM debian:bookworm-slim\nRUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\\n\
             --mount=type=cache,target=/var/lib/apt,sharing=locked \\\n\
             apt-get update && apt-get install -y --no-install-recommends curl\n",
        ],
    }
    pip_no_cache_dir: "PipNoCacheDir" {
        fires: [
            "FROM python:3.12-slim\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n",
            "FROM python:3.12-slim\nRUN python3 -m pip install --upgrade pip flask\n",
        ],
        quiet: [
            GOOD_DEBIAN,
            MESSY_BUILDER,
            "FROM python:3.12-slim\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask\n",
            "FROM python:3.12-slim\nRUN --mount=type=cache,target=/root/.cache/pip pip install flask\n",
        ],
    }
    apk_add_no_cache: "ApkAddNoCache" {
        fires: ["FROM alpine:3.20\nRUN apk update && apk add curl\n"],
        quiet: [
            "FROM alpine:3.20\nRUN apk add --no-cache curl ca-certificates\n",
            "FROM alpine:3.20\nRUN apk add curl && rm -rf /var/cache/apk/*\n",
            "FROM alpine:3.20\nRUN apk add --no-network --virtual .run-deps /tmp/pkgs/*.apk\n",
            MESSY_BUILDER,
        ],
    }
    cd_instead_of_workdir: "CdInsteadOfWorkdir" {
        fires: ["FROM node:20-slim\nCOPY . /app\nRUN cd /app && npm ci\n", "FROM node:20-slim\nRUN cd frontend && npm run build\n"],
        quiet: [
            "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npm ci\n",
            "FROM debian:bookworm-slim\nRUN cd /tmp && curl -fsSLO https://example.com/tool.tgz && tar xzf tool.tgz\n",
            "FROM debian:bookworm-slim\nRUN curl -fsSLO https://example.com/src.tgz && tar xzf src.tgz && cd src && make install\n",
        ],
    }
    add_for_local_file: "AddForLocalFile" {
        fires: ["FROM nginx:1.27\nADD nginx.conf /etc/nginx/nginx.conf\n", "FROM alpine:3.20\nADD . /app\n"],
        quiet: [
            "FROM nginx:1.27\nCOPY nginx.conf /etc/nginx/nginx.conf\n",
            "FROM alpine:3.20\nADD https://example.com/tool.tar.gz /opt/\n",
            "FROM alpine:3.20\nADD rootfs.tar.xz /\n",
            "FROM alpine:3.20\nADD git@github.com:moby/buildkit.git /src\n",
        ],
    }
    copy_from_undefined_stage: "CopyFromUndefinedStage" {
        fires: [
            "FROM golang:1.22 AS builder\nRUN go build -o /app .\nFROM alpine:3.20\nCOPY --from=buidler /app /app\n",
            "FROM alpine:3.20 AS app\nCOPY --from=assets /dist /dist\nFROM node:20-slim AS assets\n",
        ],
        quiet: [
            "FROM golang:1.22 AS builder\nFROM alpine:3.20\nCOPY --from=builder /app /app\nCOPY --from=0 /b /b\n",
            "FROM alpine:3.20\nCOPY --from=nginx:1.27 /etc/nginx/nginx.conf /etc/nginx/\nCOPY --from=ghcr.io/org/tools /bin/x /bin/x\n",
            "FROM golang:1.22 AS Builder\nFROM alpine:3.20\nCOPY --from=BUILDER /app /app\n",
        ],
    }
    copy_from_own_stage: "CopyFromOwnStage" {
        fires: ["FROM alpine:3.20 AS app\nCOPY --from=app /etc/hosts /tmp/hosts\n"],
        quiet: ["FROM alpine:3.20 AS base\nRUN true\nFROM alpine:3.20 AS app\nCOPY --from=base /etc/hosts /tmp/hosts\n"],
    }
    pipefail_missing: "PipefailMissing" {
        fires: [
            "FROM debian:bookworm-slim\nRUN curl -fsSL https://example.com/install.sh | sh\n",
            "FROM alpine:3.20\nRUN <<EOF\nwget -qO- https://example.com/x.tgz | tar xz\nEOF\n",
            "FROM debian:bookworm-slim\nRUN apt-get update && curl -sL https://example.com/setup | bash -\n",
            "FROM python:3.12-slim\nRUN curl -sSL https://example.com/get-tool.py | python3 -\n",
        ],
        quiet: [
            "FROM alpine:3.20\nRUN set -o pipefail && wget -qO- https://example.com/x.tgz | tar xz\n",
            "FROM debian:bookworm-slim\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nRUN curl -fsSL https://example.com/install.sh | bash\n",
            "FROM debian:bookworm-slim\nRUN [\"/bin/bash\", \"-c\", \"set -o pipefail && curl -fsSL https://x | bash\"]\n",
            "FROM alpine:3.20\nRUN test -f /etc/os-release || echo missing\n",
            // The last command is the check: it fails when its input is wrong.
            "FROM alpine:3.20\nRUN curl -fsSLo tool.tgz https://example.com/tool.tgz \\\n    && echo \"$SUM  tool.tgz\" | sha256sum -c -\n",
            "FROM debian:bookworm-slim\nRUN dpkg -l | grep -q libssl\n",
            "FROM node:20-slim\nRUN npm ls --depth=0 | tee /deps.txt\n",
            // Windows stages have no POSIX shell, and PowerShell pipes are not sh pipes.
            "FROM mcr.microsoft.com/windows/servercore:ltsc2022\nRUN curl -sL https://example.com/x.zip | tar -xf -\n",
            "# escape=`\nFROM example.com/buildtools:1.0\nRUN curl -sL https://example.com/x.zip | tar -xf -\n",
            "FROM example.com/buildtools:1.0\nRUN powershell -Command curl https://example.com/x.ps1 ^| iex ^| sh\n",
            "FROM mcr.microsoft.com/powershell:lts-alpine-3.20\nRUN pwsh -c curl https://example.com | sh\n",
        ],
    }
    last_user_root: "LastUserRoot" {
        fires: [
            "FROM node:20-slim\nUSER node\nRUN npm ci\nUSER root\nCMD [\"node\", \"server.js\"]\n",
            "FROM debian:bookworm-slim AS base\nUSER 0:0\nFROM base\nCMD [\"bash\"]\n",
        ],
        quiet: [
            "FROM node:20-slim\nUSER root\nRUN apt-get update\nUSER node\nCMD [\"node\", \"server.js\"]\n",
            MESSY_BUILDER,
        ],
    }
}

#[test]
fn apt_messages_name_the_command_as_written() {
    for (command, shown) in [
        ("apt install", "apt install"),
        ("apt-get -q install", "apt-get install"),
    ] {
        let text = format!("FROM debian:bookworm-slim\nRUN {command} -y curl\n");
        let findings = fires("AptGetNoInstallRecommends", &text);
        assert_eq!(
            findings[0].message,
            format!(
                "{shown} without --no-install-recommends also installs every recommended package"
            )
        );
    }
}

#[test]
fn messages_teach() {
    let findings = fires("UntaggedBaseImage", "FROM ubuntu\n");
    assert_eq!(
        findings[0].message,
        "Base image 'ubuntu' has no tag, so every build pulls whatever 'latest' is that day"
    );
    assert!(findings[0].hint.contains("FROM ubuntu:<version>"));
    let findings = fires(
        "CopyFromUndefinedStage",
        "FROM golang:1.22 AS builder\nFROM alpine:3.20\nCOPY --from=buidler /app /app\n",
    );
    assert_eq!(findings[0].hint, "write `--from=builder`");
    assert_eq!((findings[0].line, findings[0].column), (3, 6));
}
