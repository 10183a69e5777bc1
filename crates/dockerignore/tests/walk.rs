//! `walk_context` against real directory trees.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use stagecraft_dockerignore::{
    ContextEntry, EntryKind, Error, PatternMatcher, find_ignore_file, parse_ignore_file,
    walk_context,
};

/// Creates `files` (with their parent directories) under `root`; each file's
/// content is its own path, so its size is the path's length.
fn tree(root: &Path, files: &[&str]) {
    for file in files {
        let path = root.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, file).unwrap();
    }
}

fn walk(root: &Path, ignore_file: &str) -> Vec<ContextEntry> {
    let matcher = PatternMatcher::from_ignore_file(ignore_file).unwrap();
    walk_context(root, &matcher).unwrap()
}

fn paths(entries: &[ContextEntry]) -> Vec<String> {
    entries.iter().map(ContextEntry::escaped_path).collect()
}

#[test]
fn lists_exactly_what_enters_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ignore = "# build output\n\
                  *.log\n\
                  node_modules\n\
                  !node_modules/pkg/KEEP.md\n\
                  docs/private\n\
                  src/gen/**\n";
    tree(
        root,
        &[
            "Dockerfile",
            "README.md",
            "app.log",
            "logs/app.log",
            "src/main.rs",
            "src/gen/out.rs",
            "src/gen/deeper/more.rs",
            "node_modules/pkg/index.js",
            "node_modules/pkg/KEEP.md",
            "node_modules/other/KEEP.md",
            "docs/a.md",
            "docs/private/secret.md",
        ],
    );
    fs::write(root.join(".dockerignore"), ignore).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    symlink("src", root.join("link")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    let socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

    let entries = walk(root, ignore);
    drop(socket);

    assert_eq!(
        paths(&entries),
        [
            ".dockerignore",
            "Dockerfile",
            "README.md",
            "dangling",
            "docs/a.md",
            "link",
            // `*.log` is anchored: only the top-level log is excluded.
            "logs/app.log",
            // Re-included although its directory is excluded.
            "node_modules/pkg/KEEP.md",
            "sock",
            "src/main.rs",
        ]
    );
    let by_path = |path: &str| {
        entries
            .iter()
            .find(|entry| entry.path == Path::new(path))
            .unwrap()
    };
    assert_eq!(
        by_path("src/main.rs"),
        &ContextEntry {
            path: "src/main.rs".into(),
            size: "src/main.rs".len() as u64,
            kind: EntryKind::File,
        }
    );
    // Symlinks are listed as links (size = length of the target), not followed.
    assert_eq!(by_path("link").kind, EntryKind::Symlink);
    assert_eq!(by_path("link").size, 3);
    assert_eq!(by_path("dangling").kind, EntryKind::Symlink);
    assert_eq!(by_path("sock").kind, EntryKind::Other);
    assert_eq!(by_path(".dockerignore").size, ignore.len() as u64);
}

#[test]
fn no_patterns_lists_everything_sorted_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["a/b", "a.txt", "B", "a-c", "z/y/x"]);
    // Byte order, not walk order: `.` (0x2E) and `-` sort before `/` (0x2F).
    assert_eq!(
        paths(&walk(dir.path(), "")),
        ["B", "a-c", "a.txt", "a/b", "z/y/x"]
    );
}

#[test]
fn wildcard_exclusions_reach_into_excluded_directories() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            "docs/a/keep.md",
            "docs/a/drop.txt",
            "docs/keep.md",
            "keep.md",
        ],
    );
    assert_eq!(
        paths(&walk(dir.path(), "docs\n!**/keep.md")),
        ["docs/a/keep.md", "docs/keep.md", "keep.md"]
    );
}

#[test]
fn everything_excluded_then_selectively_reincluded() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            "Dockerfile",
            "src/a.go",
            "src/b_test.go",
            "vendor/x.go",
            "go.mod",
        ],
    );
    assert_eq!(
        paths(&walk(dir.path(), "*\n!src\n!go.mod\nsrc/*_test.go")),
        ["go.mod", "src/a.go"]
    );
}

#[test]
fn walk_uses_buildkits_incremental_matching() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["a/b/c", "a/d"]);
    let matcher = PatternMatcher::new(["a/b", "!a"]).unwrap();
    // Asked about the single path, docker's MatchesOrParentMatches lets
    // `!a` (matching the parent) re-include `a/b/c`...
    assert!(!matcher.matches("a/b/c"));
    // ...but BuildKit's walk never had `!a` in effect for `a`, so `a/b` stays
    // excluded together with its contents.
    assert_eq!(paths(&walk_context(dir.path(), &matcher).unwrap()), ["a/d"]);
}

#[test]
fn excluded_directory_is_skipped_like_buildkit_does() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["a/x/y", "a/z"]);
    let matcher = PatternMatcher::new(["a/x", "!a/*/**"]).unwrap();
    // Matching alone would re-include `a/x/y`...
    let (_, info_a) = matcher
        .matches_using_parent_results("a", &Default::default())
        .unwrap();
    let (excluded, info_ax) = matcher
        .matches_using_parent_results("a/x", &info_a)
        .unwrap();
    assert!(excluded);
    assert!(
        !matcher
            .matches_using_parent_results("a/x/y", &info_ax)
            .unwrap()
            .0
    );
    // ...but fsutil's skip heuristic (literal `a` after dropping `/*/**` is
    // not below `a/x`) never enters `a/x`, so BuildKit leaves it out.
    assert_eq!(paths(&walk_context(dir.path(), &matcher).unwrap()), ["a/z"]);
}

#[test]
fn dockerfile_specific_ignore_file_takes_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root, &["Dockerfile", "a.txt", "b.txt"]);
    fs::write(root.join(".dockerignore"), "a.txt\n").unwrap();
    fs::write(root.join("Dockerfile.dockerignore"), "b.txt\n").unwrap();

    let ignore_file = find_ignore_file(root, None).unwrap();
    assert_eq!(ignore_file, root.join("Dockerfile.dockerignore"));
    let patterns = parse_ignore_file(&fs::read_to_string(&ignore_file).unwrap()).unwrap();
    assert_eq!(patterns, ["b.txt"]);
    let matcher = PatternMatcher::new(&patterns).unwrap();
    // Neither the Dockerfile nor the ignore files are dropped implicitly.
    assert_eq!(
        paths(&walk_context(root, &matcher).unwrap()),
        [
            ".dockerignore",
            "Dockerfile",
            "Dockerfile.dockerignore",
            "a.txt"
        ]
    );
}

#[test]
fn non_utf8_names_are_listed_as_bytes_and_matched_as_docker_sees_them() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let dir = tempfile::tempdir().unwrap();
    let bad = OsStr::from_bytes(b"bad\xff.bin");
    fs::write(dir.path().join(bad), "x").unwrap();
    fs::write(dir.path().join("new\nline"), "x").unwrap();
    tree(dir.path(), &["ok.txt"]);

    // Matching sees one U+FFFD per bad byte, so `*.bin` and `bad?.bin` apply.
    assert_eq!(paths(&walk(dir.path(), "*.bin")), ["new\\nline", "ok.txt"]);
    assert_eq!(
        paths(&walk(dir.path(), "bad?.bin")),
        ["new\\nline", "ok.txt"]
    );

    let entries = walk(dir.path(), "");
    assert_eq!(entries[0].path, Path::new(bad));
    assert_eq!(paths(&entries), ["bad\\xff.bin", "new\\nline", "ok.txt"]);
}

#[test]
fn root_may_be_a_symlink_but_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["ctx/file", "plain"]);
    symlink(dir.path().join("ctx"), dir.path().join("ctx-link")).unwrap();
    assert_eq!(paths(&walk(&dir.path().join("ctx-link"), "")), ["file"]);

    let matcher = PatternMatcher::default();
    let err = walk_context(&dir.path().join("plain"), &matcher).unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err:?}");

    let missing = dir.path().join("missing");
    let err = walk_context(&missing, &matcher).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing"));
}

#[test]
fn unreadable_directories_only_matter_when_included() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["secret/key", "pub/file"]);
    let secret = dir.path().join("secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let readable_anyway = fs::read_dir(&secret).is_ok();

    // Skipped outright, and (BuildKit tolerates this) walked but excluded.
    let skipped = walk(dir.path(), "secret");
    let walked = walk(dir.path(), "secret\n!secret/key");
    let included = walk_context(dir.path(), &PatternMatcher::default());
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o755)).unwrap();

    assert_eq!(paths(&skipped), ["pub/file"]);
    if readable_anyway {
        // Running as root: permissions are not enforced, nothing to observe.
        return;
    }
    assert_eq!(paths(&walked), ["pub/file"]);
    let err = included.unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if *path == secret),
        "{err:?}"
    );
}
