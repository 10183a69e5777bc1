//! Images written and read back; garbage collection keeps what is reachable.

mod common;

use std::fs;
use std::path::Path;

use common::{entries, store, tiny_image};
use stagecraft_image::media_type::{
    DOCKER_CONFIG, DOCKER_MANIFEST, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
use stagecraft_image::{Descriptor, Digest, ImageConfig, ImageIndex, Platform};
use stagecraft_store::{Error, ManifestFormat, PruneOptions, Store};

fn blobs(store: &Store) -> Vec<String> {
    entries(&store.root().join("blobs/sha256"))
}

fn snapshot_of(store: &Store, content: &[u8]) -> Digest {
    let diff_id = Digest::of(content);
    store
        .create_snapshot(&diff_id, |dir: &Path| fs::write(dir.join("file"), content))
        .unwrap();
    diff_id
}

#[test]
fn image_round_trip_through_a_tag() {
    let (_dir, store) = store();
    let written = tiny_image(&store, b"layer tar");
    assert_eq!(written.manifest.media_type, OCI_MANIFEST);
    store.set_tag("app:1", &written.manifest_digest).unwrap();

    let read = store.image("app:1").unwrap();
    assert_eq!(read, written);
    assert_eq!(read.config.config.cmd, Some(vec!["sh".to_owned()]));
    assert_eq!(
        store.read_config(&read.config_digest).unwrap(),
        written.config
    );
    // The stored bytes are exactly the Go-style serializations.
    assert_eq!(
        store.read_blob(&read.config_digest).unwrap(),
        written.config.to_json().unwrap()
    );
    assert_eq!(
        store.read_blob(&read.manifest_digest).unwrap(),
        written.manifest.to_json().unwrap()
    );

    let err = store.image("app:2").unwrap_err();
    assert!(matches!(err, Error::TagNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("docker.io/library/app:2"), "{err}");
    let err = store.read_index(&read.manifest_digest).unwrap_err();
    assert!(matches!(err, Error::WrongDocumentKind { .. }), "{err:?}");
}

#[test]
fn docker_format_and_validation() {
    let (_dir, store) = store();
    let layer = store.write_blob_bytes(b"layer").unwrap();
    let mut config = ImageConfig::for_platform(&Platform::host());
    let err = store
        .write_image(
            &config,
            vec![layer.descriptor(OCI_LAYER)],
            ManifestFormat::Docker,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LayerCountMismatch {
                diff_ids: 0,
                layers: 1
            }
        ),
        "{err:?}"
    );

    config.rootfs.diff_ids = vec![Digest::of(b"missing layer")];
    let err = store
        .write_image(
            &config,
            vec![Descriptor::of_bytes(OCI_LAYER, b"missing layer")],
            ManifestFormat::Docker,
        )
        .unwrap_err();
    assert!(matches!(err, Error::BlobNotFound { .. }), "{err:?}");

    config.rootfs.diff_ids = vec![layer.digest.clone()];
    let image = store
        .write_image(
            &config,
            vec![layer.descriptor(OCI_LAYER)],
            ManifestFormat::Docker,
        )
        .unwrap();
    assert_eq!(image.manifest.media_type, DOCKER_MANIFEST);
    assert_eq!(image.manifest.config.media_type, DOCKER_CONFIG);
}

#[test]
fn index_selects_the_platform() {
    let (_dir, store) = store();
    let image = tiny_image(&store, b"layer");
    let mut entry = Descriptor::new(
        OCI_MANIFEST,
        image.manifest_digest.clone(),
        store.blob_size(&image.manifest_digest).unwrap(),
    );
    entry.platform = Some(Platform::parse("linux/riscv64").unwrap());
    let index = ImageIndex::new(OCI_INDEX, vec![entry]);
    let index_blob = store.write_blob_bytes(&index.to_json().unwrap()).unwrap();
    store.set_tag("multi", &index_blob.digest).unwrap();

    let found = store
        .image_for_platform("multi", &Platform::parse("linux/riscv64").unwrap())
        .unwrap();
    assert_eq!(found.manifest_digest, image.manifest_digest);
    assert_eq!(found.index_digest, Some(index_blob.digest.clone()));
    let err = store
        .image_for_platform("multi", &Platform::parse("linux/s390x").unwrap())
        .unwrap_err();
    assert!(matches!(err, Error::PlatformNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("linux/riscv64"), "{err}");

    // The index keeps the manifest, config and layer alive.
    store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(blobs(&store).len(), 4);
}

#[test]
fn prune_keeps_reachable_and_removes_unreachable() {
    let (_dir, store) = store();
    let kept = tiny_image(&store, b"kept layer");
    store.set_tag("kept", &kept.manifest_digest).unwrap();
    let dropped = tiny_image(&store, b"dropped layer");
    let stray = store.write_blob_bytes(b"stray").unwrap();
    let kept_snapshot = snapshot_of(&store, b"kept layer");
    let stray_snapshot = snapshot_of(&store, b"unused layer");
    assert_eq!(kept_snapshot, kept.config.rootfs.diff_ids[0]);

    let report = store.prune(&PruneOptions::default()).unwrap();
    let mut removed = report.removed_blobs.clone();
    removed.sort();
    let mut expected = vec![
        dropped.manifest_digest.clone(),
        dropped.config_digest.clone(),
        dropped.manifest.layers[0].digest.clone(),
        stray.digest.clone(),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(report.removed_snapshots, vec![stray_snapshot.clone()]);
    assert!(report.bytes_freed > 0);

    assert_eq!(store.image("kept").unwrap(), kept);
    assert!(store.snapshot_path(&kept_snapshot).is_some());
    assert!(store.snapshot_path(&stray_snapshot).is_none());
    assert!(entries(&store.root().join("ingest")).is_empty());

    // Nothing left to do the second time.
    let again = store.prune(&PruneOptions::default()).unwrap();
    assert!(again.removed_blobs.is_empty() && again.removed_snapshots.is_empty());

    // Untagged, everything goes.
    store.remove_tag("kept").unwrap();
    store.prune(&PruneOptions::default()).unwrap();
    assert!(blobs(&store).is_empty());
    assert!(entries(&store.root().join("snapshots")).is_empty());
}

#[test]
fn cache_records_keep_content_unless_all() {
    let (_dir, store) = store();
    let cached = tiny_image(&store, b"cached layer");
    let snapshot = snapshot_of(&store, b"cached layer");
    store
        .put_cache_json(
            "step-1",
            &serde_json::json!({"manifest": cached.manifest_digest.to_string(), "note": "sha256:short"}),
        )
        .unwrap();

    let report = store.prune(&PruneOptions::default()).unwrap();
    assert!(
        report.removed_blobs.is_empty() && report.removed_cache_records.is_empty(),
        "{report:?}"
    );
    assert!(
        store.snapshot_path(&snapshot).is_some(),
        "reached through manifest → config → diff_ids"
    );

    // keep_cache wins over all.
    let report = store
        .prune(&PruneOptions {
            all: true,
            keep_cache: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert!(
        report.removed_blobs.is_empty() && report.removed_cache_records.is_empty(),
        "{report:?}"
    );

    let report = store
        .prune(&PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.removed_cache_records, vec!["step-1".to_owned()]);
    assert_eq!(report.removed_blobs.len(), 3);
    assert_eq!(report.removed_snapshots, vec![snapshot]);
    assert!(store.get_cache_record("step-1").unwrap().is_none());
}

#[test]
fn keep_storage_stops_early_and_evicts_old_cache_records() {
    let (_dir, store) = store();
    let big = vec![7u8; 100_000];
    let stray = store.write_blob_bytes(&big).unwrap();
    let cached = store.write_blob_bytes(&[9u8; 50_000]).unwrap();
    store
        .put_cache_record("old", cached.digest.as_str().as_bytes())
        .unwrap();

    // A budget the store already fits in: nothing is removed.
    let generous = PruneOptions {
        keep_storage: Some(1_000_000),
        ..PruneOptions::default()
    };
    assert!(store.prune(&generous).unwrap().removed_blobs.is_empty());

    // Removing the unreferenced blob is enough for this budget.
    let report = store
        .prune(&PruneOptions {
            keep_storage: Some(60_000),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.removed_blobs, vec![stray.digest]);
    assert!(report.removed_cache_records.is_empty());
    assert!(store.has_blob(&cached.digest));

    // keep_cache forbids evicting the record, so the budget is not met.
    let report = store
        .prune(&PruneOptions {
            keep_storage: Some(1_000),
            keep_cache: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert!(report.removed_blobs.is_empty() && report.removed_cache_records.is_empty());

    // Otherwise the record is evicted together with what only it kept.
    let report = store
        .prune(&PruneOptions {
            keep_storage: Some(1_000),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.removed_cache_records, vec!["old".to_owned()]);
    assert_eq!(report.removed_blobs, vec![cached.digest]);
    assert_eq!(store.disk_usage().unwrap().total(), 0);
}

#[test]
fn eviction_takes_a_blob_and_the_snapshot_sharing_its_digest() {
    let (_dir, store) = store();
    // An uncompressed layer: its blob digest is also its diff ID.
    let layer = store.write_blob_bytes(b"uncompressed layer").unwrap();
    let diff_id = snapshot_of(&store, b"uncompressed layer");
    assert_eq!(layer.digest, diff_id);
    store
        .put_cache_record("step", diff_id.as_str().as_bytes())
        .unwrap();
    let report = store
        .prune(&PruneOptions {
            keep_storage: Some(0),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.removed_cache_records, vec!["step".to_owned()]);
    assert_eq!(report.removed_blobs, vec![layer.digest]);
    assert_eq!(report.removed_snapshots, vec![diff_id]);
    assert_eq!(store.disk_usage().unwrap().total(), 0);
}

#[test]
fn disk_usage_counts_each_area() {
    let (_dir, store) = store();
    store.write_blob_bytes(&[1u8; 1000]).unwrap();
    snapshot_of(&store, &[2u8; 300]);
    store.put_cache_record("k", b"12345").unwrap();
    fs::write(store.root().join("ingest/blob-leftover"), [0u8; 7]).unwrap();
    let usage = store.disk_usage().unwrap();
    assert_eq!(usage.blobs, 1000);
    assert_eq!(usage.snapshots, 300 + 71, "file plus the marker");
    assert_eq!(usage.cache_records, 5);
    assert_eq!(usage.temp, 7);
    assert_eq!(usage.total(), 1000 + 371 + 5 + 7);
}

#[test]
fn prune_never_touches_cache_mounts() {
    let (_dir, store) = store();
    let mount = store.new_cache_mount("/root/.npm").unwrap();
    fs::write(mount.path().join("package.tgz"), [3u8; 2000]).unwrap();
    let path = mount.install().unwrap();
    let budgets = [
        PruneOptions::default(),
        PruneOptions {
            all: true,
            keep_storage: Some(0),
            ..PruneOptions::default()
        },
    ];
    for options in budgets {
        store.prune(&options).unwrap();
        assert!(path.join("package.tgz").is_file(), "{options:?}");
    }
    assert_eq!(
        store.disk_usage().unwrap().total(),
        0,
        "nor counted in its usage"
    );
    assert_eq!(store.list_cache_mounts().unwrap()[0].size, 2000);
}

#[test]
fn a_dry_run_reports_what_prune_would_remove_and_removes_nothing() {
    let (_dir, store) = store();
    let stray = store.write_blob_bytes(&[5u8; 4000]).unwrap();
    let cached = store.write_blob_bytes(&[6u8; 3000]).unwrap();
    store
        .put_cache_record("step", cached.digest.as_str().as_bytes())
        .unwrap();
    let options = PruneOptions {
        all: true,
        dry_run: true,
        ..PruneOptions::default()
    };
    let dry = store.prune(&options).unwrap();
    assert_eq!(dry.removed_cache_records, vec!["step".to_owned()]);
    assert_eq!(dry.removed_blobs.len(), 2);
    assert!(dry.bytes_freed >= 7000, "{dry:?}");
    assert!(store.has_blob(&stray.digest) && store.has_blob(&cached.digest));
    assert!(store.get_cache_record("step").unwrap().is_some());
    // The real run removes exactly that.
    let real = store
        .prune(&PruneOptions {
            dry_run: false,
            ..options
        })
        .unwrap();
    assert_eq!(real.bytes_freed, dry.bytes_freed);
    assert!(!store.has_blob(&stray.digest));
}

#[test]
fn cache_records_can_be_pruned_by_age_and_kept_when_images_share_them() {
    let (_dir, store) = store();
    let image = tiny_image(&store, b"tagged layer");
    store.set_tag("app:1", &image.manifest_digest).unwrap();
    let layer = image.manifest.layers[0].digest.clone();
    let own = store.write_blob_bytes(&[8u8; 2000]).unwrap();
    store
        .put_cache_record("shared", layer.as_str().as_bytes())
        .unwrap();
    store
        .put_cache_record("own", own.digest.as_str().as_bytes())
        .unwrap();

    // Records written after the limit stay, with what they reference.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let report = store
        .prune(&PruneOptions {
            all: true,
            records_older_than: Some(an_hour_ago),
            ..PruneOptions::default()
        })
        .unwrap();
    assert!(report.removed_cache_records.is_empty(), "{report:?}");
    assert!(store.has_blob(&own.digest));

    // Shared records stay: removing them would free nothing.
    let report = store
        .prune(&PruneOptions {
            all: true,
            keep_shared_records: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(report.removed_cache_records, vec!["own".to_owned()]);
    assert_eq!(report.removed_blobs, vec![own.digest]);
    assert!(store.get_cache_record("shared").unwrap().is_some());
    assert!(store.has_blob(&layer));
}

#[test]
fn images_are_found_by_name_or_image_id_prefix() {
    let (_dir, store) = store();
    let one = tiny_image(&store, b"one");
    let two = tiny_image(&store, b"two");
    store.set_tag("app:1", &one.manifest_digest).unwrap();
    store.set_tag("app:also-1", &one.manifest_digest).unwrap();
    store.set_tag("app:2", &two.manifest_digest).unwrap();
    assert_eq!(store.lookup_image("app:1").unwrap(), one.manifest_digest);
    assert_eq!(
        store.image_id(&one.manifest_digest).unwrap(),
        one.config_digest
    );
    let id = one.config_digest.hex();
    for text in [&id[..12], id, &format!("sha256:{}", &id[..5])] {
        assert_eq!(
            store.lookup_image(text).unwrap(),
            one.manifest_digest,
            "{text}"
        );
    }
    let err = store.lookup_image("app:3").unwrap_err();
    assert!(matches!(err, Error::ImageNotFound { .. }), "{err:?}");
    // A prefix both IDs share is ambiguous (the empty one always is not an ID).
    let common_prefix: String = one
        .config_digest
        .hex()
        .chars()
        .zip(two.config_digest.hex().chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    if !common_prefix.is_empty() {
        let err = store.lookup_image(&common_prefix).unwrap_err();
        assert!(matches!(err, Error::AmbiguousImageId { .. }), "{err:?}");
    }
    assert!(matches!(
        store.lookup_image("").unwrap_err(),
        Error::ImageNotFound { .. } | Error::Reference(_)
    ));
}
