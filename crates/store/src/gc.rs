//! Garbage collection ([`Store::prune`]), integrity checking
//! ([`Store::verify`]) and disk usage, all run under the exclusive lock
//! when they delete anything.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;
use stagecraft_image::{Digest, Digester};

use crate::error::{Error, IoContext, Result};
use crate::lazy::{LazyBlob, lazy_records};
use crate::scratch::{discard_entry, remove_file_if_present};
use crate::snapshots::marker_matches;
use crate::store::{Store, remove_tree, tree_size};

/// Holds the store lock exclusively: no lease, no content write and no other
/// maintenance runs meanwhile, in this process or any other. Released on
/// drop. While holding it, use only its own methods; the store's writing
/// methods would wait for it forever.
#[derive(Debug)]
#[must_use = "the exclusive lock is released as soon as it is dropped"]
pub struct Maintenance {
    store: Store,
    _file: File,
}

/// What [`Store::prune`] may remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also remove every build cache record, so that only content reachable
    /// from tags survives (like `docker buildx prune --all`). Ignored when
    /// `keep_cache` is set.
    pub all: bool,
    /// Stop removing once the store uses at most this many bytes (blobs,
    /// snapshots and cache records). Candidates go oldest first (by
    /// modification time); if unreferenced content is not enough, cache
    /// records are evicted oldest first, each taking along the content only
    /// it kept alive (unless `keep_cache`).
    pub keep_storage: Option<u64>,
    /// Never remove cache records (content they reference stays too).
    pub keep_cache: bool,
    /// With `all`: remove only the cache records last written before this time (docker's
    /// `builder prune --filter until=`); newer ones stay, with what they reference.
    pub records_older_than: Option<SystemTime>,
    /// With `all`: keep the cache records whose content tagged images hold anyway (removing
    /// them frees nothing), as `docker builder prune` without `--all` keeps cache shared with
    /// images.
    pub keep_shared_records: bool,
    /// Report what would be removed, and remove nothing (under a lease: builds go on).
    pub dry_run: bool,
}

/// What [`Store::prune`] removed (in a dry run, what it would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs removed.
    pub removed_blobs: Vec<Digest>,
    /// Snapshots removed, by diff ID.
    pub removed_snapshots: Vec<Digest>,
    /// Cache records removed, by key.
    pub removed_cache_records: Vec<String>,
    /// Leftover temporary files and directories removed from `ingest/`
    /// (from interrupted writers).
    pub removed_temp_entries: usize,
    /// Context indexes removed (with `all`: they are hints, rebuilt by the
    /// next build of each context).
    pub removed_context_indexes: usize,
    /// Bytes freed, in apparent file sizes.
    pub bytes_freed: u64,
    /// Of `bytes_freed`, the cache records' own bytes.
    pub cache_record_bytes: u64,
    /// Of `bytes_freed`, the context indexes' bytes.
    pub context_index_bytes: u64,
}

/// How [`Store::verify`] behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Remove corrupt entries (takes the exclusive lock); otherwise only
    /// report them (under a shared lease, builds keep running).
    pub remove_corrupt: bool,
}

/// Which part of the store a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A file under `blobs/sha256/`.
    Blob,
    /// A directory under `snapshots/`.
    Snapshot,
}

/// One corrupt entry found by [`Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Blob or snapshot.
    pub kind: EntryKind,
    /// The entry's path.
    pub path: PathBuf,
    /// What is wrong, in words.
    pub problem: String,
    /// Whether it was removed.
    pub removed: bool,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries examined under `blobs/sha256/` (each blob is re-hashed).
    pub blobs_checked: usize,
    /// Entries examined under `snapshots/` (marker and content checked).
    pub snapshots_checked: usize,
    /// Problems found.
    pub corrupt: Vec<Corruption>,
    /// Tags whose target blob is missing (reported, never removed: the tag
    /// may be re-satisfied by pulling the image again).
    pub dangling_tags: Vec<(String, Digest)>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.dangling_tags.is_empty()
    }
}

/// Bytes used by each part of the store (apparent file sizes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// `blobs/`.
    pub blobs: u64,
    /// `snapshots/`.
    pub snapshots: u64,
    /// `cache/`.
    pub cache_records: u64,
    /// `ingest/` (writes in progress or abandoned).
    pub temp: u64,
}

impl DiskUsage {
    /// Everything together.
    pub fn total(&self) -> u64 {
        self.blobs + self.snapshots + self.cache_records + self.temp
    }
}

impl Store {
    /// Takes the store lock exclusively, waiting for all leases (builds,
    /// content writers) to end.
    pub fn lock_exclusive(&self) -> Result<Maintenance> {
        let path = self.store_lock_path();
        let file = self.lock_file_exclusive(&path)?;
        Ok(Maintenance {
            store: self.clone(),
            _file: file,
        })
    }

    /// Like [`Store::lock_exclusive`] but returns `None` instead of waiting.
    pub fn try_lock_exclusive(&self) -> Result<Option<Maintenance>> {
        let path = self.store_lock_path();
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .at("open lock file", &path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Maintenance {
                store: self.clone(),
                _file: file,
            })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(source)) => Err(Error::Io {
                action: "take the exclusive lock on",
                path,
                source,
            }),
        }
    }

    /// Removes what nothing needs: blobs and snapshots not reachable from a
    /// tag (manifest → config and layers, index → manifests, config →
    /// snapshots of its diff IDs) or from a cache record, cache records if
    /// `options` say so, and everything left in `ingest/` by writers that
    /// died. Waits for the exclusive lock.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        if options.dry_run {
            let _lease = self.lease()?;
            return prune(self, options);
        }
        self.lock_exclusive()?.prune(options)
    }

    /// Re-hashes every blob (in parallel) and checks every snapshot's
    /// completion marker; reports, and with `remove_corrupt` removes, what
    /// is damaged. `ingest/` is ignored: it only holds unfinished writes.
    pub fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport> {
        if options.remove_corrupt {
            self.lock_exclusive()?.verify(options)
        } else {
            let _lease = self.lease()?;
            verify(self, false)
        }
    }

    /// How much space the store uses.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let inventory = Inventory::scan(self)?;
        Ok(DiskUsage {
            blobs: inventory.blobs.values().map(|b| b.size).sum::<u64>()
                + inventory.lazy_blobs.values().map(|b| b.size).sum::<u64>(),
            snapshots: inventory
                .snapshots
                .values()
                .map(|s| tree_size(&s.path))
                .sum(),
            cache_records: inventory.records.iter().map(|r| r.size).sum(),
            temp: tree_size(&self.ingest_dir()),
        })
    }
}

impl Maintenance {
    /// [`Store::prune`] under this lock.
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        prune(&self.store, options)
    }

    /// [`Store::verify`] under this lock.
    pub fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport> {
        verify(&self.store, options.remove_corrupt)
    }
}

struct BlobEntry {
    size: u64,
    modified: SystemTime,
}

/// A lazy blob's record.
struct LazyEntry {
    /// The record's own size.
    size: u64,
    modified: SystemTime,
    /// Its recipe, `None` when unreadable or when a snapshot it names is gone (no blob).
    blob: Option<LazyBlob>,
}

struct SnapshotEntry {
    path: PathBuf,
    modified: SystemTime,
}

struct RecordEntry {
    key: String,
    size: u64,
    modified: SystemTime,
    refs: Vec<Digest>,
}

/// Everything in the store, listed once per prune.
struct Inventory {
    blobs: BTreeMap<Digest, BlobEntry>,
    lazy_blobs: BTreeMap<Digest, LazyEntry>,
    snapshots: BTreeMap<Digest, SnapshotEntry>,
    records: Vec<RecordEntry>,
}

impl Inventory {
    fn scan(store: &Store) -> Result<Inventory> {
        let mut blobs = BTreeMap::new();
        for (digest, path) in digest_entries(&store.blobs_dir())? {
            if let Ok(meta) = fs::symlink_metadata(&path)
                && meta.is_file()
            {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                blobs.insert(
                    digest,
                    BlobEntry {
                        size: meta.len(),
                        modified,
                    },
                );
            }
        }
        let mut lazy_blobs = BTreeMap::new();
        for (digest, path) in lazy_records(store)? {
            if let Ok(meta) = fs::symlink_metadata(&path) {
                let blob = store.lazy_blob(&digest);
                lazy_blobs.insert(
                    digest,
                    LazyEntry {
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        blob,
                    },
                );
            }
        }
        let mut snapshots = BTreeMap::new();
        for (digest, path) in digest_entries(&store.snapshots_dir())? {
            if let Ok(meta) = fs::symlink_metadata(&path)
                && meta.is_dir()
            {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                snapshots.insert(digest, SnapshotEntry { path, modified });
            }
        }
        let mut records = Vec::new();
        for key in store.list_cache_records()? {
            let path = store.cache_record_path(&key)?;
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            let bytes = fs::read(&path).at("read cache record", &path)?;
            records.push(RecordEntry {
                key,
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                refs: scan_digests(&bytes),
            });
        }
        Ok(Inventory {
            blobs,
            lazy_blobs,
            snapshots,
            records,
        })
    }
}

/// Entries of `dir` whose names are 64-hex digests. Other names are left
/// to verify.
fn digest_entries(dir: &Path) -> Result<Vec<(Digest, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at("list", dir)? {
        let entry = entry.at("list", dir)?;
        if let Some(name) = entry.file_name().to_str()
            && let Ok(digest) = Digest::from_hex(name)
        {
            out.push((digest, entry.path()));
        }
    }
    Ok(out)
}

/// Every `sha256:<64 lowercase hex>` in `bytes`.
fn scan_digests(bytes: &[u8]) -> Vec<Digest> {
    const PREFIX: &[u8] = b"sha256:";
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(PREFIX.len()).position(|w| w == PREFIX) {
        let start = at + found;
        let hex_start = start + PREFIX.len();
        if let Some(hex) = bytes.get(hex_start..hex_start + 64)
            && let Ok(text) = std::str::from_utf8(hex)
            && let Ok(digest) = Digest::from_hex(text)
        {
            out.push(digest);
        }
        at = hex_start;
    }
    out
}

/// Manifests, indexes and configs are small; anything larger, or not
/// starting with `{`, is a leaf (a layer) and is never read.
const MAX_LINKED_DOCUMENT: u64 = 16 << 20;

/// The digests a blob refers to, read lazily and remembered.
struct Links<'a> {
    store: &'a Store,
    memo: HashMap<Digest, Vec<Digest>>,
}

impl Links<'_> {
    fn of(&mut self, digest: &Digest, size: u64) -> &[Digest] {
        if !self.memo.contains_key(digest) {
            let links = if size <= MAX_LINKED_DOCUMENT {
                read_links(&self.store.blob_path(digest))
            } else {
                Vec::new()
            };
            self.memo.insert(digest.clone(), links);
        }
        self.memo.get(digest).map(Vec::as_slice).unwrap_or_default()
    }
}

/// References out of a JSON document: `manifests[].digest`,
/// `config.digest`, `layers[].digest`, `rootfs.diff_ids[]`. Unreadable or
/// non-JSON content has none.
fn read_links(path: &Path) -> Vec<Digest> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(_) => return Vec::new(),
    };
    let mut first = [0u8; 1];
    if file.read_exact(&mut first).is_err() || first[0] != b'{' {
        return Vec::new();
    }
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    let digest_of = |value: &serde_json::Value| {
        value
            .get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| Digest::parse(d).ok())
    };
    let mut links = Vec::new();
    for list in ["manifests", "layers"] {
        if let Some(items) = doc.get(list).and_then(|v| v.as_array()) {
            links.extend(items.iter().filter_map(digest_of));
        }
    }
    if let Some(config) = doc.get("config").and_then(digest_of) {
        links.push(config);
    }
    if let Some(diff_ids) = doc.pointer("/rootfs/diff_ids").and_then(|v| v.as_array()) {
        links.extend(
            diff_ids
                .iter()
                .filter_map(|d| d.as_str())
                .filter_map(|d| Digest::parse(d).ok()),
        );
    }
    links
}

/// Blobs and snapshots reachable from `roots`. A digest may name a blob, a
/// snapshot, both (an uncompressed layer blob and its unpacked form), or
/// neither (a cache key that only means something to the builder).
fn reachable(
    inventory: &Inventory,
    links: &mut Links<'_>,
    roots: impl IntoIterator<Item = Digest>,
) -> HashSet<Digest> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Digest> = roots.into_iter().collect();
    while let Some(digest) = stack.pop() {
        if !seen.insert(digest.clone()) {
            continue;
        }
        if let Some(blob) = inventory.blobs.get(&digest) {
            stack.extend(links.of(&digest, blob.size).iter().cloned());
        }
        // A lazy blob is made of its snapshots: they live as long as it does.
        if let Some(LazyEntry {
            blob: Some(blob), ..
        }) = inventory.lazy_blobs.get(&digest)
        {
            stack.extend(blob.snapshots().cloned());
        }
    }
    seen
}

/// Something prune may remove. A digest can name both a blob and a
/// snapshot (an uncompressed layer and its unpacked form), hence the kinds.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Candidate {
    Blob(Digest),
    LazyBlob(Digest),
    Snapshot(Digest),
    Record(String),
}

fn prune(store: &Store, options: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let dry_run = options.dry_run;
    // A dry run leaves `ingest/` alone: under a lease, what is there may be a live write.
    if !dry_run {
        clean_ingest(store, &mut report)?;
    }
    if options.all && !options.keep_cache {
        remove_context_indexes(store, dry_run, &mut report)?;
    }

    let inventory = Inventory::scan(store)?;
    let mut links = Links {
        store,
        memo: HashMap::new(),
    };
    let tag_roots: Vec<Digest> = store.read_tags()?.into_values().collect();
    let held_by_tags = if options.keep_shared_records {
        reachable(&inventory, &mut links, tag_roots.iter().cloned())
    } else {
        HashSet::new()
    };
    // The records `all` may remove; the others keep what they reference.
    let removable = |record: &RecordEntry| {
        options.all
            && !options.keep_cache
            && options
                .records_older_than
                .is_none_or(|limit| record.modified < limit)
            && !(options.keep_shared_records
                && !record.refs.is_empty()
                && record.refs.iter().all(|d| held_by_tags.contains(d)))
    };
    let records_are_roots = options.keep_cache || !options.all;
    let mut live_records: Vec<&RecordEntry> = inventory
        .records
        .iter()
        .filter(|r| records_are_roots || !removable(r))
        .collect();
    let roots_of = |records: &[&RecordEntry]| {
        let mut roots = tag_roots.clone();
        roots.extend(records.iter().flat_map(|r| r.refs.iter().cloned()));
        roots
    };
    let live = reachable(&inventory, &mut links, roots_of(&live_records));

    let mut usage = match options.keep_storage {
        Some(_) => {
            inventory.blobs.values().map(|b| b.size).sum::<u64>()
                + inventory.lazy_blobs.values().map(|b| b.size).sum::<u64>()
                + inventory
                    .snapshots
                    .values()
                    .map(|s| tree_size(&s.path))
                    .sum::<u64>()
                + inventory.records.iter().map(|r| r.size).sum::<u64>()
        }
        None => 0,
    };
    let over_limit = |usage: u64| options.keep_storage.is_none_or(|limit| usage > limit);

    let mut candidates = unreachable_content(&inventory, &live, &HashSet::new());
    if !records_are_roots {
        candidates.extend(
            inventory
                .records
                .iter()
                .filter(|r| removable(r))
                .map(|r| (r.modified, Candidate::Record(r.key.clone()))),
        );
    }
    let mut removed: HashSet<Candidate> = HashSet::new();
    // Oldest first, until the store fits (or all of them, without a limit).
    let remove_oldest = |mut candidates: Vec<(SystemTime, Candidate)>,
                         usage: &mut u64,
                         removed: &mut HashSet<Candidate>,
                         report: &mut PruneReport|
     -> Result<()> {
        candidates.sort_by_key(|(modified, _)| *modified);
        for (_, candidate) in candidates {
            if !over_limit(*usage) {
                break;
            }
            *usage = usage.saturating_sub(remove_candidate(
                store, &inventory, &candidate, dry_run, report,
            )?);
            removed.insert(candidate);
        }
        Ok(())
    };
    remove_oldest(candidates, &mut usage, &mut removed, &mut report)?;

    // Still over the limit with only referenced content left: evict cache
    // records, oldest first, and whatever only they were keeping.
    if options.keep_storage.is_some() && !options.keep_cache {
        live_records.sort_by_key(|r| r.modified);
        while over_limit(usage) && !live_records.is_empty() {
            let record = live_records.remove(0);
            usage = usage.saturating_sub(remove_candidate(
                store,
                &inventory,
                &Candidate::Record(record.key.clone()),
                dry_run,
                &mut report,
            )?);
            let live = reachable(&inventory, &mut links, roots_of(&live_records));
            let freed_now = unreachable_content(&inventory, &live, &removed);
            remove_oldest(freed_now, &mut usage, &mut removed, &mut report)?;
        }
    }
    Ok(report)
}

/// Blobs and snapshots not in `live` and not already removed, with their
/// modification times.
fn unreachable_content(
    inventory: &Inventory,
    live: &HashSet<Digest>,
    removed: &HashSet<Candidate>,
) -> Vec<(SystemTime, Candidate)> {
    let blobs = inventory
        .blobs
        .iter()
        .filter(|(d, _)| !live.contains(*d))
        .map(|(d, b)| (b.modified, Candidate::Blob(d.clone())));
    let snapshots = inventory
        .snapshots
        .iter()
        .filter(|(d, _)| !live.contains(*d))
        .map(|(d, s)| (s.modified, Candidate::Snapshot(d.clone())));
    // A record whose snapshots are gone is no blob, reachable or not.
    let lazy_blobs = inventory
        .lazy_blobs
        .iter()
        .filter(|(d, b)| !live.contains(*d) || b.blob.is_none())
        .map(|(d, b)| (b.modified, Candidate::LazyBlob(d.clone())));
    blobs
        .chain(lazy_blobs)
        .chain(snapshots)
        .filter(|(_, candidate)| !removed.contains(candidate))
        .collect()
}

/// Removes one candidate (unless `dry_run`), records it in the report, returns bytes freed.
fn remove_candidate(
    store: &Store,
    inventory: &Inventory,
    candidate: &Candidate,
    dry_run: bool,
    report: &mut PruneReport,
) -> Result<u64> {
    let freed = match candidate {
        Candidate::Blob(digest) => {
            if !dry_run {
                remove_file_if_present(&store.blob_path(digest))?;
            }
            report.removed_blobs.push(digest.clone());
            inventory.blobs.get(digest).map_or(0, |b| b.size)
        }
        Candidate::LazyBlob(digest) => {
            if !dry_run {
                remove_file_if_present(&store.lazy_record_path(digest))?;
            }
            report.removed_blobs.push(digest.clone());
            inventory.lazy_blobs.get(digest).map_or(0, |b| b.size)
        }
        Candidate::Snapshot(digest) => {
            let freed = match inventory.snapshots.get(digest) {
                Some(snapshot) if dry_run => tree_size(&snapshot.path),
                _ => discard_snapshot(store, &store.snapshot_dir(digest))?,
            };
            report.removed_snapshots.push(digest.clone());
            freed
        }
        Candidate::Record(key) => {
            let path = store.cache_record_path(key)?;
            if !dry_run {
                remove_file_if_present(&path)?;
            }
            report.removed_cache_records.push(key.clone());
            let size = inventory
                .records
                .iter()
                .find(|r| &r.key == key)
                .map_or(0, |r| r.size);
            report.cache_record_bytes += size;
            size
        }
    };
    report.bytes_freed += freed;
    Ok(freed)
}

/// Removes every context index (unless `dry_run`): they reference nothing, and a build without
/// one hashes its context files again and writes a new one.
fn remove_context_indexes(store: &Store, dry_run: bool, report: &mut PruneReport) -> Result<()> {
    let dir = store.context_index_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                action: "list",
                path: dir,
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let size = entry.metadata().map_or(0, |m| m.len());
        if !dry_run {
            remove_file_if_present(&path)?;
        }
        report.removed_context_indexes += 1;
        report.context_index_bytes += size;
        report.bytes_freed += size;
    }
    Ok(())
}

/// Moves a snapshot directory out of `snapshots/` in one rename (so no
/// reader ever sees it half-deleted), then deletes it. Returns its size.
fn discard_snapshot(store: &Store, dir: &Path) -> Result<u64> {
    let size = tree_size(dir);
    // An empty directory can be replaced by rename; a crash after this
    // point leaves the tree in ingest/, which the next prune empties.
    let target = store.scratch_dir("removing")?;
    fs::rename(dir, target.path()).at("move out of the store", dir)?;
    remove_tree(target.path())?;
    Ok(size)
}

/// Everything in `ingest/` belongs to a writer that held a lease; under the
/// exclusive lock no writer is alive, so all of it is abandoned.
fn clean_ingest(store: &Store, report: &mut PruneReport) -> Result<()> {
    let ingest = store.ingest_dir();
    for entry in fs::read_dir(&ingest).at("list", &ingest)? {
        let entry = entry.at("list", &ingest)?;
        let path = entry.path();
        let is_dir = entry.file_type().at("inspect", &path)?.is_dir();
        let size = if is_dir {
            tree_size(&path)
        } else {
            entry.metadata().map_or(0, |m| m.len())
        };
        discard_entry(&path)?;
        report.removed_temp_entries += 1;
        report.bytes_freed += size;
    }
    Ok(())
}

fn verify(store: &Store, remove: bool) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();

    let blobs_dir = store.blobs_dir();
    let entries: Vec<PathBuf> = fs::read_dir(&blobs_dir)
        .at("list", &blobs_dir)?
        .map(|entry| entry.map(|e| e.path()).at("list", &blobs_dir))
        .collect::<Result<_>>()?;
    report.blobs_checked = entries.len();
    let problems: Vec<(PathBuf, String)> = entries
        .par_iter()
        .filter_map(|path| check_blob(path).map(|problem| (path.clone(), problem)))
        .collect();
    for (path, problem) in problems {
        let removed = remove && {
            let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            if is_dir {
                remove_tree(&path)?
            } else {
                remove_file_if_present(&path)?
            }
            true
        };
        report.corrupt.push(Corruption {
            kind: EntryKind::Blob,
            path,
            problem,
            removed,
        });
    }

    // A lazy blob is checked by regenerating its bytes and hashing them.
    let records = lazy_records(store)?;
    report.blobs_checked += records.len();
    for (digest, path) in records {
        let Some(problem) = check_lazy_blob(store, &digest) else {
            continue;
        };
        let removed = remove && {
            remove_file_if_present(&path)?;
            true
        };
        report.corrupt.push(Corruption {
            kind: EntryKind::Blob,
            path,
            problem,
            removed,
        });
    }

    let snapshots_dir = store.snapshots_dir();
    for entry in fs::read_dir(&snapshots_dir).at("list", &snapshots_dir)? {
        let path = entry.at("list", &snapshots_dir)?.path();
        report.snapshots_checked += 1;
        let Some(problem) = check_snapshot(&path) else {
            continue;
        };
        let removed = remove && {
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                discard_snapshot(store, &path)?;
            } else {
                remove_file_if_present(&path)?;
            }
            true
        };
        report.corrupt.push(Corruption {
            kind: EntryKind::Snapshot,
            path,
            problem,
            removed,
        });
    }

    for (reference, digest) in store.read_tags()? {
        if !store.has_blob(&digest) {
            report.dangling_tags.push((reference, digest));
        }
    }
    Ok(report)
}

/// What is wrong with a blob file, if anything.
fn check_blob(path: &Path) -> Option<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Ok(expected) = Digest::from_hex(name) else {
        return Some("not a blob: its name is not a sha256 hex digest".to_owned());
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Some("not a regular file".to_owned()),
        Err(e) => return Some(format!("cannot inspect: {e}")),
    }
    match hash_file(path) {
        Ok((actual, _)) if actual == expected => None,
        Ok((actual, size)) => Some(format!("content hashes to {actual} ({size} bytes)")),
        Err(e) => Some(format!("cannot read: {e}")),
    }
}

/// What is wrong with the lazy blob `digest`, if anything.
fn check_lazy_blob(store: &Store, digest: &Digest) -> Option<String> {
    if store.lazy_blob(digest).is_none() {
        return Some("lazy blob whose record is unreadable or whose snapshots are gone".to_owned());
    }
    let digester = match store.write_lazy_blob(digest, Digester::new()) {
        Ok(digester) => digester,
        Err(e) => return Some(format!("cannot regenerate: {e}")),
    };
    let size = digester.len();
    let actual = digester.finish();
    (actual != *digest)
        .then(|| format!("regenerated from its snapshots, hashes to {actual} ({size} bytes)"))
}

/// What is wrong with a snapshot directory, if anything.
fn check_snapshot(path: &Path) -> Option<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Ok(diff_id) = Digest::from_hex(name) else {
        return Some("not a snapshot: its name is not a sha256 hex digest".to_owned());
    };
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Some("not a directory".to_owned());
    }
    (!marker_matches(path, &diff_id))
        .then(|| "incomplete: its completion marker is missing or names another layer".to_owned())
}

fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut file = File::open(path)?;
    let mut digester = Digester::new();
    // Large reads: fewer syscalls than io::copy's 8 KiB buffer.
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => digester.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let size = digester.len();
    Ok((digester.finish(), size))
}
