//! Scratch space in `ingest/`: the directories and files writers work in, each named after the
//! process that owns it, so that what a dead process left behind can be told from what a live
//! one is still using.
//!
//! An entry is named `<kind>-<pid>-<start>-<pidns>-<random>`: the owner's process id, its start
//! time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot) and the inode of its pid
//! namespace. A process id alone is not enough: ids are reused, and a reused id must not protect
//! a dead owner's leftovers. The namespace keeps processes of another pid namespace sharing the
//! store (two containers mounting one volume), whose ids mean nothing here, out of the check.
//!
//! The owner removes its entries when done (on drop), or all at once when interrupted
//! ([`Store::remove_own_scratch`]); the first lease a store handle takes removes the entries
//! of owners that are gone ([`Store::lease`]); [`Store::prune`] removes everything, since under
//! the exclusive lock no writer is alive.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{CWD, RenameFlags};
use tempfile::TempPath;

use crate::error::{Error, IoContext, Result};
use crate::store::{Store, remove_tree};

/// A directory in the store's `ingest/`, removed (with everything in it) when dropped, unless
/// its content was moved away first. Get one with [`Store::scratch_dir`].
#[derive(Debug)]
pub struct ScratchDir {
    pub(crate) path: PathBuf,
    /// Whether dropping removes `path`: off once the directory has been renamed into the store.
    pub(crate) armed: bool,
}

impl ScratchDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: whatever stays behind belongs to this process, and is removed by the
            // next lease once it has exited, or by prune.
            let _ = remove_tree(&self.path);
        }
    }
}

/// A file in the store's `ingest/`, open for writing and removed when dropped unless it was
/// moved away. Get one with [`Store::scratch_file`].
#[derive(Debug)]
pub struct ScratchFile {
    file: File,
    path: TempPath,
}

impl ScratchFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file and the path that removes the file when dropped (or moves it with
    /// [`TempPath::persist`]).
    pub(crate) fn into_parts(self) -> (File, TempPath) {
        (self.file, self.path)
    }
}

/// The process that owns a scratch entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
    start: u64,
    /// The inode of the process's pid namespace (`/proc/<pid>/ns/pid`).
    pid_ns: u64,
}

impl Owner {
    /// This process, or `None` where `/proc` does not say (then its entries carry no owner and
    /// only prune removes what it leaves behind).
    pub(crate) fn current() -> Option<Owner> {
        static CURRENT: OnceLock<Option<Owner>> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let stat = fs::read_to_string("/proc/self/stat").ok()?;
            let (_, start) = parse_stat(&stat)?;
            let pid_ns = fs::metadata("/proc/self/ns/pid").ok()?.ino();
            Some(Owner {
                pid: std::process::id(),
                start,
                pid_ns,
            })
        })
    }

    /// The owner a scratch entry's name records, if it records one.
    fn of_name(name: &OsStr) -> Option<Owner> {
        let name = std::str::from_utf8(name.as_bytes()).ok()?;
        // The kind may contain dashes; the random suffix and the numbers do not.
        let mut fields = name.rsplitn(5, '-');
        let _random = fields.next()?;
        let pid_ns = fields.next()?.parse().ok()?;
        let start = fields.next()?.parse().ok()?;
        let pid = fields.next()?.parse().ok()?;
        let kind = fields.next()?;
        (!kind.is_empty()).then_some(Owner { pid, start, pid_ns })
    }

    /// The part of an entry's name that records this owner.
    fn tag(&self) -> String {
        format!("{}-{}-{}", self.pid, self.start, self.pid_ns)
    }

    /// Whether this owner is certainly gone, as seen from `me`: no process has its id, or the
    /// one that has it started at another time (the id was reused), or it is a zombie. An owner
    /// in another pid namespace cannot be checked and counts as alive.
    fn is_gone(&self, me: &Owner) -> bool {
        if self.pid_ns != me.pid_ns || self == me {
            return false;
        }
        match fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => match parse_stat(&stat) {
                Some((state, start)) => start != self.start || matches!(state, 'Z' | 'X'),
                None => false,
            },
            // ESRCH: the process exited while its file was being read.
            Err(e) => {
                e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())
            }
        }
    }
}

/// The state (field 3) and start time (field 22) in the text of `/proc/<pid>/stat`. The command
/// name (field 2) is in parentheses and may itself contain spaces and parentheses, so fields
/// are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4 to 21 lie between the state and the start time.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl Store {
    /// A new empty directory in `ingest/` for work in progress, named after `kind` (a word
    /// such as `step` or `git`, shown in the name for whoever looks) and this process.
    /// Removed on drop; if this process dies first, by the next process that takes a lease.
    pub fn scratch_dir(&self, kind: &str) -> Result<ScratchDir> {
        let ingest = self.ingest_dir();
        let path = tempfile::Builder::new()
            .prefix(&scratch_prefix(kind))
            .tempdir_in(&ingest)
            .at("create a scratch directory in", &ingest)?
            .keep();
        Ok(ScratchDir { path, armed: true })
    }

    /// A new empty file in `ingest/`, like [`Store::scratch_dir`]: for a blob on its way in
    /// (a download, say), which [`Store::write_blob_expecting`] then reads.
    pub fn scratch_file(&self, kind: &str) -> Result<ScratchFile> {
        let ingest = self.ingest_dir();
        let (file, path) = tempfile::Builder::new()
            .prefix(&scratch_prefix(kind))
            .tempfile_in(&ingest)
            .at("create a scratch file in", &ingest)?
            .into_parts();
        Ok(ScratchFile { file, path })
    }

    /// Removes every scratch entry of this process (and the partial outputs it registered:
    /// see [`Store::output_file`]), for a signal handler about to exit: whatever still uses
    /// them fails from now on. Best effort; what stays behind goes with the next lease.
    pub fn remove_own_scratch(&self) {
        let Some(me) = Owner::current() else {
            return;
        };
        for (path, owner) in self.owned_entries() {
            if owner == me {
                let _ = discard_entry(&path);
            }
        }
    }

    /// Removes the scratch entries whose owner is gone (see the module docs). Each is first
    /// renamed to an entry of this process, so two processes cleaning at once never both work
    /// on one, and an entry whose removal is cut short is again one of a dead owner's.
    pub(crate) fn remove_dead_scratch(&self) {
        let Some(me) = Owner::current() else {
            return;
        };
        for (path, owner) in self.owned_entries() {
            if owner.is_gone(&me) {
                // Best effort: another process may have claimed it first.
                if let Ok(claimed) = self.claim(&path) {
                    let _ = discard_entry(&claimed);
                }
            }
        }
    }

    /// The entries of `ingest/` whose name records an owner.
    fn owned_entries(&self) -> Vec<(PathBuf, Owner)> {
        let Ok(entries) = fs::read_dir(self.ingest_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| Some((entry.path(), Owner::of_name(&entry.file_name())?)))
            .collect()
    }

    /// Renames `path` to a new `removing-…` entry of this process; returns the new path.
    fn claim(&self, path: &Path) -> io::Result<PathBuf> {
        let claimed = tempfile::Builder::new()
            .prefix(&scratch_prefix("removing"))
            .make_in(self.ingest_dir(), |target| {
                rustix::fs::renameat_with(CWD, path, CWD, target, RenameFlags::NOREPLACE)
                    .map_err(io::Error::from)
            })?;
        Ok(claimed.into_temp_path().keep()?)
    }
}

/// The name prefix of this process's scratch entries of `kind`.
pub(crate) fn scratch_prefix(kind: &str) -> String {
    match Owner::current() {
        Some(owner) => format!("{kind}-{}-", owner.tag()),
        None => format!("{kind}-"),
    }
}

/// Removes one entry of `ingest/`: a directory with everything in it, a file, or a link that
/// registers a partial output elsewhere, together with that output.
pub(crate) fn discard_entry(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                action: "inspect",
                path: path.to_owned(),
                source,
            });
        }
    };
    if meta.is_dir() {
        return remove_tree(path);
    }
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).at("read link", path)?;
        // Anything else is not ours to remove: only the link goes.
        if is_partial_output(&target) {
            match fs::symlink_metadata(&target) {
                Ok(meta) if meta.is_dir() => remove_tree(&target)?,
                _ => remove_file_if_present(&target)?,
            }
        }
    }
    remove_file_if_present(path)
}

/// Removes a file; one that is not there is fine.
pub(crate) fn remove_file_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
            action: "remove",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The suffix of a partial output's name.
pub(crate) const PARTIAL_SUFFIX: &str = ".partial";

/// Whether `path` names a partial output (what a registration link may point at).
pub(crate) fn is_partial_output(path: &Path) -> bool {
    path.is_absolute()
        && path.file_name().is_some_and(|name| {
            let name = name.as_encoded_bytes();
            name.starts_with(b".") && name.ends_with(PARTIAL_SUFFIX.as_bytes())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (a) b (c) d) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345 67 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 987654)));
        assert_eq!(parse_stat("4242 (truncated) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn names_record_their_owner() {
        let owner = Owner {
            pid: 17,
            start: 12345,
            pid_ns: 4026531836,
        };
        let name = format!("cache-mount-{}-Ab3dE9", owner.tag());
        assert_eq!(Owner::of_name(OsStr::new(&name)), Some(owner));
        for unowned in [
            "blob-Ab3dE9",
            "cache-mount-Ab3dE9",
            "-17-12345-4026531836-Ab3dE9",
            "step-x-12345-4026531836-Ab3dE9",
            "step-17-12345-4026531836",
        ] {
            assert_eq!(Owner::of_name(OsStr::new(unowned)), None, "{unowned}");
        }
    }

    #[test]
    fn this_process_is_alive_and_its_reused_pid_or_a_dead_one_is_not() {
        let me = Owner::current().expect("/proc is mounted");
        assert!(!me.is_gone(&me));
        // Seen from another process of this namespace, this process is alive too.
        let other = Owner { pid: 1, ..me };
        assert!(!me.is_gone(&other));
        // The same id with another start time: the id was reused.
        let reused = Owner {
            start: me.start + 1,
            ..me
        };
        assert!(reused.is_gone(&other));
        // No process has this id (above the kernel's maximum).
        let dead = Owner {
            pid: 4_194_305,
            ..me
        };
        assert!(dead.is_gone(&me));
        // Another pid namespace cannot be checked.
        let elsewhere = Owner {
            pid_ns: me.pid_ns + 1,
            ..dead
        };
        assert!(!elsewhere.is_gone(&me));
    }
}
