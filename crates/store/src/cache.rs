//! Build cache records: small documents under `cache/<key>`.
//!
//! A record is opaque bytes (JSON by convention). Any `sha256:<64 hex>`
//! text inside a record counts as a reference: [`Store::prune`] keeps the
//! blobs and snapshots so named (and, for manifests and configs, what they
//! reference) for as long as the record exists.
//!
//! Records are hints, written without fsyncs (`Store::write_hint`): after a
//! power loss one may be missing, old or unreadable, and readers must take an
//! unreadable record as absent (a rebuild), and check that what a record
//! names is still there before using it.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};
use crate::scratch::ScratchFile;
use crate::store::{Store, move_into, read_if_present};

const MAX_KEY_LEN: usize = 200;

impl Store {
    /// Stores (or replaces, atomically) the record `key`. The same bytes again write nothing.
    pub fn put_cache_record(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.cache_record_path(key)?;
        let _lease = self.lease()?;
        if fs::read(&path).is_ok_and(|existing| existing == bytes) {
            return Ok(());
        }
        self.write_hint(&path, bytes)
    }

    /// Stores (or replaces, atomically) the record `key` with the contents of `file`, by
    /// moving the file into place rather than copying its bytes: for a record too large to
    /// hold in memory, written to a scratch file as it is made. A record with the same
    /// bytes is left as it is.
    pub fn put_cache_record_file(&self, key: &str, file: ScratchFile) -> Result<()> {
        let path = self.cache_record_path(key)?;
        let _lease = self.lease()?;
        // Dropping the path removes the scratch file when it is not moved.
        let (_file, scratch) = file.into_parts();
        if same_bytes(&path, &scratch) {
            return Ok(());
        }
        // Not synced: a hint, like every record (see the module's docs).
        move_into(scratch, &path)
    }

    /// Stores `value` as the JSON record `key`.
    pub fn put_cache_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Serialize {
            what: "cache record",
            source,
        })?;
        self.put_cache_record(key, &bytes)
    }

    /// The record `key`, or `None` if there is none.
    pub fn get_cache_record(&self, key: &str) -> Result<Option<Vec<u8>>> {
        read_if_present(self.cache_record_path(key)?, "read cache record")
    }

    /// The JSON record `key` decoded as `T`, or `None` if there is none.
    pub fn get_cache_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(bytes) = self.get_cache_record(key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                what: "cache record",
                name: key.to_owned(),
                source,
            })
    }

    /// Removes the record `key`; returns whether it existed.
    pub fn remove_cache_record(&self, key: &str) -> Result<bool> {
        let path = self.cache_record_path(key)?;
        let _lease = self.lease()?;
        match fs::remove_file(&path) {
            // Not synced: a removed record that a crash brings back is only a stale hint.
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Io {
                action: "remove cache record",
                path,
                source,
            }),
        }
    }

    /// The keys of all records, sorted.
    pub fn list_cache_records(&self) -> Result<Vec<String>> {
        let dir = self.cache_dir();
        let mut keys = Vec::new();
        for entry in fs::read_dir(&dir).at("list", &dir)? {
            let entry = entry.at("list", &dir)?;
            if let Some(key) = entry.file_name().to_str()
                && check_key(key).is_ok()
            {
                keys.push(key.to_owned());
            }
        }
        keys.sort();
        Ok(keys)
    }

    pub(crate) fn cache_record_path(&self, key: &str) -> Result<PathBuf> {
        check_key(key).map_err(|reason| Error::CacheKey {
            key: key.to_owned(),
            reason,
        })?;
        Ok(self.cache_dir().join(key))
    }
}

/// Whether the files `a` and `b` both exist and hold the same bytes (read a block at a time,
/// and not at all when their sizes differ).
fn same_bytes(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::io::Read as _;
    const BLOCK: usize = 64 * 1024;
    let (Ok(mut a), Ok(mut b)) = (fs::File::open(a), fs::File::open(b)) else {
        return false;
    };
    match (a.metadata(), b.metadata()) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {}
        _ => return false,
    }
    let (mut block_a, mut block_b) = (vec![0; BLOCK], vec![0; BLOCK]);
    loop {
        let n = match a.read(&mut block_a) {
            Ok(0) => return b.read(&mut block_b).is_ok_and(|n| n == 0),
            Ok(n) => n,
            Err(_) => return false,
        };
        if b.read_exact(&mut block_b[..n]).is_err() || block_a[..n] != block_b[..n] {
            return false;
        }
    }
}

/// Keys become file names: a small alphabet keeps them portable and rules
/// out path traversal.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("it is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return Err("it is too long");
    }
    if key.starts_with('.') {
        return Err("it starts with '.'");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
    {
        return Err("it contains a character outside the allowed set");
    }
    Ok(())
}
