//! The build's network sandbox goes with the build: its stack process (and so the namespace,
//! which nothing else holds) is gone when the build ends, succeeds, fails, or is killed with
//! SIGKILL in the middle of a step.
//!
//! One test in a binary of its own: it makes this process the subreaper of everything it
//! starts, so that any process a build leaves behind becomes this process's child, and "no
//! child left" means no leftover at all. Sharing the process with other tests would make their
//! children this test's business.

mod common;

use common::{Machine, busybox_layout};
use rustix::io::Errno;
use rustix::process::WaitOptions;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Asserts that this process has no child left: no build, no stack, no step.
fn assert_nothing_left(after: &str) {
    match rustix::process::wait(WaitOptions::NOHANG) {
        Err(Errno::CHILD) => {}
        other => panic!("after {after}, a process is left: {other:?}"),
    }
}

/// Reaps every process left to this subreaper; panics when they are not all gone in a minute
/// (a bound for a broken build, not a pause: it returns as soon as the last one exits).
fn reap_all(after: &str) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        loop {
            match rustix::process::wait(WaitOptions::empty()) {
                Ok(_) => {}
                Err(Errno::CHILD) => break,
                Err(e) => panic!("wait: {e}"),
            }
        }
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("after {after}, processes are still running a minute later"));
}

#[test]
fn the_stack_is_gone_after_a_build_that_succeeds_fails_or_is_killed() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            (
                "ok.Dockerfile",
                "FROM busybox:latest\nRUN ls /sys/class/net\n",
            ),
            (
                "fails.Dockerfile",
                "FROM busybox:latest\nRUN ls -1 /sys/class/net\nRUN exit 3\n",
            ),
            (
                "killed.Dockerfile",
                "FROM busybox:latest\nRUN printf 'SANDBOX-%s\\n' UP && sleep 600\n",
            ),
        ],
    );
    let file = |name: &str| machine.context.join(name).display().to_string();
    assert_nothing_left("loading the base image");

    let (_, stderr) = machine.build(&["-f", &file("ok.Dockerfile")]);
    assert!(stderr.contains("tap0"), "not in the sandbox:\n{stderr}");
    assert_nothing_left("a build that succeeded");

    let output = machine
        .stagecraft()
        .args(["build", "--progress=plain", "-f", &file("fails.Dockerfile")])
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("tap0"), "not in the sandbox:\n{stderr}");
    assert_nothing_left("a build that failed");

    let mut build = Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .env("STAGECRAFT_ROOT", &machine.root)
        .args([
            "build",
            "--progress=plain",
            "-f",
            &file("killed.Dockerfile"),
        ])
        .arg(&machine.context)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(build.stderr.take().unwrap());
    let mut seen = String::new();
    // Until the step is demonstrably running in the sandbox.
    while !seen.contains("SANDBOX-UP") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("the build ended before its step ran:\n{seen}");
        }
        seen.push_str(&line);
    }
    build.kill().unwrap();
    build.wait().unwrap();
    reap_all("a build killed with SIGKILL");
}
