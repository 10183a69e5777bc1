//! The lock protocol between threads and between processes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;

use common::store;
use stagecraft_store::{PruneOptions, Store};

/// Set in the child process: the store root whose exclusive lock to hold.
const HOLDER_ENV: &str = "STAGECRAFT_TEST_LOCK_HOLDER_ROOT";
/// What the child prints once it holds the lock. The test harness may
/// print other text on the same line (`test name ... `), so it is searched
/// for, not compared.
const LOCKED_TOKEN: &str = "STAGECRAFT-LOCK-HELD";

#[test]
fn leases_are_shared_and_exclude_maintenance_across_handles() {
    let (_dir, store) = store();
    let other = Store::open(store.root()).unwrap();

    let first = store.lease().unwrap();
    let second = other.try_lease().unwrap();
    assert!(second.is_some(), "leases are shared");
    assert!(
        other.try_lock_exclusive().unwrap().is_none(),
        "a lease blocks maintenance"
    );

    // A prune in another thread waits for both leases to go.
    let pruner = {
        let other = other.clone();
        thread::spawn(move || other.prune(&PruneOptions::default()))
    };
    drop(first);
    drop(second);
    pruner.join().unwrap().unwrap();

    let maintenance = store.lock_exclusive().unwrap();
    assert!(
        other.try_lease().unwrap().is_none(),
        "maintenance excludes leases"
    );
    assert!(other.try_lock_exclusive().unwrap().is_none());
    // Maintenance work goes through the guard itself.
    maintenance.prune(&PruneOptions::default()).unwrap();
    drop(maintenance);
    assert!(other.try_lease().unwrap().is_some());
}

/// Runs only as the child of `exclusive_lock_held_by_another_process`:
/// holds the exclusive lock until its stdin is closed.
#[test]
fn lock_holder_child_process() {
    let Some(root) = std::env::var_os(HOLDER_ENV) else {
        return; // Not the child: nothing to do.
    };
    let store = Store::open(PathBuf::from(root)).unwrap();
    let guard = store.lock_exclusive().unwrap();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{LOCKED_TOKEN}").unwrap();
    stdout.flush().unwrap();
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    drop(guard);
}

#[test]
fn exclusive_lock_held_by_another_process() {
    let (_dir, store) = store();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "lock_holder_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, store.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("child exited before locking").unwrap();
        if line.contains(LOCKED_TOKEN) {
            break;
        }
    }

    // The other process holds the store exclusively.
    assert!(store.try_lease().unwrap().is_none());
    assert!(store.try_lock_exclusive().unwrap().is_none());

    // A writer waits for it rather than failing.
    let writer = {
        let store = store.clone();
        thread::spawn(move || store.write_blob_bytes(b"written after the child let go"))
    };
    // Closing the child's stdin makes it release the lock and exit.
    drop(child.stdin.take());
    // Drain the child's remaining output so it never blocks on a full pipe.
    for line in lines {
        line.unwrap();
    }
    assert!(child.wait().unwrap().success());
    let info = writer.join().unwrap().unwrap();
    assert!(store.has_blob(&info.digest));
    assert!(store.try_lease().unwrap().is_some());
}
