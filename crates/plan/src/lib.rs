//! The build plan: what BuildKit's Dockerfile converter decides before it runs anything.
//!
//! From a parsed Dockerfile and the build options it resolves the global `ARG`s (with
//! `--build-arg` overrides and the predefined platform arguments), expands every `FROM`,
//! links stages to the stages they build on or copy from, rejects cycles, picks the target
//! stage and keeps only the stages the target needs — in an order where every stage comes after
//! its dependencies, so independent ones can run in parallel.
//!
//! ```
//! use stagecraft_plan::{Plan, PlanOptions};
//!
//! let file = stagecraft_dockerfile::parse_str(
//!     "Dockerfile",
//!     "FROM alpine AS build\nRUN make\nFROM alpine AS docs\nFROM scratch\nCOPY --from=build /app /app\n",
//! )?;
//! let plan = Plan::new(&file, &PlanOptions::default())?;
//! assert_eq!(plan.needed_names(), ["build", "stage-2"]);
//! assert_eq!(plan.skipped_names(), ["docs"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod platform;
mod scope;
pub mod subrequests;

pub use platform::predefined_args;
pub use scope::Scope;
pub use stagecraft_image::Platform;

use stagecraft_dockerfile::{
    Code, CommandKind, Diagnostic, Dockerfile, Span, Stage, Stages, Word, suggest,
};
use stagecraft_shell::{Env, Lexer};
use std::collections::{BTreeMap, BTreeSet};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--target`: the stage to build (default: the last one).
    pub target: Option<String>,
    /// `--build-arg NAME=VALUE` values.
    pub build_args: BTreeMap<String, String>,
    /// The platform to build for: `TARGETPLATFORM`, and the platform of every stage without
    /// a `FROM --platform` (default: this machine's).
    pub platform: Option<Platform>,
    /// The platform the build runs on: `BUILDPLATFORM` (default: this machine's).
    pub build_platform: Option<Platform>,
    /// The names of the named build contexts (`--build-context NAME=…`), each as
    /// [`context_name`] normalizes it. A stage of that name is replaced by the context, and
    /// `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME` that name no stage take it
    /// instead of an image.
    pub named_contexts: BTreeSet<String>,
}

/// The name a named build context is known by, as buildx and BuildKit normalize it: the
/// reference's short form without a `:latest` tag, so that `alpine`, `alpine:latest` and
/// `docker.io/library/alpine` name the same context, and `alpine:3.20` another one.
///
/// ```
/// use stagecraft_plan::context_name;
///
/// assert_eq!(context_name("docker.io/library/alpine:latest")?, "alpine");
/// assert_eq!(context_name("alpine:3.20")?, "alpine:3.20");
/// assert_eq!(context_name("ghcr.io/o/app")?, "ghcr.io/o/app");
/// assert!(context_name("Has Space").is_err());
/// # Ok::<(), stagecraft_image::ReferenceError>(())
/// ```
pub fn context_name(name: &str) -> Result<String, stagecraft_image::ReferenceError> {
    let familiar = stagecraft_image::Reference::parse(name)?.familiar();
    // BuildKit trims the suffix once (`strings.TrimSuffix`).
    Ok(match familiar.strip_suffix(":latest") {
        Some(short) => short.to_owned(),
        None => familiar,
    })
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A problem at a place in the Dockerfile: a syntax error, or a reference, an expansion
    /// or a platform that cannot be planned.
    #[error("{0}")]
    Dockerfile(#[from] Diagnostic),
    /// `--target` names no stage.
    #[error("target stage {} could not be found{}", stagecraft_dockerfile::go_quote(.target), match .suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None if .stages.is_empty() => " (no stage is named: name one with FROM … AS NAME)".to_owned(),
        None => format!("; the named stages are {}", .stages.join(", ")),
    })]
    UnknownTarget {
        /// What was asked for.
        target: String,
        /// The closest stage name, if any.
        suggestion: Option<String>,
        /// Every named stage, in file order.
        stages: Vec<String>,
    },
}

impl PlanError {
    /// A multi-line rendering for terminals (source line and caret when there is a location).
    pub fn render(&self) -> String {
        match self {
            PlanError::Dockerfile(e) => e.render(),
            other => format!("error: {other}"),
        }
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty filesystem.
    Scratch,
    /// An earlier stage of this Dockerfile.
    Stage(usize),
    /// An image reference, variables expanded.
    Image(String),
    /// A named build context (`--build-context NAME=…`), by its [`context_name`]: `FROM NAME`
    /// where no stage is called NAME, or a stage of that name, which the context replaces.
    Context(String),
}

/// Why one stage needs another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyKind {
    /// `FROM <stage>`.
    Base,
    /// `COPY --from=<stage>`.
    CopyFrom,
    /// `RUN --mount=…,from=<stage>`.
    MountFrom,
}

/// An edge of the stage graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The stage depended upon.
    pub stage: usize,
    /// How.
    pub kind: DependencyKind,
    /// The 1-based line that creates the dependency.
    pub line: usize,
}

/// One stage, resolved.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// The stage as parsed.
    pub stage: Stage,
    /// `name`, or `stage-N` for unnamed stages (as BuildKit shows them).
    pub display_name: String,
    /// What it starts from.
    pub base: Base,
    /// `--platform`, expanded.
    pub platform: Option<String>,
    /// The platform the stage is built for: its `--platform`, else the build's target platform.
    /// Its base image is resolved for it and its `RUN`s run as it (emulated when foreign).
    pub image_platform: Platform,
    /// The stages it needs, in instruction order.
    pub dependencies: Vec<Dependency>,
    /// Images used by `COPY --from=` or `RUN --mount=…,from=` that are not stages.
    pub external_images: Vec<String>,
    /// Named build contexts used by `COPY --from=` or `RUN --mount=…,from=` that are not
    /// stages, by their [`context_name`].
    pub external_contexts: Vec<String>,
    /// Whether a named build context of the stage's name replaces the whole stage, as in
    /// BuildKit: its base is [`Base::Context`], and its instructions do not run (nor are the
    /// stages they copy from needed).
    pub replaced: bool,
    /// Whether the target needs it.
    pub needed: bool,
    /// The global arguments its `FROM` line uses (in the base name or `--platform`).
    pub from_args: BTreeSet<String>,
}

/// An `ARG` before the first `FROM`, resolved.
#[derive(Debug, Clone)]
pub struct MetaArg {
    /// The name.
    pub name: String,
    /// The value: the `--build-arg`, else the default expanded; `None` when it has neither.
    pub value: Option<String>,
    /// The global arguments its default expanded (an argument built from others uses them).
    pub uses: BTreeSet<String>,
    /// The `ARG` instruction.
    pub location: stagecraft_dockerfile::Location,
}

/// A build plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every stage, in file order.
    pub stages: Vec<StagePlan>,
    /// Index of the stage being built.
    pub target: usize,
    /// The needed stages, dependencies first (a stable topological order).
    pub order: Vec<usize>,
    /// Global arguments after overrides: predefined ones, then the `ARG`s before `FROM`.
    pub global_args: Vec<(String, String)>,
    /// The `ARG`s before the first `FROM`, each declaration in file order.
    pub meta_args: Vec<MetaArg>,
    /// `--build-arg`s that no `ARG` declares (BuildKit warns about them).
    pub unused_build_args: Vec<String>,
    /// The escape character, for expanding words later.
    pub escape: char,
    /// The platform built for (`TARGETPLATFORM`).
    pub target_platform: Platform,
    /// The platform built on (`BUILDPLATFORM`).
    pub build_platform: Platform,
    /// The named build contexts' names ([`PlanOptions::named_contexts`]).
    pub named_contexts: BTreeSet<String>,
}

impl Plan {
    /// Plans the build of `file`.
    pub fn new(file: &Dockerfile, options: &PlanOptions) -> Result<Plan, PlanError> {
        let Stages { meta_args, stages } = file.stages()?;
        if stages.is_empty() {
            return Err(Diagnostic::new(
                Code::Stage,
                &file.source,
                Span::default(),
                "dockerfile contains no stages to build",
            )
            .into());
        }
        let lexer = Lexer::new(file.escape);
        let target_platform = options.platform.clone().unwrap_or_else(Platform::host);
        let build_platform = options
            .build_platform
            .clone()
            .unwrap_or_else(Platform::host);
        let target_name = options
            .target
            .clone()
            .or_else(|| stages.last().and_then(|s| s.name.clone()))
            .unwrap_or_else(|| "default".to_owned());

        let mut global = Env::new();
        let mut global_args: Vec<(String, String)> = Vec::new();
        for (name, value) in predefined_args(&build_platform, &target_platform, &target_name) {
            let value = options.build_args.get(name).cloned().unwrap_or(value);
            set_global(&mut global, &mut global_args, name, value);
        }
        let mut declared: BTreeSet<String> = BTreeSet::new();
        let mut meta_arg_plans: Vec<MetaArg> = Vec::new();
        for command in &meta_args {
            let CommandKind::Arg(declarations) = &command.kind else {
                continue;
            };
            for declaration in declarations {
                declared.insert(declaration.name.clone());
                let (value, mut uses) = match (
                    options.build_args.get(&declaration.name),
                    &declaration.default,
                ) {
                    (Some(value), _) => (Some(value.clone()), BTreeSet::new()),
                    (None, Some(default)) => {
                        let expansion =
                            lexer
                                .process_word_with_matches(default, &global)
                                .map_err(|e| {
                                    located(file, Code::Expansion, declaration.span, e.to_string())
                                })?;
                        (Some(expansion.result), expansion.matched)
                    }
                    (None, None) => (None, BTreeSet::new()),
                };
                // `ARG V=$V-suffix` builds on the earlier V: what that one used, this uses.
                if uses.remove(&declaration.name)
                    && let Some(earlier) = meta_arg_plans
                        .iter()
                        .rev()
                        .find(|a| a.name == declaration.name)
                {
                    uses.extend(earlier.uses.iter().cloned());
                }
                if let Some(value) = &value {
                    set_global(
                        &mut global,
                        &mut global_args,
                        &declaration.name,
                        value.clone(),
                    );
                }
                meta_arg_plans.push(MetaArg {
                    name: declaration.name.clone(),
                    value,
                    uses,
                    location: command.location.clone(),
                });
            }
        }
        for stage in &stages {
            for command in &stage.commands {
                if let CommandKind::Arg(declarations) = &command.kind {
                    declared.extend(declarations.iter().map(|d| d.name.clone()));
                }
            }
        }

        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut planned: Vec<StagePlan> = Vec::with_capacity(stages.len());
        for stage in &stages {
            let base_expansion = lexer
                .process_word_with_matches(&stage.base.value, &global)
                .map_err(|e| located(file, Code::Expansion, stage.base.span, e.to_string()))?;
            let mut from_args = base_expansion.matched;
            let base_name = base_expansion.result;
            if base_name.is_empty() {
                return Err(located(
                    file,
                    Code::Stage,
                    stage.base.span,
                    format!("base name ({}) should not be blank", stage.base.value),
                )
                .with_hint("give the ARG used in FROM a default, or pass it with --build-arg")
                .into());
            }
            let platform = match &stage.platform {
                None => None,
                Some(word) => {
                    let expansion = lexer
                        .process_word_with_matches(&word.value, &global)
                        .map_err(|e| located(file, Code::Expansion, word.span, e.to_string()))?;
                    from_args.extend(expansion.matched);
                    let value = expansion.result;
                    if value.is_empty() {
                        return Err(located(
                            file,
                            Code::Instruction,
                            word.span,
                            format!("empty platform value from expression {}", word.value),
                        )
                        .into());
                    }
                    Some(value)
                }
            };
            let image_platform = match (&platform, &stage.platform) {
                (Some(value), Some(word)) => Platform::parse(value).map_err(|e| {
                    located(
                        file,
                        Code::Instruction,
                        word.span,
                        format!("failed to parse platform {value}: {}", e.reason),
                    )
                    .with_hint("write os/arch[/variant], e.g. linux/arm64, or $BUILDPLATFORM")
                })?,
                _ => target_platform.clone(),
            };
            // BuildKit looks the stage's own name up first: a context of that name replaces
            // the stage whatever its FROM says (still checked below, as BuildKit parses it).
            let replacement = stage
                .name
                .as_deref()
                .filter(|name| !RESERVED_STAGE_NAMES.contains(name))
                .and_then(|name| named_context(&options.named_contexts, name));
            let (base, dependencies) = if let Some(context) = &replacement {
                if base_name != "scratch" && !names.contains_key(&base_name) {
                    check_reference(file, &stage.base, &base_name)?;
                }
                (Base::Context(context.clone()), Vec::new())
            } else if base_name == "scratch" {
                (Base::Scratch, Vec::new())
            } else if let Some(&index) = names.get(&base_name) {
                let line = stage.location.start_line;
                (
                    Base::Stage(index),
                    vec![Dependency {
                        stage: index,
                        kind: DependencyKind::Base,
                        line,
                    }],
                )
            } else {
                // As BuildKit, every stage's base must be a valid reference before anything
                // runs, needed by the target or not.
                check_reference(file, &stage.base, &base_name)?;
                match named_context(&options.named_contexts, &base_name) {
                    Some(context) => (Base::Context(context), Vec::new()),
                    None => (Base::Image(base_name), Vec::new()),
                }
            };
            if let Some(name) = &stage.name {
                names.insert(name.clone(), stage.index);
            }
            planned.push(StagePlan {
                display_name: stage
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("stage-{}", stage.index)),
                stage: stage.clone(),
                base,
                platform,
                image_platform,
                dependencies,
                external_images: Vec::new(),
                external_contexts: Vec::new(),
                replaced: replacement.is_some(),
                needed: false,
                from_args,
            });
        }

        // `COPY --from` and `RUN --mount from=` may name any stage, even a later one;
        // cycles are rejected below.
        for index in 0..planned.len() {
            let mut extra = Vec::new();
            let mut images = Vec::new();
            let mut contexts = Vec::new();
            // A replaced stage's instructions never run.
            let commands = if planned[index].replaced {
                &[][..]
            } else {
                &planned[index].stage.commands[..]
            };
            for command in commands {
                let line = command.location.start_line;
                let sources: Vec<(Word, DependencyKind)> = match &command.kind {
                    CommandKind::Copy(copy) => copy
                        .from
                        .iter()
                        .map(|w| (w.clone(), DependencyKind::CopyFrom))
                        .collect(),
                    CommandKind::Run(run) => run
                        .mounts
                        .iter()
                        .map(|m| mount_from(file, m))
                        .filter_map(Result::transpose)
                        .map(|word| word.map(|w| (w, DependencyKind::MountFrom)))
                        .collect::<Result<_, _>>()?,
                    _ => Vec::new(),
                };
                for (word, kind) in sources {
                    match resolve_reference(file, &lexer, &word, &names, planned.len())? {
                        Some(stage) => extra.push(Dependency { stage, kind, line }),
                        None => {
                            check_reference(file, &word, &word.value)?;
                            match named_context(&options.named_contexts, &word.value) {
                                Some(context) => contexts.push(context),
                                None => images.push(word.value.clone()),
                            }
                        }
                    }
                }
            }
            planned[index].dependencies.extend(extra);
            planned[index].external_images = images;
            planned[index].external_contexts = contexts;
        }

        detect_cycles(file, &planned)?;

        let target = match &options.target {
            None => planned.len() - 1,
            Some(name) => names.get(&name.to_lowercase()).copied().ok_or_else(|| {
                let known: Vec<String> = names.keys().cloned().collect();
                PlanError::UnknownTarget {
                    target: name.clone(),
                    suggestion: suggest::closest_case_sensitive(name, &known),
                    stages: stages.iter().filter_map(|s| s.name.clone()).collect(),
                }
            })?,
        };

        let order = needed_in_order(&planned, target);
        for &index in &order {
            planned[index].needed = true;
        }
        let unused_build_args = options
            .build_args
            .keys()
            .filter(|k| !declared.contains(*k) && !platform::is_predefined(k))
            .cloned()
            .collect();
        Ok(Plan {
            stages: planned,
            target,
            order,
            global_args,
            meta_args: meta_arg_plans,
            unused_build_args,
            escape: file.escape,
            target_platform,
            build_platform,
            named_contexts: options.named_contexts.clone(),
        })
    }

    /// The named build context `reference` (a `FROM` or `--from` value that names no stage)
    /// stands for, by its [`context_name`]; `None` when it is an image.
    pub fn named_context(&self, reference: &str) -> Option<String> {
        named_context(&self.named_contexts, reference)
    }

    /// Display names of the needed stages, in build order.
    pub fn needed_names(&self) -> Vec<&str> {
        self.order
            .iter()
            .map(|&i| self.stages[i].display_name.as_str())
            .collect()
    }

    /// Display names of the stages the target does not need.
    pub fn skipped_names(&self) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|s| !s.needed)
            .map(|s| s.display_name.as_str())
            .collect()
    }

    /// A human-readable summary: one line per stage with its base, dependencies and fate.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for stage in &self.stages {
            let base = match &stage.base {
                Base::Scratch => "scratch".to_owned(),
                Base::Stage(i) => format!("stage {}", self.stages[*i].display_name),
                Base::Image(image) => format!("image {image}"),
                Base::Context(name) if stage.replaced => {
                    format!("named context {name} (replaces the stage)")
                }
                Base::Context(name) => format!("named context {name}"),
            };
            let mut needs: Vec<String> = stage
                .dependencies
                .iter()
                .filter(|d| d.kind != DependencyKind::Base)
                .map(|d| format!("{} (line {})", self.stages[d.stage].display_name, d.line))
                .collect();
            needs.extend(stage.external_images.iter().map(|i| format!("image {i}")));
            needs.extend(
                stage
                    .external_contexts
                    .iter()
                    .map(|c| format!("named context {c}")),
            );
            let fate = if stage.stage.index == self.target {
                "target"
            } else if stage.needed {
                "build"
            } else {
                "skip"
            };
            out.push_str(&format!(
                "{fate:<6} {:<16} from {base}{}{}\n",
                stage.display_name,
                stage
                    .platform
                    .as_ref()
                    .map(|p| format!(" [{p}]"))
                    .unwrap_or_default(),
                if needs.is_empty() {
                    String::new()
                } else {
                    format!(", copies from {}", needs.join(", "))
                },
            ));
        }
        out
    }
}

/// Sets a global argument in both the expansion environment and the ordered list.
fn set_global(env: &mut Env, args: &mut Vec<(String, String)>, key: &str, value: String) {
    env.set(key, value.clone());
    match args.iter_mut().find(|(name, _)| name == key) {
        Some(slot) => slot.1 = value,
        None => args.push((key.to_owned(), value)),
    }
}

/// Stage names BuildKit never looks a named context up for.
const RESERVED_STAGE_NAMES: [&str; 2] = ["scratch", "context"];

/// The named context among `contexts` (names as [`context_name`] gives them) that
/// `reference`, a `FROM` or `--from` value, names; an invalid reference names none.
///
/// ```
/// let contexts = ["alpine".to_owned()].into();
/// assert_eq!(stagecraft_plan::named_context(&contexts, "alpine:latest").as_deref(), Some("alpine"));
/// assert_eq!(stagecraft_plan::named_context(&contexts, "alpine:3"), None);
/// ```
pub fn named_context(contexts: &BTreeSet<String>, reference: &str) -> Option<String> {
    if contexts.is_empty() {
        return None;
    }
    context_name(reference)
        .ok()
        .filter(|name| contexts.contains(name))
}

fn located(file: &Dockerfile, code: Code, span: Span, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(code, &file.source, span, message)
}

/// The `from=` field of a `--mount` value, read as BuildKit's planner reads it (CSV fields,
/// no variables).
fn mount_from(file: &Dockerfile, mount: &Word) -> Result<Option<Word>, Diagnostic> {
    stagecraft_dockerfile::mounts::mount_from(&mount.value)
        .map(|from| {
            from.map(|value| Word {
                value,
                span: mount.span,
            })
        })
        .map_err(|e| {
            located(
                file,
                Code::Mount,
                mount.span,
                format!("--mount={}: {e}", mount.value),
            )
        })
}

/// Refuses an image reference that is not valid (`Alpine:3.20`, `docker:-dind`), at the word
/// that named it, with BuildKit's words ("failed to parse stage name").
fn check_reference(file: &Dockerfile, word: &Word, reference: &str) -> Result<(), Diagnostic> {
    match stagecraft_image::Reference::parse(reference) {
        Ok(_) => Ok(()),
        Err(error) => Err(located(
            file,
            Code::Stage,
            word.span,
            format!("failed to parse stage name {reference:?}: {error}"),
        )
        .with_hint(
            "an image reference is [REGISTRY/]REPOSITORY[:TAG][@DIGEST], the repository in lowercase; a stage is named with FROM … AS NAME",
        )),
    }
}

/// A `--from` value: a stage index, a stage name, or (`None`) an image.
fn resolve_reference(
    file: &Dockerfile,
    lexer: &Lexer,
    word: &Word,
    names: &BTreeMap<String, usize>,
    stage_count: usize,
) -> Result<Option<usize>, Diagnostic> {
    // BuildKit refuses variables here: the stage graph must be known before expansion.
    let expanded = lexer.process_word(&word.value, &Env::new()).ok();
    if expanded.as_deref() != Some(word.value.as_str()) {
        return Err(located(
            file,
            Code::Stage,
            word.span,
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
        ));
    }
    if let Ok(index) = word.value.parse::<i64>() {
        return match usize::try_from(index) {
            Ok(i) if i < stage_count => Ok(Some(i)),
            _ => Err(located(
                file,
                Code::Stage,
                word.span,
                format!("invalid stage index {index}"),
            )
            .with_hint(format!("stages are numbered 0 to {}", stage_count - 1))),
        };
    }
    Ok(names.get(&word.value.to_lowercase()).copied())
}

fn detect_cycles(file: &Dockerfile, stages: &[StagePlan]) -> Result<(), Diagnostic> {
    // Depth-first search with an explicit "on path" set, as BuildKit does.
    fn visit(
        stages: &[StagePlan],
        index: usize,
        visited: &mut Vec<bool>,
        on_path: &mut Vec<bool>,
    ) -> Option<usize> {
        if visited[index] {
            return None;
        }
        visited[index] = true;
        on_path[index] = true;
        for dependency in &stages[index].dependencies {
            if on_path[dependency.stage] {
                return Some(dependency.line);
            }
            if let Some(line) = visit(stages, dependency.stage, visited, on_path) {
                return Some(line);
            }
        }
        on_path[index] = false;
        None
    }
    let mut visited = vec![false; stages.len()];
    for (index, stage) in stages.iter().enumerate() {
        let mut on_path = vec![false; stages.len()];
        if let Some(line) = visit(stages, index, &mut visited, &mut on_path) {
            let span = stage
                .stage
                .commands
                .iter()
                .find(|c| c.location.start_line == line)
                .map_or(stage.stage.location.span, |c| c.location.span);
            return Err(located(
                file,
                Code::Stage,
                span,
                format!(
                    "circular dependency detected on stage: {}",
                    stage.display_name
                ),
            ));
        }
    }
    Ok(())
}

/// The stages `target` needs, each after its dependencies; ties keep file order.
fn needed_in_order(stages: &[StagePlan], target: usize) -> Vec<usize> {
    let mut needed = vec![false; stages.len()];
    let mut stack = vec![target];
    while let Some(index) = stack.pop() {
        if std::mem::replace(&mut needed[index], true) {
            continue;
        }
        stack.extend(stages[index].dependencies.iter().map(|d| d.stage));
    }
    // Kahn's algorithm, always taking the lowest-numbered stage whose dependencies are placed
    // (file order where the graph allows): linear in stages and edges, up to the heap.
    let mut waiting_on = vec![0usize; stages.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for index in (0..stages.len()).filter(|&i| needed[i]) {
        let mut seen = std::collections::BTreeSet::new();
        for dependency in &stages[index].dependencies {
            if seen.insert(dependency.stage) {
                waiting_on[index] += 1;
                dependents[dependency.stage].push(index);
            }
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..stages.len())
        .filter(|&i| needed[i] && waiting_on[i] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::new();
    while let Some(std::cmp::Reverse(next)) = ready.pop() {
        order.push(next);
        for &dependent in &dependents[next] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(std::cmp::Reverse(dependent));
            }
        }
    }
    debug_assert_eq!(
        order.len(),
        needed.iter().filter(|&&n| n).count(),
        "the graph has no cycles"
    );
    order
}
