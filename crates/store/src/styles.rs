//! What an output asks of an image besides compression ([`Store::compressed_image`]), as
//! BuildKit's image exporters take them: Docker schema 2 media types instead of OCI ones
//! (`oci-mediatypes=false`), annotations on manifests, indexes and their entries
//! (`annotation*`), and layers whose file times are clamped to `SOURCE_DATE_EPOCH`
//! (`rewrite-timestamp=true`). Each gives new manifests (and, for times, new layers and a new
//! config) over the blobs the store has; the stored image itself never changes.

use std::collections::BTreeMap;
use std::io::BufReader;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use stagecraft_image::media_type::{
    DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER, OCI_LAYER_GZIP,
};
use stagecraft_image::{Descriptor, Digest, Platform};

use crate::error::{Error, IoContext, Result};
use crate::images::{Image, ManifestFormat};
use crate::multi_platform::MultiPlatformImage;
use crate::store::Store;

/// Annotations by key.
pub type Annotations = BTreeMap<String, String>;

/// What a retimed-layer record holds: the plain tar with clamped times, or none when the
/// layer has no time to clamp. It never names the layer itself, so it keeps only the blob it
/// made alive in a prune.
#[derive(Debug, Serialize, Deserialize)]
struct RetimedRecord {
    retimed: Option<(Digest, u64)>,
}

/// The Docker schema 2 media type of a layer of `media_type`, when there is one.
fn docker_layer_type(media_type: &str) -> Option<&'static str> {
    match media_type {
        OCI_LAYER | DOCKER_LAYER => Some(DOCKER_LAYER),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Some(DOCKER_LAYER_GZIP),
        _ => None,
    }
}

/// The format a manifest of `media_type` is written in.
fn format_of(media_type: &str) -> ManifestFormat {
    if media_type == DOCKER_MANIFEST {
        ManifestFormat::Docker
    } else {
        ManifestFormat::Oci
    }
}

impl Store {
    /// `image` with the manifest an output asks for: `format`'s media types for the manifest,
    /// its config descriptor and (for [`ManifestFormat::Docker`]) its layers, and
    /// `annotations` added to the manifest's. The config and layer blobs are the same. An
    /// image that is already so is returned as it is.
    pub fn styled_image(
        &self,
        image: &Image,
        format: ManifestFormat,
        annotations: &Annotations,
    ) -> Result<Image> {
        let (manifest_type, config_type) = format.manifest_and_config_types();
        let mut manifest = image.manifest.clone();
        manifest.media_type = manifest_type.to_owned();
        manifest.config.media_type = config_type.to_owned();
        if format == ManifestFormat::Docker {
            for layer in &mut manifest.layers {
                layer.media_type = docker_layer_type(&layer.media_type)
                    .ok_or_else(|| Error::NoDockerMediaType {
                        digest: layer.digest.clone(),
                        media_type: layer.media_type.clone(),
                    })?
                    .to_owned();
            }
        }
        manifest
            .annotations
            .extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        if manifest == image.manifest {
            return Ok(image.clone());
        }
        self.with_manifest(image, manifest)
    }

    /// `image` with every platform's image styled ([`Store::styled_image`], with
    /// `annotations` of its platform) under a new index of `format`'s media type (a Docker
    /// manifest list for [`ManifestFormat::Docker`]).
    pub fn styled_index(
        &self,
        image: &MultiPlatformImage,
        format: ManifestFormat,
        annotations: &dyn Fn(&Platform) -> Annotations,
    ) -> Result<MultiPlatformImage> {
        let styled = image
            .platform_images()
            .map(|(platform, single)| {
                let styled = self.styled_image(single, format, &annotations(&platform))?;
                Ok((platform, styled))
            })
            .collect::<Result<Vec<_>>>()?;
        self.replaced_images(image, styled, format.index_type())
    }

    /// `image` with `index` added to the index's annotations and `entries(platform)` to each
    /// platform image's entry in it (attestation manifests' entries keep theirs), as
    /// BuildKit's `annotation-index.*` and `annotation-manifest-descriptor.*` place them.
    pub fn annotated_index(
        &self,
        image: &MultiPlatformImage,
        index: &Annotations,
        entries: &dyn Fn(&Platform) -> Annotations,
    ) -> Result<MultiPlatformImage> {
        let mut annotated = image.index.clone();
        annotated
            .annotations
            .extend(index.iter().map(|(k, v)| (k.clone(), v.clone())));
        for entry in &mut annotated.manifests {
            let is_image = image
                .images
                .iter()
                .any(|i| i.manifest_digest == entry.digest);
            if let (true, Some(platform)) = (is_image, entry.platform.clone()) {
                entry.annotations.extend(entries(&platform));
            }
        }
        if annotated == image.index {
            return Ok(image.clone());
        }
        let bytes = annotated.to_json().map_err(|source| Error::Serialize {
            what: "image index",
            source,
        })?;
        let index_digest = self.write_blob_bytes(&bytes)?.digest;
        Ok(MultiPlatformImage {
            images: image
                .images
                .iter()
                .map(|i| Image {
                    index_digest: Some(index_digest.clone()),
                    ..i.clone()
                })
                .collect(),
            index_digest,
            index: annotated,
            attestations: image.attestations.clone(),
        })
    }

    /// `image` with the file times of its layers from `first` on (those the build made,
    /// after its base image's) clamped to `epoch`, as BuildKit's `rewrite-timestamp=true`:
    /// each such layer whose tar has a later time is rewritten (once per epoch: remembered
    /// in the cache record `layer-retimed-<epoch>-<diff ID hex>`) as a plain tar, and the
    /// config gets the new diff IDs. Layers with no later time, and images without such
    /// layers, are kept as they are.
    pub fn retimed_image(&self, image: &Image, first: usize, epoch: i64) -> Result<Image> {
        let diff_ids = &image.config.rootfs.diff_ids;
        let retimed = image
            .manifest
            .layers
            .par_iter()
            .zip(diff_ids.par_iter())
            .enumerate()
            .map(|(at, (layer, diff_id))| {
                if at < first {
                    return Ok(None);
                }
                self.retimed_layer(layer, diff_id, epoch)
            })
            .collect::<Result<Vec<Option<Descriptor>>>>()?;
        if retimed.iter().all(Option::is_none) {
            return Ok(image.clone());
        }
        let mut config = image.config.clone();
        let mut layers = image.manifest.layers.clone();
        for (at, new) in retimed.into_iter().enumerate() {
            if let Some(new) = new {
                config.rootfs.diff_ids[at] = new.digest.clone();
                layers[at] = new;
            }
        }
        self.write_image(&config, layers, format_of(&image.manifest.media_type))
    }

    /// [`Store::retimed_image`] of every platform's image, `first[i]` for the `i`-th.
    pub fn retimed_index(
        &self,
        image: &MultiPlatformImage,
        first: &[usize],
        epoch: i64,
    ) -> Result<MultiPlatformImage> {
        let retimed = image
            .platform_images()
            .zip(first)
            .map(|((platform, single), &first)| {
                Ok((platform, self.retimed_image(single, first, epoch)?))
            })
            .collect::<Result<Vec<_>>>()?;
        self.replaced_images(image, retimed, &image.index.media_type)
    }

    /// The layer `layer` (diff ID `diff_id`) with its file times clamped to `epoch`, as a
    /// plain tar of its manifest family; `None` when it has no later time.
    fn retimed_layer(
        &self,
        layer: &Descriptor,
        diff_id: &Digest,
        epoch: i64,
    ) -> Result<Option<Descriptor>> {
        let key = format!("layer-retimed-{epoch}-{}", diff_id.hex());
        let remembered = self
            .get_cache_json::<RetimedRecord>(&key)
            .ok()
            .flatten()
            .filter(|record| match &record.retimed {
                None => true,
                Some((digest, size)) => self.blob_size(digest).is_ok_and(|s| s == *size),
            });
        let record = match remembered {
            Some(record) => record,
            None => {
                let path = self.blob_path(&layer.digest);
                let source = BufReader::with_capacity(1 << 20, self.open_blob(&layer.digest)?);
                let mut writer = self.blob_writer()?;
                let changed = stagecraft_layer::clamp_layer_times(source, &mut writer, epoch)
                    .at("rewrite the file times of", &path)?;
                let retimed = if changed {
                    let stored = writer.commit()?;
                    Some((stored.digest, stored.size))
                } else {
                    // The copy is the layer itself: dropped, not stored.
                    None
                };
                let record = RetimedRecord { retimed };
                self.put_cache_json(&key, &record)?;
                record
            }
        };
        let Some((digest, size)) = record.retimed else {
            return Ok(None);
        };
        let media_type = if layer.media_type.starts_with("application/vnd.docker.") {
            DOCKER_LAYER
        } else {
            OCI_LAYER
        };
        Ok(Some(Descriptor::new(media_type, digest, size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_image::ImageConfig;
    use stagecraft_image::media_type::{DOCKER_CONFIG, DOCKER_MANIFEST_LIST};
    use stagecraft_layer::Compression;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        (dir, store)
    }

    /// A plain tar holding one file modified at `mtime`.
    fn layer_tar(mtime: u64) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.set_path("file").unwrap();
        header.set_size(4);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"data"[..]).unwrap();
        builder.into_inner().unwrap()
    }

    /// An amd64 image of plain layers, one per mtime.
    fn image(store: &Store, mtimes: &[u64]) -> Image {
        let mut config = ImageConfig::for_platform(&Platform::new("linux", "amd64"));
        let mut layers = Vec::new();
        for &mtime in mtimes {
            let blob = store.write_blob_bytes(&layer_tar(mtime)).unwrap();
            config.rootfs.diff_ids.push(blob.digest.clone());
            layers.push(blob.descriptor(OCI_LAYER));
        }
        store
            .write_image(&config, layers, ManifestFormat::Oci)
            .unwrap()
    }

    #[test]
    fn docker_media_types_and_annotations_give_a_new_manifest_over_the_same_blobs() {
        let (_dir, store) = store();
        let plain = image(&store, &[1]);
        let image = store.compressed_image(&plain, Compression::gzip()).unwrap();
        let annotations = Annotations::from([("org.example.k".to_owned(), "v".to_owned())]);
        let docker = store
            .styled_image(&image, ManifestFormat::Docker, &annotations)
            .unwrap();
        assert_eq!(docker.manifest.media_type, DOCKER_MANIFEST);
        assert_eq!(docker.manifest.config.media_type, DOCKER_CONFIG);
        assert_eq!(docker.manifest.layers[0].media_type, DOCKER_LAYER_GZIP);
        assert_eq!(
            docker.manifest.layers[0].digest,
            image.manifest.layers[0].digest
        );
        assert_eq!(docker.config_digest, image.config_digest);
        assert_eq!(docker.manifest.annotations, annotations);
        let stored = store.read_manifest(&docker.manifest_digest).unwrap();
        assert_eq!(stored, docker.manifest);
        // Already so: the same image.
        let same = store
            .styled_image(&image, ManifestFormat::Oci, &Annotations::new())
            .unwrap();
        assert_eq!(same, image);
        // zstd has no Docker media type.
        let zstd = store.compressed_image(&plain, Compression::zstd()).unwrap();
        let error = store
            .styled_image(&zstd, ManifestFormat::Docker, &Annotations::new())
            .unwrap_err();
        assert!(error.to_string().contains("compression=gzip"), "{error}");

        let index = store.write_index(&[image], ManifestFormat::Oci).unwrap();
        let list = store
            .styled_index(&index, ManifestFormat::Docker, &|_| Annotations::new())
            .unwrap();
        assert_eq!(list.index.media_type, DOCKER_MANIFEST_LIST);
        assert_eq!(list.index.manifests[0].media_type, DOCKER_MANIFEST);
        let annotated = store
            .annotated_index(&list, &annotations, &|platform| {
                Annotations::from([("arch".to_owned(), platform.architecture.clone())])
            })
            .unwrap();
        assert_eq!(annotated.index.annotations, annotations);
        assert_eq!(annotated.index.manifests[0].annotations["arch"], "amd64");
        assert_eq!(
            annotated.images[0].index_digest,
            Some(annotated.index_digest.clone())
        );
    }

    #[test]
    fn times_after_the_epoch_are_clamped_in_the_layers_after_the_base() {
        let (_dir, store) = store();
        let image = image(&store, &[2_000_000_000, 2_000_000_000, 5]);
        let retimed = store.retimed_image(&image, 1, 1_000).unwrap();
        // The base layer and the layer with no later time are kept.
        assert_eq!(retimed.manifest.layers[0], image.manifest.layers[0]);
        assert_eq!(retimed.manifest.layers[2], image.manifest.layers[2]);
        let layer = &retimed.manifest.layers[1];
        assert_ne!(layer.digest, image.manifest.layers[1].digest);
        assert_eq!(retimed.config.rootfs.diff_ids[1], layer.digest);
        assert_eq!(store.read_blob(&layer.digest).unwrap(), layer_tar(1_000));
        assert_ne!(retimed.config_digest, image.config_digest);
        // Remembered: the same result without a new blob.
        let again = store.retimed_image(&image, 1, 1_000).unwrap();
        assert_eq!(again, retimed);
        // Nothing later than the epoch: the image itself.
        assert_eq!(
            store.retimed_image(&image, 0, 3_000_000_000).unwrap(),
            image
        );
    }
}
