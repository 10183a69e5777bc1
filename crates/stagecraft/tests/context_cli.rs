//! `stagecraft context` end to end: which files a build would send.

use assert_cmd::Command;
use predicates::prelude::*;
use std::fs;
use std::path::Path;

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn context(dir: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("stagecraft")
        .unwrap()
        .arg("context")
        .arg(dir)
        .args(extra)
        .assert()
}

#[test]
fn lists_files_after_dockerignore_sorted_with_summary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "Dockerfile", "FROM scratch\n");
    write(
        root,
        ".dockerignore",
        "# build output\nnode_modules\n*.log\n!keep.log\nsecrets/\n",
    );
    write(root, "src/main.go", "package main\n");
    write(root, "node_modules/x/index.js", "x");
    write(root, "debug.log", "d");
    write(root, "keep.log", "k");
    write(
        root,
        "sub/nested.log",
        "anchored patterns do not reach here",
    );
    write(root, "secrets/id_rsa", "no");
    std::os::unix::fs::symlink("src/main.go", root.join("link")).unwrap();
    context(root, &[])
        .success()
        .stdout(".dockerignore\nDockerfile\nkeep.log\nlink\nsrc/main.go\nsub/nested.log\n")
        .stderr(predicate::str::starts_with("6 files, "));
}

#[test]
fn re_included_file_inside_an_excluded_directory_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".dockerignore", "docs\n!docs/README.md\n");
    write(root, "docs/README.md", "r");
    write(root, "docs/internal.md", "i");
    context(root, &[])
        .success()
        .stdout(".dockerignore\ndocs/README.md\n");
}

#[test]
fn per_dockerfile_ignore_file_wins_and_json_has_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, ".dockerignore", "*\n");
    write(root, "build/app.Dockerfile", "FROM scratch\n");
    write(root, "build/app.Dockerfile.dockerignore", "build\n");
    write(root, "a.txt", "hello");
    let file = root.join("build/app.Dockerfile");
    let output = Command::cargo_bin("stagecraft")
        .unwrap()
        .arg("context")
        .arg(root)
        .arg("-f")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"path": ".dockerignore", "size": 2},
            {"path": "a.txt", "size": 5},
        ])
    );
}

#[test]
fn bad_pattern_is_reported_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), ".dockerignore", "ok\n[unclosed\n");
    context(dir.path(), &[])
        .code(1)
        .stderr(predicate::str::contains(".dockerignore"))
        .stderr(predicate::str::contains("[unclosed"));
}

#[test]
fn missing_context_directory_is_an_error() {
    context(Path::new("/nonexistent/ctx"), &[])
        .code(1)
        .stderr(predicate::str::contains("is not a directory"));
}
