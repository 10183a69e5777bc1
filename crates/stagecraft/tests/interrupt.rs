//! SIGTERM during a `RUN`: the build stops with status 130, removes its scratch directories and
//! leaves no mount behind.

mod common;

use common::busybox_layout;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn sigterm_during_a_run_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let root = dir.path().join("store");
    let stagecraft = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stagecraft"));
        command.env("STAGECRAFT_ROOT", &root).args(args);
        command
    };
    assert!(
        stagecraft(&[
            "load",
            "--tag",
            "busybox:latest",
            "-i",
            &busybox.display().to_string()
        ])
        .status()
        .unwrap()
        .success()
    );
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo started && sleep 60\n",
    )
    .unwrap();

    let mut build = stagecraft(&["build", "--progress=plain", &context.display().to_string()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = build.id();
    let mut stderr = BufReader::new(build.stderr.take().unwrap());
    let mut seen = String::new();
    // Wait until the command inside the RUN has demonstrably started.
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("build ended before the RUN started:\n{seen}");
        }
        seen.push_str(&line);
        if line.trim_end().ends_with(" started") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = build.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");

    let prefix = format!("step-{pid}-");
    let leftovers: Vec<String> = std::fs::read_dir(root.join("ingest"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(
        leftovers.is_empty(),
        "scratch directories left: {leftovers:?}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "a mount of the store is left:\n{mounts}"
    );
}
