//! Root file systems flattened from layers without copying the files' bytes.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::apply::{ApplyOptions, ApplyWarning, Deferral, apply_stream};
use crate::error::{Error, Result};
use crate::extents::Extents;
use crate::pipe::apply_piped;
use crate::tarread::{EntryKind, TarReader};
use crate::whiteout::OverlayXattr;
use crate::write::{DiffSource, TarOptions, write_hollow_tar, write_tar_with};

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
            snapshot: false,
        };
        let stream = BufReader::with_capacity(1 << 20, stream);
        Ok(apply_stream(stream, root, options, Some(deferral))?.warnings)
    }

    /// Applies under `root` the layer that [`write_tar`](crate::write_tar) writes of the
    /// overlay upper snapshot `upper` over `lower_dirs` (topmost first) with `tar_options`,
    /// as [`apply_layer`](Self::apply_layer) applies that tar, leaving each regular file's
    /// bytes in the snapshot: they are read from the file at its entry's path under `upper`
    /// (opened beneath it, never through a symlink) when the tar is written. The tar itself
    /// is never made: its entries go from the writer to the apply with the files' bytes left
    /// out. `upper` must not change until then (a store snapshot does not).
    pub fn apply_snapshot_layer(
        &mut self,
        upper: &Path,
        lower_dirs: &[PathBuf],
        xattr: OverlayXattr,
        tar_options: &TarOptions,
        root: &Path,
        options: &ApplyOptions,
    ) -> Result<Vec<ApplyWarning>> {
        let snapshot = rustix::fs::open(
            upper,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", upper, e.into()))?;
        let layer = self.extents.add_snapshot(snapshot);
        let deferral = Deferral {
            extents: &mut self.extents,
            layer,
            plain: false,
            snapshot: true,
        };
        let source = DiffSource::OverlayUpper {
            upper,
            lower_dirs,
            xattr,
        };
        let stats = apply_piped(
            |out| write_hollow_tar(&source, tar_options, out),
            |tar| apply_stream(tar, root, options, Some(deferral)),
        )?;
        Ok(stats.warnings)
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

    /// Takes the plain layer tar `blob` as a source of file bytes for a later
    /// [`write_diff_tar`](Self::write_diff_tar), and returns where its regular files' bytes
    /// are: by entry name (no trailing `/`), the blob's number and the data's offset and
    /// length, for [`reuse`](Self::reuse). A layer rebuilt from an earlier one (an
    /// incremental `COPY`) takes its unchanged files' bytes from there: one open file instead
    /// of one per file, and the bytes are the very ones the earlier tar holds.
    pub fn reuse_blob(&mut self, blob: &Path) -> Result<HashMap<Vec<u8>, BlobExtent>> {
        let file = File::open(blob).map_err(|e| Error::io("open", blob, e))?;
        let files = regular_files(&file).map_err(|e| Error::io("read", blob, e))?;
        let layer = self.extents.add_layer(file);
        Ok(files
            .into_iter()
            .map(|(name, offset, length)| {
                let extent = BlobExtent {
                    layer,
                    offset,
                    length,
                };
                (name, extent)
            })
            .collect())
    }

    /// Records that the file `meta` describes holds the bytes of `extent` (from
    /// [`reuse_blob`](Self::reuse_blob)). The caller vouches for it; a length that differs
    /// from the file's is ignored when writing.
    pub fn reuse(&mut self, meta: &Metadata, extent: BlobExtent) {
        self.extents
            .record(meta, extent.layer, extent.offset, extent.length);
    }

    /// Writes the layer tar of `source` as [`write_tar`](crate::write_tar) would, the same
    /// bytes, taking the bytes of the files recorded with [`reuse`](Self::reuse) from their
    /// blobs.
    pub fn write_diff_tar<W: Write>(
        &self,
        source: &DiffSource<'_>,
        options: &TarOptions,
        out: W,
    ) -> Result<W> {
        write_tar_with(source, options, Some(&self.extents), out)
    }
}

/// The regular files of the plain tar `file` with data: name, data offset and length. The
/// headers are read where they are ([`TarReader::next_entry_seeking`]); the data in between
/// is never read (a reader would go through every byte of the archive).
fn regular_files(file: &File) -> io::Result<Vec<(Vec<u8>, u64, u64)>> {
    let mut tar = TarReader::new(file);
    let mut files = Vec::new();
    while let Some(entry) = tar.next_entry_seeking()? {
        if entry.kind == EntryKind::Regular && entry.size > 0 {
            files.push((entry.path, tar.position(), entry.size));
        }
    }
    Ok(files)
}

/// Where a regular file's bytes are in a blob given to [`LazyRootfs::reuse_blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobExtent {
    layer: usize,
    offset: u64,
    length: u64,
}
