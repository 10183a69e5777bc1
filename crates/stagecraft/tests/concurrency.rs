//! Four builds sharing one store at once — overlapping stages, one shared cache mount — while
//! `prune` runs: every build succeeds, and the store verifies afterwards.

mod common;

use common::busybox_layout;
use std::process::{Command, Stdio};

fn stagecraft(root: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stagecraft"));
    command.env("STAGECRAFT_ROOT", root);
    command
}

#[test]
fn four_builds_and_a_prune_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let root = dir.path().join("store");
    assert!(
        stagecraft(&root)
            .args(["load", "--tag", "busybox:latest", "-i"])
            .arg(&busybox)
            .status()
            .unwrap()
            .success()
    );
    let mut contexts = Vec::new();
    for i in 0..4 {
        let context = dir.path().join(format!("ctx{i}"));
        std::fs::create_dir_all(&context).unwrap();
        // The `common` stage is identical in all four; the last stage differs.
        std::fs::write(
            context.join("Dockerfile"),
            format!(
                "FROM busybox:latest AS common\n\
                 RUN --mount=type=cache,target=/cache,id=shared \\\n    \
                     echo run >> /cache/log && echo common > /common\n\
                 FROM common\n\
                 COPY own.txt /own.txt\n\
                 RUN cat /common /own.txt > /result-{i}\n"
            ),
        )
        .unwrap();
        std::fs::write(context.join("own.txt"), format!("build {i}\n")).unwrap();
        contexts.push(context);
    }
    let builds: Vec<_> = contexts
        .iter()
        .enumerate()
        .map(|(i, context)| {
            stagecraft(&root)
                .args(["build", "--progress=plain", "-t", &format!("parallel:{i}")])
                .arg(context)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let prune = stagecraft(&root)
        .args(["prune"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for (i, build) in builds.into_iter().enumerate() {
        let output = build.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "build {i}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pruned = prune.wait_with_output().unwrap();
    assert!(
        pruned.status.success(),
        "prune: {}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    let verify = stagecraft(&root).arg("verify").output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // Every image is complete: its filesystem exports.
    for i in 0..4 {
        let out = dir.path().join(format!("fs{i}"));
        let status = stagecraft(&root)
            .args(["save", "--format", "dir", &format!("parallel:{i}"), "-o"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(out.join(format!("result-{i}"))).unwrap(),
            format!("common\nbuild {i}\n")
        );
    }
}
