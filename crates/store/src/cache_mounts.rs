//! Cache mounts: the directories `RUN --mount=type=cache` binds into a
//! step, kept across builds under `cache-mounts/`.
//!
//! A mount is named by its id (`id=`, else its target), but the directory by
//! [`cache_mount_key`], a hash of the id, since an id is any string
//! (`/root/.cache/go-build`). `<key>.json` beside the directory records the
//! id, so that the store can list and export its mounts; its modification
//! time is when a build last used the mount. Directories made before ids
//! were recorded get their file the next time a build uses them.
//!
//! `<key>.lock` is the mount's `flock` lock ([`Store::lock_cache_mount`]):
//! steps hold it shared (`sharing=shared`) or exclusively (`locked`,
//! `private`) while they run; an export or an import holds it exclusively,
//! so that it sees or replaces the contents between steps, never in the
//! middle of one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use stagecraft_image::{Digest, Digester};

use crate::error::{Error, IoContext, Result};
use crate::scratch::ScratchDir;
use crate::store::{Lease, Store, sync_filesystem, sync_parent};

/// How a lock on a cache mount is held ([`Store::lock_cache_mount`]).
/// Ordered from weaker to stronger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CacheMountAccess {
    /// Alongside other shared holders: steps with `sharing=shared`, which
    /// BuildKit lets use one cache at the same time.
    Shared,
    /// Alone: steps with `sharing=locked` or `private`, and whatever must see
    /// the contents whole (export) or swap them (import).
    Exclusive,
}

/// A held cache mount lock, released on drop.
#[derive(Debug)]
#[must_use = "the cache mount lock is released as soon as it is dropped"]
pub struct CacheMountLock {
    _file: File,
}

/// A cache mount in the store, as [`Store::list_cache_mounts`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMount {
    /// The mount's id; `None` for a directory made before ids were recorded
    /// and not used since.
    pub id: Option<String>,
    /// The directory's name under `cache-mounts/`: [`cache_mount_key`] of the id.
    pub key: String,
    /// The directory bound into steps.
    pub path: PathBuf,
    /// Bytes in regular files (apparent sizes).
    pub size: u64,
    /// Entries below the directory: files, directories, links and the rest.
    pub files: u64,
    /// When a build last used the mount, if recorded.
    pub last_used: Option<SystemTime>,
}

/// A cache mount being made: an empty directory in `ingest/` to fill, then
/// moved into place by [`NewCacheMount::install`] or
/// [`NewCacheMount::replace`]. Dropped before that, it is removed. Holds a
/// [`Lease`] so that no prune takes the directory away meanwhile.
#[derive(Debug)]
pub struct NewCacheMount {
    store: Store,
    id: String,
    dir: ScratchDir,
    _lease: Lease,
}

/// What `<key>.json` holds.
#[derive(Serialize, Deserialize)]
struct Recorded {
    id: String,
}

/// The directory name of cache mount `id`: the hex SHA-256 of the id's
/// length (8 bytes, little-endian) followed by the id.
pub fn cache_mount_key(id: &str) -> String {
    let mut digester = Digester::new();
    digester.update(&(id.len() as u64).to_le_bytes());
    digester.update(id.as_bytes());
    digester.finish().hex().to_owned()
}

impl Store {
    /// The directory of cache mount `id`, if it exists. Use it only under
    /// the mount's lock ([`Store::lock_cache_mount`]).
    pub fn cache_mount_path(&self, id: &str) -> Option<PathBuf> {
        let dir = self.cache_mounts_dir().join(cache_mount_key(id));
        dir.is_dir().then_some(dir)
    }

    /// [`Store::cache_mount_path`] for a build about to use the mount:
    /// records that it is used now (and its id, if an older stagecraft made
    /// it without).
    pub fn use_cache_mount(&self, id: &str) -> Result<Option<PathBuf>> {
        let Some(dir) = self.cache_mount_path(id) else {
            return Ok(None);
        };
        let record = self.cache_mount_record_path(&cache_mount_key(id));
        match OpenOptions::new().write(true).open(&record) {
            Ok(file) => file
                .set_modified(SystemTime::now())
                .at("set the modification time of", &record)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _lease = self.lease()?;
                self.record_cache_mount(id)?;
            }
            Err(source) => {
                return Err(Error::Io {
                    action: "open",
                    path: record,
                    source,
                });
            }
        }
        Ok(Some(dir))
    }

    /// An empty directory to fill with the contents of cache mount `id`; its
    /// own mode and owner become the mount's.
    pub fn new_cache_mount(&self, id: &str) -> Result<NewCacheMount> {
        let lease = self.lease()?;
        let dir = self.scratch_dir("cache-mount")?;
        Ok(NewCacheMount {
            store: self.clone(),
            id: id.to_owned(),
            dir,
            _lease: lease,
        })
    }

    /// Locks cache mount `id` (which need not exist yet), waiting for
    /// holders that exclude `access`. Locks are per open file, so two locks
    /// on one mount in one process exclude each other like any two: take
    /// each mount once, and several in one order ([`CacheMountAccess`] says
    /// which to take when a step names a mount twice).
    pub fn lock_cache_mount(&self, id: &str, access: CacheMountAccess) -> Result<CacheMountLock> {
        let path = self
            .cache_mounts_dir()
            .join(format!("{}.lock", cache_mount_key(id)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at("open lock file", &path)?;
        match access {
            CacheMountAccess::Shared => file.lock_shared().at("take the shared lock on", &path)?,
            CacheMountAccess::Exclusive => file.lock().at("take the exclusive lock on", &path)?,
        }
        Ok(CacheMountLock { _file: file })
    }

    /// Every cache mount in the store, those with an id first, sorted by id,
    /// then the others by key. Sizes are measured by walking each directory
    /// without its lock, so a mount in use may be counted mid-change.
    pub fn list_cache_mounts(&self) -> Result<Vec<CacheMount>> {
        let dir = self.cache_mounts_dir();
        let mut mounts = Vec::new();
        for entry in fs::read_dir(&dir).at("list", &dir)? {
            let entry = entry.at("list", &dir)?;
            let Some(key) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if Digest::from_hex(&key).is_err() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let (id, last_used) = self.read_cache_mount_record(&key);
            let (size, files) = tree_stats(&entry.path());
            mounts.push(CacheMount {
                id,
                key,
                path: entry.path(),
                size,
                files,
                last_used,
            });
        }
        mounts
            .sort_by(|a, b| (a.id.is_none(), &a.id, &a.key).cmp(&(b.id.is_none(), &b.id, &b.key)));
        Ok(mounts)
    }

    pub(crate) fn cache_mounts_dir(&self) -> PathBuf {
        self.root().join("cache-mounts")
    }

    fn cache_mount_record_path(&self, key: &str) -> PathBuf {
        self.cache_mounts_dir().join(format!("{key}.json"))
    }

    /// Writes `<key>.json` naming `id` (which also marks the mount used now).
    /// The caller holds a lease: the file is staged in `ingest/`.
    fn record_cache_mount(&self, id: &str) -> Result<()> {
        let bytes = serde_json::to_vec(&Recorded { id: id.to_owned() }).map_err(|source| {
            Error::Serialize {
                what: "cache mount record",
                source,
            }
        })?;
        self.write_atomically(&self.cache_mount_record_path(&cache_mount_key(id)), &bytes)
    }

    /// The id `<key>.json` records and when it was last touched. A record
    /// that is unreadable or names an id of another key counts as none.
    fn read_cache_mount_record(&self, key: &str) -> (Option<String>, Option<SystemTime>) {
        let path = self.cache_mount_record_path(key);
        let Ok(bytes) = fs::read(&path) else {
            return (None, None);
        };
        let id = serde_json::from_slice::<Recorded>(&bytes)
            .ok()
            .map(|recorded| recorded.id)
            .filter(|id| cache_mount_key(id) == key);
        let last_used = id
            .as_ref()
            .and_then(|_| fs::metadata(&path).and_then(|m| m.modified()).ok());
        (id, last_used)
    }
}

impl NewCacheMount {
    /// The directory to fill.
    pub fn path(&self) -> &Path {
        &self.dir.path
    }

    /// Moves the filled directory into place, unless the mount exists by
    /// now (another build made it first): then that one is kept and this
    /// one discarded. Returns the mount's directory.
    pub fn install(mut self) -> Result<PathBuf> {
        let dest = self.prepare()?;
        match self.rename_to(&dest, RenameFlags::NOREPLACE) {
            Ok(()) | Err(Errno::EXIST) => Ok(dest),
            Err(errno) => Err(install_error(&dest, errno)),
        }
    }

    /// Moves the filled directory into place, replacing the mount's contents
    /// in one step: under the mount's exclusive lock (so no step is using
    /// it), the two directories are swapped atomically and the old one is
    /// deleted. A crash leaves the mount old or new, never half of each.
    /// Returns the mount's directory.
    pub fn replace(mut self) -> Result<PathBuf> {
        let _lock = self
            .store
            .lock_cache_mount(&self.id, CacheMountAccess::Exclusive)?;
        let dest = self.prepare()?;
        match self.rename_to(&dest, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(dest),
            // The old contents end up in ingest/, where the guard deletes them.
            Err(Errno::EXIST) => match self.rename_to(&dest, RenameFlags::EXCHANGE) {
                Ok(()) => {
                    self.dir.armed = true;
                    Ok(dest)
                }
                Err(errno) => Err(install_error(&dest, errno)),
            },
            Err(errno) => Err(install_error(&dest, errno)),
        }
    }

    /// Makes the contents durable and records the id, before the directory
    /// becomes the mount; returns where it goes.
    fn prepare(&self) -> Result<PathBuf> {
        sync_filesystem(self.path())?;
        self.store.record_cache_mount(&self.id)?;
        Ok(self
            .store
            .cache_mounts_dir()
            .join(cache_mount_key(&self.id)))
    }

    /// Renames the directory to `dest`; on success the guard no longer owns
    /// what is at its path.
    fn rename_to(&mut self, dest: &Path, flags: RenameFlags) -> Result<(), Errno> {
        rustix::fs::renameat_with(CWD, &self.dir.path, CWD, dest, flags)?;
        self.dir.armed = false;
        // The rename is done and must not be reported as failed. Should the
        // flush fail, a power loss could undo the rename: the mount would
        // be as before, which a cache may always be.
        let _ = sync_parent(dest);
        Ok(())
    }
}

fn install_error(dest: &Path, errno: Errno) -> Error {
    Error::Io {
        action: "install cache mount at",
        path: dest.to_owned(),
        source: errno.into(),
    }
}

/// Bytes in regular files and the number of entries below `root`.
fn tree_stats(root: &Path) -> (u64, u64) {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_map(|e| e.ok())
        .fold((0, 0), |(size, files), entry| {
            let bytes = match entry.metadata() {
                Ok(meta) if meta.is_file() => meta.size(),
                _ => 0,
            };
            (size + bytes, files + 1)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_length_prefixed_sha256_of_the_id() {
        // What builds before recorded ids named their directories by.
        let mut bytes = 4u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"/npm");
        assert_eq!(cache_mount_key("/npm"), Digest::of(&bytes).hex());
    }

    #[test]
    fn mounts_are_created_once_listed_by_id_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        assert_eq!(store.use_cache_mount("npm").unwrap(), None);

        let first = store.new_cache_mount("npm").unwrap();
        fs::write(first.path().join("a"), "first").unwrap();
        let path = first.install().unwrap();
        // A second creator loses the race: the first one's contents stay.
        let second = store.new_cache_mount("npm").unwrap();
        fs::write(second.path().join("b"), "second").unwrap();
        assert_eq!(second.install().unwrap(), path);
        assert!(path.join("a").is_file() && !path.join("b").exists());
        assert_eq!(store.use_cache_mount("npm").unwrap(), Some(path.clone()));

        // A directory from before ids were recorded is listed by key until used.
        let legacy = store.cache_mounts_dir().join(cache_mount_key("/go"));
        fs::create_dir(&legacy).unwrap();
        let listed = store.list_cache_mounts().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].id.as_deref(), Some("npm"));
        assert_eq!((listed[0].size, listed[0].files), (5, 1));
        assert!(listed[0].last_used.is_some());
        assert_eq!(
            (listed[1].id.as_deref(), &listed[1].key),
            (None, &cache_mount_key("/go"))
        );
        store.use_cache_mount("/go").unwrap();
        assert_eq!(
            store.list_cache_mounts().unwrap()[0].id.as_deref(),
            Some("/go")
        );

        let replacement = store.new_cache_mount("npm").unwrap();
        fs::write(replacement.path().join("c"), "imported").unwrap();
        assert_eq!(replacement.replace().unwrap(), path);
        assert!(!path.join("a").exists() && path.join("c").is_file());
        assert_eq!(
            fs::read_dir(store.ingest_dir()).unwrap().count(),
            0,
            "the old contents are gone"
        );
    }

    #[test]
    fn exclusive_holders_exclude_everyone_shared_ones_only_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let path = store
            .cache_mounts_dir()
            .join(format!("{}.lock", cache_mount_key("x")));
        let shared = store
            .lock_cache_mount("x", CacheMountAccess::Shared)
            .unwrap();
        let _also_shared = store
            .lock_cache_mount("x", CacheMountAccess::Shared)
            .unwrap();
        let probe = File::open(&path).unwrap();
        assert!(
            probe.try_lock().is_err(),
            "shared holders keep exclusive ones out"
        );
        drop((shared, _also_shared));
        let _exclusive = store
            .lock_cache_mount("x", CacheMountAccess::Exclusive)
            .unwrap();
        assert!(
            probe.try_lock_shared().is_err(),
            "an exclusive holder keeps everyone out"
        );
    }
}
