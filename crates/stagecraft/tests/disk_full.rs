//! A store on a full or read-only file system: a clear error, nothing half-written, and the
//! store still verifies and works once there is room (or it is writable again).

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

/// A store on its own 8 MB tmpfs under `dir`.
fn small_store(dir: &std::path::Path) -> (std::path::PathBuf, TmpfsMount) {
    let root = dir.join("store");
    std::fs::create_dir(&root).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(mounted.success(), "mounting a small tmpfs needs root");
    (root.clone(), TmpfsMount(root))
}

/// Runs stagecraft expecting exit code 1 with `needle` in stderr; returns stderr.
fn fails_with(command: &mut Command, needle: &str) -> String {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(needle), "no {needle:?} in:\n{stderr}");
    stderr
}

fn assert_verifies(root: &std::path::Path) {
    let verify = stagecraft(root).arg("verify").output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A store with busybox loaded and a context whose Dockerfile copies a 24 MB random file.
fn store_and_big_context(
    dir: &std::path::Path,
) -> (std::path::PathBuf, TmpfsMount, std::path::PathBuf) {
    let (root, mount) = small_store(dir);
    let status = stagecraft(&root)
        .args(["load", "--tag", "busybox:latest", "-i"])
        .arg(common::busybox_layout(dir))
        .status()
        .unwrap();
    assert!(status.success());
    let context = dir.join("ctx");
    std::fs::create_dir(&context).unwrap();
    common::write_random_file(&context.join("big.bin"), 24, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo small > /small\nCOPY big.bin /big.bin\n",
    )
    .unwrap();
    (root, mount, context)
}

#[test]
fn a_build_on_a_full_disk_fails_clearly_and_the_store_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _mount, context) = store_and_big_context(dir.path());
    fails_with(
        stagecraft(&root)
            .args(["build", "--progress=plain", "-t", "big:1"])
            .arg(&context),
        "No space left on device",
    );
    assert_verifies(&root);
    // Nothing of the failed step is left behind: the scratch directories are gone.
    let ingest: Vec<_> = std::fs::read_dir(root.join("ingest")).unwrap().collect();
    assert!(ingest.is_empty(), "{ingest:?}");
    // With room again, the steps before the full disk come from the cache.
    std::fs::write(context.join("big.bin"), b"small now").unwrap();
    let output = stagecraft(&root)
        .args(["build", "--progress=plain", "-t", "big:1"])
        .arg(&context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("CACHED"), "{stderr}");
}

#[test]
fn a_read_only_store_refuses_writes_clearly_and_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _mount, context) = store_and_big_context(dir.path());
    std::fs::write(context.join("big.bin"), b"small").unwrap();
    let built = stagecraft(&root)
        .args(["build", "--progress=quiet", "-t", "app:1"])
        .arg(&context)
        .status()
        .unwrap();
    assert!(built.success());
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(remounted.success());

    std::fs::write(context.join("big.bin"), b"changed").unwrap();
    fails_with(
        stagecraft(&root)
            .args(["build", "--progress=plain", "-t", "app:2"])
            .arg(&context),
        "Read-only file system",
    );
    fails_with(
        stagecraft(&root).args(["tag", "app:1", "app:3"]),
        "Read-only file system",
    );
    // Reading needs no write.
    let images = stagecraft(&root).args(["images"]).output().unwrap();
    assert!(
        images.status.success(),
        "{}",
        String::from_utf8_lossy(&images.stderr)
    );
    assert!(String::from_utf8_lossy(&images.stdout).contains("app"));
    let inspect = stagecraft(&root)
        .args(["inspect", "app:1"])
        .status()
        .unwrap();
    assert!(inspect.success());
    assert_verifies(&root);
}

#[test]
fn a_full_disk_gives_a_clear_error_and_leaves_a_verifiable_store() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _mount) = small_store(dir.path());

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
    assert!(images.status.success());
    assert_eq!(String::from_utf8_lossy(&images.stdout), "", "no image");

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
