//! [`MergedView`]: a read-only merged view of a stack of layer snapshots, without mounting
//! anything; [`LayeredFs`]: the same as an [`ImageFs`].
//!
//! Snapshots are directories in overlayfs "upper" form: a deleted path is a 0/0 character
//! device, a directory that hides everything below it carries the `trusted.overlay.opaque`
//! (or `user.overlay.opaque`) attribute. The view answers what the build needs to know
//! about a stage's filesystem before or without running anything in it: does `/app` exist and is
//! it a directory, what does `/etc/passwd` say, which files does `COPY --from=stage /out/` take.

use crate::{EntryKind, FileEntry, ImageFs, not_a_file};
use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::collections::{BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Layers stacked bottom (first) to top (last).
///
/// Every look at a layer's files goes through a descriptor of the layer directory with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: the view resolves symlinks itself, inside
/// the view (as `chroot` would), and the kernel refuses to follow any link on the host. A link
/// such as `up -> /` in a build context therefore names the context itself, never the host's
/// root, even if the view's own bookkeeping were wrong.
#[derive(Debug, Clone, Default)]
pub struct MergedView {
    layers: Vec<PathBuf>,
    /// An `O_PATH` descriptor of each layer directory (`None`: it could not be opened, and
    /// the layer holds nothing).
    roots: Vec<Option<Arc<OwnedFd>>>,
}

/// A path found in the view: where its bytes live and its metadata.
#[derive(Debug, Clone)]
pub struct Found {
    /// The real path inside the topmost layer that has it (for messages and the context
    /// index; open it with [`Found::open`], never by this path).
    pub real_path: PathBuf,
    /// Its metadata (symlinks not followed).
    pub metadata: Metadata,
    /// Where it is in the view, every symlink on the way resolved: absolute, and the same
    /// relative path inside its layer.
    resolved: PathBuf,
    /// The directory descriptor of the layer that holds it.
    root: Option<Arc<OwnedFd>>,
    /// Layer indexes (bottom = 0) whose copy of this directory is visible: the topmost one and,
    /// unless it is opaque, every lower one down to the first opaque copy.
    layers: Vec<usize>,
}

impl Found {
    /// Opens it for reading, never following a symlink on the host.
    pub fn open(&self) -> io::Result<File> {
        let fd = open_beneath(
            self.root.as_deref(),
            &self.resolved,
            OFlags::RDONLY | OFlags::NOFOLLOW,
        )?;
        Ok(File::from(fd))
    }

    /// The sha256 of its bytes, read through [`Found::open`].
    pub fn sha256(&self) -> io::Result<[u8; 32]> {
        use sha2::{Digest as _, Sha256};
        // One buffer per thread, zeroed once: a fresh 256 KiB buffer per file costs more
        // (allocating and zeroing it) than hashing the small files most contexts are made of.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut file = self.open()?;
        let mut hasher = Sha256::new();
        BUFFER.with_borrow_mut(|buffer| {
            if buffer.is_empty() {
                buffer.resize(256 * 1024, 0);
            }
            loop {
                let read = io::Read::read(&mut file, buffer)?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
            Ok::<_, io::Error>(())
        })?;
        Ok(hasher.finalize().into())
    }

    /// The layer (bottom = 0) whose copy is visible.
    pub fn layer(&self) -> usize {
        self.layers[0]
    }

    /// The target of a symlink, as stored.
    pub fn read_link(&self) -> io::Result<PathBuf> {
        let fd = open_beneath(
            self.root.as_deref(),
            &self.resolved,
            OFlags::PATH | OFlags::NOFOLLOW,
        )?;
        let target = rustix::fs::readlinkat(&fd, c"", Vec::new())?;
        Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }
}

/// Opens `path` (absolute in the view, or relative) below the layer directory `root`: no `..`
/// above it and no symlink anywhere on the way. A missing layer holds nothing.
fn open_beneath(root: Option<&OwnedFd>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let root = root.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    loop {
        match rustix::fs::openat2(
            root,
            relative,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            // A concurrent rename somewhere on the host: the kernel asks to try again.
            Err(Errno::AGAIN) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Whether a snapshot entry is an overlay whiteout (a 0/0 character device).
pub fn is_whiteout(metadata: &Metadata) -> bool {
    metadata.file_type().is_char_device() && metadata.rdev() == 0
}

/// [`is_whiteout`] of a `stat`.
fn is_whiteout_stat(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::CharacterDevice && stat.st_rdev == 0
}

/// The overlay attributes that mark a directory opaque (rootful, rootless).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Whether the directory open at `dir` is marked opaque.
fn is_opaque_fd(dir: impl AsFd) -> bool {
    let dir = dir.as_fd();
    OPAQUE_XATTRS.iter().any(|name| {
        let mut value = [0u8; 1];
        matches!(rustix::fs::fgetxattr(dir, *name, &mut value), Ok(1) if value[0] == b'y')
    })
}

/// Splits a path into normal components, resolving `.`/`..` lexically inside the root.
pub fn clean_components(path: &Path) -> Vec<OsString> {
    let mut parts: Vec<OsString> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => parts.push(name.to_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    parts
}

/// What one layer has at a path: its metadata (`std`'s for a lookup, a `stat` for a
/// listing) and, for a directory, whether it is opaque.
struct Entry<M = Metadata> {
    metadata: M,
    opaque: bool,
}

/// What the merge of a path's copies in the layers needs to know of one copy.
trait LayerCopy {
    fn is_dir(&self) -> bool;
    fn is_whiteout(&self) -> bool;
}

impl LayerCopy for Metadata {
    fn is_dir(&self) -> bool {
        Metadata::is_dir(self)
    }

    fn is_whiteout(&self) -> bool {
        is_whiteout(self)
    }
}

/// A layer's copy of a path as a listing reads it: `statx` of its name in its directory and,
/// for a directory, the open directory, to read and to look up its names in.
struct ListedCopy {
    stat: Stat,
    dir: Option<OwnedFd>,
}

impl LayerCopy for ListedCopy {
    fn is_dir(&self) -> bool {
        FileType::from_raw_mode(self.stat.st_mode) == FileType::Directory
    }

    fn is_whiteout(&self) -> bool {
        is_whiteout_stat(&self.stat)
    }
}

/// The visible copies of a path, top first, from `copy_in` of each of `layers` (top first:
/// the layers whose copy of its directory is visible): the topmost copy and, when it is a
/// directory, the lower directory copies that show through it, down to anything but a
/// directory, a whiteout or an opaque copy. Empty when no layer has it or a whiteout
/// deletes it. The one merge rule of lookups and listings.
fn visible_copies<M: LayerCopy>(
    layers: &[usize],
    mut copy_in: impl FnMut(usize) -> Option<Entry<M>>,
) -> Vec<(usize, M)> {
    let mut copies: Vec<(usize, M)> = Vec::new();
    for &index in layers {
        let Some(entry) = copy_in(index) else {
            continue;
        };
        let stop = match copies.first() {
            None if entry.metadata.is_whiteout() => break,
            None => !entry.metadata.is_dir() || entry.opaque,
            // Lower copies of a directory show through until a non-directory, a whiteout or
            // an opaque copy.
            Some(_) if !entry.metadata.is_dir() => break,
            Some(_) => entry.opaque,
        };
        copies.push((index, entry.metadata));
        if stop {
            break;
        }
    }
    copies
}

/// A layer's copy of `name` in the directory `dir` (one of the listing's open directories):
/// `name` comes from the directory itself, so nothing on the host is followed.
fn listed_copy(dir: &OwnedFd, name: &OsStr) -> Option<Entry<ListedCopy>> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let mut copy = ListedCopy { stat, dir: None };
    let mut opaque = false;
    if copy.is_dir() {
        let opened = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        opaque = is_opaque_fd(&opened);
        copy.dir = Some(opened);
    }
    Some(Entry {
        metadata: copy,
        opaque,
    })
}

/// An entry a listing found: its path, the layer whose copy is visible, and that copy's `stat`.
struct Listed {
    path: PathBuf,
    layer: usize,
    stat: Stat,
}

impl MergedView {
    /// A view of `layers`, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        let roots = layers
            .iter()
            .map(|layer| {
                rustix::fs::open(
                    layer,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
                .map(Arc::new)
            })
            .collect();
        MergedView { layers, roots }
    }

    /// Looks a path up without following symlinks in its last component; symlinks in parent
    /// components are followed (inside the view) up to 40 times, like the kernel.
    pub fn lookup(&self, path: &Path) -> Option<Found> {
        self.lookup_with(path, false, 0)
    }

    /// Looks a path up following a symlink in the last component too.
    pub fn lookup_follow(&self, path: &Path) -> Option<Found> {
        self.lookup_with(path, true, 0)
    }

    /// What layer `index` has at `path` (resolved, absolute in the view), never following a
    /// link on the host. Absent when the layer has nothing there or a link is on the way.
    fn entry(&self, index: usize, path: &Path) -> Option<Entry> {
        let fd = open_beneath(
            self.roots[index].as_deref(),
            path,
            OFlags::PATH | OFlags::NOFOLLOW,
        )
        .ok()?;
        let file = File::from(fd);
        let metadata = file.metadata().ok()?;
        // `fgetxattr` needs a descriptor that is more than `O_PATH`: reopen the directory
        // through the one we hold (no path walk on the host).
        let opaque = metadata.is_dir()
            && rustix::fs::openat(
                &file,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .is_ok_and(is_opaque_fd);
        Some(Entry { metadata, opaque })
    }

    fn found(&self, index: usize, resolved: PathBuf, metadata: Metadata) -> Found {
        Found {
            real_path: self.layers[index].join(resolved.strip_prefix("/").unwrap_or(&resolved)),
            metadata,
            resolved,
            root: self.roots[index].clone(),
            layers: vec![index],
        }
    }

    fn root(&self) -> Option<Found> {
        let top = self.layers.len().checked_sub(1)?;
        let top_entry = self.entry(top, Path::new("/"))?;
        let mut root = self.found(top, PathBuf::from("/"), top_entry.metadata);
        // Lower layers show through the root until an opaque one; the top's entry is read once.
        let mut opaque = top_entry.opaque;
        for index in (0..top).rev() {
            if opaque {
                break;
            }
            root.layers.push(index);
            opaque = self.entry(index, Path::new("/")).is_some_and(|e| e.opaque);
        }
        Some(root)
    }

    fn lookup_with(&self, path: &Path, follow_last: bool, depth: usize) -> Option<Found> {
        if depth > 40 {
            return None;
        }
        let parts = clean_components(path);
        let mut current = self.root()?;
        for (i, name) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let child = self.child(&current, name)?;
            if child.metadata.file_type().is_symlink() && (!last || follow_last) {
                let target = child.read_link().ok()?;
                // A relative target is relative to the link's directory; an absolute one (and
                // every `..`) stays inside the view: the view is the root.
                let mut resolved = if target.is_absolute() {
                    target
                } else {
                    current.resolved.join(target)
                };
                for rest in &parts[i + 1..] {
                    resolved.push(rest);
                }
                return self.lookup_with(&resolved, follow_last, depth + 1);
            }
            current = child;
        }
        Some(current)
    }

    /// The entry `name` inside the directory `dir`.
    fn child(&self, dir: &Found, name: &OsStr) -> Option<Found> {
        if !dir.metadata.is_dir() {
            return None;
        }
        let path = dir.resolved.join(name);
        let mut copies = visible_copies(&dir.layers, |index| self.entry(index, &path)).into_iter();
        let (top, metadata) = copies.next()?;
        let mut found = self.found(top, path, metadata);
        found.layers.extend(copies.map(|(index, _)| index));
        Some(found)
    }

    /// The layer that added a file as it is now: the lowest layer of the unbroken run of
    /// copies that ends at its visible one. A layer that only changed the file's mode or
    /// times (`RUN chmod`, `touch`) holds a whole copy, but did not add it. A whiteout or
    /// anything but a directory on the way, an opaque directory above it, or another kind of
    /// entry at its path ends the run.
    pub fn first_added(&self, found: &Found) -> usize {
        let mut first = found.layer();
        // Its directories from the root down.
        let mut ancestors: Vec<&Path> = found.resolved.ancestors().skip(1).collect();
        ancestors.reverse();
        for index in (0..found.layer()).rev() {
            let mut opaque = false;
            for ancestor in &ancestors {
                match self.entry(index, ancestor) {
                    Some(entry) if !entry.metadata.is_dir() => return first,
                    Some(entry) => opaque |= entry.opaque,
                    None => {}
                }
            }
            if let Some(entry) = self.entry(index, &found.resolved) {
                if !entry.metadata.is_file() {
                    return first;
                }
                first = index;
            }
            // An opaque directory hides what the layers below have in it.
            if opaque {
                return first;
            }
        }
        first
    }

    /// The visible entries of a directory, sorted by name (bytes).
    pub fn read_dir(&self, dir: &Found) -> Vec<OsString> {
        names_in(dir.layers.iter().filter_map(|&index| {
            open_beneath(
                self.roots[index].as_deref(),
                &dir.resolved,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            )
            .ok()
        }))
    }

    /// Reads a whole file from the view (following symlinks), if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let found = self.lookup_follow(path)?;
        if !found.metadata.is_file() {
            return None;
        }
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut found.open().ok()?, &mut bytes).ok()?;
        Some(bytes)
    }

    /// Every visible path below `dir_path` (itself excluded), depth-first in name order, with
    /// its found entry. Paths are named under `dir_path` as given (a link on the way stays in
    /// the name); symlinks inside are listed, not followed.
    pub fn walk(&self, dir_path: &Path) -> Vec<(PathBuf, Found)> {
        let mut out = Vec::new();
        if let Some(dir) = self.lookup_follow(dir_path) {
            let named = Path::new("/").join(clean_components(dir_path).iter().collect::<PathBuf>());
            self.walk_into(&named, &dir, &mut out);
        }
        out
    }

    fn walk_into(&self, named: &Path, dir: &Found, out: &mut Vec<(PathBuf, Found)>) {
        if !dir.metadata.is_dir() {
            return;
        }
        for name in self.read_dir(dir) {
            let Some(child) = self.child(dir, &name) else {
                continue;
            };
            let child_named = named.join(&name);
            out.push((child_named.clone(), child.clone()));
            self.walk_into(&child_named, &child, out);
        }
    }

    /// Every visible entry whose visible copy is in layer `first` or above, in path order
    /// (symlinks listed, not followed); a directory no such layer has is not read at all, so
    /// the cost follows the size of those layers, not of the image.
    ///
    /// Unlike [`MergedView::walk`], which looks every entry up from the root of each layer,
    /// a listing keeps each directory open while it looks at its names: one `statx` of the
    /// name in its directory per entry (and an open per directory), no path walked again in
    /// the kernel, no `Found`. Subtrees are listed on the rayon pool (a listing is mostly
    /// waiting on the kernel, which runs on every core at once) and joined in name order.
    fn list_from(&self, first: usize) -> Vec<Listed> {
        let Some(root) = self.root() else {
            return Vec::new();
        };
        let dirs: Vec<(usize, OwnedFd)> = root
            .layers
            .iter()
            .filter_map(|&index| {
                let dir = open_beneath(
                    self.roots[index].as_deref(),
                    Path::new("/"),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                )
                .ok()?;
                Some((index, dir))
            })
            .collect();
        let mut out = Vec::new();
        list_into(Path::new("/"), &dirs, first, &mut out);
        out
    }
}

/// Lists the directory `named` whose visible copies are open in `dirs` (layer, directory; top
/// first) into `out`: see [`MergedView::list_from`].
fn list_into(named: &Path, dirs: &[(usize, OwnedFd)], first: usize, out: &mut Vec<Listed>) {
    let layers: Vec<usize> = dirs.iter().map(|(index, _)| *index).collect();
    let names = names_in(
        dirs.iter()
            .filter(|(index, _)| *index >= first)
            .map(|(_, dir)| dir),
    );
    let subtrees: Vec<Vec<Listed>> = names
        .par_iter()
        .map(|name| {
            let mut subtree = Vec::new();
            let copy_in = |index| {
                let (_, dir) = dirs.iter().find(|(layer, _)| *layer == index)?;
                listed_copy(dir, name)
            };
            let mut copies = visible_copies(&layers, copy_in).into_iter();
            let Some((top, copy)) = copies.next() else {
                return subtree;
            };
            let path = named.join(name);
            let child_dirs: Vec<(usize, OwnedFd)> = copy
                .dir
                .map(|dir| (top, dir))
                .into_iter()
                .chain(copies.filter_map(|(index, copy)| Some((index, copy.dir?))))
                .collect();
            let descend = child_dirs.iter().any(|(index, _)| *index >= first);
            if top >= first {
                subtree.push(Listed {
                    path: path.clone(),
                    layer: top,
                    stat: copy.stat,
                });
            }
            if descend {
                list_into(&path, &child_dirs, first, &mut subtree);
            }
            subtree
        })
        .collect();
    out.extend(subtrees.into_iter().flatten());
}

/// The names in the copies of one directory (`dirs`, open, top first) that are not deleted
/// by a whiteout in a higher copy, sorted by name (bytes).
fn names_in(dirs: impl IntoIterator<Item = impl AsFd>) -> Vec<OsString> {
    let mut names: BTreeSet<OsString> = BTreeSet::new();
    let mut hidden: HashSet<OsString> = HashSet::new();
    for fd in dirs {
        let Ok(entries) = rustix::fs::Dir::read_from(&fd) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." || names.contains(name) || hidden.contains(name) {
                continue;
            }
            // Only a character device can be a whiteout: other kinds need no `stat`.
            let maybe_whiteout = matches!(
                entry.file_type(),
                rustix::fs::FileType::CharacterDevice | rustix::fs::FileType::Unknown
            );
            let whiteout = maybe_whiteout
                && rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|stat| is_whiteout_stat(&stat));
            if whiteout {
                hidden.insert(name.to_owned());
            } else {
                names.insert(name.to_owned());
            }
        }
    }
    names.into_iter().collect()
}

/// An image's layer snapshots (directories in overlayfs "upper" form, bottom first) as an
/// [`ImageFs`]: every entry says which layer's copy is visible. The snapshots must not change
/// while it is in use: the first listing is kept, and a regular file it found opens through
/// its entry, without a new lookup through every layer of every directory on its path (what
/// made a catalog of an image spend most of its time resolving paths).
#[derive(Debug, Clone)]
pub struct LayeredFs {
    view: MergedView,
    first_listed: usize,
    /// The regular files of the first listing and the layer of each one's visible copy,
    /// sorted by path (a listing is in path order; a hash map of them cost more to build than
    /// the lookups it saved).
    listed_files: OnceLock<Vec<(PathBuf, usize)>>,
}

impl LayeredFs {
    /// The image whose layers are `layers`, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        LayeredFs {
            view: MergedView::new(layers),
            first_listed: 0,
            listed_files: OnceLock::new(),
        }
    }

    /// Lists only the entries layers from `first` up made visible (a build's own layers above
    /// its base image's): [`ImageFs::entries`] then reads only the directories those layers
    /// have. Everything stays reachable by path.
    pub fn listing_from(mut self, first: usize) -> Self {
        self.first_listed = first;
        self
    }

    /// The merged view of the layers.
    pub fn view(&self) -> &MergedView {
        &self.view
    }
}

impl ImageFs for LayeredFs {
    fn entries(&self) -> io::Result<Vec<FileEntry>> {
        let listed = self.view.list_from(self.first_listed);
        let mut files = Vec::new();
        let entries = listed
            .into_iter()
            .map(|listed| {
                let kind = match FileType::from_raw_mode(listed.stat.st_mode) {
                    FileType::RegularFile => EntryKind::File,
                    FileType::Directory => EntryKind::Dir,
                    FileType::Symlink => EntryKind::Symlink,
                    _ => EntryKind::Special,
                };
                if kind == EntryKind::File {
                    files.push((listed.path.clone(), listed.layer));
                }
                FileEntry {
                    path: listed.path,
                    size: u64::try_from(listed.stat.st_size).unwrap_or(0),
                    mode: listed.stat.st_mode & 0o7777,
                    kind,
                    layer: Some(listed.layer),
                }
            })
            .collect();
        debug_assert!(
            files.is_sorted_by(|(a, _), (b, _)| a < b),
            "a listing is in path order"
        );
        // A later listing (there is seldom one) finds the same files.
        let _ = self.listed_files.set(files);
        Ok(entries)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        if let Some(files) = self.listed_files.get()
            && let Ok(index) = files.binary_search_by(|(listed, _)| listed.as_path().cmp(path))
        {
            // A listed path has no link on the way: it opens in its layer as it is.
            let layer = files[index].1;
            let fd = open_beneath(
                self.view.roots[layer].as_deref(),
                path,
                OFlags::RDONLY | OFlags::NOFOLLOW,
            )?;
            return Ok(File::from(fd));
        }
        let found = self
            .view
            .lookup_follow(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if !found.metadata.is_file() {
            return Err(not_a_file(path));
        }
        found.open()
    }

    fn first_added(&self, entry: &FileEntry) -> Option<usize> {
        match self.view.lookup(&entry.path) {
            Some(found) if found.metadata.is_file() => Some(self.view.first_added(&found)),
            _ => entry.layer,
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let found = self
            .view
            .lookup_follow(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if !found.metadata.is_dir() {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
        Ok(self.view.read_dir(&found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Builds a layer directory from `(path, kind)` pairs: `f:content`, `d`, `l:target`,
    /// `w` (whiteout), `o` (opaque directory).
    fn layer(root: &Path, entries: &[(&str, &str)]) -> PathBuf {
        fs::create_dir_all(root).unwrap();
        for (path, kind) in entries {
            let full = root.join(path);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            match kind.split_once(':').unwrap_or((kind, "")) {
                ("f", content) => fs::write(&full, content).unwrap(),
                ("d", _) => fs::create_dir_all(&full).unwrap(),
                ("l", target) => std::os::unix::fs::symlink(target, &full).unwrap(),
                ("w", _) => rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &full,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    0,
                )
                .unwrap(),
                ("o", _) => {
                    fs::create_dir_all(&full).unwrap();
                    rustix::fs::lsetxattr(
                        &full,
                        "trusted.overlay.opaque",
                        b"y",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .unwrap();
                }
                other => panic!("unknown kind {other:?}"),
            }
        }
        root.to_owned()
    }

    fn names(view: &MergedView, path: &str) -> Vec<String> {
        let dir = view.lookup_follow(Path::new(path)).unwrap();
        view.read_dir(&dir)
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn upper_layers_win_and_whiteouts_and_opaque_dirs_hide_lower_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let bottom = layer(
            &tmp.path().join("0"),
            &[
                ("etc/passwd", "f:root"),
                ("etc/group", "f:g"),
                ("app/old", "f:o"),
                ("keep/a", "f:a"),
                ("bin", "d"),
            ],
        );
        let top = layer(
            &tmp.path().join("1"),
            &[
                ("etc/passwd", "f:root-app"),
                ("etc/group", "w"),
                ("app", "o"),
                ("app/new", "f:n"),
                ("keep/b", "f:b"),
                ("link", "l:/keep"),
                ("rel", "l:keep/a"),
            ],
        );
        let view = MergedView::new(vec![bottom, top]);
        assert_eq!(
            view.read_file(Path::new("/etc/passwd")).unwrap(),
            b"root-app"
        );
        assert!(view.lookup(Path::new("/etc/group")).is_none());
        assert_eq!(names(&view, "/etc"), ["passwd"]);
        assert_eq!(names(&view, "/app"), ["new"]);
        assert_eq!(names(&view, "/keep"), ["a", "b"]);
        assert_eq!(names(&view, "/link"), ["a", "b"]);
        assert_eq!(view.read_file(Path::new("/link/a")).unwrap(), b"a");
        assert_eq!(view.read_file(Path::new("/rel")).unwrap(), b"a");
        assert!(
            view.lookup(Path::new("/link"))
                .unwrap()
                .metadata
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            view.read_file(Path::new("/../../etc/passwd")).unwrap(),
            b"root-app"
        );
        let walked: Vec<String> = view
            .walk(Path::new("/keep"))
            .into_iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert_eq!(walked, ["/keep/a", "/keep/b"]);
    }

    /// A context (one layer) with a `tmp/` directory of its own, beside a canary directory
    /// under the host's `/tmp`: a walk of `up -> /` that followed the link on the host would
    /// reach the canary through the context's `tmp` name.
    fn context_beside_canary(link: &str) -> (tempfile::TempDir, MergedView, String) {
        let tmp = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(outside.join("canary-dir")).unwrap();
        fs::write(outside.join("canary-dir/secret"), "CANARY").unwrap();
        let context = layer(
            &tmp.path().join("context"),
            &[
                ("canary-dir/own", "f:mine"),
                ("hostname", "f:ctx"),
                ("tmp/own", "f:tmp"),
            ],
        );
        let link = link.replace("OUTSIDE", &outside.display().to_string());
        std::os::unix::fs::symlink(&link, context.join("up")).unwrap();
        (tmp, MergedView::new(vec![context]), link)
    }

    fn walked_names(view: &MergedView, path: &str) -> Vec<String> {
        view.walk(Path::new(path))
            .into_iter()
            .map(|(p, _)| p.display().to_string())
            .collect()
    }

    #[test]
    fn links_to_the_root_name_the_view_itself_never_the_host() {
        for link in ["/", "/.", "//", "../../..", "/etc/..", "/tmp/..", "up/.."] {
            let (_tmp, view, _) = context_beside_canary(link);
            let walked = walked_names(&view, "/up");
            assert!(
                walked.contains(&"/up/hostname".to_owned()),
                "{link}: {walked:?}"
            );
            assert!(
                walked.contains(&"/up/canary-dir/own".to_owned()),
                "{link}: {walked:?}"
            );
            assert!(
                walked.contains(&"/up/tmp/own".to_owned()),
                "{link}: {walked:?}"
            );
            assert_eq!(walked.len(), 6, "{link}: {walked:?}");
            assert_eq!(view.read_file(Path::new("/up/hostname")).unwrap(), b"ctx");
            assert!(
                view.lookup_follow(Path::new("/up/etc/hostname")).is_none(),
                "{link}"
            );
            let found = view.lookup_follow(Path::new("/up/canary-dir/own")).unwrap();
            assert_eq!(found.resolved, Path::new("/canary-dir/own"));
        }
    }

    #[test]
    fn an_absolute_link_to_a_host_directory_resolves_inside_the_view() {
        // `up -> /…/outside` names `/…/outside` inside the context, which does not exist.
        let (_tmp, view, _) = context_beside_canary("OUTSIDE");
        assert!(view.lookup_follow(Path::new("/up")).is_none());
        assert!(view.read_file(Path::new("/up/canary-dir/secret")).is_none());
        assert!(walked_names(&view, "/up").is_empty());
    }

    #[test]
    fn a_link_loop_ends_in_not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let context = layer(
            tmp.path(),
            &[("a", "l:b"), ("b", "l:a/x"), ("self", "l:self")],
        );
        let view = MergedView::new(vec![context]);
        assert!(view.lookup_follow(Path::new("/a")).is_none());
        assert!(view.lookup_follow(Path::new("/self/x")).is_none());
        assert!(
            view.lookup(Path::new("/self"))
                .unwrap()
                .metadata
                .is_symlink()
        );
        assert_eq!(walked_names(&view, "/"), ["/a", "/b", "/self"]);
    }

    #[test]
    fn layered_fs_says_which_layer_each_entry_is_from_and_can_list_the_top_only() {
        let tmp = tempfile::tempdir().unwrap();
        let base = layer(
            &tmp.path().join("0"),
            &[
                ("usr/bin/tool", "f:base"),
                ("usr/lib/libx.so", "f:x"),
                ("etc/passwd", "f:root"),
            ],
        );
        let own = layer(
            &tmp.path().join("1"),
            &[
                ("usr/bin/tool", "f:new"),
                ("usr/lib/libx.so", "w"),
                ("app/run", "f:run"),
            ],
        );
        let fs = LayeredFs::new(vec![base, own]);
        let listed = |fs: &LayeredFs| {
            let mut entries: Vec<(String, EntryKind, Option<usize>)> = fs
                .entries()
                .unwrap()
                .into_iter()
                .map(|e| (e.path.display().to_string(), e.kind, e.layer))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
        };
        let all = listed(&fs);
        assert!(all.contains(&("/usr/bin/tool".into(), EntryKind::File, Some(1))));
        assert!(all.contains(&("/etc/passwd".into(), EntryKind::File, Some(0))));
        assert!(!all.iter().any(|(path, ..)| path == "/usr/lib/libx.so"));
        let top = fs.clone().listing_from(1);
        let paths: Vec<String> = listed(&top).into_iter().map(|(path, ..)| path).collect();
        // `/usr` and `/usr/bin` are base directories the top layer also has: listed only
        // when the top layer's copy is the visible one, which it is (no opaque lower copy).
        assert!(paths.contains(&"/app/run".to_owned()), "{paths:?}");
        assert!(paths.contains(&"/usr/bin/tool".to_owned()), "{paths:?}");
        assert!(!paths.contains(&"/etc/passwd".to_owned()), "{paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("/etc")), "{paths:?}");
        let mut text = String::new();
        io::Read::read_to_string(&mut top.open(Path::new("/etc/passwd")).unwrap(), &mut text)
            .unwrap();
        assert_eq!(text, "root");
        assert_eq!(
            top.open(Path::new("/usr/lib/libx.so")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            top.open(Path::new("/usr")).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            top.read_dir(Path::new("/usr/lib")).unwrap(),
            Vec::<OsString>::new()
        );
    }

    #[test]
    fn a_listing_sees_what_a_walk_sees() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = vec![
            layer(
                &tmp.path().join("0"),
                &[
                    ("etc/passwd", "f:root"),
                    ("etc/group", "f:g"),
                    ("app/old/deep/file", "f:o"),
                    ("was-dir/inner", "f:i"),
                    ("was-file", "f:f"),
                    ("keep/a", "f:a"),
                    ("gone/x", "f:x"),
                ],
            ),
            layer(
                &tmp.path().join("1"),
                &[
                    ("etc/passwd", "f:root-app"),
                    ("etc/group", "w"),
                    ("app", "o"),
                    ("app/new", "f:n"),
                    ("was-dir", "f:now a file"),
                    ("was-file/inside", "f:now a dir"),
                    ("keep/b", "f:bb"),
                    ("link", "l:/keep"),
                    ("gone", "w"),
                ],
            ),
            layer(
                &tmp.path().join("2"),
                &[("keep/c", "f:ccc"), ("app/newer", "f:n2"), ("gone", "d")],
            ),
        ];
        let fs = LayeredFs::new(layers.clone());
        let mut listed = fs.entries().unwrap();
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        let walked: Vec<FileEntry> = MergedView::new(layers)
            .walk(Path::new("/"))
            .into_iter()
            .map(|(path, found)| FileEntry {
                path,
                size: found.metadata.len(),
                mode: found.metadata.mode() & 0o7777,
                kind: EntryKind::of(found.metadata.file_type()),
                layer: Some(found.layer()),
            })
            .collect();
        assert_eq!(listed, walked);
        let paths: Vec<&str> = listed.iter().map(|e| e.path.to_str().unwrap()).collect();
        assert!(paths.contains(&"/app/newer") && paths.contains(&"/app/new"));
        assert!(
            !paths.iter().any(|p| p.starts_with("/app/old")),
            "{paths:?}"
        );
        assert!(!paths.contains(&"/etc/group") && !paths.contains(&"/gone/x"));
        assert!(!paths.contains(&"/was-dir/inner") && paths.contains(&"/was-file/inside"));
        assert!(paths.contains(&"/keep/a") && !paths.contains(&"/link/a"));
    }

    #[test]
    fn a_listed_file_opens_through_its_listed_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let base = layer(&tmp.path().join("0"), &[("etc/motd", "f:hello")]);
        let own = layer(&tmp.path().join("1"), &[("app/run", "f:run")]);
        let fs = LayeredFs::new(vec![base, own.clone()]);
        let read = |fs: &LayeredFs| {
            let mut text = String::new();
            io::Read::read_to_string(&mut fs.open(Path::new("/etc/motd"))?, &mut text)?;
            io::Result::Ok(text)
        };
        assert!(
            fs.entries()
                .unwrap()
                .iter()
                .any(|e| e.path == Path::new("/etc/motd"))
        );
        // Deleting it in the top layer now shows that no lookup through the layers happens
        // any more (snapshots do not change in use; this one does, to tell).
        layer(&own, &[("etc/motd", "w")]);
        assert_eq!(read(&fs).unwrap(), "hello");
        assert_eq!(
            read(&LayeredFs::new(vec![tmp.path().join("0"), own]))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_file_was_added_by_the_first_layer_of_its_unbroken_run_of_copies() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = vec![
            layer(
                &tmp.path().join("0"),
                &[("app/bin", "f:v1"), ("etc/x", "f:x")],
            ),
            layer(&tmp.path().join("1"), &[("app/bin", "f:v2")]),
            layer(&tmp.path().join("2"), &[("other", "f:o")]),
            // chmod: a copy of the same file.
            layer(&tmp.path().join("3"), &[("app/bin", "f:v2"), ("etc", "o")]),
            layer(&tmp.path().join("4"), &[("etc/x", "f:x2")]),
        ];
        let fs = LayeredFs::new(layers.clone());
        let first = |path: &str| {
            let found = fs.view().lookup(Path::new(path)).unwrap();
            fs.view().first_added(&found)
        };
        // The run goes down through a layer without the file to the first layer that has it.
        assert_eq!(first("/app/bin"), 0);
        // The opaque /etc of layer 3 hides layer 0's copy: layer 3 has none, so layer 4 made it.
        assert_eq!(first("/etc/x"), 4);
        // A whiteout breaks the run.
        let mut broken = layers;
        broken.insert(1, layer(&tmp.path().join("w"), &[("app/bin", "w")]));
        let fs = LayeredFs::new(broken);
        let found = fs.view().lookup(Path::new("/app/bin")).unwrap();
        assert_eq!(fs.view().first_added(&found), 2);
    }

    #[test]
    fn a_found_entry_opens_only_inside_its_layer() {
        let (_tmp, view, _) = context_beside_canary("/");
        let mut found = view.lookup(Path::new("/hostname")).unwrap();
        // Even a corrupted resolved path cannot climb out: the kernel refuses `..` and links.
        found.resolved = PathBuf::from("/up/canary-dir/own");
        assert!(found.open().is_err());
        found.resolved = PathBuf::from("/../outside/canary-dir/secret");
        assert!(found.open().is_err());
    }
}
