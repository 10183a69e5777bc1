//! Snapshots: atomic creation, failure cleanup, racing creators, verify.

mod common;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::{entries, store};
use stagecraft_image::Digest;
use stagecraft_store::{EntryKind, Error, VerifyOptions};

#[test]
fn create_then_find() {
    let (_dir, store) = store();
    let diff_id = Digest::of(b"layer one");
    assert!(store.snapshot_path(&diff_id).is_none());
    let path = store
        .create_snapshot(&diff_id, |dir: &Path| {
            fs::create_dir(dir.join("etc"))?;
            fs::write(dir.join("etc/hostname"), "box\n")
        })
        .unwrap();
    assert_eq!(store.snapshot_path(&diff_id), Some(path.clone()));
    assert_eq!(
        fs::read_to_string(path.join("etc/hostname")).unwrap(),
        "box\n"
    );
    assert_eq!(
        path,
        store
            .root()
            .join("snapshots")
            .join(diff_id.hex())
            .join("fs"),
        "layout documented in the crate docs"
    );
    assert!(entries(&store.root().join("ingest")).is_empty());

    // Existing snapshots are returned without running the closure.
    let again = store
        .create_snapshot(&diff_id, |_: &Path| -> io::Result<()> {
            panic!("must not refill")
        })
        .unwrap();
    assert_eq!(again, path);
}

#[test]
fn failing_fill_leaves_nothing() {
    let (_dir, store) = store();
    let diff_id = Digest::of(b"layer");
    let err = store
        .create_snapshot(&diff_id, |dir: &Path| {
            // Partial content, including a read-only directory that an
            // unprivileged owner can only delete after chmod.
            fs::create_dir(dir.join("ro"))?;
            fs::write(dir.join("ro/file"), "x")?;
            fs::set_permissions(dir.join("ro"), fs::Permissions::from_mode(0o555))?;
            Err(io::Error::other("tar entry 17 is truncated"))
        })
        .unwrap_err();
    assert!(matches!(err, Error::SnapshotFill { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(diff_id.as_str()), "{message}");
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("truncated")
    );
    assert!(store.snapshot_path(&diff_id).is_none());
    assert!(entries(&store.root().join("snapshots")).is_empty());
    assert!(entries(&store.root().join("ingest")).is_empty());
}

#[test]
fn racing_creators_agree_on_one_snapshot() {
    let (_dir, store) = store();
    let store = Arc::new(store);
    let diff_id = Digest::of(b"shared layer");
    let fills = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (store, diff_id, fills, barrier) = (
                Arc::clone(&store),
                diff_id.clone(),
                Arc::clone(&fills),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                barrier.wait();
                store
                    .create_snapshot(&diff_id, |dir: &Path| {
                        fills.fetch_add(1, Ordering::SeqCst);
                        fs::write(dir.join("content"), "same")?;
                        fs::write(dir.join(format!("writer-{i}")), "")
                    })
                    .unwrap()
            })
        })
        .collect();
    let paths: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    assert!(fills.load(Ordering::SeqCst) >= 1);
    // Exactly one writer's directory won, complete.
    let files = entries(&paths[0]);
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(entries(&store.root().join("snapshots")).len(), 1);
    assert!(
        entries(&store.root().join("ingest")).is_empty(),
        "losers cleaned up"
    );
}

#[test]
fn verify_finds_incomplete_snapshots() {
    let (_dir, store) = store();
    let good = Digest::of(b"good");
    store
        .create_snapshot(&good, |dir: &Path| fs::write(dir.join("f"), "good"))
        .unwrap();
    // A directory that never got its marker (not something stagecraft
    // produces, but a copy or a manual edit could).
    let bad = Digest::of(b"bad");
    let bad_dir = store.root().join("snapshots").join(bad.hex());
    fs::create_dir_all(bad_dir.join("fs")).unwrap();
    // A marker that names another layer.
    let wrong = Digest::of(b"wrong");
    let wrong_dir = store.root().join("snapshots").join(wrong.hex());
    fs::create_dir_all(wrong_dir.join("fs")).unwrap();
    fs::write(wrong_dir.join("complete"), good.as_str()).unwrap();

    assert!(store.snapshot_path(&bad).is_none());
    assert!(store.snapshot_path(&wrong).is_none());
    let report = store
        .verify(&VerifyOptions {
            remove_corrupt: true,
        })
        .unwrap();
    assert_eq!(report.snapshots_checked, 3);
    assert_eq!(report.corrupt.len(), 2, "{report:?}");
    assert!(
        report
            .corrupt
            .iter()
            .all(|c| c.kind == EntryKind::Snapshot && c.removed)
    );
    assert_eq!(
        entries(&store.root().join("snapshots")),
        vec![good.hex().to_owned()]
    );
    assert!(store.snapshot_path(&good).is_some());
}
