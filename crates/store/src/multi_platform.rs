//! Multi-platform images: an index over per-platform images, as `--platform a,b` builds make
//! and registries serve.

use stagecraft_image::intoto::{self, Statement};
use stagecraft_image::media_type::{IN_TOTO, OCI_EMPTY_JSON, OCI_MANIFEST};
use stagecraft_image::{AnyManifest, Descriptor, Digest, ImageIndex, ImageManifest, Platform};

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
    /// The index's attestation manifests that are in the store, in the index's order.
    pub attestations: Vec<AttestationManifest>,
}

/// An attestation manifest of an index: in-toto statements about one of its images, in
/// BuildKit's form (see [`stagecraft_image::intoto`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationManifest {
    /// Its index entry: platform `unknown/unknown`, the reference annotations.
    pub descriptor: Descriptor,
    /// The manifest: the empty JSON config and one layer per statement.
    pub manifest: ImageManifest,
    /// The digest of the image manifest it is about.
    pub subject: Digest,
}

impl AttestationManifest {
    /// Every blob it names, config first: what a push or a layout carries besides the
    /// manifest itself.
    pub fn blobs(&self) -> Vec<Digest> {
        std::iter::once(self.manifest.config.digest.clone())
            .chain(self.manifest.layers.iter().map(|l| l.digest.clone()))
            .collect()
    }

    /// The predicate types of its statements, in order (from the layer annotations).
    pub fn predicate_types(&self) -> Vec<&str> {
        self.manifest
            .layers
            .iter()
            .filter_map(|l| l.annotations.get(intoto::PREDICATE_TYPE_ANNOTATION))
            .map(String::as_str)
            .collect()
    }
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

    /// The attestation manifests about the image whose manifest is `manifest_digest`.
    pub fn attestations_of<'a>(
        &'a self,
        manifest_digest: &'a Digest,
    ) -> impl Iterator<Item = &'a AttestationManifest> {
        self.attestations
            .iter()
            .filter(move |a| a.subject == *manifest_digest)
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
        self.store_index(
            ImageIndex::new(format.index_type(), Vec::new()),
            platforms.into_iter().zip(images.iter().cloned()).collect(),
            Vec::new(),
        )
    }

    /// Stores `statements` about `image` as an attestation manifest in BuildKit's OCI artifact
    /// form: `artifactType` [`intoto::ATTESTATION_ARTIFACT_TYPE`], the empty JSON config, one
    /// [`IN_TOTO`] layer per statement annotated with its predicate type, `subject` the
    /// image's manifest; its index entry has platform `unknown/unknown` and the reference
    /// annotations. The statements' subjects are the caller's to set (the image's digest).
    pub fn write_attestation_manifest(
        &self,
        image: &Image,
        statements: &[Statement],
    ) -> Result<AttestationManifest> {
        let _lease = self.lease()?;
        let empty = self.write_blob_bytes(b"{}")?;
        let mut config = empty.descriptor(OCI_EMPTY_JSON);
        // The OCI empty descriptor carries its two bytes inline (`e30=` is `{}`).
        config.data = "e30=".to_owned();
        let mut layers = Vec::with_capacity(statements.len());
        for statement in statements {
            let mut layer = self
                .write_blob_bytes(&statement.to_json())?
                .descriptor(IN_TOTO);
            layer.annotations.insert(
                intoto::PREDICATE_TYPE_ANNOTATION.to_owned(),
                statement.predicate_type.clone(),
            );
            layers.push(layer);
        }
        let mut manifest = ImageManifest::new(OCI_MANIFEST, config, layers);
        manifest.artifact_type = intoto::ATTESTATION_ARTIFACT_TYPE.to_owned();
        manifest.subject = Some(Descriptor::new(
            &image.manifest.media_type,
            image.manifest_digest.clone(),
            self.blob_size(&image.manifest_digest)?,
        ));
        let bytes = manifest.to_json().map_err(|source| Error::Serialize {
            what: "attestation manifest",
            source,
        })?;
        let mut descriptor = self.write_blob_bytes(&bytes)?.descriptor(OCI_MANIFEST);
        descriptor.annotations.insert(
            intoto::REFERENCE_TYPE_ANNOTATION.to_owned(),
            intoto::ATTESTATION_MANIFEST.to_owned(),
        );
        descriptor.annotations.insert(
            intoto::REFERENCE_DIGEST_ANNOTATION.to_owned(),
            image.manifest_digest.to_string(),
        );
        descriptor.platform = Some(Platform::new("unknown", "unknown"));
        Ok(AttestationManifest {
            descriptor,
            manifest,
            subject: image.manifest_digest.clone(),
        })
    }

    /// `image` with `statements[i]` attached to its `i`-th platform image as an attestation
    /// manifest (none for an empty list), after the images in a new index of the same media
    /// type and annotations, as BuildKit's image exporter lists them. Attestations `image`
    /// had are replaced.
    pub fn attest(
        &self,
        image: &MultiPlatformImage,
        statements: &[Vec<Statement>],
    ) -> Result<MultiPlatformImage> {
        let mut attestations = Vec::new();
        for (platform_image, statements) in image.images.iter().zip(statements) {
            if !statements.is_empty() {
                attestations.push(self.write_attestation_manifest(platform_image, statements)?);
            }
        }
        let images = image
            .platform_images()
            .map(|(platform, image)| (platform, image.clone()))
            .collect();
        self.store_index(image.index.clone(), images, attestations)
    }

    /// The statements of an attestation manifest, in order.
    pub fn read_statements(&self, attestation: &AttestationManifest) -> Result<Vec<Statement>> {
        attestation
            .manifest
            .layers
            .iter()
            .filter(|layer| layer.media_type == IN_TOTO)
            .map(|layer| {
                Statement::from_slice(&self.read_blob(&layer.digest)?).map_err(|source| {
                    Error::Json {
                        what: "in-toto statement",
                        name: layer.digest.to_string(),
                        source,
                    }
                })
            })
            .collect()
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
        // A pulled index lists attestation manifests that were not pulled: only those here.
        let attestations = index
            .manifests
            .iter()
            .filter_map(|entry| Some((entry, intoto::attestation_subject(entry)?)))
            .filter(|(entry, _)| self.has_blob(&entry.digest))
            .map(|(entry, subject)| {
                Ok(AttestationManifest {
                    descriptor: entry.clone(),
                    manifest: self.read_manifest(&entry.digest)?,
                    subject,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(MultiPlatformImage {
            index_digest,
            index,
            images,
            attestations,
        }))
    }

    /// Stores `index` with one entry per image (whose manifests are in the store), in order,
    /// then one per attestation manifest, replacing whatever entries it had; its media type
    /// and annotations are kept.
    pub(crate) fn store_index(
        &self,
        index: ImageIndex,
        images: Vec<(Platform, Image)>,
        attestations: Vec<AttestationManifest>,
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
        manifests.extend(attestations.iter().map(|a| a.descriptor.clone()));
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
            attestations,
        })
    }
}
