//! `--cache-to` / `--cache-from` between two "machines": separate stores, and build contexts at
//! different paths, sharing only a registry (or a directory). As root: builds need namespaces.
// Tests print what they measured or skipped, for the reader of the test log.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use common::{Machine, RegistryProcess, busybox_layout};

const DOCKERFILE: &str = r#"
FROM busybox:latest AS build
WORKDIR /src
COPY hello.txt .
RUN echo ran-build-$((40+2)) && echo built > out.txt && cat hello.txt >> out.txt

FROM busybox:latest
COPY --from=build /src/out.txt /app/
RUN echo ran-final-$((40+2)) && echo final > /app/final.txt
"#;

const FILES: [(&str, &str); 2] = [("Dockerfile", DOCKERFILE), ("hello.txt", "hello\n")];

/// Checks the summary line and which RUN steps printed their output (the commands compute
/// what they print, so the step names in the progress do not count).
fn assert_ran(stderr: &str, steps: usize, outputs: &[&str]) {
    assert!(
        stderr.contains(&format!(": {steps} steps run,")),
        "expected {steps} steps to run:\n{stderr}"
    );
    for output in ["ran-build-42", "ran-final-42"] {
        assert_eq!(
            stderr.contains(output),
            outputs.contains(&output),
            "{output}:\n{stderr}"
        );
    }
}

/// Builds on `machine` with `--output type=oci` (plus `extra`); returns the exported manifest
/// digest — what a registry would receive — and stderr. Locally, a machine's image names its
/// own layers as plain tars and imported ones as the cache sent them; exported, both are the
/// same compressed blobs.
fn build_exported(machine: &Machine, extra: &[&str]) -> (String, String) {
    let out = machine.context.with_extension("oci.tar");
    let output = format!("type=oci,dest={}", out.display());
    let mut args = vec!["--output", &output];
    args.extend_from_slice(extra);
    let (_, stderr) = machine.build(&args);
    (common::exported_manifest_digest(&out), stderr)
}

#[test]
fn a_cache_exported_on_one_machine_makes_another_build_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let _registry = RegistryProcess::start(&dir.path().join("registry"), 5394);
    let reference = "127.0.0.1:5394/cache:main";
    let local_max = dir.path().join("cache-max");
    let local_min = dir.path().join("cache-min");

    let a = Machine::new(dir.path(), "a", &busybox, &FILES);
    let (image_a, stderr) = build_exported(
        &a,
        &[
            "--cache-to",
            &format!("type=registry,ref={reference},mode=max"),
            "--cache-to",
            &format!("type=local,dest={},mode=max", local_max.display()),
            "--cache-to",
            &format!("type=local,dest={}", local_min.display()),
        ],
    );
    assert_ran(&stderr, 5, &["ran-build-42", "ran-final-42"]);
    assert!(stderr.contains("exported cache to"), "{stderr}");

    // Registry, mode=max: nothing runs, and the exported image is A's, byte for byte.
    let b = Machine::new(dir.path(), "b", &busybox, &FILES);
    let started = std::time::Instant::now();
    let (image_b, stderr) = build_exported(
        &b,
        &["--cache-from", &format!("type=registry,ref={reference}")],
    );
    eprintln!(
        "B rebuilt from the registry cache in {:?}",
        started.elapsed()
    );
    assert_ran(&stderr, 0, &[]);
    assert_eq!(image_b, image_a);

    // Directory, mode=max: the same.
    let c = Machine::new(dir.path(), "c", &busybox, &FILES);
    let (image_c, stderr) = build_exported(
        &c,
        &[
            "--cache-from",
            &format!("type=local,src={}", local_max.display()),
        ],
    );
    assert_ran(&stderr, 0, &[]);
    assert_eq!(image_c, image_a);

    // mode=min holds the final image's layers only: the build stage runs again (its COPY
    // --from needs the files), the final stage comes from the cache.
    let d = Machine::new(dir.path(), "d", &busybox, &FILES);
    let (image_d, stderr) = build_exported(
        &d,
        &[
            "--cache-from",
            &format!("type=local,src={}", local_min.display()),
        ],
    );
    assert_ran(&stderr, 3, &["ran-build-42"]);
    assert_eq!(image_d, image_a);

    // A missing cache is a warning, not an error (the first build of a branch has none).
    let (_, stderr) = d.build(&[
        "--cache-from",
        "type=registry,ref=127.0.0.1:5394/cache:none",
    ]);
    assert!(
        stderr.contains("warning: skipping --cache-from"),
        "{stderr}"
    );
}

#[test]
fn inline_caches_are_refused_with_what_to_use_instead() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _registry = RegistryProcess::start(&dir.path().join("registry"), port);
    let m = Machine::new(dir.path(), "m", &busybox, &FILES);
    let image = format!("127.0.0.1:{port}/app:1");
    m.stagecraft()
        .args(["tag", "busybox:latest", &image])
        .assert()
        .success();
    m.stagecraft().args(["push", &image]).assert().success();

    // An image as --cache-from (buildx reads its inline cache): a warning that says why not.
    let (_, stderr) = m.build(&["--cache-from", &image]);
    assert!(
        stderr.contains("is an image, not a stagecraft build cache")
            && stderr.contains("--cache-to type=registry,ref=REPO:buildcache"),
        "{stderr}"
    );
    // --cache-to type=inline: an error before anything runs.
    let output = m
        .stagecraft()
        .args(["build", "--cache-to", "type=inline"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("stagecraft has no inline cache"),
        "{stderr}"
    );
    assert!(!stderr.contains("ran-build-42"), "{stderr}");
}
