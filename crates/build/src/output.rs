//! Writing a build's outputs: archives and directories that appear whole or not at all, and
//! pushes.

use crate::attest::{Attestations, Carrier};
use crate::error::{Error, Result};
use crate::network::block_on;
use crate::options::{AnnotationTarget, Destination, ImageKeys, Output};
use stagecraft_export::NamedImage;
use stagecraft_image::{Digest, Platform};
use stagecraft_layer::Compression;
use stagecraft_registry::Registry;
use stagecraft_store::{Annotations, Image, ManifestFormat, MultiPlatformImage, OutputFile, Store};
use std::path::Path;

/// Writes the output file `path` (an archive): `write` fills a partial file beside it, which
/// replaces `path` only once complete, so a failed or killed write keeps what was there.
pub fn write_output_file<E: std::fmt::Display>(
    store: &Store,
    path: &Path,
    write: impl FnOnce(&mut OutputFile) -> std::result::Result<(), E>,
) -> Result<()> {
    let failed = |message: String| Error::Output {
        path: path.to_owned(),
        message,
    };
    let mut file = store.output_file(path).map_err(|e| failed(e.to_string()))?;
    write(&mut file).map_err(|e| failed(e.to_string()))?;
    file.commit().map_err(|e| failed(e.to_string()))
}

/// Fills the output directory `path` with `fill`: a new one appears complete or not at all,
/// an existing one is written into (as BuildKit does; see [`Store::output_dir`]).
pub fn fill_output_dir<E: std::fmt::Display>(
    store: &Store,
    path: &Path,
    fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    let failed = |message: String| Error::Output {
        path: path.to_owned(),
        message,
    };
    let dir = store.output_dir(path).map_err(|e| failed(e.to_string()))?;
    fill(dir.path()).map_err(|e| failed(e.to_string()))?;
    dir.commit().map_err(|e| failed(e.to_string()))
}

/// What a build made: one image, or one per platform under an index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per build, passed by reference; boxing would only make building and matching it clumsier"
)]
pub enum BuiltImage {
    /// A single-platform image.
    Single(Image),
    /// A multi-platform image (`--platform a,b`): an index over the platforms' images.
    Multi(MultiPlatformImage),
}

impl BuiltImage {
    /// What names point at: the manifest, or the index.
    pub fn digest(&self) -> &Digest {
        match self {
            BuiltImage::Single(image) => &image.manifest_digest,
            BuiltImage::Multi(image) => &image.index_digest,
        }
    }

    /// The media type of what names point at: the manifest's, or the index's.
    pub fn media_type(&self) -> &str {
        match self {
            BuiltImage::Single(image) => &image.manifest.media_type,
            BuiltImage::Multi(image) => &image.index.media_type,
        }
    }

    /// The config digest of a single image (none for an index).
    pub fn config_digest(&self) -> Option<&Digest> {
        match self {
            BuiltImage::Single(image) => Some(&image.config_digest),
            BuiltImage::Multi(_) => None,
        }
    }

    /// The image as layouts and registries receive it: layers compressed with `compression`.
    fn compressed(&self, store: &Store, compression: Compression) -> Result<BuiltImage> {
        let what = "compressing the image's layers";
        Ok(match self {
            BuiltImage::Single(image) => BuiltImage::Single(
                store
                    .compressed_image(image, compression)
                    .map_err(Error::store(what))?,
            ),
            BuiltImage::Multi(image) => BuiltImage::Multi(
                store
                    .compressed_index(image, compression)
                    .map_err(Error::store(what))?,
            ),
        })
    }
}

/// What an output made of the image, when it names it by a manifest (or index) others can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exported {
    /// Files only (`docker`, `tar`, `local`): no manifest of their own that a registry knows.
    Files,
    /// Names in the store (`type=image,push=false`).
    Named {
        /// The references set.
        names: Vec<String>,
    },
    /// An OCI layout holding this manifest, or for a multi-platform image this index (layers
    /// compressed).
    Layout {
        /// The manifest or index digest in the layout.
        digest: Digest,
        /// Its media type (OCI, or Docker's with `oci-mediatypes=false`).
        media_type: String,
        /// The config of a single image as the layout has it (another than the stored
        /// image's with `rewrite-timestamp`).
        config_digest: Option<Digest>,
    },
    /// A push of this manifest, or for a multi-platform image this index (after every
    /// platform's manifest).
    Pushed {
        /// The reference pushed to.
        name: String,
        /// The manifest or index digest the registry has.
        digest: String,
        /// Its media type (OCI, or Docker's with `oci-mediatypes=false`).
        media_type: String,
        /// The config of a single image as pushed (another than the stored image's with
        /// `rewrite-timestamp`).
        config_digest: Option<Digest>,
    },
}

/// Writes an archive to `dest`: a file that appears only once complete, or standard output.
pub fn write_archive_to<E: std::fmt::Display>(
    store: &Store,
    dest: &Destination,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::result::Result<(), E>,
) -> Result<()> {
    match dest {
        Destination::File(path) => write_output_file(store, path, |out| write(out)),
        Destination::Stdout => {
            let failed = |message: String| Error::Output {
                path: "-".into(),
                message,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            write(&mut out).map_err(|e| failed(e.to_string()))?;
            std::io::Write::flush(&mut out).map_err(|e| failed(e.to_string()))
        }
    }
}

/// The error of a docker archive asked to hold the images of several `platforms`.
fn docker_cannot_hold(platforms: impl IntoIterator<Item = Platform>) -> Error {
    Error::DockerMultiPlatform {
        platforms: platforms
            .into_iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

impl Output {
    /// How the output is named in messages (`type=oci`).
    fn label(&self) -> &'static str {
        match self {
            Output::Oci { .. } => "type=oci",
            Output::Docker { .. } => "type=docker",
            Output::Tar(_) => "type=tar",
            Output::Local(_) => "type=local",
            Output::Image { push: true, .. } => "type=registry",
            Output::Image { .. } => "type=image",
        }
    }

    /// Whether this output can hold a build for `platforms` with the session's `compression`
    /// and `source_date_epoch`: a docker archive holds one image, so not several platforms (as
    /// buildx's docker exporter refuses manifest lists), and its image keys must fit (see
    /// [`ImageKeys`]). Checked before a build starts, so it does not run only to fail at its
    /// export.
    pub fn check(
        &self,
        platforms: &[Platform],
        compression: Compression,
        source_date_epoch: Option<i64>,
    ) -> Result<()> {
        if platforms.len() > 1 && matches!(self, Output::Docker { .. }) {
            return Err(docker_cannot_hold(platforms.iter().cloned()));
        }
        let compression = match self {
            Output::Oci {
                compression: Some(own),
                ..
            }
            | Output::Image {
                compression: Some(own),
                ..
            } => *own,
            // A docker archive holds the layers as stored, uncompressed.
            Output::Docker { .. } => Compression::None,
            _ => compression,
        };
        match self.image_keys() {
            Some(keys) => keys.check(self.label(), platforms, compression, source_date_epoch),
            None => Ok(()),
        }
    }
}

/// What exports need to know of the build besides its image.
#[derive(Debug, Clone, Default)]
pub struct ExportFacts {
    /// `SOURCE_DATE_EPOCH`, for `rewrite-timestamp=true`.
    pub source_date_epoch: Option<i64>,
    /// How many layers of each platform's image (in the built image's order) its base image
    /// gave: `rewrite-timestamp` leaves those as they are, as BuildKit does.
    pub base_layers: Vec<usize>,
}

impl BuiltImage {
    /// The image as an output with `keys` carries it, before attestations: the file times of
    /// its own layers clamped (`rewrite-timestamp`), its layers compressed with `compression`
    /// (`None`: as stored), in the media types and with the manifest annotations asked for.
    fn shaped(
        &self,
        store: &Store,
        keys: &ImageKeys,
        compression: Option<Compression>,
        facts: &ExportFacts,
    ) -> Result<BuiltImage> {
        let what = "preparing the image for the output";
        let mut image = self.clone();
        if keys.rewrite_timestamp
            && let Some(epoch) = facts.source_date_epoch
        {
            image = match &image {
                BuiltImage::Single(single) => {
                    let first = facts.base_layers.first().copied().unwrap_or(0);
                    BuiltImage::Single(
                        store
                            .retimed_image(single, first, epoch)
                            .map_err(Error::store(what))?,
                    )
                }
                BuiltImage::Multi(multi) => BuiltImage::Multi(
                    store
                        .retimed_index(multi, &facts.base_layers, epoch)
                        .map_err(Error::store(what))?,
                ),
            };
        }
        if let Some(compression) = compression {
            image = image.compressed(store, compression)?;
        }
        if !keys.docker_media_types && !keys.has(AnnotationTarget::Manifest) {
            return Ok(image);
        }
        let format = if keys.docker_media_types {
            ManifestFormat::Docker
        } else {
            ManifestFormat::Oci
        };
        let manifest =
            |platform: &Platform| keys.annotations_for(AnnotationTarget::Manifest, Some(platform));
        Ok(match &image {
            BuiltImage::Single(single) => BuiltImage::Single(
                store
                    .styled_image(single, format, &manifest(&single.config.platform()))
                    .map_err(Error::store(what))?,
            ),
            BuiltImage::Multi(multi) => BuiltImage::Multi(
                store
                    .styled_index(multi, format, &manifest)
                    .map_err(Error::store(what))?,
            ),
        })
    }
}

/// `image` (shaped for `output`) with the attestations `carrier` takes, then with the index
/// and descriptor annotations of `keys`; with the annotations of its entry in an OCI layout's
/// `index.json` (`manifest-descriptor` of a single image, `index-descriptor` of an index).
/// Attestations with Docker media types, and index annotations of a single image, are
/// refused as BuildKit refuses them.
fn finished(
    store: &Store,
    image: &BuiltImage,
    attestations: &Attestations,
    names: &[String],
    carrier: Carrier,
    output: &Output,
    keys: &ImageKeys,
) -> Result<(BuiltImage, Annotations)> {
    let conflict = |reason: &str| Error::OutputConflict {
        output: output.label().to_owned(),
        reason: reason.to_owned(),
    };
    if keys.docker_media_types && attestations.carries(carrier, image) {
        return Err(conflict(
            "cannot export attestations with \"oci-mediatypes=false\": an attestation manifest is an OCI artifact\n  = help: pass --provenance=false (and --sbom=false) for Docker media types, or keep OCI media types",
        ));
    }
    let attested = attestations.attach(store, image, names, carrier)?;
    match attested {
        BuiltImage::Single(single) => {
            if keys.has(AnnotationTarget::Index) || keys.has(AnnotationTarget::IndexDescriptor) {
                return Err(conflict(
                    "index annotations not supported for single platform export: the image has no index\n  = help: annotate the manifest (manifest: or no prefix), or build several --platform values",
                ));
            }
            let entry = keys.annotations_for(
                AnnotationTarget::ManifestDescriptor,
                Some(&single.config.platform()),
            );
            Ok((BuiltImage::Single(single), entry))
        }
        BuiltImage::Multi(multi) => {
            let annotated = store
                .annotated_index(
                    &multi,
                    &keys.annotations_for(AnnotationTarget::Index, None),
                    &|platform| {
                        keys.annotations_for(AnnotationTarget::ManifestDescriptor, Some(platform))
                    },
                )
                .map_err(Error::store("annotating the image index"))?;
            let entry = keys.annotations_for(AnnotationTarget::IndexDescriptor, None);
            Ok((BuiltImage::Multi(annotated), entry))
        }
    }
}

/// Writes one output of `image`, recorded under `names` (the tags) and the output's own names,
/// with the `attestations` that output carries (made by the session): a push or an image
/// index gets them in attestation manifests, each statement about its platform image as the
/// output has it (names, compressed manifest digest); `local` and `tar` get them as files
/// beside each platform's root. A multi-platform image goes out as buildx sends one: an OCI
/// layout or a push of its index (every platform's manifest first), its tag in the store
/// naming the index, a directory or tar entry prefix per platform for `local` and `tar`
/// (`linux_amd64/`, `linux_arm_v7/`); a docker archive cannot hold one
/// ([`Error::DockerMultiPlatform`]). An image output's [`ImageKeys`] shape what it carries
/// (see [`Store::styled_image`], [`Store::retimed_image`]), with what `facts` say of the
/// build.
#[allow(clippy::too_many_arguments)]
pub fn export(
    store: &Store,
    image: &BuiltImage,
    attestations: &Attestations,
    names: &[String],
    output: &Output,
    compression: Compression,
    registry: &Registry,
    facts: &ExportFacts,
) -> Result<Vec<Exported>> {
    let all_names =
        |extra: &[String]| -> Vec<String> { names.iter().chain(extra).cloned().collect() };
    Ok(match output {
        Output::Oci {
            dest,
            names: extra,
            compression: own,
            keys,
        } => {
            let names = all_names(extra);
            let shaped = image.shaped(store, keys, Some(own.unwrap_or(compression)), facts)?;
            let (image, entry) = finished(
                store,
                &shaped,
                attestations,
                &names,
                Carrier::Index,
                output,
                keys,
            )?;
            write_image_archive(store, dest, &image, names, entry, false)?;
            vec![Exported::Layout {
                digest: image.digest().clone(),
                media_type: image.media_type().to_owned(),
                config_digest: image.config_digest().cloned(),
            }]
        }
        Output::Docker {
            dest,
            names: extra,
            keys,
        } => {
            if let BuiltImage::Multi(image) = image {
                return Err(docker_cannot_hold(
                    image.platform_images().map(|(platform, _)| platform),
                ));
            }
            let names = all_names(extra);
            let shaped = image.shaped(store, keys, None, facts)?;
            let (image, entry) = finished(
                store,
                &shaped,
                attestations,
                &names,
                Carrier::Index,
                output,
                keys,
            )?;
            write_image_archive(store, dest, &image, names, entry, true)?;
            vec![Exported::Files]
        }
        Output::Tar(dest) => {
            write_archive_to(store, dest, |out| -> Result<()> {
                if attestations.writes_files() {
                    // Attestation files describe every file by its sha256: the root file
                    // system must be on disk with its bytes.
                    return stagecraft_export::write_tree_tar(
                        store,
                        |dir| -> Result<()> {
                            unpack(store, image, dir)?;
                            attestations.write_files(dir, image)
                        },
                        out,
                    );
                }
                // The files' bytes go from the layers straight into the tar.
                match image {
                    BuiltImage::Single(image) => {
                        stagecraft_export::write_rootfs_tar(store, image, out)?
                    }
                    BuiltImage::Multi(image) => {
                        stagecraft_export::write_rootfs_tar_per_platform(store, image, out)?
                    }
                }
                Ok(())
            })?;
            vec![Exported::Files]
        }
        Output::Local(path) => {
            fill_output_dir(store, path, |dir| -> Result<()> {
                unpack(store, image, dir)?;
                attestations.write_files(dir, image)
            })?;
            vec![Exported::Files]
        }
        Output::Image {
            names: references,
            push,
            compression: own,
            keys,
        } => {
            let shaped = image.shaped(store, keys, None, facts)?;
            let (named, _) = finished(
                store,
                &shaped,
                attestations,
                references,
                Carrier::Index,
                output,
                keys,
            )?;
            let mut exported = Vec::new();
            let mut set = Vec::new();
            for name in references {
                let reference = store
                    .set_tag(name, named.digest())
                    .map_err(Error::store(format!("naming the image {name}")))?;
                set.push(reference.to_string());
            }
            if !push {
                return Ok(vec![Exported::Named { names: set }]);
            }
            let shaped = image.shaped(store, keys, Some(own.unwrap_or(compression)), facts)?;
            let (pushed, _) = finished(
                store,
                &shaped,
                attestations,
                &set,
                Carrier::Push,
                output,
                keys,
            )?;
            for name in &set {
                let failed = |message: String| Error::Transfer {
                    what: format!("pushing {name}"),
                    message,
                };
                let reference = stagecraft_registry::parse_reference(name)
                    .map_err(|e| failed(e.to_string()))?;
                let digest = match &pushed {
                    BuiltImage::Single(image) => block_on(stagecraft_registry::push(
                        registry, store, image, &reference,
                    ))?,
                    BuiltImage::Multi(image) => block_on(stagecraft_registry::push_index(
                        registry, store, image, &reference,
                    ))?,
                }
                .map_err(|e| failed(e.to_string()))?;
                exported.push(Exported::Pushed {
                    name: reference.whole(),
                    digest,
                    media_type: pushed.media_type().to_owned(),
                    config_digest: pushed.config_digest().cloned(),
                });
            }
            exported
        }
    })
}

/// Applies the image's layers into `dir`: its root file system, or each platform's in its own
/// directory.
/// Writes `image` to `dest` as an OCI layout tar named `names`, with docker's `manifest.json`
/// too when `docker` (a docker archive). A multi-platform or attested image is written as its
/// index (with its attestations): for a docker archive, docker's manifest.json names the
/// image in it, as BuildKit's docker exporter writes it.
fn write_image_archive(
    store: &Store,
    dest: &Destination,
    image: &BuiltImage,
    names: Vec<String>,
    entry: Annotations,
    docker: bool,
) -> Result<()> {
    write_archive_to(store, dest, |out| match image {
        BuiltImage::Single(image) => {
            let named = [NamedImage {
                image: image.clone(),
                names,
                annotations: entry,
            }];
            stagecraft_export::write_archive(store, &named, docker, out)
        }
        BuiltImage::Multi(index) => {
            stagecraft_export::write_index_archive(store, index, &names, &entry, docker, out)
        }
    })
}

fn unpack(store: &Store, image: &BuiltImage, dir: &Path) -> Result<()> {
    match image {
        BuiltImage::Single(image) => stagecraft_export::unpack_rootfs(store, image, dir)?,
        BuiltImage::Multi(image) => {
            stagecraft_export::unpack_rootfs_per_platform(store, image, dir)?
        }
    }
    Ok(())
}
