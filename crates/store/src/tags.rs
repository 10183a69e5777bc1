//! Tags: normalized `domain/path:tag` → manifest (or index) digest, kept in
//! `tags.json`.

use std::collections::BTreeMap;
use std::fs;
use std::io;

use serde::{Deserialize, Serialize};
use stagecraft_image::{AnyManifest, Digest, Reference};

use crate::error::{Error, Result};
use crate::store::{Store, sync_dir};

const TAGS_VERSION: u32 = 1;

/// The tag file. A versioned object so that more sections (such as a cache
/// of tags resolved in registries) can be added without a new file.
#[derive(Debug, Serialize, Deserialize)]
struct TagFile {
    version: u32,
    tags: BTreeMap<String, Digest>,
}

impl Store {
    /// Points `reference` (normalized like Docker: `busybox` →
    /// `docker.io/library/busybox:latest`) at the manifest or index
    /// `digest`, which must be in the store. Returns the normalized
    /// reference. The update is atomic and serialized with other tag writers.
    pub fn set_tag(&self, reference: &str, digest: &Digest) -> Result<Reference> {
        let reference = tag_reference(reference)?;
        // The lease keeps a concurrent prune from deleting the target
        // between the check below and the tag being written.
        let _lease = self.lease()?;
        let bytes = self.read_blob(digest)?;
        if let Err(source) = AnyManifest::from_slice(&bytes, None) {
            return Err(Error::NotAManifest {
                reference: reference.to_string(),
                digest: digest.clone(),
                source,
            });
        }
        self.update_tags(|tags| {
            tags.insert(reference.to_string(), digest.clone());
        })?;
        Ok(reference)
    }

    /// The digest `reference` points at, or `None` if it is not tagged. A
    /// reference that carries a digest (`name@sha256:…`) resolves to that
    /// digest when the blob is present.
    pub fn resolve_tag(&self, reference: &str) -> Result<Option<Digest>> {
        let parsed = Reference::parse(reference)?;
        if let Some(digest) = parsed.digest() {
            return Ok(self.has_blob(digest).then(|| digest.clone()));
        }
        let key = parsed.with_default_tag().to_string();
        Ok(self.read_tags()?.remove(&key))
    }

    /// Removes a tag; returns whether it existed. The image's content stays
    /// until [`Store::prune`] finds it unreachable.
    pub fn remove_tag(&self, reference: &str) -> Result<bool> {
        let key = tag_reference(reference)?.to_string();
        let _lease = self.lease()?;
        let mut existed = false;
        self.update_tags(|tags| existed = tags.remove(&key).is_some())?;
        Ok(existed)
    }

    /// All tags, sorted by reference.
    pub fn list_tags(&self) -> Result<Vec<(Reference, Digest)>> {
        let path = self.tags_path();
        self.read_tags()?
            .into_iter()
            .map(|(key, digest)| match Reference::parse(&key) {
                Ok(reference) => Ok((reference, digest)),
                Err(e) => Err(Error::TagFile {
                    path: path.clone(),
                    reason: format!("entry {key:?}: {e}"),
                }),
            })
            .collect()
    }

    /// Reads `tags.json` (an absent file is an empty tag set). No lock is
    /// needed: the file is only ever replaced by rename.
    pub(crate) fn read_tags(&self) -> Result<BTreeMap<String, Digest>> {
        let path = self.tags_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let file: TagFile = serde_json::from_slice(&bytes).map_err(|e| Error::TagFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if file.version != TAGS_VERSION {
            return Err(Error::TagFile {
                path,
                reason: format!(
                    "version {} is not the supported {TAGS_VERSION}",
                    file.version
                ),
            });
        }
        Ok(file.tags)
    }

    /// Read-modify-write of `tags.json` under the tag lock. Callers hold a
    /// lease (store lock first, tag lock second: one order, no deadlock).
    fn update_tags(&self, change: impl FnOnce(&mut BTreeMap<String, Digest>)) -> Result<()> {
        let lock_path = self.tags_lock_path();
        let _lock = self.lock_file_exclusive(&lock_path)?;
        let mut tags = self.read_tags()?;
        let before = tags.clone();
        change(&mut tags);
        // Re-tagging with the same digest (every cached rebuild) writes nothing.
        if tags == before {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&TagFile {
            version: TAGS_VERSION,
            tags,
        })
        .map_err(|source| Error::Serialize {
            what: "tag file",
            source,
        })?;
        // Blob names are not synced one by one (see `Store::commit`): the tags are the one
        // durable thing that names blobs, so the names they may reach are made durable first.
        sync_dir(&self.blobs_dir())?;
        self.write_atomically(&self.tags_path(), &bytes)
    }
}

/// Parses a reference for use as a tag name: normalized, `latest` added,
/// no digest allowed.
fn tag_reference(reference: &str) -> Result<Reference> {
    let parsed = Reference::parse(reference)?;
    if parsed.digest().is_some() {
        return Err(Error::TagWithDigest {
            reference: reference.to_owned(),
        });
    }
    Ok(parsed.with_default_tag())
}
