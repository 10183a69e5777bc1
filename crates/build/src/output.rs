//! Writing a build's outputs: archives and directories that appear whole or not at all, and
//! pushes.

use crate::error::{Error, Result};
use crate::network::block_on;
use crate::options::{Destination, Output};
use stagecraft_export::NamedImage;
use stagecraft_image::Digest;
use stagecraft_layer::Compression;
use stagecraft_registry::Registry;
use stagecraft_store::{Image, OutputFile, Store};
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

/// What an output made of the image, when it names it by a manifest others can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exported {
    /// Files only (`docker`, `tar`, `local`): no manifest of their own that a registry knows.
    Files,
    /// Names in the store (`type=image,push=false`).
    Named {
        /// The references set.
        names: Vec<String>,
    },
    /// An OCI layout holding this manifest (layers compressed).
    Layout {
        /// The manifest digest in the layout.
        digest: Digest,
    },
    /// A push of this manifest.
    Pushed {
        /// The reference pushed to.
        name: String,
        /// The manifest digest the registry has.
        digest: String,
    },
}

/// Writes an archive to `dest`: a file that appears only once complete, or standard output.
fn write_archive_to<E: std::fmt::Display>(
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

/// Writes one output of `image`, recorded under `names` (the tags) and the output's own names.
pub fn export(
    store: &Store,
    image: &Image,
    names: &[String],
    output: &Output,
    compression: Compression,
    registry: &Registry,
) -> Result<Vec<Exported>> {
    let compressed = |own: &Option<Compression>| {
        store
            .compressed_image(image, own.unwrap_or(compression))
            .map_err(Error::store("compressing the image's layers"))
    };
    let with = |extra: &[String], image: Image| NamedImage {
        image,
        names: names.iter().chain(extra).cloned().collect(),
    };
    Ok(match output {
        Output::Oci {
            dest,
            names: extra,
            compression: own,
        } => {
            let image = compressed(own)?;
            let digest = image.manifest_digest.clone();
            let named = [with(extra, image)];
            write_archive_to(store, dest, |out| {
                stagecraft_export::write_archive(store, &named, false, out)
            })?;
            vec![Exported::Layout { digest }]
        }
        Output::Docker { dest, names: extra } => {
            let named = [with(extra, image.clone())];
            write_archive_to(store, dest, |out| {
                stagecraft_export::write_archive(store, &named, true, out)
            })?;
            vec![Exported::Files]
        }
        Output::Tar(dest) => {
            write_archive_to(store, dest, |out| {
                stagecraft_export::write_rootfs_tar(store, image, out)
            })?;
            vec![Exported::Files]
        }
        Output::Local(path) => {
            fill_output_dir(store, path, |dir| {
                stagecraft_export::unpack_rootfs(store, image, dir)
            })?;
            vec![Exported::Files]
        }
        Output::Image {
            names: references,
            push,
            compression: own,
        } => {
            let mut exported = Vec::new();
            let mut set = Vec::new();
            for name in references {
                let reference = store
                    .set_tag(name, &image.manifest_digest)
                    .map_err(Error::store(format!("naming the image {name}")))?;
                set.push(reference.to_string());
            }
            if !push {
                return Ok(vec![Exported::Named { names: set }]);
            }
            let pushed = compressed(own)?;
            for name in &set {
                let failed = |message: String| Error::Transfer {
                    what: format!("pushing {name}"),
                    message,
                };
                let reference = stagecraft_registry::parse_reference(name)
                    .map_err(|e| failed(e.to_string()))?;
                let digest = block_on(stagecraft_registry::push(
                    registry, store, &pushed, &reference,
                ))?
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
