//! Where the bytes of files that a lazy apply left in their layer blobs (or in the snapshot
//! directories their layers are made of) are: what applying a layer records
//! ([`crate::apply`]) and writing a tar reads ([`crate::write`]) for a
//! [`LazyRootfs`](crate::LazyRootfs).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The layer blobs and snapshot directories of a lazy root file system, open, and its
/// deferred files' places in them, by (device, inode).
#[derive(Default)]
pub(crate) struct Extents {
    /// The applied blobs and snapshot roots, open: their bytes stay readable whatever
    /// happens to their paths.
    layers: Vec<Layer>,
    /// Deferred files by (device, inode).
    files: HashMap<(u64, u64), Extent>,
}

/// Where an applied layer's bytes are.
enum Layer {
    /// A plain layer tar.
    Blob(File),
    /// The root of the snapshot directory a layer tar was written from (an `O_PATH`
    /// descriptor): a file's bytes are those of the file at its entry's path there.
    Snapshot(OwnedFd),
}

/// Where a deferred file's bytes are.
#[derive(Debug, Clone)]
struct Extent {
    layer: usize,
    /// In a blob, the data's offset; in a snapshot, none.
    place: Place,
    length: u64,
}

#[derive(Debug, Clone)]
enum Place {
    /// The data's offset in a blob.
    Offset(u64),
    /// The file's path under a snapshot's root.
    Path(Vec<u8>),
}

impl Extents {
    /// Keeps `blob` open as the next layer and returns its index.
    pub(crate) fn add_layer(&mut self, blob: File) -> usize {
        self.layers.push(Layer::Blob(blob));
        self.layers.len() - 1
    }

    /// Keeps the snapshot root `root` open as the next layer and returns its index.
    pub(crate) fn add_snapshot(&mut self, root: OwnedFd) -> usize {
        self.layers.push(Layer::Snapshot(root));
        self.layers.len() - 1
    }

    /// Records that `file`'s bytes are those of the file at `path` in the snapshot `layer`,
    /// `length` of them.
    pub(crate) fn defer_to_snapshot(
        &mut self,
        file: &File,
        layer: usize,
        path: &[u8],
        length: u64,
    ) -> io::Result<()> {
        let meta = file.metadata()?;
        let extent = Extent {
            layer,
            place: Place::Path(path.to_vec()),
            length,
        };
        self.files.insert((meta.dev(), meta.ino()), extent);
        Ok(())
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
            place: Place::Offset(offset),
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

    /// The bytes of the file `meta` describes, when they were left in a layer (or an error
    /// opening the snapshot file that holds them).
    pub(crate) fn contents(&self, meta: &Metadata) -> Option<io::Result<ExtentReader<'_>>> {
        let extent = self.files.get(&(meta.dev(), meta.ino()))?;
        if extent.length != meta.len() {
            return None;
        }
        Some(match (&self.layers[extent.layer], &extent.place) {
            (Layer::Blob(file), Place::Offset(offset)) => Ok(ExtentReader::Blob {
                file,
                offset: *offset,
                end: offset + extent.length,
            }),
            (Layer::Snapshot(root), Place::Path(path)) => {
                open_beneath(root, path).map(|file| ExtentReader::File(file.take(extent.length)))
            }
            _ => Err(io::Error::other(
                "a deferred file's place does not fit its layer",
            )),
        })
    }
}

/// Opens the regular file at `path` beneath `root`, never following a symlink (in the
/// snapshot, or out of it).
fn open_beneath(root: &OwnedFd, path: &[u8]) -> io::Result<File> {
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(
            root,
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            // The kernel asks for a retry when a rename elsewhere raced the lookup.
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if attempts < 64 => {
                attempts += 1;
            }
            result => return result.map(File::from).map_err(io::Error::from),
        }
    }
}

/// A deferred file's bytes.
pub(crate) enum ExtentReader<'f> {
    /// `offset..end` of a blob, read with positioned reads (the blob is shared).
    Blob {
        file: &'f File,
        offset: u64,
        end: u64,
    },
    /// A snapshot's file, of the length recorded.
    File(io::Take<File>),
}

impl Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Blob { file, offset, end } => {
                let left = usize::try_from(*end - *offset).unwrap_or(usize::MAX);
                let want = buf.len().min(left);
                if want == 0 {
                    return Ok(0);
                }
                let n = file.read_at(&mut buf[..want], *offset)?;
                *offset += n as u64;
                Ok(n)
            }
            Self::File(file) => file.read(buf),
        }
    }
}
