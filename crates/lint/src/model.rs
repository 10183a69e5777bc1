//! What the checks look at: the instructions grouped into stages (each typed command next to
//! the instruction it came from, RUN scripts already read), the build plan, and the sink that
//! turns reports into findings under the `# check=` configuration.

use crate::config::CheckConfig;
use crate::image::ImageRef;
use crate::rules::{Rule, Severity};
use crate::script::Script;
use crate::{Finding, LintOptions};
use stagecraft_dockerfile::{
    Command, CommandKind, Dockerfile, Heredoc, Instruction, Keyword, Span, Stage, Stages,
};
use stagecraft_dockerignore::PatternMatcher;
use stagecraft_plan::{Base, DependencyKind, Plan};
use std::collections::HashSet;

/// One instruction of a stage: the typed command and the instruction it was read from.
pub(crate) struct Step<'a> {
    pub command: &'a Command,
    pub instruction: &'a Instruction,
    /// The script a RUN runs, read once for every rule that asks.
    pub script: Option<Script>,
}

impl<'a> Step<'a> {
    fn new(command: &'a Command, instruction: &'a Instruction) -> Self {
        let script = match &command.kind {
            CommandKind::Run(run) => Some(run_script(
                &run.command.args,
                run.command.prepend_shell,
                instruction,
            )),
            _ => None,
        };
        Step {
            command,
            instruction,
            script,
        }
    }

    /// The location to report at: the whole instruction.
    pub(crate) fn at(&self) -> At<'a> {
        At::instruction(self.instruction)
    }

    /// The `--mount` values of a RUN, parsed.
    pub(crate) fn mounts(&self) -> Vec<Mount> {
        match &self.command.kind {
            CommandKind::Run(run) => run.mounts.iter().map(|m| Mount::parse(&m.value)).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether this RUN has a `--mount=type=cache`.
    pub(crate) fn has_cache_mount(&self) -> bool {
        self.mounts().iter().any(|m| m.kind == "cache")
    }
}

/// The shell script a RUN executes. A RUN whose whole command is one heredoc (`RUN <<EOF`)
/// runs the heredoc's body; otherwise heredocs are data and the command line is the script.
fn run_script(args: &[String], shell_form: bool, instruction: &Instruction) -> Script {
    if !shell_form {
        return Script::from_argv(args);
    }
    let line = args.first().map_or("", String::as_str);
    if let Some(heredoc) = whole_heredoc(line, instruction) {
        let body = heredoc.chomped_content();
        return if is_shell_body(&body) {
            Script::parse(&body)
        } else {
            Script::default()
        };
    }
    Script::parse(line.trim())
}

/// The heredoc a shell-form RUN whose whole command `line` is that heredoc (`RUN <<EOF`)
/// runs as its script.
pub(crate) fn whole_heredoc<'a>(line: &str, instruction: &'a Instruction) -> Option<&'a Heredoc> {
    match instruction.heredocs.as_slice() {
        [heredoc]
            if line
                .trim()
                .trim_start_matches('<')
                .trim_start_matches('-')
                .trim_matches(['"', '\''])
                == heredoc.name =>
        {
            Some(heredoc)
        }
        _ => None,
    }
}

/// Whether a heredoc body run as a script is a shell script: no `#!` line, or one naming a
/// shell (`#!/usr/bin/env python3` is not).
pub(crate) fn is_shell_body(body: &str) -> bool {
    body.lines()
        .next()
        .is_none_or(|first| !first.starts_with("#!") || first.contains("sh"))
}

/// A parsed `--mount=type=cache,target=/root/.cache` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mount {
    /// `bind` (the default), `cache`, `secret`, `ssh`, `tmpfs`.
    pub kind: String,
    /// Where it is mounted, if given.
    pub target: Option<String>,
    /// What is mounted (a path in the context or in the `from` stage), if given.
    pub source: Option<String>,
}

impl Mount {
    fn parse(value: &str) -> Mount {
        let mut mount = Mount {
            kind: "bind".to_owned(),
            ..Mount::default()
        };
        // The build's CSV reading; a value it refuses is the build's error to report, so the
        // linter falls back to plain commas and goes on.
        let fields = stagecraft_dockerfile::mounts::csv_fields(value)
            .unwrap_or_else(|_| value.split(',').map(str::to_owned).collect());
        for field in &fields {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "type" => mount.kind = value.to_ascii_lowercase(),
                "target" | "dst" | "destination" => mount.target = Some(value.to_owned()),
                "source" | "src" => mount.source = Some(value.to_owned()),
                _ => {}
            }
        }
        mount
    }
}

/// One stage: its `FROM` and its steps.
pub(crate) struct StageView<'a> {
    pub stage: &'a Stage,
    pub from: &'a Instruction,
    pub steps: Vec<Step<'a>>,
}

impl<'a> StageView<'a> {
    /// The location of the stage's `FROM`.
    pub(crate) fn at_from(&self) -> At<'a> {
        At::instruction(self.from)
    }
}

/// The `.dockerignore` (or `Dockerfile.dockerignore`) in force for the context.
pub(crate) struct IgnoreFile {
    /// Its patterns, as docker reads them.
    pub patterns: Vec<String>,
    /// The patterns compiled.
    pub matcher: PatternMatcher,
}

/// The file, grouped into stages.
pub(crate) struct Model<'a> {
    pub file: &'a Dockerfile,
    pub options: &'a LintOptions,
    /// `ARG`s before the first `FROM`.
    pub meta_args: Vec<Step<'a>>,
    pub stages: Vec<StageView<'a>>,
    /// The ignore file of the context, when there is a context and it has one.
    pub ignore: Option<IgnoreFile>,
}

impl<'a> Model<'a> {
    /// Pairs every typed command with its instruction. `Dockerfile::stages` turns each
    /// instruction into exactly one command (or stage) in file order, so walking both in step
    /// lines them up.
    pub(crate) fn new(
        file: &'a Dockerfile,
        stages: &'a Stages,
        options: &'a LintOptions,
        ignore: Option<IgnoreFile>,
    ) -> Self {
        let mut meta_args = Vec::new();
        let mut views: Vec<StageView<'a>> = Vec::new();
        let mut next_stage = stages.stages.iter();
        for instruction in &file.instructions {
            if instruction.keyword == Keyword::From {
                if let Some(stage) = next_stage.next() {
                    views.push(StageView {
                        stage,
                        from: instruction,
                        steps: Vec::new(),
                    });
                }
                continue;
            }
            let (commands, steps) = match views.last_mut() {
                Some(view) => (&view.stage.commands, &mut view.steps),
                None => (&stages.meta_args, &mut meta_args),
            };
            if let Some(command) = commands.get(steps.len()) {
                steps.push(Step::new(command, instruction));
            }
        }
        Model {
            file,
            options,
            meta_args,
            stages: views,
            ignore,
        }
    }

    /// The stage a `--from` value names: an index, or the (case-insensitive) name of a stage
    /// defined anywhere in the file.
    pub(crate) fn stage_named(&self, name: &str) -> Option<usize> {
        if let Ok(index) = name.parse::<usize>() {
            return (index < self.stages.len()).then_some(index);
        }
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .position(|view| view.stage.name.as_deref() == Some(lower.as_str()))
    }
}

/// The model together with the build plan, for the checks that need the stage graph.
pub(crate) struct Ctx<'a> {
    pub model: &'a Model<'a>,
    pub plan: &'a Plan,
}

impl<'a> Ctx<'a> {
    /// The stages to lint: all of them, or only those the `--target` needs (BuildKit lints
    /// every stage when no target is given).
    pub(crate) fn linted(&self) -> impl Iterator<Item = &'a StageView<'a>> + '_ {
        self.model.stages.iter().filter(|view| {
            self.model.options.target.is_none()
                || self
                    .plan
                    .stages
                    .get(view.stage.index)
                    .is_some_and(|s| s.needed)
        })
    }

    /// The stage and the stages it is built `FROM`, root first.
    pub(crate) fn chain(&self, index: usize) -> Vec<&'a StageView<'a>> {
        let mut chain = Vec::new();
        let mut current = Some(index);
        while let Some(i) = current {
            let Some(view) = self.model.stages.get(i) else {
                break;
            };
            chain.push(view);
            current = match self.plan.stages.get(i).map(|s| &s.base) {
                // A base is always an earlier stage; the bound guards against loops anyway.
                Some(Base::Stage(parent)) if *parent < i => Some(*parent),
                _ => None,
            };
        }
        chain.reverse();
        chain
    }

    /// The steps of a stage and of the stages it is built on, in the order they run.
    pub(crate) fn chain_steps(&self, index: usize) -> impl Iterator<Item = &'a Step<'a>> + use<'a> {
        self.steps_through(index).map(|(step, _)| step)
    }

    /// Like [`Ctx::chain_steps`], with whether each step belongs to the stage itself (rules
    /// report a step only when linting its own stage, so shared bases are reported once).
    pub(crate) fn steps_through(
        &self,
        index: usize,
    ) -> impl Iterator<Item = (&'a Step<'a>, bool)> + use<'a> {
        self.chain(index).into_iter().flat_map(move |view| {
            let own = view.stage.index == index;
            view.steps.iter().map(move |step| (step, own))
        })
    }

    /// The image at the root of a stage's `FROM` chain: `None` for `scratch`, a named build
    /// context (whose contents are not known), or an image reference docker would reject.
    pub(crate) fn root_image(&self, index: usize) -> Option<ImageRef> {
        match self.root_base(index)? {
            Base::Image(reference) => ImageRef::parse(reference),
            Base::Scratch | Base::Stage(_) | Base::Context(_) => None,
        }
    }

    /// Whether a stage's `FROM` chain starts from a named build context (`--build-context`).
    pub(crate) fn is_on_named_context(&self, index: usize) -> bool {
        matches!(self.root_base(index), Some(Base::Context(_)))
    }

    fn root_base(&self, index: usize) -> Option<&'a Base> {
        let root = self.chain(index).first()?.stage.index;
        Some(&self.plan.stages.get(root)?.base)
    }

    /// Whether a stage runs on Windows: its root is a Windows image or has a `windows/…`
    /// platform, or the file uses the backtick escape that Windows Dockerfiles use (so that
    /// `\` can separate paths). RUN then goes to `cmd` or PowerShell, not a POSIX shell.
    pub(crate) fn is_windows(&self, index: usize) -> bool {
        let root = self.chain(index).first().map(|view| view.stage.index);
        let windows_platform = root
            .and_then(|root| self.plan.stages.get(root)?.platform.as_deref())
            .is_some_and(|platform| platform.starts_with("windows"));
        self.model.file.escape == '`'
            || windows_platform
            || self
                .root_image(index)
                .is_some_and(|image| image.is_windows())
    }

    /// Whether a stage's root is `scratch`.
    pub(crate) fn is_on_scratch(&self, index: usize) -> bool {
        self.chain(index)
            .first()
            .and_then(|view| self.plan.stages.get(view.stage.index))
            .is_some_and(|s| s.base == Base::Scratch)
    }

    /// The stage being built (the last one unless `--target` says otherwise).
    pub(crate) fn target(&self) -> usize {
        self.plan.target
    }

    /// Whether the target copies files out of another stage: the build is split into a build
    /// stage and a runtime stage.
    pub(crate) fn target_copies_from_stages(&self) -> bool {
        self.chain(self.target()).iter().any(|view| {
            self.plan.stages.get(view.stage.index).is_some_and(|s| {
                s.dependencies
                    .iter()
                    .any(|d| d.kind == DependencyKind::CopyFrom)
            })
        })
    }
}

/// Where a finding points.
#[derive(Debug, Clone, Copy)]
pub(crate) enum At<'a> {
    /// A byte offset, and the comments above the instruction it is in (they may hold a
    /// `# check=skip=…` for this instruction).
    Offset(usize, &'a [String]),
    /// A 1-based line, column 1.
    Line(usize),
}

impl<'a> At<'a> {
    /// The start of an instruction.
    pub(crate) fn instruction(instruction: &'a Instruction) -> Self {
        At::Offset(instruction.span.start, &instruction.comments)
    }

    /// A part of an instruction (a word or flag).
    pub(crate) fn span(instruction: &'a Instruction, span: Span) -> Self {
        At::Offset(span.start, &instruction.comments)
    }
}

/// Collects findings, applying the `# check=` configuration.
pub(crate) struct Sink<'a> {
    file: &'a Dockerfile,
    config: CheckConfig,
    findings: Vec<Finding>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a Dockerfile, config: CheckConfig) -> Self {
        Sink {
            file,
            config,
            findings: Vec::new(),
        }
    }

    /// Reports `rule` at `at`, unless the configuration (or a comment above the instruction)
    /// turns it off.
    pub(crate) fn report(
        &mut self,
        rule: &Rule,
        at: At<'_>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.report_about_layer(rule, at, None, message.into(), hint.into());
    }

    /// Like [`Sink::report`], for an image check about a file of layer `layer`.
    pub(crate) fn report_about_layer(
        &mut self,
        rule: &Rule,
        at: At<'_>,
        layer: Option<usize>,
        message: String,
        hint: String,
    ) {
        let (line, column, comments) = match at {
            At::Offset(offset, comments) => {
                let position = self.file.source.position(offset);
                (position.line, position.column, comments)
            }
            At::Line(line) => (line, 1, &[][..]),
        };
        let merged = self.config.with_comments(comments);
        if !merged.as_ref().unwrap_or(&self.config).enables(rule) {
            return;
        }
        let severity = if self.config.error && rule.severity == Severity::Warning {
            Severity::Error
        } else {
            rule.severity
        };
        self.findings.push(Finding {
            rule: rule.id.into(),
            severity,
            file: self.file.source.name().to_owned(),
            line,
            column,
            message,
            hint,
            url: rule.url.into(),
            layer,
        });
    }

    /// Reports a finding of another tool (`id` such as ShellCheck's `SC2086`, documented at
    /// `url`) on behalf of `rule`, at a 1-based line and column, unless the configuration (or
    /// `comments` above the instruction) skips `id` or `rule`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn report_external(
        &mut self,
        rule: &Rule,
        id: String,
        url: String,
        severity: Severity,
        (line, column, comments): (usize, usize, &[String]),
        message: String,
        hint: String,
    ) {
        let merged = self.config.with_comments(comments);
        let config = merged.as_ref().unwrap_or(&self.config);
        if !config.enables(rule) || !config.enables_id(&id) {
            return;
        }
        let severity = if self.config.error && severity == Severity::Warning {
            Severity::Error
        } else {
            severity
        };
        self.findings.push(Finding {
            rule: id.into(),
            severity,
            file: self.file.source.name().to_owned(),
            line,
            column,
            message,
            hint,
            url: url.into(),
            layer: None,
        });
    }

    /// Adds a finding no configuration can turn off (a `BuildError`).
    pub(crate) fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// The findings in file order, repeats of the same report dropped (BuildKit reports a
    /// rule once per word it checks, which can repeat a message at one spot).
    pub(crate) fn finish(mut self) -> Vec<Finding> {
        self.findings.sort_by_key(|f| (f.line, f.column));
        let mut seen = HashSet::new();
        self.findings
            .retain(|f| seen.insert((f.rule.clone(), f.line, f.column, f.message.clone())));
        self.findings
    }
}
