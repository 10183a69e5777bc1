//! Cache records, store layout and default location.

mod common;

use std::fs;

use common::{entries, store};
use stagecraft_store::{Error, Store};

#[test]
fn cache_records_round_trip() {
    let (_dir, store) = store();
    assert_eq!(store.get_cache_record("sha256:abc").unwrap(), None);
    store.put_cache_record("sha256:abc", b"raw bytes").unwrap();
    assert_eq!(
        store.get_cache_record("sha256:abc").unwrap().as_deref(),
        Some(&b"raw bytes"[..])
    );
    store.put_cache_record("sha256:abc", b"replaced").unwrap();
    assert_eq!(
        store.get_cache_record("sha256:abc").unwrap().as_deref(),
        Some(&b"replaced"[..])
    );

    let value = serde_json::json!({"layer": "sha256:00", "n": 3});
    store.put_cache_json("json-key", &value).unwrap();
    assert_eq!(
        store
            .get_cache_json::<serde_json::Value>("json-key")
            .unwrap(),
        Some(value)
    );
    let err = store.get_cache_json::<Vec<u8>>("sha256:abc").unwrap_err();
    assert!(
        matches!(err, Error::Json { .. }) && err.to_string().contains("sha256:abc"),
        "{err}"
    );

    assert_eq!(
        store.list_cache_records().unwrap(),
        vec!["json-key", "sha256:abc"]
    );
    assert!(store.remove_cache_record("json-key").unwrap());
    assert!(!store.remove_cache_record("json-key").unwrap());
    assert!(entries(&store.root().join("ingest")).is_empty());
}

/// A scratch file holding `bytes`, as a step writes a large record.
fn scratch_holding(store: &Store, bytes: &[u8]) -> stagecraft_store::ScratchFile {
    let scratch = store.scratch_file("record").unwrap();
    fs::write(scratch.path(), bytes).unwrap();
    scratch
}

#[test]
fn records_from_scratch_files_are_moved_into_place_unless_already_there() {
    use std::os::unix::fs::MetadataExt as _;
    let (_dir, store) = store();
    let record = |store: &Store| store.get_cache_record("files").unwrap();
    // Larger than a block of the comparison, differing only in the last byte.
    let first = vec![7u8; 200_000];
    let mut second = first.clone();
    *second.last_mut().unwrap() = 8;

    let scratch = scratch_holding(&store, &first);
    let moved = scratch.path().to_owned();
    store.put_cache_record_file("files", scratch).unwrap();
    assert_eq!(record(&store).as_deref(), Some(&first[..]));
    assert!(!moved.exists(), "the scratch file is the record now");
    let record_path = store.root().join("cache").join("files");
    let inode = fs::metadata(&record_path).unwrap().ino();

    // The same bytes again: the record stays the file it was, and the scratch file goes.
    let scratch = scratch_holding(&store, &first);
    let same = scratch.path().to_owned();
    store.put_cache_record_file("files", scratch).unwrap();
    assert_eq!(fs::metadata(&record_path).unwrap().ino(), inode);
    assert!(!same.exists(), "an unused scratch file is removed");

    // Other bytes of the same length replace it; so do bytes of another length.
    for bytes in [&second[..], &second[..10]] {
        store
            .put_cache_record_file("files", scratch_holding(&store, bytes))
            .unwrap();
        assert_eq!(record(&store).as_deref(), Some(bytes));
    }
    assert!(
        store
            .put_cache_record_file("../x", scratch_holding(&store, b"x"))
            .is_err(),
        "a key is checked as for any record"
    );
}

#[test]
fn context_indexes_are_named_by_the_canonical_context_path() {
    let (dir, store) = store();
    let context = dir.path().join("context");
    fs::create_dir_all(context.join("sub")).unwrap();
    assert_eq!(store.get_context_index(&context).unwrap(), None);
    store.put_context_index(&context, b"first").unwrap();
    // The same directory by another path is the same index.
    store
        .put_context_index(&context.join("sub/.."), b"second")
        .unwrap();
    std::os::unix::fs::symlink(&context, dir.path().join("link")).unwrap();
    assert_eq!(
        store
            .get_context_index(&dir.path().join("link"))
            .unwrap()
            .as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(entries(&store.root().join("context-index")).len(), 1);
    assert_eq!(store.get_context_index(&context.join("sub")).unwrap(), None);
    assert!(entries(&store.root().join("ingest")).is_empty());
    let err = store
        .get_context_index(&dir.path().join("missing"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("missing"),
        "{err}"
    );
}

#[test]
fn cache_keys_cannot_escape() {
    let (_dir, store) = store();
    for key in [
        "",
        "../tags.json",
        "a/b",
        ".hidden",
        "sp ace",
        &"k".repeat(201),
    ] {
        let err = store.put_cache_record(key, b"x").unwrap_err();
        assert!(matches!(err, Error::CacheKey { .. }), "{key:?}: {err:?}");
        assert!(err.to_string().contains("A-Z a-z 0-9"), "{err}");
    }
}

#[test]
fn layout_is_created_and_checked() {
    let (_dir, store) = store();
    let root = store.root().to_owned();
    assert_eq!(
        entries(&root),
        vec![
            "blobs",
            "cache",
            "cache-mounts",
            "context-index",
            "ingest",
            "layout.json",
            "lazy-blobs",
            "locks",
            "snapshots"
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Reopening works; a future layout is refused with guidance.
    Store::open(&root).unwrap();
    fs::write(root.join("layout.json"), br#"{"version":99}"#).unwrap();
    let err = Store::open(&root).unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err:?}");
    assert!(err.to_string().contains("STAGECRAFT_ROOT"), "{err}");
}

#[test]
fn open_reports_unusable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let err = Store::open(file.join("store")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("a-file"), "{err}");
}

#[test]
fn a_store_is_rootful_or_rootless_for_good() {
    use stagecraft_layer::OverlayXattr;
    let (_dir, store) = store();
    let root = store.root().to_owned();
    let own = store.overlay_xattr();
    assert_eq!(own, OverlayXattr::for_current_process());
    let (own_name, other_name) = match own {
        OverlayXattr::Trusted => ("trusted", "user"),
        OverlayXattr::User => ("user", "trusted"),
    };
    let layout = |name: &str| format!(r#"{{"version":1,"overlay_xattr":"{name}"}}"#);
    assert_eq!(
        fs::read_to_string(root.join("layout.json")).unwrap(),
        layout(own_name)
    );
    // The other kind of process's store is refused, with the way out.
    fs::write(root.join("layout.json"), layout(other_name)).unwrap();
    let err = Store::open(&root).unwrap_err();
    assert!(matches!(err, Error::OverlayXattr { .. }), "{err:?}");
    assert!(err.to_string().contains("STAGECRAFT_ROOT"), "{err}");
    // A store from before the flavour was recorded: with no snapshot yet, it becomes this
    // process's; with snapshots, they were root's.
    fs::write(root.join("layout.json"), br#"{"version":1}"#).unwrap();
    Store::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("layout.json")).unwrap(),
        layout(own_name)
    );
    fs::write(root.join("layout.json"), br#"{"version":1}"#).unwrap();
    fs::create_dir(root.join("snapshots/0123")).unwrap();
    assert_eq!(
        Store::open(&root).is_ok(),
        own == OverlayXattr::Trusted,
        "legacy snapshots are rootful"
    );
}

#[test]
fn prune_all_drops_context_indexes_and_a_plain_prune_keeps_them() {
    let (dir, store) = store();
    let context = dir.path().join("context");
    fs::create_dir_all(&context).unwrap();
    store.put_context_index(&context, b"hashes").unwrap();
    let kept = store
        .prune(&stagecraft_store::PruneOptions::default())
        .unwrap();
    assert_eq!(kept.removed_context_indexes, 0);
    assert!(store.get_context_index(&context).unwrap().is_some());
    let keep_cache = stagecraft_store::PruneOptions {
        all: true,
        keep_cache: true,
        ..Default::default()
    };
    assert_eq!(store.prune(&keep_cache).unwrap().removed_context_indexes, 0);
    let all = stagecraft_store::PruneOptions {
        all: true,
        ..Default::default()
    };
    let report = store.prune(&all).unwrap();
    assert_eq!(report.removed_context_indexes, 1);
    assert_eq!(store.get_context_index(&context).unwrap(), None);
}
