//! Writing a [`CopyPlan`] into a layer directory: every entry made through a descriptor of its
//! parent (never through a link), owners and times as BuildKit sets them, and unchanged files
//! of an earlier result linked instead of copied (an incremental `COPY`).

use super::*;
use std::os::unix::fs::MetadataExt;

/// Gives the entry `name` of `dir` to `uid:gid` (the entry itself, never a link's target).
fn chown_entry(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), CopyError> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(owner_failed(path, uid, gid))
}

/// Who owns a file this process creates in a directory, and which permission bits the
/// creation masks: what [`finish_file`] need not change.
#[derive(Clone, Copy)]
struct Creation {
    /// The owner a new file gets: this process's, or the directory's group when it is setgid.
    owner: (u32, u32),
    /// The process's umask (`None`: unknown, so the mode is always set afterwards).
    umask: Option<u32>,
}

impl Creation {
    /// What a file created in `dir` gets (one `fstat` of the directory).
    fn in_dir(dir: &OwnedFd, path: &Path) -> Result<Self, CopyError> {
        let stat = rustix::fs::fstat(dir).map_err(errno_at(path))?;
        let gid = if stat.st_mode & 0o2000 != 0 {
            stat.st_gid
        } else {
            rustix::process::getegid().as_raw()
        };
        Ok(Creation {
            owner: (rustix::process::geteuid().as_raw(), gid),
            umask: process_umask(),
        })
    }
}

/// The process's umask, read once from `/proc/self/status`: the only way to read it without
/// setting it, which would race the other threads' file creations.
fn process_umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

/// Creates the regular file `name` in `dir` (it must not exist) with `data`'s content (an
/// open source file or bytes), owned by `uid:gid`, with `mode`. Returns the new file.
///
/// Generic rather than `&mut dyn Read` on purpose: `io::copy` only sees that both ends are
/// files, and copies with `copy_file_range` (in the kernel, no buffer in between; a reflink on
/// file systems that have them), when it knows the reader's type.
fn create_file<R: io::Read>(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    data: &mut R,
    attributes: (u32, u32, u32),
    creation: Creation,
) -> Result<fs::File, CopyError> {
    let mut file = create_exclusive(dir, name, path, attributes.2)?;
    // `io::copy` between files uses copy_file_range: the data stays in the kernel.
    io::copy(data, &mut file).map_err(io_error(path))?;
    finish_file(file, path, attributes, creation)
}

/// Creates `name` in `dir` for writing: it must not exist, and a link in its place is not
/// followed. Created with `mode`'s permission bits (the umask applies; setuid, setgid and
/// sticky come from [`finish_file`], after the owner). The directory is the step's own, which
/// nobody else reads while the step runs.
fn create_exclusive(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    mode: u32,
) -> Result<fs::File, CopyError> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o777),
    )
    .map_err(errno_at(path))?;
    Ok(fs::File::from(fd))
}

/// Gives a new file (made by [`create_exclusive`] in a directory `creation` describes) its
/// owner, then its mode (changing owners clears setuid and setgid), each only when its
/// creation did not already: two system calls a file fewer in the common case.
fn finish_file(
    file: fs::File,
    path: &Path,
    (uid, gid, mode): (u32, u32, u32),
    creation: Creation,
) -> Result<fs::File, CopyError> {
    if (uid, gid) != creation.owner {
        rustix::fs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(owner_failed(path, uid, gid))?;
    }
    let created_as_is = mode & 0o7000 == 0 && creation.umask.is_some_and(|umask| mode & umask == 0);
    if !created_as_is {
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(errno_at(path))?;
    }
    Ok(file)
}

/// [`create_file`] for a regular file of `size` bytes (its size when the plan was made, which
/// its content digest is of): `copy_file_range` calls until `size` bytes are copied (most
/// files take one call, where `io::copy` takes a second one to see the end), and `io::copy`
/// for the rest when that falls short.
fn copy_regular_file(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    mut from: fs::File,
    size: u64,
    attributes: (u32, u32, u32),
    creation: Creation,
) -> Result<fs::File, CopyError> {
    let mut file = create_exclusive(dir, name, path, attributes.2)?;
    let mut copied = 0u64;
    while copied < size {
        let want = usize::try_from(size - copied)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(&from, None, &file, None, want) {
            Ok(0) | Err(_) => break,
            Ok(n) => copied += n as u64,
        }
    }
    if copied < size {
        // Both offsets moved with the copy: `io::copy` goes on from there (a file system
        // without copy_file_range, or a file that shrank: it ends where the file does).
        io::copy(&mut from, &mut file).map_err(io_error(path))?;
    }
    finish_file(file, path, attributes, creation)
}

/// The access and modification times of `metadata`, to give a copy.
fn source_times(metadata: &Stat) -> rustix::fs::Timestamps {
    let timespec = |time: stagecraft_imagefs::FileTime| rustix::fs::Timespec {
        tv_sec: time.seconds,
        tv_nsec: time.nanoseconds.into(),
    };
    rustix::fs::Timestamps {
        last_access: timespec(metadata.accessed),
        last_modification: timespec(metadata.modified),
    }
}

impl CopyPlan<'_> {
    /// Writes the entries into `upper` (an empty layer directory). Parent directories that
    /// exist in `dest_view` are recreated with their attributes; missing ones are made `0755`
    /// and owned by the `--chown` user (root otherwise).
    ///
    /// Every entry is made through a descriptor of its parent directory, reached from `upper`
    /// without following any link: a link an earlier source put in the layer (`a -> /etc`)
    /// is replaced by a directory when a later entry needs `a/`, never written through.
    pub(crate) fn write(&self, upper: &Path, dest_view: &MergedView) -> Result<(), CopyError> {
        self.write_reusing(upper, dest_view, None).map(drop)
    }

    /// [`write`](Self::write), except that a regular file `previous` lists as unchanged, and
    /// which its snapshot holds with the very attributes the copy would give (type, size,
    /// mode, owner, modification time), is hard-linked from there instead of copied: the
    /// result is the same tree, and the layer tar the same bytes. Returns the linked files:
    /// their path in the layer (relative, as in a tar) and their metadata.
    pub(crate) fn write_reusing(
        &self,
        upper: &Path,
        dest_view: &MergedView,
        previous: Option<&PreviousCopy>,
    ) -> Result<Vec<(Vec<u8>, fs::Metadata)>, CopyError> {
        // In an empty directory, a name only exists once an entry of this copy made it: the
        // rest need no look for something to replace. (An unpacked archive makes names this
        // loop does not see, after which every name is looked for.)
        let empty = fs::read_dir(upper)
            .map_err(io_error(upper))?
            .next()
            .is_none();
        let parent_owner = self.owner.unwrap_or(Owner { uid: 0, gid: 0 });
        for dir in &self.dest_dirs {
            ensure_dir(upper, dir, dest_view, parent_owner)?;
        }
        let Some((head, split)) = self.independent_halves().filter(|_| empty) else {
            return self.write_items(&self.items, upper, dest_view, previous, empty);
        };
        // The directories above the halves first, then two halves that share no path: one per
        // core, each in its own order. The result is the same tree (the layer tar is written
        // from it, in name order, afterwards). Linking an earlier result's files is as much
        // the directories' work as copying is: it splits as well.
        let (head, rest) = self.items.split_at(head);
        let mut linked = self.write_items(head, upper, dest_view, previous, true)?;
        let (first, second) = rest.split_at(split - head.len());
        let (first, second) = rayon::join(
            || self.write_items(first, upper, dest_view, previous, true),
            || self.write_items(second, upper, dest_view, previous, true),
        );
        linked.extend(first?);
        linked.extend(second?);
        Ok(linked)
    }

    /// Where the items split into two halves of about the same length that touch no path
    /// in common, so that they can be written side by side: `(head, split)`, where
    /// `items[..head]` are the directories both halves are in (written first, on their own),
    /// and `items[head..split]` and `items[split..]` the halves. Every item is an entry below
    /// the one destination directory (made before); the halves divide the first directory
    /// below it that holds more than one name (`COPY src/ ./` of `src/app/mod*/…` divides
    /// `app/`), and no name directly in that directory has items in both halves. `None` for
    /// a small copy, or one that does not split so.
    pub(super) fn independent_halves(&self) -> Option<(usize, usize)> {
        /// Below this many entries a second thread costs more than it saves.
        const MIN_ITEMS: usize = 1024;
        let [dest] = self.dest_dirs.as_slice() else {
            return None;
        };
        if self.items.len() < MIN_ITEMS {
            return None;
        }
        let paths: Vec<&Path> = self
            .items
            .iter()
            .map(|item| match item {
                Item::Entry { dest: path, .. } => Some(path.as_path()),
                Item::Data { .. } | Item::Archive { .. } => None,
            })
            .collect::<Option<_>>()?;
        // The directory the halves divide, and the number of items that make it and its
        // parents below `dest` (the head).
        let mut divided = dest.clone();
        let mut head = 0;
        let top_names = loop {
            // The name directly in `divided` that each item after the head is at or below.
            let top_names: Vec<&OsStr> = paths[head..]
                .iter()
                .map(|path| {
                    path.strip_prefix(&divided)
                        .ok()
                        .and_then(|rel| rel.iter().next())
                })
                .collect::<Option<_>>()?;
            let only = top_names[0];
            if top_names.iter().any(|name| *name != only) {
                break top_names;
            }
            // Every item is at or below one directory: the items that are it go first, and
            // the halves divide what is below it.
            divided.push(only);
            while paths.get(head) == Some(&divided.as_path()) {
                head += 1;
            }
            if head == paths.len() {
                return None;
            }
        };
        // The first item of the second half: the first from the middle on that starts a
        // new name.
        let middle = (paths.len() - head) / 2;
        let split = (middle.max(1)..top_names.len()).find(|&i| top_names[i] != top_names[i - 1])?;
        let first: std::collections::HashSet<&OsStr> = top_names[..split].iter().copied().collect();
        top_names[split..]
            .iter()
            .all(|name| !first.contains(name))
            .then_some((head, head + split))
    }

    /// Writes `items` in order (see [`write_reusing`](Self::write_reusing)); `empty`: no entry
    /// of the items' paths exists yet, but the ones an earlier item makes.
    fn write_items(
        &self,
        items: &[Item],
        upper: &Path,
        dest_view: &MergedView,
        previous: Option<&PreviousCopy>,
        empty: bool,
    ) -> Result<Vec<(Vec<u8>, fs::Metadata)>, CopyError> {
        let mut linked = Vec::new();
        let mut made: Option<std::collections::HashSet<&Path>> =
            empty.then(std::collections::HashSet::new);
        let parent_owner = self.owner.unwrap_or(Owner { uid: 0, gid: 0 });
        // Files of one directory come together: its parent is reached (a few system calls per
        // path component) once for them, not once per file.
        // With it, what a file created in it gets.
        let mut parent: Option<(PathBuf, OwnedFd, Creation)> = None;
        // The same for the earlier snapshot's directory (`None` in it: no such directory).
        let mut old_parent: Option<(PathBuf, Option<OldDir>)> = None;
        for item in items {
            if let Item::Archive { found, dest } = item {
                ensure_dir(upper, dest, dest_view, parent_owner)?;
                let target = upper.join(dest.strip_prefix("/").unwrap_or(dest));
                let file = found.open().map_err(found_error(found))?;
                stagecraft_layer::apply_layer(
                    io::BufReader::new(file),
                    &target,
                    &stagecraft_layer::ApplyOptions::default(),
                )
                .map_err(|e| CopyError::Io {
                    path: found.real_path(),
                    source: io::Error::other(e.to_string()),
                })?;
                made = None;
                continue;
            }
            let dest = match item {
                Item::Entry { dest, .. } | Item::Data { dest, .. } | Item::Archive { dest, .. } => {
                    dest
                }
            };
            let (Some(dest_parent), Some(name)) = (dest.parent(), dest.file_name()) else {
                continue;
            };
            let dir = match parent.take() {
                Some((path, fd, creation)) if path == dest_parent => (path, fd, creation),
                _ => {
                    let fd = ensure_dir(upper, dest_parent, dest_view, parent_owner)?;
                    let creation = Creation::in_dir(&fd, dest_parent)?;
                    (dest_parent.to_owned(), fd, creation)
                }
            };
            let (_, dir_fd, creation) = parent.insert(dir);
            let (dir_fd, creation) = (&*dir_fd, *creation);
            let target = upper.join(dest.strip_prefix("/").unwrap_or(dest));
            // The first entry at this name in an empty directory: nothing there yet.
            let first = made
                .as_mut()
                .is_some_and(|made| made.insert(dest.as_path()));
            if !first {
                remove_existing(dir_fd, name, &target)?;
            }
            match item {
                Item::Archive { .. } => {}
                Item::Data { data, .. } => {
                    let mode = self.chmod.unwrap_or(0o644);
                    create_file(
                        dir_fd,
                        name,
                        &target,
                        &mut data.as_slice(),
                        (parent_owner.uid, parent_owner.gid, mode),
                        creation,
                    )?;
                }
                Item::Entry { found, .. } => {
                    let kind = found.metadata.file_type();
                    let (uid, gid) = self.owner_of(&found.metadata);
                    let mode = self.mode_of(&found.metadata) & 0o7777;
                    if kind.is_dir() {
                        match rustix::fs::mkdirat(dir_fd, name, Mode::from_raw_mode(0o700)) {
                            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                            Err(errno) => return Err(errno_at(&target)(errno)),
                        }
                        chown_entry(dir_fd, name, &target, uid, gid)?;
                        // `remove_existing` left only a directory here: no link to follow.
                        rustix::fs::chmodat(
                            dir_fd,
                            name,
                            Mode::from_raw_mode(mode),
                            AtFlags::empty(),
                        )
                        .map_err(errno_at(&target))?;
                    } else if kind.is_symlink() {
                        let link = found.read_link().map_err(found_error(found))?;
                        rustix::fs::symlinkat(&link, dir_fd, name).map_err(errno_at(&target))?;
                        chown_entry(dir_fd, name, &target, uid, gid)?;
                    } else if kind.is_file() {
                        if let Some(previous) = previous {
                            let old_dir = match old_parent.take() {
                                Some((path, dir)) if path == dest_parent => (path, dir),
                                _ => (dest_parent.to_owned(), previous.open_dir(dest_parent)),
                            };
                            if let Some(old_dir) = &old_parent.insert(old_dir).1
                                && let Some(meta) = previous.reusable(
                                    old_dir,
                                    name,
                                    dest,
                                    &found.metadata,
                                    (uid, gid, mode),
                                )
                                && rustix::fs::linkat(
                                    &old_dir.fd,
                                    name,
                                    dir_fd,
                                    name,
                                    AtFlags::empty(),
                                )
                                .is_ok()
                            {
                                let rel = dest.strip_prefix("/").unwrap_or(dest);
                                linked.push((rel.as_os_str().as_encoded_bytes().to_vec(), meta));
                                continue;
                            }
                        }
                        let from = found.open().map_err(found_error(found))?;
                        let to = copy_regular_file(
                            dir_fd,
                            name,
                            &target,
                            from,
                            found.metadata.size,
                            (uid, gid, mode),
                            creation,
                        )?;
                        // Times are set on the open file: no path lookup.
                        rustix::fs::futimens(&to, &source_times(&found.metadata))
                            .map_err(errno_at(&target))?;
                        continue;
                    } else {
                        // Devices, fifos and sockets are not copied by BuildKit either.
                        continue;
                    }
                    let _ = rustix::fs::utimensat(
                        dir_fd,
                        name,
                        &source_times(&found.metadata),
                        AtFlags::SYMLINK_NOFOLLOW,
                    );
                }
            }
        }
        Ok(linked)
    }
}

/// The earlier result of the same copy (same destination, options and base): its snapshot, and
/// the destination paths whose entry (kind, mode, owner, content) is unchanged since.
pub(crate) struct PreviousCopy {
    /// The content directory of the earlier result's snapshot (read only).
    pub snapshot: PathBuf,
    /// Destination paths (absolute, as [`CopyPlan::entries`] names them) whose description is
    /// the same as then.
    pub unchanged: std::collections::HashSet<String>,
}

/// A directory of the earlier snapshot, open, with its entries by name. The files of one
/// destination directory are inspected and linked relative to it: an edit-rebuild of a big
/// copy otherwise walks the snapshot's path twice per file (inspect, link) on top of the link.
struct OldDir {
    /// The directory, for `linkat`.
    fd: OwnedFd,
    /// Its entries, whose `metadata` asks relative to the directory, without following a link.
    entries: std::collections::HashMap<std::ffi::OsString, fs::DirEntry>,
}

impl PreviousCopy {
    /// The earlier snapshot's directory for `dir` (an absolute image path), open; `None` when
    /// it is not a directory there.
    fn open_dir(&self, dir: &Path) -> Option<OldDir> {
        let path = self.snapshot.join(dir.strip_prefix("/").ok()?);
        let fd = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let entries = fs::read_dir(&path)
            .ok()?
            .filter_map(|entry| entry.ok().map(|entry| (entry.file_name(), entry)))
            .collect();
        Some(OldDir { fd, entries })
    }

    /// The metadata of the earlier snapshot's file for `dest` (`name` in `old_dir`), if that
    /// file may stand for a fresh copy of `source` with `(uid, gid, mode)`: its entry is
    /// unchanged and it has exactly the attributes the copy would give it.
    fn reusable(
        &self,
        old_dir: &OldDir,
        name: &OsStr,
        dest: &Path,
        source: &Stat,
        (uid, gid, mode): (u32, u32, u32),
    ) -> Option<fs::Metadata> {
        if !self.unchanged.contains(&*dest.to_string_lossy()) {
            return None;
        }
        let old = old_dir.entries.get(name)?.metadata().ok()?;
        (old.file_type().is_file()
            && old.len() == source.size
            && old.mode() & 0o7777 == mode
            && (old.uid(), old.gid()) == (uid, gid)
            && (old.mtime(), old.mtime_nsec())
                == (source.modified.seconds, source.modified.nanoseconds.into()))
            .then_some(old)
    }
}

/// Creates `dir` (an absolute image path) inside `upper`, with its parents, and returns it
/// open: parents that exist in `dest_view` keep their attributes, missing ones are `0755` and
/// belong to `owner`. The walk goes from descriptor to descriptor and never follows a link: a
/// non-directory in the way (a link included) is replaced by a directory.
pub(crate) fn ensure_dir(
    upper: &Path,
    dir: &Path,
    dest_view: &MergedView,
    owner: Owner,
) -> Result<OwnedFd, CopyError> {
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut current = rustix::fs::open(upper, directory, Mode::empty()).map_err(errno_at(upper))?;
    let mut image_path = PathBuf::from("/");
    for component in clean_components(dir) {
        image_path.push(&component);
        let target = upper.join(image_path.strip_prefix("/").unwrap_or(&image_path));
        match rustix::fs::openat(&current, &component, directory, Mode::empty()) {
            Ok(next) => {
                current = next;
                continue;
            }
            Err(rustix::io::Errno::NOENT) => {}
            // A link or a file: it makes way for the directory.
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                rustix::fs::unlinkat(&current, &component, AtFlags::empty())
                    .map_err(errno_at(&target))?;
            }
            Err(errno) => return Err(errno_at(&target)(errno)),
        }
        rustix::fs::mkdirat(&current, &component, Mode::from_raw_mode(0o700))
            .map_err(errno_at(&target))?;
        let (mode, uid, gid) = match dest_view.lookup_follow(&image_path) {
            Some(existing) if existing.metadata.is_dir() => (
                existing.metadata.mode & 0o7777,
                existing.metadata.uid,
                existing.metadata.gid,
            ),
            _ => (0o755, owner.uid, owner.gid),
        };
        let next = rustix::fs::openat(&current, &component, directory, Mode::empty())
            .map_err(errno_at(&target))?;
        rustix::fs::fchown(&next, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(owner_failed(&target, uid, gid))?;
        rustix::fs::fchmod(&next, Mode::from_raw_mode(mode)).map_err(errno_at(&target))?;
        current = next;
    }
    Ok(current)
}

/// Removes the entry `name` of `dir` unless it is a directory (which a copied directory
/// merges into).
fn remove_existing(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<(), CopyError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Ok(()),
        Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno_at(path)),
        Err(_) => Ok(()),
    }
}
