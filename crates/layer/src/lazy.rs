//! Root file systems flattened from layers without copying the files' bytes.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::apply::{ApplyOptions, ApplyWarning, Deferral, apply_stream};
use crate::error::{Error, Result};
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
    /// The applied blobs, open: their bytes stay readable whatever happens to their paths.
    layers: Vec<File>,
    /// Deferred files by (device, inode).
    extents: HashMap<(u64, u64), Extent>,
}

/// Where a deferred file's bytes are.
#[derive(Debug, Clone, Copy)]
struct Extent {
    layer: usize,
    offset: u64,
    length: u64,
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
        let layer = self.layers.len();
        self.layers.push(file);
        let deferral = Deferral {
            rootfs: self,
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
        write_tar_with(&DiffSource::Rootfs { root }, options, Some(self), out)
    }

    /// Records that `file`'s bytes are `length` bytes at `offset` in layer `layer`.
    pub(crate) fn defer(
        &mut self,
        file: &File,
        layer: usize,
        offset: u64,
        length: u64,
    ) -> io::Result<()> {
        let meta = file.metadata()?;
        let extent = Extent {
            layer,
            offset,
            length,
        };
        self.extents.insert((meta.dev(), meta.ino()), extent);
        Ok(())
    }

    /// Records that `file` holds its own bytes (its inode may have been a deferred file's).
    pub(crate) fn forget(&mut self, file: &File) -> io::Result<()> {
        let meta = file.metadata()?;
        self.extents.remove(&(meta.dev(), meta.ino()));
        Ok(())
    }

    /// The bytes of the file `meta` describes, when they were left in a layer.
    pub(crate) fn contents(&self, meta: &Metadata) -> Option<impl Read + '_> {
        let extent = self.extents.get(&(meta.dev(), meta.ino()))?;
        (extent.length == meta.len()).then(|| ExtentReader {
            file: &self.layers[extent.layer],
            offset: extent.offset,
            end: extent.offset + extent.length,
        })
    }
}

/// Reads `offset..end` of a file, with positioned reads (the file is shared).
struct ExtentReader<'f> {
    file: &'f File,
    offset: u64,
    end: u64,
}

impl Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.offset).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}
