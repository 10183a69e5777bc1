//! Images the project builds itself: a `FROM myproject-base` whose image comes out of the
//! project's own Makefile, compose file, bake file or build script is not pulled from a
//! registry, so pinning it to a tag means nothing.

use std::fs;
use std::path::{Path, PathBuf};

/// How much of one build file is read.
const MAX_FILE_BYTES: u64 = 512 * 1024;
/// How many files are read at most.
const MAX_FILES: usize = 200;
/// Directories (under the context and the Dockerfile's directory) where build scripts live.
const SCRIPT_DIRS: [&str; 6] = [
    "",
    "hack",
    "scripts",
    "script",
    "build",
    ".github/workflows",
];

/// Whether a build file in `dirs` tags an image called `name` (its repository, without tag):
/// `docker build -t name`, `--tag name:dev`, compose's `image: name`, bake's `tags = ["name"]`.
pub(crate) fn built_by_project(name: &str, dirs: &[PathBuf]) -> bool {
    if name.is_empty() {
        return false;
    }
    let mut read = 0;
    for dir in dirs {
        for sub in SCRIPT_DIRS {
            let Ok(entries) = fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !is_build_file(&path) || !path.is_file() {
                    continue;
                }
                read += 1;
                if read > MAX_FILES {
                    return false;
                }
                if tags_image(&path, name) {
                    return true;
                }
            }
        }
    }
    false
}

fn is_build_file(path: &Path) -> bool {
    let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let lower = file.to_lowercase();
    matches!(
        lower.as_str(),
        "makefile" | "gnumakefile" | "justfile" | "taskfile.yml" | "taskfile.yaml"
    ) || [".mk", ".sh", ".bash", ".yml", ".yaml", ".hcl", ".ps1"]
        .iter()
        .any(|suffix| lower.ends_with(suffix))
}

fn tags_image(path: &Path, name: &str) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let mut text = String::new();
    use std::io::Read;
    if file.take(MAX_FILE_BYTES).read_to_string(&mut text).is_err() {
        return false;
    }
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().any(|(i, line)| {
        if !names_image(line, name) {
            return false;
        }
        if is_compose_image(line) {
            // `image:` alone pulls; beside `build:` in the same service it names what compose
            // builds.
            return service_builds(&lines, i);
        }
        has_tag_marker(line)
    })
}

/// Whether the compose service that holds line `at` (a key at its indentation) has `build:`.
fn service_builds(lines: &[&str], at: usize) -> bool {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let level = indent(lines[at]);
    let in_service = |line: &&&str| line.trim().is_empty() || indent(line) >= level;
    let before = lines[..at].iter().rev().take_while(in_service);
    let after = lines[at + 1..].iter().take_while(in_service);
    before
        .chain(after)
        .filter(|line| indent(line) == level)
        .any(|line| line.trim_start().starts_with("build:"))
}

fn is_compose_image(line: &str) -> bool {
    line.trim_start().starts_with("image:")
}

/// A line that gives an image its name: a tag flag, a compose `image:` or a bake `tags`.
fn has_tag_marker(line: &str) -> bool {
    let trimmed = line.trim_start();
    line.contains(" -t ")
        || line.contains(" -t=")
        || line.contains("--tag")
        || trimmed.starts_with("tags")
}

/// `name` as a whole image name in `line`: not part of a longer word, possibly after a
/// registry (`$(REGISTRY)/name`) and before a tag (`name:dev`).
fn names_image(line: &str, name: &str) -> bool {
    let part_of_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].chars().next();
        !before.is_some_and(part_of_name) && !after.is_some_and(part_of_name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_tagging_lines() {
        let tagged = |line: &str| names_image(line, "myproj-base") && has_tag_marker(line);
        assert!(tagged("\tdocker build -t myproj-base -f base.Dockerfile ."));
        assert!(tagged("\tdocker build --tag=$(REGISTRY)/myproj-base:dev ."));
        assert!(tagged("  tags = [\"myproj-base\"]"));
        assert!(!tagged("\tdocker build -t myproj-base-extra ."));
        assert!(!tagged("\tdocker run myproj-base"));
    }

    #[test]
    fn compose_image_counts_only_next_to_build() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_path_buf()];
        fs::write(
            dir.path().join("compose.yaml"),
            "services:\n  db:\n    image: postgres\n  tools:\n    build:\n      context: tools\n    image: myproj-tools\n",
        )
        .unwrap();
        assert!(built_by_project("myproj-tools", &dirs));
        assert!(!built_by_project("postgres", &dirs));
        assert!(!built_by_project("redis", &dirs));
    }
}
