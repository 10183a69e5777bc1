//! An image's file system as the SBOM catalogers read it: its layer snapshots stacked as the
//! build sees them ([`MergedView`]), each file with the layer whose copy is visible, so that
//! every package found is attributed to the layer (and the instruction) that added it.

use crate::convert::from::unpacked_snapshot;
use crate::fs::rootfs::MergedView;
use crate::outcome::BuildError;
use stagecraft_sbom::{FileEntry, ImageFs};
use stagecraft_store::{Image, Store};
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The stacked layer snapshots of an image, read without mounting anything; symlinks resolve
/// inside the image.
#[derive(Debug, Clone)]
pub struct LayerStackFs {
    view: MergedView,
}

impl LayerStackFs {
    /// The file system of `snapshots` (layer directories in the store, bottom first).
    pub fn new(snapshots: Vec<PathBuf>) -> Self {
        LayerStackFs {
            view: MergedView::new(snapshots),
        }
    }

    /// The file system of a stored image: its layers' snapshots, unpacked from their blobs
    /// when the store has none yet (a pulled or loaded image that no build used).
    pub fn of_image(store: &Store, image: &Image) -> Result<Self, BuildError> {
        let snapshots = image
            .manifest
            .layers
            .iter()
            .zip(&image.config.rootfs.diff_ids)
            .map(|(layer, diff_id)| {
                unpacked_snapshot(store, diff_id, &layer.digest).map_err(|e| {
                    BuildError::Other(format!("unpacking layer {}: {e}", layer.digest))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LayerStackFs::new(snapshots))
    }
}

impl ImageFs for LayerStackFs {
    fn files(&self) -> io::Result<Vec<FileEntry>> {
        Ok(self
            .view
            .walk(Path::new("/"))
            .into_iter()
            .filter(|(_, found)| found.metadata.is_file())
            .map(|(path, found)| FileEntry {
                path,
                size: found.metadata.len(),
                mode: found.metadata.mode() & 0o7777,
                layer: Some(found.layer()),
            })
            .collect())
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        let found = self
            .view
            .lookup_follow(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if !found.metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        found.open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_carry_the_layer_whose_copy_is_visible() {
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("0");
        let upper = dir.path().join("1");
        for (layer, content) in [(&lower, "old"), (&upper, "new")] {
            std::fs::create_dir_all(layer.join("var/lib/dpkg")).unwrap();
            std::fs::write(layer.join("var/lib/dpkg/status"), content).unwrap();
        }
        std::fs::write(lower.join("base"), "b").unwrap();
        std::os::unix::fs::symlink("/var/lib/dpkg/status", upper.join("link")).unwrap();
        let fs = LayerStackFs::new(vec![lower, upper]);
        let mut files: Vec<(String, Option<usize>)> = fs
            .files()
            .unwrap()
            .into_iter()
            .map(|f| (f.path.display().to_string(), f.layer))
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                ("/base".to_owned(), Some(0)),
                ("/var/lib/dpkg/status".to_owned(), Some(1))
            ]
        );
        let text = io::read_to_string(fs.open(Path::new("/link")).unwrap()).unwrap();
        assert_eq!(text, "new");
        assert!(fs.open(Path::new("/var")).is_err());
    }
}
