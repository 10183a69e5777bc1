//! BuildKit's `targets` and `outline` subrequests, which `docker buildx build --call=targets`
//! and `--call=outline` ask the Dockerfile frontend for: the stages one can build, and what
//! building one takes (its build arguments with their values and descriptions, the secrets and
//! SSH agents its `RUN --mount`s use). The JSON is the frontend's (`result.json`: field names,
//! Go's encoding, the Dockerfile in `sources`); rendering the text is the command line's.
//!
//! A description is BuildKit's doc comment: a comment line directly above the `FROM` or `ARG`
//! that starts with the stage's or argument's name (`# build compiles the server`).

use crate::{Base, DependencyKind, Plan, PlanOptions, Scope};
use serde::{Serialize, Serializer};
use stagecraft_dockerfile::mounts::{MountType, parse_mount_with};
use stagecraft_dockerfile::{CommandKind, Dockerfile, Location};
use stagecraft_shell::Lexer;
use std::collections::{BTreeMap, BTreeSet};

/// Where something is in the Dockerfile: one range per line it spans, as BuildKit's
/// `pb.Location` (the source index is always the one Dockerfile, 0, which Go leaves out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLocation {
    /// The lines.
    pub ranges: Vec<SourceRange>,
}

/// One line of a [`SourceLocation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRange {
    /// Where it starts.
    pub start: SourcePosition,
    /// Where it ends.
    pub end: SourcePosition,
}

/// A line (1-based; BuildKit gives no column for instructions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcePosition {
    /// The line.
    pub line: usize,
}

impl SourceLocation {
    fn of(location: &Location) -> SourceLocation {
        let end = location.end_line.max(location.start_line);
        SourceLocation {
            ranges: (location.start_line..=end)
                .map(|line| SourceRange {
                    start: SourcePosition { line },
                    end: SourcePosition { line },
                })
                .collect(),
        }
    }

    fn first_line(&self) -> usize {
        self.ranges.first().map_or(0, |r| r.start.line)
    }
}

/// The `targets` answer: every stage.
#[derive(Debug, Clone, Serialize)]
pub struct TargetList {
    /// The stages, in file order.
    pub targets: Vec<Target>,
    /// The Dockerfile (base64 in JSON, as Go writes bytes).
    #[serde(serialize_with = "base64_list")]
    pub sources: Vec<Vec<u8>>,
}

/// One stage of a [`TargetList`].
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The stage's name (none for an unnamed stage).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Whether it is what a build without `--target` builds (the last stage).
    #[serde(skip_serializing_if = "is_false")]
    pub default: bool,
    /// Its doc comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its base as written (`golang:${GO_VERSION}`, a stage, `scratch`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub base: String,
    /// `FROM --platform=` as written.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub platform: String,
    /// The `FROM` instruction.
    pub location: SourceLocation,
}

/// The `outline` answer for one target.
#[derive(Debug, Clone, Serialize)]
pub struct Outline {
    /// The target stage's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its doc comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The build arguments it uses, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<OutlineArg>,
    /// The secrets its `RUN --mount=type=secret`s use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<OutlineMount>,
    /// The SSH agents its `RUN --mount=type=ssh`s use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<OutlineMount>,
    /// The Dockerfile (base64 in JSON).
    #[serde(serialize_with = "base64_list", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Vec<u8>>,
}

/// A build argument of an [`Outline`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutlineArg {
    /// The name.
    pub name: String,
    /// Its doc comment.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The value it gets: the `--build-arg`, else its default expanded.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The `ARG` that declares it.
    pub location: SourceLocation,
}

/// A secret or SSH agent of an [`Outline`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutlineMount {
    /// Its id.
    pub name: String,
    /// Whether the build fails without it (`required=true`).
    #[serde(skip_serializing_if = "is_false")]
    pub required: bool,
    /// The first `RUN` that mounts it.
    pub location: SourceLocation,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn base64_list<S: Serializer>(sources: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    serializer.collect_seq(
        sources
            .iter()
            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes)),
    )
}

/// The doc comment among `comments` (the lines directly above an instruction) for `name`: the
/// first line that starts with the name and a space, without them.
fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    comments
        .iter()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_default()
        .to_owned()
}

/// The comments above the instruction at `location`.
fn comments_at<'f>(file: &'f Dockerfile, location: &Location) -> &'f [String] {
    file.instructions
        .iter()
        .find(|i| i.start_line == location.start_line)
        .map_or(&[], |i| i.comments.as_slice())
}

/// Every stage of `file`, as `--call=targets` lists them.
pub fn list_targets(file: &Dockerfile, plan: &Plan) -> TargetList {
    let last = plan.stages.len().saturating_sub(1);
    TargetList {
        targets: plan
            .stages
            .iter()
            .map(|stage| {
                let name = stage.stage.name.clone().unwrap_or_default();
                Target {
                    description: doc_comment(comments_at(file, &stage.stage.location), &name),
                    name,
                    default: stage.stage.index == last,
                    base: stage.stage.base.value.clone(),
                    platform: stage
                        .stage
                        .platform
                        .as_ref()
                        .map(|p| p.value.clone())
                        .unwrap_or_default(),
                    location: SourceLocation::of(&stage.stage.location),
                }
            })
            .collect(),
        sources: vec![file.source.text().as_bytes().to_vec()],
    }
}

/// What BuildKit knows of one argument while it converts a stage.
#[derive(Debug, Clone)]
struct ArgInfo {
    value: String,
    description: String,
    /// Other global arguments its default used.
    uses: BTreeSet<String>,
    location: SourceLocation,
    /// Its place among the declarations of its `ARG` (one instruction may declare several).
    position: usize,
}

/// The arguments a stage knows and uses, and the mounts it needs.
#[derive(Debug, Clone, Default)]
struct StageOutline {
    known: BTreeMap<String, ArgInfo>,
    used: BTreeSet<String>,
    secrets: BTreeMap<String, (bool, SourceLocation)>,
    ssh: BTreeMap<String, (bool, SourceLocation)>,
    /// The variables its instructions see at its end (ARGs and ENVs; a base image's ENV is
    /// not read, since the outline fetches no image).
    scope: Scope,
}

/// What building the target of `plan` takes (`--call=outline`): the arguments its stages use
/// (those in its `FROM`s and those its stages declare, with the stages it builds on or copies
/// from), with the values `options` give them; the secrets and SSH agents they mount.
pub fn outline(file: &Dockerfile, plan: &Plan, options: &PlanOptions) -> Outline {
    let lexer = Lexer::new(plan.escape).with_skip_unset_env(true);
    let mut global: BTreeMap<String, ArgInfo> = BTreeMap::new();
    let mut positions: BTreeMap<usize, usize> = BTreeMap::new();
    for arg in &plan.meta_args {
        let position = positions.entry(arg.location.start_line).or_default();
        global.insert(
            arg.name.clone(),
            ArgInfo {
                value: arg.value.clone().unwrap_or_default(),
                description: doc_comment(comments_at(file, &arg.location), &arg.name),
                uses: arg.uses.clone(),
                location: SourceLocation::of(&arg.location),
                position: *position,
            },
        );
        *position += 1;
    }
    let global_values: BTreeMap<&str, &str> = plan
        .global_args
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    // Stages in file order: a stage builds only on earlier ones. `initial` is what a stage
    // starts from (BuildKit copies it from its base stage before converting anything), `done`
    // what it ends with.
    let mut initial: Vec<StageOutline> = Vec::with_capacity(plan.stages.len());
    let mut done: Vec<StageOutline> = Vec::with_capacity(plan.stages.len());
    for stage in &plan.stages {
        let mut start = match stage.base {
            Base::Stage(base) => StageOutline {
                scope: done[base].scope.clone(),
                ..initial[base].clone()
            },
            _ => StageOutline {
                known: global.clone(),
                ..StageOutline::default()
            },
        };
        start.used.extend(stage.from_args.iter().cloned());
        initial.push(start.clone());
        let mut current = start;
        for command in &stage.stage.commands {
            match &command.kind {
                CommandKind::Arg(declarations) => {
                    let comments = comments_at(file, &command.location);
                    for (position, declaration) in declarations.iter().enumerate() {
                        let name = &declaration.name;
                        let value = match (options.build_args.get(name), &declaration.default) {
                            (Some(value), _) => Some(value.clone()),
                            (None, Some(default)) => Some(
                                lexer
                                    .process_word(default, &current.scope)
                                    .unwrap_or_else(|_| default.clone()),
                            ),
                            // Inherited from the global scope: its global description stays.
                            (None, None) if global_values.contains_key(name.as_str()) => {
                                current.used.insert(name.clone());
                                current.scope.set(name, global_values[name.as_str()]);
                                continue;
                            }
                            (None, None) => None,
                        };
                        if let Some(value) = &value {
                            current.scope.set(name, value);
                        }
                        current.known.insert(
                            name.clone(),
                            ArgInfo {
                                value: value.unwrap_or_default(),
                                description: doc_comment(comments, name),
                                uses: BTreeSet::new(),
                                location: SourceLocation::of(&command.location),
                                position,
                            },
                        );
                        current.used.insert(name.clone());
                    }
                }
                CommandKind::Env(pairs) => {
                    for pair in pairs {
                        let value = lexer
                            .process_word(&pair.value.value, &current.scope)
                            .unwrap_or_else(|_| pair.value.value.clone());
                        current.scope.set(&pair.key.value, &value);
                    }
                }
                CommandKind::Run(run) => {
                    for mount in &run.mounts {
                        let scope = &current.scope;
                        let Ok(spec) = parse_mount_with(&mount.value, &mut |v| {
                            lexer.process_word(v, scope).map_err(|e| e.to_string())
                        }) else {
                            continue;
                        };
                        let location = SourceLocation::of(&command.location);
                        match spec.kind {
                            MountType::Secret => {
                                current
                                    .secrets
                                    .entry(spec.secret_id())
                                    .or_insert((spec.required, location));
                            }
                            MountType::Ssh => {
                                current
                                    .ssh
                                    .entry(spec.id.clone().unwrap_or_else(|| "default".to_owned()))
                                    .or_insert((spec.required, location));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        done.push(current);
    }

    let mut visited = Visited::default();
    collect(plan, &done, plan.target, &mut visited);
    let mut args = visited.args;
    args.sort_by_key(|(arg, position)| (arg.location.first_line(), *position));
    let by_line = |mounts: Vec<OutlineMount>| {
        let mut mounts = mounts;
        mounts.sort_by_key(|m| m.location.first_line());
        mounts
    };
    let target = &plan.stages[plan.target];
    let name = target.stage.name.clone().unwrap_or_default();
    Outline {
        description: doc_comment(comments_at(file, &target.stage.location), &name),
        name,
        args: args.into_iter().map(|(arg, _)| arg).collect(),
        secrets: by_line(visited.secrets),
        ssh: by_line(visited.ssh),
        sources: vec![file.source.text().as_bytes().to_vec()],
    }
}

/// What [`collect`] gathered, each name once (the first stage to use it wins).
#[derive(Default)]
struct Visited {
    arg_names: BTreeSet<String>,
    args: Vec<(OutlineArg, usize)>,
    secret_names: BTreeSet<String>,
    secrets: Vec<OutlineMount>,
    ssh_names: BTreeSet<String>,
    ssh: Vec<OutlineMount>,
}

/// Gathers a stage's arguments and mounts, then its base stage's, then those of the stages it
/// copies or mounts from, as BuildKit's outline walks them.
fn collect(plan: &Plan, done: &[StageOutline], index: usize, visited: &mut Visited) {
    let stage = &done[index];
    // An argument used brings the global arguments its default used.
    let mut used = BTreeSet::new();
    let mut pending: Vec<&String> = stage.used.iter().collect();
    while let Some(name) = pending.pop() {
        if used.insert(name.clone())
            && let Some(info) = stage.known.get(name)
        {
            pending.extend(info.uses.iter());
        }
    }
    for name in &used {
        if let Some(info) = stage.known.get(name)
            && visited.arg_names.insert(name.clone())
        {
            visited.args.push((
                OutlineArg {
                    name: name.clone(),
                    description: info.description.clone(),
                    value: info.value.clone(),
                    location: info.location.clone(),
                },
                info.position,
            ));
        }
    }
    for (name, (required, location)) in &stage.secrets {
        if visited.secret_names.insert(name.clone()) {
            visited.secrets.push(OutlineMount {
                name: name.clone(),
                required: *required,
                location: location.clone(),
            });
        }
    }
    for (name, (required, location)) in &stage.ssh {
        if visited.ssh_names.insert(name.clone()) {
            visited.ssh.push(OutlineMount {
                name: name.clone(),
                required: *required,
                location: location.clone(),
            });
        }
    }
    let planned = &plan.stages[index];
    if let Base::Stage(base) = planned.base {
        collect(plan, done, base, visited);
    }
    let mut copied: Vec<usize> = Vec::new();
    for dependency in &planned.dependencies {
        if dependency.kind != DependencyKind::Base && !copied.contains(&dependency.stage) {
            copied.push(dependency.stage);
            collect(plan, done, dependency.stage, visited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str, options: &PlanOptions) -> (Dockerfile, Plan) {
        let file = stagecraft_dockerfile::parse_str("Dockerfile", text).unwrap();
        let plan = Plan::new(&file, options).unwrap();
        (file, plan)
    }

    const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
# GO_VERSION sets the Go toolchain
ARG GO_VERSION=1.22
ARG BASE=golang:${GO_VERSION}
# UNUSED is never used
ARG UNUSED=1

# build compiles the server
FROM ${BASE} AS build
# VERSION stamps the binary
ARG VERSION=dev REVISION
ARG GO_VERSION
ENV OUT=/out
ARG TARGET=$OUT/server
RUN --mount=type=secret,id=token,required=true --mount=type=ssh make

FROM build AS test
ARG TEST_FLAGS="-race"
RUN --mount=type=secret,id=token --mount=type=secret,id=npmrc go test

# docs is not built by default
FROM busybox AS docs
ARG DOCS=1

FROM scratch
COPY --from=test /out /
"#;

    #[test]
    fn targets_list_every_stage_with_its_doc_comment() {
        let (file, plan) = plan(DOCKERFILE, &PlanOptions::default());
        let list = list_targets(&file, &plan);
        let rows: Vec<(&str, bool, &str, &str)> = list
            .targets
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.default,
                    t.description.as_str(),
                    t.base.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("build", false, "compiles the server", "${BASE}"),
                ("test", false, "", "build"),
                ("docs", false, "is not built by default", "busybox"),
                ("", true, "", "scratch"),
            ]
        );
        let json: serde_json::Value = serde_json::to_value(&list).unwrap();
        assert_eq!(
            json["targets"][0]["location"],
            serde_json::json!({"ranges": [{"start": {"line": 9}, "end": {"line": 9}}]})
        );
        assert!(json["targets"][0].get("default").is_none());
        assert_eq!(json["targets"][3]["default"], true);
        // Go writes bytes as base64.
        assert!(
            json["sources"][0]
                .as_str()
                .unwrap()
                .starts_with("IyBzeW50YXg9")
        );
    }

    #[test]
    fn outline_lists_what_the_target_and_the_stages_it_needs_use() {
        let options = PlanOptions {
            target: Some("test".to_owned()),
            build_args: [("REVISION".to_owned(), "abc".to_owned())].into(),
            ..PlanOptions::default()
        };
        let (file, plan) = plan(DOCKERFILE, &options);
        let outline = outline(&file, &plan, &options);
        assert_eq!(
            (outline.name.as_str(), outline.description.as_str()),
            ("test", "")
        );
        let args: Vec<(&str, &str, &str)> = outline
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str(), a.description.as_str()))
            .collect();
        assert_eq!(
            args,
            [
                // BASE's default uses GO_VERSION; the stage re-declares it bare, so it keeps
                // the global description and value.
                ("GO_VERSION", "1.22", "sets the Go toolchain"),
                ("BASE", "golang:1.22", ""),
                ("VERSION", "dev", "stamps the binary"),
                ("REVISION", "abc", ""),
                // Expanded in the stage: ENV before it counts.
                ("TARGET", "/out/server", ""),
                ("TEST_FLAGS", "-race", ""),
            ]
        );
        let secrets: Vec<(&str, bool)> = outline
            .secrets
            .iter()
            .map(|s| (s.name.as_str(), s.required))
            .collect();
        // The test stage's own first, then what its base needs; the first mount wins.
        assert!(secrets.contains(&("token", false)), "{secrets:?}");
        assert!(secrets.contains(&("npmrc", false)), "{secrets:?}");
        assert_eq!(secrets.len(), 2);
        assert_eq!(outline.ssh.len(), 1);
        assert_eq!(outline.ssh[0].name, "default");
    }

    #[test]
    fn outline_follows_copies_and_leaves_out_what_the_target_does_not_need() {
        let (file, plan) = plan(DOCKERFILE, &PlanOptions::default());
        let outline = outline(&file, &plan, &PlanOptions::default());
        let names: Vec<&str> = outline.args.iter().map(|a| a.name.as_str()).collect();
        // The final stage copies from test, which builds on build; docs and UNUSED are not
        // needed.
        assert_eq!(
            names,
            [
                "GO_VERSION",
                "BASE",
                "VERSION",
                "REVISION",
                "TARGET",
                "TEST_FLAGS"
            ]
        );
        assert_eq!(outline.name, "");
        let json = serde_json::to_value(&outline).unwrap();
        assert!(json.get("name").is_none());
        // REVISION has no value: the field is left out, as Go's omitempty does.
        assert!(json["args"][3].get("value").is_none(), "{json}");
    }
}
