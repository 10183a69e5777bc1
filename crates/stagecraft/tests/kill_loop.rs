//! SIGKILL a realistic build at many points (during RUN, layer export, blob and snapshot writes,
//! tagging): after every kill the store verifies, and the next build succeeds and reproduces the
//! digest of an uninterrupted build (SOURCE_DATE_EPOCH makes builds reproducible).
//!
//! CI kills 12 builds; `STAGECRAFT_KILLS=100 cargo nextest run -p stagecraft --test kill_loop`
//! runs the long version.
// Tests print what they measured or skipped, for the reader of the test log.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use common::busybox_layout;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How many builds to kill: `STAGECRAFT_KILLS`, else 12.
fn kills() -> u64 {
    std::env::var("STAGECRAFT_KILLS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(12)
}

#[test]
fn killed_builds_leave_a_verifiable_store_and_reproducible_results() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(context.join("src")).unwrap();
    for i in 0..200 {
        std::fs::write(
            context.join(format!("src/f{i}.txt")),
            format!("file {i}\n").repeat(200),
        )
        .unwrap();
    }
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest AS build\nWORKDIR /app\nCOPY src/ ./src/\n\
         RUN cat src/*.txt > /all && dd if=/dev/zero of=/blob bs=1k count=4096 2>/dev/null\n\
         FROM busybox:latest\nCOPY --from=build /all /all\nCOPY --from=build /blob /blob\n",
    )
    .unwrap();
    let stagecraft = |root: &std::path::Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stagecraft"));
        command
            .env("STAGECRAFT_ROOT", root)
            .env("SOURCE_DATE_EPOCH", "1700000000");
        command
    };
    let build_with = |root: &std::path::Path, cache: &[&str]| -> String {
        let output = stagecraft(root)
            .args(["build", "--progress=quiet", "-t", "victim:1"])
            .args(cache)
            .arg(&context)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let build = |root: &std::path::Path| build_with(root, &["--no-cache"]);
    let load = |root: &std::path::Path| {
        assert!(
            stagecraft(root)
                .args(["load", "--tag", "busybox:latest", "-i"])
                .arg(&busybox)
                .status()
                .unwrap()
                .success()
        );
    };

    let reference_root = dir.path().join("reference");
    load(&reference_root);
    let reference = build(&reference_root);
    // Time a second uncached build: the first one also unpacks the base image.
    let started = Instant::now();
    assert_eq!(
        build(&reference_root),
        reference,
        "two uninterrupted builds differ"
    );
    let full = started.elapsed();

    let root = dir.path().join("victim");
    load(&root);
    let mut killed = 0;
    let kills = kills();
    for i in 0..kills {
        // Spread the kill points over the length of a build.
        let delay = full.mul_f64((i as f64 + 0.5) / kills as f64);
        let mut child = stagecraft(&root)
            .args(["build", "--progress=quiet", "--no-cache", "-t", "victim:1"])
            .arg(&context)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < delay && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let verify = stagecraft(&root).arg("verify").output().unwrap();
        assert!(
            verify.status.success(),
            "kill {i}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        // Whatever the kill left (records, snapshots, blobs), the next build uses it or
        // ignores it, and gives the uninterrupted build's image.
        assert_eq!(
            build_with(&root, &[]),
            reference,
            "kill {i}: the next build differs from an uninterrupted one"
        );
    }
    eprintln!(
        "{killed} of {kills} builds were killed while running; the store verified after each"
    );
    // Timing varies with the machine's load; enough kills must land for the test to mean anything.
    assert!(
        killed >= kills / 4,
        "only {killed} of {kills} builds were still running when killed"
    );
    assert_eq!(
        build(&root),
        reference,
        "a build after the kills differs from an uninterrupted one"
    );
}
