//! Checks of a built image — its files and its config — that only a builder can make: the
//! `ENTRYPOINT` program exists ([`entrypoint`]), the `USER` exists ([`users`]), every ELF
//! object finds its loader and libraries ([`libraries`]), and the build's own layers add no
//! setuid or world-writable entries ([`permissions`]).
//!
//! The checks report [`Problem`]s about a [`Place`] (a layer, or a config setting); [`locate`]
//! turns them into findings at the Dockerfile instruction that made the layer or the setting
//! when the Dockerfile is at hand, and at the layer and its history entry otherwise.

mod entrypoint;
mod libraries;
mod permissions;
mod users;

use crate::checks::DEFAULT_PATH;
use crate::model::{At, Ctx, Model, Sink};
use crate::rules::Rule;
use crate::{Finding, LintOptions, check_config, plan_options};
use stagecraft_dockerfile::{CommandKind, Dockerfile, Instruction, Span};
use stagecraft_image::ImageConfig;
use stagecraft_imagefs::{FileEntry, ImageFs};
use stagecraft_plan::Plan;
use std::path::Path;

/// Config files (`/etc/passwd`, `ld.so.conf`) larger than this are not read: no real one
/// comes close.
const CONFIG_LIMIT: u64 = 4 << 20;

/// An image to check.
pub struct CheckedImage<'a> {
    /// Its root file system: a `stagecraft_imagefs::LayeredFs` of its layer snapshots (which
    /// may list only the build's own layers: the checks that look at every file look only at
    /// those).
    pub fs: &'a dyn ImageFs,
    /// Its config: `Entrypoint`, `Cmd`, `User`, `Env`, `WorkingDir`, the architecture and the
    /// history.
    pub config: &'a ImageConfig,
    /// Where each layer came from, bottom first.
    pub layers: Vec<LayerSource>,
    /// What findings name as their file when the Dockerfile is not at hand: the image's name.
    pub name: String,
}

/// Where one layer of the image came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerSource {
    /// Made by the build being checked; `false` for the base image's layers, which the checks
    /// of the image's files leave alone.
    pub own: bool,
    /// The instruction as the image history records it (`COPY app /app # buildkit`); empty
    /// when unknown.
    pub created_by: String,
    /// The instruction in the Dockerfile the image was built from, when that is at hand.
    pub span: Option<Span>,
}

/// The Dockerfile an image was just built from: findings then point at its instructions, and
/// its `# check=` configuration applies.
pub struct BuiltFrom<'a> {
    /// The Dockerfile.
    pub dockerfile: &'a Dockerfile,
    /// What the build was run with (its target, build arguments and named contexts).
    pub options: &'a LintOptions,
}

/// Checks an image. After a build, pass the Dockerfile (`built_from`) so that findings point
/// at its lines and honour its `# check=skip=…`; without it, findings name the image and the
/// layer. Findings are in file order after a build, grouped by rule otherwise.
pub fn check_image(image: &CheckedImage<'_>, built_from: Option<BuiltFrom<'_>>) -> Vec<Finding> {
    // A Windows image runs nothing these checks understand.
    if image.config.os == "windows" {
        return Vec::new();
    }
    let mut problems = Vec::new();
    // A file system that cannot be listed leaves the checks of the image's config.
    let mut entries = image.fs.entries().unwrap_or_default();
    entries.retain(|entry| image.is_own(entry));
    entrypoint::check(image, &entries, &mut problems);
    users::check(image, &mut problems);
    libraries::check(image, &entries, &mut problems);
    permissions::check(&entries, &mut problems);
    locate(image, built_from, problems)
}

impl CheckedImage<'_> {
    /// Whether `entry` was added by the build's own layers (a file system without layers is
    /// all the build's own).
    fn is_own(&self, entry: &FileEntry) -> bool {
        entry
            .layer
            .is_none_or(|index| self.layers.get(index).is_none_or(|layer| layer.own))
    }

    /// The image's environment variable `name`.
    fn env(&self, name: &str) -> Option<&str> {
        self.config.config.env.iter().rev().find_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            (key == name).then_some(value)
        })
    }

    /// The directories of the image's `PATH`.
    fn path_dirs(&self) -> Vec<&str> {
        self.env("PATH")
            .unwrap_or(DEFAULT_PATH)
            .split(':')
            .filter(|dir| !dir.is_empty())
            .collect()
    }

    /// The working directory processes start in.
    fn working_dir(&self) -> &str {
        match self.config.config.working_dir.as_str() {
            "" => "/",
            dir => dir,
        }
    }

    /// Reads a small text file of the image (`/etc/passwd`); `None` when it is missing,
    /// not a regular file or too large.
    fn read_text(&self, path: &str) -> Option<String> {
        let file = self.fs.open(Path::new(path)).ok()?;
        let bytes = stagecraft_imagefs::read_limited(file, CONFIG_LIMIT).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A config setting a finding can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Entrypoint,
    Cmd,
    User,
}

impl Setting {
    /// The instruction keyword, as history entries and Dockerfiles write it.
    fn keyword(self) -> &'static str {
        match self {
            Setting::Entrypoint => "ENTRYPOINT",
            Setting::Cmd => "CMD",
            Setting::User => "USER",
        }
    }
}

/// What a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Files of one layer (its index, bottom = 0; `None` for a file system without layers).
    Layer(Option<usize>),
    /// A config setting, and the layer of the file it names when that matters.
    Setting(Setting, Option<usize>),
}

/// One problem found, before it is located.
#[derive(Debug, Clone)]
struct Problem {
    rule: &'static Rule,
    place: Place,
    message: String,
    hint: String,
}

/// Turns problems into findings: at the Dockerfile's instructions when the image was just
/// built from it, else at the image and its layers.
fn locate(
    image: &CheckedImage<'_>,
    built_from: Option<BuiltFrom<'_>>,
    problems: Vec<Problem>,
) -> Vec<Finding> {
    if let Some(built_from) = built_from
        && let Ok(stages) = built_from.dockerfile.stages()
        && let Ok(plan) = Plan::new(built_from.dockerfile, &plan_options(built_from.options))
    {
        let model = Model::new(built_from.dockerfile, &stages, built_from.options, None);
        let ctx = Ctx {
            model: &model,
            plan: &plan,
        };
        let (config, _) = check_config(built_from.dockerfile, built_from.options);
        let mut sink = Sink::new(built_from.dockerfile, config);
        for problem in problems {
            let (instruction, file_layer) = match problem.place {
                Place::Layer(index) => (layer_instruction(&ctx, image, index), index),
                Place::Setting(setting, file_layer) => {
                    (setting_instruction(&ctx, setting), file_layer)
                }
            };
            let message = match (problem.place, file_layer) {
                (Place::Setting(..), Some(index)) => format!(
                    "{} ({})",
                    problem.message,
                    added_by(image, index, Some(built_from.dockerfile))
                ),
                _ => problem.message,
            };
            sink.report_about_layer(
                problem.rule,
                At::instruction(instruction),
                file_layer,
                message,
                problem.hint,
            );
        }
        return sink.finish();
    }
    problems
        .into_iter()
        .map(|problem| {
            let (layer, origin) = match problem.place {
                // A file system without layers says nothing of where a file came from.
                Place::Layer(None) => (None, None),
                Place::Layer(Some(index)) => (Some(index), Some(added_by(image, index, None))),
                Place::Setting(setting, file_layer) => {
                    let set_by = set_by_history(image.config, setting);
                    match file_layer {
                        Some(index) => (
                            Some(index),
                            Some(format!(
                                "{set_by}; the file: {}",
                                added_by(image, index, None)
                            )),
                        ),
                        None => (None, Some(set_by)),
                    }
                }
            };
            Finding {
                rule: problem.rule.id.into(),
                severity: problem.rule.severity,
                file: image.name.clone(),
                line: 0,
                column: 0,
                message: match origin {
                    Some(origin) => format!("{} ({origin})", problem.message),
                    None => problem.message,
                },
                hint: problem.hint,
                url: problem.rule.url.into(),
                layer,
            }
        })
        .collect()
}

/// Which instruction made layer `index`: its own when the build made it, else the `FROM` of
/// the target stage's first stage (the base image's layers).
fn layer_instruction<'a>(
    ctx: &Ctx<'a>,
    image: &CheckedImage<'_>,
    index: Option<usize>,
) -> &'a Instruction {
    let span = index
        .and_then(|index| image.layers.get(index))
        .and_then(|layer| layer.span);
    span.and_then(|span| {
        ctx.model
            .file
            .instructions
            .iter()
            .find(|instruction| instruction.span.start == span.start)
    })
    .unwrap_or_else(|| root_from(ctx))
}

/// The last instruction of the target's stage chain that sets `setting`, or the chain's
/// `FROM` when the base image set it. `CMD` follows `ENTRYPOINT`'s rule: an `ENTRYPOINT`
/// clears an inherited `CMD`.
fn setting_instruction<'a>(ctx: &Ctx<'a>, setting: Setting) -> &'a Instruction {
    ctx.chain_steps(ctx.target())
        .filter(|step| {
            matches!(
                (&step.command.kind, setting),
                (
                    CommandKind::Entrypoint(_),
                    Setting::Entrypoint | Setting::Cmd
                ) | (CommandKind::Cmd(_), Setting::Cmd)
                    | (CommandKind::User(_), Setting::User)
            )
        })
        .last()
        .map(|step| step.instruction)
        .unwrap_or_else(|| root_from(ctx))
}

/// The `FROM` of the first stage of the target's chain: where the base image comes in.
fn root_from<'a>(ctx: &Ctx<'a>) -> &'a Instruction {
    let chain = ctx.chain(ctx.target());
    chain
        .first()
        .map(|view| view.from)
        .unwrap_or_else(|| ctx.model.stages[ctx.target()].from)
}

/// Which instruction (or base-image layer) added layer `index`, in words.
fn added_by(image: &CheckedImage<'_>, index: usize, dockerfile: Option<&Dockerfile>) -> String {
    let layer = image.layers.get(index);
    match (dockerfile, layer.and_then(|layer| layer.span)) {
        (Some(file), Some(span)) => {
            format!("added at line {}", file.source.position(span.start).line)
        }
        _ => match layer.map(|layer| layer.created_by.trim()) {
            Some(created_by) if !created_by.is_empty() => {
                format!("layer {index}: {}", shorten(created_by))
            }
            _ => format!("layer {index}"),
        },
    }
}

/// Which history entry set `setting`, in words.
fn set_by_history(config: &ImageConfig, setting: Setting) -> String {
    let keyword = setting.keyword();
    let entry = config.history.iter().rev().find(|entry| {
        // Docker's classic builder wrote `/bin/sh -c #(nop)  USER app`.
        let text = entry
            .created_by
            .trim_start_matches("/bin/sh -c #(nop)")
            .trim_start();
        text.starts_with(keyword)
            || (setting == Setting::Cmd && text.starts_with(Setting::Entrypoint.keyword()))
    });
    match entry {
        Some(entry) => format!("set by {}", shorten(entry.created_by.trim())),
        None => format!("{keyword} from the image config"),
    }
}

/// A history entry cut to a readable length.
fn shorten(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Up to three paths and how many more: `/a, /b, /c and 12 more`.
fn some_paths(paths: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = paths[..paths.len().min(SHOWN)].join(", ");
    match paths.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_sentences() {
        let names = |n: usize| (0..n).map(|i| format!("/f{i}")).collect::<Vec<_>>();
        assert_eq!(some_paths(&names(2)), "/f0, /f1");
        assert_eq!(some_paths(&names(5)), "/f0, /f1, /f2 and 2 more");
        assert_eq!(and_list(&names(1)), "/f0");
        assert_eq!(and_list(&names(3)), "/f0, /f1 and /f2");
        assert_eq!(shorten(&"x".repeat(150)).chars().count(), 101);
    }
}
