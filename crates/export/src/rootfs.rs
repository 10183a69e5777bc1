//! Root file systems out of the store: an image's layers applied in order into a directory or
//! written as one tar, per platform for a multi-platform image, and any tree as a tar.

use crate::{ExportError, io_at};
use stagecraft_image::Platform;
use stagecraft_layer::{
    ApplyOptions, DiffSource, LazyRootfs, TarOptions, WhiteoutMode, apply_diff, apply_layer,
};
use stagecraft_store::{Digest, Image, MultiPlatformImage, Store};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Applies an image's layers, bottom first, into `dir` (which should be empty).
pub fn unpack_rootfs(store: &Store, image: &Image, dir: &Path) -> Result<(), ExportError> {
    apply_layers(image, dir, &mut |digest, dir| {
        apply_eagerly(store, digest, dir)
    })
}

/// Writes an image's flattened filesystem as one tar. The files' bytes go from the layers
/// straight into the tar ([`LazyRootfs`]), not through a directory first.
pub fn write_rootfs_tar(store: &Store, image: &Image, out: impl Write) -> Result<(), ExportError> {
    write_lazy_tar(store, |apply, dir| apply_layers(image, dir, apply), out)
}

/// The directory (or tar entry prefix) of a platform's files in a platform-split output:
/// `linux/arm/v7` → `linux_arm_v7`, as BuildKit's `local` and `tar` exporters name them.
pub fn platform_dir_name(platform: &Platform) -> String {
    platform.to_string().replace('/', "_")
}

/// Applies each platform's image into its own directory of `dir` ([`platform_dir_name`]), as
/// BuildKit's `local` exporter does with `platform-split=true` (its default for several
/// platforms). Each platform directory gets BuildKit's metadata for it: mode 0755, modified
/// at the epoch.
pub fn unpack_rootfs_per_platform(
    store: &Store,
    image: &MultiPlatformImage,
    dir: &Path,
) -> Result<(), ExportError> {
    apply_per_platform(image, dir, &mut |digest, dir| {
        apply_eagerly(store, digest, dir)
    })
}

/// Writes each platform's flattened filesystem into one tar, under its platform's directory
/// ([`unpack_rootfs_per_platform`]), as BuildKit's `tar` exporter does for several platforms.
/// As with [`write_rootfs_tar`], the files' bytes go from the layers straight into the tar.
pub fn write_rootfs_tar_per_platform(
    store: &Store,
    image: &MultiPlatformImage,
    out: impl Write,
) -> Result<(), ExportError> {
    write_lazy_tar(
        store,
        |apply, dir| apply_per_platform(image, dir, apply),
        out,
    )
}

/// Applies the layer blob of a digest into a directory.
type ApplyBlob<'a> = dyn FnMut(&Digest, &Path) -> Result<(), ExportError> + 'a;

/// Applies a layer blob of `store` into `dir` for good: whiteouts delete, owners are set
/// when root. A lazy blob (never written) is applied as its tar is regenerated, and checked
/// against its digest.
fn apply_eagerly(store: &Store, digest: &Digest, dir: &Path) -> Result<(), ExportError> {
    if let Some(blob) = store.lazy_blob(digest)
        && !store.blob_path(digest).is_file()
    {
        let (upper, lower_dirs) = store.lazy_blob_dirs(&blob)?;
        let source = DiffSource::OverlayUpper {
            upper: &upper,
            lower_dirs: &lower_dirs,
            xattr: blob.xattr,
        };
        let stats = apply_diff(&source, &blob.options, dir, &flatten_options())?;
        if stats.diff_id != digest.as_str() {
            return Err(stagecraft_store::Error::LazyBlobDamaged {
                digest: digest.clone(),
                actual: Digest::parse(&stats.diff_id).unwrap_or_else(|_| digest.clone()),
            }
            .into());
        }
        return Ok(());
    }
    let blob = store.blob_file(digest)?;
    let file = fs::File::open(&blob).map_err(io_at(&blob))?;
    apply_layer(io::BufReader::new(file), dir, &flatten_options())?;
    Ok(())
}

/// How layers are applied to flatten them: whiteouts delete, owners are set when root.
fn flatten_options() -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::Delete,
        ..ApplyOptions::default()
    }
}

/// Applies `image`'s layers, bottom first, into `dir` (created if missing) with `apply`.
fn apply_layers(image: &Image, dir: &Path, apply: &mut ApplyBlob<'_>) -> Result<(), ExportError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    for layer in &image.manifest.layers {
        apply(&layer.digest, dir)?;
    }
    Ok(())
}

/// Applies each platform's image with `apply` into its directory of `dir`, and gives that
/// directory BuildKit's metadata (see [`unpack_rootfs_per_platform`]).
fn apply_per_platform(
    image: &MultiPlatformImage,
    dir: &Path,
    apply: &mut ApplyBlob<'_>,
) -> Result<(), ExportError> {
    for (platform, image) in image.platform_images() {
        let platform_dir = dir.join(platform_dir_name(&platform));
        apply_layers(image, &platform_dir, apply)?;
        fs::set_permissions(&platform_dir, fs::Permissions::from_mode(0o755))
            .map_err(io_at(&platform_dir))?;
        fs::File::open(&platform_dir)
            .and_then(|handle| {
                handle.set_times(fs::FileTimes::new().set_modified(std::time::UNIX_EPOCH))
            })
            .map_err(io_at(&platform_dir))?;
    }
    Ok(())
}

/// Writes the tree `fill` makes in a scratch directory of the store, applying layers with the
/// applier it is given, as one tar whose files' bytes come straight from the layers
/// ([`LazyRootfs`]). `fill` must only apply layers and set directory metadata: the scratch
/// directory's files have no bytes, and a file made there any other way could be mistaken for
/// one whose bytes are in a layer.
fn write_lazy_tar(
    store: &Store,
    fill: impl FnOnce(&mut ApplyBlob<'_>, &Path) -> Result<(), ExportError>,
    out: impl Write,
) -> Result<(), ExportError> {
    let scratch = store.scratch_dir("rootfs")?;
    let mut lazy = LazyRootfs::new();
    let options = flatten_options();
    fill(
        &mut |digest, dir| {
            // A lazy blob (never written) is applied from its snapshots, its files' bytes
            // left there; any other from its file.
            match store.lazy_blob(digest) {
                Some(blob) if !store.blob_path(digest).is_file() => {
                    let (upper, lowers) = store.lazy_blob_dirs(&blob)?;
                    lazy.apply_snapshot_layer(
                        &upper,
                        &lowers,
                        blob.xattr,
                        &blob.options,
                        dir,
                        &options,
                    )?;
                }
                _ => {
                    lazy.apply_layer(&store.blob_file(digest)?, dir, &options)?;
                }
            }
            Ok(())
        },
        scratch.path(),
    )?;
    lazy.write_tar(scratch.path(), &TarOptions::default(), out)?;
    Ok(())
}

/// Writes the tree `fill` makes in a scratch directory of the store (the directory itself not
/// an entry) as one tar: a root file system, with whatever the caller adds beside it.
pub fn write_tree_tar<E: From<ExportError>>(
    store: &Store,
    fill: impl FnOnce(&Path) -> Result<(), E>,
    out: impl Write,
) -> Result<(), E> {
    let scratch = store.scratch_dir("rootfs").map_err(ExportError::from)?;
    fill(scratch.path())?;
    stagecraft_layer::write_tar(
        &DiffSource::Rootfs {
            root: scratch.path(),
        },
        &TarOptions::default(),
        out,
    )
    .map_err(ExportError::from)?;
    Ok(())
}
