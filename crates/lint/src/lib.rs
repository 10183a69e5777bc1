//! `stagecraft lint`: checks a Dockerfile against BuildKit's build checks (same names, messages
//! and semantics, `# check=` directive included), widely taught Dockerfile practices, and rules
//! about multi-stage builds and the build context that no other tool has.
//!
//! ```
//! use stagecraft_lint::{lint, render_text, LintOptions, Severity};
//!
//! let file = stagecraft_dockerfile::parse_str(
//!     "Dockerfile",
//!     "FROM alpine:3.20 AS Build\nRUN apk add curl\nUSER 1000\nCMD echo hi\n",
//! )?;
//! let findings = lint(&file, &LintOptions::default());
//! let ids: Vec<&str> = findings.iter().map(|f| f.rule.as_ref()).collect();
//! assert_eq!(ids, ["StageNameCasing", "ApkAddNoCache", "JSONArgsRecommended"]);
//! assert_eq!(findings[0].severity, Severity::Warning);
//! assert!(render_text(&findings).starts_with(
//!     "Dockerfile:1:21: warning[StageNameCasing]: Stage name 'Build' should be lowercase\n"
//! ));
//! # Ok::<(), stagecraft_dockerfile::ParseError>(())
//! ```
//!
//! Every rule has a page in `docs/rules/<id>.md` saying why it matters, with a bad and a good
//! example; [`Finding::url`] points there.
#![forbid(unsafe_code)]

mod checks;
mod config;
mod image;
mod image_checks;
mod model;
mod render;
mod rules;
mod script;
mod tools;

pub use image_checks::{BuiltFrom, CheckedImage, LayerSource, check_image};
pub use render::{Format, render, render_json, render_sarif, render_text};
pub use rules::{Origin, RULES, Rule, Severity, find_rule};

use config::CheckConfig;
use model::{Ctx, Model, Sink};
use serde::Serialize;
use stagecraft_dockerfile::{Arguments, Diagnostic, Dockerfile, Position, SourceFile};
use stagecraft_plan::{Plan, PlanError, PlanOptions};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

/// The build argument BuildKit reads as a `# check=` configuration that overrides the file's.
const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// What the build would be run with.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// The build context directory. Without it, the rules that look at files
    /// (`CopyIgnoredFile`, `MissingDockerignore`, `SecretFileInContext`) stay silent.
    pub context_dir: Option<PathBuf>,
    /// `--target`: then only the stages it needs are linted, as BuildKit does.
    pub target: Option<String>,
    /// `--build-arg NAME=VALUE` values (`BUILDKIT_DOCKERFILE_CHECK` replaces `# check=`).
    pub build_args: BTreeMap<String, String>,
    /// The names of the named build contexts (`--build-context NAME=…`), each as
    /// `stagecraft_plan::context_name` normalizes it: a stage of that name is replaced by the
    /// context, and `FROM NAME` and `COPY --from=NAME` use it, not an image or an undefined
    /// stage (`NAME`, `NAME:latest` and `docker.io/library/NAME` alike, as in BuildKit).
    pub build_contexts: BTreeSet<String>,
    /// Which rules run.
    pub rules: RuleSelection,
    /// The environment (`Env` of the config, as `(KEY, value)`) of base images at hand (the
    /// local store), by the reference a `FROM` names once its variables are expanded, as
    /// [`base_images`] lists them. With it a variable the image does not set is known to be
    /// unset, as BuildKit knows from the image it resolved; without it such a variable is
    /// unknown, and the rules that would need its value do not guess.
    pub image_env: BTreeMap<String, Vec<(String, String)>>,
    /// Whether the shell scripts of `RUN`s are checked by ShellCheck (off unless asked for).
    pub shellcheck: ShellCheck,
}

/// Whether and with which program `RUN` scripts are checked by ShellCheck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ShellCheck {
    /// Not checked.
    #[default]
    Off,
    /// With the `shellcheck` on `PATH`; an info finding says so when there is none.
    Auto,
    /// With this program.
    Program(PathBuf),
}

impl FromStr for ShellCheck {
    type Err = String;

    /// `auto`, `off`, or the path of a ShellCheck program.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "auto" => Ok(ShellCheck::Auto),
            "off" => Ok(ShellCheck::Off),
            "" => Err("use `auto`, `off` or the path of a shellcheck program".to_owned()),
            path => Ok(ShellCheck::Program(PathBuf::from(path))),
        }
    }
}

/// Which rules a lint run checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleSelection {
    /// Every rule (`stagecraft lint`).
    #[default]
    All,
    /// BuildKit's build checks only, as every `build` runs them: the others' findings would
    /// be thrown away, and some of them look along whole stage chains.
    BuildKit,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's id (`UndefinedVar`, or a ShellCheck code such as `SC2086`).
    pub rule: Cow<'static, str>,
    /// How serious it is (`# check=error=true` turns warnings into errors).
    pub severity: Severity,
    /// The Dockerfile's name as given to the parser.
    pub file: String,
    /// 1-based line; 0 for an image check of an image without its Dockerfile at hand (then
    /// `file` is the image's name).
    pub line: usize,
    /// 1-based column, in characters (0 with line 0).
    pub column: usize,
    /// What is wrong (BuildKit's exact words for BuildKit's rules).
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// The rule's documentation page, relative to the repository root (ShellCheck's wiki page
    /// for its codes).
    pub url: Cow<'static, str>,
    /// For an image check, the index (bottom = 0) of the layer that added the file the
    /// finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
}

/// Which findings make `stagecraft lint` fail (`--error-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorOn {
    /// Warnings and errors fail.
    Warning,
    /// Only errors fail (the default).
    #[default]
    Error,
}

impl FromStr for ErrorOn {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "warning" => Ok(ErrorOn::Warning),
            "error" => Ok(ErrorOn::Error),
            other => Err(format!("unknown level {other:?}: use `warning` or `error`")),
        }
    }
}

/// The process exit status for these findings: 1 when any finding is at or above the
/// `--error-on` level, else 0. Info findings never fail a run.
pub fn exit_code(findings: &[Finding], error_on: ErrorOn) -> u8 {
    let threshold = match error_on {
        ErrorOn::Warning => Severity::Warning,
        ErrorOn::Error => Severity::Error,
    };
    u8::from(findings.iter().any(|f| f.severity >= threshold))
}

/// Reads and lints a Dockerfile: the entry point for `stagecraft lint`. A file that does not
/// parse yields one `BuildError` finding at the error's position.
pub fn lint_source(source: SourceFile, options: &LintOptions) -> Vec<Finding> {
    let name = source.name().to_owned();
    match stagecraft_dockerfile::parse(source) {
        Ok(file) => lint(&file, options),
        Err(error) => vec![parse_error_finding(&name, &error)],
    }
}

/// Lints a parsed Dockerfile. Findings come in file order.
pub fn lint(file: &Dockerfile, options: &LintOptions) -> Vec<Finding> {
    let name = file.source.name();
    let (config, config_error) = check_config(file, options);
    let mut sink = Sink::new(file, config);
    if let Some(error) = config_error {
        sink.push(error);
    }
    let stages = match file.stages() {
        Ok(stages) => stages,
        Err(error) => {
            sink.push(parse_error_finding(name, &error));
            return sink.finish();
        }
    };
    let ignore = match checks::context::load_ignore_file(file, options) {
        Ok(ignore) => ignore,
        Err(message) => {
            sink.push(build_error(
                name,
                Position { line: 1, column: 1 },
                message,
                "fix the ignore file: docker refuses the whole build context otherwise",
            ));
            None
        }
    };
    let model = Model::new(file, &stages, options, ignore);
    checks::run_without_plan(&model, &mut sink, options.rules);
    let planned = match (
        Plan::new(file, &plan_options(options)),
        without_repeated_names(file),
    ) {
        // Two stages with one name: a reference to it reaches the later stage, which fails the
        // plan when that stage refers to the name itself ("circular dependency"). The build
        // error stays, and the rest of the file is checked as if the first stage alone had
        // the name, instead of hiding every other finding.
        (Err(PlanError::Dockerfile(error)), Some(renamed)) => {
            match Plan::new(&renamed, &plan_options(options)) {
                Ok(plan) => {
                    sink.push(build_error(
                        name,
                        error.position(),
                        error.message().to_owned(),
                        "two stages have the same name, and a reference to it reaches the later \
                         one: rename one of them (the other findings assume the first stage \
                         has the name)",
                    ));
                    Ok(plan)
                }
                Err(_) => Err(PlanError::Dockerfile(error)),
            }
        }
        (planned, _) => planned,
    };
    match planned {
        Ok(plan) => checks::run_with_plan(
            &Ctx {
                model: &model,
                plan: &plan,
            },
            &mut sink,
            options.rules,
        ),
        Err(PlanError::Dockerfile(error)) => sink.push(parse_error_finding(name, &error)),
        Err(error) => sink.push(build_error(
            name,
            Position { line: 1, column: 1 },
            error.to_string(),
            "pass an existing stage name to --target",
        )),
    }
    sink.finish()
}

/// A copy of `file` in which each stage that repeats an earlier stage's name has none; `None`
/// when no name repeats.
fn without_repeated_names(file: &Dockerfile) -> Option<Dockerfile> {
    let mut renamed = file.clone();
    let mut seen = BTreeSet::new();
    let mut changed = false;
    for instruction in &mut renamed.instructions {
        if instruction.keyword != stagecraft_dockerfile::Keyword::From {
            continue;
        }
        let Arguments::List(words) = &mut instruction.args else {
            continue;
        };
        if let [_, _, name] = words.as_slice()
            && !seen.insert(name.value.to_lowercase())
        {
            words.truncate(1);
            changed = true;
        }
    }
    changed.then_some(renamed)
}

/// The images the stages of `file` start from (`FROM` references with variables expanded,
/// each once): what [`LintOptions::image_env`] may describe. Empty when the build cannot be
/// planned.
pub fn base_images(file: &Dockerfile, options: &LintOptions) -> Vec<String> {
    let Ok(plan) = Plan::new(file, &plan_options(options)) else {
        return Vec::new();
    };
    let mut images: Vec<String> = Vec::new();
    for stage in &plan.stages {
        if let stagecraft_plan::Base::Image(reference) = &stage.base
            && !images.contains(reference)
        {
            images.push(reference.clone());
        }
    }
    images
}

pub(crate) fn plan_options(options: &LintOptions) -> PlanOptions {
    PlanOptions {
        target: options.target.clone(),
        build_args: options.build_args.clone(),
        named_contexts: options.build_contexts.clone(),
        ..PlanOptions::default()
    }
}

/// The `# check=` configuration in force (the `BUILDKIT_DOCKERFILE_CHECK` build argument
/// replaces the directive), and a `BuildError` when it cannot be read — BuildKit refuses to
/// build then.
pub(crate) fn check_config(
    file: &Dockerfile,
    options: &LintOptions,
) -> (CheckConfig, Option<Finding>) {
    let (text, position) = match (
        options.build_args.get(CHECK_BUILD_ARG),
        &file.directives.check,
    ) {
        (Some(value), _) => (value.as_str(), Position { line: 1, column: 1 }),
        (None, Some(directive)) => (
            directive.value.as_str(),
            file.source.position(directive.span.start),
        ),
        (None, None) => return (CheckConfig::default(), None),
    };
    match CheckConfig::parse(text) {
        Ok(config) => (config, None),
        Err(message) => (
            CheckConfig::default(),
            Some(build_error(
                file.source.name(),
                position,
                format!("failed to parse check options: {message}"),
                "write `# check=skip=Rule1,Rule2;error=true` (keys: skip, error, experimental)",
            )),
        ),
    }
}

fn parse_error_finding(file: &str, error: &Diagnostic) -> Finding {
    build_error(
        file,
        error.position(),
        error.message().to_owned(),
        error
            .hint()
            .unwrap_or("fix this first: the build stops here, so nothing after it was checked"),
    )
}

/// A `BuildError` finding: never skipped, always an error.
fn build_error(file: &str, position: Position, message: String, hint: &str) -> Finding {
    Finding {
        rule: rules::BuildError.id.into(),
        severity: Severity::Error,
        file: file.to_owned(),
        line: position.line,
        column: position.column,
        message,
        hint: hint.to_owned(),
        url: rules::BuildError.url.into(),
        layer: None,
    }
}
