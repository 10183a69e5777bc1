//! [`MergedView`]: a read-only merged view of a stack of layer snapshots, without mounting
//! anything ([`crate::LayeredFs`] is the same as an [`crate::ImageFs`]).
//!
//! Snapshots are directories in overlayfs "upper" form: a deleted path is a 0/0 character
//! device, a directory that hides everything below it carries the `trusted.overlay.opaque`
//! (or `user.overlay.opaque`) attribute. The view answers what the build needs to know
//! about a stage's filesystem before or without running anything in it: does `/app` exist and is
//! it a directory, what does `/etc/passwd` say, which files does `COPY --from=stage /out/` take.

use crate::Stat;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::collections::{BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Layers stacked bottom (first) to top (last).
///
/// Every look at a layer's files goes through a descriptor of the layer directory with
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: the view resolves symlinks itself, inside
/// the view (as `chroot` would), and the kernel refuses to follow any link on the host. A link
/// such as `up -> /` in a build context therefore names the context itself, never the host's
/// root, even if the view's own bookkeeping were wrong.
#[derive(Debug, Clone, Default)]
pub struct MergedView {
    layers: Vec<Arc<LayerDir>>,
}

/// A layer directory: its path, for messages, and what every look inside goes through.
#[derive(Debug)]
struct LayerDir {
    path: PathBuf,
    /// An `O_PATH` descriptor of the directory (`None`: it could not be opened, and the
    /// layer holds nothing).
    fd: Option<OwnedFd>,
}

/// A path found in the view: where its bytes live and its metadata.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its `lstat` (symlinks not followed).
    pub metadata: Stat,
    /// Where it is in the view, every symlink on the way resolved: absolute, and the same
    /// relative path inside its layer.
    resolved: PathBuf,
    /// The layer that holds it.
    layer_dir: Arc<LayerDir>,
    /// The layer (bottom = 0) whose copy is visible.
    layer: usize,
    /// For a directory, the lower layers whose copies show through it, top down to the first
    /// opaque copy (empty, and not allocated, for anything else).
    lower: Vec<usize>,
}

impl Found {
    /// Opens it for reading, never following a symlink on the host.
    pub fn open(&self) -> io::Result<File> {
        let fd = open_beneath(
            self.layer_dir.fd.as_ref(),
            &self.resolved,
            OFlags::RDONLY | OFlags::NOFOLLOW,
        )?;
        Ok(File::from(fd))
    }

    /// The real path inside the topmost layer that has it (for messages and the context
    /// index; open it with [`Found::open`], never by this path). Made on demand: a listing
    /// of a large tree holds a `Found` per entry.
    pub fn real_path(&self) -> PathBuf {
        let relative = self.resolved.strip_prefix("/").unwrap_or(&self.resolved);
        self.layer_dir.path.join(relative)
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

    /// Layer indexes (bottom = 0) whose copy of this directory is visible: the topmost one
    /// and, unless it is opaque, every lower one down to the first opaque copy.
    fn layers(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.layer).chain(self.lower.iter().copied())
    }

    /// The layer (bottom = 0) whose copy is visible.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// The target of a symlink, as stored.
    pub fn read_link(&self) -> io::Result<PathBuf> {
        let fd = open_beneath(
            self.layer_dir.fd.as_ref(),
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
pub fn is_whiteout(stat: &Stat) -> bool {
    stat.file_type() == rustix::fs::FileType::CharacterDevice && stat.rdev == 0
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

/// The entries of a directory (its layers' copies open in `dirs`, by layer index) that
/// layers from `first` up have (or delete), sorted by name: a name only lower layers have is
/// left out without being looked at.
fn names_in(dirs: &[(usize, OwnedFd)], first: usize) -> Vec<OsString> {
    let mut names: BTreeSet<OsString> = BTreeSet::new();
    let mut hidden: HashSet<OsString> = HashSet::new();
    for (_, fd) in dirs.iter().filter(|(index, _)| *index >= first) {
        let Ok(entries) = rustix::fs::Dir::read_from(fd) else {
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
                && rustix::fs::statat(fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| is_whiteout(&Stat::from(st)));
            if whiteout {
                hidden.insert(name.to_owned());
            } else {
                names.insert(name.to_owned());
            }
        }
    }
    names.into_iter().collect()
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

/// What one layer has at a path: its metadata and, for a directory, whether it is opaque.
struct Entry {
    metadata: Stat,
    opaque: bool,
}

impl Entry {
    /// The entry `name` of the directory open at `dir`: one `stat` of that name, which is
    /// never followed if it is a link (and a directory's opacity, through the directory).
    fn at(dir: &OwnedFd, name: &OsStr) -> Option<Entry> {
        let metadata = Stat::from(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?);
        let opaque = metadata.is_dir()
            && rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .is_ok_and(is_opaque_fd);
        Some(Entry { metadata, opaque })
    }
}

impl MergedView {
    /// A view of `layers`, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        let layers = layers
            .into_iter()
            .map(|path| {
                let fd = rustix::fs::open(
                    &path,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok();
                Arc::new(LayerDir { path, fd })
            })
            .collect();
        MergedView { layers }
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
            self.layers[index].fd.as_ref(),
            path,
            OFlags::PATH | OFlags::NOFOLLOW,
        )
        .ok()?;
        let metadata = Stat::from(rustix::fs::fstat(&fd).ok()?);
        // `fgetxattr` needs a descriptor that is more than `O_PATH`: reopen the directory
        // through the one we hold (no path walk on the host).
        let opaque = metadata.is_dir()
            && rustix::fs::openat(
                &fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .is_ok_and(is_opaque_fd);
        Some(Entry { metadata, opaque })
    }

    fn found(&self, index: usize, resolved: PathBuf, metadata: Stat) -> Found {
        Found {
            metadata,
            resolved,
            layer_dir: self.layers[index].clone(),
            layer: index,
            lower: Vec::new(),
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
            root.lower.push(index);
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
        self.child_with(dir, name, |index, path| self.entry(index, path))
    }

    /// The entry `name` inside the directory `dir`, from what `entry` says each layer
    /// (`index`) has at its path.
    fn child_with(
        &self,
        dir: &Found,
        name: &OsStr,
        entry: impl Fn(usize, &Path) -> Option<Entry>,
    ) -> Option<Found> {
        if !dir.metadata.is_dir() {
            return None;
        }
        let path = dir.resolved.join(name);
        let mut found: Option<Found> = None;
        for index in dir.layers() {
            let Some(entry) = entry(index, &path) else {
                continue;
            };
            match &mut found {
                None => {
                    if is_whiteout(&entry.metadata) {
                        return None;
                    }
                    let is_dir = entry.metadata.is_dir();
                    found = Some(self.found(index, path.clone(), entry.metadata));
                    if !is_dir || entry.opaque {
                        break;
                    }
                }
                Some(top) => {
                    // Lower copies of a directory show through until a non-directory, a
                    // whiteout or an opaque copy.
                    if !entry.metadata.is_dir() {
                        break;
                    }
                    top.lower.push(index);
                    if entry.opaque {
                        break;
                    }
                }
            }
        }
        found
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
        names_in(&self.open_dirs(dir), 0)
    }

    /// Each visible layer's copy of the directory `dir`, open for reading, by layer index.
    fn open_dirs(&self, dir: &Found) -> Vec<(usize, OwnedFd)> {
        dir.layers()
            .filter_map(|index| {
                let fd = open_beneath(
                    self.layers[index].fd.as_ref(),
                    &dir.resolved,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                )
                .ok()?;
                Some((index, fd))
            })
            .collect()
    }

    /// Opens `path` for reading in layer `index` alone, as it is there: no lookup through the
    /// other layers, no link followed (for a path a walk found in that layer).
    pub(crate) fn open_in_layer(&self, index: usize, path: &Path) -> io::Result<File> {
        let fd = open_beneath(
            self.layers[index].fd.as_ref(),
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW,
        )?;
        Ok(File::from(fd))
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
        self.walk_each(dir_path, 0, &mut |path, found| out.push((path, found)));
        out
    }

    /// Like [`MergedView::walk`], but hands each entry to `visit` as it is found (a caller
    /// that keeps less than the whole [`Found`] of every entry need not hold them all), and
    /// only the entries whose visible copy is in layer `first` or above; a directory no such
    /// layer has is not read at all, so the cost follows the size of the top layers, not of
    /// the image.
    pub fn walk_each(&self, dir_path: &Path, first: usize, visit: &mut dyn FnMut(PathBuf, Found)) {
        if let Some(dir) = self.lookup_follow(dir_path) {
            let named = Path::new("/").join(clean_components(dir_path).iter().collect::<PathBuf>());
            self.walk_into(&named, &dir, first, visit);
        }
    }

    /// [`walk_each`](Self::walk_each) on all cores: every entry is handed to `map` (on any
    /// thread), and what it returns comes back in the order `walk_each` visits the entries.
    /// Directories are read side by side: a large tree (an image's 100,000 files) is listed in
    /// about half the time on two cores.
    pub fn walk_map<T: Send>(
        &self,
        dir_path: &Path,
        first: usize,
        map: &(dyn Fn(PathBuf, Found) -> T + Sync),
    ) -> Vec<T> {
        match self.lookup_follow(dir_path) {
            Some(dir) => {
                let named =
                    Path::new("/").join(clean_components(dir_path).iter().collect::<PathBuf>());
                self.walk_map_into(&named, &dir, first, map)
            }
            None => Vec::new(),
        }
    }

    fn walk_into(
        &self,
        named: &Path,
        dir: &Found,
        first: usize,
        visit: &mut dyn FnMut(PathBuf, Found),
    ) {
        for (child_named, child, descend) in self.children(named, dir, first) {
            if child.layer() >= first {
                if !descend {
                    visit(child_named, child);
                    continue;
                }
                visit(child_named.clone(), child.clone());
            }
            if descend {
                self.walk_into(&child_named, &child, first, visit);
            }
        }
    }

    fn walk_map_into<T: Send>(
        &self,
        named: &Path,
        dir: &Found,
        first: usize,
        map: &(dyn Fn(PathBuf, Found) -> T + Sync),
    ) -> Vec<T> {
        use rayon::prelude::*;
        self.children(named, dir, first)
            .into_par_iter()
            .flat_map_iter(|(child_named, child, descend)| {
                let below = if descend {
                    self.walk_map_into(&child_named, &child, first, map)
                } else {
                    Vec::new()
                };
                let own = (child.layer() >= first).then(|| map(child_named, child));
                own.into_iter().chain(below)
            })
            .collect()
    }

    /// What a walk from layer `first` finds in the directory `dir` (named `named` in the
    /// view), in name order: each entry it visits or descends into, with its name in the view
    /// and whether it descends (a directory that layer `first` or one above it has).
    fn children(&self, named: &Path, dir: &Found, first: usize) -> Vec<(PathBuf, Found, bool)> {
        if !dir.metadata.is_dir() {
            return Vec::new();
        }
        // Each layer's copy of the directory, open once: an entry is one `stat` of its name
        // in there, not a walk of its whole path from the layer's root.
        let dirs = self.open_dirs(dir);
        names_in(&dirs, first)
            .into_iter()
            .filter_map(|name| {
                let child = self.child_with(dir, &name, |index, _| {
                    let (_, fd) = dirs.iter().find(|(open, _)| *open == index)?;
                    Entry::at(fd, &name)
                })?;
                let descend = child.metadata.is_dir() && child.layers().any(|index| index >= first);
                (descend || child.layer() >= first).then(|| (named.join(&name), child, descend))
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// Builds a layer directory from `(path, kind)` pairs: `f:content`, `d`, `l:target`,
    /// `w` (whiteout), `o` (opaque directory).
    pub(crate) fn layer(root: &Path, entries: &[(&str, &str)]) -> PathBuf {
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

    /// The walk on all cores visits what the walk on one does, in the same order: whiteouts,
    /// opaque directories and the layers below `first` included.
    #[test]
    fn a_walk_on_all_cores_lists_what_a_walk_on_one_lists_in_its_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut bottom: Vec<(String, &str)> = vec![
            ("etc/passwd".into(), "f:root"),
            ("gone/x".into(), "f:x"),
            ("opaque/old".into(), "f:o"),
        ];
        let mut top: Vec<(String, &str)> = vec![
            ("etc/group".into(), "f:g"),
            ("gone".into(), "w"),
            ("opaque".into(), "o"),
            ("opaque/new".into(), "f:n"),
            ("link".into(), "l:/etc"),
        ];
        for d in 0..20 {
            for f in 0..20 {
                let layer = if (d + f) % 3 == 0 {
                    &mut bottom
                } else {
                    &mut top
                };
                layer.push((format!("tree/d{d:02}/f{f:02}"), "f:data"));
            }
        }
        fn borrowed<'a>(list: &'a [(String, &'static str)]) -> Vec<(&'a str, &'static str)> {
            list.iter()
                .map(|(path, kind)| (path.as_str(), *kind))
                .collect()
        }
        let view = MergedView::new(vec![
            layer(&tmp.path().join("0"), &borrowed(&bottom)),
            layer(&tmp.path().join("1"), &borrowed(&top)),
        ]);
        for first in [0, 1] {
            let mut one_core = Vec::new();
            view.walk_each(Path::new("/"), first, &mut |path, found| {
                one_core.push((path, found.layer()));
            });
            let all_cores =
                view.walk_map(Path::new("/"), first, &|path, found| (path, found.layer()));
            assert!(one_core.len() > 250, "{first}: {}", one_core.len());
            assert_eq!(all_cores, one_core, "from layer {first}");
        }
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
