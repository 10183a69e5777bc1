//! A store on a full file system: a clear error, nothing half-written, and the store still
//! verifies and works once there is room.

mod common;

use std::process::Command;

fn stagecraft(root: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stagecraft"));
    command.env("STAGECRAFT_ROOT", root);
    command
}

/// Unmounts the small file system even when the test fails.
struct TmpfsMount(std::path::PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_gives_a_clear_error_and_leaves_a_verifiable_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a small tmpfs needs root");
    let _mount = TmpfsMount(root.clone());

    // 24 MB of incompressible data cannot fit in 8 MB.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    common::write_random_file(&rootfs.join("big.bin"), 24, 0x2545_f491_4f6c_dd1d);

    let output = stagecraft(&root)
        .arg("import")
        .arg(&rootfs)
        .arg("too:big")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let verify = stagecraft(&root).arg("verify").output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let images = stagecraft(&root)
        .args(["images", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&images.stdout).unwrap(),
        serde_json::json!([])
    );

    // With room again, the same store works.
    std::fs::write(rootfs.join("big.bin"), b"small now").unwrap();
    let status = stagecraft(&root)
        .arg("import")
        .arg(&rootfs)
        .arg("fits:1")
        .status()
        .unwrap();
    assert!(status.success());
}
