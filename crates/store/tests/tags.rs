//! Tags: normalization, validation, atomic concurrent updates.

mod common;

use std::fs;
use std::sync::Arc;
use std::thread;

use common::{absent_digest, entries, store, tiny_image};
use stagecraft_store::Error;

#[test]
fn references_are_normalized_like_docker() {
    let (_dir, store) = store();
    let image = tiny_image(&store, b"layer");
    for (given, stored) in [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        (
            "docker.io/library/alpine",
            "docker.io/library/alpine:latest",
        ),
        ("index.docker.io/user/app:v1", "docker.io/user/app:v1"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("localhost/app:dev", "localhost/app:dev"),
        ("ghcr.io/org/tool:2", "ghcr.io/org/tool:2"),
    ] {
        let reference = store.set_tag(given, &image.manifest_digest).unwrap();
        assert_eq!(reference.to_string(), stored, "{given}");
        // Any spelling of the same reference resolves.
        assert_eq!(
            store.resolve_tag(stored).unwrap(),
            Some(image.manifest_digest.clone())
        );
        assert_eq!(
            store.resolve_tag(given).unwrap(),
            Some(image.manifest_digest.clone())
        );
    }
    let listed: Vec<String> = store
        .list_tags()
        .unwrap()
        .into_iter()
        .map(|(r, _)| r.to_string())
        .collect();
    assert_eq!(listed.len(), 7);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "sorted: {listed:?}");
    // A digest reference resolves to itself when present.
    let pinned = format!("busybox@{}", image.manifest_digest);
    assert_eq!(
        store.resolve_tag(&pinned).unwrap(),
        Some(image.manifest_digest.clone())
    );
    assert_eq!(
        store
            .resolve_tag(&format!("busybox@{}", absent_digest()))
            .unwrap(),
        None
    );
}

#[test]
fn tag_errors_explain() {
    let (_dir, store) = store();
    let image = tiny_image(&store, b"layer");

    let err = store
        .set_tag("Busybox", &image.manifest_digest)
        .unwrap_err();
    assert!(
        matches!(err, Error::Reference(_)) && err.to_string().contains("lowercase"),
        "{err}"
    );

    let err = store
        .set_tag(
            &format!("app@{}", image.manifest_digest),
            &image.manifest_digest,
        )
        .unwrap_err();
    assert!(matches!(err, Error::TagWithDigest { .. }), "{err:?}");

    let err = store.set_tag("app", &absent_digest()).unwrap_err();
    assert!(matches!(err, Error::BlobNotFound { .. }), "{err:?}");

    // A layer or config is not something a tag may point at.
    let err = store.set_tag("app", &image.config_digest).unwrap_err();
    assert!(matches!(err, Error::NotAManifest { .. }), "{err:?}");
    assert!(
        err.to_string().contains(image.config_digest.as_str()),
        "{err}"
    );

    assert_eq!(store.resolve_tag("never-tagged").unwrap(), None);
    assert!(store.list_tags().unwrap().is_empty());
}

#[test]
fn remove_tag_reports_existence() {
    let (_dir, store) = store();
    let image = tiny_image(&store, b"layer");
    store.set_tag("app:1", &image.manifest_digest).unwrap();
    assert!(store.remove_tag("docker.io/library/app:1").unwrap());
    assert!(!store.remove_tag("app:1").unwrap());
    assert_eq!(store.resolve_tag("app:1").unwrap(), None);
}

#[test]
fn concurrent_tag_writers_lose_no_update() {
    let (_dir, store) = store();
    let image = tiny_image(&store, b"layer");
    let store = Arc::new(store);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            let digest = image.manifest_digest.clone();
            thread::spawn(move || {
                for i in 0..10 {
                    store.set_tag(&format!("app:t{t}-{i}"), &digest).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(store.list_tags().unwrap().len(), 80);
    assert!(
        entries(&store.root().join("ingest")).is_empty(),
        "temp files were renamed, not left"
    );
}

#[test]
fn damaged_tag_file_is_reported_with_its_path() {
    let (_dir, store) = store();
    fs::write(store.root().join("tags.json"), b"{not json").unwrap();
    let err = store.resolve_tag("busybox").unwrap_err();
    assert!(matches!(err, Error::TagFile { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("tags.json") && message.contains("blobs are unaffected"),
        "{message}"
    );
}
