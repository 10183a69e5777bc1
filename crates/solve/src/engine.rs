//! Runs a build plan: each needed stage on its own thread once the stages it needs are done,
//! every step looked up in the content-addressed cache first.

use crate::convert::config::fill_history_times;
use crate::convert::dispatch::secret_values;
use crate::fs::context_index::ContextHashes;
use crate::interfaces::Engine;
use crate::options::BuildOptions;
use crate::outcome::{BuildError, BuildOutcome, LayerRef, StageOutcome, StageReport};
use crate::progress::{Event, SkipReason};
use crate::state::{BuildRun, StageResult, StageSlot};
use stagecraft_dockerfile::{CommandKind, Dockerfile};
use stagecraft_dockerignore::PatternMatcher;
use stagecraft_image::{Platform, Timestamp};
use stagecraft_plan::Plan;
use stagecraft_shell::Lexer;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

impl Engine<'_> {
    /// Builds the plan's target and stores the image (untagged; tag it with the store).
    pub fn build(
        &self,
        file: &Dockerfile,
        options: &BuildOptions,
    ) -> Result<BuildOutcome, BuildError> {
        let plan = Plan::new(file, &options.plan)?;
        // A lease keeps `prune` from collecting blobs and snapshots this build relies on.
        let _lease = self
            .store
            .lease()
            .map_err(|e| BuildError::Other(format!("locking the store: {e}")))?;
        let matcher = load_ignore(&options.context_dir, options.dockerfile_path.as_deref())?;
        let created = options
            .source_date_epoch
            .and_then(|s| Timestamp::from_unix(s, 0))
            .map(|t| t.to_string());
        let stage_count = plan.stages.len();
        let run = BuildRun {
            engine: self,
            file,
            options,
            lexer: Lexer::new(plan.escape),
            plan,
            matcher,
            context_hashes: ContextHashes::load(self.store, &options.context_dir),
            platform: Platform::host(),
            created,
            step_ids: AtomicUsize::new(0),
            steps_run: AtomicUsize::new(0),
            steps_cached: AtomicUsize::new(0),
            results: (0..stage_count).map(|_| StageSlot::default()).collect(),
            outcomes: Mutex::new(vec![StageOutcome::Skipped; stage_count]),
            failed: Mutex::new(None),
            secret_values: secret_values(options),
        };
        // Before anything runs, as BuildKit validates the whole build's entitlements first.
        for stage in run.plan.stages.iter().filter(|s| s.needed) {
            for command in &stage.stage.commands {
                if let CommandKind::Run(run_command) = &command.kind {
                    run.check_entitlements(command, run_command)?;
                }
            }
        }
        for stage in run.plan.stages.iter().filter(|s| !s.needed) {
            self.progress.event(Event::StageSkipped {
                stage: stage.display_name.clone(),
                reason: SkipReason::NotNeeded,
            });
        }
        let errors: Mutex<Vec<BuildError>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for &index in &run.plan.order {
                let run = &run;
                let errors = &errors;
                scope.spawn(move || {
                    let result = run.run_stage(index);
                    let stage = &run.plan.stages[index].display_name;
                    match &result {
                        Err(BuildError::Cancelled) => {
                            let failed_stage = run.failed_stage().unwrap_or_default();
                            self.progress.event(Event::StageSkipped {
                                stage: stage.clone(),
                                reason: SkipReason::AfterFailure { failed_stage },
                            });
                        }
                        Err(_) => {
                            // The first failure stops the other stages at their next step.
                            let mut failed = run.failed.lock().unwrap_or_else(|e| e.into_inner());
                            failed.get_or_insert_with(|| stage.clone());
                        }
                        Ok(_) => {}
                    }
                    let slot = &run.results[index];
                    *slot.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(match result {
                        Ok(state) => Ok(Arc::new(state)),
                        Err(error) => {
                            errors.lock().unwrap_or_else(|e| e.into_inner()).push(error);
                            Err(())
                        }
                    });
                    slot.finished.notify_all();
                });
            }
        });
        // Saved whether or not the build succeeded: the hashes hold either way.
        self.save_context_hashes(run.context_hashes);
        let mut errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
        // A cancelled stage only says another one failed: report that one.
        errors.sort_by_key(|error| matches!(error, BuildError::Cancelled));
        if let Some(error) = errors.into_iter().next() {
            return Err(error);
        }
        let results: Vec<Option<StageResult>> = run
            .results
            .into_iter()
            .map(|slot| slot.result.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let Some(Some(Ok(target))) = results.get(run.plan.target).cloned() else {
            return Err(BuildError::Other(
                "the target stage produced no result".into(),
            ));
        };
        let mut config = target.config.clone();
        config.created = match &run.created {
            Some(epoch) => Some(epoch.clone()),
            None => fill_history_times(&mut config.history),
        };
        config.rootfs.diff_ids = target.layers.iter().map(|l| l.diff_id.clone()).collect();
        for (key, value) in &options.labels {
            config.config.labels.insert(key.clone(), value.clone());
        }
        let descriptors = target.layers.iter().map(LayerRef::descriptor).collect();
        let image = self
            .store
            .write_image(&config, descriptors, options.manifest_format)
            .map_err(|e| BuildError::Other(format!("storing the image: {e}")))?;
        let outcomes = run.outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut cache_records = BTreeMap::new();
        for state in results.iter().flatten().flatten() {
            for (key, layer) in state.layer_keys.iter().zip(&state.layers) {
                if let Some(key) = key {
                    cache_records.insert(key.clone(), layer.clone());
                }
            }
        }
        let stages = run
            .plan
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let state = results.get(i).cloned().flatten().and_then(Result::ok);
                StageReport {
                    name: stage.display_name.clone(),
                    outcome: outcomes[i],
                    layers: state.as_ref().map(|s| s.layers.clone()).unwrap_or_default(),
                    base_layers: state.as_ref().map_or(0, |s| s.base_layers),
                }
            })
            .collect();
        Ok(BuildOutcome {
            image,
            layers: target.layers.clone(),
            snapshots: target.snapshots.clone(),
            layer_sources: target.layer_sources.clone(),
            stages,
            steps_run: run.steps_run.load(Ordering::Relaxed),
            steps_cached: run.steps_cached.load(Ordering::Relaxed),
            cache_records,
            target_cache_keys: target.layer_keys.iter().flatten().cloned().collect(),
        })
    }

    /// Says how the build came by its context files' hashes and saves the context index for
    /// the next build. The index is only a hint: failing to save it costs the next build
    /// time, not correctness, so it is reported and the build goes on.
    fn save_context_hashes(&self, hashes: ContextHashes) {
        let counts = hashes.counts();
        if counts.hashed + counts.from_index > 0 {
            self.progress.event(counts.event());
        }
        if let Err(error) = hashes.save(self.store) {
            self.progress.event(Event::Info {
                message: format!(
                    "warning: the context index could not be saved, the next build will hash these files again: {error}"
                ),
                context_files: None,
            });
        }
    }
}

pub(crate) fn load_ignore(
    context: &Path,
    dockerfile: Option<&Path>,
) -> Result<PatternMatcher, BuildError> {
    let Some(path) = stagecraft_dockerignore::find_ignore_file(context, dockerfile) else {
        return Ok(PatternMatcher::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BuildError::Other(format!("reading {}: {e}", path.display())))?;
    PatternMatcher::from_ignore_file(&text)
        .map_err(|e| BuildError::Other(format!("{}: {e}", path.display())))
}
