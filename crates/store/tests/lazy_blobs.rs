//! Lazy blobs: a layer recorded by its snapshots, read back byte for byte, kept and collected
//! with them, and refused when a snapshot no longer gives its bytes.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{entries, store};
use stagecraft_image::Digest;
use stagecraft_layer::TarOptions;
use stagecraft_store::{DigestWriter, Error, LazyBlob, PruneOptions, Store, VerifyOptions};

/// A lower snapshot with two files, and over it a layer (made as a step makes one: hashed,
/// snapshot installed, recorded) that changes one, adds a directory and deletes nothing.
/// Returns the layer's digest, its bytes as written at commit time, and the lower's diff ID.
fn lazy_layer(store: &Store) -> (Digest, Vec<u8>, Digest) {
    let lower_files = tempfile::tempdir().unwrap();
    fs::write(lower_files.path().join("kept"), b"below").unwrap();
    fs::write(lower_files.path().join("changed"), b"old").unwrap();
    let lower_tar = store
        .write_layer_tar(
            lower_files.path(),
            &[],
            &TarOptions::default(),
            None,
            Vec::new(),
        )
        .unwrap();
    let lower = Digest::of(&lower_tar);
    store
        .create_snapshot(&lower, |dir: &Path| {
            fs::write(dir.join("kept"), b"below")?;
            fs::write(dir.join("changed"), b"old")
        })
        .unwrap();

    let scratch = tempfile::tempdir_in(store.root()).unwrap();
    let upper = scratch.path().join("upper");
    fs::create_dir_all(upper.join("new/deep")).unwrap();
    fs::write(upper.join("changed"), b"new content").unwrap();
    fs::write(upper.join("new/deep/file"), vec![7u8; 3 << 20]).unwrap();
    let options = TarOptions {
        source_date_epoch: Some(1_700_000_000),
    };
    let lowers = [lower.clone()];
    let committed = store
        .write_layer_tar(&upper, &lowers, &options, None, Vec::new())
        .unwrap();
    let hashed = store
        .write_layer_tar(&upper, &lowers, &options, None, DigestWriter::new())
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(hashed.digest, Digest::of(&committed));
    assert_eq!(hashed.size, committed.len() as u64);
    store
        .create_snapshot(&hashed.digest, |dir: &Path| fs::rename(&upper, dir))
        .unwrap();
    let blob = LazyBlob {
        size: hashed.size,
        upper: hashed.digest.clone(),
        lowers: lowers.to_vec(),
        options,
        xattr: store.overlay_xattr(),
    };
    store.record_lazy_blob(&hashed.digest, &blob).unwrap();
    (hashed.digest, committed, lower)
}

#[test]
fn a_lazy_blob_is_present_and_reads_as_the_bytes_hashed_at_commit() {
    let (_dir, store) = store();
    let (digest, committed, _) = lazy_layer(&store);
    assert!(store.has_blob(&digest));
    assert!(!store.blob_path(&digest).exists(), "recorded, not written");
    assert_eq!(store.blob_size(&digest).unwrap(), committed.len() as u64);
    let streamed = store.write_lazy_blob(&digest, Vec::new()).unwrap();
    assert_eq!(streamed, committed);
    assert!(
        !store.blob_path(&digest).exists(),
        "streaming writes no blob"
    );

    let mut read = Vec::new();
    store
        .open_blob(&digest)
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, committed);
    let file = store.blob_path(&digest);
    assert_eq!(fs::read(&file).unwrap(), committed, "materialized once");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert!(store.verify(&VerifyOptions::default()).unwrap().is_clean());
}

#[test]
fn a_changed_snapshot_is_refused_and_nothing_is_written() {
    let (_dir, store) = store();
    let (digest, _, _) = lazy_layer(&store);
    let file = store.snapshot_path(&digest).unwrap().join("changed");
    fs::write(&file, b"NEW CONTENT").unwrap();
    let err = store.blob_file(&digest).unwrap_err();
    assert!(
        matches!(&err, Error::LazyBlobDamaged { digest: d, .. } if *d == digest),
        "{err:?}"
    );
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(entries(&store.root().join("blobs/sha256")).is_empty());
    assert!(entries(&store.root().join("ingest")).is_empty());
    let report = store.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(
        report.corrupt[0].problem.contains("hashes to"),
        "{report:?}"
    );
}

#[test]
fn a_lazy_blob_keeps_its_snapshots_and_goes_with_them() {
    let (_dir, store) = store();
    let (digest, _, lower) = lazy_layer(&store);
    // A cache record names only the layer: its snapshots live through it.
    store
        .put_cache_record("step", digest.as_str().as_bytes())
        .unwrap();
    let kept = store.prune(&PruneOptions::default()).unwrap();
    assert!(kept.removed_snapshots.is_empty(), "{kept:?}");
    assert!(kept.removed_blobs.is_empty(), "{kept:?}");
    assert!(store.has_blob(&digest));
    assert!(
        store.disk_usage().unwrap().blobs > 0,
        "its record is counted"
    );

    let all = store
        .prune(&PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(all.removed_blobs, vec![digest.clone()]);
    let mut removed = all.removed_snapshots.clone();
    removed.sort();
    let mut expected = vec![digest.clone(), lower];
    expected.sort();
    assert_eq!(removed, expected);
    assert!(!store.has_blob(&digest));
    assert!(entries(&store.root().join("lazy-blobs")).is_empty());
}

#[test]
fn a_lazy_blob_without_its_snapshots_is_missing() {
    let (_dir, store) = store();
    let (digest, _, lower) = lazy_layer(&store);
    let snapshot = store.snapshot_path(&lower).unwrap();
    fs::remove_dir_all(snapshot.parent().unwrap()).unwrap();
    assert!(!store.has_blob(&digest));
    assert!(matches!(
        store.blob_size(&digest),
        Err(Error::BlobNotFound { .. })
    ));
    assert!(matches!(
        store.open_blob(&digest),
        Err(Error::BlobNotFound { .. })
    ));
    // Prune drops the record, though a cache record still names the layer.
    store
        .put_cache_record("step", digest.as_str().as_bytes())
        .unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.removed_blobs, vec![digest]);
    assert!(entries(&store.root().join("lazy-blobs")).is_empty());
}
