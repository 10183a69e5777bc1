//! Per-stage sizes: what every stage of a multi-stage build weighs, and the final image next to
//! its builder stages (the before/after table of the multi-stage guides).
//!
//! The builder's stage reports are converted to [`StageSizes`] by the caller, so this crate
//! does not depend on the build engine; the same type is what the store keeps after a build
//! ([`save_stage_sizes`]) for `stagecraft size --stage` to read later.

use serde::{Deserialize, Serialize};
use stagecraft_image::Digest;
use stagecraft_store::Store;

use crate::error::Result;

/// How a stage ended up in its build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// At least one step ran.
    Built,
    /// Every step came from the cache.
    Cached,
    /// The target did not need it.
    Skipped,
}

impl StageStatus {
    /// The word the reports print.
    pub fn label(self) -> &'static str {
        match self {
            StageStatus::Built => "built",
            StageStatus::Cached => "cached",
            StageStatus::Skipped => "skipped",
        }
    }
}

/// One layer of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageLayer {
    /// The compressed blob's digest.
    pub digest: Digest,
    /// The compressed blob's size.
    pub size: u64,
    /// The uncompressed tar's size, when the builder knew it.
    pub uncompressed_size: Option<u64>,
    /// The instruction that made it (empty for base image layers).
    pub created_by: String,
}

/// What one stage of a build consisted of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSizes {
    /// The stage's display name.
    pub name: String,
    /// Built, cached or skipped.
    pub status: StageStatus,
    /// Its layers, bottom first, base image layers included.
    pub layers: Vec<StageLayer>,
    /// How many leading layers came from the base image.
    pub base_layers: usize,
}

/// One row of the stage table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageRow {
    /// The stage's name.
    pub name: String,
    /// Built, cached or skipped.
    pub status: StageStatus,
    /// All its layers.
    pub layers: usize,
    /// The layers its own instructions made.
    pub own_layers: usize,
    /// Compressed bytes of all its layers: its whole filesystem.
    pub compressed_bytes: u64,
    /// Compressed bytes of its own layers.
    pub own_compressed_bytes: u64,
    /// Uncompressed bytes of all its layers, when known for every one.
    pub uncompressed_bytes: Option<u64>,
    /// Whether this stage is the image the report is about.
    pub is_final: bool,
}

/// A builder stage next to the final image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeforeAfter {
    /// The builder stage.
    pub stage: String,
    /// Its compressed size (what shipping it as the image would have cost).
    pub stage_bytes: u64,
    /// The final image's compressed size.
    pub final_bytes: u64,
    /// `stage_bytes − final_bytes` (negative when the final image is the bigger one).
    pub saved_bytes: i64,
    /// `saved_bytes` as a percentage of `stage_bytes`.
    pub saved_percent: f64,
}

/// Every stage of a build and the final image next to its builders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageComparison {
    /// One row per stage, in file order.
    pub stages: Vec<StageRow>,
    /// Each built or cached stage other than the final one, next to the final image.
    pub before_after: Vec<BeforeAfter>,
    /// The final stage's layers (empty when no stage is the final one).
    pub final_layers: Vec<StageLayer>,
}

/// Compares the stages of a build. The final stage is the one whose layers are
/// `final_layers` when given (the image being reported on), else the last stage that was not
/// skipped (with `--target`, later stages are skipped, so that is the target).
pub fn compare_stages(stages: &[StageSizes], final_layers: Option<&[Digest]>) -> StageComparison {
    let is_final_layers = |stage: &StageSizes| {
        final_layers.is_some_and(|digests| {
            stage.layers.len() == digests.len()
                && stage
                    .layers
                    .iter()
                    .zip(digests)
                    .all(|(l, d)| &l.digest == d)
        })
    };
    let final_index = stages.iter().rposition(is_final_layers).or_else(|| {
        stages
            .iter()
            .rposition(|stage| stage.status != StageStatus::Skipped)
    });
    let rows: Vec<StageRow> = stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let own = stage.layers.get(stage.base_layers..).unwrap_or_default();
            StageRow {
                name: stage.name.clone(),
                status: stage.status,
                layers: stage.layers.len(),
                own_layers: own.len(),
                compressed_bytes: stage.layers.iter().map(|l| l.size).sum(),
                own_compressed_bytes: own.iter().map(|l| l.size).sum(),
                uncompressed_bytes: stage.layers.iter().map(|l| l.uncompressed_size).sum(),
                is_final: Some(index) == final_index,
            }
        })
        .collect();
    let final_row = final_index.and_then(|index| rows.get(index));
    let before_after = final_row
        .map(|last| {
            rows.iter()
                .filter(|row| !row.is_final && row.status != StageStatus::Skipped)
                .map(|row| {
                    let saved = signed(row.compressed_bytes) - signed(last.compressed_bytes);
                    BeforeAfter {
                        stage: row.name.clone(),
                        stage_bytes: row.compressed_bytes,
                        final_bytes: last.compressed_bytes,
                        saved_bytes: saved,
                        saved_percent: if row.compressed_bytes == 0 {
                            0.0
                        } else {
                            saved as f64 * 100.0 / row.compressed_bytes as f64
                        },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    StageComparison {
        before_after,
        final_layers: final_index
            .and_then(|index| stages.get(index))
            .map(|stage| stage.layers.clone())
            .unwrap_or_default(),
        stages: rows,
    }
}

/// Image sizes are far below `i64::MAX`; saturate rather than wrap if one is not.
fn signed(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Versioned so a later stagecraft can tell an old record from a corrupt one.
#[derive(Serialize, Deserialize)]
struct StageRecord {
    version: u32,
    stages: Vec<StageSizes>,
}

const RECORD_VERSION: u32 = 1;

/// The store cache record that holds the stage sizes of the build that made the image with
/// manifest `manifest`: `report-<manifest hex>`.
pub fn stage_record_key(manifest: &Digest) -> String {
    format!("report-{}", manifest.hex())
}

/// Records the stages of the build that made the image `manifest`, for
/// [`load_stage_sizes`]. The record names the stages' layer digests, so (like every build
/// cache record) it keeps those blobs from being pruned until `prune --all` removes it.
pub fn save_stage_sizes(store: &Store, manifest: &Digest, stages: &[StageSizes]) -> Result<()> {
    let record = StageRecord {
        version: RECORD_VERSION,
        stages: stages.to_vec(),
    };
    store.put_cache_json(&stage_record_key(manifest), &record)?;
    Ok(())
}

/// Gives every layer of `stages` the size it travels at: a layer the store holds as a plain tar
/// (what builds make) is weighed gzip-compressed, through the store's compress-once variants
/// (made now if no export made them yet), and its uncompressed size is its own. Stages then
/// compare like with like, whichever of their layers came compressed from a registry.
pub fn weigh_stages(store: &Store, stages: &mut [StageSizes]) -> Result<()> {
    use std::io::Read;
    // Base image layers are shared by stages: each is measured once.
    let mut measured: std::collections::HashMap<Digest, u64> = std::collections::HashMap::new();
    for layer in stages.iter_mut().flat_map(|stage| stage.layers.iter_mut()) {
        let mut magic = [0u8; 4];
        let read = store
            .open_blob(&layer.digest)?
            .read(&mut magic)
            .unwrap_or(0);
        if stagecraft_layer::Compression::sniff(&magic[..read])
            != stagecraft_layer::Compression::None
        {
            // A pulled layer: its size is the compressed one, and what it unpacks to is known
            // only by reading it.
            if layer.uncompressed_size.is_none() {
                let size = match measured.get(&layer.digest) {
                    Some(size) => *size,
                    None => {
                        let size = unpacked_size(store, &layer.digest)?;
                        measured.insert(layer.digest.clone(), size);
                        size
                    }
                };
                layer.uncompressed_size = Some(size);
            }
            continue;
        }
        let plain = stagecraft_image::Descriptor::new(
            stagecraft_image::media_type::OCI_LAYER,
            layer.digest.clone(),
            layer.size,
        );
        let travelling = store.compressed_layer(&plain, stagecraft_layer::Compression::gzip())?;
        layer.uncompressed_size = Some(layer.size);
        layer.size = travelling.size;
    }
    Ok(())
}

/// The length of a compressed layer's tar stream.
fn unpacked_size(store: &Store, digest: &Digest) -> Result<u64> {
    let blob = std::io::BufReader::new(store.open_blob(digest)?);
    let layer_error = |source: std::io::Error| crate::Error::Layer {
        digest: digest.clone(),
        source,
    };
    let (_, tar) = stagecraft_layer::open_layer(blob).map_err(layer_error)?;
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).map_err(layer_error)
}

/// The stages recorded for the image `manifest` by the build that made it; `None` when no
/// build recorded them (an image loaded or pulled, or built before stages were recorded), the
/// record has a version this code does not know, or it is unreadable (cache records are not
/// synced: a power loss may garble one).
pub fn load_stage_sizes(store: &Store, manifest: &Digest) -> Result<Option<Vec<StageSizes>>> {
    let record: Option<StageRecord> = match store.get_cache_json(&stage_record_key(manifest)) {
        Err(stagecraft_store::Error::Json { .. }) => None,
        read => read?,
    };
    Ok(record
        .filter(|record| record.version == RECORD_VERSION)
        .map(|record| record.stages))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8, size: u64) -> StageLayer {
        StageLayer {
            digest: Digest::of(&[n]),
            size,
            uncompressed_size: Some(size * 2),
            created_by: format!("RUN step {n}"),
        }
    }

    fn stage(name: &str, status: StageStatus, layers: Vec<StageLayer>) -> StageSizes {
        StageSizes {
            name: name.to_owned(),
            status,
            layers,
            base_layers: 1,
        }
    }

    fn build() -> Vec<StageSizes> {
        vec![
            stage(
                "build",
                StageStatus::Built,
                vec![layer(0, 1000), layer(1, 9000)],
            ),
            stage("unused", StageStatus::Skipped, vec![]),
            stage(
                "runtime",
                StageStatus::Cached,
                vec![layer(0, 1000), layer(2, 500)],
            ),
            stage("later", StageStatus::Skipped, vec![]),
        ]
    }

    #[test]
    fn final_stage_next_to_its_builders() {
        let comparison = compare_stages(&build(), None);
        let finals: Vec<&str> = comparison
            .stages
            .iter()
            .filter(|row| row.is_final)
            .map(|row| row.name.as_str())
            .collect();
        assert_eq!(finals, ["runtime"], "the last stage that was not skipped");
        let runtime = &comparison.stages[2];
        assert_eq!(
            (
                runtime.compressed_bytes,
                runtime.own_compressed_bytes,
                runtime.own_layers
            ),
            (1500, 500, 1)
        );
        assert_eq!(runtime.uncompressed_bytes, Some(3000));
        assert_eq!(comparison.before_after.len(), 1);
        let row = &comparison.before_after[0];
        assert_eq!(
            (row.stage.as_str(), row.stage_bytes, row.final_bytes),
            ("build", 10000, 1500)
        );
        assert_eq!(row.saved_bytes, 8500);
        assert!((row.saved_percent - 85.0).abs() < 1e-9);
        assert_eq!(comparison.final_layers, vec![layer(0, 1000), layer(2, 500)]);
    }

    #[test]
    fn the_image_layers_pick_the_final_stage() {
        let stages = build();
        let digests: Vec<Digest> = stages[0].layers.iter().map(|l| l.digest.clone()).collect();
        let comparison = compare_stages(&stages, Some(&digests));
        assert!(comparison.stages[0].is_final);
        assert_eq!(comparison.before_after[0].stage, "runtime");
        assert_eq!(comparison.before_after[0].saved_bytes, 1500 - 10000);
    }

    #[test]
    fn records_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let manifest = Digest::of(b"manifest");
        assert_eq!(load_stage_sizes(&store, &manifest).unwrap(), None);
        save_stage_sizes(&store, &manifest, &build()).unwrap();
        assert_eq!(load_stage_sizes(&store, &manifest).unwrap(), Some(build()));
        assert_eq!(
            stage_record_key(&manifest),
            format!("report-{}", manifest.hex())
        );
    }
}
