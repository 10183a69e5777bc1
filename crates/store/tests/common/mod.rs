//! Helpers shared by the store's integration tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::Path;

use stagecraft_image::media_type::OCI_LAYER;
use stagecraft_image::{Digest, ImageConfig, Platform};
use stagecraft_store::{Image, ManifestFormat, Store};
use tempfile::TempDir;

/// A fresh store in a temporary directory (removed when the `TempDir` drops).
pub(crate) fn store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path().join("root")).expect("open store");
    (dir, store)
}

/// Names of the entries directly in `dir`, sorted.
pub(crate) fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Stores a one-layer image whose layer is `layer` (an uncompressed tar
/// stand-in, so its diff ID is its digest).
pub(crate) fn tiny_image(store: &Store, layer: &[u8]) -> Image {
    let layer_blob = store.write_blob_bytes(layer).expect("layer");
    let mut config = ImageConfig::for_platform(&Platform::host());
    config.rootfs.diff_ids = vec![layer_blob.digest.clone()];
    config.config.cmd = Some(vec!["sh".into()]);
    store
        .write_image(
            &config,
            vec![layer_blob.descriptor(OCI_LAYER)],
            ManifestFormat::Oci,
        )
        .expect("write image")
}

/// A digest that is certainly not in any store.
pub(crate) fn absent_digest() -> Digest {
    Digest::of(b"never stored")
}
