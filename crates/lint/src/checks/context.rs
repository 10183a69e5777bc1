//! Rules about the build context directory: what `.dockerignore` leaves in that a COPY then
//! takes into the image.

use super::{context_sources, source_covers};
use crate::LintOptions;
use crate::model::{At, Ctx, IgnoreFile, Sink, Step};
use crate::rules::{self, Rule};
use stagecraft_dockerfile::Dockerfile;
use stagecraft_dockerignore::{PatternMatcher, find_ignore_file, parse_ignore_file};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Directories that are large, change all the time and are never wanted in an image.
const BULKY_DIRECTORIES: [&str; 3] = [".git", "node_modules", "__pycache__"];
/// How deep the context is searched (secrets and caches sit near the top).
const MAX_DEPTH: usize = 6;
/// How many entries are looked at, at most: linting must stay fast on huge contexts.
const MAX_ENTRIES: usize = 20_000;
/// How much of a `.pem`/`.key` file is read to tell a private key from a certificate.
const KEY_SNIFF_BYTES: u64 = 64 * 1024;
/// How many paths a message lists before saying "and N more".
const LISTED: usize = 5;

/// Reads the ignore file that applies to the context (`<Dockerfile>.dockerignore` first, then
/// `.dockerignore`), if there is a context and it has one.
pub(crate) fn load_ignore_file(
    file: &Dockerfile,
    options: &LintOptions,
) -> Result<Option<IgnoreFile>, String> {
    let Some(dir) = &options.context_dir else {
        return Ok(None);
    };
    let dockerfile = Path::new(file.source.name());
    let Some(path) = find_ignore_file(dir, dockerfile.is_file().then_some(dockerfile)) else {
        return Ok(None);
    };
    let text = fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let patterns =
        parse_ignore_file(&text).map_err(|error| format!("{}: {error}", path.display()))?;
    let matcher =
        PatternMatcher::new(&patterns).map_err(|error| format!("{}: {error}", path.display()))?;
    Ok(Some(IgnoreFile { patterns, matcher }))
}

pub(crate) fn check(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    let Some(root) = &ctx.model.options.context_dir else {
        return;
    };
    let copies: Vec<(&Step<'_>, Vec<String>)> = ctx
        .linted()
        .flat_map(|view| &view.steps)
        .map(|step| (step, context_sources(step)))
        .filter(|(_, sources)| !sources.is_empty())
        .collect();
    if copies.is_empty() {
        return;
    }
    let ignore = ctx.model.ignore.as_ref();
    let found = Scan::run(root, ignore);
    let excluded_by = if ignore.is_some() {
        ".dockerignore does not exclude them"
    } else {
        "there is no .dockerignore"
    };
    for (step, paths) in by_first_copy(&copies, &found.bulky) {
        let listed: Vec<String> = paths.iter().map(|p| format!("{p}/")).collect();
        report(
            sink,
            &rules::MissingDockerignore,
            step,
            format!(
                "{} sends {} into the image: {excluded_by}",
                quoted(step),
                list(&listed)
            ),
            "list them in .dockerignore (`.git`, `node_modules`, …): they bloat the context, and \
             they change with every commit or install, which invalidates this COPY's cache",
        );
    }
    // A secret reaches the image only through the stages the target is built on: a build
    // stage's copy of the context is left behind (CopyBuilderSourceTree judges what the target
    // copies out of one).
    let shipped: Vec<&Step<'_>> = ctx
        .chain(ctx.target())
        .into_iter()
        .flat_map(|view| &view.steps)
        .collect();
    let shipped_copies: Vec<(&Step<'_>, Vec<String>)> = copies
        .iter()
        .filter(|(step, _)| shipped.iter().any(|s| std::ptr::eq(*s, *step)))
        .cloned()
        .collect();
    for (step, paths) in by_first_copy(&shipped_copies, &found.secrets) {
        report(
            sink,
            &rules::SecretFileInContext,
            step,
            format!(
                "{} copies {} (secrets in the build context) into the image: {excluded_by}",
                quoted(step),
                list(&paths)
            ),
            "add them to .dockerignore; give the build its secrets with `RUN \
             --mount=type=secret` and the container with run-time environment variables",
        );
    }
}

fn report(sink: &mut Sink<'_>, rule: &Rule, step: &Step<'_>, message: String, hint: &str) {
    sink.report(rule, At::instruction(step.instruction), message, hint);
}

fn quoted(step: &Step<'_>) -> String {
    format!("`{}`", step.instruction.original.trim())
}

fn list(paths: &[String]) -> String {
    let mut text = paths
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > LISTED {
        text.push_str(&format!(" and {} more", paths.len() - LISTED));
    }
    text
}

/// Groups paths under the first COPY/ADD that takes them from the context.
fn by_first_copy<'s, 'a>(
    copies: &'s [(&'s Step<'a>, Vec<String>)],
    paths: &[String],
) -> Vec<(&'s Step<'a>, Vec<String>)> {
    let mut groups: Vec<(&Step<'a>, Vec<String>)> = Vec::new();
    for path in paths {
        let Some((step, _)) = copies
            .iter()
            .find(|(_, sources)| sources.iter().any(|s| source_covers(s, path)))
        else {
            continue;
        };
        match groups.iter_mut().find(|(s, _)| std::ptr::eq(*s, *step)) {
            Some((_, group)) => group.push(path.clone()),
            None => groups.push((step, vec![path.clone()])),
        }
    }
    groups
}

/// What a bounded walk of the context found that is not ignored.
#[derive(Debug, Default)]
struct Scan {
    /// Bulky directories, relative to the context root.
    bulky: Vec<String>,
    /// Secret files, relative to the context root.
    secrets: Vec<String>,
}

impl Scan {
    fn run(root: &Path, ignore: Option<&IgnoreFile>) -> Scan {
        let mut scan = Scan::default();
        let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
        let mut budget = MAX_ENTRIES;
        let excluded = |path: &str| ignore.is_some_and(|i| i.matcher.matches(path));
        // With `!` patterns something inside an excluded directory may come back.
        let may_reinclude = ignore.is_some_and(|i| i.matcher.exclusions());
        while let Some((dir, relative, depth)) = stack.pop() {
            let Ok(read) = fs::read_dir(&dir) else {
                continue;
            };
            let entries: Vec<fs::DirEntry> = read.flatten().collect();
            let build_tool_here = entries
                .iter()
                .any(|e| e.file_name() == "Cargo.toml" || e.file_name() == "pom.xml");
            for entry in entries {
                let Some(next) = budget.checked_sub(1) else {
                    return scan.sorted();
                };
                budget = next;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let path = if relative.is_empty() {
                    name.clone()
                } else {
                    format!("{relative}/{name}")
                };
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    let bulky = BULKY_DIRECTORIES.contains(&name.as_str())
                        || (name == "target" && (relative.is_empty() || build_tool_here));
                    if bulky {
                        if !excluded(&path) {
                            scan.bulky.push(path);
                        }
                    } else if depth + 1 < MAX_DEPTH && (may_reinclude || !excluded(&path)) {
                        stack.push((entry.path(), path, depth + 1));
                    }
                } else if kind.is_file()
                    && !in_test_fixtures(&relative)
                    && is_secret(&entry.path(), &name)
                    && !excluded(&path)
                {
                    scan.secrets.push(path);
                }
            }
        }
        scan.sorted()
    }

    fn sorted(mut self) -> Scan {
        self.bulky.sort();
        self.secrets.sort();
        self
    }
}

/// `.env` files (not the `.env.example` kind), SSH private keys, and `.pem`/`.key` files
/// holding a private key.
/// Whether a directory (relative to the context) holds test fixtures: keys there are made for
/// tests (Go's `testdata`, `fixtures`, `test`/`tests` trees), not anybody's secret.
fn in_test_fixtures(relative: &str) -> bool {
    relative.split('/').any(|component| {
        matches!(
            component,
            "testdata" | "fixtures" | "__fixtures__" | "test" | "tests"
        )
    })
}

fn is_secret(path: &Path, name: &str) -> bool {
    if name == ".env" || matches!(name, "id_rsa" | "id_dsa" | "id_ecdsa" | "id_ed25519") {
        return true;
    }
    if let Some(variant) = name.strip_prefix(".env.") {
        return !matches!(
            variant,
            "example" | "sample" | "template" | "dist" | "defaults" | "schema"
        );
    }
    let is_key = name.ends_with(".key");
    if !(is_key || name.ends_with(".pem")) {
        return false;
    }
    // A `.pem` is often just a certificate; only the private kind is a secret. A `.key` file
    // that is not PEM text is assumed to be a (binary) private key.
    let mut head = Vec::new();
    let read = fs::File::open(path).and_then(|f| f.take(KEY_SNIFF_BYTES).read_to_end(&mut head));
    if read.is_err() {
        return is_key;
    }
    let text = String::from_utf8_lossy(&head);
    if text.contains("PRIVATE KEY") {
        true
    } else {
        is_key && !text.contains("-----BEGIN")
    }
}
