//! An image's root file system as the tools that read it see it, and the readers they share.
//!
//! [`ImageFs`] is what the SBOM catalogers and the image checks read through: every entry
//! with the layer that added it, and files opened by their path inside the image. Two
//! implementations: [`DirFs`], a root file system unpacked in a directory, and
//! [`LayeredFs`], an image's stack of layer snapshots seen through a [`MergedView`] (what the
//! build engine reads stages through, too). Both resolve every path inside the image root,
//! symlinks included, as `chroot` would: nothing an image contains can make them read a file
//! of the host.
//!
//! [`elf`] reads ELF files lazily (headers, the interpreter, the dynamic section), and
//! [`users`] reads `/etc/passwd` and `/etc/group`.
#![forbid(unsafe_code)]

mod dir;
pub mod elf;
mod layered;
mod merged;
mod stat;
pub mod users;

pub use dir::DirFs;
pub use layered::LayeredFs;
pub use merged::{Found, MergedView, clean_components, is_whiteout};
pub use stat::{FileTime, Stat};

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// What kind of entry a [`FileEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by a listing).
    Symlink,
    /// A device node, FIFO or socket.
    Special,
}

impl EntryKind {
    /// The kind of an entry of this type.
    fn of(file_type: rustix::fs::FileType) -> Self {
        match file_type {
            rustix::fs::FileType::RegularFile => EntryKind::File,
            rustix::fs::FileType::Directory => EntryKind::Dir,
            rustix::fs::FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Special,
        }
    }
}

/// An entry of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Absolute in the image (`/usr/bin/env`), as a process inside it would name it.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky (`0o4755`).
    pub mode: u32,
    /// What it is.
    pub kind: EntryKind,
    /// Index of the layer (bottom = 0) whose copy of the entry is visible, `None` when the
    /// file system has no layers (a plain directory).
    pub layer: Option<usize>,
}

/// An image's root file system as its readers see it.
///
/// Implemented for a plain directory ([`DirFs`]) and for a stack of layer snapshots
/// ([`LayeredFs`]), where deleted files are already gone and `layer` says which layer's copy
/// of an entry is visible. Readers may share one between threads (the SBOM's catalogers run
/// on every core).
pub trait ImageFs: Sync {
    /// Every entry but the root (regular files, directories, symlinks, special files), in any
    /// order. An implementation may list only part of the image (see
    /// [`LayeredFs::listing_from`]); [`ImageFs::open`] still reaches every path.
    fn entries(&self) -> io::Result<Vec<FileEntry>>;

    /// Every regular file of [`ImageFs::entries`].
    fn files(&self) -> io::Result<Vec<FileEntry>> {
        let mut entries = self.entries()?;
        entries.retain(|entry| entry.kind == EntryKind::File);
        Ok(entries)
    }

    /// Opens the regular file at `path` (absolute in the image) for reading. Symlinks on the
    /// way are resolved inside the image, as `chroot` would, never on the host; a path that
    /// names anything but a regular file is an error of kind `InvalidInput`, a missing one of
    /// kind `NotFound`.
    fn open(&self, path: &Path) -> io::Result<File>;

    /// The layer that added `entry` (a file [`ImageFs::entries`] listed) as it is now: with
    /// layers, a later layer that only changed its mode or times (`RUN chmod`) holds a whole
    /// copy but did not add it. Without layers, its `layer`.
    fn first_added(&self, entry: &FileEntry) -> Option<usize> {
        entry.layer
    }

    /// The names in the directory at `path` (absolute in the image, symlinks resolved inside
    /// it), in any order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
}

/// Reads all of `reader`, failing rather than reading more than `limit` bytes: a hostile
/// image must not make a reader eat the memory with a huge "metadata" file.
pub fn read_limited(reader: impl io::Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut reader.take(limit + 1), &mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other(format!("larger than {limit} bytes")));
    }
    Ok(bytes)
}

/// The error for a path that names something other than a regular file.
fn not_a_file(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not a regular file", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_limited_refuses_oversized_input() {
        assert_eq!(read_limited(&b"12345"[..], 5).unwrap(), b"12345");
        assert!(read_limited(&b"123456"[..], 5).is_err());
    }
}
