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
        fires: [
            "FROM node:20-slim\nCOPY . /app\nRUN cd /app && npm ci\n",
            "FROM node:20-slim\nRUN cd frontend && npm run build\n",
            // A build stage's working directory ships nowhere: WORKDIR is the fix there even
            // after a WORKDIR, and even under /usr.
            "FROM gcc:14 AS build\nWORKDIR /src\nCOPY . .\nRUN cd /usr/src/lib && make\n\
             FROM debian:bookworm-slim\nCOPY --from=build /out /out\n",
        ],
        quiet: [
            // The shipped stage chose its working directory; a WORKDIR for one step would
            // move where the container starts.
            "FROM node:20-slim\nWORKDIR /home/node\nCOPY vendor /opt/plugin\nRUN cd /opt/plugin && npm rebuild\n\
             USER node\nCMD [\"node\", \"/opt/plugin/index.js\"]\n",
            // A step in a system directory of the image that ships.
            "FROM python:3.13-slim\nRUN cd /usr/local/bin && ln -s python3 py\n",
            "FROM debian:bookworm-slim\nRUN cd /etc/ssl/certs && c_rehash .\n",
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
            // A plain tar cut at a file boundary unpacks what it got and succeeds.
            "FROM alpine:3.20\nRUN <<EOF\nwget -qO- https://example.com/x.tar | tar x -C /opt\nEOF\n",
            "FROM alpine:3.20\nRUN wget -qO- https://example.com/x.txt | gzip > /x.gz\n",
            "FROM debian:bookworm-slim\nRUN apt-get update && curl -sL https://example.com/setup | bash -\n",
            "FROM python:3.12-slim\nRUN curl -sSL https://example.com/get-tool.py | python3 -\n",
        ],
        quiet: [
            "FROM alpine:3.20\nRUN set -o pipefail && wget -qO- https://example.com/x.tgz | tar xz\n",
            // A decompressor fails on an empty or truncated stream: so does the step.
            "FROM alpine:3.20\nRUN wget -qO- https://example.com/x.tgz | tar xz\n",
            "FROM debian:bookworm-slim\nRUN curl -fsSL https://example.com/t.tar.gz | tar -xz -C /usr/local/bin\n",
            "FROM debian:bookworm-slim\nRUN curl -fsSL https://example.com/t.tar.xz | tar --xz -x\n",
            "FROM debian:bookworm-slim\nRUN curl -fsSL https://example.com/f.gz | gunzip > /usr/local/bin/f\n",
            "FROM debian:bookworm-slim\nRUN curl -fsSL https://example.com/f.zst | zstd -d -o /f\n",
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
    final_stage_without_user: "FinalStageWithoutUser" {
        fires: [
            "FROM python:3.12-slim\nCOPY app.py /app/\nCMD [\"python\", \"/app/app.py\"]\n",
            "FROM golang:1.22 AS build\nRUN CGO_ENABLED=0 go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
        ],
        quiet: [
            GOOD_DEBIAN,
            MESSY_BUILDER,
            // Only the target counts: the build stage may be root.
            "FROM golang:1.22 AS build\nRUN go build -o /app .\nCMD [\"/app\"]\nFROM alpine:3.20\nCOPY --from=build /app /app\nUSER 1000\nCMD [\"/app\"]\n",
            // The user is set in a stage the target is built on.
            "FROM node:20-slim AS base\nUSER node\nFROM base\nCMD [\"node\", \"server.js\"]\n",
            // The entrypoint drops root itself, as database images do.
            "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends gosu && rm -rf /var/lib/apt/lists/*\nCOPY entrypoint.sh /\nENTRYPOINT [\"/entrypoint.sh\"]\n",
            // The base image starts unprivileged.
            "FROM gcr.io/distroless/python3-debian12:nonroot\nCOPY app.py /app/\nCMD [\"/app/app.py\"]\n",
            // An image others build on (no CMD), and a development target.
            "FROM alpine:3.20\nRUN apk add --no-cache curl\n",
            "FROM node:20-slim AS dev\nCMD [\"npm\", \"run\", \"dev\"]\n",
        ],
    }
    expose_port_out_of_range: "ExposePortOutOfRange" {
        fires: ["FROM nginx:1.27\nEXPOSE 80800\n", "FROM alpine:3.20\nEXPOSE 8000-70000/udp\n", "FROM alpine:3.20\nEXPOSE 99999999999999999999\n"],
        quiet: ["FROM nginx:1.27\nEXPOSE 80 443/tcp 65535 0\n", "FROM alpine:3.20\nEXPOSE 8000-8010/udp\n", "FROM alpine:3.20\nARG PORT=8080\nEXPOSE $PORT\n"],
    }
    sudo_in_run: "SudoInRun" {
        fires: [
            "FROM debian:bookworm-slim\nUSER app\nRUN sudo apt-get update\n",
            "FROM ubuntu:24.04\nRUN echo start && sudo -E make install\n",
        ],
        quiet: [
            GOOD_DEBIAN,
            "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends sudo && rm -rf /var/lib/apt/lists/*\n",
            "FROM debian:bookworm-slim\nRUN echo 'app ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/app\n",
        ],
    }
    apt_get_install_without_yes: "AptGetInstallWithoutYes" {
        fires: [
            "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install --no-install-recommends curl\n",
            "FROM ubuntu:24.04\nRUN apt install -q git\n",
        ],
        quiet: [
            GOOD_DEBIAN,
            "FROM debian:bookworm-slim\nRUN apt-get update && apt-get -qy install curl\n",
            "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -qq curl\n",
            "FROM debian:bookworm-slim\nRUN yes | apt-get install curl\n",
            "FROM debian:bookworm-slim\nRUN echo 'APT::Get::Assume-Yes \"true\";' > /etc/apt/apt.conf.d/90yes\nRUN apt-get update && apt-get install curl\n",
            "FROM debian:bookworm-slim\nRUN apt-get install -s curl && apt-get update\n",
        ],
    }
    apt_get_upgrade: "AptGetUpgrade" {
        fires: [
            "FROM debian:bookworm-slim\nRUN apt-get update && apt-get upgrade -y\n",
            "FROM ubuntu:24.04\nRUN apt-get update && apt-get -y dist-upgrade\n",
        ],
        quiet: [
            GOOD_DEBIAN,
            // A build stage does not ship.
            "FROM debian:bookworm AS build\nRUN apt-get update && apt-get upgrade -y\nFROM debian:bookworm-slim\nCOPY --from=build /out /out\n",
        ],
    }
    add_url_without_checksum: "AddUrlWithoutChecksum" {
        fires: [
            "FROM alpine:3.20\nADD https://example.com/tool.tar.gz /opt/\n",
            // A query does not make a download a repository.
            "FROM alpine:3.20\nADD https://example.com/tool.tar.gz?download=1 /opt/\n",
        ],
        quiet: [
            "FROM alpine:3.20\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/tool.tar.gz /opt/\n",
            "FROM alpine:3.20\nADD https://github.com/moby/buildkit.git#v0.14.0 /src\n",
            "FROM alpine:3.20\nADD rootfs.tar.xz /\n",
            // BuildKit's query form of a git source is a repository too.
            "FROM alpine:3.20\nADD https://example.com/team/tool.git?ref=v1.2.3 /src\n",
            "FROM alpine:3.20\nADD https://example.com/team/tool.git?commit=0123456789abcdef0123456789abcdef01234567 /src\n",
        ],
    }
    pip_install_unpinned: "PipInstallUnpinned" {
        fires: [
            "FROM python:3.12-slim\nRUN pip install --no-cache-dir flask\n",
            "FROM python:3.12-slim\nRUN python3 -m pip install --no-cache-dir 'uvicorn[standard]' requests==2.32.3\n",
        ],
        quiet: [
            GOOD_DEBIAN,
            MESSY_BUILDER,
            "FROM python:3.12-slim\nRUN pip install --no-cache-dir --upgrade pip setuptools wheel\n",
            "FROM python:3.12-slim\nRUN pip install --no-cache-dir flask==3.0.3 'gunicorn>=22,<23' ./vendor/lib.whl\n",
            "FROM python:3.12-slim\nRUN pip install --no-cache-dir -c constraints.txt flask\n",
            // A build stage does not ship.
            "FROM python:3.12 AS build\nRUN pip install build && python -m build\nFROM python:3.12-slim\nCOPY --from=build /dist /dist\n",
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

#[test]
fn names_installed_in_both_branches_of_an_if_are_listed_once() {
    let pip = fires(
        "PipInstallUnpinned",
        "FROM python:3.12-slim\nRUN if [ -n \"$GPU\" ]; then pip install --no-cache-dir torch flask; else pip install --no-cache-dir torch; fi\n",
    );
    assert_eq!(pip.len(), 1);
    assert!(
        pip[0]
            .message
            .contains("pip install of torch, flask without"),
        "{}",
        pip[0].message
    );
    let compilers = fires(
        "CompilerInRuntime",
        "FROM rust:1.79 AS build\nRUN cargo build --release\nFROM alpine:3.20\n\
         RUN if [ \"$X\" = 1 ]; then apk add --no-cache gcc; else apk add --no-cache gcc musl-dev; fi\n\
         COPY --from=build /target/release/app /app\nCMD [\"/app\"]\n",
    );
    assert_eq!(compilers.len(), 1);
    assert_eq!(
        compilers[0].message.matches("gcc").count(),
        1,
        "{}",
        compilers[0].message
    );
}
