//! The context index: what each file of a build context hashed to, by the stat that identifies
//! that content, kept in the store between builds so that a rebuild reads only the files whose
//! stat changed (git's index does the same for `git status`). Cache keys stay content digests;
//! the index only saves reading unchanged files to compute them.
//!
//! An entry is a hint, used only while the file's size, modification and change times, inode,
//! device and mode are as recorded, and only if those times lie before the start of the build
//! that recorded it. The second rule answers git's "racily clean" problem: a file changed again
//! in the clock tick it was hashed in keeps all of its stat, and the entry a stale digest. The
//! kernel stamps changes with its coarse clock, which a build reads when it starts, so a change
//! after the start is stamped no earlier than the start, and an entry stamped before the start
//! is bound to notice it. (Git compares with the moment the index was written, which misses a
//! change made in the tick of hashing when the write falls in a later tick.) A younger entry is
//! saved but not trusted: the next build hashes the file again. Timestamps in whole seconds
//! (filesystems that round them, FAT to two) must be two seconds older than the start.
//!
//! The file (`<store>/context-index/<hex>`, see `stagecraft_store`), little-endian: the line
//! `stagecraft context index v1`, the start of the build that wrote it (`i64` seconds, `u32`
//! nanoseconds), the number of entries (`u64`), each entry (`u32` path length, the path
//! relative to the context, `u64` size, modification and change times as the start, `u64`
//! inode, `u64` device, `u32` mode, 32 bytes of sha256), then the sha256 of all that. A file
//! that does not read back whole is ignored.

use crate::progress::ContextFiles;
use sha2::{Digest as _, Sha256};
use stagecraft_imagefs::{FileTime, Found, Stat};
use stagecraft_store::Store;
use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The first bytes of an index file; the version is in it, so another format reads as none.
const MAGIC: &[u8] = b"stagecraft context index v1\n";
/// How much older than the build start whole-second timestamps must be (FAT keeps two-second
/// steps, the coarsest of the filesystems Linux writes).
const WHOLE_SECONDS_MARGIN: i64 = 2;
/// An entry's bytes besides its path: length, size, two timestamps, inode, device, mode, hash.
const ENTRY_LEN_WITHOUT_PATH: usize = 4 + 8 + 12 + 12 + 8 + 8 + 4 + 32;

/// A point in time as file timestamps have it. Aligned to four bytes: 12 bytes rather than 16,
/// and the build keeps two for every context file it looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C, packed(4))]
struct Timestamp {
    seconds: i64,
    nanoseconds: u32,
}

impl Timestamp {
    /// Now, by the clock the kernel stamps file changes with (`CLOCK_REALTIME_COARSE`): a file
    /// changed after this call gets no earlier timestamps than the result.
    fn file_clock_now() -> Timestamp {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        Timestamp {
            seconds: now.tv_sec,
            nanoseconds: now.tv_nsec as u32,
        }
    }
}

/// What stat says about a file: while none of it changes, neither do its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStat {
    size: u64,
    modified: Timestamp,
    changed: Timestamp,
    inode: u64,
    device: u64,
    mode: u32,
}

impl FileStat {
    fn of(stat: &Stat) -> FileStat {
        let timestamp = |time: FileTime| Timestamp {
            seconds: time.seconds,
            nanoseconds: time.nanoseconds,
        };
        FileStat {
            size: stat.size,
            modified: timestamp(stat.modified),
            changed: timestamp(stat.changed),
            inode: stat.inode,
            device: stat.device,
            mode: stat.mode,
        }
    }

    /// Whether any change to the file after `started` must show in its stat: both timestamps
    /// lie in a clock tick before it.
    fn settled_before(&self, started: Timestamp) -> bool {
        let newest = self.modified.max(self.changed);
        if self.modified.nanoseconds == 0 && self.changed.nanoseconds == 0 {
            newest.seconds.saturating_add(WHOLE_SECONDS_MARGIN) <= started.seconds
        } else {
            newest < started
        }
    }
}

/// One file's recorded hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    stat: FileStat,
    sha256: [u8; 32],
}

/// An index as saved: entries by path relative to the context, and when the build that saved
/// it started.
#[derive(Debug, Default, PartialEq)]
struct SavedIndex {
    started: Timestamp,
    entries: HashMap<Box<[u8]>, Entry>,
}

impl SavedIndex {
    /// The hash recorded for `path`, if the file still has the stat it had then and that stat
    /// had settled when the build that recorded it started.
    fn trusted(&self, path: &[u8], stat: &FileStat) -> Option<[u8; 32]> {
        self.entries
            .get(path)
            .filter(|entry| entry.stat == *stat && entry.stat.settled_before(self.started))
            .map(|entry| entry.sha256)
    }

    fn encode(&self) -> Vec<u8> {
        let entries_len: usize = self
            .entries
            .keys()
            .map(|path| ENTRY_LEN_WITHOUT_PATH + path.len())
            .sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 12 + 8 + entries_len + 32);
        out.extend_from_slice(MAGIC);
        put_timestamp(&mut out, self.started);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for (path, entry) in &self.entries {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(path);
            let stat = &entry.stat;
            out.extend_from_slice(&stat.size.to_le_bytes());
            put_timestamp(&mut out, stat.modified);
            put_timestamp(&mut out, stat.changed);
            out.extend_from_slice(&stat.inode.to_le_bytes());
            out.extend_from_slice(&stat.device.to_le_bytes());
            out.extend_from_slice(&stat.mode.to_le_bytes());
            out.extend_from_slice(&entry.sha256);
        }
        let checksum = Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// The index in `bytes`, or `None` unless they are a whole index of this version.
    fn decode(bytes: &[u8]) -> Option<SavedIndex> {
        let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if Sha256::digest(body).as_slice() != checksum {
            return None;
        }
        let mut reader = Reader(body.strip_prefix(MAGIC)?);
        let started = reader.timestamp()?;
        let count = usize::try_from(reader.u64()?).ok()?;
        // The count comes from the file: a capacity no larger than the bytes can hold.
        let mut entries = HashMap::with_capacity(count.min(body.len() / ENTRY_LEN_WITHOUT_PATH));
        for _ in 0..count {
            let path_len = reader.u32()? as usize;
            let path: Box<[u8]> = reader.take(path_len)?.into();
            let stat = FileStat {
                size: reader.u64()?,
                modified: reader.timestamp()?,
                changed: reader.timestamp()?,
                inode: reader.u64()?,
                device: reader.u64()?,
                mode: reader.u32()?,
            };
            let sha256 = reader.take(32)?.try_into().ok()?;
            entries.insert(path, Entry { stat, sha256 });
        }
        reader
            .0
            .is_empty()
            .then_some(SavedIndex { started, entries })
    }
}

fn put_timestamp(out: &mut Vec<u8>, timestamp: Timestamp) {
    out.extend_from_slice(&timestamp.seconds.to_le_bytes());
    out.extend_from_slice(&timestamp.nanoseconds.to_le_bytes());
}

/// Reads an index file's fields front to back; `None` when the bytes run out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(taken)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn timestamp(&mut self) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: self.array().map(i64::from_le_bytes)?,
            nanoseconds: self.u32()?,
        })
    }
}

/// A context file looked at in this build.
struct Seen {
    entry: Entry,
    /// Whether this build read it (rather than taking the hash from the index).
    hashed: bool,
}

/// One build's use of its context's index: loaded when the build starts, asked for the hash of
/// every context file a step copies or mounts, saved once when the build ends. Shared by the
/// build's stages (it locks what it learns).
pub(crate) struct ContextHashes {
    /// The context directory as the build's views name it: context files' real paths start
    /// with it.
    root: PathBuf,
    /// What the previous build saved (empty when there is nothing readable).
    saved: SavedIndex,
    /// When this build started, by the file clock.
    started: Timestamp,
    /// The context files looked at so far, by path relative to `root`.
    seen: Mutex<HashMap<Box<[u8]>, Seen>>,
}

impl ContextHashes {
    /// Starts a build of the context `root`: reads its index from `store`. A missing,
    /// unreadable or damaged index counts as empty: every file is hashed and the index saved
    /// anew.
    pub(crate) fn load(store: &Store, root: &Path) -> ContextHashes {
        ContextHashes::load_started(store, root, Timestamp::file_clock_now())
    }

    fn load_started(store: &Store, root: &Path, started: Timestamp) -> ContextHashes {
        let saved = store
            .get_context_index(root)
            .ok()
            .flatten()
            .and_then(|bytes| SavedIndex::decode(&bytes))
            .unwrap_or_default();
        ContextHashes {
            root: root.to_owned(),
            saved,
            started,
            seen: Mutex::default(),
        }
    }

    /// The sha256 of the file at `found`, whose metadata must be what its lookup found (after
    /// this build started): taken from the index when that stat allows, read otherwise. A file outside the context (an
    /// `ADD` download) is always read, and not recorded.
    pub(crate) fn sha256(&self, found: &Found) -> std::io::Result<[u8; 32]> {
        let real_path = found.real_path();
        let Ok(relative) = real_path.strip_prefix(&self.root) else {
            return found.sha256();
        };
        let path = relative.as_os_str().as_bytes();
        let stat = FileStat::of(&found.metadata);
        let known = self
            .lock_seen()
            .get(path)
            .filter(|seen| seen.entry.stat == stat)
            .map(|seen| seen.entry.sha256)
            .or_else(|| self.saved.trusted(path, &stat));
        let (sha256, hashed) = match known {
            Some(sha256) => (sha256, false),
            None => (found.sha256()?, true),
        };
        match self.lock_seen().entry(path.into()) {
            // Looked at before with this stat: the first look says how it was hashed.
            MapEntry::Occupied(seen) if seen.get().entry.stat == stat => {}
            place => {
                place.insert_entry(Seen {
                    entry: Entry { stat, sha256 },
                    hashed,
                });
            }
        }
        Ok(sha256)
    }

    /// How many context files this build has hashed, and taken from the index, so far.
    pub(crate) fn counts(&self) -> ContextFiles {
        let seen = self.lock_seen();
        let hashed = seen.values().filter(|seen| seen.hashed).count();
        ContextFiles {
            hashed,
            from_index: seen.len() - hashed,
        }
    }

    /// Saves the index for the next build, if this one hashed any file (a fully cached
    /// rebuild writes nothing). Entries of files this build did not look at are kept while
    /// the file still has the recorded stat and it had settled.
    pub(crate) fn save(self, store: &Store) -> Result<(), stagecraft_store::Error> {
        let seen = self
            .seen
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if !seen.values().any(|seen| seen.hashed) {
            return Ok(());
        }
        let SavedIndex { started, entries } = self.saved;
        let mut kept: HashMap<Box<[u8]>, Entry> = entries
            .into_iter()
            .filter(|(path, entry)| {
                !seen.contains_key(path)
                    && entry.stat.settled_before(started)
                    && rustix::fs::statat(
                        rustix::fs::CWD,
                        self.root.join(OsStr::from_bytes(path)),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .is_ok_and(|st| FileStat::of(&Stat::from(st)) == entry.stat)
            })
            .collect();
        kept.extend(seen.into_iter().map(|(path, seen)| (path, seen.entry)));
        let index = SavedIndex {
            started: self.started,
            entries: kept,
        };
        store.put_context_index(&self.root, &index.encode())
    }

    fn lock_seen(&self) -> MutexGuard<'_, HashMap<Box<[u8]>, Seen>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_imagefs::MergedView;
    use std::fs;

    /// A store and a context directory holding `files` (name, content).
    fn setup(files: &[(&str, &str)]) -> (tempfile::TempDir, Store, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let context = dir.path().join("context");
        for (name, content) in files {
            let path = context.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        (dir, store, context)
    }

    /// A build start later than every change a test makes: all of them have settled by then.
    fn late_start() -> Timestamp {
        let now = Timestamp::file_clock_now();
        Timestamp {
            seconds: now.seconds + 3600,
            ..now
        }
    }

    /// Asks `hashes` for the hash of each file, as a copy step does, and checks every answer
    /// against the file's content.
    fn look_at(hashes: &ContextHashes, context: &Path, names: &[&str]) {
        let view = MergedView::new(vec![context.to_owned()]);
        for name in names {
            let found = view.lookup(&Path::new("/").join(name)).unwrap();
            assert_eq!(
                hashes.sha256(&found).unwrap(),
                found.sha256().unwrap(),
                "{name}"
            );
        }
    }

    fn counts(hashed: usize, from_index: usize) -> ContextFiles {
        ContextFiles { hashed, from_index }
    }

    fn saved_index(store: &Store, context: &Path) -> SavedIndex {
        SavedIndex::decode(&store.get_context_index(context).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn an_entry_looked_at_is_ninety_six_bytes() {
        // The build holds one per context file it looks at, beside its path.
        assert_eq!(std::mem::size_of::<Seen>(), 96);
    }

    #[test]
    fn only_files_whose_stat_changed_are_hashed_again() {
        let files = [
            ("a", "one"),
            ("b", "two"),
            ("c", "three"),
            ("sub/d", "four"),
        ];
        let (_dir, store, context) = setup(&files);
        let all = ["a", "b", "c", "sub/d"];
        let first = ContextHashes::load_started(&store, &context, late_start());
        look_at(&first, &context, &all);
        assert_eq!(first.counts(), counts(4, 0));
        first.save(&store).unwrap();

        // Same size, other bytes; the same bytes, touched; and `c` as it was.
        fs::write(context.join("a"), "eno").unwrap();
        let touched = fs::File::options()
            .write(true)
            .open(context.join("b"))
            .unwrap();
        touched
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        let second = ContextHashes::load_started(&store, &context, late_start());
        look_at(&second, &context, &["a", "b", "c"]);
        // Looking twice in one build reads nothing twice.
        look_at(&second, &context, &["a", "b", "c"]);
        assert_eq!(second.counts(), counts(2, 1));
        // A file outside the context (an ADD download) is neither counted nor recorded.
        let outside = MergedView::new(vec![store.root().to_owned()])
            .lookup(Path::new("/layout.json"))
            .unwrap();
        second.sha256(&outside).unwrap();
        assert_eq!(second.counts(), counts(2, 1));
        second.save(&store).unwrap();
        // `sub/d`, not looked at, is kept: its file still has the recorded stat.
        assert_eq!(saved_index(&store, &context).entries.len(), 4);

        // Nothing changed: everything comes from the index, and the index is not rewritten.
        let index_file = || {
            let dir = store.root().join("context-index");
            let entry = fs::read_dir(dir).unwrap().next().unwrap().unwrap();
            std::os::unix::fs::MetadataExt::ino(&entry.metadata().unwrap())
        };
        let before = index_file();
        let third = ContextHashes::load_started(&store, &context, late_start());
        look_at(&third, &context, &all);
        assert_eq!(third.counts(), counts(0, 4));
        third.save(&store).unwrap();
        assert_eq!(
            index_file(),
            before,
            "a build that hashed nothing wrote the index"
        );
    }

    #[test]
    fn a_file_changed_after_the_build_started_is_recorded_but_hashed_again_next_time() {
        let (_dir, store, context) = setup(&[("settled", "old")]);
        // The real clock: the build starts, then a file changes in the same tick or later.
        let first = ContextHashes::load(&store, &context);
        fs::write(context.join("racy"), "changed while the build ran").unwrap();
        look_at(&first, &context, &["racy"]);
        first.save(&store).unwrap();
        let saved = saved_index(&store, &context);
        assert!(saved.entries.contains_key(&b"racy"[..]));

        // Its stat is unchanged, but a change within that tick would not show in it.
        let second = ContextHashes::load_started(&store, &context, late_start());
        look_at(&second, &context, &["racy"]);
        assert_eq!(second.counts(), counts(1, 0));
    }

    #[test]
    fn whole_second_timestamps_must_be_two_seconds_older_than_the_start() {
        let at = |seconds, nanoseconds| Timestamp {
            seconds,
            nanoseconds,
        };
        let stat = |modified, changed| FileStat {
            size: 1,
            modified,
            changed,
            inode: 1,
            device: 1,
            mode: 0o100644,
        };
        let start = at(100, 500);
        assert!(stat(at(100, 499), at(90, 1)).settled_before(start));
        assert!(!stat(at(100, 500), at(90, 1)).settled_before(start));
        assert!(!stat(at(90, 1), at(100, 501)).settled_before(start));
        // A filesystem that keeps whole seconds (FAT: two) may stamp a later change the same.
        assert!(stat(at(98, 0), at(97, 0)).settled_before(start));
        assert!(!stat(at(99, 0), at(97, 0)).settled_before(start));
        assert!(!stat(at(97, 0), at(100, 0)).settled_before(start));
    }

    #[test]
    fn a_damaged_index_is_ignored_and_written_anew() {
        let files = [("a", "one"), ("b", "two")];
        let (_dir, store, context) = setup(&files);
        let first = ContextHashes::load_started(&store, &context, late_start());
        look_at(&first, &context, &["a", "b"]);
        first.save(&store).unwrap();
        let good = store.get_context_index(&context).unwrap().unwrap();
        assert_eq!(
            SavedIndex::decode(&good).unwrap(),
            saved_index(&store, &context)
        );
        for len in 0..good.len() {
            assert_eq!(SavedIndex::decode(&good[..len]), None, "cut at {len}");
        }
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 20] ^= 1;
        let mut longer = good.clone();
        longer.push(0);
        for damaged in [&good[..good.len() / 2], &flipped, &longer, b""] {
            store.put_context_index(&context, damaged).unwrap();
            let again = ContextHashes::load_started(&store, &context, late_start());
            look_at(&again, &context, &["a", "b"]);
            assert_eq!(again.counts(), counts(2, 0));
            again.save(&store).unwrap();
            assert_eq!(saved_index(&store, &context).entries.len(), 2);
        }
    }
}
