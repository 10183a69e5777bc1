//! `ADD <git repository> <dest>` against a loopback `git daemon`, end to end as root.

mod common;

use common::{LoopbackServer, Machine, busybox_layout, git, serve_git};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A repository served as `git://127.0.0.1:PORT/repo.git`: tag `v1` has README "one", `main`
/// one commit later has README "two", an executable script and a docs directory.
fn serve_repository(dir: &Path) -> (LoopbackServer, String, String) {
    let work = dir.join("work");
    fs::create_dir_all(work.join("docs")).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    fs::write(work.join("README.md"), "one\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    fs::write(work.join("README.md"), "two\n").unwrap();
    fs::write(work.join("run.sh"), "#!/bin/sh\necho run\n").unwrap();
    fs::set_permissions(work.join("run.sh"), fs::Permissions::from_mode(0o775)).unwrap();
    fs::write(work.join("docs/guide.txt"), "guide\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "two"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    let (server, url) = serve_git(dir, &work);
    (server, url, head)
}

#[test]
fn add_checks_out_refs_and_subdirectories_and_caches_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, head) = serve_repository(dir.path());
    let dockerfile = format!(
        "FROM busybox:latest\n\
         ADD {url}#v1 /v1\n\
         ADD --keep-git-dir=true {url} /full\n\
         ADD {url}?branch=main&subdir=docs /docs\n\
         ADD --chown=1000:1000 {url}#{head} /pinned\n"
    );
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(dir.path(), "m", &busybox, &[("Dockerfile", &dockerfile)]);
    let out = dir.path().join("rootfs");
    let output = format!("type=local,dest={}", out.display());
    let (_, stderr) = machine.build(&["--output", &output]);
    assert!(stderr.contains(&format!("is commit {head}")), "{stderr}");

    assert_eq!(
        fs::read_to_string(out.join("v1/README.md")).unwrap(),
        "one\n"
    );
    assert!(!out.join("v1/run.sh").exists());
    assert!(!out.join("v1/.git").exists());
    assert_eq!(
        fs::read_to_string(out.join("full/README.md")).unwrap(),
        "two\n"
    );
    assert!(out.join("full/.git/HEAD").is_file());
    let mode = fs::metadata(out.join("full/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "git's modes, whatever the umask");
    assert_eq!(
        fs::read_to_string(out.join("docs/guide.txt")).unwrap(),
        "guide\n"
    );
    assert!(!out.join("docs/README.md").exists());
    let pinned = fs::metadata(out.join("pinned/README.md")).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&pinned),
            std::os::unix::fs::MetadataExt::gid(&pinned)
        ),
        (1000, 1000)
    );

    // Fetched again, the same content: every ADD is a cache hit.
    let (_, stderr) = machine.build(&[]);
    assert!(stderr.contains(": 0 steps run, 4 cached"), "{stderr}");
}

#[test]
fn git_sources_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, _) = serve_repository(dir.path());
    let busybox = busybox_layout(dir.path());
    let cases = [
        (
            format!("FROM busybox:latest\nADD --checksum=0123456789abcdef {url}#v1 /src\n"),
            "checksum mismatch",
        ),
        (
            format!("FROM busybox:latest\nCOPY {url} /src\n"),
            "source can't be a git ref for COPY",
        ),
        (
            format!("FROM busybox:latest\nADD {url}#no-such-branch /src\n"),
            "fetching no-such-branch",
        ),
        (
            format!("FROM busybox:latest\nADD {url}?color=blue /src\n"),
            "unexpected query \"color\"",
        ),
    ];
    for (i, (dockerfile, needle)) in cases.iter().enumerate() {
        let machine = Machine::new(
            dir.path(),
            &format!("case{i}"),
            &busybox,
            &[("Dockerfile", dockerfile)],
        );
        let output = machine
            .stagecraft()
            .args(["build", "--progress=plain"])
            .arg(&machine.context)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "no {needle:?} in:\n{stderr}");
        assert!(stderr.contains("Dockerfile:2"), "{stderr}");
    }
}
