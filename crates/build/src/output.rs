//! Writing a build's outputs: archives and directories that appear whole or not at all, and
//! pushes.

use crate::error::{Error, Result};
use crate::network::block_on;
use crate::options::Output;
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

/// Writes one output of `image`, recorded under `names`.
pub fn export(
    store: &Store,
    image: &Image,
    names: &[String],
    output: &Output,
    compression: Compression,
    registry: &Registry,
) -> Result<Exported> {
    let named = [NamedImage {
        image: image.clone(),
        names: names.to_vec(),
    }];
    let compressed = |own: &Option<Compression>| {
        store
            .compressed_image(image, own.unwrap_or(compression))
            .map_err(Error::store("compressing the image's layers"))
    };
    Ok(match output {
        Output::Oci(path, own) => {
            let image = compressed(own)?;
            let digest = image.manifest_digest.clone();
            let named = [NamedImage {
                image,
                names: names.to_vec(),
            }];
            write_output_file(store, path, |out| {
                stagecraft_export::write_archive(store, &named, false, out)
            })?;
            Exported::Layout { digest }
        }
        Output::Docker(path) => {
            write_output_file(store, path, |out| {
                stagecraft_export::write_archive(store, &named, true, out)
            })?;
            Exported::Files
        }
        Output::Tar(path) => {
            write_output_file(store, path, |out| {
                stagecraft_export::write_rootfs_tar(store, image, out)
            })?;
            Exported::Files
        }
        Output::Local(path) => {
            fill_output_dir(store, path, |dir| {
                stagecraft_export::unpack_rootfs(store, image, dir)
            })?;
            Exported::Files
        }
        Output::Registry(name, own) => {
            let failed = |message: String| Error::Transfer {
                what: format!("pushing {name}"),
                message,
            };
            let reference =
                stagecraft_registry::parse_reference(name).map_err(|e| failed(e.to_string()))?;
            let image = compressed(own)?;
            let digest = block_on(stagecraft_registry::push(
                registry, store, &image, &reference,
            ))?
            .map_err(|e| failed(e.to_string()))?;
            Exported::Pushed {
                name: reference.whole(),
                digest,
            }
        }
    })
}
