//! [`LayeredFs`]: an image's layer snapshots as an [`ImageFs`], through a [`MergedView`].

use crate::{EntryKind, FileEntry, ImageFs, MergedView, not_a_file};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An image's layer snapshots (directories in overlayfs "upper" form, bottom first) as an
/// [`ImageFs`]: every entry says which layer's copy is visible. The snapshots must not change
/// while it is in use: the first listing is kept, and a regular file it found opens through
/// its entry, without a new lookup through every layer of every directory on its path (what
/// made a catalog of an image spend most of its time resolving paths).
#[derive(Debug, Clone)]
pub struct LayeredFs {
    view: MergedView,
    first_listed: usize,
    /// The regular files of the first listing, by path: the layer whose copy is visible
    /// (the path has no link on the way: a listing follows none).
    listed_files: OnceLock<HashMap<PathBuf, usize>>,
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
        let entries = self
            .view
            .walk_map(Path::new("/"), self.first_listed, &|path, found| {
                FileEntry {
                    path,
                    size: found.metadata.size,
                    mode: found.metadata.mode & 0o7777,
                    kind: EntryKind::of(found.metadata.file_type()),
                    layer: Some(found.layer()),
                }
            });
        let files = entries
            .iter()
            .filter(|entry| entry.kind == EntryKind::File)
            .filter_map(|entry| Some((entry.path.clone(), entry.layer?)))
            .collect();
        // A later listing (there is seldom one) finds the same files.
        let _ = self.listed_files.set(files);
        Ok(entries)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        if let Some(&layer) = self.listed_files.get().and_then(|files| files.get(path)) {
            return self.view.open_in_layer(layer, path);
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
    use crate::merged::tests::layer;

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
}
