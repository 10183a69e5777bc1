//! Blob writing, reading, verification and crash leftovers.

mod common;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::thread;

use common::{absent_digest, entries, store};
use stagecraft_image::Digest;
use stagecraft_store::{EntryKind, Error, PruneOptions, VerifyOptions};

#[test]
fn write_then_read_back() {
    let (_dir, store) = store();
    let info = store.write_blob_bytes(b"hello blob").unwrap();
    assert_eq!(info.digest, Digest::of(b"hello blob"));
    assert_eq!(info.size, 10);
    assert!(store.has_blob(&info.digest));
    assert_eq!(store.blob_size(&info.digest).unwrap(), 10);
    assert_eq!(store.read_blob(&info.digest).unwrap(), b"hello blob");
    let mut text = String::new();
    store
        .open_blob(&info.digest)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "hello blob");
    assert_eq!(
        store.blob_path(&info.digest),
        store.root().join("blobs/sha256").join(info.digest.hex())
    );
    let mode = fs::metadata(store.blob_path(&info.digest))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444, "blobs are read-only");
    assert!(
        entries(&store.root().join("ingest")).is_empty(),
        "no temp file left"
    );
    assert!(store.verify(&VerifyOptions::default()).unwrap().is_clean());
}

#[test]
fn streaming_write_of_a_large_blob() {
    let (_dir, store) = store();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let info = store.write_blob(io::Cursor::new(&data)).unwrap();
    assert_eq!(info.digest, Digest::of(&data));
    assert_eq!(info.size, data.len() as u64);
    // Writing again is a no-op that reports the same blob.
    assert_eq!(store.write_blob(&data[..]).unwrap(), info);
}

#[test]
fn missing_blob_errors_name_the_digest() {
    let (_dir, store) = store();
    let missing = absent_digest();
    assert!(!store.has_blob(&missing));
    for err in [
        store.open_blob(&missing).map(drop).unwrap_err(),
        store.blob_size(&missing).map(drop).unwrap_err(),
        store.read_blob(&missing).map(drop).unwrap_err(),
    ] {
        assert!(matches!(err, Error::BlobNotFound { .. }), "{err:?}");
        assert!(err.to_string().contains(missing.as_str()), "{err}");
    }
}

#[test]
fn expected_digest_mismatch_is_rejected_and_leaves_nothing() {
    let (_dir, store) = store();
    let expected = Digest::of(b"what the manifest promised");
    let err = store
        .write_blob_expecting(&b"what arrived"[..], &expected)
        .unwrap_err();
    match &err {
        Error::DigestMismatch {
            expected: e,
            actual,
            size,
        } => {
            assert_eq!(e, &expected);
            assert_eq!(actual, &Digest::of(b"what arrived"));
            assert_eq!(*size, 12);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("nothing was stored"));
    assert!(entries(&store.root().join("blobs/sha256")).is_empty());
    assert!(entries(&store.root().join("ingest")).is_empty());
}

#[test]
fn expected_digest_match_is_stored() {
    let (_dir, store) = store();
    let digest = Digest::of(b"layer");
    let info = store.write_blob_expecting(&b"layer"[..], &digest).unwrap();
    assert_eq!(info.digest, digest);
    assert!(store.has_blob(&digest));
}

/// A reader that fails: proves a present blob short-circuits the download,
/// and that a failing source stores nothing.
struct FailingReader;

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("connection reset"))
    }
}

#[test]
fn present_blob_is_not_read_again() {
    let (_dir, store) = store();
    let info = store.write_blob_bytes(b"cached").unwrap();
    assert_eq!(
        store
            .write_blob_expecting(FailingReader, &info.digest)
            .unwrap(),
        info
    );
}

#[test]
fn failing_source_stores_nothing() {
    let (_dir, store) = store();
    let err = store.write_blob(FailingReader).unwrap_err();
    assert!(matches!(err, Error::Source(_)), "{err:?}");
    assert!(err.to_string().contains("connection reset"));
    assert!(entries(&store.root().join("blobs/sha256")).is_empty());
    assert!(entries(&store.root().join("ingest")).is_empty());
}

#[test]
fn concurrent_writers_of_same_and_different_blobs() {
    let (_dir, store) = store();
    let store = Arc::new(store);
    let shared: Arc<Vec<u8>> = Arc::new((0..2_000_000u32).map(|i| (i % 7) as u8).collect());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut results = Vec::new();
                for round in 0..5 {
                    results.push(store.write_blob(&shared[..]).unwrap());
                    let own = format!("writer {i} round {round}");
                    results.push(store.write_blob_bytes(own.as_bytes()).unwrap());
                }
                results
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let shared_digest = Digest::of(&shared);
    assert_eq!(
        results.iter().filter(|r| r.digest == shared_digest).count(),
        40
    );
    assert_eq!(store.read_blob(&shared_digest).unwrap(), *shared);
    assert_eq!(entries(&store.root().join("blobs/sha256")).len(), 1 + 40);
    assert!(entries(&store.root().join("ingest")).is_empty());
    let report = store.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(report.blobs_checked, 41);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn simulated_crash_leftovers_are_found_and_cleaned() {
    let (_dir, store) = store();
    let good = store.write_blob_bytes(b"intact").unwrap();
    // A writer killed mid-way leaves its temp file behind.
    let ingest = store.root().join("ingest");
    fs::write(ingest.join("blob-interrupted"), b"half a lay").unwrap();
    // A truncated blob, as if written in place by something that crashed.
    let full = b"the complete content of a layer";
    let truncated_digest = Digest::of(full);
    let truncated_path = store.blob_path(&truncated_digest);
    fs::write(&truncated_path, &full[..10]).unwrap();
    // And a stray file whose name is not a digest.
    fs::write(store.root().join("blobs/sha256/not-a-digest"), b"?").unwrap();

    let err = store.read_blob(&truncated_digest).unwrap_err();
    assert!(matches!(err, Error::CorruptBlob { .. }), "{err:?}");

    let report = store.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(report.blobs_checked, 3, "the ingest leftover is not a blob");
    assert_eq!(report.corrupt.len(), 2, "{report:?}");
    let truncated = report
        .corrupt
        .iter()
        .find(|c| c.path == truncated_path)
        .unwrap();
    assert_eq!(truncated.kind, EntryKind::Blob);
    assert!(
        truncated.problem.contains("hashes to"),
        "{}",
        truncated.problem
    );
    assert!(!truncated.removed);
    assert!(
        truncated_path.exists(),
        "a report-only verify removes nothing"
    );

    let report = store
        .verify(&VerifyOptions {
            remove_corrupt: true,
        })
        .unwrap();
    assert!(report.corrupt.iter().all(|c| c.removed), "{report:?}");
    assert!(!truncated_path.exists());
    assert_eq!(
        entries(&store.root().join("blobs/sha256")),
        vec![good.digest.hex().to_owned()]
    );
    assert!(store.verify(&VerifyOptions::default()).unwrap().is_clean());
    assert_eq!(
        entries(&ingest),
        vec!["blob-interrupted".to_owned()],
        "verify leaves ingest alone"
    );

    // The blob can be written properly again, and prune clears the leftover.
    assert_eq!(
        store.write_blob_bytes(full).unwrap().digest,
        truncated_digest
    );
    let report = store
        .prune(&PruneOptions {
            keep_cache: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.removed_temp_entries, 1);
    assert!(entries(&ingest).is_empty());
}

/// Blobs of several MiB are hashed on a thread beside the writer: whatever the write sizes
/// (flushes included), the digest and the file are those of the bytes.
#[test]
fn big_blobs_hash_right_whatever_the_write_sizes() {
    use std::io::Write;
    let (_dir, store) = store();
    let bytes: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let expected = Digest::of(&bytes);
    for piece in [1, 4096, 1 << 20, (1 << 20) + 7, bytes.len()] {
        let mut writer = store.blob_writer().unwrap();
        for (i, part) in bytes.chunks(piece.max(333)).enumerate() {
            writer.write_all(part).unwrap();
            if i % 3 == 0 {
                writer.flush().unwrap();
            }
        }
        let info = writer.commit().unwrap();
        assert_eq!(info.digest, expected, "writes of {piece} bytes");
        assert_eq!(info.size, bytes.len() as u64);
        assert!(store.read_blob(&expected).unwrap() == bytes);
    }
    assert_eq!(store.write_blob(bytes.as_slice()).unwrap().digest, expected);
}
