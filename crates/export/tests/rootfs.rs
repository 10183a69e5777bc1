//! A root filesystem tar written straight from the layers is the tar of the layers applied to
//! a directory, byte for byte.

use stagecraft_export::{unpack_rootfs, write_rootfs_tar, write_tree_tar};
use stagecraft_image::ImageConfig;
use stagecraft_image::media_type::{OCI_LAYER, OCI_LAYER_GZIP};
use stagecraft_layer::{Compression, DiffSource, TarOptions, write_layer};
use stagecraft_store::{ManifestFormat, Store};
use std::fs;

/// Bytes that do not compress, so a wrong offset cannot go unnoticed.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn the_rootfs_tar_is_the_applied_layers_tar() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let (base, top) = (dir.path().join("base"), dir.path().join("top"));
    for tree in [&base, &top] {
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(tree.join("etc/kept"), noise(70_000, 1)).unwrap();
    }
    fs::write(base.join("gone"), noise(5_000, 2)).unwrap();
    fs::write(base.join("etc/changed"), noise(3_000, 3)).unwrap();
    fs::write(top.join("etc/changed"), noise(3_001, 4)).unwrap();
    fs::create_dir(top.join("data")).unwrap();
    fs::write(top.join("data/big"), noise(300_000, 5)).unwrap();
    fs::hard_link(top.join("data/big"), top.join("data/same")).unwrap();

    let options = TarOptions::default();
    // A gzip base (as pulled) under a plain layer (as built).
    let (_, base_blob) = write_layer(
        &DiffSource::Rootfs { root: &base },
        &options,
        Compression::gzip(),
        Vec::new(),
    )
    .unwrap();
    let diff = DiffSource::Directories {
        lower: &base,
        upper: &top,
    };
    let (_, top_blob) = write_layer(&diff, &options, Compression::None, Vec::new()).unwrap();
    let base_blob = store.write_blob_bytes(&base_blob).unwrap();
    let top_blob = store.write_blob_bytes(&top_blob).unwrap();
    let mut config = ImageConfig::default();
    config.rootfs.diff_ids = vec![base_blob.digest.clone(), top_blob.digest.clone()];
    let image = store
        .write_image(
            &config,
            vec![
                base_blob.descriptor(OCI_LAYER_GZIP),
                top_blob.descriptor(OCI_LAYER),
            ],
            ManifestFormat::Oci,
        )
        .unwrap();

    let mut direct = Vec::new();
    write_rootfs_tar(&store, &image, &mut direct).unwrap();
    let mut applied = Vec::new();
    write_tree_tar(
        &store,
        |root| unpack_rootfs(&store, &image, root),
        &mut applied,
    )
    .unwrap();
    assert!(direct == applied, "the tars differ");
    let names: Vec<String> = tar::Archive::new(direct.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "data/",
            "data/big",
            "data/same",
            "etc/",
            "etc/changed",
            "etc/kept"
        ]
    );
}

/// A layer recorded lazily (as a build step records it: its tar hashed, its upper directory
/// installed as a snapshot) flattens into the same tar as once its blob is written, without
/// writing it.
#[test]
fn a_lazy_layer_flattens_to_the_same_tar_as_its_blob() {
    use stagecraft_layer::{ApplyOptions, WhiteoutMode, apply_layer};
    use stagecraft_store::{DigestWriter, LazyBlob};
    use std::path::Path;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let base = dir.path().join("base");
    fs::create_dir_all(base.join("etc")).unwrap();
    fs::write(base.join("etc/kept"), noise(70_000, 1)).unwrap();
    fs::write(base.join("etc/changed"), noise(3_000, 3)).unwrap();
    let options = TarOptions {
        source_date_epoch: Some(1_700_000_000),
    };
    let (base_info, base_blob) = write_layer(
        &DiffSource::Rootfs { root: &base },
        &options,
        Compression::gzip(),
        Vec::new(),
    )
    .unwrap();
    let base_blob = store.write_blob_bytes(&base_blob).unwrap();
    let base_diff = stagecraft_image::Digest::parse(&base_info.diff_id).unwrap();
    let unpack = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay(store.overlay_xattr()),
        ..ApplyOptions::default()
    };
    store
        .create_snapshot(&base_diff, |snapshot: &Path| {
            let blob = store.open_blob(&base_blob.digest).unwrap();
            apply_layer(blob, snapshot, &unpack).map(|_| ())
        })
        .unwrap();

    let upper = dir.path().join("store/upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::create_dir_all(upper.join("data/deep")).unwrap();
    fs::write(upper.join("etc/changed"), noise(3_001, 4)).unwrap();
    fs::write(upper.join("data/deep/big"), noise(300_000, 5)).unwrap();
    fs::hard_link(upper.join("data/deep/big"), upper.join("data/same")).unwrap();
    fs::write(upper.join("data/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../etc/kept", upper.join("data/link")).unwrap();
    let lowers = [base_diff.clone()];
    let hashed = store
        .write_layer_tar(&upper, &lowers, &options, None, DigestWriter::new())
        .unwrap()
        .finish()
        .unwrap();
    store
        .create_snapshot(&hashed.digest, |snapshot: &Path| {
            fs::rename(&upper, snapshot)
        })
        .unwrap();
    let lazy = LazyBlob {
        size: hashed.size,
        upper: hashed.digest.clone(),
        lowers: lowers.to_vec(),
        options,
        xattr: store.overlay_xattr(),
    };
    store.record_lazy_blob(&hashed.digest, &lazy).unwrap();

    let mut config = ImageConfig::default();
    config.rootfs.diff_ids = vec![base_diff, hashed.digest.clone()];
    let image = store
        .write_image(
            &config,
            vec![
                base_blob.descriptor(OCI_LAYER_GZIP),
                hashed.descriptor(OCI_LAYER),
            ],
            ManifestFormat::Oci,
        )
        .unwrap();

    let mut from_snapshots = Vec::new();
    write_rootfs_tar(&store, &image, &mut from_snapshots).unwrap();
    assert!(
        !store.blob_path(&hashed.digest).exists(),
        "flattening wrote the lazy blob"
    );
    // The applied tree's tar: applied from the regenerated tar, not written either.
    let mut applied = Vec::new();
    write_tree_tar(
        &store,
        |root| unpack_rootfs(&store, &image, root),
        &mut applied,
    )
    .unwrap();
    assert!(!store.blob_path(&hashed.digest).exists());
    store.blob_file(&hashed.digest).unwrap();
    let mut from_blob = Vec::new();
    write_rootfs_tar(&store, &image, &mut from_blob).unwrap();
    assert!(from_snapshots == from_blob, "the tars differ");
    assert!(from_snapshots == applied, "the tars differ from the tree's");
    let names: Vec<String> = tar::Archive::new(from_snapshots.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "data/",
            "data/deep/",
            "data/deep/big",
            "data/empty",
            "data/link",
            "data/same",
            "etc/",
            "etc/changed",
            "etc/kept"
        ]
    );
}
