//! Lazy blobs: layer blobs recorded by what regenerates their bytes, `lazy-blobs/<hex>`.
//!
//! A layer a build step makes is, byte for byte, the tar [`write_tar`] writes of its upper
//! snapshot over its lower snapshots ([`DiffSource::OverlayUpper`]). The step hashes that tar
//! (for its diff ID and size) and records the recipe instead of storing the bytes: most
//! builds never read them (a `-t` build, a cached rebuild, a flattening export). Whoever
//! needs the bytes regenerates them ([`Store::write_lazy_blob`]) or has them written as an
//! ordinary blob first ([`Store::materialize_blob`], which every path-based reader goes
//! through). This is what BuildKit does: its snapshots are the truth, its blobs are made on
//! export.
//!
//! Why regenerating gives the very bytes hashed at commit time: the tar depends only on the
//! trees it walks (names, `lstat`, xattrs, link targets, file contents, inode identity for
//! hard links) and the [`TarOptions`]; the upper directory becomes the snapshot by a rename
//! (same inodes), the lowers are installed snapshots, and installed snapshots are never
//! changed (they are overlay lower directories; a copy that reuses a file hard-links it into
//! a new upper and never edits it). A commit that reuses entries of an earlier layer tar
//! ([`LazyRootfs::write_diff_tar`]) writes the same bytes as reading the files. A step
//! records a lazy blob only when the snapshot installed is its own upper directory (a
//! snapshot of that diff ID unpacked earlier from a pulled blob holds the same files, but is
//! not known to give the same tar). Disk damage is the one way left to differ:
//! materializing, applying for good and `verify` check the digest and refuse.
//!
//! Crash rules: a record is written after the snapshots it names are installed (and their
//! renames synced), by write, fsync, rename, fsync; a record whose snapshots are gone (a
//! prune, a crash that undid an install) is no blob at all: [`Store::has_blob`] says no.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use stagecraft_image::Digest;
use stagecraft_layer::{DiffSource, LazyRootfs, OverlayXattr, TarOptions, write_tar};

use crate::error::{Error, IoContext, Result};
use crate::store::{Store, read_if_present, sync_dir};

/// The first line of a record: its format and version. A record with another is not read
/// (its blob is missing, and made again by whoever needs it).
const RECORD_HEADER: &str = "stagecraft lazy blob v1";

/// What regenerates a layer blob: the tar of an upper snapshot over lower snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LazyBlob {
    /// The blob's size in bytes.
    pub size: u64,
    /// The diff ID of the snapshot holding the layer's upper directory.
    pub upper: Digest,
    /// The diff IDs of the lower snapshots, topmost first (as `lowerdir=` lists them).
    pub lowers: Vec<Digest>,
    /// The options the tar is written with.
    pub options: TarOptions,
    /// The xattr namespace of the snapshots' overlay markers.
    pub xattr: OverlayXattr,
}

impl LazyBlob {
    /// The record's bytes: one `key value` line each, lowers in order.
    fn encode(&self) -> String {
        let mut text = format!(
            "{RECORD_HEADER}\nsize {}\nxattr {}\nsource-date-epoch {}\nupper {}\n",
            self.size,
            xattr_name(self.xattr),
            self.options
                .source_date_epoch
                .map_or_else(|| "none".to_owned(), |epoch| epoch.to_string()),
            self.upper,
        );
        for lower in &self.lowers {
            text.push_str(&format!("lower {lower}\n"));
        }
        text
    }

    /// Reads a record [`encode`](Self::encode) wrote; `None` for anything else.
    fn decode(text: &str) -> Option<LazyBlob> {
        let mut lines = text.lines();
        if lines.next()? != RECORD_HEADER {
            return None;
        }
        let mut field = |key: &str| {
            let (name, value) = lines.next()?.split_once(' ')?;
            (name == key).then_some(value)
        };
        let size = field("size")?.parse().ok()?;
        let xattr = match field("xattr")? {
            "trusted" => OverlayXattr::Trusted,
            "user" => OverlayXattr::User,
            _ => return None,
        };
        let source_date_epoch = match field("source-date-epoch")? {
            "none" => None,
            epoch => Some(epoch.parse().ok()?),
        };
        let upper = Digest::parse(field("upper")?).ok()?;
        let lowers = lines
            .map(|line| Digest::parse(line.strip_prefix("lower ")?).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(LazyBlob {
            size,
            upper,
            lowers,
            options: TarOptions { source_date_epoch },
            xattr,
        })
    }

    /// Every snapshot the blob is made of: the upper, then the lowers.
    pub fn snapshots(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.upper).chain(&self.lowers)
    }
}

fn xattr_name(xattr: OverlayXattr) -> &'static str {
    match xattr {
        OverlayXattr::Trusted => "trusted",
        OverlayXattr::User => "user",
    }
}

impl Store {
    /// Writes the layer tar of the overlay upper directory `upper` over the snapshots
    /// `lowers` (topmost first) into `out`, taking the bytes of the files `reused` knows
    /// from the blobs it names. The one way a step's layer is made, at commit time (`upper`
    /// a step's directory) and when a [`LazyBlob`] is regenerated (`upper` its snapshot).
    pub fn write_layer_tar<W: Write>(
        &self,
        upper: &Path,
        lowers: &[Digest],
        options: &TarOptions,
        reused: Option<&LazyRootfs>,
        out: W,
    ) -> Result<W> {
        let lower_dirs = self.snapshot_dirs(lowers)?;
        let source = DiffSource::OverlayUpper {
            upper,
            lower_dirs: &lower_dirs,
            xattr: self.overlay_xattr(),
        };
        match reused {
            Some(reused) => reused.write_diff_tar(&source, options, out),
            None => write_tar(&source, options, out),
        }
        .map_err(|source| Error::LayerTar {
            upper: upper.to_owned(),
            source,
        })
    }

    /// Whether this store records the layers builds make as lazy blobs: a rootful one only.
    /// A rootless store's files belong to the ids of a build's user namespace, and a process
    /// outside it (a `save`, a `push`) reads other owners there: the tar it would regenerate
    /// is not the one the build hashed. A rootful process sees the host's ids, as every other.
    pub fn records_lazy_blobs(&self) -> bool {
        self.overlay_xattr() == OverlayXattr::Trusted
    }

    /// Records the blob `digest` as `blob` describes it, once the snapshots it names are
    /// installed (and their installs synced), by write, fsync, rename, fsync: a record never
    /// outlives its snapshots.
    pub fn record_lazy_blob(&self, digest: &Digest, blob: &LazyBlob) -> Result<()> {
        let _lease = self.lease()?;
        for snapshot in blob.snapshots() {
            self.installed_snapshot(snapshot)?;
        }
        // A snapshot's install (a rename) is not synced by itself; the record must not
        // outlive it.
        sync_dir(&self.snapshots_dir())?;
        self.write_atomically(&self.lazy_record_path(digest), blob.encode().as_bytes())
    }

    /// The recipe of the lazy blob `digest`, if there is one whose snapshots are all
    /// installed.
    pub fn lazy_blob(&self, digest: &Digest) -> Option<LazyBlob> {
        let bytes =
            read_if_present(self.lazy_record_path(digest), "read lazy blob record").ok()??;
        let blob = LazyBlob::decode(std::str::from_utf8(&bytes).ok()?)?;
        (blob.xattr == self.overlay_xattr()
            && blob
                .snapshots()
                .all(|snapshot| self.snapshot_path(snapshot).is_some()))
        .then_some(blob)
    }

    /// Writes the bytes of the lazy blob `digest` into `out`, regenerated from its
    /// snapshots, unchecked (the caller hashes them if it needs to: see
    /// [`Store::materialize_blob`]).
    pub fn write_lazy_blob<W: Write>(&self, digest: &Digest, out: W) -> Result<W> {
        let blob = self.lazy_blob(digest).ok_or_else(|| Error::BlobNotFound {
            digest: digest.clone(),
            path: self.blob_path(digest),
        })?;
        self.regenerate(&blob, out)
    }

    /// Writes the bytes of `blob` into `out`, from its snapshots.
    fn regenerate<W: Write>(&self, blob: &LazyBlob, out: W) -> Result<W> {
        let upper = self.installed_snapshot(&blob.upper)?;
        self.write_layer_tar(&upper, &blob.lowers, &blob.options, None, out)
    }

    /// The content directories of `blob`'s upper snapshot and of its lowers (topmost
    /// first): what its tar is written from, for readers that take the files' bytes from
    /// there ([`LazyRootfs::apply_snapshot_layer`]).
    pub fn lazy_blob_dirs(&self, blob: &LazyBlob) -> Result<(PathBuf, Vec<PathBuf>)> {
        let upper = self.installed_snapshot(&blob.upper)?;
        let lowers = self.snapshot_dirs(&blob.lowers)?;
        Ok((upper, lowers))
    }

    fn snapshot_dirs(&self, diff_ids: &[Digest]) -> Result<Vec<PathBuf>> {
        diff_ids
            .iter()
            .map(|diff_id| self.installed_snapshot(diff_id))
            .collect()
    }

    /// Makes sure the blob `digest` is a file in the store, writing a lazy blob's bytes
    /// there (checked against its digest: a mismatch keeps nothing and is
    /// [`Error::LazyBlobDamaged`]).
    pub fn materialize_blob(&self, digest: &Digest) -> Result<()> {
        if self.blob_path(digest).is_file() {
            return Ok(());
        }
        // Looked up before a writer takes a lease: a missing blob is reported as such, even
        // under the exclusive lock.
        let blob = self.lazy_blob(digest).ok_or_else(|| Error::BlobNotFound {
            digest: digest.clone(),
            path: self.blob_path(digest),
        })?;
        let upper = self.installed_snapshot(&blob.upper)?;
        self.write_layer_blob(digest, &upper, &blob.lowers, &blob.options)
    }

    /// Writes the layer tar of `upper` over the snapshots `lowers` as the blob `digest`,
    /// checked: bytes that hash to anything else are not kept, and are
    /// [`Error::LazyBlobDamaged`].
    pub fn write_layer_blob(
        &self,
        digest: &Digest,
        upper: &Path,
        lowers: &[Digest],
        options: &TarOptions,
    ) -> Result<()> {
        let writer = self.write_layer_tar(upper, lowers, options, None, self.blob_writer()?)?;
        let staged = writer.finish()?;
        if staged.info.digest != *digest {
            return Err(Error::LazyBlobDamaged {
                digest: digest.clone(),
                actual: staged.info.digest,
            });
        }
        self.commit(staged).map(|_| ())
    }

    /// The file of the blob `digest`, written first if it is a lazy blob
    /// ([`Store::materialize_blob`]). For readers that need a path.
    pub fn blob_file(&self, digest: &Digest) -> Result<PathBuf> {
        self.materialize_blob(digest)?;
        Ok(self.blob_path(digest))
    }

    /// The content directory of the installed snapshot `diff_id`, or why there is none.
    fn installed_snapshot(&self, diff_id: &Digest) -> Result<PathBuf> {
        self.snapshot_path(diff_id)
            .ok_or_else(|| Error::SnapshotMissing {
                diff_id: diff_id.clone(),
            })
    }

    pub(crate) fn lazy_blobs_dir(&self) -> PathBuf {
        self.root().join("lazy-blobs")
    }

    pub(crate) fn lazy_record_path(&self, digest: &Digest) -> PathBuf {
        self.lazy_blobs_dir().join(digest.hex())
    }
}

/// The lazy blob records in the store, by digest (names that are no digest are skipped).
pub(crate) fn lazy_records(store: &Store) -> Result<Vec<(Digest, PathBuf)>> {
    let dir = store.lazy_blobs_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                action: "list",
                path: dir,
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at("list", &dir)?;
        if let Some(name) = entry.file_name().to_str()
            && let Ok(digest) = Digest::from_hex(name)
        {
            out.push((digest, entry.path()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_other_versions_are_not_read() {
        let blob = LazyBlob {
            size: 1234,
            upper: Digest::of(b"upper"),
            lowers: vec![Digest::of(b"top"), Digest::of(b"bottom")],
            options: TarOptions {
                source_date_epoch: Some(-5),
            },
            xattr: OverlayXattr::User,
        };
        let text = blob.encode();
        assert_eq!(LazyBlob::decode(&text), Some(blob.clone()));
        let none = LazyBlob {
            lowers: Vec::new(),
            options: TarOptions::default(),
            ..blob
        };
        assert_eq!(LazyBlob::decode(&none.encode()), Some(none));
        let other = text.replace("v1", "v2");
        assert_eq!(LazyBlob::decode(&other), None);
        assert_eq!(LazyBlob::decode(&text.replace("size ", "bytes ")), None);
    }
}
