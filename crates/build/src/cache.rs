//! Build caches that travel: `--cache-from` imports (records merged up front, layer blobs
//! fetched when a hit needs one) and `--cache-to` exports, through a local OCI layout or a
//! registry.

use crate::error::{Error, Result};
use crate::network::block_on;
use crate::options::CacheLocation;
use stagecraft_image::{AnyManifest, Digest, media_type};
use stagecraft_registry::Registry;
use stagecraft_solve::progress::{Event, ProgressSink};
use stagecraft_solve::remote_cache::{CacheDocument, CacheMode, LocalCache, cache_config};
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
/// blobs.
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
    let artifact = document.store_artifact(store).map_err(failed)?;
    match location {
        CacheLocation::Local(dir) => LocalCache::new(dir)
            .write(store, &artifact)
            .map_err(failed)?,
        CacheLocation::Registry(text) => {
            let reference =
                stagecraft_registry::parse_reference(text).map_err(|e| failed(e.to_string()))?;
            block_on(stagecraft_registry::push_manifest_with_blobs(
                registry,
                store,
                &reference,
                &artifact.blobs,
                &artifact.manifest,
                &artifact.descriptor.media_type,
            ))?
            .map_err(|e| failed(e.to_string()))?;
        }
    }
    Ok(document.records.len())
}
