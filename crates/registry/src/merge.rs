//! Several writers updating one tag without a compare-and-swap: read, merge, write, check.
//!
//! The distribution API has no conditional manifest PUT, so a tag that several CI runners
//! push at once (a shared build cache) is "last writer wins": a runner that pushes what it
//! alone built makes every record only the others pushed unreachable. [`push_merged`] makes
//! each writer push a *merge* of the tag's current content and its own, and then makes sure
//! its own content is still reachable:
//!
//! 1. **read** the manifest under the tag (and its config blob); none is an empty start;
//! 2. **merge**: the caller's function builds the new manifest from what was read and its own
//!    content, and says which of the blobs it names are in the local store (the others are
//!    the current manifest's, already in the repository); those are uploaded (skipping any the
//!    repository has). Uploads happen here, before the write, so that the window between the
//!    last read and the write is one request long, not one upload long;
//! 3. **re-read** the tag's digest: if it moved since step 1, another writer got in between,
//!    and this attempt starts over from step 1 (after a backoff) instead of overwriting it;
//! 4. **write** the manifest under the tag;
//! 5. **check**, after [`MergePolicy::settle`]: read the tag again; if it is ours, or if what
//!    is there still holds all of our content (another writer merged ours in), done.
//!    Otherwise a writer that read before our write overwrote it, and we start over.
//!
//! Attempts are bounded ([`MergePolicy::attempts`]) with a jittered exponential backoff, so
//! that N runners converge instead of retrying in lockstep; running out is an error, never a
//! silent loss.
//!
//! What remains without a compare-and-swap: a writer that stalls between its step 3 and its
//! step 4 for longer than another writer's write, settle and check, and then overwrites.
//! Step 3 makes that window one round trip; the settle delay makes the other side of it
//! longer than a round trip.

use crate::{Reference, Registry, RegistryError, RemoteManifest, TransferError};
use stagecraft_image::{Digest, ImageManifest};
use stagecraft_store::Store;
use std::time::Duration;

/// What the tag holds when a writer reads it.
#[derive(Debug, Clone)]
pub struct Current {
    /// The manifest under the tag.
    pub manifest: RemoteManifest,
    /// Its config blob (empty when the manifest is an index, which has none).
    pub config: Vec<u8>,
}

/// A manifest to push: built by the caller's merge from the tag's current content.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// The blobs it names that are in the local store (its config, our layers): uploaded
    /// unless the repository has them. Blobs it takes over from the current manifest are
    /// already in the repository.
    pub upload: Vec<Digest>,
}

/// How hard [`push_merged`] tries.
#[derive(Debug, Clone, Copy)]
pub struct MergePolicy {
    /// Attempts before giving up (each a read, merge, write and check).
    pub attempts: u32,
    /// The first backoff after a lost attempt; doubled every attempt, with jitter.
    pub backoff: Duration,
    /// The wait between our write and the check that it held.
    pub settle: Duration,
}

impl Default for MergePolicy {
    fn default() -> MergePolicy {
        MergePolicy {
            attempts: 8,
            backoff: Duration::from_millis(100),
            settle: Duration::from_millis(250),
        }
    }
}

/// Where an attempt is: for progress messages, and for tests that interleave two writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeStage {
    /// The tag was read and merged with our content (attempt number, from 1).
    Merged(u32),
    /// The tag did not move since the read; the write is next.
    Writing(u32),
    /// The write is done; the check is next.
    Written(u32),
    /// The attempt lost (the tag moved before the write, or our content was overwritten):
    /// another follows after a backoff.
    Lost(u32),
}

/// What [`push_merged`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The digest of the manifest we wrote last.
    pub digest: String,
    /// How many attempts it took.
    pub attempts: u32,
    /// Whether the tag held something to merge with on the last attempt.
    pub merged_with_existing: bool,
}

/// Reads the tag: `None` when it does not exist yet.
pub async fn read_current(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
) -> Result<Option<Current>, TransferError> {
    let manifest = match registry.manifest(reference).await {
        Ok(manifest) => manifest,
        Err(error) if error.is_not_found() => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let config = match ImageManifest::from_slice(&manifest.bytes) {
        Ok(image) => {
            crate::fetch_blob(registry, store, reference, &image.config.digest).await?;
            store.read_blob(&image.config.digest)?
        }
        Err(_) => Vec::new(),
    };
    Ok(Some(Current { manifest, config }))
}

/// The tag's digest now, `None` when it does not exist.
async fn current_digest(
    registry: &Registry,
    reference: &Reference,
) -> Result<Option<String>, RegistryError> {
    match registry.manifest(reference).await {
        Ok(manifest) => Ok(Some(manifest.digest)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Pushes under `reference` a merge of what it holds and our content (see the module
/// documentation). `merge` builds the manifest from the current content; `holds_ours` says
/// whether some content of the tag still holds all of ours; `observe` hears each stage.
pub async fn push_merged(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    policy: &MergePolicy,
    merge: &mut dyn FnMut(Option<&Current>) -> Result<Planned, String>,
    holds_ours: &dyn Fn(&Current) -> bool,
    observe: &dyn Fn(MergeStage),
) -> Result<Merged, TransferError> {
    let mut seed = jitter_seed();
    let attempts = policy.attempts.max(1);
    let mut transient = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            let base = policy.backoff.saturating_mul(1 << (attempt - 2).min(6));
            // Jitter: anywhere between half and all of the base.
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let fraction = 0.5 + ((seed >> 33) as f64 / (1u64 << 31) as f64) / 2.0;
            tokio::time::sleep(base.mul_f64(fraction)).await;
        }
        match try_once(
            registry, store, reference, policy, attempt, merge, holds_ours, observe,
        )
        .await
        {
            Ok(Some(merged)) => return Ok(merged),
            Ok(None) => observe(MergeStage::Lost(attempt)),
            // A registry answering 500 while another writer writes the tag: try again.
            Err(TransferError::Registry(error)) if error.is_transient() => {
                observe(MergeStage::Lost(attempt));
                transient = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(TransferError::Invalid(format!(
        "{}: other writers kept replacing the tag: {attempts} attempts to merge into it lost the race{}",
        reference.whole(),
        transient.map_or_else(String::new, |e| format!(" (last registry error: {e})"))
    )))
}

/// One attempt: `None` when it lost the race.
#[allow(clippy::too_many_arguments)]
async fn try_once(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    policy: &MergePolicy,
    attempt: u32,
    merge: &mut dyn FnMut(Option<&Current>) -> Result<Planned, String>,
    holds_ours: &dyn Fn(&Current) -> bool,
    observe: &dyn Fn(MergeStage),
) -> Result<Option<Merged>, TransferError> {
    let current = read_current(registry, store, reference).await?;
    let planned = merge(current.as_ref()).map_err(TransferError::Invalid)?;
    observe(MergeStage::Merged(attempt));
    crate::upload_blobs(registry, store, reference, &planned.upload).await?;
    let read_digest = current.as_ref().map(|c| c.manifest.digest.clone());
    if current_digest(registry, reference).await? != read_digest {
        return Ok(None);
    }
    observe(MergeStage::Writing(attempt));
    let digest = registry
        .push_manifest(reference, &planned.manifest, &planned.media_type)
        .await?;
    observe(MergeStage::Written(attempt));
    if !policy.settle.is_zero() {
        tokio::time::sleep(policy.settle).await;
    }
    let after = read_current(registry, store, reference).await?;
    let held = after
        .as_ref()
        .is_some_and(|after| after.manifest.digest == digest || holds_ours(after));
    Ok(held.then(|| Merged {
        digest,
        attempts: attempt,
        merged_with_existing: current.is_some(),
    }))
}

fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) ^ thread_salt()
}

fn thread_salt() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::thread::current().id())
}
