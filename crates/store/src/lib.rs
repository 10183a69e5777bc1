//! stagecraft's content-addressed store: image blobs, tags, unpacked layer
//! snapshots, build cache records and cache mounts in one directory that any
//! number of stagecraft processes share without a daemon.
//!
//! # Location
//!
//! [`Store::open_default`] uses [`default_root`]: `$STAGECRAFT_ROOT`, else
//! `/var/lib/stagecraft` when running as root, else
//! `$XDG_DATA_HOME/stagecraft` (falling back to
//! `~/.local/share/stagecraft`). Rootless builds, root of their own user
//! namespace, keep the user's location.
//!
//! A store is either rootful or rootless, for good: its snapshots mark
//! opaque directories with `trusted.overlay.*` or `user.overlay.*` xattrs
//! ([`Store::overlay_xattr`]), and neither kind of process can use the
//! other's. `layout.json` records which; the other kind is refused.
//!
//! # Layout
//!
//! ```text
//! <root>/                      mode 0700: snapshots hold whole root filesystems
//!   layout.json                {"version":1,"overlay_xattr":"trusted"|"user"}; a different
//!                              version, or the other kind of process, is refused
//!   blobs/sha256/<hex>         content, named by its sha256, read-only (0444)
//!   ingest/                    writes in progress (blob, snapshot, write, cache-mount, removing,
//!                              step, git, download, load, …), each named
//!                              <kind>-<pid>-<start time>-<pid ns>-<random> after the process
//!                              that owns it (see [`Store::scratch_dir`]); output-* links to
//!                              partial outputs outside the store ([`Store::output_file`]).
//!                              The first lease of a handle removes those whose owner is gone;
//!                              prune removes everything
//!   lazy-blobs/<hex>           a layer blob recorded, not written: what regenerates its bytes
//!                              (its upper and lower snapshots, tar options; see [`LazyBlob`]).
//!                              A blob while its snapshots are there; written as a file under
//!                              blobs/ when a reader needs one ([`Store::blob_file`])
//!   snapshots/<diff-id hex>/   one unpacked layer per uncompressed-layer digest
//!     fs/                      the layer's files (an overlay lower directory)
//!     complete                 marker containing the diff ID; written last
//!   tags.json                  {"version":1,"tags":{"docker.io/library/busybox:latest":"sha256:…"}}
//!   cache/<key>                build cache records (opaque bytes, JSON by convention);
//!                              layer-variant-<alg>-<level>-<diff-id hex> (<alg>:
//!                              gzip-blocks-stored, zstd): a plain layer's
//!                              compressed blob, made once (see Store::compressed_layer)
//!   cache-mounts/<key>/        the contents of a `RUN --mount=type=cache`, <key> the
//!                              hashed mount id (see [`cache_mount_key`])
//!   cache-mounts/<key>.json    {"id":"…"}: the mount's id; its mtime is the mount's last use
//!   cache-mounts/<key>.lock    the mount's lock (steps shared or exclusive, export and
//!                              import exclusive; see [`Store::lock_cache_mount`])
//!   context-index/<hex>        per build context, named by the sha256 of its
//!                              canonical path: its files' content hashes by
//!                              stat (opaque bytes, the builder's format), so a
//!                              rebuild rereads only changed files; a hint that
//!                              references nothing, deletable at any time
//!   locks/store.lock           the store lock (below)
//!   locks/tags.lock            serializes tags.json updates
//! ```
//!
//! # Crash safety
//!
//! Nothing is ever written in place (but the contents of a cache mount,
//! which the steps using it change as they like). A blob is written to `ingest/`,
//! fsynced and renamed to its name, so a blob file always matches its name
//! (short of disk corruption, which [`Store::verify`] detects); the renames
//! are made durable together, by an fsync of `blobs/sha256/` before each
//! update of `tags.json`, the one durable file that names blobs (a blob that
//! a crash takes back is absent, and readers check presence). `tags.json`
//! itself is replaced by write, fsync, rename and fsync of its directory. Cache records and context indexes are hints, replaced by
//! a write-then-rename with no fsync: a power loss may leave one old, missing
//! or unreadable, which their readers take as absent (a rebuild, a rehash) —
//! syncing them would cost two fsyncs per record, dozens per build. A snapshot
//! is filled in `ingest/`, its `complete` marker written, the filesystem synced
//! (one `syncfs`, not an fsync per file), and the whole directory renamed into
//! `snapshots/` (not synced: a snapshot a crash takes back is unpacked again
//! from its blob); [`Store::snapshot_path`] only
//! returns snapshots with a marker that names them. Deleting a snapshot
//! starts with a rename back into `ingest/`, so no reader sees one
//! half-deleted. A lazy blob's record is written (write, fsync, rename, fsync)
//! after the snapshots it names are installed and `snapshots/` is synced, so
//! it never outlives them; its bytes, when written, go through the blob path
//! above and are checked against its name. A new cache mount is filled in `ingest/` and renamed into
//! place ([`NewCacheMount::install`]), or swapped with the old one in one
//! `renameat2(RENAME_EXCHANGE)` ([`NewCacheMount::replace`]). A `kill -9`
//! at any point leaves at most leftovers in `ingest/`, removed by the next
//! lease (once their owner is seen to be gone) or prune, and ignored by verify.
//!
//! # Lock protocol
//!
//! `locks/store.lock` is an advisory `flock` lock (`std::fs::File::lock`),
//! taken through a new open file each time, so it works between threads as
//! well as between processes:
//!
//! * **shared**: every operation that adds content (blob writes, snapshots,
//!   cache records, context indexes, tags, [`Store::write_image`],
//!   [`Store::write_index`]) takes it for its own duration; a build takes a
//!   [`Lease`] ([`Store::lease`]) for its whole run, so nothing it has
//!   looked at disappears under it;
//! * **exclusive**: [`Store::prune`] and [`Store::verify`] with
//!   `remove_corrupt` ([`Store::lock_exclusive`] → [`Maintenance`]). They
//!   wait for every lease to end, and new leases wait for them.
//!
//! Reads take no lock: every file is replaced atomically, so a reader sees
//! old or new content, or (if a prune removed it) nothing.
//!
//! `locks/tags.lock` is held exclusively around the read-modify-write of
//! `tags.json`, always *after* the shared store lock (one order, so no
//! deadlock). A thread must not ask for the exclusive store lock while it
//! holds a lease: it would wait for itself.
//!
//! `cache-mounts/<key>.lock` ([`Store::lock_cache_mount`]) is taken while
//! holding a lease, if at all, never the other way round; a build takes the
//! locks of a step's mounts in one order (by id) and holds them while the
//! step runs.
//!
//! # Garbage collection
//!
//! [`Store::prune`] keeps what is reachable from tags (index → manifests,
//! manifest → config and layers, config → snapshots of its `diff_ids`, lazy
//! blob → the snapshots it is made of) and from cache records (any `sha256:`
//! digest they mention, followed the same way), and removes the rest (a lazy
//! blob whose snapshots are gone is removed whatever references it: it is no
//! blob any more); [`PruneOptions`] controls cache records and a
//! storage budget. Cache mounts are never pruned, nor counted in
//! [`Store::disk_usage`]: like BuildKit's, they are the user's to keep.
//! Context indexes reference nothing (about a hundred bytes per context
//! file); `all` without `keep_cache` removes them, and the next build of a
//! context hashes it again.
#![forbid(unsafe_code)]

mod blobs;
mod cache;
mod cache_mounts;
mod context_index;
mod error;
mod gc;
mod images;
mod lazy;
mod multi_platform;
mod output;
mod scratch;
mod snapshots;
mod store;
mod styles;
mod tags;
mod variants;

pub use blobs::{BlobInfo, BlobWriter, DigestWriter};
pub use cache_mounts::{
    CacheMount, CacheMountAccess, CacheMountLock, NewCacheMount, cache_mount_key,
};
pub use error::{Error, Result};
pub use gc::{
    Corruption, DiskUsage, EntryKind, Maintenance, PruneOptions, PruneReport, VerifyOptions,
    VerifyReport,
};
pub use images::{Artifact, Image, ManifestFormat};
pub use lazy::LazyBlob;
pub use multi_platform::{AttestationManifest, MultiPlatformImage};
pub use output::{OutputDir, OutputFile};
pub use scratch::{ScratchDir, ScratchFile};
pub use stagecraft_image::{Digest, Reference};
pub use store::{Lease, Store, default_root};
pub use styles::Annotations;
