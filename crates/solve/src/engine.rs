//! Runs a build plan: each needed stage on its own thread once the stages it needs are done,
//! every step looked up in the content-addressed cache first.

use crate::cache::flight::Flights;
use crate::convert::config::fill_history_times;
use crate::convert::dispatch::secret_values;
use crate::convert::named_slots::NamedContexts;
use crate::fs::local_context::LocalContext;
use crate::interfaces::Engine;
use crate::options::BuildOptions;
use crate::outcome::{BuildError, BuildOutcome, LayerRef, StageOutcome, StageReport};
use crate::progress::{Event, SkipReason};
use crate::state::{BuildRun, BuildShared, FinishedRun, StageSlot};
use stagecraft_dockerfile::{CommandKind, Dockerfile};
use stagecraft_image::{Platform, Timestamp};
use stagecraft_plan::Plan;
use stagecraft_shell::Lexer;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

impl Engine<'_> {
    /// Builds the plan's target for `options.plan.platform` (default: this machine's) and
    /// stores the image (untagged; tag it with the store).
    pub fn build(
        &self,
        file: &Dockerfile,
        options: &BuildOptions,
    ) -> Result<BuildOutcome, BuildError> {
        let platform = options.plan.platform.clone().unwrap_or_else(Platform::host);
        let mut outcomes = self.build_platforms(file, options, std::slice::from_ref(&platform))?;
        Ok(outcomes.remove(0))
    }

    /// Builds the target for each of `platforms` (`options.plan.platform` is ignored) and
    /// stores one image per platform, returned in the order of `platforms`. Each platform is its
    /// own graph, planned with its `TARGET*` arguments; the graphs run at once and share every
    /// step whose key is the same (a `FROM --platform=$BUILDPLATFORM` stage runs once), and the
    /// first failure stops them all.
    pub fn build_platforms(
        &self,
        file: &Dockerfile,
        options: &BuildOptions,
        platforms: &[Platform],
    ) -> Result<Vec<BuildOutcome>, BuildError> {
        if platforms.is_empty() {
            return Err(BuildError::Engine("no platform to build for".into()));
        }
        // Every graph is planned before anything runs: a Dockerfile error is one error.
        let plans = platforms
            .iter()
            .map(|platform| {
                let mut plan_options = options.plan.clone();
                plan_options.platform = Some(platform.clone());
                plan_options.named_contexts = options.named_contexts.keys().cloned().collect();
                Plan::new(file, &plan_options)
            })
            .collect::<Result<Vec<Plan>, _>>()?;
        // A lease keeps `prune` from collecting blobs and snapshots this build relies on.
        let _lease = self.store.lease().map_err(|e| BuildError::Store {
            what: "locking the store".into(),
            source: e,
        })?;
        let shared = BuildShared {
            context: LocalContext::main(
                self.store,
                &options.context_dir,
                options.dockerfile_path.as_deref(),
            )?,
            named: NamedContexts::new(&options.named_contexts)?,
            created: options
                .source_date_epoch
                .and_then(|s| Timestamp::from_unix(s, 0))
                .map(|t| t.to_string()),
            step_ids: AtomicUsize::new(0),
            failed: Mutex::new(None),
            secret_values: secret_values(options),
            flights: Flights::default(),
            multi_platform: platforms.len() > 1,
        };
        let runs: Vec<BuildRun<'_>> = plans
            .into_iter()
            .map(|plan| {
                let stage_count = plan.stages.len();
                BuildRun {
                    engine: self,
                    file,
                    options,
                    shared: &shared,
                    lexer: Lexer::new(plan.escape),
                    plan,
                    steps_run: AtomicUsize::new(0),
                    steps_cached: AtomicUsize::new(0),
                    results: (0..stage_count).map(|_| StageSlot::default()).collect(),
                    outcomes: Mutex::new(vec![StageOutcome::Skipped; stage_count]),
                    materials: Mutex::default(),
                    steps: Mutex::default(),
                }
            })
            .collect();
        // Before anything runs, as BuildKit validates the whole build's entitlements first.
        // The instructions are the same in every graph: the first one's plan says what runs.
        let first = &runs[0];
        for stage in first.plan.stages.iter().filter(|s| s.needed) {
            for command in &stage.stage.commands {
                if let CommandKind::Run(run_command) = &command.kind {
                    first.check_entitlements(command, run_command)?;
                }
            }
        }
        for run in &runs {
            for (index, stage) in run.plan.stages.iter().enumerate() {
                if !stage.needed {
                    self.progress.event(Event::StageSkipped {
                        stage: run.stage_label(index),
                        reason: SkipReason::NotNeeded,
                    });
                }
            }
        }
        let errors: Mutex<Vec<BuildError>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for run in &runs {
                for &index in &run.plan.order {
                    let errors = &errors;
                    scope.spawn(move || run.run_stage_to_slot(index, errors));
                }
            }
        });
        let finished: Vec<FinishedRun> = runs.into_iter().map(BuildRun::finished).collect();
        // Saved whether or not the build succeeded: the hashes hold either way.
        shared.context.finish(self.store, self.progress, true);
        for context in shared.named.into_loaded() {
            context.finish(self.store, self.progress, false);
        }
        let mut errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
        // A cancelled stage only says another one failed: report that one.
        errors.sort_by_key(|error| matches!(error, BuildError::Cancelled));
        if let Some(error) = errors.into_iter().next() {
            return Err(error);
        }
        finished
            .into_iter()
            .map(|run| self.store_image(run, options, &shared.created))
            .collect()
    }

    /// Stores the image a finished graph made and reports on its stages.
    fn store_image(
        &self,
        run: FinishedRun,
        options: &BuildOptions,
        created: &Option<String>,
    ) -> Result<BuildOutcome, BuildError> {
        let FinishedRun {
            plan,
            results,
            outcomes,
            steps_run,
            steps_cached,
            materials,
            steps,
        } = run;
        let Some(Some(Ok(target))) = results.get(plan.target).cloned() else {
            return Err(BuildError::Engine(
                "the target stage produced no result".into(),
            ));
        };
        let mut config = target.config.clone();
        config.created = match created {
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
            .map_err(|e| BuildError::Store {
                what: "storing the image".into(),
                source: e,
            })?;
        let mut cache_records = BTreeMap::new();
        for state in results.iter().flatten().flatten() {
            for (key, layer) in state.layer_keys.iter().zip(&state.layers) {
                if let Some(key) = key {
                    cache_records.insert(key.clone(), layer.clone());
                }
            }
        }
        let stages = plan
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
            platform: plan.target_platform.clone(),
            image,
            layers: target.layers.clone(),
            snapshots: target.snapshots.clone(),
            layer_sources: target.layer_sources.clone(),
            stages,
            steps_run,
            steps_cached,
            cache_records,
            target_cache_keys: target.layer_keys.iter().flatten().cloned().collect(),
            materials,
            steps,
        })
    }
}
