//! BuildKit's build checks: each fires where BuildKit reports it (with BuildKit's message) and
//! stays quiet on Dockerfiles that follow the practice.

#[macro_use]
mod common;

use common::{fires, lint_text, of};

rule_cases! {
    stage_name_casing: "StageNameCasing" {
        fires: ["FROM golang:1.22 AS Builder\nRUN go version\n"],
        quiet: ["FROM golang:1.22 AS builder\nRUN go version\nFROM alpine:3.20\nCOPY --from=builder /go/bin /usr/local/bin\n"],
    }
    from_as_casing: "FromAsCasing" {
        fires: ["FROM alpine:3.20 as base\nRUN true\n", "from alpine:3.20 AS base\nrun true\n"],
        quiet: ["FROM alpine:3.20 AS base\n", "from alpine:3.20 as base\n", "From alpine:3.20 as base\n"],
    }
    no_empty_continuation: "NoEmptyContinuation" {
        fires: ["FROM alpine:3.20\nRUN apk add --no-cache \\\n\n    curl\n"],
        quiet: ["FROM alpine:3.20\nRUN apk add --no-cache \\\n    # the HTTP client\n    curl\n"],
    }
    consistent_instruction_casing: "ConsistentInstructionCasing" {
        fires: [
            "FROM alpine:3.20\nrun echo one\nRUN echo two\n",
            "from alpine:3.20\nworkdir /app\nCopy . .\n",
        ],
        quiet: [
            "FROM alpine:3.20\nWORKDIR /app\nCOPY . .\nCMD [\"./app\"]\n",
            "from alpine:3.20\nworkdir /app\ncopy . .\ncmd [\"./app\"]\n",
        ],
    }
    duplicate_stage_name: "DuplicateStageName" {
        fires: ["FROM golang:1.22 AS build\nFROM node:20 AS build\n"],
        quiet: ["FROM golang:1.22 AS build-api\nFROM node:20 AS build-web\nFROM alpine:3.20\nCOPY --from=build-api /a /a\nCOPY --from=build-web /w /w\n"],
    }
    reserved_stage_name: "ReservedStageName" {
        fires: ["FROM alpine:3.20 AS scratch\n", "FROM alpine:3.20 AS context\n"],
        quiet: ["FROM alpine:3.20 AS base\nFROM scratch\nCOPY --from=base /etc/passwd /etc/passwd\n"],
    }
    json_args_recommended: "JSONArgsRecommended" {
        fires: ["FROM node:20-slim\nCMD node server.js\n", "FROM alpine:3.20\nENTRYPOINT my-program start\n"],
        quiet: [
            "FROM node:20-slim\nCMD [\"node\", \"server.js\"]\n",
            "FROM alpine:3.20\nRUN apk add --no-cache bash\nSHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT echo \"hello world\"\n",
            // SHELL in the base stage carries over.
            "FROM alpine:3.20 AS base\nSHELL [\"/bin/sh\", \"-c\"]\nFROM base\nCMD echo hi\n",
        ],
    }
    maintainer_deprecated: "MaintainerDeprecated" {
        fires: ["FROM alpine:3.20\nMAINTAINER Jane Doe <jane@example.com>\n"],
        quiet: ["FROM alpine:3.20\nLABEL org.opencontainers.image.authors=\"jane@example.com\"\n"],
    }
    undefined_arg_in_from: "UndefinedArgInFrom" {
        fires: ["FROM node:${NODE_VERSION}-slim\n", "ARG VERSION=1\nFROM --platform=$PLATFORM alpine:3.20\n"],
        quiet: [
            "ARG NODE_VERSION=20\nFROM node:${NODE_VERSION}-slim\n",
            "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n",
            "ARG VARIANT\nFROM busybox:stable${VARIANT}\n",
        ],
    }
    workdir_relative_path: "WorkdirRelativePath" {
        fires: ["FROM node:20-slim\nWORKDIR app\n"],
        quiet: [
            "FROM node:20-slim\nWORKDIR /app\nWORKDIR src\n",
            "FROM node:20-slim AS base\nWORKDIR /app\nFROM base\nWORKDIR web\n",
            "FROM node:20-slim\nARG APP=/srv/app\nWORKDIR $APP\n",
            "# escape=`\nFROM mcr.microsoft.com/windows/nanoserver:ltsc2022\nWORKDIR C:\\app\n",
            // The image's environment may well set HOME: unknown is not empty.
            "FROM golang:1.22\nWORKDIR \"${HOME}\"\n",
            "FROM example.com/team/base:1\nWORKDIR $APP_ROOT/src\n",
        ],
    }
    undefined_var: "UndefinedVar" {
        fires: [
            "FROM alpine:3.20\nCOPY app /opt/$APP_NAME/\n",
            "FROM scratch\nENV DATA_DIR=/data\nVOLUME $DATA_DIRR\n",
            // An image the linter does not know may define anything, but not a near-miss.
            "FROM node:20-slim\nENV APP_HOME=/srv/app\nWORKDIR $APP_HOM\n",
            // Global ARGs are not visible inside stages until re-declared.
            "ARG VERSION=1.2\nFROM alpine:3.20\nLABEL version=$VERSION\n",
        ],
        quiet: [
            "FROM alpine:3.20\nARG APP_NAME=web\nCOPY app /opt/$APP_NAME/\nENV PATH=/opt/$APP_NAME/bin:$PATH\n",
            "ARG VERSION=1.2\nFROM alpine:3.20\nARG VERSION\nLABEL version=$VERSION\n",
            "FROM golang:1.22\nENV PATH=$GOPATH/bin:$PATH\n",
            "FROM alpine:3.20\nARG TARGETARCH\nCOPY bin/app-${TARGETARCH} /usr/local/bin/app\n",
            "FROM alpine:3.20\nARG VERSION\nENV VERSION=${VERSION:-dev}\nRUN echo $UNDEFINED_IN_RUN_IS_FOR_THE_SHELL\n",
        ],
    }
    multiple_instructions_disallowed: "MultipleInstructionsDisallowed" {
        fires: [
            "FROM node:20-slim\nCMD [\"node\", \"a.js\"]\nCMD [\"node\", \"b.js\"]\n",
            "FROM nginx:1.27\nHEALTHCHECK CMD curl -f http://localhost/\nHEALTHCHECK NONE\n",
        ],
        quiet: [
            "FROM node:20-slim AS dev\nCMD [\"npm\", \"run\", \"dev\"]\nFROM dev AS prod\nCMD [\"node\", \"server.js\"]\n",
            "FROM nginx:1.27\nENTRYPOINT [\"nginx\"]\nCMD [\"-g\", \"daemon off;\"]\n",
        ],
    }
    legacy_key_value_format: "LegacyKeyValueFormat" {
        fires: ["FROM node:20-slim\nENV NODE_ENV production\n", "FROM alpine:3.20\nLABEL maintainer jane\n"],
        quiet: ["FROM node:20-slim\nENV NODE_ENV=production PORT=8080\nLABEL org.opencontainers.image.title=\"web app\"\n"],
    }
    redundant_target_platform: "RedundantTargetPlatform" {
        fires: ["FROM --platform=$TARGETPLATFORM alpine:3.20\n", "FROM --platform=${TARGETPLATFORM} alpine:3.20\n"],
        quiet: ["FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM alpine:3.20\nCOPY --from=build /out /out\n"],
    }
    secrets_used_in_arg_or_env: "SecretsUsedInArgOrEnv" {
        fires: [
            "FROM node:20-slim\nARG NPM_TOKEN\n",
            "FROM python:3.12-slim\nENV DATABASE_PASSWORD=hunter2\n",
            "FROM alpine:3.20\nENV aws_secret_access_key=x\n",
            // An empty default still asks for the secret with --build-arg.
            "FROM alpine:3.20\nARG SERVICE_API_KEY=\"\"\n",
            // Only a literal empty value is a placeholder.
            "FROM alpine:3.20\nARG TOKEN\nENV SERVICE_TOKEN=$TOKEN\n",
            // Not hex: not a fingerprint.
            "FROM alpine:3.20\nENV SIGNING_KEY=correct-horse-battery-staple\n",
        ],
        quiet: [
            // OpenPGP fingerprints that verify a download are public.
            "FROM debian:bookworm-slim\nENV GPG_KEY=0123456789ABCDEF0123456789ABCDEF01234567\n",
            "FROM debian:bookworm-slim\nENV GPG_KEYS=\"0123456789ABCDEF0123456789ABCDEF01234567 FEDCBA9876543210\"\n",
            "FROM debian:bookworm-slim\nARG RELEASE_KEY=\"0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567\"\n",
            // An empty placeholder puts nothing into the image.
            "FROM node:20-slim\nENV SERVICE_API_KEY=\"\" SERVICE_TOKEN=\n",
            "FROM node:20-slim\nARG NODE_VERSION\nENV GPG_PUBLIC_KEY=abc KEY_FILE=/run/secrets/key\n\
             RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci\n",
            "FROM alpine:3.20\nENV MONKEY=1 KEYBOARD=us AUTHOR=jane\n",
        ],
    }
    invalid_default_arg_in_from: "InvalidDefaultArgInFrom" {
        fires: ["ARG TAG\nFROM busybox:${TAG}\n", "ARG BASE\nFROM ${BASE}\n", "ARG IMAGE=Alpine\nFROM ${IMAGE}\n"],
        quiet: [
            "ARG TAG=1.36\nFROM busybox:${TAG}\n",
            "ARG VARIANT\nFROM busybox:stable${VARIANT}\n",
            "ARG TAG\nFROM alpine:${TAG:-3.20}\n",
            "FROM alpine:3.20 AS base\nFROM base\n",
        ],
    }
    from_platform_flag_const_disallowed: "FromPlatformFlagConstDisallowed" {
        fires: [
            "FROM --platform=linux/amd64 alpine:3.20\n",
            "FROM --platform=linux/arm64 golang:1.22 AS build\n",
            // The image's name says arm64, the flag asks for amd64.
            "FROM --platform=linux/amd64 arm64v8/alpine:3.20\n",
        ],
        quiet: [
            // Images that exist for one platform only: nothing else could be built.
            "FROM --platform=linux/arm64 arm64v8/debian:bookworm AS rootfs\n",
            "FROM --platform=linux/amd64 example.com/toolchain:2.1-x86_64 AS sdk\n",
            "FROM --platform=linux/arm64 nvcr.io/nvidia/l4t-base:r36.2.0 AS board\n",
            "FROM --platform=linux/amd64 alpine:3.20 AS build-amd64\n",
            "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n",
        ],
    }
    invalid_definition_description: "InvalidDefinitionDescription" {
        fires: [
            "# check=experimental=InvalidDefinitionDescription\n\n# compiles the server\nFROM golang:1.22 AS build\n",
            "# check=experimental=all\n\n# the version of Go\nARG GO_VERSION=1.22\nFROM golang:${GO_VERSION}\n",
        ],
        quiet: [
            "# check=experimental=InvalidDefinitionDescription\n\n# build compiles the server\nFROM golang:1.22 AS build\n",
            "# check=experimental=InvalidDefinitionDescription\n\n# GO_VERSION is the version of Go\nARG GO_VERSION=1.22\nFROM golang:${GO_VERSION}\n",
            // Experimental: off unless enabled.
            "# compiles the server\nFROM golang:1.22 AS build\n",
        ],
    }
    expose_proto_casing: "ExposeProtoCasing" {
        fires: ["FROM nginx:1.27\nEXPOSE 80/TCP\n", "FROM alpine:3.20\nARG PORT=53/UDP\nEXPOSE $PORT\n"],
        quiet: ["FROM nginx:1.27\nEXPOSE 80/tcp 443 53/udp\n"],
    }
    expose_invalid_format: "ExposeInvalidFormat" {
        fires: ["FROM nginx:1.27\nEXPOSE 127.0.0.1:80:80\n", "FROM nginx:1.27\nEXPOSE 8080:80/tcp\n"],
        quiet: ["FROM nginx:1.27\nEXPOSE 80 443/tcp 8000-8010\n"],
    }
}

/// BuildKit's exact words, since tools match on them.
#[test]
fn messages_match_buildkit() {
    let cases = [
        (
            "StageNameCasing",
            "FROM alpine:3.20 AS Base\n",
            "Stage name 'Base' should be lowercase",
        ),
        (
            "FromAsCasing",
            "FROM alpine:3.20 as base\n",
            "'as' and 'FROM' keywords' casing do not match",
        ),
        (
            "ConsistentInstructionCasing",
            "FROM alpine:3.20\nrun true\nRUN true\n",
            "Command 'run' should match the case of the command majority (uppercase)",
        ),
        (
            "DuplicateStageName",
            "FROM alpine:3.20 AS a\nFROM alpine:3.20 AS a\n",
            "Duplicate stage name \"a\", stage names should be unique",
        ),
        (
            "ReservedStageName",
            "FROM alpine:3.20 AS scratch\n",
            "Stage name should not use the same name as reserved stage \"scratch\"",
        ),
        (
            "JSONArgsRecommended",
            "FROM alpine:3.20\nENTRYPOINT top\n",
            "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
        ),
        (
            "MaintainerDeprecated",
            "FROM alpine:3.20\nMAINTAINER me\n",
            "Maintainer instruction is deprecated in favor of using label",
        ),
        (
            "UndefinedArgInFrom",
            "ARG VERSION=1\nFROM alpine:$VERSON\n",
            "FROM argument 'VERSON' is not declared (did you mean VERSION?)",
        ),
        (
            "WorkdirRelativePath",
            "FROM alpine:3.20\nWORKDIR app\n",
            "Relative workdir \"app\" can have unexpected results if the base image changes",
        ),
        (
            "UndefinedVar",
            "FROM alpine:3.20\nENV FOO=1\nLABEL a=$FOOO\n",
            "Usage of undefined variable '$FOOO' (did you mean $FOO?)",
        ),
        (
            "MultipleInstructionsDisallowed",
            "FROM alpine:3.20\nCMD [\"a\"]\nCMD [\"b\"]\n",
            "Multiple CMD instructions should not be used in the same stage because only the last one will be used",
        ),
        (
            "LegacyKeyValueFormat",
            "FROM alpine:3.20\nENV A b\n",
            "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
        ),
        (
            "RedundantTargetPlatform",
            "FROM --platform=$TARGETPLATFORM alpine:3.20\n",
            "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
        ),
        (
            "SecretsUsedInArgOrEnv",
            "FROM alpine:3.20\nARG API_KEY\n",
            "Do not use ARG or ENV instructions for sensitive data (ARG \"API_KEY\")",
        ),
        (
            "InvalidDefaultArgInFrom",
            "ARG TAG\nFROM busybox:${TAG}\n",
            "Default value for ARG busybox:${TAG} results in empty or invalid base image name",
        ),
        (
            "FromPlatformFlagConstDisallowed",
            "FROM --platform=linux/amd64 alpine:3.20\n",
            "FROM --platform flag should not use constant value \"linux/amd64\"",
        ),
        (
            "ExposeProtoCasing",
            "FROM alpine:3.20\nEXPOSE 80/TcP\n",
            "Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
        ),
        (
            "ExposeInvalidFormat",
            "FROM alpine:3.20\nEXPOSE 80:80\n",
            "EXPOSE instruction should not define an IP address or host-port mapping, found '80:80'",
        ),
        (
            "NoEmptyContinuation",
            "FROM alpine:3.20\nRUN a \\\n\n b\n",
            "Empty continuation line",
        ),
    ];
    for (rule, text, message) in cases {
        let findings = fires(rule, text);
        assert_eq!(findings[0].message, message, "{rule}");
    }
}

#[test]
fn locations_point_at_the_instruction_or_word() {
    let findings = fires(
        "StageNameCasing",
        "FROM alpine:3.20\n\nFROM alpine:3.20 AS Web\n",
    );
    assert_eq!((findings[0].line, findings[0].column), (3, 21));
    // BuildKit reports the CMD that gets ignored, not the one that wins.
    let findings = fires(
        "MultipleInstructionsDisallowed",
        "FROM alpine:3.20\nCMD [\"a\"]\nRUN true\nCMD [\"b\"]\n",
    );
    assert_eq!(findings[0].line, 2);
    let findings = fires("NoEmptyContinuation", "FROM alpine:3.20\nRUN a \\\n\n  b\n");
    assert_eq!(findings[0].line, 4);
}

#[test]
fn dispatch_checks_follow_the_target() {
    // With --target, BuildKit dispatches (and checks) only the stages the target needs.
    let text = "FROM alpine:3.20 AS app\nWORKDIR /app\nFROM alpine:3.20 AS other\nWORKDIR rel\n";
    let all = lint_text(text);
    assert_eq!(of(&all, "WorkdirRelativePath").len(), 1);
    let targeted = common::lint_with(
        text,
        &stagecraft_lint::LintOptions {
            target: Some("app".into()),
            ..Default::default()
        },
    );
    assert!(of(&targeted, "WorkdirRelativePath").is_empty());
}

#[test]
fn build_args_feed_the_from_checks() {
    let text = "ARG TAG\nFROM alpine:${TAG}\n";
    // The defaults alone make an invalid name, whatever --build-arg says.
    let options = stagecraft_lint::LintOptions {
        build_args: [("TAG".to_owned(), "3.20".to_owned())].into(),
        ..Default::default()
    };
    let findings = common::lint_with(text, &options);
    assert_eq!(of(&findings, "InvalidDefaultArgInFrom").len(), 1);
    assert!(of(&findings, "BuildError").is_empty());
}

/// With the base image's configuration at hand (the local store), its environment is known:
/// a variable it sets expands to its value, one it does not set is empty, as in BuildKit.
#[test]
fn workdir_uses_the_base_image_environment_when_known() {
    let text = "FROM golang:1.22\nWORKDIR \"${HOME}\"\n";
    let file = stagecraft_dockerfile::parse_str("Dockerfile", text).unwrap();
    assert_eq!(
        stagecraft_lint::base_images(&file, &Default::default()),
        ["golang:1.22"]
    );
    let with_env = |env: &[(&str, &str)]| {
        let options = stagecraft_lint::LintOptions {
            image_env: [(
                "golang:1.22".to_owned(),
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )]
            .into(),
            ..Default::default()
        };
        common::lint_with(text, &options)
    };
    let unset = with_env(&[("PATH", "/usr/local/go/bin:/usr/bin"), ("GOPATH", "/go")]);
    let found = of(&unset, "WorkdirRelativePath");
    assert_eq!(found.len(), 1, "{unset:#?}");
    assert_eq!(
        found[0].message,
        "Relative workdir \"\" can have unexpected results if the base image changes"
    );
    assert_eq!(of(&unset, "UndefinedVar").len(), 1);
    let set = with_env(&[("HOME", "/root")]);
    assert!(of(&set, "WorkdirRelativePath").is_empty(), "{set:#?}");
    assert!(of(&set, "UndefinedVar").is_empty(), "{set:#?}");
}

/// A stage named like an earlier one that copies from that name depends on itself, and the
/// build fails; the duplicate and the build error are reported, and so is everything else.
#[test]
fn duplicate_stage_names_do_not_hide_other_findings() {
    let text = "FROM golang:1.22 AS build\nWORKDIR src\nRUN go build -o /out/app .\n\
                FROM alpine:3.20 AS build\nCOPY --from=build /out/app /app\nCMD /app\n";
    let findings = lint_text(text);
    let rules: Vec<(&str, usize)> = findings.iter().map(|f| (f.rule.as_ref(), f.line)).collect();
    for expected in [
        ("WorkdirRelativePath", 2),
        ("DuplicateStageName", 4),
        ("BuildError", 5),
        ("JSONArgsRecommended", 6),
    ] {
        assert!(rules.contains(&expected), "{expected:?} missing: {rules:?}");
    }
    let error = of(&findings, "BuildError")[0];
    assert_eq!(
        error.message,
        "circular dependency detected on stage: build"
    );
    assert!(error.hint.contains("rename one of them"), "{}", error.hint);
}
