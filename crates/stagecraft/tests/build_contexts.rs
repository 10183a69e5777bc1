//! `build --build-context NAME=VALUE`, buildx's named contexts, end to end as root: a
//! directory, an image of the store (`docker-image://`), an OCI layout (`oci-layout://`), a
//! download and a git repository, each replacing a stage or an image, as BuildKit does.

mod common;

use common::{HttpServer, Machine, busybox_layout, git, serve_git, tar_headers};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

fn machine(dir: &Path, files: &[(&str, &str)]) -> Machine {
    let busybox = busybox_layout(dir);
    Machine::new(dir, "m", &busybox, files)
}

/// Runs `build ARGS CONTEXT`; returns (success, stdout, stderr).
fn try_build(m: &Machine, args: &[&str]) -> (bool, String, String) {
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain"])
        .args(args)
        .arg(&m.context)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The content of the file `name` in the tar at `path`.
fn tar_file(path: &Path, name: &str) -> Option<String> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    let mut entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some(name))?;
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
    Some(String::from_utf8_lossy(&data).into_owned())
}

fn context_flag(name: &str, value: impl AsRef<Path>) -> String {
    format!("{name}={}", value.as_ref().display())
}

#[test]
fn a_directory_replaces_a_stage_and_serves_copy_and_mounts_read_inside_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = "\
FROM busybox:latest AS builder
RUN echo built-by-the-stage > /marker
FROM busybox:latest
COPY --from=builder /marker /from-builder
COPY --from=assets / /assets/
RUN --mount=from=assets,target=/mnt cat /mnt/a.txt > /mounted
";
    // The main context's .dockerignore excludes a.txt: it does not apply to a named context.
    let m = machine(
        dir.path(),
        &[("Dockerfile", dockerfile), (".dockerignore", "a.txt\n")],
    );
    let builder = dir.path().join("builder-dir");
    fs::create_dir(&builder).unwrap();
    fs::write(builder.join("marker"), "from the directory\n").unwrap();
    let assets = dir.path().join("assets");
    fs::create_dir(&assets).unwrap();
    fs::write(assets.join("a.txt"), "one\n").unwrap();
    fs::write(assets.join("secret.txt"), "hidden\n").unwrap();
    fs::write(assets.join(".dockerignore"), "secret.txt\n").unwrap();
    std::os::unix::fs::chown(assets.join("a.txt"), Some(1234), Some(1234)).unwrap();
    // A link out of the context names the context's own root, never the host's.
    symlink("/", assets.join("up")).unwrap();
    let out = dir.path().join("fs.tar");
    let args = [
        "--build-context".to_owned(),
        context_flag("builder", &builder),
        "--build-context".to_owned(),
        context_flag("assets", &assets),
        "-o".to_owned(),
        format!("type=tar,dest={}", out.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, first, stderr) = try_build(&m, &args);
    assert!(ok, "{stderr}");
    // The stage `builder` never ran: the context replaced it.
    assert!(!stderr.contains("built-by-the-stage"), "{stderr}");
    assert!(stderr.contains("[context builder]"), "{stderr}");
    let headers = tar_headers(&out);
    let entry = |path: &str| {
        headers
            .iter()
            .find(|(p, _)| p.trim_end_matches('/') == path)
            .map(|(_, h)| h.clone())
    };
    assert_eq!(
        tar_file(&out, "from-builder").as_deref(),
        Some("from the directory\n")
    );
    assert_eq!(tar_file(&out, "assets/a.txt").as_deref(), Some("one\n"));
    assert_eq!(tar_file(&out, "mounted").as_deref(), Some("one\n"));
    assert!(
        entry("assets/secret.txt").is_none(),
        "its .dockerignore applies"
    );
    // Files of a local context belong to root, as the main context's do.
    assert_eq!(entry("assets/a.txt").unwrap().uid().unwrap(), 0);
    let up = entry("assets/up").unwrap();
    assert!(up.entry_type().is_symlink(), "the link is copied as a link");

    // Unchanged: the same image, every step cached. Changed: the copy runs again.
    let (ok, again, stderr) = try_build(&m, &args);
    assert!(ok, "{stderr}");
    assert_eq!(again, first);
    assert!(stderr.contains("CACHED"), "{stderr}");
    fs::write(assets.join("a.txt"), "two\n").unwrap();
    let (ok, changed, stderr) = try_build(&m, &args);
    assert!(ok, "{stderr}");
    assert_ne!(changed, first, "the key holds the named context's content");
    assert_eq!(tar_file(&out, "mounted").as_deref(), Some("two\n"));
}

#[test]
fn an_image_of_the_store_overrides_from_and_copy_from_by_normalized_name() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        &[(
            "base/Dockerfile",
            "FROM busybox:latest\nRUN echo base > /base-marker\n",
        )],
    );
    let base = m.context.join("base/Dockerfile");
    let (ok, _, stderr) = try_build(&m, &["-t", "base:1", "-f", base.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    // `alpine` is nowhere: the context stands for it, under every spelling of the name.
    let dockerfile = "\
FROM docker.io/library/alpine:latest
COPY --from=alpine /base-marker /copied
RUN cat /base-marker /copied > /both
";
    fs::write(m.context.join("Dockerfile"), dockerfile).unwrap();
    let out = dir.path().join("out");
    let (ok, _, stderr) = try_build(
        &m,
        &[
            "--build-context",
            "alpine=docker-image://base:1",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        fs::read_to_string(out.join("both")).unwrap(),
        "base\nbase\n"
    );
    // `docker-image://scratch` is BuildKit's empty image.
    fs::write(
        m.context.join("Dockerfile"),
        "FROM empty\nCOPY base/Dockerfile /\n",
    )
    .unwrap();
    let empty = dir.path().join("empty");
    let (ok, _, stderr) = try_build(
        &m,
        &[
            "--build-context",
            "empty=docker-image://scratch",
            "-o",
            &format!("type=local,dest={}", empty.display()),
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(common::names_in(&empty), ["Dockerfile"]);
    fs::write(m.context.join("Dockerfile"), dockerfile).unwrap();
    // `alpine:3.20` is another name: the plan takes the image (pulled, were it built).
    let (ok, plan, stderr) = try_build(
        &m,
        &[
            "--dry-run",
            "--build-context",
            "alpine:3.20=docker-image://base:1",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        plan.contains("from image docker.io/library/alpine:latest"),
        "{plan}"
    );
    let (ok, plan, stderr) = try_build(
        &m,
        &[
            "--dry-run",
            "--build-context",
            "alpine:latest=docker-image://base:1",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(plan.contains("from named context alpine"), "{plan}");
}

#[test]
fn an_oci_layout_is_a_base_without_the_store_or_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = busybox_layout(dir.path());
    let m = Machine {
        root: dir.path().join("empty-store"),
        context: dir.path().join("context"),
    };
    fs::create_dir_all(&m.context).unwrap();
    fs::write(
        m.context.join("Dockerfile"),
        "FROM base\nRUN echo on-the-layout > /made\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = format!("type=local,dest={}", out.display());
    let (ok, _, stderr) = try_build(
        &m,
        &[
            "--build-context",
            &format!("base=oci-layout://{}", layout.display()),
            "-o",
            &output,
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        fs::read_to_string(out.join("made")).unwrap(),
        "on-the-layout\n"
    );
    assert!(out.join("bin/busybox").is_file());
    // By digest too. A tag the layout does not name takes its only image, as buildx falls
    // back to it; a digest it does not have is an error.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    for value in [
        format!("{}@{digest}", layout.display()),
        format!("{}:other", layout.display()),
    ] {
        let (ok, _, stderr) = try_build(
            &m,
            &["--build-context", &format!("base=oci-layout://{value}")],
        );
        assert!(ok, "{value}: {stderr}");
    }
    let missing = format!("sha256:{}", "0".repeat(64));
    let (ok, _, stderr) = try_build(
        &m,
        &[
            "--build-context",
            &format!("base=oci-layout://{}@{missing}", layout.display()),
        ],
    );
    assert!(!ok);
    assert!(stderr.contains(&"0".repeat(64)), "{stderr}");
}

#[test]
fn a_download_and_a_repository_are_contexts_too() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("www");
    fs::create_dir(&served).unwrap();
    fs::write(served.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    let http = HttpServer::start(&served);
    let work = dir.path().join("work");
    fs::create_dir_all(work.join("docs")).unwrap();
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    fs::write(work.join("docs/guide.txt"), "guide\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "one"]);
    let (_daemon, url) = serve_git(dir.path(), &work);
    let dockerfile = "\
FROM busybox:latest
COPY --from=download context /tool.sh
COPY --from=docs / /docs/
";
    let m = machine(dir.path(), &[("Dockerfile", dockerfile)]);
    let out = dir.path().join("out");
    let (ok, _, stderr) = try_build(
        &m,
        &[
            "--build-context",
            &format!("download={}", http.url("tool.sh")),
            "--build-context",
            &format!("docs={url}#main:docs"),
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    );
    assert!(ok, "{stderr}");
    // BuildKit names the file of an http context `context`.
    assert_eq!(
        fs::read_to_string(out.join("tool.sh")).unwrap(),
        "#!/bin/sh\necho tool\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("docs/guide.txt")).unwrap(),
        "guide\n"
    );
    assert!(!out.join("docs/.git").exists());
}

#[test]
fn bad_values_are_errors_that_say_what_a_context_is() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), &[("Dockerfile", "FROM busybox:latest\n")]);
    for (value, says) in [
        ("assets", "expected NAME=VALUE"),
        ("Bad Name=.", "invalid context name"),
        ("x=ftp://example.com/x", "unsupported context source"),
        ("x=docker-image://Upper:1", "invalid image reference"),
        ("x=/surely/not/here", "failed to get build context x"),
    ] {
        let (ok, _, stderr) = try_build(&m, &["--build-context", value]);
        assert!(!ok, "{value}");
        assert!(stderr.contains(says), "{value}: {stderr}");
    }
}
