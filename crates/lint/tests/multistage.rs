//! stagecraft's multi-stage rules: layer-cache order, cache mounts, what the final image
//! carries, scratch images and unreachable stages.

#[macro_use]
mod common;

use common::{fires, lint_text, lint_with, of};
use stagecraft_lint::LintOptions;

/// The textbook Node.js build: dependencies first, production dependencies only in the
/// runtime image, a slim base.
const GOOD_NODE: &str = r#"# syntax=docker/dockerfile:1
FROM node:20 AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY . .
RUN npm run build

FROM node:20 AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev

FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
CMD ["node", "dist/server.js"]
"#;

/// A Rust build with cargo-chef: dependencies are cooked before the sources arrive.
const GOOD_RUST: &str = r#"FROM rust:1.79 AS chef
RUN cargo install cargo-chef
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --bin app

FROM debian:bookworm-slim AS runtime
COPY --from=builder /app/target/release/app /usr/local/bin/app
USER 65532
ENTRYPOINT ["/usr/local/bin/app"]
"#;

/// A Python service: requirements before sources, slim runtime with a virtualenv.
const GOOD_PYTHON: &str = r#"FROM python:3.12 AS build
WORKDIR /app
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir .

FROM python:3.12-slim
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH
USER 1000
CMD ["python", "-m", "app"]
"#;

/// A static Go binary on scratch.
const GOOD_GO: &str = r#"FROM golang:1.22 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM scratch
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]
"#;

rule_cases! {
    sources_before_dependency_install: "SourcesBeforeDependencyInstall" {
        fires: [
            "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npm ci\nCMD [\"node\", \"server.js\"]\n",
            "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN pip install --no-cache-dir -r requirements.txt\n",
            "FROM rust:1.79 AS build\nWORKDIR /app\nCOPY . .\nRUN cargo build --release\n",
            "FROM ruby:3.3\nCOPY . /app\nRUN bundle install\n",
            // The whole-context copy happened in the base stage.
            "FROM node:20 AS src\nWORKDIR /app\nCOPY . .\nFROM src AS build\nRUN yarn install --frozen-lockfile\n",
        ],
        quiet: [
            GOOD_NODE,
            GOOD_RUST,
            GOOD_PYTHON,
            GOOD_GO,
            "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN --mount=type=cache,target=/root/.npm npm ci\n",
            "FROM composer:2 AS vendor\nCOPY composer.json composer.lock ./\nRUN composer install --no-dev\nCOPY . .\nRUN composer install --no-dev --optimize-autoloader\n",
        ],
    }
    package_manager_without_cache_mount: "PackageManagerWithoutCacheMount" {
        fires: [
            "FROM node:20-slim\nCOPY package*.json ./\nRUN npm ci\n",
            "FROM golang:1.22\nRUN go mod download\n",
            "FROM python:3.12-slim\nRUN pip install flask\n",
        ],
        quiet: [
            GOOD_GO,
            "FROM node:20-slim\nCOPY package*.json ./\nRUN --mount=type=cache,target=/root/.npm npm ci\n",
            // --no-cache-dir is a deliberate choice of no cache at all.
            "FROM python:3.12-slim\nRUN pip install --no-cache-dir flask\n",
            "FROM alpine:3.20\nRUN apk add --no-cache curl\n",
            // Printing a version or help installs nothing.
            "FROM node:20-slim\nRUN yarn --version && pnpm -v && npm install --help\n",
            // Windows builders have no cache mounts to offer.
            "FROM mcr.microsoft.com/windows/servercore:ltsc2022\nRUN npm ci\n",
            "# escape=`\nFROM example.com/node-windows:20\nRUN npm ci\n",
        ],
    }
    npm_install_instead_of_ci: "NpmInstallInsteadOfCi" {
        fires: [
            "FROM node:20-slim\nCOPY package.json package-lock.json ./\nRUN npm install\n",
            "FROM node:20-slim\nCOPY package*.json ./\nRUN npm i --omit=dev\n",
            "FROM node:20-slim\nRUN --mount=type=bind,source=package-lock.json,target=package-lock.json \\\n    --mount=type=bind,source=package.json,target=package.json npm install\n",
        ],
        quiet: [
            GOOD_NODE,
            // No lockfile in the image: `npm install` is all there is.
            "FROM node:20-slim\nCOPY package.json ./\nRUN npm install\n",
            // Installing a named tool is not installing the lockfile.
            "FROM node:20-slim\nCOPY package*.json ./\nRUN npm ci && npm install -g pm2\n",
        ],
    }
    npm_dev_dependencies_in_runtime: "NpmDevDependenciesInRuntime" {
        fires: [
            "FROM node:20-slim\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nCMD [\"node\", \"server.js\"]\n",
            "FROM node:20 AS deps\nCOPY package*.json ./\nRUN npm ci\nFROM deps\nCOPY . .\nCMD [\"node\", \"server.js\"]\n",
        ],
        quiet: [
            GOOD_NODE,
            "FROM node:20-slim\nENV NODE_ENV=production\nCOPY package*.json ./\nRUN npm ci\n",
            "FROM node:20-slim\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build && npm prune --omit=dev\n",
            "FROM node:20-slim AS development\nCOPY package*.json ./\nRUN npm ci\nCMD [\"npm\", \"run\", \"dev\"]\n",
            "FROM node:20-slim\nARG NODE_ENV=production\nENV NODE_ENV $NODE_ENV\nCOPY package*.json ./\nRUN npm ci\nCMD [\"node\", \"server.js\"]\n",
            // devDependencies in a build stage are fine.
            "FROM node:20 AS build\nCOPY . .\nRUN npm ci && npm run build\nFROM nginx:1.27-alpine\nCOPY --from=build /dist /usr/share/nginx/html\n",
        ],
    }
    sdk_image_in_final_stage: "SdkImageInFinalStage" {
        fires: [
            "FROM golang:1.22 AS build\nRUN CGO_ENABLED=0 go build -o /app .\nFROM golang:1.22\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
            "FROM maven:3.9-eclipse-temurin-21 AS build\nRUN mvn package\nFROM eclipse-temurin:21-jdk\nCOPY --from=build /target/app.jar /app.jar\nCMD [\"java\", \"-jar\", \"/app.jar\"]\n",
            "FROM node:20 AS build\nRUN npm ci && npm run build\nFROM node:20\nCOPY --from=build /app/dist /app\nCMD [\"node\", \"/app/server.js\"]\n",
            "FROM python:3.12 AS build\nRUN pip wheel -w /wheels .\nFROM python:3.12\nCOPY --from=build /wheels /wheels\nCMD [\"python\", \"-m\", \"app\"]\n",
        ],
        quiet: [
            GOOD_NODE,
            GOOD_RUST,
            GOOD_PYTHON,
            GOOD_GO,
            "FROM maven:3.9-eclipse-temurin-21 AS build\nRUN mvn package\nFROM eclipse-temurin:21-jre\nCOPY --from=build /target/app.jar /app.jar\n",
            // Single-stage: there is no build stage to move the toolchain into.
            "FROM golang:1.22\nCOPY . .\nRUN go build -o /app .\nCMD [\"/app\"]\n",
            // A development target, and an image for others to build on (no CMD), are not
            // runtime images.
            "FROM golang:1.22 AS build\nRUN go build -o /app .\nFROM golang:1.22 AS dev\nCOPY --from=build /app /app\nCMD [\"/app\"]\n",
            "FROM golang:1.22 AS build\nRUN make toolchain\nFROM golang:1.22\nCOPY --from=build /usr/local/go /usr/local/go\n",
        ],
    }
    compiler_in_runtime: "CompilerInRuntime" {
        fires: [
            "FROM golang:1.22 AS build\nRUN go build -o /app .\nFROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
            "FROM rust:1.79 AS build\nRUN cargo build --release\nFROM alpine:3.20\nRUN apk add --no-cache gcc musl-dev\nCOPY --from=build /target/release/app /app\nCMD [\"/app\"]\n",
        ],
        quiet: [
            GOOD_RUST,
            "FROM node:20 AS build\nRUN npm ci\nFROM node:20-alpine\nCOPY --from=build /app /app\n\
             RUN apk add --no-cache --virtual .build-deps python3 make g++ \\\n    && npm rebuild bcrypt \\\n    && apk del .build-deps\n",
            "FROM python:3.12-slim\nRUN apt-get update && apt-get install -y --no-install-recommends gcc \\\n\
             && pip install --no-cache-dir uwsgi && apt-get purge -y gcc && rm -rf /var/lib/apt/lists/*\n",
        ],
    }
    go_scratch_without_cgo_disabled: "GoScratchWithoutCgoDisabled" {
        fires: [
            "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /out/app .\nFROM scratch\nCOPY --from=build /out/app /app\nENTRYPOINT [\"/app\"]\n",
            "FROM golang:1.22 AS build\nRUN go build -o /app .\nFROM gcr.io/distroless/static-debian12\nCOPY --from=build /app /app\nCMD [\"/app\"]\n",
            // No -o: the binary is named after the package, in the working directory.
            "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY . .\nRUN cd cmd/server && go build\nFROM scratch\nCOPY --from=build /src/cmd/server/server /server\nENTRYPOINT [\"/server\"]\n",
            // go install puts it in $GOPATH/bin; the whole directory is copied.
            "FROM golang:1.22 AS build\nRUN go install ./cmd/...\nFROM scratch\nCOPY --from=build /go/bin/ /usr/local/bin/\nENTRYPOINT [\"/usr/local/bin/tool\"]\n",
            // An Alpine builder that installs a C compiler has cgo on again.
            "FROM golang:1.22-alpine AS build\nRUN apk add --no-cache build-base\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
        ],
        quiet: [
            GOOD_GO,
            "FROM golang:1.22 AS build\nENV CGO_ENABLED=0\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
            "FROM golang:1.22-alpine AS build\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
            // Go installed on plain Alpine: no C compiler, so cgo is off by itself.
            "FROM alpine:3.20 AS build\nRUN apk add --no-cache go\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
            "FROM golang:1.22 AS build\nRUN go build -ldflags '-linkmode external -extldflags \"-static\"' -o /app .\nFROM scratch\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
            // A runtime with libc runs cgo binaries fine.
            "FROM golang:1.22 AS build\nRUN go build -o /app .\nFROM gcr.io/distroless/base-debian12\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
            // The scratch stage receives generated code, not the binary.
            "FROM golang:1.22 AS gen\nWORKDIR /src\nCOPY . .\nRUN go generate ./... && go build -o /bin/tool ./cmd/tool\nFROM scratch AS generated\nCOPY --from=gen /src/api/generated /\nCMD [\"none\"]\n",
            // An export-only stage (`--output`) starts nothing: the project needs cgo, the
            // artifact is for the host.
            "FROM golang:1.22 AS build\nRUN go build -o /out/libplugin.so -buildmode=c-shared .\nFROM scratch AS export\nCOPY --from=build /out /\n",
            // Where the binary goes depends on a variable: no guessing.
            "FROM golang:1.22 AS build\nARG OUT\nRUN go build -o \"$OUT\" .\nFROM scratch\nCOPY --from=build /usr/bin/app /app\nENTRYPOINT [\"/app\"]\n",
        ],
    }
    copy_builder_source_tree: "CopyBuilderSourceTree" {
        fires: [
            "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY . .\nRUN CGO_ENABLED=0 go build -o server .\nFROM scratch\nCOPY --from=build /src /src\nENTRYPOINT [\"/src/server\"]\n",
            "FROM node:20 AS build\nCOPY . /app\nRUN cd /app && npm ci && npm run build\nFROM node:20-slim\nCOPY --from=build /app /app\nCMD [\"node\", \"/app/dist/server.js\"]\n",
            // A directory above the tree takes it along.
            "FROM rust:1.79 AS build\nWORKDIR /usr/src/app\nCOPY . .\nRUN cargo build --release\nFROM debian:bookworm-slim\nCOPY --from=build /usr /usr\n",
        ],
        quiet: [
            GOOD_NODE,
            GOOD_RUST,
            GOOD_PYTHON,
            GOOD_GO,
            // Only the output, a subdirectory of the tree.
            "FROM node:20 AS build\nWORKDIR /app\nCOPY . .\nRUN npm ci && npm run build\nFROM nginx:1.27-alpine\nCOPY --from=build /app/dist /usr/share/nginx/html\n",
            // The builder never received the whole context.
            "FROM node:20 AS deps\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci --omit=dev\nFROM node:20-slim\nCOPY --from=deps /app /app\n",
        ],
    }
    unreachable_stage: "UnreachableStage" {
        fires: ["FROM alpine:3.20 AS debug\nRUN apk add --no-cache strace\nFROM alpine:3.20\nCMD [\"true\"]\n"],
        quiet: [GOOD_NODE, GOOD_RUST, GOOD_GO],
    }
    chown_recursive_after_copy: "ChownRecursiveAfterCopy" {
        fires: [
            "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN chown -R node:node /app\n",
            "FROM nginx:1.27\nCOPY site/ /usr/share/nginx/html/\nRUN chmod -R 755 /usr/share/nginx\n",
            "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npm ci && chown -R node .\n",
        ],
        quiet: [
            "FROM node:20-slim\nWORKDIR /app\nCOPY --chown=node:node . .\n",
            "FROM postgres:16\nRUN mkdir -p /data && chown -R postgres:postgres /data\nCOPY init.sql /docker-entrypoint-initdb.d/\n",
        ],
    }
}

#[test]
fn unreachable_stages_follow_the_target() {
    let text = "FROM alpine:3.20 AS app\nCMD [\"true\"]\nFROM app AS debug\nRUN apk add --no-cache strace\n";
    assert!(of(&lint_text(text), "UnreachableStage").is_empty());
    let options = LintOptions {
        target: Some("app".into()),
        ..LintOptions::default()
    };
    let findings = lint_with(text, &options);
    let unreachable = of(&findings, "UnreachableStage");
    assert_eq!(unreachable.len(), 1);
    assert_eq!(
        unreachable[0].message,
        "Stage 'debug' is not needed to build 'app', so it is skipped"
    );
}

#[test]
fn cache_mount_messages_say_what_each_tool_repeats() {
    let findings = fires(
        "PackageManagerWithoutCacheMount",
        "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends curl\n",
    );
    assert_eq!(
        findings[0].message,
        "RUN uses apt without a cache mount: each rebuild of this step, apt downloads every package again"
    );
    let findings = fires(
        "PackageManagerWithoutCacheMount",
        "FROM golang:1.22\nRUN go build -o /app . && pip install flask\n",
    );
    assert!(
        findings[0]
            .message
            .contains("go downloads every module and compiles every package again; pip downloads")
    );
}

#[test]
fn messages_name_the_lines_involved() {
    let findings = fires(
        "SourcesBeforeDependencyInstall",
        "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npm ci\n",
    );
    assert_eq!(
        findings[0].message,
        "`npm ci` runs after `COPY . .` (line 3): any source change re-runs the whole dependency install"
    );
    assert!(findings[0].hint.contains("package.json and the lockfile"));
    let findings = fires(
        "GoScratchWithoutCgoDisabled",
        "FROM golang:1.22 AS build\nRUN go build -o /app .\nFROM scratch\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n",
    );
    assert_eq!(findings[0].line, 2);
    assert!(findings[0].message.contains("line 4"));
}

/// The textbook Dockerfiles above follow every practice: no rule at all warns about them.
#[test]
fn textbook_builds_have_no_warnings() {
    for text in [GOOD_NODE, GOOD_RUST, GOOD_PYTHON, GOOD_GO] {
        let findings = lint_text(text);
        let serious: Vec<_> = findings
            .iter()
            .filter(|f| f.severity > stagecraft_lint::Severity::Info)
            .collect();
        assert!(serious.is_empty(), "{text}\n{serious:#?}");
    }
}
