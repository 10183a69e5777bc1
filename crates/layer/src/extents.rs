//! Where the bytes of files that a lazy apply left in their layer blobs are: what applying a
//! layer records ([`crate::apply`]) and writing a tar reads ([`crate::write`]) for a
//! [`LazyRootfs`](crate::LazyRootfs).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};

/// The layer blobs of a lazy root file system, open, and its deferred files' places in them,
/// by (device, inode).
#[derive(Default)]
pub(crate) struct Extents {
    /// The applied blobs, open: their bytes stay readable whatever happens to their paths.
    layers: Vec<File>,
    /// Deferred files by (device, inode).
    files: HashMap<(u64, u64), Extent>,
}

/// Where a deferred file's bytes are.
#[derive(Debug, Clone, Copy)]
struct Extent {
    layer: usize,
    offset: u64,
    length: u64,
}

impl Extents {
    /// Keeps `blob` open as the next layer and returns its index.
    pub(crate) fn add_layer(&mut self, blob: File) -> usize {
        self.layers.push(blob);
        self.layers.len() - 1
    }

    /// Records that `file`'s bytes are `length` bytes at `offset` in layer `layer`.
    pub(crate) fn defer(
        &mut self,
        file: &File,
        layer: usize,
        offset: u64,
        length: u64,
    ) -> io::Result<()> {
        self.record(&file.metadata()?, layer, offset, length);
        Ok(())
    }

    /// Records that the file `meta` describes holds `length` bytes at `offset` in layer
    /// `layer`.
    pub(crate) fn record(&mut self, meta: &Metadata, layer: usize, offset: u64, length: u64) {
        let extent = Extent {
            layer,
            offset,
            length,
        };
        self.files.insert((meta.dev(), meta.ino()), extent);
    }

    /// Records that `file` holds its own bytes (its inode may have been a deferred file's).
    pub(crate) fn forget(&mut self, file: &File) -> io::Result<()> {
        let meta = file.metadata()?;
        self.files.remove(&(meta.dev(), meta.ino()));
        Ok(())
    }

    /// The bytes of the file `meta` describes, when they were left in a layer.
    pub(crate) fn contents(&self, meta: &Metadata) -> Option<impl Read + '_> {
        let extent = self.files.get(&(meta.dev(), meta.ino()))?;
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
