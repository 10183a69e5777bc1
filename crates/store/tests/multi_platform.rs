//! Multi-platform images: an index over per-platform images, tagged, read back, compressed
//! and kept by garbage collection.

mod common;

use std::fs;

use common::{entries, store};
use stagecraft_image::media_type::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use stagecraft_image::{Digest, ImageConfig, ImageIndex, Platform};
use stagecraft_layer::Compression;
use stagecraft_store::{Error, Image, ManifestFormat, PruneOptions, Store};

/// Stores a one-layer image for `platform` whose layer is the plain "tar" `layer`.
fn platform_image(store: &Store, platform: &str, layer: &[u8], format: ManifestFormat) -> Image {
    let blob = store.write_blob_bytes(layer).unwrap();
    let mut config = ImageConfig::for_platform(&Platform::parse(platform).unwrap());
    config.rootfs.diff_ids = vec![blob.digest.clone()];
    store
        .write_image(&config, vec![blob.descriptor(OCI_LAYER)], format)
        .unwrap()
}

fn three_platforms(store: &Store) -> Vec<Image> {
    ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        .iter()
        .map(|platform| {
            let layer = format!("layer of {platform} ").repeat(1000);
            platform_image(store, platform, layer.as_bytes(), ManifestFormat::Oci)
        })
        .collect()
}

fn parse(platform: &str) -> Platform {
    Platform::parse(platform).unwrap()
}

#[test]
fn an_index_lists_each_image_with_its_platform_and_serves_it_by_platform() {
    let (_dir, store) = store();
    let images = three_platforms(&store);
    let multi = store.write_index(&images, ManifestFormat::Oci).unwrap();

    // The stored bytes are BuildKit's indented JSON of the index, entries in the given order.
    let bytes = store.read_blob(&multi.index_digest).unwrap();
    assert_eq!(bytes, multi.index.to_json().unwrap());
    assert_eq!(Digest::of(&bytes), multi.index_digest);
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n  \"manifests\": ["),
        "{text}"
    );
    assert!(
        text.contains("\"platform\": {\n        \"architecture\": \"arm\",\n        \"os\": \"linux\",\n        \"variant\": \"v7\"\n      }"),
        "{text}"
    );
    assert_eq!(multi.index.media_type, OCI_INDEX);
    let listed: Vec<(String, &str, u64)> = multi
        .index
        .manifests
        .iter()
        .map(|d| {
            (
                d.platform.as_ref().unwrap().to_string(),
                d.media_type.as_str(),
                d.size,
            )
        })
        .collect();
    let expected: Vec<(String, &str, u64)> = images
        .iter()
        .map(|i| {
            (
                i.config.platform().to_string(),
                OCI_MANIFEST,
                store.blob_size(&i.manifest_digest).unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        listed.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    );
    for (written, given) in multi.images.iter().zip(&images) {
        assert_eq!(written.manifest_digest, given.manifest_digest);
        assert_eq!(written.index_digest.as_ref(), Some(&multi.index_digest));
    }

    // Tagged, the index serves each platform's image, and reads back whole.
    store.set_tag("app:multi", &multi.index_digest).unwrap();
    for image in &images {
        let found = store
            .image_for_platform("app:multi", &image.config.platform())
            .unwrap();
        assert_eq!(found.manifest_digest, image.manifest_digest);
        assert_eq!(found.config, image.config);
        assert_eq!(found.index_digest.as_ref(), Some(&multi.index_digest));
    }
    let err = store
        .image_for_platform("app:multi", &parse("linux/s390x"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("it has: linux/amd64, linux/arm64, linux/arm/v7"),
        "{err}"
    );
    assert_eq!(
        store.multi_platform_image("app:multi").unwrap(),
        Some(multi.clone())
    );
    let by_digest = format!("app@{}", multi.index_digest);
    assert_eq!(
        store.multi_platform_image(&by_digest).unwrap(),
        Some(multi.clone())
    );
    assert_eq!(
        store
            .platforms("app:multi")
            .unwrap()
            .iter()
            .map(Platform::to_string)
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    );
    let platforms: Vec<String> = multi
        .platform_images()
        .map(|(platform, image)| format!("{platform} {}", image.manifest_digest))
        .collect();
    assert_eq!(
        platforms,
        images
            .iter()
            .map(|i| format!("{} {}", i.config.platform(), i.manifest_digest))
            .collect::<Vec<_>>()
    );

    // A single manifest is no multi-platform image; an unknown name is an error.
    store
        .set_tag("app:single", &images[1].manifest_digest)
        .unwrap();
    assert_eq!(store.multi_platform_image("app:single").unwrap(), None);
    assert_eq!(
        store.platforms("app:single").unwrap(),
        vec![parse("linux/arm64")]
    );
    let err = store.multi_platform_image("app:none").unwrap_err();
    assert!(matches!(err, Error::TagNotFound { .. }), "{err:?}");
}

#[test]
fn docker_format_is_a_manifest_list() {
    let (_dir, store) = store();
    let images: Vec<Image> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| platform_image(&store, p, p.as_bytes(), ManifestFormat::Docker))
        .collect();
    let multi = store.write_index(&images, ManifestFormat::Docker).unwrap();
    assert_eq!(multi.index.media_type, DOCKER_MANIFEST_LIST);
    assert!(
        multi
            .index
            .manifests
            .iter()
            .all(|d| d.media_type == DOCKER_MANIFEST)
    );
    let stored = store.read_index(&multi.index_digest).unwrap();
    assert_eq!(stored, multi.index);
}

#[test]
fn the_windows_os_version_is_part_of_the_platform() {
    let (_dir, store) = store();
    let blob = store.write_blob_bytes(b"windows layer").unwrap();
    let mut config = ImageConfig::for_platform(&parse("windows/amd64"));
    config.os_version = "10.0.20348.2227".into();
    config.rootfs.diff_ids = vec![blob.digest.clone()];
    let image = store
        .write_image(
            &config,
            vec![blob.descriptor(OCI_LAYER)],
            ManifestFormat::Oci,
        )
        .unwrap();
    let multi = store.write_index(&[image], ManifestFormat::Oci).unwrap();
    let platform = multi.index.manifests[0].platform.as_ref().unwrap();
    assert_eq!(
        (
            platform.os.as_str(),
            platform.architecture.as_str(),
            platform.os_version.as_str()
        ),
        ("windows", "amd64", "10.0.20348.2227")
    );
}

#[test]
fn an_index_needs_images_of_distinct_platforms() {
    let (_dir, store) = store();
    let err = store.write_index(&[], ManifestFormat::Oci).unwrap_err();
    assert!(matches!(err, Error::EmptyIndex), "{err:?}");
    // `linux/arm` and `linux/arm/v7` are one platform once normalized.
    let blob = store.write_blob_bytes(b"arm").unwrap();
    let mut arm = ImageConfig {
        os: "linux".into(),
        architecture: "arm".into(),
        ..ImageConfig::default()
    };
    arm.rootfs.diff_ids = vec![blob.digest.clone()];
    let arm = store
        .write_image(&arm, vec![blob.descriptor(OCI_LAYER)], ManifestFormat::Oci)
        .unwrap();
    let v7 = platform_image(&store, "linux/arm/v7", b"v7", ManifestFormat::Oci);
    let err = store
        .write_index(&[arm, v7], ManifestFormat::Oci)
        .unwrap_err();
    assert!(matches!(err, Error::DuplicatePlatform { .. }), "{err:?}");
    assert!(err.to_string().contains("linux/arm"), "{err}");
}

#[test]
fn a_tagged_index_keeps_every_platform_alive_through_prune() {
    let (_dir, store) = store();
    let images = three_platforms(&store);
    let multi = store.write_index(&images, ManifestFormat::Oci).unwrap();
    store.set_tag("app:multi", &multi.index_digest).unwrap();
    for image in &images {
        let diff_id = &image.config.rootfs.diff_ids[0];
        store
            .create_snapshot(diff_id, |dir: &std::path::Path| {
                fs::write(dir.join("file"), diff_id.as_str())
            })
            .unwrap();
    }
    let stray = store.write_blob_bytes(b"stray").unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.removed_blobs, vec![stray.digest]);
    assert!(report.removed_snapshots.is_empty(), "{report:?}");
    // The index, and per platform its manifest, config and layer.
    assert_eq!(entries(&store.root().join("blobs/sha256")).len(), 1 + 3 * 3);
    assert_eq!(
        store.multi_platform_image("app:multi").unwrap(),
        Some(multi)
    );

    store.remove_tag("app:multi").unwrap();
    store.prune(&PruneOptions::default()).unwrap();
    assert!(entries(&store.root().join("blobs/sha256")).is_empty());
    assert!(entries(&store.root().join("snapshots")).is_empty());
}

#[test]
fn a_compressed_index_compresses_every_platform_and_keeps_the_rest() {
    let (_dir, store) = store();
    let images = three_platforms(&store);
    let multi = store.write_index(&images, ManifestFormat::Oci).unwrap();
    let compressed = store.compressed_index(&multi, Compression::gzip()).unwrap();
    assert_ne!(compressed.index_digest, multi.index_digest);
    assert_eq!(compressed.index.media_type, OCI_INDEX);
    assert_eq!(
        store.read_blob(&compressed.index_digest).unwrap(),
        compressed.index.to_json().unwrap()
    );
    let platforms = |index: &ImageIndex| -> Vec<Option<Platform>> {
        index.manifests.iter().map(|d| d.platform.clone()).collect()
    };
    assert_eq!(platforms(&compressed.index), platforms(&multi.index));
    for ((entry, image), plain) in compressed
        .index
        .manifests
        .iter()
        .zip(&compressed.images)
        .zip(&images)
    {
        assert_eq!(entry.digest, image.manifest_digest);
        assert_eq!(entry.size, store.blob_size(&image.manifest_digest).unwrap());
        assert_eq!(image.config_digest, plain.config_digest);
        assert_eq!(image.index_digest.as_ref(), Some(&compressed.index_digest));
        let layer = &image.manifest.layers[0];
        assert_eq!(layer.media_type, OCI_LAYER_GZIP);
        assert!(layer.size < plain.manifest.layers[0].size, "{layer:?}");
    }
    // Once made, the same compression gives the same index.
    let again = store.compressed_index(&multi, Compression::gzip()).unwrap();
    assert_eq!(again, compressed);
    // Nothing to compress: the index stays as it is, bytes and digest (a pulled or loaded
    // index is pushed as its registry had it).
    assert_eq!(
        store
            .compressed_index(&compressed, Compression::zstd())
            .unwrap(),
        compressed
    );
    assert_eq!(
        store.compressed_index(&multi, Compression::None).unwrap(),
        multi
    );
}

#[test]
fn an_index_missing_a_platform_manifest_is_named_as_such() {
    let (_dir, store) = store();
    let images = three_platforms(&store);
    let multi = store.write_index(&images, ManifestFormat::Oci).unwrap();
    store.set_tag("app:pulled", &multi.index_digest).unwrap();
    // As after a pull of one platform: the other platforms' manifests are not here.
    fs::remove_file(store.blob_path(&images[1].manifest_digest)).unwrap();
    let err = store.multi_platform_image("app:pulled").unwrap_err();
    assert!(
        matches!(err, Error::PlatformManifestMissing { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("linux/arm64"), "{err}");
    // What needs only the index still works.
    assert_eq!(store.platforms("app:pulled").unwrap().len(), 3);
    store
        .image_for_platform("app:pulled", &parse("linux/amd64"))
        .unwrap();
}
