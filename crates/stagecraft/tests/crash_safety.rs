//! A `stagecraft` killed with SIGKILL in the middle of writing leaves a store that `verify`
//! finds clean and that keeps working.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn stagecraft(root: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stagecraft"));
    command.env("STAGECRAFT_ROOT", root);
    command
}

#[test]
fn sigkill_during_an_import_leaves_a_verifiable_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    // Incompressible data, so the import spends its time hashing, compressing and writing.
    common::write_random_file(&rootfs.join("big.bin"), 96, 0x9e37_79b9_7f4a_7c15);

    let mut kills = 0;
    for delay_ms in [30u64, 80, 160, 320] {
        let mut child = stagecraft(&root)
            .args(["import"])
            .arg(&rootfs)
            .arg("victim:1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        // Kill at a point in the write, unless the import already finished.
        while started.elapsed() < Duration::from_millis(delay_ms) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let verify = stagecraft(&root).arg("verify").output().unwrap();
        assert!(
            verify.status.success(),
            "verify after a kill at {delay_ms} ms: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    assert!(kills > 0, "every import finished before it could be killed");
    // The store still works: a full import succeeds and is listed.
    let status = stagecraft(&root)
        .arg("import")
        .arg(&rootfs)
        .arg("survivor:1")
        .status()
        .unwrap();
    assert!(status.success());
    let images = stagecraft(&root)
        .args(["images", "--format", "json"])
        .output()
        .unwrap();
    let images: serde_json::Value = serde_json::from_slice(&images.stdout).unwrap();
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "docker.io/library/survivor:1")
    );
}
