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
