//! stagecraft's content-addressed store: image blobs, tags, unpacked layer
//! snapshots and build cache records in one directory that any number of
//! stagecraft processes share without a daemon.
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
//!   ingest/                    writes in progress: blob-*, snapshot-*, write-*,
//!                              removing-*; anything here with no live writer is
//!                              garbage that prune deletes
//!   snapshots/<diff-id hex>/   one unpacked layer per uncompressed-layer digest
//!     fs/                      the layer's files (an overlay lower directory)
//!     complete                 marker containing the diff ID; written last
//!   tags.json                  {"version":1,"tags":{"docker.io/library/busybox:latest":"sha256:…"}}
//!   cache/<key>                build cache records (opaque bytes, JSON by convention);
//!                              layer-variant-<alg>-<level>-<diff-id hex>: a plain layer's
//!                              compressed blob, made once (see Store::compressed_layer)
//!   locks/store.lock           the store lock (below)
//!   locks/tags.lock            serializes tags.json updates
//! ```
//!
//! # Crash safety
//!
//! Nothing is ever written in place. A blob is written to `ingest/`,
//! fsynced, renamed to its name and the directory fsynced, so a blob file
//! always matches its name (short of disk corruption, which
//! [`Store::verify`] detects). `tags.json` and cache records are replaced by
//! the same write-then-rename. A snapshot is filled in `ingest/`, the
//! filesystem synced (`syncfs`), its `complete` marker written, and the
//! whole directory renamed into `snapshots/`; [`Store::snapshot_path`] only
//! returns snapshots with a marker that names them. Deleting a snapshot
//! starts with a rename back into `ingest/`, so no reader sees one
//! half-deleted. A `kill -9` at any point leaves at most leftovers in
//! `ingest/`, removed by the next [`Store::prune`] and ignored by verify.
//!
//! # Lock protocol
//!
//! `locks/store.lock` is an advisory `flock` lock (`std::fs::File::lock`),
//! taken through a new open file each time, so it works between threads as
//! well as between processes:
//!
//! * **shared**: every operation that adds content (blob writes, snapshots,
//!   cache records, tags, [`Store::write_image`]) takes it for its own
//!   duration; a build takes a [`Lease`] ([`Store::lease`]) for its whole
//!   run, so nothing it has looked at disappears under it;
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
//! # Garbage collection
//!
//! [`Store::prune`] keeps what is reachable from tags (index → manifests,
//! manifest → config and layers, config → snapshots of its `diff_ids`) and
//! from cache records (any `sha256:` digest they mention, followed the same
//! way), and removes the rest; [`PruneOptions`] controls cache records and a
//! storage budget.

mod blobs;
mod cache;
mod error;
mod gc;
mod images;
mod snapshots;
mod store;
mod tags;
mod variants;

pub use blobs::{BlobInfo, BlobWriter};
pub use error::{Error, Result};
pub use gc::{
    Corruption, DiskUsage, EntryKind, Maintenance, PruneOptions, PruneReport, VerifyOptions,
    VerifyReport,
};
pub use images::{Image, ManifestFormat};
pub use stagecraft_image::{Digest, Reference};
pub use store::{Lease, Store, default_root};
