//! Planning: argument scoping in FROM, the stage graph, --target pruning and its errors.

use stagecraft_plan::{Base, DependencyKind, Plan, PlanError, PlanOptions, Platform};
use std::collections::BTreeMap;

fn plan_with(text: &str, options: &PlanOptions) -> Result<Plan, PlanError> {
    let file = stagecraft_dockerfile::parse_str("Dockerfile", text).unwrap();
    Plan::new(&file, options)
}

fn plan(text: &str) -> Plan {
    plan_with(text, &PlanOptions::default()).unwrap_or_else(|e| panic!("{}", e.render()))
}

fn error(text: &str, options: &PlanOptions) -> String {
    match plan_with(text, options) {
        Ok(_) => panic!("planned:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const MULTI: &str = "\
FROM golang:1.22 AS builder
RUN go build -o /app
FROM builder AS tester
RUN go test ./...
FROM node:20 AS assets
RUN npm ci
FROM scratch AS runtime
COPY --from=builder /app /app
COPY --from=assets /dist /dist
";

#[test]
fn default_target_is_the_last_stage_and_unneeded_stages_are_skipped() {
    let plan = plan(MULTI);
    assert_eq!(plan.target, 3);
    assert_eq!(plan.needed_names(), ["builder", "assets", "runtime"]);
    assert_eq!(plan.skipped_names(), ["tester"]);
    assert_eq!(plan.stages[1].base, Base::Stage(0));
    assert_eq!(plan.stages[3].base, Base::Scratch);
    let kinds: Vec<_> = plan.stages[3]
        .dependencies
        .iter()
        .map(|d| (d.stage, d.kind.clone(), d.line))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, DependencyKind::CopyFrom, 8),
            (2, DependencyKind::CopyFrom, 9)
        ]
    );
    insta::assert_snapshot!(plan.describe(), @r"
    build  builder          from image golang:1.22
    skip   tester           from stage builder
    build  assets           from image node:20
    target runtime          from scratch, copies from builder (line 8), assets (line 9)
    ");
}

#[test]
fn target_selects_a_stage_and_its_bases() {
    let options = PlanOptions {
        target: Some("Tester".into()),
        ..Default::default()
    };
    let plan = plan_with(MULTI, &options).unwrap();
    assert_eq!(plan.needed_names(), ["builder", "tester"]);
    let options = PlanOptions {
        target: Some("testr".into()),
        ..Default::default()
    };
    assert_eq!(
        error(MULTI, &options),
        "target stage \"testr\" could not be found (did you mean tester?)"
    );
}

#[test]
fn global_args_expand_in_from_and_build_args_override() {
    let text = "ARG VERSION=1.0\nARG IMAGE=alpine:${VERSION}\nFROM $IMAGE\nFROM ${REGISTRY:-docker.io}/lib/x:$TARGETARCH\n";
    let plan = plan(text);
    assert_eq!(plan.stages[0].base, Base::Image("alpine:1.0".into()));
    let arch = Platform::host().architecture;
    assert_eq!(
        plan.stages[1].base,
        Base::Image(format!("docker.io/lib/x:{arch}"))
    );
    let options = PlanOptions {
        build_args: BTreeMap::from([
            ("VERSION".to_owned(), "2.0".to_owned()),
            ("UNUSED".to_owned(), "x".to_owned()),
        ]),
        ..Default::default()
    };
    let plan = plan_with(text, &options).unwrap();
    assert_eq!(plan.stages[0].base, Base::Image("alpine:2.0".into()));
    assert_eq!(plan.unused_build_args, ["UNUSED"]);
    assert!(
        plan.global_args
            .iter()
            .any(|(k, v)| k == "TARGETSTAGE" && v == "default")
    );
}

#[test]
fn platform_flag_is_expanded() {
    let plan = plan("FROM --platform=$BUILDPLATFORM alpine AS b\n");
    assert_eq!(
        plan.stages[0].platform.as_deref(),
        Some(Platform::host().to_string().as_str())
    );
}

#[test]
fn copy_from_index_image_and_mount_from() {
    let plan = plan(
        "FROM a\nFROM b\nCOPY --from=0 /x /x\nCOPY --from=alpine:3 /y /y\nRUN --mount=type=bind,from=0,target=/m true\n",
    );
    let deps: Vec<_> = plan.stages[1]
        .dependencies
        .iter()
        .map(|d| (d.stage, d.kind.clone()))
        .collect();
    assert_eq!(
        deps,
        [
            (0, DependencyKind::CopyFrom),
            (0, DependencyKind::MountFrom)
        ]
    );
    assert_eq!(plan.stages[1].external_images, ["alpine:3"]);
}

#[test]
fn graph_errors() {
    let none = PlanOptions::default();
    assert!(
        error("FROM a AS s0\nCOPY --from=s0 f /\n", &none)
            .ends_with("circular dependency detected on stage: s0")
    );
    assert!(error("FROM a AS s0\nCOPY --from=s2 f /\nFROM a AS s1\nCOPY --from=s0 f /\nFROM a AS s2\nCOPY --from=s1 f /\n", &none)
        .ends_with("circular dependency detected on stage: s0"));
    assert!(error("FROM a\nCOPY --from=5 f /\n", &none).ends_with("invalid stage index 5"));
    assert!(
        error("FROM a\nCOPY --from=$X f /\n", &none)
            .contains("variable expansion is not supported for --from")
    );
    assert!(
        error("ARG BASE\nFROM $BASE\n", &none).ends_with("base name ($BASE) should not be blank")
    );
    // Errors carry the Dockerfile location.
    assert!(error("FROM a\nCOPY --from=5 f /\n", &none).starts_with("Dockerfile:2:"));
}

#[test]
fn independent_stages_come_before_the_stage_that_joins_them() {
    let plan = plan(
        "FROM a AS one\nFROM b AS two\nFROM c\nCOPY --from=two /t /t\nCOPY --from=one /o /o\n",
    );
    assert_eq!(plan.order, [0, 1, 2]);
    let plan = plan_with(
        "FROM a AS late\nCOPY --from=early /x /x\nFROM b AS early\n",
        &PlanOptions {
            target: Some("late".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(plan.needed_names(), ["early", "late"]);
}

#[test]
fn invalid_image_references_fail_even_in_stages_that_are_not_needed() {
    let options = PlanOptions::default();
    let message = error(
        "FROM Alpine:3.20 AS unused\nFROM busybox\nRUN true\n",
        &options,
    );
    assert!(message.contains("Dockerfile:1"), "{message}");
    assert!(
        message.contains("failed to parse stage name \"Alpine:3.20\"")
            && message.contains("lowercase"),
        "{message}"
    );
    // After expansion: an empty tag variable leaves `docker:-dind`.
    let message = error(
        "ARG TAG=\nFROM docker:${TAG}-dind AS dind\nFROM busybox\n",
        &options,
    );
    assert!(message.contains("\"docker:-dind\""), "{message}");
    // `COPY --from` an image is checked too.
    let message = error("FROM busybox\nCOPY --from=Bad:1 /x /x\n", &options);
    assert!(message.contains("Dockerfile:2"), "{message}");
    // Valid references plan.
    plan("FROM localhost:5000/team/app:1.0 AS a\nFROM a\nCOPY --from=busybox:1.36 /bin/sh /sh\n");
}

#[test]
fn target_and_build_platforms_give_the_platform_args_and_stage_platforms() {
    let arm64 = Platform::parse("linux/arm64").unwrap();
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let options = PlanOptions {
        platform: Some(arm64.clone()),
        build_platform: Some(amd64.clone()),
        ..Default::default()
    };
    let plan = plan_with(
        "FROM --platform=$BUILDPLATFORM alpine AS build\nFROM --platform=linux/arm/v7 alpine AS pinned\nFROM alpine\nCOPY --from=build /a /a\nCOPY --from=pinned /b /b\n",
        &options,
    )
    .unwrap();
    let arg = |name: &str| {
        plan.global_args
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(arg("TARGETPLATFORM"), Some("linux/arm64"));
    assert_eq!(arg("TARGETARCH"), Some("arm64"));
    assert_eq!(arg("BUILDPLATFORM"), Some("linux/amd64"));
    assert_eq!(arg("BUILDARCH"), Some("amd64"));
    assert_eq!(plan.stages[0].image_platform, amd64);
    assert_eq!(
        plan.stages[1].image_platform,
        Platform::parse("linux/arm/v7").unwrap()
    );
    assert_eq!(plan.stages[2].image_platform, arm64);
    assert_eq!(plan.target_platform, arm64);
}

#[test]
fn an_invalid_from_platform_is_located() {
    let message = error(
        "ARG P=linux\nFROM --platform=$P alpine\n",
        &PlanOptions::default(),
    );
    assert!(
        message.contains("failed to parse platform linux"),
        "{message}"
    );
}

#[test]
fn named_contexts_replace_stages_and_images_by_their_normalized_names() {
    let options = PlanOptions {
        named_contexts: ["alpine", "builder", "ghcr.io/o/tools:1", "context"]
            .map(String::from)
            .into(),
        ..Default::default()
    };
    let text = "\
FROM golang:1.22 AS deps
FROM golang:1.22 AS builder
COPY --from=deps /go /go
RUN go build -o /app
FROM docker.io/library/alpine:latest AS base
FROM alpine:3.20 AS pinned
FROM base
COPY --from=builder /app /app
COPY --from=ghcr.io/o/tools:1 /bin/tool /bin/tool
COPY --from=busybox /bin/sh /bin/sh
RUN --mount=from=alpine,target=/a true
";
    let plan = plan_with(text, &options).unwrap();
    // The stage `builder` is replaced: its instructions do not run, so `deps` is not needed.
    assert_eq!(plan.stages[1].base, Base::Context("builder".into()));
    assert!(plan.stages[1].replaced);
    assert!(plan.stages[1].dependencies.is_empty());
    assert!(!plan.stages[0].needed);
    // `FROM docker.io/library/alpine:latest` is the context `alpine`; `alpine:3.20` is not.
    assert_eq!(plan.stages[2].base, Base::Context("alpine".into()));
    assert!(!plan.stages[2].replaced);
    assert_eq!(plan.stages[3].base, Base::Image("alpine:3.20".into()));
    assert_eq!(plan.stages[4].external_images, ["busybox"]);
    assert_eq!(
        plan.stages[4].external_contexts,
        ["ghcr.io/o/tools:1", "alpine"]
    );
    assert_eq!(
        plan.named_context("alpine:latest").as_deref(),
        Some("alpine")
    );
    assert_eq!(plan.named_context("alpine:3.20"), None);
    insta::assert_snapshot!(plan.describe(), @r"
    skip   deps             from image golang:1.22
    build  builder          from named context builder (replaces the stage)
    build  base             from named context alpine
    skip   pinned           from image alpine:3.20
    target stage-4          from stage base, copies from builder (line 8), image busybox, named context ghcr.io/o/tools:1, named context alpine
    ");
    // A stage called `context` is never replaced (BuildKit reserves the name), and a replaced
    // stage's FROM must still be a valid reference.
    let plan = plan_with("FROM busybox AS context\n", &options).unwrap();
    assert_eq!(plan.stages[0].base, Base::Image("busybox".into()));
    assert!(
        error("FROM Alpine AS builder\n", &options).contains("failed to parse stage name"),
        "an invalid FROM of a replaced stage is an error"
    );
}
