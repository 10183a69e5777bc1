//! Root file systems flattened from layers without copying the files' bytes.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use crate::apply::{ApplyOptions, ApplyWarning, Deferral, apply_stream};
use crate::error::{Error, Result};
use crate::extents::Extents;
use crate::write::{DiffSource, TarOptions, write_tar_with};

/// A root file system assembled from layer blobs as [`apply_layer`](crate::apply_layer)
/// assembles it, for writing out as one tar ([`LazyRootfs::write_tar`]) without the regular
/// files' bytes ever being written in between: the files of a plain tar layer are created with
/// their size but no data (sparse), and the tar writer reads their bytes from the layer blob.
/// Flattening an image into a tar then writes its bytes once, into the tar, instead of
/// twice (into the directory, then into the tar) and reading them back. Files of compressed
/// layers (a pulled base) are written as usual.
///
/// Files are known by device and inode number. So the directory must be private to this value
/// from the first apply to the last write: a file created there by anybody else could take the
/// inode number of a deferred file that a later layer replaced, and be written with that
/// file's bytes. (Each file that the applies create records or forgets its inode, so reuse
/// among them is harmless.) Anything meant to read the files' contents must not use the
/// directory: deferred files read as zeros.
#[derive(Default)]
pub struct LazyRootfs {
    /// The applied blobs and where the deferred files' bytes are in them.
    extents: Extents,
}

impl LazyRootfs {
    /// Nothing applied yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the layer blob at `blob` (plain, gzip or zstd) under `root`, as
    /// [`apply_layer`](crate::apply_layer) does but leaving a plain layer's file bytes in the
    /// blob. The stream is not hashed: the blob is trusted (it comes from a store that checked
    /// it). Returns what was skipped.
    pub fn apply_layer(
        &mut self,
        blob: &Path,
        root: &Path,
        options: &ApplyOptions,
    ) -> Result<Vec<ApplyWarning>> {
        let file = File::open(blob).map_err(|e| Error::io("open", blob, e))?;
        let stream = file.try_clone().map_err(|e| Error::io("open", blob, e))?;
        let layer = self.extents.add_layer(file);
        let deferral = Deferral {
            extents: &mut self.extents,
            layer,
            plain: false,
        };
        let stream = BufReader::with_capacity(1 << 20, stream);
        Ok(apply_stream(stream, root, options, Some(deferral))?.warnings)
    }

    /// Writes the tree under `root` as [`write_tar`](crate::write_tar) with
    /// [`DiffSource::Rootfs`] would, the same bytes, taking deferred files' bytes from their
    /// layers.
    pub fn write_tar<W: Write>(&self, root: &Path, options: &TarOptions, out: W) -> Result<W> {
        write_tar_with(
            &DiffSource::Rootfs { root },
            options,
            Some(&self.extents),
            out,
        )
    }
}
