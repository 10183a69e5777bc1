//! BuildKit's checks that run before any stage is dispatched: parser warnings, `FROM` lines,
//! stage names, instruction casing, `MAINTAINER` and definition comments.

use crate::model::{At, Model, Sink, Step};
use crate::rules;
use stagecraft_dockerfile::{CommandKind, Instruction, go_quote, suggest};
use stagecraft_plan::Platform;
use stagecraft_shell::{Expansion, Lexer};
use std::collections::{BTreeMap, BTreeSet};

/// Stage names BuildKit gives a meaning of their own.
const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

pub(crate) fn check(model: &Model<'_>, sink: &mut Sink<'_>) {
    empty_continuations(model, sink);
    from_lines(model, sink);
    stage_names(model, sink);
    instruction_casing(model, sink);
    maintainer(model, sink);
    definition_descriptions(model, sink);
    from_arguments(model, sink);
}

fn empty_continuations(model: &Model<'_>, sink: &mut Sink<'_>) {
    for warning in &model.file.warnings {
        if warning.url.contains("no-empty-continuation") {
            sink.report(
                &rules::NoEmptyContinuation,
                At::Line(warning.line),
                "Empty continuation line",
                "delete the blank line inside the continued instruction (or end the instruction \
                 before it); a future BuildKit release will reject it",
            );
        }
    }
}

fn is_self_consistent(text: &str) -> bool {
    text == text.to_lowercase() || text == text.to_uppercase()
}

/// StageNameCasing and FromAsCasing: the words of `FROM image AS name`.
fn from_lines(model: &Model<'_>, sink: &mut Sink<'_>) {
    for view in &model.stages {
        let from = view.from;
        let [_, as_word, name] = from.args.words() else {
            continue;
        };
        if name.value != name.value.to_lowercase() {
            sink.report(
                &rules::StageNameCasing,
                At::span(from, name.span),
                format!("Stage name '{}' should be lowercase", name.value),
                format!(
                    "write `AS {}`: stage names are case-insensitive and BuildKit lowercases them",
                    name.value.to_lowercase()
                ),
            );
        }
        let keyword = &from.keyword_text.value;
        if is_self_consistent(keyword) {
            let wanted = if *keyword == keyword.to_lowercase() {
                as_word.value.to_lowercase()
            } else {
                as_word.value.to_uppercase()
            };
            if as_word.value != wanted {
                sink.report(
                    &rules::FromAsCasing,
                    At::span(from, as_word.span),
                    format!(
                        "'{}' and '{}' keywords' casing do not match",
                        as_word.value, keyword
                    ),
                    format!("write `{keyword} … {wanted} …`, in the same case as `{keyword}`"),
                );
            }
        }
    }
}

/// DuplicateStageName and ReservedStageName.
fn stage_names(model: &Model<'_>, sink: &mut Sink<'_>) {
    let mut seen = BTreeSet::new();
    for view in &model.stages {
        let Some(name) = &view.stage.name else {
            continue;
        };
        let at = At::instruction(view.from);
        if RESERVED_STAGE_NAMES.contains(&name.as_str()) {
            sink.report(
                &rules::ReservedStageName,
                at,
                format!(
                    "Stage name should not use the same name as reserved stage {}",
                    go_quote(name)
                ),
                format!(
                    "rename the stage: `{name}` already means {} in FROM and COPY --from",
                    if name == "scratch" {
                        "the empty image"
                    } else {
                        "the build context"
                    }
                ),
            );
        }
        if !seen.insert(name.as_str()) {
            sink.report(
                &rules::DuplicateStageName,
                at,
                format!(
                    "Duplicate stage name {}, stage names should be unique",
                    go_quote(name)
                ),
                "rename one of the stages: FROM and COPY --from can only reach one of them",
            );
        }
    }
}

/// ConsistentInstructionCasing: every keyword written in the case most keywords use.
fn instruction_casing(model: &Model<'_>, sink: &mut Sink<'_>) {
    // BuildKit counts the FROM lines and the instructions inside stages (not the ARGs before
    // the first FROM); a keyword in mixed case counts for neither side.
    let keywords = || {
        model.stages.iter().flat_map(|view| {
            std::iter::once(view.from).chain(view.steps.iter().map(|s| s.instruction))
        })
    };
    let (mut lower, mut upper) = (0usize, 0usize);
    for instruction in keywords() {
        let text = &instruction.keyword_text.value;
        if *text == text.to_lowercase() {
            lower += 1;
        } else if *text == text.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for instruction in keywords() {
        let text = &instruction.keyword_text.value;
        let (wanted, casing) = if majority_lower {
            (text.to_lowercase(), "lowercase")
        } else {
            (text.to_uppercase(), "uppercase")
        };
        if *text != wanted {
            sink.report(
                &rules::ConsistentInstructionCasing,
                At::instruction(instruction),
                format!(
                    "Command '{text}' should match the case of the command majority ({casing})"
                ),
                format!("write `{wanted}`, like the other instructions"),
            );
        }
    }
}

fn maintainer(model: &Model<'_>, sink: &mut Sink<'_>) {
    for step in model.stages.iter().flat_map(|v| &v.steps) {
        if let CommandKind::Maintainer(author) = &step.command.kind {
            sink.report(
                &rules::MaintainerDeprecated,
                step.at(),
                "Maintainer instruction is deprecated in favor of using label",
                format!(
                    "write `LABEL org.opencontainers.image.authors={}`",
                    go_quote(&author.value)
                ),
            );
        }
    }
}

/// InvalidDefinitionDescription (experimental): a comment right above `FROM … AS name` or
/// `ARG name` is its description and should start with the name.
fn definition_descriptions(model: &Model<'_>, sink: &mut Sink<'_>) {
    let mut check = |keyword: &str, names: Vec<String>, instruction: &Instruction| {
        let Some(last) = instruction.comments.last() else {
            return;
        };
        if names.is_empty()
            || names
                .iter()
                .any(|n| last.split(' ').next() == Some(n.as_str()))
        {
            return;
        }
        let example = if names.len() == 1 {
            names[0].as_str()
        } else {
            "<arg_key>"
        };
        sink.report(
            &rules::InvalidDefinitionDescription,
            At::instruction(instruction),
            format!("Comment for {keyword} should follow the format: `# {example} <description>`"),
            format!(
                "start the comment with `{example} `, or separate it from the instruction with an \
                 empty `#` line if it is not a description"
            ),
        );
    };
    for view in &model.stages {
        if let Some(name) = &view.stage.name {
            check("FROM", vec![name.clone()], view.from);
        }
    }
    for step in model
        .meta_args
        .iter()
        .chain(model.stages.iter().flat_map(|v| &v.steps))
    {
        if let CommandKind::Arg(declarations) = &step.command.kind {
            check(
                "ARG",
                declarations.iter().map(|d| d.name.clone()).collect(),
                step.instruction,
            );
        }
    }
}

/// The global scope `FROM` lines expand in: the predefined platform arguments, then the ARGs
/// before the first FROM, each default expanded in the scope so far. `build_args` override
/// (pass none to see what the defaults alone give). `None` when a default does not expand.
fn global_scope(
    model: &Model<'_>,
    lexer: &Lexer,
    build_args: Option<&BTreeMap<String, String>>,
) -> Option<Vec<(String, String)>> {
    let target = model
        .options
        .target
        .clone()
        .or_else(|| model.stages.last().and_then(|v| v.stage.name.clone()))
        .unwrap_or_else(|| "default".to_owned());
    let overrides = &model.options.build_args;
    let mut scope: Vec<(String, String)> =
        stagecraft_plan::predefined_args(&Platform::host(), &Platform::host(), &target)
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_owned(),
                    overrides.get(name).cloned().unwrap_or(value),
                )
            })
            .collect();
    for declaration in meta_declarations(&model.meta_args) {
        let value = match (
            build_args.and_then(|a| a.get(&declaration.0)),
            &declaration.1,
        ) {
            (Some(value), _) => Some(value.clone()),
            (None, Some(default)) => Some(lexer.process_word(default, &scope).ok()?),
            (None, None) => None,
        };
        if let Some(value) = value {
            scope.push((declaration.0, value));
        }
    }
    Some(scope)
}

/// `(name, default)` of every ARG before the first FROM.
fn meta_declarations(meta_args: &[Step<'_>]) -> Vec<(String, Option<String>)> {
    meta_args
        .iter()
        .filter_map(|step| match &step.command.kind {
            CommandKind::Arg(declarations) => Some(declarations),
            _ => None,
        })
        .flatten()
        .map(|d| (d.name.clone(), d.default.clone()))
        .collect()
}

/// UndefinedArgInFrom, RedundantTargetPlatform, FromPlatformFlagConstDisallowed and
/// InvalidDefaultArgInFrom: what the variables of `FROM` lines expand to.
fn from_arguments(model: &Model<'_>, sink: &mut Sink<'_>) {
    let lexer = Lexer::new(model.file.escape);
    if let Some(scope) = global_scope(model, &lexer, Some(&model.options.build_args)) {
        let mut known: BTreeSet<String> = scope.iter().map(|(k, _)| k.clone()).collect();
        known.extend(
            meta_declarations(&model.meta_args)
                .into_iter()
                .map(|(name, _)| name),
        );
        let known: Vec<String> = known.into_iter().collect();
        let target_platform = scope
            .iter()
            .rev()
            .find(|(k, _)| k == "TARGETPLATFORM")
            .map(|(_, v)| v.clone());
        for view in &model.stages {
            let at = At::instruction(view.from);
            if let Ok(expansion) = lexer.process_word_with_matches(&view.stage.base.value, &scope) {
                undeclared_in_from(&expansion, &known, at, sink);
            }
            let Some(platform) = &view.stage.platform else {
                continue;
            };
            let Ok(expansion) = lexer.process_word_with_matches(&platform.value, &scope) else {
                continue;
            };
            undeclared_in_from(&expansion, &known, at, sink);
            if expansion.unmatched.is_empty()
                && expansion.matched.len() == 1
                && expansion.matched.contains("TARGETPLATFORM")
                && target_platform.as_deref() == Some(expansion.result.as_str())
            {
                sink.report(
                    &rules::RedundantTargetPlatform,
                    at,
                    format!(
                        "Setting platform to predefined {} in FROM is redundant as this is the default behavior",
                        platform.value
                    ),
                    "drop the --platform flag: stages are built for the target platform anyway",
                );
            }
            if expansion.matched.is_empty() && expansion.unmatched.is_empty() {
                constant_platform(
                    &expansion.result,
                    view.stage.name.as_deref(),
                    &view.stage.base.value,
                    at,
                    sink,
                );
            }
        }
    }
    invalid_default_bases(model, &lexer, sink);
}

fn undeclared_in_from(expansion: &Expansion, known: &[String], at: At<'_>, sink: &mut Sink<'_>) {
    for name in &expansion.unmatched {
        if known.contains(name) {
            continue;
        }
        let suggestion = suggest::closest_case_sensitive(name, known);
        sink.report(
            &rules::UndefinedArgInFrom,
            at,
            format!(
                "FROM argument '{name}' is not declared{}",
                suggestion
                    .as_ref()
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default()
            ),
            match suggestion {
                Some(s) => format!(
                    "did you mean `{s}`? Otherwise declare `ARG {name}` before the first FROM"
                ),
                None => format!("declare `ARG {name}=<default>` before the first FROM"),
            },
        );
    }
}

/// FromPlatformFlagConstDisallowed: a fixed `--platform` makes the stage ignore the platform
/// the build asks for, unless the stage's name says which platform it is for (BuildKit's
/// exception) or the base image exists for that one platform only, so no other could be built
/// (stagecraft's: `arm64v8/alpine`, `…:r36-aarch64`, NVIDIA's Jetson `l4t-*` images).
fn constant_platform(
    value: &str,
    stage_name: Option<&str>,
    base: &str,
    at: At<'_>,
    sink: &mut Sink<'_>,
) {
    let Some((os, arch)) = os_and_arch(value) else {
        return;
    };
    let name = stage_name.unwrap_or("");
    if name.contains(&os) || name.contains(&arch) || single_platform_image(base, &arch) {
        return;
    }
    sink.report(
        &rules::FromPlatformFlagConstDisallowed,
        at,
        format!(
            "FROM --platform flag should not use constant value {}",
            go_quote(value)
        ),
        "use --platform=$BUILDPLATFORM for build tools, or name the stage after the platform \
         it is meant for (e.g. `AS build-amd64`)",
    );
}

/// Whether the base image's name says it is built for `arch` alone: an architecture word in
/// its repository or tag, or an image family that exists for one architecture.
fn single_platform_image(base: &str, arch: &str) -> bool {
    let aliases: &[&str] = match arch {
        "amd64" => &["amd64", "x86_64", "x64"],
        "arm64" => &["arm64", "arm64v8", "aarch64"],
        "arm" => &["arm32v7", "arm32v6", "armhf", "armv7", "armel"],
        "386" => &["i386", "i686"],
        "ppc64le" => &["ppc64le"],
        "s390x" => &["s390x"],
        "riscv64" => &["riscv64"],
        _ => &[],
    };
    let lower = base.to_lowercase();
    let mut words = lower.split(|c: char| !c.is_ascii_alphanumeric() && c != '_');
    // NVIDIA's Linux for Tegra (Jetson) images exist for arm64 only.
    words.any(|word| {
        aliases.contains(&word) || (arch == "arm64" && matches!(word, "l4t" | "jetson"))
    })
}

/// containerd's `platforms.Parse`, reduced to the OS and normalized architecture.
fn os_and_arch(value: &str) -> Option<(String, String)> {
    const OSES: [&str; 12] = [
        "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "aix",
        "android", "ios", "plan9",
    ];
    let normalize_arch = |arch: &str| -> String {
        match arch.to_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => "amd64".into(),
            "aarch64" | "arm64" => "arm64".into(),
            "armhf" | "armel" | "arm" => "arm".into(),
            "i386" | "386" => "386".into(),
            other => other.into(),
        }
    };
    let host = Platform::host();
    let parts: Vec<&str> = value.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    match parts.as_slice() {
        [single] => {
            let lower = single.to_lowercase();
            if OSES.contains(&lower.as_str()) {
                Some((lower, host.architecture))
            } else {
                let arch = normalize_arch(single);
                let known = [
                    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64",
                ];
                known.contains(&arch.as_str()).then_some((host.os, arch))
            }
        }
        [os, arch] | [os, arch, _] => Some((os.to_lowercase(), normalize_arch(arch))),
        _ => None,
    }
}

/// InvalidDefaultArgInFrom: with no `--build-arg`, every `FROM` should still name a valid
/// image.
fn invalid_default_bases(model: &Model<'_>, lexer: &Lexer, sink: &mut Sink<'_>) {
    // Like BuildKit, give up quietly when the defaults themselves do not expand: the build
    // fails on that with a better message.
    let Some(defaults) = global_scope(model, lexer, None) else {
        return;
    };
    for view in &model.stages {
        let base = &view.stage.base.value;
        let Ok(name) = lexer.process_word(base, &defaults) else {
            return;
        };
        if crate::image::ImageRef::parse(&name).is_none() {
            sink.report(
                &rules::InvalidDefaultArgInFrom,
                At::instruction(view.from),
                format!("Default value for ARG {base} results in empty or invalid base image name"),
                "give the ARG a default that makes a valid image name (`ARG TAG=3.20`), or use \
                 `${TAG:-3.20}` in FROM",
            );
        }
    }
}
