//! `COPY --link` (a layer independent of the stage below) and `RUN --mount=type=ssh`, end to
//! end as root.

mod common;

use common::{Machine, busybox_layout};
use std::fs;
use std::path::Path;

/// The entries of a tar as (path, uid, mode).
fn tar_entries(path: &Path) -> Vec<(String, u64, u32)> {
    common::tar_headers(path)
        .into_iter()
        .map(|(path, header)| (path, header.uid().unwrap(), header.mode().unwrap()))
        .collect()
}

#[test]
fn a_linked_copy_survives_a_base_change_and_ignores_the_stage_below() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            (
                "base/Dockerfile",
                "FROM busybox:latest\nRUN mkdir -m 700 /deep && chown 1000:1000 /deep\n",
            ),
            (
                "Dockerfile",
                "ARG BASE=busybox:latest\nFROM $BASE\nCOPY --link a.txt /deep/dir/\n",
            ),
            ("a.txt", "linked\n"),
        ],
    );
    machine
        .stagecraft()
        .args(["build", "--progress=plain", "-t", "base2:latest"])
        .arg(machine.context.join("base"))
        .assert()
        .success();
    let (first, stderr) = machine.build(&[]);
    assert!(stderr.contains(": 1 steps run,"), "{stderr}");

    // Another base: the linked layer is the same, taken from the cache.
    let rootfs = dir.path().join("rootfs.tar");
    let output = format!("type=tar,dest={}", rootfs.display());
    let (second, stderr) = machine.build(&["--build-arg", "BASE=base2:latest", "-o", &output]);
    assert!(stderr.contains(": 0 steps run, 1 cached"), "{stderr}");
    assert_ne!(first, second);
    // Its missing parents are made 0755 root on scratch, whatever the base has there.
    let entries = tar_entries(&rootfs);
    let deep = entries.iter().find(|e| e.0.trim_end_matches('/') == "deep");
    assert_eq!(
        deep.map(|e| (e.1, e.2 & 0o7777)),
        Some((0, 0o755)),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|e| e.0 == "deep/dir/a.txt"),
        "{entries:?}"
    );
}

#[test]
fn ssh_mounts_forward_the_agent_socket() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest\n\
             RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"agent at $SSH_AUTH_SOCK\"\n\
             RUN --mount=type=ssh,id=deploy,target=/tmp/deploy.sock test -S /tmp/deploy.sock && echo \"deploy agent $((1+1))\"\n\
             RUN --mount=type=ssh,id=absent echo optional $((2+2))\n",
        )],
    );
    // A fake agent: any listening unix socket.
    let socket = dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let default = format!("default={}", socket.display());
    let deploy = format!("deploy={}", socket.display());
    let (_, stderr) = machine.build(&["--ssh", &default, "--ssh", &deploy]);
    assert!(
        stderr.contains("agent at /run/buildkit/ssh_agent.0"),
        "{stderr}"
    );
    assert!(stderr.contains("deploy agent 2"), "{stderr}");
    // An agent that was not forwarded is skipped unless the mount is `required`.
    assert!(stderr.contains("optional 4"), "{stderr}");

    // A key file is no agent: the error says what to pass.
    let key = dir.path().join("id_ed25519");
    fs::write(&key, "not a socket").unwrap();
    let output = machine
        .stagecraft()
        .args(["build", "--ssh"])
        .arg(format!("default={}", key.display()))
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is not an SSH agent socket"), "{stderr}");
}
