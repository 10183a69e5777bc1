//! Images: config + layers + manifest, written and read back.

use stagecraft_image::media_type::{
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use stagecraft_image::{
    AnyManifest, Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform, Reference,
};

use crate::error::{Error, Result};
use crate::store::Store;

/// Which media types an image's manifest and config get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// OCI media types (BuildKit's default for `--output type=oci` and
    /// pushes with `oci-mediatypes=true`).
    #[default]
    Oci,
    /// Docker schema 2 media types (what `docker build` loads and pushes).
    Docker,
}

impl ManifestFormat {
    /// The media types of an image manifest and of its config in this format.
    pub(crate) fn manifest_and_config_types(self) -> (&'static str, &'static str) {
        match self {
            ManifestFormat::Oci => (OCI_MANIFEST, OCI_CONFIG),
            ManifestFormat::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
        }
    }

    /// The media type of an index in this format (a manifest list for Docker).
    pub(crate) fn index_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => OCI_INDEX,
            ManifestFormat::Docker => DOCKER_MANIFEST_LIST,
        }
    }
}

/// An image read from (or just written to) the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The digest of the manifest (what a registry calls the image digest).
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The digest of the config blob (docker's image ID).
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfig,
    /// The index the manifest was selected from, if the reference pointed
    /// at one.
    pub index_digest: Option<Digest>,
}

/// An OCI artifact manifest in the store (an exported build cache, cache
/// mounts): what pushing it or writing it as an OCI layout needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// The manifest's descriptor, with its `artifactType`.
    pub descriptor: Descriptor,
    /// Every blob the manifest names, config first, all in the store.
    pub blobs: Vec<Digest>,
}

impl Store {
    /// Stores an OCI artifact: a manifest of `artifact_type` whose config is
    /// `config` (stored here with `config_media_type`) and whose `layers`
    /// are blobs already in the store.
    pub fn write_artifact(
        &self,
        artifact_type: &str,
        config_media_type: &str,
        config: &[u8],
        layers: Vec<Descriptor>,
    ) -> Result<Artifact> {
        let _lease = self.lease()?;
        self.check_blobs_present(&layers)?;
        let config_blob = self.write_blob_bytes(config)?;
        let mut manifest = ImageManifest::new(
            OCI_MANIFEST,
            config_blob.descriptor(config_media_type),
            layers,
        );
        manifest.artifact_type = artifact_type.to_owned();
        let bytes = manifest.to_json().map_err(|source| Error::Serialize {
            what: "artifact manifest",
            source,
        })?;
        let mut descriptor = self.write_blob_bytes(&bytes)?.descriptor(OCI_MANIFEST);
        descriptor.artifact_type = artifact_type.to_owned();
        let mut blobs = vec![config_blob.digest];
        blobs.extend(manifest.layers.into_iter().map(|layer| layer.digest));
        Ok(Artifact {
            manifest: bytes,
            descriptor,
            blobs,
        })
    }

    fn check_blobs_present(&self, layers: &[Descriptor]) -> Result<()> {
        for layer in layers {
            if !self.has_blob(&layer.digest) {
                return Err(Error::BlobNotFound {
                    digest: layer.digest.clone(),
                    path: self.blob_path(&layer.digest),
                });
            }
        }
        Ok(())
    }

    /// Stores an image made of `config` and `layers` (layer blobs must
    /// already be in the store, listed bottom first, with their media types
    /// set) and returns it. The config is written as BuildKit writes it
    /// (compact Go JSON) and the manifest as BuildKit writes manifests
    /// (indented Go JSON), so digests match BuildKit's for identical input.
    /// Tag the result with [`Store::set_tag`].
    pub fn write_image(
        &self,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        format: ManifestFormat,
    ) -> Result<Image> {
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(Error::LayerCountMismatch {
                diff_ids: config.rootfs.diff_ids.len(),
                layers: layers.len(),
            });
        }
        let _lease = self.lease()?;
        self.check_blobs_present(&layers)?;
        let (manifest_type, config_type) = format.manifest_and_config_types();
        let config_bytes = config.to_json().map_err(|source| Error::Serialize {
            what: "image config",
            source,
        })?;
        let config_blob = self.write_blob_bytes(&config_bytes)?;
        let manifest =
            ImageManifest::new(manifest_type, config_blob.descriptor(config_type), layers);
        let manifest_digest = self.write_manifest(&manifest)?;
        Ok(Image {
            manifest_digest,
            manifest,
            config_digest: config_blob.digest,
            config: config.clone(),
            index_digest: None,
        })
    }

    /// Writes `manifest` as a blob and returns its digest.
    fn write_manifest(&self, manifest: &ImageManifest) -> Result<Digest> {
        let bytes = manifest.to_json().map_err(|source| Error::Serialize {
            what: "image manifest",
            source,
        })?;
        Ok(self.write_blob_bytes(&bytes)?.digest)
    }

    /// `image` under `manifest` (written to the store): the same config, outside any index.
    pub(crate) fn with_manifest(&self, image: &Image, manifest: ImageManifest) -> Result<Image> {
        Ok(Image {
            manifest_digest: self.write_manifest(&manifest)?,
            manifest,
            index_digest: None,
            ..image.clone()
        })
    }

    /// Reads a stored manifest or index.
    pub fn read_any_manifest(&self, digest: &Digest) -> Result<AnyManifest> {
        let bytes = self.read_blob(digest)?;
        AnyManifest::from_slice(&bytes, None).map_err(|source| Error::Manifest {
            digest: digest.clone(),
            source,
        })
    }

    /// Reads a stored single-platform manifest.
    pub fn read_manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        match self.read_any_manifest(digest)? {
            AnyManifest::Image(manifest) => Ok(manifest),
            AnyManifest::Index(_) => Err(Error::WrongDocumentKind {
                digest: digest.clone(),
                expected: "an image manifest",
                found: "an image index",
            }),
        }
    }

    /// Reads a stored index (manifest list).
    pub fn read_index(&self, digest: &Digest) -> Result<ImageIndex> {
        match self.read_any_manifest(digest)? {
            AnyManifest::Index(index) => Ok(index),
            AnyManifest::Image(_) => Err(Error::WrongDocumentKind {
                digest: digest.clone(),
                expected: "an image index",
                found: "an image manifest",
            }),
        }
    }

    /// Reads a stored image config.
    pub fn read_config(&self, digest: &Digest) -> Result<ImageConfig> {
        let bytes = self.read_blob(digest)?;
        ImageConfig::from_slice(&bytes).map_err(|source| Error::Json {
            what: "image config",
            name: digest.to_string(),
            source,
        })
    }

    /// The image `reference` names, for this machine's platform when the
    /// reference points at an index.
    pub fn image(&self, reference: &str) -> Result<Image> {
        self.image_for_platform(reference, &Platform::host())
    }

    /// The image `reference` names (a tag, or `name@digest`); when it points at an index, its
    /// best manifest for `platform`, and [`Error::PlatformNotFound`] lists the platforms it has
    /// when none serves. A single manifest is returned whatever its config's platform, as
    /// BuildKit takes it (and warns: the caller compares).
    pub fn image_for_platform(&self, reference: &str, platform: &Platform) -> Result<Image> {
        let digest = self.resolve_existing(reference)?;
        self.image_at(&digest, reference, platform)
    }

    /// The image of the manifest or index `digest` (what a tag points at), for `platform`
    /// when it is an index, as [`Store::image_for_platform`]; `reference` names it in errors.
    pub fn image_at(&self, digest: &Digest, reference: &str, platform: &Platform) -> Result<Image> {
        let digest = digest.clone();
        match self.read_any_manifest(&digest)? {
            AnyManifest::Image(manifest) => self.image_of(digest, manifest, None),
            AnyManifest::Index(index) => {
                let Some(entry) = index.find(platform) else {
                    let available = index.platforms();
                    return Err(Error::PlatformNotFound {
                        reference: reference.to_owned(),
                        platform: platform.to_string(),
                        available: if available.is_empty() {
                            "no platform entries".to_owned()
                        } else {
                            available.join(", ")
                        },
                    });
                };
                let manifest = self.read_manifest(&entry.digest)?;
                self.image_of(entry.digest.clone(), manifest, Some(digest))
            }
        }
    }

    /// The platforms `reference` has images for: an index's, in its order
    /// (see [`ImageIndex::platform_manifests`]), or a single manifest's
    /// (its config's). Only the index is read for an index, so this works
    /// for a pulled one whose other platforms' manifests are not here.
    pub fn platforms(&self, reference: &str) -> Result<Vec<Platform>> {
        let digest = self.resolve_existing(reference)?;
        Ok(match self.read_any_manifest(&digest)? {
            AnyManifest::Image(manifest) => {
                vec![self.read_config(&manifest.config.digest)?.platform()]
            }
            AnyManifest::Index(index) => index
                .platform_manifests()
                .map(|(_, platform)| platform.clone())
                .collect(),
        })
    }

    /// docker's image ID of the manifest or index `target` (what a tag points at): the
    /// config's digest, or for a multi-platform image, which has no one config, its index's
    /// digest (as `build` reports it).
    pub fn image_id(&self, target: &Digest) -> Result<Digest> {
        Ok(match self.read_any_manifest(target)? {
            AnyManifest::Image(manifest) => manifest.config.digest,
            AnyManifest::Index(_) => target.clone(),
        })
    }

    /// What docker's image commands take for an image: a name (`app:1`, `name@sha256:…`), or
    /// an image ID, whole or a prefix matching one image (`sha256:` optional). Returns what
    /// the image's tags point at (a manifest or index digest).
    pub fn lookup_image(&self, text: &str) -> Result<Digest> {
        if let Ok(reference) = Reference::parse(text)
            && let Some(digest) = self.resolve_tag(&reference.to_string())?
        {
            return Ok(digest);
        }
        let prefix = text.strip_prefix("sha256:").unwrap_or(text);
        let is_id = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_id {
            let mut found: Vec<(Digest, Digest)> = Vec::new();
            for (_, target) in self.list_tags()? {
                let Ok(id) = self.image_id(&target) else {
                    continue;
                };
                let matches = id.hex().starts_with(prefix) || target.hex().starts_with(prefix);
                if matches && !found.iter().any(|(_, t)| t == &target) {
                    found.push((id, target));
                }
            }
            match found.len() {
                0 => {}
                1 => return Ok(found.remove(0).1),
                _ => {
                    return Err(Error::AmbiguousImageId {
                        prefix: text.to_owned(),
                        ids: found.iter().map(|(id, _)| id.short().to_owned()).collect(),
                    });
                }
            }
        }
        Err(Error::ImageNotFound {
            text: text.to_owned(),
        })
    }

    /// The digest `reference` points at; a reference that points nowhere
    /// is an error naming it normalized.
    pub(crate) fn resolve_existing(&self, reference: &str) -> Result<Digest> {
        match self.resolve_tag(reference)? {
            Some(digest) => Ok(digest),
            None => Err(Error::TagNotFound {
                reference: Reference::parse(reference)?.with_default_tag().to_string(),
            }),
        }
    }

    /// The image of the stored manifest `manifest_digest` (already read as
    /// `manifest`), chosen from the index `index_digest` if any.
    pub(crate) fn image_of(
        &self,
        manifest_digest: Digest,
        manifest: ImageManifest,
        index_digest: Option<Digest>,
    ) -> Result<Image> {
        let config_digest = manifest.config.digest.clone();
        let config = self.read_config(&config_digest)?;
        Ok(Image {
            manifest_digest,
            manifest,
            config_digest,
            config,
            index_digest,
        })
    }
}
