//! Applying a layer tar to a directory, safely.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! relative to a descriptor of the root: symlinks met on the way (such as
//! `lib -> usr/lib`, or a hostile `evil -> /`) are followed as if the root
//! were `/`, so nothing outside it can be reached, and the final component is
//! always operated on with `*at` calls that do not follow it (`O_NOFOLLOW`,
//! `O_EXCL`, `AT_SYMLINK_NOFOLLOW`). Entry names with a `..` component are
//! refused outright; a leading `/` means the root, as with docker.
//! Requires Linux 5.6 or later (`openat2`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::compress::{Compression, HashingReader, decompressing_reader};
use crate::error::{Error, Result};
use crate::extents::Extents;
use crate::tarread::{EntryKind, TarEntry, TarReader};
use crate::whiteout::{OverlayXattr, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};

mod options;
pub use options::{ApplyOptions, ApplyStats, ApplyWarning, WhiteoutMode};

/// Applies a layer (plain, gzip or zstd tar; recognised by its magic bytes)
/// to the existing directory `root`.
///
/// A hostile layer cannot create or change anything outside `root`: see the
/// module documentation for how paths are resolved. Entries are applied with
/// docker's semantics: an existing entry is replaced unless both are
/// directories (then metadata is updated and contents merge), missing parent
/// directories are created with mode 0755, and directory modes and mtimes
/// are set after all entries so that adding children does not disturb them.
pub fn apply_layer<R: Read>(reader: R, root: &Path, options: &ApplyOptions) -> Result<ApplyStats> {
    apply_stream(reader, root, options, None)
}

/// Applies the layer tar [`write_tar`](crate::write_tar) writes of `source` with
/// `tar_options`, as [`apply_layer`] applies it, without the tar ever being stored: it goes
/// from the writer (on a thread of its own) to the apply as it is written. The stats are the
/// tar's: its `diff_id` is what the tar hashes to.
pub fn apply_diff(
    source: &crate::DiffSource<'_>,
    tar_options: &crate::TarOptions,
    root: &Path,
    options: &ApplyOptions,
) -> Result<ApplyStats> {
    crate::pipe::apply_piped(
        |out| crate::write_tar(source, tar_options, out),
        |tar| apply_stream(tar, root, options, None),
    )
}

/// [`apply_layer`], with regular files' bytes left in the layer when `deferral` is given and
/// the stream is a plain tar (see [`LazyRootfs`](crate::LazyRootfs)). A deferred apply does not hash the stream:
/// its caller trusts the blob, and the stats' digests are left empty.
pub(crate) fn apply_stream<R: Read>(
    reader: R,
    root: &Path,
    options: &ApplyOptions,
    deferral: Option<Deferral<'_>>,
) -> Result<ApplyStats> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open layer target directory", root, e.into()))?;
    let input = |source| Error::Input { source };
    let hash = deferral.is_none();
    let mut raw = if hash {
        HashingReader::new(reader)
    } else {
        HashingReader::counting(reader)
    };
    let (compression, decoded) = decompressing_reader(&mut raw).map_err(input)?;
    // A plain tar is its own blob: its diff ID is its digest, and hashing it
    // twice would double the cost of applying it.
    let mut tar_in = if hash && compression != Compression::None {
        HashingReader::new(decoded)
    } else {
        HashingReader::counting(decoded)
    };
    let mut applier = Applier {
        root: root_fd,
        options: *options,
        // Only a plain tar's stream offsets are offsets in the blob.
        deferral: deferral.map(|deferral| Deferral {
            plain: compression == Compression::None,
            ..deferral
        }),
        cache: None,
        unpacked: HashSet::new(),
        dirs: Vec::new(),
        buf: vec![0; 256 * 1024],
        stats: ApplyStats {
            compression,
            digest: String::new(),
            size: 0,
            diff_id: String::new(),
            uncompressed_size: 0,
            entries: 0,
            whiteouts: 0,
            opaque_dirs: 0,
            warnings: Vec::new(),
        },
    };
    let mut tar = TarReader::new(&mut tar_in);
    while let Some(entry) = tar.next_entry().map_err(input)? {
        let offset = tar.position();
        applier.entry(entry, offset, &mut tar)?;
    }
    applier.finish_dirs()?;
    let mut stats = applier.stats;
    let (diff_id, uncompressed_size) = tar_in.drain_and_finish().map_err(input)?;
    let (digest, size) = raw.drain_and_finish().map_err(input)?;
    let digest = digest.unwrap_or_default();
    stats.diff_id = diff_id.unwrap_or_else(|| digest.clone());
    stats.uncompressed_size = uncompressed_size;
    (stats.digest, stats.size) = (digest, size);
    Ok(stats)
}

/// What [`Applier::make_room`] found at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Nothing, or something that was removed.
    Free,
    /// An overlay whiteout, removed.
    ReplacedWhiteout,
    /// A directory, kept because the new entry is one too.
    KeptDirectory,
}

/// A directory whose mode and times are set once the layer is applied.
struct DeferredDir {
    rel: Vec<u8>,
    mode: u32,
    times: Timestamps,
}

/// Ownership, permissions, times and xattrs of an entry.
struct Meta {
    mode: u32,
    uid: Uid,
    gid: Gid,
    times: Timestamps,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A deferred apply's bookkeeping: where regular files' bytes are left.
pub(crate) struct Deferral<'d> {
    /// Records the files.
    pub(crate) extents: &'d mut Extents,
    /// The layer's index in `extents`.
    pub(crate) layer: usize,
    /// Whether the stream is a plain tar; only then are bytes left in it.
    pub(crate) plain: bool,
    /// Whether the layer is a snapshot directory's hollow tar
    /// ([`write_hollow_tar`](crate::write::write_hollow_tar)): a file's bytes are then those
    /// of the file at its entry's path in the snapshot, not in the stream.
    pub(crate) snapshot: bool,
}

struct Applier<'d> {
    root: OwnedFd,
    options: ApplyOptions,
    deferral: Option<Deferral<'d>>,
    /// The last parent directory resolved, by relative path. Entries are
    /// grouped by directory, so this saves most path walks; it is dropped
    /// whenever anything is removed, since a removal can change what a path
    /// resolves to.
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Every path this layer created, for opaque markers (which must spare them).
    unpacked: HashSet<Vec<u8>>,
    dirs: Vec<DeferredDir>,
    buf: Vec<u8>,
    stats: ApplyStats,
}

/// Splits an entry name into components: empty and `.` components vanish
/// (so a leading `/` or `./` means the root), `..` is refused.
fn components<'n>(entry: &[u8], name: &'n [u8]) -> Result<Vec<&'n [u8]>> {
    if name.contains(&0) {
        return Err(Error::unsafe_entry(entry, "the name contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(Error::unsafe_entry(
                    entry,
                    "a `..` path component could escape the target directory",
                ));
            }
            _ => parts.push(part),
        }
    }
    Ok(parts)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn timestamps(secs: i64, nanos: u32) -> Timestamps {
    let ts = Timespec {
        tv_sec: secs,
        tv_nsec: i64::from(nanos),
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

/// Ownership, mode, times and xattrs of an entry, checked for the kernel.
fn meta(entry: &TarEntry) -> Result<Meta> {
    let id = |v: u64| {
        // -1 means "unchanged" to chown, never a real owner.
        u32::try_from(v)
            .ok()
            .filter(|&v| v != u32::MAX)
            .ok_or_else(|| {
                Error::unsafe_entry(&entry.path, format!("owner id {v} is out of range"))
            })
    };
    let xattrs = entry
        .xattrs
        .iter()
        .filter(|(name, _)| !name.is_empty() && !name.contains(&0))
        .cloned()
        .collect();
    Ok(Meta {
        mode: entry.mode,
        uid: Uid::from_raw(id(entry.uid)?),
        gid: Gid::from_raw(id(entry.gid)?),
        times: timestamps(entry.mtime.0, entry.mtime.1),
        xattrs,
    })
}

fn is_permission_like(errno: Errno) -> bool {
    matches!(errno, Errno::PERM | Errno::ACCESS | Errno::NOTSUP)
}

impl Applier<'_> {
    fn open_dir(&self, rel: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let path: &[u8] = if rel.is_empty() { b"." } else { rel };
        let mut attempts = 0;
        loop {
            match rustix::fs::openat2(
                &self.root,
                path,
                flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                // The kernel asks for a retry when a rename elsewhere raced
                // the lookup; bounded, so a busy renamer cannot spin us forever.
                Err(Errno::AGAIN | Errno::INTR) if attempts < 64 => attempts += 1,
                result => return result,
            }
        }
    }

    /// The directory `parts` (as an `O_PATH` descriptor), creating missing
    /// directories with mode 0755.
    fn ensure_dir(&mut self, entry: &[u8], parts: &[&[u8]]) -> Result<Rc<OwnedFd>> {
        let rel = parts.join(&b'/');
        if let Some((cached, fd)) = &self.cache
            && *cached == rel
        {
            return Ok(Rc::clone(fd));
        }
        let fd = match self.open_dir(&rel, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if !parts.is_empty() => {
                let (last, above) = parts.split_last().expect("not empty");
                let parent = self.ensure_dir(entry, above)?;
                match rustix::fs::mkdirat(&*parent, *last, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(Error::apply(entry, "create parent directory", e)),
                }
                self.unpacked.insert(rel.clone());
                self.open_dir(&rel, OFlags::PATH).map_err(|e| {
                    // mkdir said EEXIST but the path does not resolve to a
                    // directory: a dangling symlink is in the way.
                    Error::apply(entry, "open parent directory (dangling symlink?)", e)
                })?
            }
            Err(e) => return Err(Error::apply(entry, "open parent directory", e)),
        };
        let fd = Rc::new(fd);
        self.cache = Some((rel, Rc::clone(&fd)));
        Ok(fd)
    }

    fn warn(&mut self, warning: ApplyWarning) {
        self.stats.warnings.push(warning);
    }

    /// Applies one entry; `offset` is where its data starts in the stream.
    fn entry(&mut self, entry: TarEntry, offset: u64, data: &mut dyn Read) -> Result<()> {
        let name = entry.path.as_slice();
        if entry.kind == EntryKind::GlobalHeader {
            self.warn(ApplyWarning::EntrySkipped {
                entry: lossy(name),
                reason: "PAX global header".into(),
            });
            return Ok(());
        }
        let parts = components(name, name)?;
        self.stats.entries += 1;

        if let Some(base) = parts.last()
            && let Some(target) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes())
        {
            let dir = &parts[..parts.len() - 1];
            if *base == WHITEOUT_OPAQUE.as_bytes() {
                return self.opaque(name, dir);
            }
            if base.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
                self.warn(ApplyWarning::EntrySkipped {
                    entry: lossy(name),
                    reason: "AUFS whiteout metadata".into(),
                });
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(Error::unsafe_entry(name, "whiteout of an invalid name"));
            }
            return self.whiteout(name, dir, target);
        }

        let meta = meta(&entry)?;
        let Some((base, dir)) = parts.split_last() else {
            if entry.kind == EntryKind::Directory {
                return self.root_dir(name, meta);
            }
            return Err(Error::unsafe_entry(
                name,
                "a non-directory entry names the target root",
            ));
        };
        let parent = self.ensure_dir(name, dir)?;
        let rel = parts.join(&b'/');
        let link = || {
            entry
                .link
                .as_deref()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| Error::unsafe_entry(name, "link without a target"))
        };
        match entry.kind {
            EntryKind::Directory => self.directory(name, &parent, base, rel.clone(), meta)?,
            EntryKind::Regular => {
                let extent = (offset, entry.size);
                self.regular(name, &parent, base, meta, extent, data)?;
            }
            EntryKind::Symlink => self.symlink(name, &parent, base, link()?, meta)?,
            EntryKind::Hardlink => self.hardlink(name, &parent, base, link()?)?,
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                let file_type = match entry.kind {
                    EntryKind::CharDevice => FileType::CharacterDevice,
                    EntryKind::BlockDevice => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let (major, minor) = entry.device;
                if !self.node(name, &parent, base, file_type, major, minor, meta)? {
                    return Ok(());
                }
            }
            EntryKind::GlobalHeader | EntryKind::Other(_) => {
                return Err(Error::UnsupportedEntryType {
                    entry: lossy(name),
                    kind: char::from(entry.type_flag),
                });
            }
        }
        self.unpacked.insert(rel);
        Ok(())
    }

    /// Makes room for a new entry `name` in `parent`: removes what is there,
    /// unless both are directories.
    fn make_room(
        &mut self,
        entry: &[u8],
        parent: &OwnedFd,
        name: &[u8],
        is_dir: bool,
    ) -> Result<Room> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                let file_type = FileType::from_raw_mode(stat.st_mode);
                if is_dir && file_type == FileType::Directory {
                    return Ok(Room::KeptDirectory);
                }
                self.cache = None;
                remove_all_at(parent.as_fd(), name)
                    .map_err(|e| Error::apply(entry, "replace existing entry", e))?;
                if file_type == FileType::CharacterDevice && stat.st_rdev == 0 {
                    Ok(Room::ReplacedWhiteout)
                } else {
                    Ok(Room::Free)
                }
            }
            Err(Errno::NOENT) => Ok(Room::Free),
            Err(e) => Err(Error::apply(entry, "inspect existing entry", e)),
        }
    }

    fn chown_fd(&self, entry: &[u8], fd: BorrowedFd<'_>, meta: &Meta) -> Result<()> {
        if self.options.chown {
            rustix::fs::fchown(fd, Some(meta.uid), Some(meta.gid))
                .map_err(|e| Error::set_owner(entry, meta.uid, meta.gid, e))?;
        }
        Ok(())
    }

    fn directory(
        &mut self,
        entry: &[u8],
        parent: &OwnedFd,
        name: &[u8],
        rel: Vec<u8>,
        meta: Meta,
    ) -> Result<()> {
        let room = self.make_room(entry, parent, name, true)?;
        let kept = room == Room::KeptDirectory;
        if !kept {
            // Created private; the real mode is set at the end, after the
            // children (a read-only directory would refuse them otherwise).
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(|e| Error::apply(entry, "create directory", e))?;
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::apply(entry, "open directory", e))?;
        if kept {
            remove_stale_xattrs(entry, fd.as_fd(), &meta.xattrs)?;
        }
        if let (Room::ReplacedWhiteout, WhiteoutMode::Overlay(ns)) = (room, self.options.whiteouts)
        {
            // The layer deleted this name and then created a directory
            // there: in an overlay stack, that directory must hide the
            // lower one's contents, as the deletion did.
            rustix::fs::fsetxattr(&fd, ns.opaque(), b"y", XattrFlags::empty())
                .map_err(|e| Error::apply(entry, "set overlay opaque xattr", e))?;
        }
        self.chown_fd(entry, fd.as_fd(), &meta)?;
        self.set_xattrs(entry, XattrTarget::Fd(fd.as_fd()), &meta.xattrs)?;
        self.dirs.push(DeferredDir {
            rel,
            mode: meta.mode,
            times: meta.times,
        });
        Ok(())
    }

    /// A `./` entry: metadata for the root itself.
    fn root_dir(&mut self, entry: &[u8], meta: Meta) -> Result<()> {
        let fd = self
            .open_dir(b"", OFlags::RDONLY)
            .map_err(|e| Error::apply(entry, "open target root", e))?;
        self.chown_fd(entry, fd.as_fd(), &meta)?;
        self.set_xattrs(entry, XattrTarget::Fd(fd.as_fd()), &meta.xattrs)?;
        self.dirs.push(DeferredDir {
            rel: Vec::new(),
            mode: meta.mode,
            times: meta.times,
        });
        Ok(())
    }

    /// Creates a regular file whose data is the `(offset, length)` extent of the stream,
    /// read from `data`.
    fn regular(
        &mut self,
        entry: &[u8],
        parent: &OwnedFd,
        name: &[u8],
        meta: Meta,
        (offset, length): (u64, u64),
        data: &mut dyn Read,
    ) -> Result<()> {
        self.make_room(entry, parent, name, false)?;
        // O_EXCL|O_NOFOLLOW: never write through whatever might be there.
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::apply(entry, "create file", e))?;
        let mut file = File::from(fd);
        match &mut self.deferral {
            Some(deferral) if deferral.plain => {
                // The right size, no bytes: a sparse file, which costs no writes.
                file.set_len(length)
                    .map_err(|e| Error::apply(entry, "size file", e))?;
                match deferral.snapshot {
                    true => {
                        deferral
                            .extents
                            .defer_to_snapshot(&file, deferral.layer, entry, length)
                    }
                    false => deferral
                        .extents
                        .defer(&file, deferral.layer, offset, length),
                }
                .map_err(|e| Error::apply(entry, "inspect file", e))?;
            }
            deferral => {
                loop {
                    let n = match data.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(source) => return Err(Error::Input { source }),
                    };
                    file.write_all(&self.buf[..n])
                        .map_err(|e| Error::apply(entry, "write file", e))?;
                }
                if let Some(deferral) = deferral {
                    deferral
                        .extents
                        .forget(&file)
                        .map_err(|e| Error::apply(entry, "inspect file", e))?;
                }
            }
        }
        // Order matters: chown clears setuid/setgid bits and file
        // capabilities, so mode and xattrs come after it.
        self.chown_fd(entry, file.as_fd(), &meta)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
            .map_err(|e| Error::apply(entry, "set mode", e))?;
        self.set_xattrs(entry, XattrTarget::Fd(file.as_fd()), &meta.xattrs)?;
        rustix::fs::futimens(&file, &meta.times)
            .map_err(|e| Error::apply(entry, "set times", e))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        entry: &[u8],
        parent: &OwnedFd,
        name: &[u8],
        target: &[u8],
        meta: Meta,
    ) -> Result<()> {
        self.make_room(entry, parent, name, false)?;
        // Any target is fine to store: it is never followed out of the root,
        // because every later lookup is confined by RESOLVE_IN_ROOT.
        rustix::fs::symlinkat(target, parent, name)
            .map_err(|e| Error::apply(entry, "create symlink", e))?;
        self.chown_at(entry, parent, name, &meta)?;
        self.set_xattrs(entry, XattrTarget::At(parent.as_fd(), name), &meta.xattrs)?;
        rustix::fs::utimensat(parent, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::apply(entry, "set times", e))
    }

    /// Gives the entry `name` in `parent` (not followed if a link) the entry's owner, when
    /// the applier sets owners.
    fn chown_at(&self, entry: &[u8], parent: &OwnedFd, name: &[u8], meta: &Meta) -> Result<()> {
        if !self.options.chown {
            return Ok(());
        }
        rustix::fs::chownat(
            parent,
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::set_owner(entry, meta.uid, meta.gid, e))
    }

    fn hardlink(
        &mut self,
        entry: &[u8],
        parent: &OwnedFd,
        name: &[u8],
        target: &[u8],
    ) -> Result<()> {
        let target_parts = components(entry, target)?;
        let Some((target_name, target_dir)) = target_parts.split_last() else {
            return Err(Error::unsafe_entry(entry, "hardlink to the target root"));
        };
        let not_found = |e| Error::apply(entry, "find hardlink target", e);
        let target_parent = self
            .open_dir(&target_dir.join(&b'/'), OFlags::PATH)
            .map_err(not_found)?;
        let target_stat =
            rustix::fs::statat(&target_parent, *target_name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(not_found)?;
        if let Ok(existing) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            && existing.st_dev == target_stat.st_dev
            && existing.st_ino == target_stat.st_ino
        {
            // Already the same file; removing it first would destroy the target.
            return Ok(());
        }
        self.make_room(entry, parent, name, false)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        rustix::fs::linkat(&target_parent, *target_name, parent, name, AtFlags::empty())
            .map_err(|e| Error::apply(entry, "create hardlink", e))
    }

    /// Creates a device node or fifo. Returns false if it was skipped.
    #[allow(clippy::too_many_arguments)] // Each is one field of the node.
    fn node(
        &mut self,
        entry: &[u8],
        parent: &OwnedFd,
        name: &[u8],
        file_type: FileType,
        major: u32,
        minor: u32,
        meta: Meta,
    ) -> Result<bool> {
        self.make_room(entry, parent, name, false)?;
        let dev = rustix::fs::makedev(major, minor);
        match rustix::fs::mknodat(parent, name, file_type, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => {}
            Err(e) if file_type != FileType::Fifo && is_permission_like(e) => {
                self.warn(ApplyWarning::DeviceSkipped {
                    entry: lossy(entry),
                    reason: io::Error::from(e).to_string(),
                });
                return Ok(false);
            }
            Err(e) => return Err(Error::apply(entry, "create device node", e)),
        }
        self.chown_at(entry, parent, name, &meta)?;
        // Not a symlink (just created), so following is harmless here.
        rustix::fs::chmodat(
            parent,
            name,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(|e| Error::apply(entry, "set mode", e))?;
        self.set_xattrs(entry, XattrTarget::At(parent.as_fd(), name), &meta.xattrs)?;
        rustix::fs::utimensat(parent, name, &meta.times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::apply(entry, "set times", e))?;
        Ok(true)
    }

    fn whiteout(&mut self, entry: &[u8], dir: &[&[u8]], target: &[u8]) -> Result<()> {
        self.stats.whiteouts += 1;
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                let parent = match self.open_dir(&dir.join(&b'/'), OFlags::PATH) {
                    Ok(fd) => fd,
                    // No parent (or a symlink loop in the way): nothing to delete.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(()),
                    Err(e) => return Err(Error::apply(entry, "open whiteout directory", e)),
                };
                self.cache = None;
                remove_all_at(parent.as_fd(), target)
                    .map_err(|e| Error::apply(entry, "delete whited-out entry", e))
            }
            WhiteoutMode::Overlay(_) => {
                let parent = self.ensure_dir(entry, dir)?;
                self.make_room(entry, &parent, target, false)?;
                rustix::fs::mknodat(
                    &*parent,
                    target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    0,
                )
                .map_err(|e| Error::apply(entry, "create overlay whiteout device", e))?;
                let mut rel = dir.join(&b'/');
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(target);
                self.unpacked.insert(rel);
                Ok(())
            }
        }
    }

    fn opaque(&mut self, entry: &[u8], dir: &[&[u8]]) -> Result<()> {
        self.stats.opaque_dirs += 1;
        let rel = dir.join(&b'/');
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                // NOFOLLOW: a symlink named like the directory is not
                // emptied through (docker's walk does not descend it either).
                let fd = match self.open_dir(&rel, OFlags::RDONLY | OFlags::NOFOLLOW) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(()),
                    Err(e) => return Err(Error::apply(entry, "open opaque directory", e)),
                };
                self.cache = None;
                remove_not_unpacked(fd, &rel, &self.unpacked)
                    .map_err(|e| Error::apply(entry, "empty opaque directory", e))
            }
            WhiteoutMode::Overlay(ns) => {
                self.ensure_dir(entry, dir)?;
                let fd = self
                    .open_dir(&rel, OFlags::RDONLY)
                    .map_err(|e| Error::apply(entry, "open opaque directory", e))?;
                rustix::fs::fsetxattr(&fd, ns.opaque(), b"y", XattrFlags::empty())
                    .map_err(|e| Error::apply(entry, "set overlay opaque xattr", e))
            }
        }
    }

    fn set_xattrs(
        &mut self,
        entry: &[u8],
        target: XattrTarget<'_>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<()> {
        for (name, value) in xattrs {
            if name.starts_with(OverlayXattr::Trusted.prefix().as_bytes())
                || name.starts_with(OverlayXattr::User.prefix().as_bytes())
            {
                self.warn(ApplyWarning::XattrSkipped {
                    entry: lossy(entry),
                    name: lossy(name),
                    reason: "overlayfs-private attribute".into(),
                });
                continue;
            }
            let result = match target {
                XattrTarget::Fd(fd) => {
                    rustix::fs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty())
                }
                XattrTarget::At(parent, file) => {
                    // There is no setxattrat before Linux 6.13; going through
                    // the parent's /proc/self/fd entry reaches the node
                    // without following it (l-variant) and without any
                    // other path lookup.
                    let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
                    path.extend_from_slice(file);
                    rustix::fs::lsetxattr(
                        path.as_slice(),
                        name.as_slice(),
                        value,
                        XattrFlags::empty(),
                    )
                }
            };
            match result {
                Ok(()) => {}
                Err(e) if is_permission_like(e) => self.warn(ApplyWarning::XattrSkipped {
                    entry: lossy(entry),
                    name: lossy(name),
                    reason: io::Error::from(e).to_string(),
                }),
                Err(e) => return Err(Error::apply(entry, "set xattr", e)),
            }
        }
        Ok(())
    }

    /// Sets directory modes and times, children before parents (a parent
    /// losing its `x` bit must not block reaching its children), and only the
    /// last entry for a directory listed twice.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut seen = HashSet::new();
        let dirs = std::mem::take(&mut self.dirs);
        for dir in dirs.iter().rev() {
            if !seen.insert(dir.rel.as_slice()) {
                continue;
            }
            let fd = match self.open_dir(&dir.rel, OFlags::RDONLY | OFlags::NOFOLLOW) {
                Ok(fd) => fd,
                // Replaced or deleted by a later entry of the layer.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(Error::apply(&dir.rel, "reopen directory", e)),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(dir.mode))
                .map_err(|e| Error::apply(&dir.rel, "set mode", e))?;
            rustix::fs::futimens(&fd, &dir.times)
                .map_err(|e| Error::apply(&dir.rel, "set times", e))?;
        }
        Ok(())
    }
}

mod removal;
use removal::{XattrTarget, remove_all_at, remove_not_unpacked, remove_stale_xattrs};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_dotdot_and_strip_root() {
        assert_eq!(components(b"x", b"/a/./b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(components(b"x", b"./").unwrap().is_empty());
        assert!(components(b"x", b"a/../b").is_err());
        assert!(components(b"x", b"a\0b").is_err());
    }
}
