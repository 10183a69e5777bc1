//! Opening the store, its paths, locks and the atomic-write helpers every
//! other module uses.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use serde::{Deserialize, Serialize};
use stagecraft_image::Digest;
use stagecraft_layer::OverlayXattr;
use tempfile::TempPath;

use crate::error::{Error, IoContext, Result};

/// The on-disk layout version this code reads and writes.
const LAYOUT_VERSION: u32 = 1;
const LAYOUT_FILE: &str = "layout.json";

/// A handle on one store directory. Cheap to clone; every method works on
/// the filesystem directly, so any number of handles, threads and processes
/// can share a store (see the crate docs for the lock protocol).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    overlay_xattr: OverlayXattr,
    /// Run by the first lease of this handle (and its clones): removes the scratch entries of
    /// processes that are gone (see [`Store::lease`]).
    sweep: Arc<Once>,
}

/// The shared store lock: while any `Lease` is alive, no prune or
/// corruption-removing verify can run, so content this process has seen
/// stays on disk. Builds hold one from start to finish. Released on drop.
#[derive(Debug)]
#[must_use = "the lease is released as soon as it is dropped"]
pub struct Lease {
    _file: File,
}

#[derive(Debug, Serialize, Deserialize)]
struct Layout {
    version: u32,
    /// The xattr namespace of the snapshots' overlay markers: `trusted` or
    /// `user` (see [`Store::overlay_xattr`]). Absent in stores made before
    /// rootless builds existed, whose snapshots (if any) were made by root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overlay_xattr: Option<String>,
}

/// How `layout.json` names an [`OverlayXattr`].
fn xattr_name(xattr: OverlayXattr) -> &'static str {
    match xattr {
        OverlayXattr::Trusted => "trusted",
        OverlayXattr::User => "user",
    }
}

impl Store {
    /// Opens the store at `root`, creating its directories (mode 0700: it
    /// holds unpacked root filesystems, setuid binaries included) if needed.
    ///
    /// A store belongs either to root of the host or to rootless builds (see
    /// [`Store::overlay_xattr`]); opening it from the other kind of process
    /// is an [`Error::OverlayXattr`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let store = Store {
            root: root.into(),
            overlay_xattr: OverlayXattr::for_current_process(),
            sweep: Arc::new(Once::new()),
        };
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for dir in [
            store.root.clone(),
            store.blobs_dir(),
            store.lazy_blobs_dir(),
            store.ingest_dir(),
            store.snapshots_dir(),
            store.cache_dir(),
            store.cache_mounts_dir(),
            store.context_index_dir(),
            store.locks_dir(),
        ] {
            builder.create(&dir).at("create directory", &dir)?;
        }
        for lock in [store.store_lock_path(), store.tags_lock_path()] {
            open_lock_file(&lock)?;
        }
        store.check_layout()?;
        Ok(store)
    }

    /// Opens the store at [`default_root`].
    pub fn open_default() -> Result<Store> {
        Store::open(default_root()?)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The xattr namespace of the overlay markers (opaque directories) in
    /// this store's snapshots, which every layer diff and overlay mount over
    /// them must use: [`OverlayXattr::Trusted`] for root of the host,
    /// [`OverlayXattr::User`] for rootless builds (their overlays mount with
    /// `userxattr`). It is fixed when the store is created and recorded in
    /// `layout.json`; the two kinds cannot share a store.
    pub fn overlay_xattr(&self) -> OverlayXattr {
        self.overlay_xattr
    }

    /// Takes the shared store lock, waiting while a prune or verify holds it
    /// exclusively. Hold the lease for as long as you rely on content staying
    /// present (a whole build). Do not call [`Store::prune`] or
    /// [`Store::lock_exclusive`] from a thread that holds a lease: the
    /// exclusive lock would wait for that very lease.
    ///
    /// The first lease of a handle removes what processes that are gone left
    /// in `ingest/` (a killed `load` or `push`, an interrupted build): see
    /// [`Store::scratch_dir`].
    pub fn lease(&self) -> Result<Lease> {
        let path = self.store_lock_path();
        let file = open_lock_file(&path)?;
        file.lock_shared().at("take the shared lock on", &path)?;
        Ok(self.leased(file))
    }

    /// Like [`Store::lease`] but returns `None` instead of waiting when the
    /// store is locked exclusively.
    pub fn try_lease(&self) -> Result<Option<Lease>> {
        let path = self.store_lock_path();
        let file = open_lock_file(&path)?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(self.leased(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(source)) => Err(Error::Io {
                action: "take the shared lock on",
                path,
                source,
            }),
        }
    }

    /// A lease on `file`, locked shared; sweeps `ingest/` if this handle has
    /// not yet.
    fn leased(&self, file: File) -> Lease {
        self.sweep.call_once(|| self.remove_dead_scratch());
        Lease { _file: file }
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    pub(crate) fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    pub(crate) fn context_index_dir(&self) -> PathBuf {
        self.root.join("context-index")
    }

    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub(crate) fn store_lock_path(&self) -> PathBuf {
        self.locks_dir().join("store.lock")
    }

    pub(crate) fn tags_lock_path(&self) -> PathBuf {
        self.locks_dir().join("tags.lock")
    }

    pub(crate) fn tags_path(&self) -> PathBuf {
        self.root.join("tags.json")
    }

    pub(crate) fn snapshot_dir(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots_dir().join(diff_id.hex())
    }

    /// Takes an exclusive lock on `path`, waiting for other holders.
    pub(crate) fn lock_file_exclusive(&self, path: &Path) -> Result<File> {
        let file = open_lock_file(path)?;
        file.lock().at("take the exclusive lock on", path)?;
        Ok(file)
    }

    /// Writes `bytes` to `dest` so that readers see either the old file or
    /// the complete new one, even after a crash: scratch file in `ingest/`,
    /// fsync, rename, fsync of the directory.
    pub(crate) fn write_atomically(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let temp = self.write_scratch_file(bytes, true)?;
        move_into(temp, dest)?;
        sync_parent(dest)
    }

    /// Writes the hint `bytes` to `dest` so that running readers see either
    /// the old file or the complete new one, but syncs nothing: after a power
    /// loss the file may be the old one, missing, empty or garbled. Only for
    /// files whose readers take anything unreadable as absent (cache records,
    /// context indexes), where that costs a rebuild or a rehash, and two
    /// fsyncs a file would cost every build.
    pub(crate) fn write_hint(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let temp = self.write_scratch_file(bytes, false)?;
        move_into(temp, dest)
    }

    /// A scratch file in `ingest/` holding `bytes`, flushed to disk if `sync`.
    fn write_scratch_file(&self, bytes: &[u8], sync: bool) -> Result<TempPath> {
        let (mut file, temp) = self.scratch_file("write")?.into_parts();
        file.write_all(bytes).at("write", &temp)?;
        if sync {
            file.sync_all().at("flush", &temp)?;
        }
        Ok(temp)
    }

    /// Checks `layout.json` (version and overlay flavour), writing it for a
    /// new store and adding the flavour to one that predates it.
    fn check_layout(&self) -> Result<()> {
        let path = self.root.join(LAYOUT_FILE);
        let recorded = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Layout>(&bytes) {
                Ok(layout) if layout.version == LAYOUT_VERSION => Some(layout.overlay_xattr),
                _ => {
                    return Err(Error::Layout {
                        path,
                        found: String::from_utf8_lossy(&bytes).trim().to_owned(),
                        expected: LAYOUT_VERSION,
                    });
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let own = xattr_name(self.overlay_xattr);
        let store_xattr = match &recorded {
            Some(Some(name)) => name.as_str(),
            // Snapshots from before the flavour was recorded were made by root.
            Some(None) if self.has_snapshots()? => xattr_name(OverlayXattr::Trusted),
            Some(None) | None => own,
        };
        if store_xattr != own {
            let (store, store_prefix) = match store_xattr {
                "user" => ("rootless", OverlayXattr::User.prefix()),
                _ => ("rootful", OverlayXattr::Trusted.prefix()),
            };
            return Err(Error::OverlayXattr {
                path,
                store,
                store_prefix,
                process: match self.overlay_xattr {
                    OverlayXattr::Trusted => "as root",
                    OverlayXattr::User => "rootless",
                },
            });
        }
        if matches!(recorded, Some(Some(_))) {
            return Ok(());
        }
        // Under a lease like every writer, so a concurrent prune cannot take
        // the temporary file away.
        let _lease = self.lease()?;
        let bytes = serde_json::to_vec(&Layout {
            version: LAYOUT_VERSION,
            overlay_xattr: Some(own.to_owned()),
        })
        .map_err(|source| Error::Serialize {
            what: "layout file",
            source,
        })?;
        self.write_atomically(&path, &bytes)
    }

    /// Whether `snapshots/` has any entry.
    fn has_snapshots(&self) -> Result<bool> {
        let dir = self.snapshots_dir();
        let mut entries = fs::read_dir(&dir).at("list", &dir)?;
        Ok(entries.next().is_some())
    }
}

/// Where [`Store::open_default`] puts the store: `$STAGECRAFT_ROOT` if set;
/// otherwise `/var/lib/stagecraft` for root of the host (effective uid 0 in
/// the initial user namespace); otherwise, rootless builds included (root of
/// their own user namespace), `$XDG_DATA_HOME/stagecraft` (when absolute, per
/// the XDG spec) or `$HOME/.local/share/stagecraft`.
pub fn default_root() -> Result<PathBuf> {
    choose_root(
        |name| std::env::var_os(name),
        OverlayXattr::for_current_process() == OverlayXattr::Trusted,
    )
}

/// [`default_root`] with the environment and the uid passed in.
fn choose_root(var: impl Fn(&str) -> Option<OsString>, is_root: bool) -> Result<PathBuf> {
    let non_empty = |name: &str| var(name).filter(|value| !value.is_empty());
    if let Some(root) = non_empty("STAGECRAFT_ROOT") {
        return Ok(PathBuf::from(root));
    }
    if is_root {
        return Ok(PathBuf::from("/var/lib/stagecraft"));
    }
    if let Some(data) = non_empty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(data.join("stagecraft"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/stagecraft")),
        None => Err(Error::NoDefaultRoot),
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    match opened {
        // On a read-only store (a read-only mount, an image baked into CI) an existing lock
        // file still locks when opened for reading, so commands that only read keep working;
        // writes fail later with the file system's own clear error.
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => File::open(path),
        other => other,
    }
    .at("open lock file", path)
}

/// The content of the file at `path`, or `None` if there is no such file.
pub(crate) fn read_if_present(path: PathBuf, action: &'static str) -> Result<Option<Vec<u8>>> {
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action,
            path,
            source,
        }),
    }
}

/// fsyncs the directory containing `path`, making a rename or unlink in it
/// durable.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    sync_dir(parent)
}

/// Moves the scratch file `temp` to `dest` (replacing what is there, atomically), without
/// syncing anything.
pub(crate) fn move_into(temp: TempPath, dest: &Path) -> Result<()> {
    temp.persist(dest)
        .map_err(|e| e.error)
        .at("move a new file into", dest)
}

/// fsyncs a directory.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("flush directory", dir)
}

/// Makes everything written under `path` durable: one `syncfs` instead of an
/// fsync per file.
pub(crate) fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = File::open(path).at("open", path)?;
    rustix::fs::syncfs(&dir)
        .map_err(io::Error::from)
        .at("sync the filesystem of", path)
}

/// Removes a directory tree, first granting ourselves write and search
/// permission where needed: unpacked layers contain read-only directories
/// (`0555`) that an unprivileged owner could not otherwise empty.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if entry.file_type().is_dir()
            && let Ok(meta) = entry.metadata()
        {
            let mode = meta.permissions().mode();
            if mode & 0o700 != 0o700 {
                // Best effort: the retry below reports what still fails.
                let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode | 0o700));
            }
        }
    }
    fs::remove_dir_all(path).at("remove directory tree", path)
}

/// Total apparent size of the regular files under `path` (symlinks and
/// directories count as zero).
pub(crate) fn tree_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(vars: &[(&str, &str)], is_root: bool) -> Result<PathBuf> {
        choose_root(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            },
            is_root,
        )
    }

    #[test]
    fn default_root_precedence() {
        let all = [
            ("STAGECRAFT_ROOT", "/custom"),
            ("XDG_DATA_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(root_with(&all, false).unwrap(), PathBuf::from("/custom"));
        assert_eq!(root_with(&all, true).unwrap(), PathBuf::from("/custom"));
        assert_eq!(
            root_with(&all[1..], true).unwrap(),
            PathBuf::from("/var/lib/stagecraft")
        );
        assert_eq!(
            root_with(&all[1..], false).unwrap(),
            PathBuf::from("/xdg/stagecraft")
        );
        assert_eq!(
            root_with(&[("XDG_DATA_HOME", "relative"), ("HOME", "/home/u")], false).unwrap(),
            PathBuf::from("/home/u/.local/share/stagecraft"),
            "a relative XDG_DATA_HOME is ignored, as the XDG spec says"
        );
        assert_eq!(
            root_with(&[("STAGECRAFT_ROOT", ""), ("HOME", "/h")], false).unwrap(),
            PathBuf::from("/h/.local/share/stagecraft")
        );
        assert!(matches!(root_with(&[], false), Err(Error::NoDefaultRoot)));
    }
}
