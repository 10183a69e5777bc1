//! Turning filesystem changes into a layer tar.
//!
//! Order: a depth-first walk with the children of every directory sorted by
//! name bytewise, each directory before its contents. That is the order of
//! Go's `filepath.Walk`, which docker, containerd and BuildKit use, so layers
//! list like theirs. Whiteouts sit where the deleted name sorts; an opaque
//! marker comes right after its directory.
//!
//! Which directories appear: in diffs (overlay or two directories) every
//! changed entry is written together with all its ancestor directories (with
//! their current metadata), the way containerd's change writer includes
//! parents; unchanged directories with no changes below them are left out.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};

use crate::compress::{Compression, LayerInfo, LayerWriter};
use crate::error::{Error, Result};
use crate::extents::Extents;
use crate::fsutil::{XattrSubject, Xattrs, has_xattrs, read_xattr, read_xattrs};
use crate::tarfmt::{DataError, EntryHeader, Kind, TarStream};
use crate::whiteout::{OverlayXattr, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};

/// Where the changes of a layer come from.
#[derive(Debug, Clone, Copy)]
pub enum DiffSource<'a> {
    /// The upper directory of an overlayfs mount (which must be unmounted or
    /// quiescent): every entry in it is a change, 0/0 character devices are
    /// deletions, and directories carrying the opaque xattr hide their lower
    /// contents.
    OverlayUpper {
        /// The upper directory.
        upper: &'a Path,
        /// The lower directories, topmost first, as given to `lowerdir=`.
        /// Optional (may be empty): when given, they are consulted to leave
        /// out directories that were only copied up (same mode, owner and
        /// xattrs as below, no changes inside), whiteouts and opaque markers
        /// that hide nothing, and files copied up without a change, so the
        /// result matches [`DiffSource::Directories`] for the same change.
        /// Lower directories may themselves hold overlay whiteouts and
        /// opaque markers (as written by
        /// [`WhiteoutMode::Overlay`](crate::WhiteoutMode::Overlay)).
        lower_dirs: &'a [PathBuf],
        /// The xattr namespace the mount uses for its markers. Attributes in
        /// that namespace's `overlay.` prefix are never copied into the layer.
        xattr: OverlayXattr,
    },
    /// Two plain directories, the fallback when overlayfs is unavailable:
    /// `upper` is `lower` after the change.
    ///
    /// An entry counts as changed when its type, mode, owner, device number or
    /// xattrs differ, or (for non-directories) its size, its mtime in whole
    /// seconds, or its mtime nanoseconds. When both mtimes have zero
    /// nanoseconds — a filesystem or a copy that does not keep them — the
    /// metadata is ambiguous and the contents (or symlink targets) are
    /// compared. This is containerd's rule. Directory mtimes are ignored,
    /// since they change whenever a child does; a directory whose only change
    /// is its mtime is not written.
    Directories {
        /// The tree before the change.
        lower: &'a Path,
        /// The tree after the change.
        upper: &'a Path,
    },
    /// A whole tree, every entry written (for importing a root filesystem).
    /// The root directory itself is not an entry.
    Rootfs {
        /// The root of the tree.
        root: &'a Path,
    },
}

/// Options for writing a layer tar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarOptions {
    /// `SOURCE_DATE_EPOCH`: entries with a later mtime get this one instead,
    /// like BuildKit's `rewrite-timestamp`. It is also the mtime of whiteout
    /// and opaque entries, which are otherwise dated 0 (1970).
    pub source_date_epoch: Option<i64>,
}

/// Writes the layer tar (uncompressed) for `source` to `out` and returns
/// `out`. The same tree and options always give the same bytes.
pub fn write_tar<W: Write>(source: &DiffSource<'_>, options: &TarOptions, out: W) -> Result<W> {
    write_tar_with(source, options, None, out)
}

/// [`write_tar`], taking the bytes of the files `extents` lists from their layers.
pub(crate) fn write_tar_with<W: Write>(
    source: &DiffSource<'_>,
    options: &TarOptions,
    extents: Option<&Extents>,
    out: W,
) -> Result<W> {
    emit(source, options, extents, false, out)
}

/// [`write_tar`] with every regular file's bytes written as zeros, the files never read:
/// the entries of a layer, for an apply that leaves the bytes in the files
/// ([`LazyRootfs::apply_snapshot_layer`](crate::LazyRootfs::apply_snapshot_layer)).
pub(crate) fn write_hollow_tar<W: Write>(
    source: &DiffSource<'_>,
    options: &TarOptions,
    out: W,
) -> Result<W> {
    emit(source, options, None, true, out)
}

fn emit<W: Write>(
    source: &DiffSource<'_>,
    options: &TarOptions,
    extents: Option<&Extents>,
    hollow: bool,
    out: W,
) -> Result<W> {
    let mut emitter = Emitter {
        tar: TarStream::new(out),
        extents,
        epoch: options.source_date_epoch,
        links: HashMap::new(),
        stack: Vec::new(),
        buf: vec![0; 256 * 1024],
        drop_xattrs: None,
        hollow,
    };
    match *source {
        DiffSource::Rootfs { root } => {
            check_dir(root)?;
            emitter.walk_all(root, b"")?;
        }
        DiffSource::Directories { lower, upper } => {
            check_dir(lower)?;
            check_dir(upper)?;
            emitter.walk_diff(Some(lower), upper, b"")?;
        }
        DiffSource::OverlayUpper {
            upper,
            lower_dirs,
            xattr,
        } => {
            check_dir(upper)?;
            for lower in lower_dirs {
                check_dir(lower)?;
            }
            emitter.drop_xattrs = Some(xattr.prefix());
            emitter.walk_overlay(upper, b"", lower_dirs, xattr, true)?;
        }
    }
    emitter
        .tar
        .finish()
        .map_err(|source| Error::Output { source })
}

/// Writes the layer for `source`, compressed, to `dest` in one pass and
/// returns its digests with `dest`. See [`LayerWriter`] for the pipeline.
pub fn write_layer<W: Write>(
    source: &DiffSource<'_>,
    options: &TarOptions,
    compression: Compression,
    dest: W,
) -> Result<(LayerInfo, W)> {
    let output = |source| Error::Output { source };
    let writer = LayerWriter::new(dest, compression).map_err(output)?;
    let writer = write_tar(source, options, writer)?;
    writer.finish().map_err(output)
}

fn check_dir(path: &Path) -> Result<()> {
    // The roots themselves may be symlinks to directories; nothing below is followed.
    let meta = fs::metadata(path).map_err(|e| Error::io("inspect", path, e))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(Error::io(
            "use as a layer source",
            path,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ))
    }
}

/// An entry on disk.
struct Node {
    path: PathBuf,
    meta: Metadata,
    /// Known to have no extended attributes (one `llistxattr` said so): none to read.
    no_xattrs: bool,
    /// Its directory, open, when the walk listed it: a file is opened relative to it, not by
    /// a walk of its whole path.
    dir: Option<Arc<OwnedFd>>,
    /// The regular file, open already: the overlay walk asks about its xattrs through it, and
    /// its bytes are read from it.
    file: Option<File>,
}

impl Node {
    fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }

    /// An overlayfs whiteout: a character device with device number 0/0.
    /// (Link counts say nothing: since Linux 5.8 overlayfs hardlinks all
    /// whiteouts to one shared inode.)
    fn is_whiteout(&self) -> bool {
        self.meta.file_type().is_char_device() && self.meta.rdev() == 0
    }
}

/// Where a regular file's bytes are read from.
enum Contents<'f, L> {
    /// The layer that already holds them (a [`LazyRootfs`](crate::LazyRootfs)'s extents).
    Layer(L),
    /// The file itself, open.
    File(&'f File),
    /// None: zeros in their place, the file never read (a hollow tar: [`write_hollow_tar`]).
    Zeros,
}

/// A directory on the current walk path, written or not yet.
struct Frame {
    rel: Vec<u8>,
    node: Node,
    written: bool,
}

struct Emitter<'l, W> {
    tar: TarStream<W>,
    /// Where deferred files' bytes are, for a [`LazyRootfs`](crate::LazyRootfs).
    extents: Option<&'l Extents>,
    epoch: Option<i64>,
    /// (dev, ino) of multiply-linked entries already written → their name,
    /// so later names become hardlink entries.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Ancestors of the entry being visited; unwritten ones are written just
    /// before the first change below them.
    stack: Vec<Frame>,
    buf: Vec<u8>,
    /// The overlayfs xattr namespace not to copy into the layer, when
    /// reading an overlay upper directory.
    drop_xattrs: Option<&'static str>,
    /// Whether regular files' bytes are left out: written as zeros, never read (a tar to
    /// apply lazily, whose files' bytes stay where they are: [`write_hollow_tar`]).
    hollow: bool,
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

/// The children of a directory, sorted by name bytewise.
///
/// Each child is inspected through its directory entry, which asks relative to the open
/// directory (the `lstat` of its path, without walking the path again for every child: a
/// layer of a big tree otherwise spends a path walk per file).
fn read_sorted(dir: &Path) -> Result<Vec<Node>> {
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", dir, e.into()))?;
    let dir_fd = Arc::new(dir_fd);
    let mut entries: Vec<(OsString, fs::DirEntry)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        entries.push((entry.file_name(), entry));
    }
    entries.sort_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
    entries
        .into_iter()
        .map(|(name, entry)| {
            let path = dir.join(name);
            // Never follows a link, as `symlink_metadata` would not.
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("inspect", &path, e))?;
            Ok(Node {
                path,
                meta,
                no_xattrs: false,
                dir: Some(Arc::clone(&dir_fd)),
                file: None,
            })
        })
        .collect()
}

fn lstat_opt(path: &Path) -> Result<Option<Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::io("inspect", path, e)),
    }
}

impl<W: Write> Emitter<'_, W> {
    fn clamp(&self, mtime: i64) -> i64 {
        match self.epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }

    /// The xattrs to record for `path` (read from `subject`: the path or the open file): all
    /// of them, minus overlayfs's own markers when reading an upper directory.
    fn xattrs<S: XattrSubject>(&self, subject: S, path: &Path) -> Result<Xattrs> {
        let mut xattrs = read_xattrs(subject).map_err(|e| Error::io("read xattrs of", path, e))?;
        if let Some(prefix) = self.drop_xattrs {
            xattrs.retain(|(name, _)| !name.starts_with(prefix.as_bytes()));
        }
        Ok(xattrs)
    }

    /// Writes every not-yet-written ancestor on the walk path.
    fn flush_ancestors(&mut self) -> Result<()> {
        for i in 0..self.stack.len() {
            if !self.stack[i].written {
                self.stack[i].written = true;
                let frame = &self.stack[i];
                let (rel, path, meta) = (
                    frame.rel.clone(),
                    frame.node.path.clone(),
                    frame.node.meta.clone(),
                );
                self.write_entry(
                    &rel,
                    &Node {
                        path,
                        meta,
                        no_xattrs: false,
                        dir: None,
                        file: None,
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Writes `node` as entry `rel`, after any unwritten ancestors.
    fn emit(&mut self, rel: &[u8], node: &Node) -> Result<()> {
        if node.meta.file_type().is_socket() {
            // Sockets cannot be archived (docker skips them too); they are
            // meaningless outside the process that bound them.
            return Ok(());
        }
        self.flush_ancestors()?;
        self.write_entry(rel, node)
    }

    /// Writes an empty marker entry (whiteout or opaque) named `rel`.
    fn emit_marker(&mut self, rel: &[u8]) -> Result<()> {
        self.flush_ancestors()?;
        let header = EntryHeader {
            name: rel,
            kind: Kind::Regular,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: self.epoch.unwrap_or(0),
            size: 0,
            link: None,
            device: None,
            xattrs: &[],
        };
        self.tar
            .header(&header)
            .map_err(|source| Error::Output { source })
    }

    fn emit_whiteout(&mut self, parent: &[u8], name: &[u8]) -> Result<()> {
        let marker = [WHITEOUT_PREFIX.as_bytes(), name].concat();
        self.emit_marker(&join(parent, &marker))
    }

    fn write_entry(&mut self, rel: &[u8], node: &Node) -> Result<()> {
        let meta = &node.meta;
        let file_type = meta.file_type();
        let mut name = rel.to_vec();
        let mut link = None;
        let mut device = None;
        let mut size = 0;
        let kind = if file_type.is_dir() {
            name.push(b'/');
            Kind::Directory
        } else if let Some(first) = self.hardlink_target(rel, meta) {
            let header = EntryHeader {
                name: &name,
                kind: Kind::Hardlink,
                mode: meta.mode(),
                uid: u64::from(meta.uid()),
                gid: u64::from(meta.gid()),
                mtime: self.clamp(meta.mtime()),
                size: 0,
                link: Some(&first),
                device: None,
                xattrs: &[],
            };
            return self
                .tar
                .header(&header)
                .map_err(|source| Error::Output { source });
        } else if file_type.is_file() {
            size = meta.len();
            Kind::Regular
        } else if file_type.is_symlink() {
            let target =
                fs::read_link(&node.path).map_err(|e| Error::io("read symlink", &node.path, e))?;
            link = Some(target.into_os_string().into_vec());
            Kind::Symlink
        } else if file_type.is_char_device() || file_type.is_block_device() {
            let rdev = meta.rdev();
            device = Some((rustix::fs::major(rdev), rustix::fs::minor(rdev)));
            if file_type.is_char_device() {
                Kind::Char
            } else {
                Kind::Block
            }
        } else {
            Kind::Fifo
        };
        // A regular file's bytes: from the layer they are in, or from the file, opened before
        // its xattrs are read so that they are read from it (or none, in a hollow tar).
        let opened;
        let contents = if kind == Kind::Regular {
            Some(
                match self.extents.and_then(|extents| extents.contents(meta)) {
                    Some(Ok(bytes)) => Contents::Layer(bytes),
                    Some(Err(e)) => return Err(Error::io("open the layer file of", &node.path, e)),
                    None if self.hollow => Contents::Zeros,
                    None => Contents::File(match &node.file {
                        Some(file) => file,
                        None => {
                            opened = open_entry(node)?;
                            &opened
                        }
                    }),
                },
            )
        } else {
            None
        };
        let xattrs = match &contents {
            _ if node.no_xattrs => Vec::new(),
            Some(Contents::File(file)) => self.xattrs(file.as_fd(), &node.path)?,
            _ => self.xattrs(node.path.as_path(), &node.path)?,
        };
        let header = EntryHeader {
            name: &name,
            kind,
            mode: meta.mode(),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: self.clamp(meta.mtime()),
            size,
            link: link.as_deref(),
            device,
            xattrs: &xattrs,
        };
        self.tar
            .header(&header)
            .map_err(|source| Error::Output { source })?;
        if let Some(contents) = contents {
            let written = match contents {
                Contents::Layer(mut bytes) => self.tar.data(&mut bytes, size, &mut self.buf),
                Contents::File(mut file) => self.tar.data(&mut file, size, &mut self.buf),
                Contents::Zeros => {
                    self.tar
                        .data(&mut io::repeat(0).take(size), size, &mut self.buf)
                }
            };
            match written {
                Ok(()) => {}
                Err(DataError::Read(e)) => return Err(Error::io("read", &node.path, e)),
                Err(DataError::Write(source)) => return Err(Error::Output { source }),
                Err(DataError::Short(read)) => {
                    return Err(Error::FileChanged {
                        path: node.path.clone(),
                        expected: size,
                        read,
                    });
                }
            }
        }
        Ok(())
    }

    /// For a non-directory with several links: the name it was first written
    /// under, or `None` (and it is remembered) if this is the first time.
    fn hardlink_target(&mut self, rel: &[u8], meta: &Metadata) -> Option<Vec<u8>> {
        if meta.nlink() < 2 {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if let Some(first) = self.links.get(&key) {
            return Some(first.clone());
        }
        self.links.insert(key, rel.to_vec());
        None
    }

    fn push(&mut self, rel: Vec<u8>, node: Node, written: bool) {
        self.stack.push(Frame { rel, node, written });
    }

    /// Writes everything below `dir` (a whole tree, or an added directory).
    fn walk_all(&mut self, dir: &Path, rel: &[u8]) -> Result<()> {
        for node in read_sorted(dir)? {
            let child = join(rel, node.path.file_name().map_or(&[][..], |n| n.as_bytes()));
            self.emit(&child, &node)?;
            if node.is_dir() {
                let path = node.path.clone();
                self.push(child.clone(), node, true);
                self.walk_all(&path, &child)?;
                self.stack.pop();
            }
        }
        Ok(())
    }

    /// Writes the differences between `lower` (absent: nothing) and `upper`.
    fn walk_diff(&mut self, lower: Option<&Path>, upper: &Path, rel: &[u8]) -> Result<()> {
        let lowers = match lower {
            Some(lower) => read_sorted(lower)?,
            None => Vec::new(),
        };
        let uppers = read_sorted(upper)?;
        let mut lowers = lowers.into_iter().peekable();
        let mut uppers = uppers.into_iter().peekable();
        loop {
            let order = match (lowers.peek(), uppers.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(l), Some(u)) => file_name(l).cmp(file_name(u)),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let gone = lowers.next().expect("peeked");
                    self.emit_whiteout(rel, file_name(&gone))?;
                }
                std::cmp::Ordering::Greater => {
                    let added = uppers.next().expect("peeked");
                    let child = join(rel, file_name(&added));
                    self.emit(&child, &added)?;
                    if added.is_dir() {
                        let path = added.path.clone();
                        self.push(child.clone(), added, true);
                        self.walk_all(&path, &child)?;
                        self.stack.pop();
                    }
                }
                std::cmp::Ordering::Equal => {
                    let old = lowers.next().expect("peeked");
                    let new = uppers.next().expect("peeked");
                    let child = join(rel, file_name(&new));
                    let changed = !same_entry(&old, &new)?;
                    if changed {
                        self.emit(&child, &new)?;
                    }
                    if new.is_dir() {
                        let path = new.path.clone();
                        let below = old.is_dir().then_some(old.path);
                        self.push(child.clone(), new, changed);
                        self.walk_diff(below.as_deref(), &path, &child)?;
                        self.stack.pop();
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the changes recorded in an overlay upper directory.
    /// `lower_visible` is false below opaque or new directories, where lower
    /// layers cannot show through.
    fn walk_overlay(
        &mut self,
        dir: &Path,
        rel: &[u8],
        lowers: &[PathBuf],
        ns: OverlayXattr,
        lower_visible: bool,
    ) -> Result<()> {
        for mut node in read_sorted(dir)? {
            let name = file_name(&node).to_vec();
            let child = join(rel, &name);
            let lower = if lowers.is_empty() || !lower_visible {
                None
            } else {
                lower_lookup(lowers, &child, ns)?
            };
            if node.is_whiteout() {
                // Without lower dirs we cannot tell whether the whiteout hides
                // anything, so it is kept; with them, only if it does.
                if lowers.is_empty() || lower.is_some() {
                    self.emit_whiteout(rel, &name)?;
                }
                continue;
            }
            // Most entries have no xattrs at all: one call says so, and saves asking for
            // each marker by name (and listing them again for the header).
            // A regular file is asked through its descriptor (opened relative to its
            // directory), which the tar writer then reads it from.
            if node.meta.file_type().is_file() {
                node.file = Some(open_entry(&node)?);
            }
            let has_any = match &node.file {
                Some(file) => has_xattrs(file.as_fd()),
                None => has_xattrs(node.path.as_path()),
            };
            node.no_xattrs = !has_any.map_err(|e| Error::io("read xattrs of", &node.path, e))?;
            for feature in ["metacopy", "redirect"] {
                if node.no_xattrs {
                    break;
                }
                let xattr = format!("{}{feature}", ns.prefix());
                let found = match &node.file {
                    Some(file) => read_xattr(file.as_fd(), xattr.as_bytes()),
                    None => read_xattr(node.path.as_path(), xattr.as_bytes()),
                };
                if found
                    .map_err(|e| Error::io("read xattrs of", &node.path, e))?
                    .is_some()
                {
                    return Err(Error::UnsupportedOverlayFeature {
                        path: node.path,
                        xattr,
                    });
                }
            }
            let unchanged = match &lower {
                Some(lower) => same_entry(lower, &node)?,
                None => false,
            };
            if !node.is_dir() {
                if lowers.is_empty() || !unchanged {
                    self.emit(&child, &node)?;
                }
                continue;
            }
            let opaque = !node.no_xattrs
                && read_xattr(node.path.as_path(), ns.opaque().as_bytes())
                    .map_err(|e| Error::io("read xattrs of", &node.path, e))?
                    .is_some_and(|v| v == b"y");
            let lower_is_dir = lower.as_ref().is_some_and(Node::is_dir);
            // An opaque directory hides its lower contents, so even a
            // directory with unchanged metadata must be written to carry
            // the marker.
            let hides_lower = opaque && (lowers.is_empty() || lower_is_dir);
            let write = lowers.is_empty() || hides_lower || !unchanged;
            if write {
                self.emit(&child, &node)?;
            }
            let path = node.path.clone();
            self.push(child.clone(), node, write);
            if hides_lower {
                let marker = join(&child, WHITEOUT_OPAQUE.as_bytes());
                self.emit_marker(&marker)?;
            }
            let visible = lower_visible && lower_is_dir && !opaque;
            self.walk_overlay(&path, &child, lowers, ns, visible)?;
            self.stack.pop();
        }
        Ok(())
    }
}

fn file_name(node: &Node) -> &[u8] {
    node.path.file_name().map_or(&[][..], |n| n.as_bytes())
}

/// What the merged lower layers hold at `rel`, honouring whiteouts and
/// opaque directories inside them.
fn lower_lookup(lowers: &[PathBuf], rel: &[u8], ns: OverlayXattr) -> Result<Option<Node>> {
    let components: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    for lower in lowers {
        // Walk the ancestors first: lstat of the full path would follow a
        // symlinked ancestor, and a whiteout, file or opaque directory on
        // the way changes what the merged view shows.
        let mut path = lower.clone();
        let mut opaque_above = false;
        let mut missing = false;
        for component in &components[..components.len() - 1] {
            path.push(std::ffi::OsStr::from_bytes(component));
            match lstat_opt(&path)? {
                None => {
                    missing = true;
                    break;
                }
                Some(meta) if !meta.is_dir() => return Ok(None),
                Some(_) => {
                    let opaque = read_xattr(path.as_path(), ns.opaque().as_bytes())
                        .map_err(|e| Error::io("read xattrs of", &path, e))?;
                    opaque_above |= opaque.is_some_and(|v| v == b"y");
                }
            }
        }
        if !missing {
            path.push(std::ffi::OsStr::from_bytes(
                components[components.len() - 1],
            ));
            if let Some(meta) = lstat_opt(&path)? {
                let node = Node {
                    path,
                    meta,
                    no_xattrs: false,
                    dir: None,
                    file: None,
                };
                return Ok((!node.is_whiteout()).then_some(node));
            }
        }
        if opaque_above {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Opens `node` for reading (never through a link): relative to its open directory when the walk
/// has it, by its path otherwise.
fn open_entry(node: &Node) -> Result<File> {
    let Some(dir) = &node.dir else {
        return open_nofollow(&node.path);
    };
    let fd = rustix::fs::openat(
        dir,
        node.path.file_name().unwrap_or_default(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", &node.path, e.into()))?;
    Ok(File::from(fd))
}

fn open_nofollow(path: &Path) -> Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", path, e.into()))?;
    Ok(File::from(fd))
}

/// Whether `new` is unchanged from `old` (see [`DiffSource::Directories`]).
fn same_entry(old: &Node, new: &Node) -> Result<bool> {
    let (a, b) = (&old.meta, &new.meta);
    if a.dev() == b.dev() && a.ino() == b.ino() {
        return Ok(true);
    }
    if a.mode() != b.mode() || a.uid() != b.uid() || a.gid() != b.gid() || a.rdev() != b.rdev() {
        return Ok(false);
    }
    let xattrs_old =
        read_xattrs(old.path.as_path()).map_err(|e| Error::io("read xattrs of", &old.path, e))?;
    let xattrs_new =
        read_xattrs(new.path.as_path()).map_err(|e| Error::io("read xattrs of", &new.path, e))?;
    if strip_overlay(xattrs_old) != strip_overlay(xattrs_new) {
        return Ok(false);
    }
    if a.is_dir() {
        return Ok(true);
    }
    if a.len() != b.len() || a.mtime() != b.mtime() || a.mtime_nsec() != b.mtime_nsec() {
        return Ok(false);
    }
    let file_type = a.file_type();
    if file_type.is_symlink() {
        let target =
            |n: &Node| fs::read_link(&n.path).map_err(|e| Error::io("read symlink", &n.path, e));
        return Ok(target(old)? == target(new)?);
    }
    if file_type.is_file() && a.mtime_nsec() == 0 && a.len() > 0 {
        return same_content(&old.path, &new.path);
    }
    Ok(true)
}

/// Overlay markers are bookkeeping, not content: a lower snapshot written in
/// overlay mode carries them, the upper copy of the directory does not.
fn strip_overlay(mut xattrs: Xattrs) -> Xattrs {
    xattrs.retain(|(name, _)| {
        !name.starts_with(OverlayXattr::Trusted.prefix().as_bytes())
            && !name.starts_with(OverlayXattr::User.prefix().as_bytes())
    });
    xattrs
}

fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let mut fa = io::BufReader::with_capacity(64 * 1024, open_nofollow(a)?);
    let mut fb = io::BufReader::with_capacity(64 * 1024, open_nofollow(b)?);
    let mut ba = [0u8; 16 * 1024];
    let mut bb = [0u8; 16 * 1024];
    loop {
        let na = read_full(&mut fa, &mut ba).map_err(|e| Error::io("read", a, e))?;
        let nb = read_full(&mut fb, &mut bb).map_err(|e| Error::io("read", b, e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
