//! Writing a build's outputs: archives and directories that appear whole or not at all, and
//! pushes.

use crate::attest::{Attestations, Carrier};
use crate::error::{Error, Result};
use crate::network::block_on;
use crate::options::{Destination, Output};
use stagecraft_export::NamedImage;
use stagecraft_image::{Digest, Platform};
use stagecraft_layer::Compression;
use stagecraft_registry::Registry;
use stagecraft_store::{Image, MultiPlatformImage, OutputFile, Store};
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
    },
    /// A push of this manifest, or for a multi-platform image this index (after every
    /// platform's manifest).
    Pushed {
        /// The reference pushed to.
        name: String,
        /// The manifest or index digest the registry has.
        digest: String,
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
    /// Whether this output can hold a build for `platforms`: a docker archive holds one image,
    /// so not several platforms (as buildx's docker exporter refuses manifest lists). Checked
    /// before a build starts, so it does not run only to fail at its export.
    pub fn check_platforms(&self, platforms: &[Platform]) -> Result<()> {
        if platforms.len() > 1 && matches!(self, Output::Docker { .. }) {
            return Err(docker_cannot_hold(platforms.iter().cloned()));
        }
        Ok(())
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
/// ([`Error::DockerMultiPlatform`]).
pub fn export(
    store: &Store,
    image: &BuiltImage,
    attestations: &Attestations,
    names: &[String],
    output: &Output,
    compression: Compression,
    registry: &Registry,
) -> Result<Vec<Exported>> {
    let compressed =
        |own: &Option<Compression>| image.compressed(store, own.unwrap_or(compression));
    let all_names =
        |extra: &[String]| -> Vec<String> { names.iter().chain(extra).cloned().collect() };
    Ok(match output {
        Output::Oci {
            dest,
            names: extra,
            compression: own,
        } => {
            let names = all_names(extra);
            let image = attestations.attach(store, &compressed(own)?, &names, Carrier::Index)?;
            write_archive_to(store, dest, |out| match &image {
                BuiltImage::Single(image) => {
                    let named = [NamedImage {
                        image: image.clone(),
                        names,
                    }];
                    stagecraft_export::write_archive(store, &named, false, out)
                }
                BuiltImage::Multi(image) => {
                    stagecraft_export::write_index_archive(store, image, &names, false, out)
                }
            })?;
            vec![Exported::Layout {
                digest: image.digest().clone(),
            }]
        }
        Output::Docker { dest, names: extra } => {
            if let BuiltImage::Multi(image) = image {
                return Err(docker_cannot_hold(
                    image.platform_images().map(|(platform, _)| platform),
                ));
            }
            let names = all_names(extra);
            let image = attestations.attach(store, image, &names, Carrier::Index)?;
            write_archive_to(store, dest, |out| match &image {
                BuiltImage::Single(image) => {
                    let named = [NamedImage {
                        image: image.clone(),
                        names,
                    }];
                    stagecraft_export::write_archive(store, &named, true, out)
                }
                // An attested image: the index (with its attestations) and docker's
                // manifest.json for the image, as BuildKit's docker exporter writes it.
                BuiltImage::Multi(index) => {
                    stagecraft_export::write_index_archive(store, index, &names, true, out)
                }
            })?;
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
        } => {
            let named = attestations.attach(store, image, references, Carrier::Index)?;
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
            let pushed = attestations.attach(store, &compressed(own)?, &set, Carrier::Push)?;
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
                });
            }
            exported
        }
    })
}

/// Applies the image's layers into `dir`: its root file system, or each platform's in its own
/// directory.
fn unpack(store: &Store, image: &BuiltImage, dir: &Path) -> Result<()> {
    match image {
        BuiltImage::Single(image) => stagecraft_export::unpack_rootfs(store, image, dir)?,
        BuiltImage::Multi(image) => {
            stagecraft_export::unpack_rootfs_per_platform(store, image, dir)?
        }
    }
    Ok(())
}
