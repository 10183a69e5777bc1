//! stagecraft's own rules: they follow files and tools across stages — what the final image
//! inherits, what a scratch stage receives, which stages the target needs — and how the layer
//! cache behaves.

use super::{
    Variables, clean_path, context_sources, display, glob_match, is_whole_context, source_covers,
};
use crate::model::{Ctx, Sink, StageView, Step};
use crate::rules;
use crate::script::SimpleCommand;
use crate::tools::{self, Ecosystem, Npm};
use stagecraft_dockerfile::CommandKind;
use std::collections::BTreeSet;

pub(crate) fn check(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    for view in ctx.linted() {
        sources_before_install(ctx, view, sink);
        npm_install_instead_of_ci(ctx, view, sink);
        chown_after_copy(ctx, view, sink);
        // Windows builders (BuildKit's and docker's) support no cache mounts.
        if !ctx.is_windows(view.stage.index) {
            for step in &view.steps {
                missing_cache_mount(step, sink);
            }
        }
    }
    go_on_scratch(ctx, sink);
    copy_builder_source_tree(ctx, sink);
    final_stage(ctx, sink);
    unreachable_stages(ctx, sink);
}

/// SourcesBeforeDependencyInstall: a dependency install after the whole context was copied
/// re-runs on every source edit, unless the same ecosystem's dependencies were installed
/// before that copy (then this run is incremental) or a cache mount keeps the downloads.
fn sources_before_install(ctx: &Ctx<'_>, view: &StageView<'_>, sink: &mut Sink<'_>) {
    let mut installed: Vec<Ecosystem> = Vec::new();
    let mut whole_copy: Option<&Step<'_>> = None;
    for (step, own) in ctx.steps_through(view.stage.index) {
        if whole_copy.is_none() && context_sources(step).iter().any(|s| is_whole_context(s)) {
            whole_copy = Some(step);
        }
        let Some(script) = &step.script else {
            continue;
        };
        let cached = step.has_cache_mount();
        for command in script.commands() {
            let Some(ecosystem) = tools::dependency_install(command) else {
                continue;
            };
            if installed.contains(&ecosystem) {
                continue;
            }
            installed.push(ecosystem);
            if let Some(copy) = whole_copy
                && own
                && !cached
            {
                sink.report(
                    &rules::SourcesBeforeDependencyInstall,
                    step.at(),
                    format!(
                        "`{}` runs after `{}` (line {}): any source change re-runs the whole dependency install",
                        display(command),
                        copy.instruction.original.trim(),
                        copy.instruction.start_line
                    ),
                    format!(
                        "copy {} first, install, and only then copy the rest of the sources \
                         (or keep the downloads in a `RUN --mount=type=cache`)",
                        ecosystem.manifests()
                    ),
                );
            }
        }
    }
}

/// Where each tool keeps what a cache mount should preserve, and what a rebuild without one
/// does again: apt and the JavaScript package managers only download, pip may build wheels,
/// go and cargo compile too.
fn cache_facts(tool: &str) -> (&'static str, &'static str) {
    match tool {
        "apt" => (
            "/var/cache/apt and /var/lib/apt (with sharing=locked)",
            "apt downloads every package again",
        ),
        "npm" => ("/root/.npm", "npm downloads every package again"),
        "yarn" => (
            "/usr/local/share/.cache/yarn",
            "yarn downloads every package again",
        ),
        "pnpm" => (
            "/root/.local/share/pnpm/store",
            "pnpm downloads every package again",
        ),
        "pip" => (
            "/root/.cache/pip",
            "pip downloads every package (and builds wheels) again",
        ),
        "go" => (
            "/root/.cache/go-build and the module cache (`go env GOMODCACHE`, /go/pkg/mod in the golang image)",
            "go downloads every module and compiles every package again",
        ),
        _ => (
            "/usr/local/cargo/registry and the target directory",
            "cargo downloads every crate and compiles everything again",
        ),
    }
}

/// PackageManagerWithoutCacheMount.
fn missing_cache_mount(step: &Step<'_>, sink: &mut Sink<'_>) {
    let Some(script) = &step.script else {
        return;
    };
    if step.has_cache_mount() {
        return;
    }
    let tools: BTreeSet<&str> = script
        .commands()
        .iter()
        .filter_map(tools::cacheable_tool)
        .collect();
    if tools.is_empty() {
        return;
    }
    let names: Vec<&str> = tools.iter().copied().collect();
    let (targets, effects): (Vec<String>, Vec<&str>) = tools
        .iter()
        .map(|tool| {
            let (target, effect) = cache_facts(tool);
            (format!("{tool}: {target}"), effect)
        })
        .unzip();
    sink.report(
        &rules::PackageManagerWithoutCacheMount,
        step.at(),
        format!(
            "RUN uses {} without a cache mount: each rebuild of this step, {}",
            names.join(", "),
            effects.join("; ")
        ),
        format!(
            "add `--mount=type=cache,target=…` to the RUN ({})",
            targets.join("; ")
        ),
    );
}

/// Whether a COPY source names an npm lockfile, directly or by glob (`package*.json`).
fn names_npm_lockfile(source: &str) -> bool {
    let name = source.rsplit('/').next().unwrap_or(source);
    ["package-lock.json", "npm-shrinkwrap.json"]
        .iter()
        .any(|lockfile| glob_match(name, lockfile))
}

/// NpmInstallInsteadOfCi: once the lockfile is in the image, `npm install` may rewrite it.
fn npm_install_instead_of_ci(ctx: &Ctx<'_>, view: &StageView<'_>, sink: &mut Sink<'_>) {
    let lockfile_in_context = ctx.model.options.context_dir.as_ref().is_some_and(|dir| {
        dir.join("package-lock.json").is_file() || dir.join("npm-shrinkwrap.json").is_file()
    });
    let mut lockfile_line: Option<usize> = None;
    for (step, own) in ctx.steps_through(view.stage.index) {
        let copied = match &step.command.kind {
            CommandKind::Copy(copy) => Some(&copy.paths),
            CommandKind::Add(add) => Some(&add.paths),
            _ => None,
        };
        if let Some(paths) = copied {
            let names_lockfile = paths.sources.iter().any(|s| names_npm_lockfile(&s.value));
            let whole =
                lockfile_in_context && context_sources(step).iter().any(|s| is_whole_context(s));
            if names_lockfile || whole {
                lockfile_line = Some(step.instruction.start_line);
            }
        }
        let Some(script) = &step.script else {
            continue;
        };
        let mounted = step
            .mounts()
            .iter()
            .any(|m| m.source.as_deref().is_some_and(names_npm_lockfile));
        let line = if mounted {
            Some(step.instruction.start_line)
        } else {
            lockfile_line
        };
        let (Some(line), true) = (line, own) else {
            continue;
        };
        if script
            .commands()
            .iter()
            .any(|c| tools::npm(c) == Some(Npm::InstallAll))
        {
            sink.report(
                &rules::NpmInstallInsteadOfCi,
                step.at(),
                format!(
                    "`npm install` runs with the lockfile from line {line}: it may update the lockfile and install other versions than it pins"
                ),
                "use `npm ci`: it installs exactly what the lockfile says and fails if package.json disagrees",
            );
        }
    }
}

/// GoScratchWithoutCgoDisabled: a Go binary linked with cgo, built in this Dockerfile, copied
/// into a final image without libc that runs something. An export-only stage (no CMD or
/// ENTRYPOINT: `--output` writes its files out) never starts the binary, and a COPY of other
/// files from the builder (generated sources, assets) carries no binary.
fn go_on_scratch(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    let target = ctx.target();
    let without_libc =
        ctx.is_on_scratch(target) || ctx.root_image(target).is_some_and(|i| i.lacks_libc());
    if !without_libc || !has_start_command(ctx, target) {
        return;
    }
    let mut reported = BTreeSet::new();
    for step in ctx.chain_steps(target) {
        let CommandKind::Copy(copy) = &step.command.kind else {
            continue;
        };
        let Some(builder) = copy
            .from
            .as_ref()
            .and_then(|f| ctx.model.stage_named(&f.value))
        else {
            continue;
        };
        // `COPY --from` sources are paths from the builder's root, whatever its WORKDIR.
        let sources: Vec<String> = copy
            .paths
            .sources
            .iter()
            .map(|s| clean_path(&format!("/{}", s.value)))
            .collect();
        for (build, output) in cgo_builds(ctx, builder) {
            if !sources.iter().any(|source| output.copied_by(source))
                || !reported.insert(build.instruction.span.start)
            {
                continue;
            }
            sink.report(
                &rules::GoScratchWithoutCgoDisabled,
                build.at(),
                format!(
                    "`go build` runs with cgo enabled, and line {} copies its output into a final image without libc",
                    step.instruction.start_line
                ),
                "build with `CGO_ENABLED=0 go build …` (or `ENV CGO_ENABLED=0`): a cgo binary \
                 needs the C library and fails to start with \"no such file or directory\"",
            );
        }
    }
}

/// Where a `go build` or `go install` puts its binary.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GoOutput {
    /// This file (`-o /out/app`, or the package's name in the working directory); with
    /// several packages `-o` names a directory, which `copied_by` allows for.
    File(String),
    /// Some file in this directory (`go install` → `$GOBIN`, `-o /out/`).
    Directory(String),
    /// A variable or an unknown directory hides it: never matched, the rule does not guess.
    Unknown,
}

impl GoOutput {
    /// Whether copying `source` (absolute, clean) out of the builder takes the binary along:
    /// the source is the binary, a directory above it (or a glob matching either), or a file
    /// in the output directory.
    fn copied_by(&self, source: &str) -> bool {
        // `COPY --from=build /out/${APP} /app`: the directory before the variable decides.
        let source = match source.find('$') {
            Some(i) => source[..i].rsplit_once('/').map_or("/", |(dir, _)| dir),
            None => source,
        };
        let source = if source.is_empty() { "/" } else { source };
        let covers = |path: &str| source_covers(source, path.trim_start_matches('/'));
        match self {
            GoOutput::File(path) | GoOutput::Directory(path) => {
                covers(path) || is_within(source, path)
            }
            GoOutput::Unknown => false,
        }
    }
}

/// What a Go build writes, seen from the working directory `cwd`.
fn go_output(build: &tools::GoBuild<'_>, cwd: Option<&str>, variables: &Variables) -> GoOutput {
    let known = |path: &str| resolve(cwd, &variables.expand_known(path)?);
    if build.install {
        let bin = variables
            .get("GOBIN")
            .map(str::to_owned)
            .or_else(|| variables.get("GOPATH").map(|p| format!("{p}/bin")))
            // The golang images set GOPATH=/go; elsewhere Go defaults to $HOME/go.
            .unwrap_or_else(|| "/go/bin".to_owned());
        return known(&bin).map_or(GoOutput::Unknown, GoOutput::Directory);
    }
    if let Some(output) = build.output {
        return match known(output) {
            Some(path) if output.ends_with('/') => GoOutput::Directory(path),
            Some(path) => GoOutput::File(path),
            None => GoOutput::Unknown,
        };
    }
    // No -o: one package's binary lands in the working directory, named after the package.
    let Some(cwd) = cwd else {
        return GoOutput::Unknown;
    };
    match build.packages.as_slice() {
        [] | ["."] => {
            known(cwd.rsplit('/').next().unwrap_or(cwd)).map_or(GoOutput::Unknown, GoOutput::File)
        }
        [package] if !package.contains("...") && !package.contains('$') => {
            let name = package
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(package);
            known(name).map_or(GoOutput::Unknown, GoOutput::File)
        }
        _ => GoOutput::Directory(cwd.to_owned()),
    }
}

/// Whether the root of a stage's chain has a C compiler. Images on Alpine (golang:*-alpine
/// included) have none unless the Dockerfile installs one, and without one Go turns cgo off by
/// itself; every other image is taken to have one (the Debian golang images do).
fn has_c_compiler(ctx: &Ctx<'_>, index: usize) -> bool {
    let alpine = ctx.root_image(index).is_some_and(|image| {
        image.short_name() == "alpine" || image.tag.as_deref().is_some_and(|t| t.contains("alpine"))
    });
    let installs_compiler = |step: &Step<'_>| {
        step.script.as_ref().is_some_and(|script| {
            script
                .commands()
                .iter()
                .filter_map(tools::system_install)
                .flatten()
                .any(tools::is_c_compiler_package)
        })
    };
    !alpine || ctx.chain_steps(index).any(installs_compiler)
}

/// The RUNs of a stage (and its bases) that link a Go binary with cgo possibly enabled, and
/// where each puts its binary.
fn cgo_builds<'a>(ctx: &Ctx<'a>, index: usize) -> Vec<(&'a Step<'a>, GoOutput)> {
    if !has_c_compiler(ctx, index) {
        return Vec::new();
    }
    let mut variables = Variables::new(ctx.model.file.escape);
    // `go env -w CGO_ENABLED=…` persists for later RUNs; the environment variable wins over it.
    let mut go_env: Option<bool> = None;
    let mut builds = Vec::new();
    for (step, _, workdir) in steps_with_workdir(ctx, index) {
        variables.observe(step);
        let Some(script) = &step.script else {
            continue;
        };
        let mut disabled = variables
            .get("CGO_ENABLED")
            .map(|v| v == "0")
            .or(go_env)
            .unwrap_or(false);
        let mut cwd = workdir;
        for command in script.commands() {
            follow_cd(&mut cwd, command);
            if let Some(off) = cgo_setting(command) {
                if command.program() == "go" {
                    go_env = Some(off);
                }
                disabled = off;
            }
            let cgo_off = command
                .assignment("CGO_ENABLED")
                .map_or(disabled, |v| v == "0");
            if let Some(build) = tools::go_build(command)
                && !cgo_off
                && !tools::go_build_is_static(command)
            {
                builds.push((step, go_output(&build, cwd.as_deref(), &variables)));
            }
        }
    }
    builds
}

/// `export CGO_ENABLED=…` or `go env -w CGO_ENABLED=…`: whether it turns cgo off.
fn cgo_setting(command: &SimpleCommand) -> Option<bool> {
    let args = command.args();
    let assignment = match command.program() {
        "export" => args.iter().find_map(|a| a.strip_prefix("CGO_ENABLED=")),
        "go" if args.first().is_some_and(|a| a == "env") && args.iter().any(|a| a == "-w") => {
            args.iter().find_map(|a| a.strip_prefix("CGO_ENABLED="))
        }
        _ => None,
    }?;
    Some(assignment == "0")
}

/// SdkImageInFinalStage, CompilerInRuntime and NpmDevDependenciesInRuntime: what the final
/// image carries that only a build needs.
fn final_stage(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    let target = ctx.target();
    if !is_runtime_image(ctx, target) {
        return;
    }
    final_stage_without_user(ctx, target, sink);
    npm_dev_dependencies(ctx, target, sink);
    if !ctx.target_copies_from_stages() {
        return;
    }
    if let (Some(view), Some(image)) = (ctx.model.stages.get(target), ctx.root_image(target))
        && let Some((contents, instead)) = image.sdk_contents()
    {
        let tag = image
            .tag
            .as_deref()
            .map(|t| format!(":{t}"))
            .unwrap_or_default();
        sink.report(
            &rules::SdkImageInFinalStage,
            view.at_from(),
            format!(
                "The final stage runs on {}{tag}, which carries {contents}, although an earlier stage already builds the artifact",
                image.short_name()
            ),
            format!("copy the build output into {instead}"),
        );
    }
    for step in ctx.chain_steps(target) {
        let Some(script) = &step.script else {
            continue;
        };
        let removed: Vec<&str> = script
            .commands()
            .iter()
            .filter_map(tools::system_remove)
            .flatten()
            .collect();
        // `apt-get purge -y $buildDeps`: whatever the variable holds is removed again.
        if removed.iter().any(|p| p.contains('$')) {
            continue;
        }
        let mut kept: Vec<&str> = Vec::new();
        for command in script.commands() {
            let Some(packages) = tools::system_install(command) else {
                continue;
            };
            if tools::apk_virtual(command).is_some_and(|group| removed.contains(&group)) {
                continue;
            }
            for package in packages {
                // Each name once: the branches of an `if`/`else` install the same tools twice.
                if tools::is_compiler_package(package)
                    && !removed.contains(&package)
                    && !kept.contains(&package)
                {
                    kept.push(package);
                }
            }
        }
        if !kept.is_empty() {
            sink.report(
                &rules::CompilerInRuntime,
                step.at(),
                format!(
                    "The final stage installs {} although an earlier stage does the building: the toolchain ships in the image",
                    kept.join(", ")
                ),
                "install build tools in the build stage and copy only its output; if something \
                 must compile here, remove the tools in the same RUN (`apk add --virtual \
                 .build-deps … && … && apk del .build-deps`)",
            );
        }
    }
}

/// Programs that let an entrypoint start as root and drop to another user itself (the
/// official database images do): such an image has a reason to have no USER.
const PRIVILEGE_DROPPERS: [&str; 6] = [
    "gosu",
    "su-exec",
    "setpriv",
    "runuser",
    "s6-setuidgid",
    "chpst",
];

/// FinalStageWithoutUser: a runtime image whose stages never say USER runs as root, unless its
/// base image starts as another user or it drops privileges at start.
fn final_stage_without_user(ctx: &Ctx<'_>, target: usize, sink: &mut Sink<'_>) {
    let Some(view) = ctx.model.stages.get(target) else {
        return;
    };
    let mentions_dropper = |words: &[String]| {
        words
            .iter()
            .any(|w| PRIVILEGE_DROPPERS.iter().any(|d| w.contains(d)))
    };
    let reason_for_no_user = ctx
        .chain_steps(target)
        .any(|step| match &step.command.kind {
            CommandKind::User(_) => true,
            CommandKind::Cmd(line) | CommandKind::Entrypoint(line) => mentions_dropper(&line.args),
            _ => step
                .script
                .as_ref()
                .is_some_and(|script| script.commands().iter().any(|c| mentions_dropper(&c.words))),
        });
    // A named build context stands for an image whose USER is not known.
    if reason_for_no_user
        || ctx.is_on_named_context(target)
        || ctx
            .root_image(target)
            .is_some_and(|i| i.starts_unprivileged())
    {
        return;
    }
    sink.report(
        &rules::FinalStageWithoutUser,
        view.at_from(),
        "The final image runs as root: neither this stage nor the stages it is built on set a USER",
        "create an unprivileged user (or use a numeric one) and end with `USER app` or \
         `USER 65532:65532`; a compromised process is then not root in the container",
    );
}

/// Stage-name words that mark an image for development or testing.
const DEVELOPMENT_WORDS: [&str; 10] = [
    "dev",
    "devel",
    "development",
    "devcontainer",
    "test",
    "tests",
    "testing",
    "ci",
    "debug",
    "local",
];

/// Whether the target is an image that runs an application in production. A final stage
/// without CMD or ENTRYPOINT is a base for other images (SDK images are built exactly like
/// that), and one named `dev`, `test`, `debug`, … is a development image: for those, toolchains
/// and devDependencies are the point.
fn is_runtime_image(ctx: &Ctx<'_>, target: usize) -> bool {
    let development = ctx
        .model
        .stages
        .get(target)
        .and_then(|view| view.stage.name.as_deref())
        .is_some_and(|name| {
            name.split(['-', '_', '.'])
                .any(|word| DEVELOPMENT_WORDS.contains(&word))
        });
    !development && has_start_command(ctx, target)
}

/// Whether a stage (or a stage it is built on) says what to run: CMD or ENTRYPOINT.
fn has_start_command(ctx: &Ctx<'_>, index: usize) -> bool {
    ctx.chain_steps(index).any(|step| {
        matches!(
            step.command.kind,
            CommandKind::Cmd(_) | CommandKind::Entrypoint(_)
        )
    })
}

/// NpmDevDependenciesInRuntime: devDependencies installed into the final image and never
/// pruned.
fn npm_dev_dependencies(ctx: &Ctx<'_>, target: usize, sink: &mut Sink<'_>) {
    let mut variables = Variables::new(ctx.model.file.escape);
    let mut installs: Vec<(&Step<'_>, String)> = Vec::new();
    for step in ctx.chain_steps(target) {
        variables.observe(step);
        let Some(script) = &step.script else {
            continue;
        };
        // npm reads its configuration from the environment, too.
        let production = variables.get("NODE_ENV") == Some("production")
            || variables.get("NPM_CONFIG_OMIT") == Some("dev")
            || variables.get("npm_config_omit") == Some("dev")
            || variables.get("NPM_CONFIG_PRODUCTION") == Some("true");
        for command in script.commands() {
            let omits = production || tools::npm_omits_dev(command);
            match tools::npm(command) {
                Some(Npm::Ci | Npm::InstallAll) if !omits => {
                    installs.push((step, display(command)))
                }
                Some(Npm::Prune) if omits => installs.clear(),
                _ => {}
            }
        }
    }
    if !installs.is_empty() && no_dev_dependencies(ctx, target) {
        return;
    }
    for (step, command) in installs {
        sink.report(
            &rules::NpmDevDependenciesInRuntime,
            step.at(),
            format!("`{command}` in the final image also installs devDependencies, and nothing prunes them"),
            "use `npm ci --omit=dev` (or `ENV NODE_ENV=production`); if the build needs \
             devDependencies, build in an earlier stage, or `npm prune --omit=dev` after building",
        );
    }
}

/// Whether the `package.json` files the final image copies from the context are known and
/// declare no devDependencies (then `npm ci` installs nothing to prune). Without a context,
/// or when none of them can be found there, the answer is no: the rule keeps its guess.
fn no_dev_dependencies(ctx: &Ctx<'_>, target: usize) -> bool {
    let Some(root) = &ctx.model.options.context_dir else {
        return false;
    };
    let mut manifests = BTreeSet::new();
    for step in ctx.chain_steps(target) {
        for source in context_sources(step) {
            let source = source
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned();
            let parent = source.rsplit_once('/').map_or("", |(dir, _)| dir);
            let candidates = [
                source.clone(),
                format!("{source}/package.json"),
                format!("{parent}/package.json"),
            ];
            for candidate in candidates {
                let candidate = candidate.trim_start_matches("./").trim_start_matches('/');
                let candidate = candidate.strip_prefix("./").unwrap_or(candidate);
                if (candidate == "package.json" || candidate.ends_with("/package.json"))
                    && (source == "." || source_covers(&source, candidate))
                    && root.join(candidate).is_file()
                {
                    manifests.insert(candidate.to_owned());
                }
            }
        }
    }
    !manifests.is_empty()
        && manifests.iter().all(|manifest| {
            let Ok(text) = std::fs::read_to_string(root.join(manifest)) else {
                return false;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                return false;
            };
            json.get("devDependencies")
                .and_then(serde_json::Value::as_object)
                .is_none_or(serde_json::Map::is_empty)
        })
}

/// UnreachableStage.
fn unreachable_stages(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    let target_name = ctx
        .plan
        .stages
        .get(ctx.target())
        .map_or("", |s| s.display_name.as_str());
    for (view, planned) in ctx.model.stages.iter().zip(&ctx.plan.stages) {
        if planned.needed {
            continue;
        }
        let name = &planned.display_name;
        sink.report(
            &rules::UnreachableStage,
            view.at_from(),
            format!("Stage '{name}' is not needed to build '{target_name}', so it is skipped"),
            match &view.stage.name {
                Some(stage) => {
                    format!("build it with `--target {stage}`, or delete it if nothing uses it")
                }
                None => "name it (`AS …`) to build it with --target, or delete it".to_owned(),
            },
        );
    }
}

/// ChownRecursiveAfterCopy: a recursive chown/chmod over files an earlier COPY or ADD put in
/// place rewrites them all into a new layer.
fn chown_after_copy(ctx: &Ctx<'_>, view: &StageView<'_>, sink: &mut Sink<'_>) {
    let mut copied: Vec<(String, usize)> = Vec::new();
    for (step, own, workdir) in steps_with_workdir(ctx, view.stage.index) {
        match &step.command.kind {
            CommandKind::Copy(copy) => {
                if let Some(dest) = resolve(workdir.as_deref(), &copy.paths.dest.value) {
                    copied.push((dest, step.instruction.start_line));
                }
            }
            CommandKind::Add(add) => {
                if let Some(dest) = resolve(workdir.as_deref(), &add.paths.dest.value) {
                    copied.push((dest, step.instruction.start_line));
                }
            }
            _ => {}
        }
        let (Some(script), true) = (&step.script, own) else {
            continue;
        };
        let mut cwd = workdir.clone();
        for command in script.commands() {
            if follow_cd(&mut cwd, command) {
                continue;
            }
            let Some(paths) = recursive_ownership_paths(command) else {
                continue;
            };
            // Only a path that holds everything a COPY wrote is sure to rewrite copied files:
            // a subdirectory of the destination may well be new (a build output).
            let overlap = paths.iter().find_map(|path| {
                let path = resolve(cwd.as_deref(), path)?;
                copied
                    .iter()
                    .find(|(dest, _)| is_within(dest, &path))
                    .map(|(_, line)| (path, *line))
            });
            if let Some((path, line)) = overlap {
                sink.report(
                    &rules::ChownRecursiveAfterCopy,
                    step.at(),
                    format!(
                        "`{}` rewrites {path}, which the COPY on line {line} just added: every file is stored twice, once per layer",
                        display(command)
                    ),
                    "copy with the owner and mode you want (`COPY --chown=user:group`, \
                     `COPY --chmod=…`) and drop the recursive change",
                );
                break;
            }
        }
    }
}

/// The steps of a stage and of the stages it is built on, in order, each with whether it
/// belongs to the stage itself and the working directory it runs in (`None` when a variable
/// the Dockerfile does not set hides it).
fn steps_with_workdir<'a>(
    ctx: &Ctx<'a>,
    index: usize,
) -> Vec<(&'a Step<'a>, bool, Option<String>)> {
    let mut variables = Variables::new(ctx.model.file.escape);
    let mut workdir = Some("/".to_owned());
    ctx.steps_through(index)
        .map(|(step, own)| {
            variables.observe(step);
            if let CommandKind::Workdir(path) = &step.command.kind {
                workdir = variables
                    .expand_known(&path.value)
                    .and_then(|path| resolve(workdir.as_deref(), &path));
            }
            (step, own, workdir.clone())
        })
        .collect()
}

/// Follows a `cd` in a script: whether `command` was one (then `cwd` is where it went).
fn follow_cd(cwd: &mut Option<String>, command: &SimpleCommand) -> bool {
    if command.program() != "cd" {
        return false;
    }
    *cwd = command
        .args()
        .first()
        .and_then(|dir| resolve(cwd.as_deref(), dir));
    true
}

/// CopyBuilderSourceTree: the final image copies, out of a builder, a directory that holds the
/// whole build context the builder received: sources, tests, build files and whatever the build
/// left next to them ship in the image.
fn copy_builder_source_tree(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    for step in ctx.chain_steps(ctx.target()) {
        let CommandKind::Copy(copy) = &step.command.kind else {
            continue;
        };
        let Some(builder) = copy
            .from
            .as_ref()
            .and_then(|f| ctx.model.stage_named(&f.value))
        else {
            continue;
        };
        let trees: Vec<(String, usize)> = steps_with_workdir(ctx, builder)
            .into_iter()
            .filter(|(step, _, _)| context_sources(step).iter().any(|s| is_whole_context(s)))
            .filter_map(|(step, _, workdir)| {
                let CommandKind::Copy(tree) = &step.command.kind else {
                    return None;
                };
                let dest = resolve(workdir.as_deref(), &tree.paths.dest.value)?;
                Some((dest, step.instruction.start_line))
            })
            .collect();
        let copied = copy.paths.sources.iter().find_map(|source| {
            let source = clean_path(&format!("/{}", source.value));
            if source.contains('$') {
                return None;
            }
            let (tree, line) = trees.iter().find(|(tree, _)| is_within(tree, &source))?;
            Some((source, tree, *line))
        });
        if let Some((source, tree, line)) = copied {
            sink.report(
                &rules::CopyBuilderSourceTree,
                step.at(),
                format!(
                    "COPY --from={} {source} takes the builder's {tree}, where line {line} copied the whole build context: the sources ship in the final image",
                    copy.from.as_ref().map_or("", |f| f.value.as_str())
                ),
                "copy only what the build produced (the binary, `dist/`, the installed \
                 dependencies), or for an interpreted app, copy its sources from the context \
                 and the dependencies from the builder",
            );
        }
    }
}

/// The paths of `chown -R owner paths…` / `chmod -R mode paths…`.
fn recursive_ownership_paths(command: &SimpleCommand) -> Option<Vec<&str>> {
    if !matches!(command.program(), "chown" | "chmod" | "chgrp") {
        return None;
    }
    let args = command.args();
    let recursive = args.iter().any(|a| {
        a == "--recursive" || (a.starts_with('-') && !a.starts_with("--") && a.contains('R'))
    });
    if !recursive {
        return None;
    }
    let by_reference = args.iter().any(|a| a.starts_with("--reference"));
    let operands = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str);
    Some(operands.skip(usize::from(!by_reference)).collect())
}

/// An absolute, clean path for `path` seen from `dir`; `None` when a variable (or an unknown
/// directory) makes it unknowable.
fn resolve(dir: Option<&str>, path: &str) -> Option<String> {
    if path.contains('$') {
        return None;
    }
    let path = path.trim_end_matches("/*").trim_end_matches("/.");
    if path.starts_with('/') {
        return Some(clean_path(path));
    }
    Some(clean_path(&format!("{}/{path}", dir?)))
}

/// Whether `inner` is `outer` or inside it.
fn is_within(inner: &str, outer: &str) -> bool {
    outer == "/"
        || inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}
