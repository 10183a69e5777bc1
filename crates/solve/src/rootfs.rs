//! A read-only merged view of a stack of layer snapshots, without mounting anything.
//!
//! Snapshots are directories in overlayfs "upper" form: a deleted path is a 0/0 character
//! device, a directory that hides everything below it carries the `trusted.overlay.opaque`
//! (or `user.overlay.opaque`) attribute. The view answers what the build needs to know
//! about a stage's filesystem before or without running anything in it: does `/app` exist and is
//! it a directory, what does `/etc/passwd` say, which files does `COPY --from=stage /out/` take.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Layers stacked bottom (first) to top (last).
#[derive(Debug, Clone, Default)]
pub struct MergedView {
    layers: Vec<PathBuf>,
}

/// A path found in the view: where its bytes live and its metadata.
#[derive(Debug, Clone)]
pub struct Found {
    /// The real path inside the topmost layer that has it.
    pub real_path: PathBuf,
    /// Its metadata (symlinks not followed).
    pub metadata: Metadata,
    /// Layer indexes (bottom = 0) whose copy of this directory is visible: the topmost one and,
    /// unless it is opaque, every lower one down to the first opaque copy.
    layers: Vec<usize>,
}

/// Whether a snapshot entry is an overlay whiteout (a 0/0 character device).
pub fn is_whiteout(metadata: &Metadata) -> bool {
    metadata.file_type().is_char_device() && metadata.rdev() == 0
}

/// Whether a snapshot directory is marked opaque.
pub fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut value = [0u8; 1];
            matches!(rustix::fs::lgetxattr(path, *name, &mut value), Ok(1) if value[0] == b'y')
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

impl MergedView {
    /// A view of `layers`, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        MergedView { layers }
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
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

    fn root(&self) -> Option<Found> {
        let top = self.layers.len().checked_sub(1)?;
        let metadata = fs::symlink_metadata(&self.layers[top]).ok()?;
        let mut layers = Vec::new();
        for index in (0..self.layers.len()).rev() {
            layers.push(index);
            if is_opaque(&self.layers[index]) {
                break;
            }
        }
        Some(Found {
            real_path: self.layers[top].clone(),
            metadata,
            layers,
        })
    }

    fn lookup_with(&self, path: &Path, follow_last: bool, depth: usize) -> Option<Found> {
        if depth > 40 {
            return None;
        }
        let parts = clean_components(path);
        let mut current = self.root()?;
        let mut walked = PathBuf::from("/");
        for (i, name) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let child = self.child(&current, &walked, name)?;
            walked.push(name);
            if child.metadata.file_type().is_symlink() && (!last || follow_last) {
                let target = fs::read_link(&child.real_path).ok()?;
                let base = walked.parent().unwrap_or(Path::new("/")).to_path_buf();
                let mut resolved = if target.is_absolute() {
                    target
                } else {
                    base.join(target)
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

    /// The entry `name` inside the directory `dir` (found at `walked`).
    fn child(&self, dir: &Found, walked: &Path, name: &OsString) -> Option<Found> {
        if !dir.metadata.is_dir() {
            return None;
        }
        let relative = walked.strip_prefix("/").unwrap_or(walked).join(name);
        let mut found: Option<Found> = None;
        for &index in &dir.layers {
            let candidate = self.layers[index].join(&relative);
            let Ok(metadata) = fs::symlink_metadata(&candidate) else {
                continue;
            };
            match &mut found {
                None => {
                    if is_whiteout(&metadata) {
                        return None;
                    }
                    let opaque = metadata.is_dir() && is_opaque(&candidate);
                    let is_dir = metadata.is_dir();
                    found = Some(Found {
                        real_path: candidate,
                        metadata,
                        layers: vec![index],
                    });
                    if !is_dir || opaque {
                        break;
                    }
                }
                Some(top) => {
                    // Lower copies of a directory show through until a non-directory, a
                    // whiteout or an opaque copy.
                    if !metadata.is_dir() {
                        break;
                    }
                    top.layers.push(index);
                    if is_opaque(&candidate) {
                        break;
                    }
                }
            }
        }
        found
    }

    /// The visible entries of a directory, sorted by name.
    pub fn read_dir(&self, dir: &Found) -> Vec<OsString> {
        let mut names: Vec<OsString> = Vec::new();
        let mut hidden: Vec<OsString> = Vec::new();
        for &index in &dir.layers {
            let relative = dir
                .real_path
                .strip_prefix(&self.layers[dir.layers[0]])
                .unwrap_or(Path::new(""));
            let Ok(entries) = fs::read_dir(self.layers[index].join(relative)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if names.contains(&name) || hidden.contains(&name) {
                    continue;
                }
                match entry.metadata() {
                    Ok(m) if is_whiteout(&m) => hidden.push(name),
                    Ok(_) => names.push(name),
                    Err(_) => {}
                }
            }
        }
        names.sort();
        names
    }

    /// Reads a whole file from the view (following symlinks), if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let found = self.lookup_follow(path)?;
        if !found.metadata.is_file() {
            return None;
        }
        fs::read(found.real_path).ok()
    }

    /// Every visible path below `dir` (itself excluded), depth-first in name order, with its
    /// found entry. Symlinks are listed, not followed.
    pub fn walk(&self, dir_path: &Path) -> Vec<(PathBuf, Found)> {
        let mut out = Vec::new();
        if let Some(dir) = self.lookup_follow(dir_path) {
            self.walk_into(dir_path, &dir, &mut out);
        }
        out
    }

    fn walk_into(&self, path: &Path, dir: &Found, out: &mut Vec<(PathBuf, Found)>) {
        if !dir.metadata.is_dir() {
            return;
        }
        let walked = Path::new("/").join(clean_components(path).iter().collect::<PathBuf>());
        for name in self.read_dir(dir) {
            let Some(child) = self.child(dir, &walked, &name) else {
                continue;
            };
            let child_path = walked.join(&name);
            out.push((child_path.clone(), child.clone()));
            self.walk_into(&child_path, &child, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
