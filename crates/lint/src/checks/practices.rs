//! Widely taught Dockerfile practices (the ground hadolint covers), made multi-stage aware:
//! rules about image size only look at the stages that end up in the image.

use super::{Variables, display};
use crate::image::ImageRef;
use crate::model::{At, Ctx, Model, Sink, Step};
use crate::rules;
use crate::script::{Script, has_option};
use crate::tools;
use stagecraft_dockerfile::{CommandKind, suggest};
use stagecraft_plan::Base;
use std::collections::BTreeSet;

pub(crate) fn check(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    let shipped: BTreeSet<usize> = ctx
        .chain(ctx.target())
        .iter()
        .map(|view| view.stage.index)
        .collect();
    for view in ctx.linted() {
        let index = view.stage.index;
        base_image_tag(ctx, index, sink);
        let mut facts = StageFacts::new(ctx.model.file.escape, ctx.is_windows(index));
        for (step, own) in ctx.steps_through(index) {
            if own {
                check_step(step, &facts, shipped.contains(&index), sink);
            }
            facts.observe(step);
        }
    }
    last_user_root(ctx, sink);
}

/// What the steps so far (in the stage and the stages it is built on) have set up.
struct StageFacts {
    variables: Variables,
    /// A SHELL instruction chose the shell.
    shell_set: bool,
    /// Something wrote `APT::Install-Recommends` configuration.
    recommends_configured: bool,
    /// The stage runs on Windows (RUN goes to `cmd` or PowerShell).
    windows: bool,
    /// Something wrote `APT::Get::Assume-Yes` configuration.
    assume_yes_configured: bool,
    /// A WORKDIR set the working directory.
    workdir_set: bool,
}

impl StageFacts {
    fn new(escape: char, windows: bool) -> Self {
        StageFacts {
            variables: Variables::new(escape),
            shell_set: false,
            recommends_configured: false,
            windows,
            assume_yes_configured: false,
            workdir_set: false,
        }
    }

    fn observe(&mut self, step: &Step<'_>) {
        self.variables.observe(step);
        self.shell_set |= matches!(step.command.kind, CommandKind::Shell(_));
        self.workdir_set |= matches!(step.command.kind, CommandKind::Workdir(_));
        self.recommends_configured |= step
            .script
            .as_ref()
            .is_some_and(|script| script.any_word(|w| w.contains("Install-Recommends")));
        self.assume_yes_configured |= step
            .script
            .as_ref()
            .is_some_and(|script| script.any_word(|w| w.contains("Assume-Yes")));
    }
}

fn check_step(step: &Step<'_>, facts: &StageFacts, shipped: bool, sink: &mut Sink<'_>) {
    match &step.command.kind {
        CommandKind::Add(_) => {
            add_for_local_file(step, sink);
            add_url_without_checksum(step, sink);
        }
        CommandKind::Expose(ports) => expose_out_of_range(step, ports, sink),
        CommandKind::Run(run) => {
            let Some(script) = &step.script else {
                return;
            };
            if shipped {
                image_bloat(step, script, facts, sink);
                apt_get_upgrade(step, script, sink);
                pip_install_unpinned(step, script, sink);
            }
            cd_instead_of_workdir(step, script, facts, shipped, sink);
            sudo_in_run(step, script, sink);
            apt_get_install_without_yes(step, script, facts, sink);
            if run.command.prepend_shell && !facts.shell_set && !facts.windows {
                pipefail_missing(step, script, sink);
            }
        }
        _ => {}
    }
}

/// PipefailMissing: a download piped into a command that runs, unpacks or saves whatever
/// arrives. Other pipes are left alone: in `echo … | sha256sum -c -` or `… | grep -q`, the last
/// command's status is the one that matters, and it fails when its input is wrong.
fn pipefail_missing(step: &Step<'_>, script: &Script, sink: &mut Sink<'_>) {
    // `powershell … | …` or `cmd /c …`: not a POSIX pipeline, whatever the image.
    if script
        .commands()
        .first()
        .is_some_and(|c| NON_POSIX_SHELLS.contains(&c.program().to_lowercase().as_str()))
    {
        return;
    }
    let Some((writer, reader)) = script
        .unguarded_pipes()
        .into_iter()
        .find(|(writer, reader)| tools::is_download(writer) && tools::trusts_its_input(reader))
    else {
        return;
    };
    let (download, consumer) = (writer.program(), reader.program());
    sink.report(
        &rules::PipefailMissing,
        step.at(),
        format!(
            "`{download} … | {consumer}` without `set -o pipefail`: when the download fails, \
             `{consumer}` gets nothing (or half a file), succeeds, and so does the step"
        ),
        "start the command with `set -o pipefail &&` (BusyBox/Alpine sh supports it); Debian's \
         /bin/sh (dash) does not, so there declare SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \
         \"-c\"] first, or download to a file and check it before using it",
    );
}

/// Programs that start a shell whose pipes are not POSIX pipes.
const NON_POSIX_SHELLS: [&str; 5] = ["powershell", "powershell.exe", "pwsh", "cmd", "cmd.exe"];

/// SudoInRun: RUN runs as the stage's USER; `sudo` adds a setuid program to the image and
/// behaves differently without a terminal.
fn sudo_in_run(step: &Step<'_>, script: &Script, sink: &mut Sink<'_>) {
    let Some(command) = script.commands().iter().find(|c| c.sudo) else {
        return;
    };
    sink.report(
        &rules::SudoInRun,
        step.at(),
        format!(
            "RUN uses `sudo {}`: build steps already run as the stage's USER",
            display(command)
        ),
        "drop sudo; run the steps that need root before `USER <unprivileged user>` (or switch \
         with `USER root` and back)",
    );
}

/// AptGetInstallWithoutYes: without a terminal, apt's "Do you want to continue?" prompt reads
/// end-of-file and aborts, failing the build whenever the install pulls in more packages.
fn apt_get_install_without_yes(
    step: &Step<'_>,
    script: &Script,
    facts: &StageFacts,
    sink: &mut Sink<'_>,
) {
    if facts.assume_yes_configured {
        return;
    }
    let commands = script.commands();
    let unanswered = commands.iter().enumerate().find(|(i, c)| {
        let fed_by_yes = i
            .checked_sub(1)
            .and_then(|previous| commands.get(previous))
            .is_some_and(|p| p.pipes_out && p.program() == "yes");
        tools::apt_install(c).is_some() && !tools::apt_assumes_yes(c) && !fed_by_yes
    });
    if let Some((_, command)) = unanswered {
        let program = command.program();
        sink.report(
            &rules::AptGetInstallWithoutYes,
            step.at(),
            format!(
                "`{program} install` without -y: the build cannot answer its confirmation prompt, \
                 so the install aborts as soon as it needs one"
            ),
            format!("write `{program} install -y …`"),
        );
    }
}

/// AptGetUpgrade: an upgrade in a shipped stage makes the image depend on the day it was built
/// and duplicates the base image's files in a new layer.
fn apt_get_upgrade(step: &Step<'_>, script: &Script, sink: &mut Sink<'_>) {
    let Some(command) = script
        .commands()
        .iter()
        .find(|c| tools::apt_upgrade(c).is_some())
    else {
        return;
    };
    sink.report(
        &rules::AptGetUpgrade,
        step.at(),
        format!(
            "`{}` in the image: its packages depend on the day of the build, and every upgraded \
             file is stored again in this layer",
            display(command)
        ),
        "use a newer (or regularly rebuilt) tag of the base image; if one package needs a fix, \
         install that package at the version you need",
    );
}

/// PipInstallUnpinned: packages named without a version in an image that ships.
fn pip_install_unpinned(step: &Step<'_>, script: &Script, sink: &mut Sink<'_>) {
    let mut unpinned: Vec<&str> = Vec::new();
    // Each name once: the branches of an `if`/`else` install the same packages twice.
    for name in script.commands().iter().flat_map(tools::pip_unpinned) {
        if !unpinned.contains(&name) {
            unpinned.push(name);
        }
    }
    let Some(first) = unpinned.first() else {
        return;
    };
    sink.report(
        &rules::PipInstallUnpinned,
        step.at(),
        format!(
            "pip install of {} without a version: each build may ship a different release",
            unpinned.join(", ")
        ),
        format!(
            "pin it (`{first}==<version>`), or install from a requirements file with pinned \
             versions (or a constraints file, `-c`)"
        ),
    );
}

/// ExposePortOutOfRange: a port (or either end of a range) above 65535; BuildKit refuses it.
fn expose_out_of_range(
    step: &Step<'_>,
    ports: &[stagecraft_dockerfile::Word],
    sink: &mut Sink<'_>,
) {
    for port in ports {
        let value = &port.value;
        let container = value.rsplit(':').next().unwrap_or(value);
        let number = container.split('/').next().unwrap_or(container);
        // Digits that do not fit in a u32 are out of range too.
        let out_of_range = !value.contains('$')
            && number.split('-').any(|end| {
                !end.is_empty()
                    && end.bytes().all(|b| b.is_ascii_digit())
                    && end.parse::<u32>().map_or(true, |n| n > 65535)
            });
        if out_of_range {
            sink.report(
                &rules::ExposePortOutOfRange,
                At::span(step.instruction, port.span),
                format!("EXPOSE {value}: ports go from 0 to 65535"),
                "fix the port number (a typo, or a range written without its `-`?)",
            );
        }
    }
}

/// AddUrlWithoutChecksum: `ADD https://…` trusts whatever the server sends that day.
fn add_url_without_checksum(step: &Step<'_>, sink: &mut Sink<'_>) {
    let CommandKind::Add(add) = &step.command.kind else {
        return;
    };
    if add.checksum.is_some() {
        return;
    }
    // Git sources are pinned by their ref, not by a checksum of a download. BuildKit takes an
    // http(s) URL for a repository when its path, before any query or fragment, ends in `.git`
    // (`…/tool.git#v1`, `…/tool.git?ref=v1&commit=…`).
    let is_repository = |url: &str| {
        let without_fragment = url.split('#').next().unwrap_or(url);
        let path = without_fragment
            .split('?')
            .next()
            .unwrap_or(without_fragment);
        path.ends_with(".git")
    };
    let url = add
        .paths
        .sources
        .iter()
        .map(|s| s.value.as_str())
        .find(|source| {
            (source.starts_with("https://") || source.starts_with("http://"))
                && !is_repository(source)
        });
    if let Some(url) = url {
        sink.report(
            &rules::AddUrlWithoutChecksum,
            step.at(),
            format!("ADD {url} without --checksum: the build uses whatever the server sends"),
            "add `--checksum=sha256:<digest of the file>` (`sha256sum` of a trusted download): \
             the build then fails if the content changes",
        );
    }
}

/// UntaggedBaseImage and LatestTag.
fn base_image_tag(ctx: &Ctx<'_>, index: usize, sink: &mut Sink<'_>) {
    let (Some(view), Some(Base::Image(reference))) = (
        ctx.model.stages.get(index),
        ctx.plan.stages.get(index).map(|s| &s.base),
    ) else {
        return;
    };
    // An image named through a variable is chosen by whoever builds (`--build-arg`); as in
    // hadolint, only images written out in the FROM line are judged. (A named build context
    // is not an image at all: its base is `Base::Context`.)
    if view.stage.base.value.contains('$') {
        return;
    }
    let Some(image) = ImageRef::parse(reference) else {
        return;
    };
    let at = At::span(view.from, view.stage.base.span);
    let name = image.short_name();
    let moving =
        image.is_untagged() || (image.tag.as_deref() == Some("latest") && image.digest.is_none());
    // An image the project's own build scripts make just before is not pulled: its tag pins
    // nothing.
    if moving && super::local_images::built_by_project(&name, &project_dirs(ctx)) {
        return;
    }
    if image.is_untagged() {
        sink.report(
            &rules::UntaggedBaseImage,
            at,
            format!("Base image '{reference}' has no tag, so every build pulls whatever 'latest' is that day"),
            format!("pin a version, e.g. `FROM {name}:<version>` (add `@sha256:…` to pin exactly)"),
        );
    } else if image.tag.as_deref() == Some("latest") && image.digest.is_none() {
        sink.report(
            &rules::LatestTag,
            at,
            format!(
                "Base image '{reference}' uses the 'latest' tag, which moves with every release"
            ),
            format!("pin a version, e.g. `FROM {name}:<version>` (add `@sha256:…` to pin exactly)"),
        );
    }
}

/// The directories whose build files may build a base image: the context, the Dockerfile's
/// own directory, and the directories above it up to the repository's root (the one holding
/// `.git`), where a project's Makefile usually is.
fn project_dirs(ctx: &Ctx<'_>) -> Vec<std::path::PathBuf> {
    /// How far above the Dockerfile a repository root is looked for.
    const MAX_LEVELS: usize = 4;
    let mut dirs: Vec<std::path::PathBuf> = ctx.model.options.context_dir.iter().cloned().collect();
    let dockerfile = std::path::Path::new(ctx.model.file.source.name());
    if !dockerfile.is_file() {
        return dirs;
    }
    let Ok(dockerfile) = dockerfile.canonicalize() else {
        return dirs;
    };
    let mut above: Vec<std::path::PathBuf> = Vec::new();
    for dir in dockerfile.ancestors().skip(1).take(MAX_LEVELS + 1) {
        above.push(dir.to_path_buf());
        if dir.join(".git").exists() {
            break;
        }
    }
    // Without a repository root in reach, only the Dockerfile's own directory is the project's.
    if !above.last().is_some_and(|dir| dir.join(".git").exists()) {
        above.truncate(1);
    }
    for dir in above {
        let known = dirs
            .iter()
            .any(|d| d.canonicalize().is_ok_and(|d| d == dir));
        if !known {
            dirs.push(dir);
        }
    }
    dirs
}

/// AptGetNoInstallRecommends, AptListsNotCleaned, PipNoCacheDir and ApkAddNoCache: caches and
/// extras left in the layers of a stage that is shipped.
fn image_bloat(step: &Step<'_>, script: &Script, facts: &StageFacts, sink: &mut Sink<'_>) {
    let mounts = step.mounts();
    let cache_at = |prefix: &str| {
        mounts.iter().any(|m| {
            m.kind == "cache" && m.target.as_deref().is_some_and(|t| t.starts_with(prefix))
        })
    };
    let mentions = |prefix: &str| script.any_word(|w| w.starts_with(prefix));
    let commands = script.commands();

    let lacks_no_recommends = commands.iter().find(|c| {
        tools::apt_install(c).is_some_and(|packages| !packages.is_empty())
            && !c.has_option(&["--no-install-recommends"])
            && !c.args().iter().any(|a| a.contains("Install-Recommends="))
    });
    if let Some(command) = lacks_no_recommends
        && !facts.recommends_configured
    {
        // Named as written: `apt install` or `apt-get install`.
        sink.report(
            &rules::AptGetNoInstallRecommends,
            step.at(),
            format!(
                "{} install without --no-install-recommends also installs every recommended package",
                command.program()
            ),
            "add --no-install-recommends and name the packages you need",
        );
    }
    if commands.iter().any(tools::apt_update)
        && !commands.iter().any(tools::apt_dist_clean)
        && !mentions("/var/lib/apt/lists")
        && !cache_at("/var/lib/apt")
    {
        sink.report(
            &rules::AptListsNotCleaned,
            step.at(),
            "apt-get update downloads package lists that stay in this layer",
            "end the same RUN with `&& rm -rf /var/lib/apt/lists/*` (a later RUN cannot shrink \
             this layer), or mount a cache at /var/lib/apt",
        );
    }
    let pip_caches = commands.iter().any(|c| {
        tools::pip_install(c).is_some_and(|args| !has_option(args, &["--no-cache-dir"]))
            && c.assignment("PIP_NO_CACHE_DIR").is_none()
    });
    if pip_caches && facts.variables.get("PIP_NO_CACHE_DIR").is_none() && !step.has_cache_mount() {
        sink.report(
            &rules::PipNoCacheDir,
            step.at(),
            "pip install keeps its download cache (often hundreds of MB) in the image",
            "add --no-cache-dir (or ENV PIP_NO_CACHE_DIR=1), or use \
             `RUN --mount=type=cache,target=/root/.cache/pip` to keep the cache out of the layer",
        );
    }
    // `--no-network` installs from local files only: no index is downloaded.
    let apk_caches = commands
        .iter()
        .any(|c| tools::apk_add(c).is_some() && !c.has_option(&["--no-cache", "--no-network"]));
    if apk_caches
        && !mentions("/var/cache/apk")
        && !cache_at("/var/cache/apk")
        && !cache_at("/etc/apk/cache")
    {
        sink.report(
            &rules::ApkAddNoCache,
            step.at(),
            "apk add keeps the package index in /var/cache/apk in this layer",
            "use `apk add --no-cache …` (no `apk update` needed then)",
        );
    }
}

/// CdInsteadOfWorkdir: a RUN that begins by changing directory wants a WORKDIR.
///
/// In a stage that ships, WORKDIR is also the container's working directory, so it is only
/// the right fix while nothing has chosen one: after a WORKDIR, or for a step in a system
/// directory (`cd /usr/local/bin && ln -s …`), a WORKDIR would move where the program starts.
fn cd_instead_of_workdir(
    step: &Step<'_>,
    script: &Script,
    facts: &StageFacts,
    shipped: bool,
    sink: &mut Sink<'_>,
) {
    let Some(first) = script.commands().first() else {
        return;
    };
    if first.program() != "cd" {
        return;
    }
    let Some(dir) = first.args().first() else {
        return;
    };
    // Temporary directories are a scratch area for this RUN only, which WORKDIR is not for.
    let temporary = ["/tmp", "/var/tmp", "$TMPDIR", "${TMPDIR", "$(mktemp", "-"]
        .iter()
        .any(|prefix| dir.starts_with(prefix));
    if temporary {
        return;
    }
    if shipped && (facts.workdir_set || is_system_directory(dir)) {
        return;
    }
    sink.report(
        &rules::CdInsteadOfWorkdir,
        step.at(),
        format!("RUN starts with `cd {dir}`: the directory change ends with this RUN"),
        format!("put `WORKDIR {dir}` before the RUN: it applies to every later instruction and creates the directory"),
    );
}

/// Directories of the operating system and its packages (`/usr/local/…` included), which a
/// container is not started in; `/app`, `/opt/…` or `/srv/…` are the application's own.
fn is_system_directory(dir: &str) -> bool {
    const SYSTEM: [&str; 9] = [
        "/usr", "/etc", "/var", "/lib", "/lib64", "/bin", "/sbin", "/root", "/boot",
    ];
    let dir = dir.trim_end_matches('/');
    dir.is_empty()
        || SYSTEM
            .iter()
            .any(|system| dir == *system || dir.starts_with(&format!("{system}/")))
}

/// Archives ADD unpacks: the one thing ADD does with a local file that COPY does not.
const ARCHIVE_SUFFIXES: [&str; 14] = [
    ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst", ".tzst",
    ".gz", ".bz2", ".xz", ".zst",
];

/// AddForLocalFile.
fn add_for_local_file(step: &Step<'_>, sink: &mut Sink<'_>) {
    let CommandKind::Add(add) = &step.command.kind else {
        return;
    };
    let local = add
        .paths
        .sources
        .iter()
        .map(|s| s.value.as_str())
        .find(|source| {
            !super::dispatch::is_remote(source)
                && !source.contains('$')
                && !ARCHIVE_SUFFIXES
                    .iter()
                    .any(|suffix| source.to_lowercase().ends_with(suffix))
        });
    let local = local.or_else(|| add.paths.inline.first().map(|inline| inline.path.as_str()));
    if let Some(source) = local {
        sink.report(
            &rules::AddForLocalFile,
            step.at(),
            format!("ADD used for the local file '{source}': ADD also fetches URLs and unpacks archives, COPY only copies"),
            "use COPY (keep ADD for URLs, git repositories and archives to unpack)",
        );
    }
}

/// CopyFromUndefinedStage and CopyFromOwnStage: `COPY --from` names an earlier stage, or an
/// image reference.
pub(crate) fn copy_from(model: &Model<'_>, sink: &mut Sink<'_>) {
    let names: Vec<String> = model
        .stages
        .iter()
        .filter_map(|v| v.stage.name.clone())
        .collect();
    for view in &model.stages {
        for step in &view.steps {
            let CommandKind::Copy(copy) = &step.command.kind else {
                continue;
            };
            let Some(from) = &copy.from else {
                continue;
            };
            let value = from.value.as_str();
            let at = At::span(step.instruction, from.span);
            match model.stage_named(value) {
                Some(index) if index == view.stage.index => sink.report(
                    &rules::CopyFromOwnStage,
                    at,
                    format!("COPY --from={value} names the stage it is in"),
                    "a stage cannot copy from itself: copy from the stage that produced the files, \
                     or use a plain `RUN cp`",
                ),
                Some(index) if index > view.stage.index => sink.report(
                    &rules::CopyFromUndefinedStage,
                    at,
                    format!("COPY --from={value} names a stage defined later in the file"),
                    "move that stage above this one: BuildKit refuses to copy from a stage defined after the current one",
                ),
                Some(_) => {}
                // Digits are a stage index, and an index out of range is a build error; `:`,
                // `@` and `/` only appear in image references; variables are a build error; a
                // named build context (`--build-context NAME=…`) is what the name means.
                None if value.contains([':', '@', '/', '$'])
                    || value.parse::<usize>().is_ok()
                    || stagecraft_plan::named_context(&model.options.build_contexts, value)
                        .is_some() => {}
                None => {
                    let suggestion = suggest::closest(value, &names);
                    sink.report(
                        &rules::CopyFromUndefinedStage,
                        at,
                        format!(
                            "COPY --from={value} names no stage{}, so it pulls an image called '{value}'",
                            suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default()
                        ),
                        match suggestion {
                            Some(s) => format!("write `--from={s}`"),
                            None => format!(
                                "name a stage defined above (`FROM … AS {value}`), or pin the image: `--from={value}:<version>`"
                            ),
                        },
                    );
                }
            }
        }
    }
}

/// LastUserRoot: the last USER of the final image's stages switches to root.
fn last_user_root(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    let last_user = ctx
        .chain_steps(ctx.target())
        .filter_map(|step| match &step.command.kind {
            CommandKind::User(user) => Some((step, user)),
            _ => None,
        })
        .last();
    let Some((step, user)) = last_user else {
        return;
    };
    let name = user.value.split(':').next().unwrap_or("");
    if name == "root" || name == "0" {
        sink.report(
            &rules::LastUserRoot,
            step.at(),
            format!("The image runs as root: its last USER is '{}'", user.value),
            "switch back to an unprivileged user after the steps that need root, e.g. `USER \
             65532:65532` or a user the image creates",
        );
    }
}
