//! Snapshots: unpacked layers, `snapshots/<diff-id hex>/{fs/,complete}`.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use stagecraft_image::Digest;

use crate::error::{Error, IoContext, Result};
use crate::store::{Store, sync_filesystem};

/// The directory holding a snapshot's files.
const CONTENT_DIR: &str = "fs";
/// Present, and containing the diff ID, only in a finished snapshot.
pub(crate) const COMPLETE_MARKER: &str = "complete";

impl Store {
    /// The directory with the unpacked content of the layer whose
    /// uncompressed digest is `diff_id`, if that snapshot exists and is
    /// complete. The directory must be treated as read-only (mount it as
    /// an overlay lower layer, copy from it).
    pub fn snapshot_path(&self, diff_id: &Digest) -> Option<PathBuf> {
        let dir = self.snapshot_dir(diff_id);
        marker_matches(&dir, diff_id).then(|| dir.join(CONTENT_DIR))
    }

    /// Starts writing back the file system that holds `dir` (a directory soon to become a
    /// snapshot, see [`create_snapshot`](Self::create_snapshot)) and waits for it: called
    /// beside other work (the hashing of the directory's layer tar), it leaves the sync that
    /// installing the snapshot needs little to wait for. A hint: nothing depends on it.
    pub fn write_back_early(&self, dir: &Path) -> Result<()> {
        sync_filesystem(dir)
    }

    /// Returns the snapshot for `diff_id`, creating it first if needed by
    /// calling `fill` with an empty temporary directory to populate.
    ///
    /// The directory is renamed into place only after `fill` succeeded, the
    /// completion marker was written and the filesystem synced; if `fill`
    /// fails, nothing is kept. Concurrent creators of the same snapshot may
    /// both run `fill`; the first rename wins and the other's copy is
    /// discarded. `fill` is trusted to produce the content of `diff_id`.
    pub fn create_snapshot<F, E>(&self, diff_id: &Digest, fill: F) -> Result<PathBuf>
    where
        F: FnOnce(&Path) -> Result<(), E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _lease = self.lease()?;
        if let Some(existing) = self.snapshot_path(diff_id) {
            return Ok(existing);
        }
        let mut guard = self.scratch_dir("snapshot")?;
        let content = guard.path.join(CONTENT_DIR);
        DirBuilder::new()
            .mode(0o755)
            .create(&content)
            .at("create directory", &content)?;

        fill(&content).map_err(|source| Error::SnapshotFill {
            diff_id: diff_id.clone(),
            source: source.into(),
        })?;

        let marker = guard.path.join(COMPLETE_MARKER);
        let mut file = File::create(&marker).at("create", &marker)?;
        file.write_all(diff_id.as_str().as_bytes())
            .at("write", &marker)?;
        // One sync for the content and the marker: the marker can only claim the content
        // under `snapshots/`, where the directory goes once both are durable.
        sync_filesystem(&guard.path)?;

        let dest = self.snapshot_dir(diff_id);
        match fs::rename(&guard.path, &dest) {
            Ok(()) => {
                guard.armed = false;
                // The rename is not synced: if a crash undoes it, the snapshot is back in
                // `ingest/` (removed as a leftover) and is unpacked again from its blob.
                Ok(dest.join(CONTENT_DIR))
            }
            // Renaming a directory onto a non-empty one fails: another
            // creator won the race. Use theirs; ours is removed by the guard.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                ) =>
            {
                self.snapshot_path(diff_id).ok_or(Error::Io {
                    action: "install snapshot at",
                    path: dest,
                    source: e,
                })
            }
            Err(source) => Err(Error::Io {
                action: "install snapshot at",
                path: dest,
                source,
            }),
        }
    }
}

/// Whether `dir` is a finished snapshot of `diff_id`: its marker names it
/// and its content directory exists.
pub(crate) fn marker_matches(dir: &Path, diff_id: &Digest) -> bool {
    fs::read(dir.join(COMPLETE_MARKER)).is_ok_and(|text| text == diff_id.as_str().as_bytes())
        && dir.join(CONTENT_DIR).is_dir()
}
