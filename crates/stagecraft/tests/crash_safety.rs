//! A `stagecraft` killed with SIGKILL in the middle of writing leaves a store that `verify`
//! finds clean and that keeps working, outputs as they were, and leftovers that the next
//! command removes.

mod common;

use common::{names_in, tree_bytes, wait_until};
use rustix::process::{Pid, Signal, kill_process};
use std::path::Path;
use std::process::{Child, Command, Stdio};
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
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&images.stdout)
            .lines()
            .any(|line| line == "survivor:1")
    );
}

/// Waits until `started` holds (or `child` exits), freezes the child with SIGSTOP and, if
/// `unfinished` still holds, kills it with SIGKILL and returns true; otherwise lets it finish
/// and returns false. Freezing first makes "killed in the middle" a fact checked, not a guess.
fn kill_midway(
    child: &mut Child,
    mut started: impl FnMut() -> bool,
    unfinished: impl Fn() -> bool,
) -> bool {
    let mut exited = false;
    wait_until("the command to get going", || {
        exited = child.try_wait().unwrap().is_some();
        exited || started()
    });
    if exited {
        return false;
    }
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    kill_process(pid, Signal::STOP).unwrap();
    let killed = unfinished();
    kill_process(pid, if killed { Signal::KILL } else { Signal::CONT }).unwrap();
    child.wait().unwrap();
    killed
}

/// Imports a one-file image `name` whose file holds `megabytes` MiB of random bytes.
fn import_random(root: &Path, dir: &Path, name: &str, megabytes: usize) {
    let rootfs = dir.join(name.replace(':', "-"));
    std::fs::create_dir_all(&rootfs).unwrap();
    common::write_random_file(&rootfs.join("data.bin"), megabytes, megabytes as u64);
    let status = stagecraft(root)
        .arg("import")
        .arg(&rootfs)
        .arg(name)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn save(root: &Path, image: &str, output: &Path) -> Command {
    let mut command = stagecraft(root);
    command
        .args(["save", "--format", "docker", "-o"])
        .arg(output)
        .arg(image)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A store command that needs no image: like any command, it sweeps the store first.
fn next_command(root: &Path) {
    let output = stagecraft(root).arg("images").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn sigkill_during_save_keeps_the_previous_archive_and_the_next_command_removes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    import_random(&root, dir.path(), "small:1", 1);
    import_random(&root, dir.path(), "big:1", 48);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let archive = out_dir.join("image.tar");
    let partials = || -> Vec<String> {
        names_in(&out_dir)
            .into_iter()
            .filter(|name| name.starts_with(".image.tar.") && name.ends_with(".partial"))
            .collect()
    };
    let partial_bytes = || {
        partials()
            .iter()
            .map(|p| tree_bytes(&out_dir.join(p)))
            .sum::<u64>()
    };

    let mut killed = false;
    let mut good = Vec::new();
    // A save that finishes before it can be frozen is tried again.
    for _ in 0..5 {
        assert!(save(&root, "small:1", &archive).status().unwrap().success());
        good = std::fs::read(&archive).unwrap();
        let mut child = save(&root, "big:1", &archive).spawn().unwrap();
        killed = kill_midway(
            &mut child,
            || partial_bytes() > 4 << 20,
            || !partials().is_empty(),
        );
        if killed {
            break;
        }
    }
    assert!(killed, "every save finished before it could be killed");
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        good,
        "the killed save changed the archive"
    );
    assert_eq!(partials().len(), 1, "{:?}", names_in(&out_dir));

    next_command(&root);
    assert_eq!(names_in(&out_dir), vec!["image.tar"]);
    assert!(names_in(&root.join("ingest")).is_empty());
    assert_eq!(std::fs::read(&archive).unwrap(), good);
}

#[test]
fn sigkill_during_a_load_leaves_scratch_that_the_next_command_removes() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    import_random(&source, dir.path(), "big:1", 48);
    let archive = dir.path().join("big.tar");
    assert!(save(&source, "big:1", &archive).status().unwrap().success());

    let root = dir.path().join("store");
    let ingest = root.join("ingest");
    let mut child = stagecraft(&root)
        .args(["load", "-i"])
        .arg(&archive)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let killed = kill_midway(
        &mut child,
        || tree_bytes(&ingest) > 4 << 20,
        || !names_in(&ingest).is_empty(),
    );
    assert!(killed, "the load finished before it could be killed");
    assert!(tree_bytes(&ingest) > 4 << 20, "{:?}", names_in(&ingest));

    next_command(&root);
    assert!(names_in(&ingest).is_empty(), "{:?}", names_in(&ingest));
    let verify = stagecraft(&root).arg("verify").output().unwrap();
    assert!(verify.status.success());
}
