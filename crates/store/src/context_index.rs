//! Context indexes: one small file per build context under
//! `context-index/<sha256 of the context's canonical path>`.
//!
//! What is in the file is the builder's business (opaque bytes here): the
//! content hashes of the context's files by their stat, so that a rebuild
//! rereads only the files that changed. Nothing refers to an index and an
//! index refers to nothing; it is a hint, and losing it costs one rehash.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use stagecraft_image::Digest;

use crate::error::{IoContext, Result};
use crate::store::{Store, read_if_present};

impl Store {
    /// The index saved for the build context `context` (any path that
    /// resolves to the same directory names the same index), or `None` if
    /// there is none.
    pub fn get_context_index(&self, context: &Path) -> Result<Option<Vec<u8>>> {
        read_if_present(self.context_index_path(context)?, "read context index")
    }

    /// Stores (or replaces, atomically) the index of the build context
    /// `context`. Concurrent builds of one context may each save theirs: the
    /// last one stays, whole. Not synced: a crash may
    /// cost the index, never a wrong hash (entries are keyed by the files' stat).
    pub fn put_context_index(&self, context: &Path, bytes: &[u8]) -> Result<()> {
        let path = self.context_index_path(context)?;
        let _lease = self.lease()?;
        self.write_hint(&path, bytes)
    }

    /// `context-index/<hex>`, named by the sha256 of the context's canonical
    /// path (symlinks, `.` and `..` resolved).
    fn context_index_path(&self, context: &Path) -> Result<PathBuf> {
        let canonical = fs::canonicalize(context).at("resolve the build context", context)?;
        let name = Digest::of(canonical.as_os_str().as_bytes());
        Ok(self.context_index_dir().join(name.hex()))
    }
}
