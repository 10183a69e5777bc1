//! Compressed variants of uncompressed layers: "compress once".
//!
//! Builds store the layers they make as plain tars (the blob digest is the diff ID), because
//! compressing is the slowest part of making a layer (gzip: ~50 MB/s a core, hashing: 1.5 GB/s)
//! and most builds never need it: `-t` into the store, `type=docker`, `type=tar` and
//! `type=local` outputs all use the tar as it is. Compression happens when a layer leaves for
//! somewhere that expects it (an OCI layout, a registry, an exported cache), once per
//! (diff ID, compression with its level): the result is remembered in the cache record
//! `layer-variant-<algorithm>-<level>-<diff ID hex>`, so later exports and pushes reuse the
//! blob without reading the layer again.

use std::io::BufReader;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stagecraft_image::{Descriptor, Digest, ImageManifest, Platform, media_type};
use stagecraft_layer::Compression;

use crate::error::{Error, IoContext, Result};
use crate::images::Image;
use crate::multi_platform::MultiPlatformImage;
use crate::store::Store;

/// What a variant record holds. It names the compressed blob only (never the diff ID with its
/// `sha256:` prefix), so the record keeps the compressed blob alive in a prune but not the
/// uncompressed layer it came from.
#[derive(Debug, Serialize, Deserialize)]
struct VariantRecord {
    digest: Digest,
    size: u64,
}

/// Whether a layer media type announces a plain tar (OCI or Docker schema 2).
fn is_uncompressed(media_type: &str) -> bool {
    matches!(media_type, media_type::OCI_LAYER | media_type::DOCKER_LAYER)
}

/// The media type of a layer compressed with `compression`, in the manifest family of
/// `uncompressed` (a Docker schema 2 manifest keeps Docker layer types where one exists).
fn compressed_media_type(uncompressed: &str, compression: Compression) -> &'static str {
    match (uncompressed, compression) {
        (media_type::DOCKER_LAYER, Compression::Gzip { .. }) => media_type::DOCKER_LAYER_GZIP,
        (media_type::DOCKER_LAYER, Compression::None) => media_type::DOCKER_LAYER,
        _ => compression.media_type(),
    }
}

fn variant_key(diff_id: &Digest, compression: Compression) -> String {
    let (algorithm, level) = match compression {
        Compression::None => ("none", 0),
        // The name changes whenever the gzip encoder's bytes do, so a store never hands out a
        // blob an older encoder made for the same layer and every store exports the same digest:
        // "gzip-blocks" was the block-parallel encoder (its bytes differ from the single-stream
        // gzip before it); "gzip-blocks-stored" is the same encoder writing incompressible
        // blocks as stored deflate blocks.
        Compression::Gzip { level } => ("gzip-blocks-stored", i64::from(level)),
        Compression::Zstd { level } => ("zstd", i64::from(level)),
    };
    format!("layer-variant-{algorithm}-{level}-{}", diff_id.hex())
}

impl Store {
    /// `layer` as it should travel with `compression`: unchanged when it is already compressed
    /// (a pulled base layer keeps the blob its registry has), else its compressed variant —
    /// taken from an earlier export when there is one, made and remembered otherwise.
    pub fn compressed_layer(
        &self,
        layer: &Descriptor,
        compression: Compression,
    ) -> Result<Descriptor> {
        if !is_uncompressed(&layer.media_type) || compression == Compression::None {
            return Ok(layer.clone());
        }
        let key = variant_key(&layer.digest, compression);
        let remembered = self
            .get_cache_json::<VariantRecord>(&key)
            .ok()
            .flatten()
            .filter(|record| {
                self.blob_size(&record.digest)
                    .is_ok_and(|size| size == record.size)
            });
        let record = match remembered {
            Some(record) => record,
            None => {
                let record = self.compress_blob(&layer.digest, compression)?;
                self.put_cache_json(&key, &record)?;
                record
            }
        };
        let mut compressed = layer.clone();
        compressed.media_type = compressed_media_type(&layer.media_type, compression).to_owned();
        compressed.digest = record.digest;
        compressed.size = record.size;
        Ok(compressed)
    }

    /// `image` with every uncompressed layer replaced by its compressed variant (several layers
    /// are compressed in parallel): what an OCI layout or a registry receives. The config is
    /// reused byte for byte; only the manifest is new. An image with nothing to compress is
    /// returned as it is.
    pub fn compressed_image(&self, image: &Image, compression: Compression) -> Result<Image> {
        if !image
            .manifest
            .layers
            .iter()
            .any(|layer| is_uncompressed(&layer.media_type))
            || compression == Compression::None
        {
            return Ok(image.clone());
        }
        let layers = image
            .manifest
            .layers
            .par_iter()
            .map(|layer| self.compressed_layer(layer, compression))
            .collect::<Result<Vec<_>>>()?;
        let manifest = ImageManifest {
            layers,
            ..image.manifest.clone()
        };
        self.with_manifest(image, manifest)
    }

    /// `image` with every platform's image compressed ([`Store::compressed_image`]) under a
    /// new index of the same media type, annotations and platforms, in the same order: what an
    /// OCI layout or a registry receives of a multi-platform image. Attestation manifests
    /// follow their image: their statements' subjects get its new manifest digest. An image
    /// with nothing to compress is returned as it is, so a loaded or pulled index keeps its
    /// bytes and digest.
    pub fn compressed_index(
        &self,
        image: &MultiPlatformImage,
        compression: Compression,
    ) -> Result<MultiPlatformImage> {
        let platform_images: Vec<(Platform, &Image)> = image.platform_images().collect();
        let compressed = platform_images
            .par_iter()
            .map(|(platform, image)| {
                Ok((platform.clone(), self.compressed_image(image, compression)?))
            })
            .collect::<Result<Vec<_>>>()?;
        self.replaced_images(image, compressed, &image.index.media_type)
    }

    /// `image` with its platform images replaced by `new` (same platforms, same order) under
    /// a new index of `media_type` with the same annotations; attestation manifests follow
    /// their image (their statements' subjects get its new manifest digest). When nothing
    /// changed, `image` is returned as it is, so a loaded or pulled index keeps its bytes.
    pub(crate) fn replaced_images(
        &self,
        image: &MultiPlatformImage,
        new: Vec<(Platform, Image)>,
        media_type: &str,
    ) -> Result<MultiPlatformImage> {
        let unchanged = new
            .iter()
            .zip(&image.images)
            .all(|((_, new), old)| new.manifest_digest == old.manifest_digest);
        if unchanged && media_type == image.index.media_type {
            return Ok(image.clone());
        }
        let mut attestations = Vec::with_capacity(image.attestations.len());
        for attestation in &image.attestations {
            let moved = image
                .images
                .iter()
                .zip(&new)
                .find(|(old, _)| old.manifest_digest == attestation.subject);
            attestations.push(match moved {
                Some((old, (_, new))) if old.manifest_digest != new.manifest_digest => {
                    let statements: Vec<_> = self
                        .read_statements(attestation)?
                        .into_iter()
                        .map(|s| s.with_subject_digest(&old.manifest_digest, &new.manifest_digest))
                        .collect();
                    self.write_attestation_manifest(new, &statements)?
                }
                _ => attestation.clone(),
            });
        }
        let index = stagecraft_image::ImageIndex {
            media_type: media_type.to_owned(),
            ..image.index.clone()
        };
        self.store_index(index, new, attestations)
    }

    /// Compresses the plain tar blob `digest` into a new blob.
    /// A lazy blob is compressed from its regenerated bytes, never written plain.
    fn compress_blob(&self, digest: &Digest, compression: Compression) -> Result<VariantRecord> {
        let path = self.blob_path(digest);
        let lazy = !path.is_file();
        let mut writer = stagecraft_layer::LayerWriter::new(self.blob_writer()?, compression)
            .at("start compressing", &path)?;
        if lazy {
            writer = self.write_lazy_blob(digest, writer)?;
        } else {
            let source = self.open_blob(digest)?;
            std::io::copy(&mut BufReader::with_capacity(1 << 20, source), &mut writer)
                .at("compress", &path)?;
        }
        let (info, blob) = writer.finish().at("compress", &path)?;
        if info.diff_id != digest.as_str() {
            let actual = Digest::parse(&info.diff_id).unwrap_or_else(|_| digest.clone());
            return Err(match lazy {
                true => Error::LazyBlobDamaged {
                    digest: digest.clone(),
                    actual,
                },
                false => Error::CorruptBlob {
                    digest: digest.clone(),
                    actual,
                    path,
                },
            });
        }
        let stored = blob.commit()?;
        Ok(VariantRecord {
            digest: stored.digest,
            size: stored.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_image::ImageConfig;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        (dir, store)
    }

    /// A one-layer image whose layer is the plain "tar" `content`.
    fn image_with_plain_layer(store: &Store, content: &[u8]) -> Image {
        let layer = store.write_blob_bytes(content).unwrap();
        let mut config = ImageConfig::default();
        config.rootfs.diff_ids = vec![layer.digest.clone()];
        store
            .write_image(
                &config,
                vec![layer.descriptor(media_type::OCI_LAYER)],
                crate::ManifestFormat::Oci,
            )
            .unwrap()
    }

    #[test]
    fn a_layer_is_compressed_once_and_the_config_is_kept() {
        let (_dir, store) = store();
        let content = vec![b'x'; 100_000];
        let image = image_with_plain_layer(&store, &content);
        let compressed = store.compressed_image(&image, Compression::gzip()).unwrap();
        assert_eq!(compressed.config_digest, image.config_digest);
        assert_ne!(compressed.manifest_digest, image.manifest_digest);
        let layer = &compressed.manifest.layers[0];
        assert_eq!(layer.media_type, media_type::OCI_LAYER_GZIP);
        assert!(layer.size < 1_000, "{}", layer.size);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(store.open_blob(&layer.digest).unwrap()),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, content);

        // The second export finds the variant: no new blob is written.
        let blobs = std::fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count();
        let again = store.compressed_image(&image, Compression::gzip()).unwrap();
        assert_eq!(again.manifest_digest, compressed.manifest_digest);
        assert_eq!(
            std::fs::read_dir(store.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            blobs
        );
        // Another level is another variant.
        let other = store
            .compressed_layer(&image.manifest.layers[0], Compression::Gzip { level: 1 })
            .unwrap();
        assert_ne!(other.digest, layer.digest);
    }

    #[test]
    fn attestations_follow_their_image_through_compression() {
        use stagecraft_image::intoto::{Statement, Subject};
        let (_dir, store) = store();
        let mut image = image_with_plain_layer(&store, &vec![b'y'; 10_000]);
        image.config.os = "linux".into();
        image.config.architecture = "amd64".into();
        let index = store
            .write_index(&[image.clone()], crate::ManifestFormat::Oci)
            .unwrap();
        let statement = Statement::new(
            "https://example.com/p",
            vec![Subject::new("pkg:docker/app", &image.manifest_digest)],
            &serde_json::json!({"k": "v"}),
        )
        .unwrap();
        let attested = store.attest(&index, &[vec![statement]]).unwrap();
        store.set_tag("app:1", &attested.index_digest).unwrap();
        let entries = &attested.index.manifests;
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1].platform.as_ref().unwrap().to_string(),
            "unknown/unknown"
        );
        let read = store.multi_platform_image("app:1").unwrap().unwrap();
        assert_eq!(read.images.len(), 1);
        assert_eq!(read.attestations, attested.attestations);
        assert_eq!(
            read.attestations[0].predicate_types(),
            ["https://example.com/p"]
        );

        let compressed = store.compressed_index(&read, Compression::gzip()).unwrap();
        let new_digest = &compressed.images[0].manifest_digest;
        assert_ne!(*new_digest, image.manifest_digest);
        let attestation = &compressed.attestations[0];
        assert_eq!(attestation.subject, *new_digest);
        assert_eq!(
            attestation.manifest.subject.as_ref().unwrap().digest,
            *new_digest
        );
        let statements = store.read_statements(attestation).unwrap();
        assert_eq!(statements[0].subject[0].digest["sha256"], new_digest.hex());
        assert_eq!(statements[0].predicate(), r#"{"k":"v"}"#);
        assert!(
            compressed.index.manifests[1]
                .annotations
                .values()
                .any(|v| v == new_digest.as_str())
        );
    }

    #[test]
    fn a_variant_whose_blob_is_gone_is_made_again() {
        let (_dir, store) = store();
        let image = image_with_plain_layer(&store, b"some layer bytes");
        let layer = &image.manifest.layers[0];
        let first = store.compressed_layer(layer, Compression::zstd()).unwrap();
        assert_eq!(first.media_type, media_type::OCI_LAYER_ZSTD);
        let path = store.blob_path(&first.digest);
        std::fs::remove_file(&path).unwrap();
        let second = store.compressed_layer(layer, Compression::zstd()).unwrap();
        assert_eq!(second.digest, first.digest);
        assert!(path.is_file());
    }

    #[test]
    fn gzip_blobs_of_an_older_encoder_are_not_handed_out() {
        let (_dir, store) = store();
        let image = image_with_plain_layer(&store, &vec![b'z'; 50_000]);
        let layer = &image.manifest.layers[0];
        // What the encoder before stored blocks remembered for this layer: another blob.
        let old_blob = store.write_blob_bytes(b"\x1f\x8bolder encoder").unwrap();
        let old_record = VariantRecord {
            digest: old_blob.digest.clone(),
            size: old_blob.size,
        };
        for old_name in ["gzip", "gzip-blocks"] {
            let key = format!("layer-variant-{old_name}-6-{}", layer.digest.hex());
            store.put_cache_json(&key, &old_record).unwrap();
        }
        let compressed = store.compressed_layer(layer, Compression::gzip()).unwrap();
        assert_ne!(compressed.digest, old_blob.digest);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(store.open_blob(&compressed.digest).unwrap()),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, vec![b'z'; 50_000]);
    }

    #[test]
    fn compressed_layers_travel_as_they_are() {
        let (_dir, store) = store();
        let blob = store.write_blob_bytes(b"\x1f\x8bnot really gzip").unwrap();
        let layer = blob.descriptor(media_type::OCI_LAYER_GZIP);
        assert_eq!(
            store.compressed_layer(&layer, Compression::zstd()).unwrap(),
            layer
        );
        let docker = store.write_blob_bytes(b"plain").unwrap();
        let docker = docker.descriptor(media_type::DOCKER_LAYER);
        assert_eq!(
            store
                .compressed_layer(&docker, Compression::gzip())
                .unwrap()
                .media_type,
            media_type::DOCKER_LAYER_GZIP
        );
    }
}
