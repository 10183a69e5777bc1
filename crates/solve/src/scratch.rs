//! Scratch directories of this process in the store's `ingest/`, named so that an interrupted
//! build can remove exactly its own.

use std::path::Path;

/// The name prefix of this process's scratch directories in the store's `ingest/`: it carries
/// the process id, so an interrupted build can remove exactly its own (see
/// [`remove_scratch_dirs`]).
pub(crate) fn scratch_prefix(kind: &str) -> String {
    format!("{kind}-{}-", std::process::id())
}

/// Removes the scratch directories this process created under `ingest` (for a build that was
/// interrupted: the normal path removes them as it goes).
pub fn remove_scratch_dirs(ingest: &Path) {
    let own = [scratch_prefix("step"), scratch_prefix("mount")];
    for entry in std::fs::read_dir(ingest).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if own
            .iter()
            .any(|prefix| name.to_string_lossy().starts_with(prefix.as_str()))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
