//! A layer-making step through the cache: look its key up, reuse the recorded layer or run it,
//! commit the new layer and record it; and remember the step's inputs to explain the next miss.

use crate::cache::explain::{Change, Miss, StepInputs, explain_change};
use crate::cache::flight::Joined;
use crate::cache::key::CacheKey;
use crate::convert::from::unpacked_snapshot;
use crate::outcome::{BuildError, LayerRef, StepRecord};
use crate::progress::{Event, StepStatus};
use crate::remote_cache::CacheRecord;
use crate::state::{BuildRun, StageState, StepCtx};
use stagecraft_image::{Digest, Timestamp};
use stagecraft_layer::{LazyRootfs, MEDIA_TYPE_TAR, TarOptions};
use stagecraft_store::{DigestWriter, LazyBlob};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a step's writing of its files takes before writing them back early pays: see
/// [`Store::write_back_early`](stagecraft_store::Store::write_back_early).
const WRITE_BACK_EARLY_AFTER: Duration = Duration::from_millis(50);

impl BuildRun<'_> {
    /// Announces a step and starts its record; returns its build-wide number and start time.
    pub(crate) fn start_step(&self, at: StepCtx, name: &str) -> (usize, Instant) {
        let id = self.shared.step_ids.fetch_add(1, Ordering::Relaxed) + 1;
        self.steps.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            StepRecord {
                stage: self.plan.stages[at.stage].display_name.clone(),
                line: at.line,
                name: name.to_owned(),
                cached: false,
                layer: None,
            },
        );
        self.engine.progress.event(Event::StepStarted {
            id,
            stage: self.stage_label(at.stage),
            index: at.position,
            total: at.total,
            name: name.to_owned(),
        });
        (id, Instant::now())
    }

    /// Reports how step `id` ended and completes its record with the layer it made.
    pub(crate) fn finish_step(
        &self,
        id: usize,
        status: StepStatus,
        started: Instant,
        miss_reason: Option<String>,
        layer: Option<&Digest>,
    ) {
        if let Some(record) = self
            .steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            record.cached = status == StepStatus::Cached;
            record.layer = layer.cloned();
        }
        self.engine.progress.event(Event::StepFinished {
            id,
            status,
            duration: started.elapsed(),
            miss_reason,
        });
    }

    /// Runs (or takes from the cache) a step that produces one layer. `fill` writes the
    /// layer's content into an empty directory: either as overlay "upper" output (with
    /// whiteouts) or as plain files. A `link`ed layer (`COPY --link`) does not depend on the
    /// layers below it: `key` must leave them out, and its diff is taken against nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer_step(
        &self,
        at: StepCtx,
        name: &str,
        key: &str,
        link: bool,
        inputs: Vec<(String, String)>,
        state: &mut StageState,
        fill: impl FnOnce(&Path) -> Result<(), crate::BoxError>,
    ) -> Result<bool, BuildError> {
        self.layer_step_with(at, name, key, link, inputs, state, |upper, _work, _id| {
            fill(upper)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer_step_with(
        &self,
        at: StepCtx,
        name: &str,
        key: &str,
        link: bool,
        inputs: Vec<(String, String)>,
        state: &mut StageState,
        fill: impl FnOnce(&Path, &Path, usize) -> Result<(), crate::BoxError>,
    ) -> Result<bool, BuildError> {
        self.layer_step_reusing(at, name, key, link, inputs, state, |upper, work, id| {
            fill(upper, work, id).map(|()| None)
        })
    }

    /// [`layer_step_with`](Self::layer_step_with), where `fill` may also say where some of the
    /// layer's files already have their bytes (an earlier layer tar): the tar writer takes
    /// them from there instead of reading the files one by one. The tar is the same bytes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer_step_reusing(
        &self,
        at: StepCtx,
        name: &str,
        key: &str,
        link: bool,
        inputs: Vec<(String, String)>,
        state: &mut StageState,
        fill: impl FnOnce(&Path, &Path, usize) -> Result<Option<LazyRootfs>, crate::BoxError>,
    ) -> Result<bool, BuildError> {
        let store = self.engine.store;
        let (id, started) = self.start_step(at, name);
        // A linked layer is made on scratch, so its own key leaves out what lies below it; the
        // steps after it still depend on everything below, hence the combined chain key.
        let chain_key = if link {
            CacheKey::new("linked layer")
                .text("parent", &state.key)
                .text("layer", key)
                .finish()
        } else {
            key.to_owned()
        };
        // Another graph of this build (another target platform) may be running this very step:
        // take its result rather than run it twice.
        let mut leader = match self.shared.flights.join(key) {
            Joined::Leader(leader) => leader,
            Joined::Follower((layer, snapshot)) => {
                self.steps_cached.fetch_add(1, Ordering::Relaxed);
                self.finish_step(id, StepStatus::Cached, started, None, Some(&layer.diff_id));
                state.push_layer(layer, snapshot, key, chain_key);
                return Ok(false);
            }
        };
        let lookup = if at.no_cache {
            Err(Miss::NoCache)
        } else {
            self.cached_layer(key)
        };
        // Remember this step's inputs at its place in the Dockerfile, and say what changed
        // since the last build when the cache misses.
        let place = CacheKey::new("step-inputs")
            .text(
                "dockerfile",
                &self
                    .options
                    .dockerfile_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
            .text("stage", &self.plan.stages[at.stage].display_name)
            // Each target platform's graph has its own inputs at this place (TARGETARCH…).
            .text("target platform", &self.plan.target_platform.to_string())
            .text("position", &at.position.to_string())
            .finish();
        let record = StepInputs {
            parent: state.key.clone(),
            inputs: inputs.into_iter().collect(),
        };
        let previous: Option<StepInputs> = self.engine.store.get_cache_json(&place).ok().flatten();
        // Written only when something changed: a cached rebuild should not touch the disk.
        if previous.as_ref() != Some(&record) {
            let _ = self.engine.store.put_cache_json(&place, &record);
        }
        let lookup = lookup.map_err(|miss| match miss {
            Miss::Changed(_) => Miss::Changed(explain_change(
                previous.as_ref(),
                &record,
                state.layers.len() == state.base_layers,
            )),
            other => other,
        });
        let miss_reason = match lookup {
            Ok((layer, snapshot)) => {
                self.steps_cached.fetch_add(1, Ordering::Relaxed);
                self.finish_step(id, StepStatus::Cached, started, None, Some(&layer.diff_id));
                leader.land((layer.clone(), snapshot.clone()));
                state.push_layer(layer, snapshot, key, chain_key);
                return Ok(false);
            }
            Err(reason) => reason,
        };
        // The inputs are saved and the miss explained: a large copy's inputs (one per file)
        // are not held while its layer is written.
        drop((record, previous));
        let finish = |status, layer: Option<&Digest>| {
            self.finish_step(id, status, started, Some(miss_reason.to_string()), layer);
        };
        let scratch = store.scratch_dir("step").map_err(|e| BuildError::Store {
            what: "creating a step directory".into(),
            source: e,
        })?;
        let upper = scratch.path().join("upper");
        let work = scratch.path().join("work");
        for dir in [&upper, &work] {
            std::fs::create_dir(dir).map_err(|e| BuildError::Io {
                what: dir.display().to_string(),
                source: e,
            })?;
        }
        let fill_started = Instant::now();
        let reused = match fill(&upper, &work, id) {
            Ok(reused) => reused,
            Err(error) => {
                finish(StepStatus::Failed, None);
                return Err(BuildError::Operation(error));
            }
        };
        let lowers: Vec<Digest> = match link {
            true => Vec::new(),
            false => state.layers.iter().map(|l| l.diff_id.clone()).collect(),
        };
        // The files of a step that took long to write are written back while its tar is
        // hashed: both take long for a large layer (100,000 new files: about half a second
        // each), the one on the disk, the other on a core. (A small step would only pay for a
        // second sync and a thread: a millisecond.)
        let (layer, lazy) = std::thread::scope(|scope| {
            if fill_started.elapsed() >= WRITE_BACK_EARLY_AFTER {
                // A failure here is the snapshot's sync's to report.
                scope.spawn(|| store.write_back_early(&upper).ok());
            }
            self.commit_layer_reusing(&upper, &lowers, name, reused.as_ref())
        })
        .inspect_err(|_| finish(StepStatus::Failed, None))?;
        let upper_inode = inode(&upper);
        let snapshot = store
            .create_snapshot(&layer.diff_id, |content: &Path| {
                std::fs::rename(&upper, content)
            })
            .map_err(|e| BuildError::Store {
                what: "saving the layer snapshot".into(),
                source: e,
            })?;
        // Only now that its snapshot is installed may the layer's blob be recorded as made
        // of it, and only if the snapshot is this upper directory: a snapshot that was there
        // already (unpacked from a pulled blob of this diff ID, say) holds the same files but
        // is not known to give the same tar. Then the blob is written, from this upper
        // directory while it is there (checked against the digest either way).
        let recorded = match lazy {
            // Written already (see `commit_layer_reusing`).
            None => Ok(()),
            Some(lazy) if upper_inode.is_some() && inode(&snapshot) == upper_inode => {
                store.record_lazy_blob(&layer.digest, &lazy)
            }
            Some(lazy) => {
                let source = if upper.is_dir() { &upper } else { &snapshot };
                store.write_layer_blob(&layer.digest, source, &lazy.lowers, &lazy.options)
            }
        };
        recorded.map_err(|e| BuildError::Store {
            what: "recording the layer blob".into(),
            source: e,
        })?;
        store
            .put_cache_json(
                key,
                &CacheRecord {
                    layer: layer.clone(),
                },
            )
            .map_err(|e| BuildError::Store {
                what: "writing a cache record".into(),
                source: e,
            })?;
        self.steps_run.fetch_add(1, Ordering::Relaxed);
        finish(StepStatus::Done, Some(&layer.diff_id));
        leader.land((layer.clone(), snapshot.clone()));
        state.push_layer(layer, snapshot, key, chain_key);
        Ok(true)
    }

    /// The layer the cache record `key` names, with its snapshot. The blob comes from the
    /// store or, for records imported with `--cache-from`, from where they were imported; the
    /// snapshot is unpacked from the blob when missing (another machine made the record).
    /// `Err` is a cache miss, with its reason (no record: [`Miss::Changed`], to be explained
    /// by the caller, which knows the step's inputs).
    pub(crate) fn cached_layer(&self, key: &str) -> Result<(LayerRef, PathBuf), Miss> {
        let store = self.engine.store;
        let record: CacheRecord = match store.get_cache_json(key) {
            Ok(Some(record)) => record,
            Ok(None) => return Err(Miss::Changed(Change::RecordGone)),
            Err(e) => return Err(Miss::UnreadableRecord(e)),
        };
        let layer = record.layer;
        if !store.has_blob(&layer.digest) {
            let fetched = match self.engine.cache_blobs {
                Some(remote) => remote.fetch(store, &layer),
                None => Ok(false),
            };
            match fetched {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Miss::LayerGone {
                        layer: layer.digest.short().to_string(),
                    });
                }
                Err(error) => {
                    return Err(Miss::FetchFailed {
                        layer: layer.digest.short().to_string(),
                        error,
                    });
                }
            }
        }
        let snapshot =
            unpacked_snapshot(store, &layer.diff_id, &layer.digest).map_err(|error| {
                Miss::UnpackFailed {
                    layer: layer.digest.short().to_string(),
                    error,
                }
            })?;
        Ok((layer, snapshot))
    }

    /// Makes the layer of a step's upper directory over the layers `lowers` (diff IDs, bottom
    /// first): its plain tar is written into a hash only (its digest is the diff ID), and the
    /// blob is to be recorded as the returned [`LazyBlob`] once the upper directory is its
    /// snapshot. (In a store that records none, [`Store::records_lazy_blobs`], the blob is
    /// written here, as the tar is hashed, and no `LazyBlob` is returned.) Whoever needs the bytes regenerates them from the snapshots (see
    /// [`Store::record_lazy_blob`]); most builds never do. Compression waits until the layer
    /// leaves the store ([`Store::compressed_layer`]).
    ///
    /// The bytes of the files `reused` knows are taken from the blobs it names (the same tar).
    pub(crate) fn commit_layer_reusing(
        &self,
        upper: &Path,
        lowers: &[Digest],
        name: &str,
        reused: Option<&LazyRootfs>,
    ) -> Result<(LayerRef, Option<LazyBlob>), BuildError> {
        let store = self.engine.store;
        let lowers: Vec<Digest> = distinct_layers(lowers).into_iter().rev().collect();
        let options = TarOptions {
            source_date_epoch: self.options.source_date_epoch,
        };
        let failed = |what: &'static str, source: crate::BoxError| BuildError::Layer {
            what,
            step: name.to_owned(),
            source,
        };
        let blob = if store.records_lazy_blobs() {
            store
                .write_layer_tar(upper, &lowers, &options, reused, DigestWriter::new())
                .map_err(|e| failed("writing", e.into()))?
                .finish()
                .map_err(|e| failed("hashing", e.into()))?
        } else {
            let writer = store
                .blob_writer()
                .map_err(|e| failed("storing", e.into()))?;
            store
                .write_layer_tar(upper, &lowers, &options, reused, writer)
                .map_err(|e| failed("writing", e.into()))?
                .commit()
                .map_err(|e| failed("storing", e.into()))?
        };
        let lazy = store.records_lazy_blobs().then(|| LazyBlob {
            size: blob.size,
            upper: blob.digest.clone(),
            lowers,
            options,
            xattr: store.overlay_xattr(),
        });
        let layer = LayerRef {
            diff_id: blob.digest.clone(),
            media_type: MEDIA_TYPE_TAR.to_owned(),
            digest: blob.digest,
            size: blob.size,
            uncompressed_size: Some(blob.size),
            created_by: name.to_owned(),
            created: Timestamp::now().map(|t| t.to_string()),
        };
        Ok((layer, lazy))
    }
}

/// The (device, inode) of the directory `dir`, if it can be read.
fn inode(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(dir)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// The layer directories to stack, bottom first, with repeats removed: a layer that occurs twice
/// (two steps that changed nothing give the same empty layer) is kept at its topmost place only.
/// That is the same filesystem — the upper copy re-applies everything the lower one did — and
/// overlayfs refuses a lower directory given twice.
pub(crate) fn distinct_layers<T: Clone + Eq + std::hash::Hash>(snapshots: &[T]) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    let mut topmost_first: Vec<T> = snapshots
        .iter()
        .rev()
        .filter(|dir| seen.insert((*dir).clone()))
        .cloned()
        .collect();
    topmost_first.reverse();
    topmost_first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_layers_are_kept_at_their_topmost_place() {
        let dirs: Vec<PathBuf> = ["a", "x", "a", "y", "x"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let expected: Vec<PathBuf> = ["a", "y", "x"].iter().map(PathBuf::from).collect();
        assert_eq!(distinct_layers(&dirs), expected);
    }
}
