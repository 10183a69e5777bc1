//! Build caches that travel: `--cache-from` imports (records merged up front, layer blobs
//! fetched when a hit needs one) and `--cache-to` exports, through a local OCI layout or a
//! registry.

use crate::error::{Error, Result};
use crate::network::block_on;
use crate::options::CacheLocation;
use stagecraft_export::cache_mounts::{
    CacheMountManifest, MergedMounts, MountBounds, merge_cache_mounts,
};
use stagecraft_image::{AnyManifest, Digest, ImageManifest, media_type};
use stagecraft_registry::Registry;
use stagecraft_registry::merge::{Current, MergePolicy, MergeStage, Merged, Planned};
use stagecraft_solve::progress::{Event, ProgressSink};
use stagecraft_solve::remote_cache::{
    ARTIFACT_TYPE, CONFIG_MEDIA_TYPE, CacheDocument, CacheMode, LocalCache, cache_config,
};
use stagecraft_solve::{BuildOutcome, CacheBlobError, CacheBlobs, LayerRef};
use stagecraft_store::Store;
use std::collections::BTreeSet;

/// Where the blobs of one imported cache are.
enum CacheOrigin {
    Local(LocalCache),
    Registry(stagecraft_registry::Reference),
}

/// The caches imported with `--cache-from`: their records are merged into the store up front,
/// their layer blobs fetched only when a cache hit needs one (see [`stagecraft_solve::remote_cache`]).
pub struct ImportedCaches<'a> {
    registry: &'a Registry,
    /// Each cache with the blobs its records name.
    origins: Vec<(CacheOrigin, BTreeSet<Digest>)>,
}

impl<'a> ImportedCaches<'a> {
    /// Imports every location. A cache that cannot be read is skipped with a warning, as
    /// buildx does: the first build of a branch has no cache yet, and that is no error.
    pub fn import(
        store: &Store,
        registry: &'a Registry,
        locations: &[CacheLocation],
        progress: &dyn ProgressSink,
    ) -> ImportedCaches<'a> {
        let say = |message: String| {
            progress.event(Event::Info {
                message,
                context_files: None,
            })
        };
        let mut origins = Vec::new();
        for location in locations {
            match read_cache(store, registry, location) {
                Ok((origin, document)) => match document.import(store) {
                    Ok(added) => {
                        say(format!(
                            "imported cache {location}: {} records ({added} new)",
                            document.records.len()
                        ));
                        let digests = document
                            .records
                            .values()
                            .map(|l| l.digest.clone())
                            .collect();
                        origins.push((origin, digests));
                    }
                    Err(e) => say(format!("warning: importing cache {location}: {e}")),
                },
                Err(e) => say(format!("warning: skipping --cache-from {location}: {e}")),
            }
        }
        ImportedCaches { registry, origins }
    }
}

fn read_cache(
    store: &Store,
    registry: &Registry,
    location: &CacheLocation,
) -> Result<(CacheOrigin, CacheDocument), String> {
    match location {
        CacheLocation::Local(dir) => {
            let cache = LocalCache::new(dir);
            let document = cache.read()?;
            Ok((CacheOrigin::Local(cache), document))
        }
        CacheLocation::Registry(text) => {
            let reference =
                stagecraft_registry::parse_reference(text).map_err(|e| e.to_string())?;
            let document = block_on(async {
                let manifest = registry
                    .manifest(&reference)
                    .await
                    .map_err(|e| e.to_string())?;
                refuse_image(&manifest.bytes, text)?;
                let config = cache_config(&manifest.bytes, text)?;
                stagecraft_registry::fetch_blob(registry, store, &reference, &config.digest)
                    .await
                    .map_err(|e| e.to_string())?;
                let bytes = store.read_blob(&config.digest).map_err(|e| e.to_string())?;
                CacheDocument::from_json(&bytes)
            })
            .map_err(|e| e.to_string())??;
            Ok((CacheOrigin::Registry(reference), document))
        }
    }
}

/// Refuses an image given as a cache (buildx's `--cache-from IMAGE` for its inline cache),
/// saying why and what to use.
fn refuse_image(manifest: &[u8], origin: &str) -> Result<(), String> {
    let is_image = match AnyManifest::from_slice(manifest, None) {
        Ok(AnyManifest::Index(_)) => true,
        Ok(AnyManifest::Image(manifest)) => media_type::is_config(&manifest.config.media_type),
        Err(_) => false,
    };
    if is_image {
        return Err(format!(
            "{origin} is an image, not a stagecraft build cache: {}",
            crate::options::INLINE_CACHE
        ));
    }
    Ok(())
}

impl CacheBlobs for ImportedCaches<'_> {
    fn fetch(&self, store: &Store, layer: &LayerRef) -> Result<bool, CacheBlobError> {
        let Some((origin, _)) = self
            .origins
            .iter()
            .find(|(_, digests)| digests.contains(&layer.digest))
        else {
            return Ok(false);
        };
        match origin {
            CacheOrigin::Local(cache) => cache.fetch(store, &layer.digest),
            CacheOrigin::Registry(reference) => {
                block_on(stagecraft_registry::fetch_blob(
                    self.registry,
                    store,
                    reference,
                    &layer.digest,
                ))
                .map_err(|e| CacheBlobError::Runtime(e.into()))?
                .map_err(|e| CacheBlobError::Registry {
                    reference: reference.whole(),
                    source: e.into(),
                })?;
                Ok(true)
            }
        }
    }
}

/// Exports the build's cache records (`mode` picks which; every platform's) with their layer
/// blobs. A registry ref is merged into, not replaced ([`push_cache_document`]), so runners
/// sharing it keep each other's records.
pub fn export_cache(
    store: &Store,
    registry: &Registry,
    outcomes: &[BuildOutcome],
    location: &CacheLocation,
    mode: CacheMode,
    compression: stagecraft_layer::Compression,
) -> Result<usize> {
    let failed = |message: String| Error::Transfer {
        what: format!("exporting the cache to {location}"),
        message,
    };
    let document = CacheDocument::from_outcomes(outcomes, mode)
        .compressed(store, compression)
        .map_err(failed)?;
    match location {
        CacheLocation::Local(dir) => {
            let artifact = document.store_artifact(store).map_err(failed)?;
            LocalCache::new(dir)
                .write(store, &artifact)
                .map_err(failed)?
        }
        CacheLocation::Registry(text) => {
            let reference =
                stagecraft_registry::parse_reference(text).map_err(|e| failed(e.to_string()))?;
            push_cache_document(
                store,
                registry,
                &reference,
                &document,
                &MergePolicy::default(),
                &CacheBounds::default(),
                &|_| {},
            )
            .map_err(failed)?;
        }
    }
    Ok(document.records.len())
}

/// How big a registry cache that several runners merge into may grow: past either bound the
/// records no build exported for the longest are dropped (those of the exporting build never
/// are). Evicted records' blobs stay in the registry until its garbage collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBounds {
    /// At most this many records.
    pub max_records: usize,
    /// At most this many bytes of (compressed) layer blobs, each blob counted once.
    pub max_bytes: u64,
}

impl Default for CacheBounds {
    /// 4096 records and 10 GiB of layers: dozens of `mode=max` builds of a large project,
    /// and the size of a GitHub Actions cache.
    fn default() -> CacheBounds {
        CacheBounds {
            max_records: 4096,
            max_bytes: 10 << 30,
        }
    }
}

/// What merging an export into a shared cache did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMerge {
    /// The merged document pushed last.
    pub document: CacheDocument,
    /// Records of other exports kept.
    pub kept: usize,
    /// Records of other exports dropped by the bounds.
    pub evicted: usize,
    /// How the push went.
    pub pushed: Merged,
}

/// Merges our records into `theirs` (the ref's current cache, if any): the union, our record
/// winning a key both hold, every record of ours stamped `now`; then the bounds, evicting the
/// records of others exported longest ago (a record without a stamp, as a cache written
/// before stamps existed has, counts as the oldest; ties go by key). Returns the merged
/// document and how many of theirs it kept and evicted.
pub fn merge_documents(
    ours: &CacheDocument,
    theirs: Option<&CacheDocument>,
    now: i64,
    bounds: &CacheBounds,
) -> (CacheDocument, usize, usize) {
    let mut merged = CacheDocument {
        version: ours.version,
        records: ours.records.clone(),
        exported: ours.records.keys().map(|key| (key.clone(), now)).collect(),
    };
    let mut bytes = 0u64;
    let mut blobs = BTreeSet::new();
    for layer in merged.records.values() {
        if blobs.insert(layer.digest.clone()) {
            bytes += layer.size;
        }
    }
    let Some(theirs) = theirs else {
        return (merged, 0, 0);
    };
    let mut candidates: Vec<(&String, &LayerRef, i64)> = theirs
        .records
        .iter()
        .filter(|(key, _)| !ours.records.contains_key(*key))
        .map(|(key, layer)| (key, layer, theirs.exported.get(key).copied().unwrap_or(0)))
        .collect();
    candidates.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    let (mut kept, mut evicted) = (0, 0);
    for (key, layer, stamp) in candidates {
        let new_blob = !blobs.contains(&layer.digest);
        let added = if new_blob { layer.size } else { 0 };
        if merged.records.len() >= bounds.max_records
            || bytes.saturating_add(added) > bounds.max_bytes
        {
            evicted += 1;
            continue;
        }
        if new_blob {
            blobs.insert(layer.digest.clone());
            bytes += added;
        }
        merged.records.insert(key.clone(), layer.clone());
        if stamp != 0 {
            merged.exported.insert(key.clone(), stamp);
        }
        kept += 1;
    }
    (merged, kept, evicted)
}

/// Pushes our cache records to a registry ref merged with the records it already holds
/// (read, merge, write, check, retry: [`stagecraft_registry::merge`]), so that runners
/// exporting to one ref at once all end up reachable through it. The ref's current content
/// must be a stagecraft cache of this format, or not a cache at all (an image left under the
/// tag is replaced, as before); a cache of a newer format is not overwritten. `observe`
/// hears each stage of each attempt.
pub fn push_cache_document(
    store: &Store,
    registry: &Registry,
    reference: &stagecraft_registry::Reference,
    ours: &CacheDocument,
    policy: &MergePolicy,
    bounds: &CacheBounds,
    observe: &dyn Fn(MergeStage),
) -> Result<CacheMerge, String> {
    for layer in ours.records.values() {
        if !store.has_blob(&layer.digest) {
            return Err(format!(
                "the layer {} of the cache is not in the store (was it pruned during the build?)",
                layer.digest
            ));
        }
    }
    let now = stagecraft_image::Timestamp::now()
        .map(|t| t.unix_secs())
        .unwrap_or(0);
    let origin = reference.whole();
    let mut last = None;
    let mut merge = |current: Option<&Current>| -> Result<Planned, String> {
        let theirs = match current {
            None => None,
            Some(current) => current_document(current, &origin)?,
        };
        let (document, kept, evicted) = merge_documents(ours, theirs.as_ref(), now, bounds);
        let planned = plan_manifest(store, &document)?;
        last = Some((document, kept, evicted));
        Ok(planned)
    };
    let holds_ours = |current: &Current| {
        current_document(current, &origin)
            .ok()
            .flatten()
            .is_some_and(|theirs| {
                ours.records
                    .keys()
                    .all(|key| theirs.records.contains_key(key))
            })
    };
    let pushed = push_merged(
        registry,
        store,
        reference,
        policy,
        &mut merge,
        &holds_ours,
        observe,
    )?;
    let (document, kept, evicted) = last.expect("a successful push merged at least once");
    Ok(CacheMerge {
        document,
        kept,
        evicted,
        pushed,
    })
}

/// [`stagecraft_registry::merge::push_merged`] on the network runtime, its failures as text
/// (as the merges' own).
fn push_merged(
    registry: &Registry,
    store: &Store,
    reference: &stagecraft_registry::Reference,
    policy: &MergePolicy,
    merge: &mut dyn FnMut(Option<&Current>) -> std::result::Result<Planned, String>,
    holds_ours: &dyn Fn(&Current) -> bool,
    observe: &dyn Fn(MergeStage),
) -> std::result::Result<Merged, String> {
    block_on(stagecraft_registry::merge::push_merged(
        registry, store, reference, policy, merge, holds_ours, observe,
    ))
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// What pushing cache mounts to a shared ref did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountsMerge {
    /// The mounts of other exports kept, and those the bounds dropped, on the last attempt.
    pub mounts: MergedMounts,
    /// How the push went.
    pub pushed: Merged,
}

/// Pushes a cache-mount export ([`stagecraft_export::cache_mounts::store_cache_mounts`])
/// under a registry ref merged with the mounts the ref already holds, as
/// [`push_cache_document`] does for build caches: every runner's mounts stay reachable.
pub fn push_cache_mounts(
    store: &Store,
    registry: &Registry,
    reference: &stagecraft_registry::Reference,
    ours: &stagecraft_store::Artifact,
    policy: &MergePolicy,
    bounds: &MountBounds,
    observe: &dyn Fn(MergeStage),
) -> Result<MountsMerge, String> {
    let ours_manifest =
        CacheMountManifest::parse(&ours.manifest, "this export").map_err(|e| e.to_string())?;
    let ours_ids: Vec<String> = ours_manifest.ids().map(str::to_owned).collect();
    let mut last = None;
    let mut merge = |current: Option<&Current>| -> Result<Planned, String> {
        let merged = merge_cache_mounts(
            &ours.manifest,
            current.map(|c| c.manifest.bytes.as_slice()),
            bounds,
        )
        .map_err(|e| e.to_string())?;
        let planned = Planned {
            manifest: merged.manifest.clone(),
            media_type: ours.descriptor.media_type.clone(),
            upload: ours.blobs.clone(),
        };
        last = Some(merged);
        Ok(planned)
    };
    let holds_ours = |current: &Current| {
        CacheMountManifest::parse(&current.manifest.bytes, "the reference").is_ok_and(|theirs| {
            let ids: BTreeSet<&str> = theirs.ids().collect();
            ours_ids.iter().all(|id| ids.contains(id.as_str()))
        })
    };
    let pushed = push_merged(
        registry,
        store,
        reference,
        policy,
        &mut merge,
        &holds_ours,
        observe,
    )?;
    Ok(MountsMerge {
        mounts: last.expect("a successful push merged at least once"),
        pushed,
    })
}

/// The cache document under a ref: `None` when the ref holds something that is not a
/// stagecraft cache (replaced), an error for a cache this build cannot read (kept).
fn current_document(current: &Current, origin: &str) -> Result<Option<CacheDocument>, String> {
    if refuse_image(&current.manifest.bytes, origin).is_err()
        || cache_config(&current.manifest.bytes, origin).is_err()
    {
        return Ok(None);
    }
    CacheDocument::from_json(&current.config)
        .map(Some)
        .map_err(|e| format!("{origin} holds a cache this stagecraft cannot merge into, and it is not overwritten: {e}"))
}

/// The manifest of a merged document: its config written to the store, its layers the
/// distinct blobs its records name (ours in the store, the others' in the repository).
fn plan_manifest(store: &Store, document: &CacheDocument) -> Result<Planned, String> {
    let config =
        serde_json::to_vec(document).map_err(|e| format!("serializing the cache records: {e}"))?;
    let config_blob = store
        .write_blob_bytes(&config)
        .map_err(|e| format!("storing the cache config: {e}"))?;
    let mut layers = std::collections::BTreeMap::new();
    for layer in document.records.values() {
        layers.insert(layer.digest.clone(), layer.descriptor());
    }
    let mut upload = vec![config_blob.digest.clone()];
    upload.extend(layers.keys().filter(|d| store.has_blob(d)).cloned());
    let mut manifest = ImageManifest::new(
        media_type::OCI_MANIFEST,
        config_blob.descriptor(CONFIG_MEDIA_TYPE),
        layers.into_values().collect(),
    );
    manifest.artifact_type = ARTIFACT_TYPE.to_owned();
    let bytes = manifest
        .to_json()
        .map_err(|e| format!("serializing the cache manifest: {e}"))?;
    Ok(Planned {
        manifest: bytes,
        media_type: media_type::OCI_MANIFEST.to_owned(),
        upload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(name: &str, size: u64) -> LayerRef {
        LayerRef {
            diff_id: Digest::of(name.as_bytes()),
            media_type: media_type::OCI_LAYER_GZIP.to_owned(),
            digest: Digest::of(format!("blob {name}").as_bytes()),
            size,
            uncompressed_size: None,
            created_by: format!("RUN {name}"),
            created: None,
        }
    }

    fn document(records: &[(&str, u64, Option<i64>)]) -> CacheDocument {
        CacheDocument {
            version: 1,
            records: records
                .iter()
                .map(|(k, size, _)| (k.to_string(), record(k, *size)))
                .collect(),
            exported: records
                .iter()
                .filter_map(|(k, _, stamp)| Some((k.to_string(), (*stamp)?)))
                .collect(),
        }
    }

    #[test]
    fn a_merge_is_the_union_with_ours_stamped_now() {
        let ours = document(&[("a", 10, None), ("shared", 10, None)]);
        let theirs = document(&[("b", 10, Some(50)), ("shared", 99, Some(50))]);
        let (merged, kept, evicted) =
            merge_documents(&ours, Some(&theirs), 100, &CacheBounds::default());
        assert_eq!((kept, evicted), (1, 0));
        assert_eq!(
            merged.records.keys().collect::<Vec<_>>(),
            ["a", "b", "shared"]
        );
        // Ours wins a key both hold.
        assert_eq!(merged.records["shared"].size, 10);
        assert_eq!(
            merged.exported,
            BTreeMap::from([
                ("a".to_owned(), 100),
                ("b".to_owned(), 50),
                ("shared".to_owned(), 100)
            ])
        );
    }

    #[test]
    fn the_bounds_evict_the_records_exported_longest_ago_never_ours() {
        let ours = document(&[("mine1", 10, None), ("mine2", 10, None)]);
        // "legacy" has no stamp (written before stamps): the oldest of all.
        let theirs = document(&[
            ("new", 10, Some(90)),
            ("mid", 10, Some(50)),
            ("old", 10, Some(10)),
            ("legacy", 10, None),
        ]);
        let by_count = CacheBounds {
            max_records: 4,
            max_bytes: u64::MAX,
        };
        let (merged, kept, evicted) = merge_documents(&ours, Some(&theirs), 100, &by_count);
        assert_eq!((kept, evicted), (2, 2));
        assert_eq!(
            merged.records.keys().collect::<Vec<_>>(),
            ["mid", "mine1", "mine2", "new"]
        );
        let by_size = CacheBounds {
            max_records: usize::MAX,
            max_bytes: 35,
        };
        let (merged, _, evicted) = merge_documents(&ours, Some(&theirs), 100, &by_size);
        assert_eq!(evicted, 3);
        assert_eq!(
            merged.records.keys().collect::<Vec<_>>(),
            ["mine1", "mine2", "new"]
        );
        // Our own records stay even past the bounds: the build's cache must be reachable.
        let tiny = CacheBounds {
            max_records: 1,
            max_bytes: 1,
        };
        let (merged, kept, _) = merge_documents(&ours, Some(&theirs), 100, &tiny);
        assert_eq!((merged.records.len(), kept), (2, 0));
    }

    #[test]
    fn a_blob_shared_by_records_is_counted_once() {
        let ours = document(&[("a", 10, None)]);
        let mut theirs = document(&[("b", 10, Some(5))]);
        // The same layer under another key (another platform's step, say).
        theirs.records.insert("b2".to_owned(), record("a", 10));
        theirs.exported.insert("b2".to_owned(), 6);
        let bounds = CacheBounds {
            max_records: usize::MAX,
            max_bytes: 20,
        };
        let (merged, kept, evicted) = merge_documents(&ours, Some(&theirs), 100, &bounds);
        assert_eq!((kept, evicted), (2, 0), "{:?}", merged.records.keys());
    }

    #[test]
    fn readers_that_predate_the_stamps_read_a_merged_cache() {
        // The shape of the previous release's document: no `exported`, unknown fields ignored.
        #[derive(serde::Deserialize)]
        struct Previous {
            version: u32,
            records: BTreeMap<String, LayerRef>,
        }
        let ours = document(&[("a", 10, None)]);
        let (merged, ..) = merge_documents(&ours, None, 100, &CacheBounds::default());
        let json = serde_json::to_vec(&merged).unwrap();
        assert!(String::from_utf8_lossy(&json).contains("\"exported\""));
        let previous: Previous = serde_json::from_slice(&json).unwrap();
        assert_eq!((previous.version, previous.records.len()), (1, 1));
        assert_eq!(CacheDocument::from_json(&json).unwrap(), merged);
    }
}
