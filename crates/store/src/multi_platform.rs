//! Multi-platform images: an index over per-platform images, as `--platform a,b` builds make
//! and registries serve.

use stagecraft_image::media_type::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use stagecraft_image::{AnyManifest, Descriptor, Digest, ImageIndex, Platform};

use crate::error::{Error, Result};
use crate::images::{Image, ManifestFormat};
use crate::store::Store;

/// A multi-platform image: an index whose manifests are the per-platform images, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiPlatformImage {
    /// The digest of the index (what a registry calls the image digest; what tags point at).
    pub index_digest: Digest,
    /// The index.
    pub index: ImageIndex,
    /// The images of the index's platforms ([`ImageIndex::platform_manifests`]), in the
    /// index's order, each with `index_digest` set to this index.
    pub images: Vec<Image>,
}

impl MultiPlatformImage {
    /// Each image with its platform as the index lists it (its config's should the index have
    /// no entry for it, which only a hand-made value can lack).
    pub fn platform_images(&self) -> impl Iterator<Item = (Platform, &Image)> {
        self.images.iter().map(|image| {
            let listed = self
                .index
                .platform_manifests()
                .find(|(descriptor, _)| descriptor.digest == image.manifest_digest)
                .map(|(_, platform)| platform.clone());
            (listed.unwrap_or_else(|| image.config.platform()), image)
        })
    }
}

impl Store {
    /// Stores an index of `images` (each one's descriptor gets `platform` from its config: os,
    /// architecture, variant, os.version and, for Windows, os.features) — the OCI index media
    /// type for [`ManifestFormat::Oci`], a Docker manifest list for [`ManifestFormat::Docker`].
    /// The index is written as BuildKit writes it (indented Go JSON), in the order given. Tag
    /// the result's `index_digest` with [`Store::set_tag`]; [`Store::image_for_platform`] then
    /// picks each platform's image from it.
    pub fn write_index(
        &self,
        images: &[Image],
        format: ManifestFormat,
    ) -> Result<MultiPlatformImage> {
        if images.is_empty() {
            return Err(Error::EmptyIndex);
        }
        let platforms: Vec<Platform> = images.iter().map(|i| i.config.platform()).collect();
        for (at, platform) in platforms.iter().enumerate() {
            let normalized = platform.clone().normalized();
            if platforms[..at]
                .iter()
                .any(|earlier| earlier.clone().normalized() == normalized)
            {
                return Err(Error::DuplicatePlatform {
                    platform: platform.to_string(),
                });
            }
        }
        let media_type = match format {
            ManifestFormat::Oci => OCI_INDEX,
            ManifestFormat::Docker => DOCKER_MANIFEST_LIST,
        };
        self.store_index(
            ImageIndex::new(media_type, Vec::new()),
            platforms.into_iter().zip(images.iter().cloned()).collect(),
        )
    }

    /// The multi-platform image `reference` names (tag or `name@digest`), or `Ok(None)` when
    /// it names a single manifest. Every platform's manifest and config must be in the store
    /// ([`Error::PlatformManifestMissing`] otherwise: a pulled index has only the platform
    /// pulled); layers are not read.
    pub fn multi_platform_image(&self, reference: &str) -> Result<Option<MultiPlatformImage>> {
        let index_digest = self.resolve_existing(reference)?;
        let AnyManifest::Index(index) = self.read_any_manifest(&index_digest)? else {
            return Ok(None);
        };
        let images = index
            .platform_manifests()
            .map(|(descriptor, platform)| {
                if !self.has_blob(&descriptor.digest) {
                    return Err(Error::PlatformManifestMissing {
                        reference: reference.to_owned(),
                        platform: platform.to_string(),
                        digest: descriptor.digest.clone(),
                    });
                }
                let manifest = self.read_manifest(&descriptor.digest)?;
                self.image_of(
                    descriptor.digest.clone(),
                    manifest,
                    Some(index_digest.clone()),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(MultiPlatformImage {
            index_digest,
            index,
            images,
        }))
    }

    /// Stores `index` with one entry per image (whose manifests are in the store), in order,
    /// replacing whatever entries it had; its media type and annotations are kept.
    pub(crate) fn store_index(
        &self,
        index: ImageIndex,
        images: Vec<(Platform, Image)>,
    ) -> Result<MultiPlatformImage> {
        let _lease = self.lease()?;
        let mut manifests = Vec::with_capacity(images.len());
        for (platform, image) in &images {
            let size = self.blob_size(&image.manifest_digest)?;
            let mut entry = Descriptor::new(
                &image.manifest.media_type,
                image.manifest_digest.clone(),
                size,
            );
            entry.platform = Some(platform.clone());
            manifests.push(entry);
        }
        let index = ImageIndex { manifests, ..index };
        let bytes = index.to_json().map_err(|source| Error::Serialize {
            what: "image index",
            source,
        })?;
        let index_digest = self.write_blob_bytes(&bytes)?.digest;
        let images = images
            .into_iter()
            .map(|(_, image)| Image {
                index_digest: Some(index_digest.clone()),
                ..image
            })
            .collect();
        Ok(MultiPlatformImage {
            index_digest,
            index,
            images,
        })
    }
}
