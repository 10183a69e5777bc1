//! The build cache outside the store: exported with `--cache-to`, imported with `--cache-from`.
//!
//! # Format
//!
//! An exported cache is one OCI image manifest (`application/vnd.oci.image.manifest.v1+json`,
//! `artifactType` [`ARTIFACT_TYPE`]) whose
//!
//! * **config** blob ([`CONFIG_MEDIA_TYPE`]) is a [`CacheDocument`]: `{"version":1,
//!   "records":{"<step key>":{"diff_id":…,"media_type":…,"digest":…,"size":…,
//!   "uncompressed_size":…,"created_by":…}},"exported":{"<step key>":<unix seconds>}}` — the
//!   step's cache key and the layer it made, and when a build last exported the record
//!   (`exported` is optional: readers that predate it ignore it, and a cache without it is
//!   read as exported at time 0);
//! * **layers** are the distinct layer blobs those records name, sorted by digest.
//!
//! In a registry (`type=registry,ref=REF`) the manifest is pushed under `REF` with its blobs,
//! merged with the records `REF` already holds, so that runners sharing one ref do not undo
//! each other's exports (`stagecraft_build::cache`, with `stagecraft_registry::merge`).
//! In a directory (`type=local,dest=DIR`) it is an OCI image layout: `DIR/oci-layout`,
//! `DIR/index.json` naming the manifest, and `DIR/blobs/sha256/<hex>`; blobs of earlier
//! exports stay, so one directory can collect the caches of several builds.
//!
//! BuildKit's cache manifests chain records by their parents; ours need not: a step key
//! already hashes the keys of every step below it (and nothing machine-specific, such as the
//! context's path), so a flat map is the whole graph.
//!
//! Importing merges the records into the store's cache (a local record whose blob is present
//! wins) and leaves the blobs where they are: a cache hit fetches its blob then, through
//! [`crate::CacheBlobs`]. Lazy, because a `mode=max` cache holds every stage of every target
//! exported into it, and a build only needs the blobs up to its first miss.

use crate::interfaces::CacheBlobError;
use crate::outcome::{BuildOutcome, LayerRef};
use stagecraft_image::{Descriptor, Digest, ImageIndex, ImageManifest, media_type};
use stagecraft_layer::Compression;
use stagecraft_store::{Artifact, Store};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The `artifactType` of a cache manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.stagecraft.buildcache.v1";
/// The media type of a cache manifest's config: a [`CacheDocument`].
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.stagecraft.buildcache.config.v1+json";
/// The [`CacheDocument`] version this build writes and reads.
const VERSION: u32 = 1;

/// A stored cache record: the layer a step produced.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct CacheRecord {
    pub(crate) layer: LayerRef,
}

/// Which records `--cache-to` exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The final image's layers only (buildx's default).
    #[default]
    Min,
    /// Every layer of every stage the build went through.
    Max,
}

/// The records of an exported cache: step key → layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheDocument {
    /// The format version (1; a reader refuses other versions).
    pub version: u32,
    /// Layers by the cache key of the step that made them.
    pub records: BTreeMap<String, LayerRef>,
    /// When a build last exported each record (Unix seconds), by key: what a registry
    /// cache that several runners merge into evicts by (oldest first). Optional: caches
    /// written before it existed have none, and their records count as the oldest; readers
    /// that predate it ignore it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exported: BTreeMap<String, i64>,
}

impl CacheDocument {
    /// The records a finished build exports in `mode`: those of every platform it was built
    /// for (keys of platform-specific steps differ; shared steps have one record).
    pub fn from_outcomes(outcomes: &[BuildOutcome], mode: CacheMode) -> CacheDocument {
        let mut records = BTreeMap::new();
        for outcome in outcomes {
            match mode {
                CacheMode::Max => records.extend(outcome.cache_records.clone()),
                CacheMode::Min => {
                    records.extend(outcome.target_cache_keys.iter().filter_map(|key| {
                        Some((key.clone(), outcome.cache_records.get(key)?.clone()))
                    }))
                }
            }
        }
        CacheDocument {
            version: VERSION,
            records,
            exported: BTreeMap::new(),
        }
    }

    /// Parses a cache config blob.
    pub fn from_json(bytes: &[u8]) -> Result<CacheDocument, String> {
        let document: CacheDocument = serde_json::from_slice(bytes)
            .map_err(|e| format!("the cache config is not a stagecraft cache document: {e}"))?;
        if document.version != VERSION {
            return Err(format!(
                "the cache has format version {}, this stagecraft reads version {VERSION}",
                document.version
            ));
        }
        Ok(document)
    }

    /// Merges the records into the store's cache; returns how many were added. A local
    /// record whose blob is present is kept: it is as good and needs no download.
    pub fn import(&self, store: &Store) -> Result<usize, String> {
        let mut added = 0;
        for (key, layer) in &self.records {
            let usable = store
                .get_cache_json::<CacheRecord>(key)
                .ok()
                .flatten()
                .is_some_and(|record| store.has_blob(&record.layer.digest));
            if usable {
                continue;
            }
            store
                .put_cache_json(
                    key,
                    &CacheRecord {
                        layer: layer.clone(),
                    },
                )
                .map_err(|e| format!("importing cache record {key}: {e}"))?;
            added += 1;
        }
        Ok(added)
    }

    /// The same records with their layers compressed for travel ([`Store::compressed_layer`]:
    /// once per layer, reused by later exports); a layer that is already compressed stays
    /// as it is. Importers unpack whichever form a record names.
    pub fn compressed(
        &self,
        store: &Store,
        compression: Compression,
    ) -> Result<CacheDocument, String> {
        use rayon::prelude::*;
        let records = self
            .records
            .par_iter()
            .map(|(key, layer)| {
                let descriptor = store
                    .compressed_layer(&layer.descriptor(), compression)
                    .map_err(|e| format!("compressing the layer {}: {e}", layer.digest.short()))?;
                let layer = LayerRef {
                    media_type: descriptor.media_type,
                    digest: descriptor.digest,
                    size: descriptor.size,
                    ..layer.clone()
                };
                Ok((key.clone(), layer))
            })
            .collect::<Result<_, String>>()?;
        Ok(CacheDocument {
            version: self.version,
            records,
            exported: self.exported.clone(),
        })
    }

    /// Writes the config and manifest into the store as blobs, checking that every layer
    /// blob is there too.
    pub fn store_artifact(&self, store: &Store) -> Result<Artifact, String> {
        let mut layers: BTreeMap<&Digest, Descriptor> = BTreeMap::new();
        for layer in self.records.values() {
            if !store.has_blob(&layer.digest) {
                return Err(format!(
                    "the layer {} of the cache is not in the store (was it pruned during the build?)",
                    layer.digest
                ));
            }
            layers.insert(&layer.digest, layer.descriptor());
        }
        let config =
            serde_json::to_vec(self).map_err(|e| format!("serializing the cache records: {e}"))?;
        store
            .write_artifact(
                ARTIFACT_TYPE,
                CONFIG_MEDIA_TYPE,
                &config,
                layers.into_values().collect(),
            )
            .map_err(|e| format!("storing the cache manifest: {e}"))
    }
}

/// The config descriptor of a cache manifest, refusing manifests that are not caches (an
/// image pushed to the cache's reference, say).
pub fn cache_config(manifest: &[u8], origin: &str) -> Result<Descriptor, String> {
    let manifest = ImageManifest::from_slice(manifest)
        .map_err(|e| format!("{origin} is not a cache manifest: {e}"))?;
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "{origin} is not a stagecraft build cache (its config is {}); export one with --cache-to",
            manifest.config.media_type
        ));
    }
    Ok(manifest.config)
}

/// A cache exported to a directory (`type=local`): an OCI image layout.
#[derive(Debug, Clone)]
pub struct LocalCache {
    dir: PathBuf,
}

impl LocalCache {
    /// The cache in `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> LocalCache {
        LocalCache { dir: dir.into() }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Copies the artifact's blobs (those not there yet) and points `index.json` at it.
    pub fn write(&self, store: &Store, artifact: &Artifact) -> Result<(), String> {
        let blob_dir = self.dir.join("blobs").join("sha256");
        fs::create_dir_all(&blob_dir).map_err(|e| format!("{}: {e}", blob_dir.display()))?;
        for digest in &artifact.blobs {
            let target = self.blob_path(digest);
            // Copied like any file here, so that a killed export never leaves a truncated
            // blob under its digest (which `exists` would then take for the blob).
            if !target.exists() {
                let source = store.blob_file(digest).map_err(|e| e.to_string())?;
                let mut blob = fs::File::open(&source)
                    .map_err(|e| format!("copying {}: {e}", source.display()))?;
                write_file(store, &target, &mut blob)?;
            }
        }
        write_file(
            store,
            &self.blob_path(&artifact.descriptor.digest),
            &mut &artifact.manifest[..],
        )?;
        write_file(
            store,
            &self.dir.join("oci-layout"),
            &mut &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
        )?;
        let index = ImageIndex::new(media_type::OCI_INDEX, vec![artifact.descriptor.clone()]);
        let bytes = index
            .to_json()
            .map_err(|e| format!("serializing index.json: {e}"))?;
        write_file(store, &self.dir.join("index.json"), &mut &bytes[..])
    }

    /// Reads the cache's records.
    pub fn read(&self) -> Result<CacheDocument, String> {
        let index_path = self.dir.join("index.json");
        let index_bytes = fs::read(&index_path).map_err(|e| {
            format!(
                "{}: {e} (is {} a cache exported with --cache-to type=local?)",
                index_path.display(),
                self.dir.display()
            )
        })?;
        let index = ImageIndex::from_slice(&index_bytes)
            .map_err(|e| format!("{}: {e}", index_path.display()))?;
        let origin = self.dir.display().to_string();
        let manifest = index
            .manifests
            .first()
            .ok_or_else(|| format!("{} names no manifest", index_path.display()))?;
        let config = cache_config(&self.read_blob(&manifest.digest)?, &origin)?;
        CacheDocument::from_json(&self.read_blob(&config.digest)?)
    }

    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, String> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if Digest::of(&bytes) != *digest {
            return Err(format!("{} does not match its digest", path.display()));
        }
        Ok(bytes)
    }

    /// Copies a layer blob into the store (verified); `Ok(false)` when the directory lacks it.
    pub fn fetch(&self, store: &Store, digest: &Digest) -> Result<bool, CacheBlobError> {
        let path = self.blob_path(digest);
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(CacheBlobError::Local {
                    path,
                    source: e.into(),
                });
            }
        };
        if let Err(e) = store.write_blob_expecting(std::io::BufReader::new(file), digest) {
            return Err(CacheBlobError::Local {
                path,
                source: e.into(),
            });
        }
        Ok(true)
    }
}

/// Replaces a file atomically with what `content` reads (a reader never sees half an
/// `index.json`, a kill leaves no partial file behind once the store is next used).
fn write_file(store: &Store, path: &Path, content: &mut impl std::io::Read) -> Result<(), String> {
    let mut out = store.output_file(path).map_err(|e| e.to_string())?;
    std::io::copy(content, &mut out).map_err(|e| format!("{}: {e}", path.display()))?;
    out.commit().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(store: &Store, content: &[u8]) -> LayerRef {
        let blob = store.write_blob_bytes(content).unwrap();
        LayerRef {
            diff_id: Digest::of(b"uncompressed"),
            media_type: media_type::OCI_LAYER_GZIP.to_owned(),
            digest: blob.digest,
            size: blob.size,
            uncompressed_size: Some(12),
            created_by: "RUN make".to_owned(),
            created: Some("2026-11-27T05:00:00Z".to_owned()),
        }
    }

    #[test]
    fn a_local_cache_round_trips_and_imports_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path().join("a")).unwrap();
        let b = Store::open(dir.path().join("b")).unwrap();
        let made = layer(&a, b"layer bytes");
        let document = CacheDocument {
            version: VERSION,
            records: BTreeMap::from([("k1".to_owned(), made.clone())]),
            exported: BTreeMap::new(),
        };
        let artifact = document.store_artifact(&a).unwrap();
        let cache = LocalCache::new(dir.path().join("cache"));
        cache.write(&a, &artifact).unwrap();

        let read = cache.read().unwrap();
        assert_eq!(read, document);
        assert_eq!(read.import(&b).unwrap(), 1);
        // The record is there, the blob is not until someone fetches it.
        assert!(b.get_cache_record("k1").unwrap().is_some());
        assert!(!b.has_blob(&made.digest));
        assert!(cache.fetch(&b, &made.digest).unwrap());
        assert!(b.has_blob(&made.digest));
        assert!(!cache.fetch(&b, &Digest::of(b"other")).unwrap());
        // A usable local record is not replaced.
        assert_eq!(read.import(&b).unwrap(), 0);
    }

    #[test]
    fn an_image_is_not_a_cache() {
        let image = ImageManifest::new(
            media_type::OCI_MANIFEST,
            Descriptor::of_bytes(media_type::OCI_CONFIG, b"{}"),
            Vec::new(),
        );
        let error = cache_config(&image.to_json().unwrap(), "r/cache:main").unwrap_err();
        assert!(error.contains("not a stagecraft build cache"), "{error}");
        assert!(CacheDocument::from_json(br#"{"version":9,"records":{}}"#).is_err());
    }
}
