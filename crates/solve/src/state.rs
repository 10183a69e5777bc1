//! The state of a build while it runs: shared by its stage threads ([`BuildRun`]) and each
//! stage's filesystem and config between steps ([`StageState`]).

use crate::cache::flight::Flights;
use crate::convert::named_slots::NamedContexts;
use crate::fs::local_context::LocalContext;
use crate::interfaces::Engine;
use crate::options::BuildOptions;
use crate::outcome::{LayerRef, Material, StageOutcome, StepRecord};
use stagecraft_dockerfile::{Dockerfile, Span};
use stagecraft_image::{History, ImageConfig};
use stagecraft_imagefs::MergedView;
use stagecraft_plan::{Plan, Scope};
use stagecraft_shell::Lexer;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex};

/// `created_by` comment BuildKit puts on every history entry.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The `PATH` BuildKit gives images that have none (`system.DefaultPathEnv`).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The shell used for shell-form commands when the image sets none.
pub(crate) const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// What the history and progress show instead of a secret value.
pub(crate) const MASK: &str = "****";

/// A stage's state between steps.
#[derive(Clone)]
pub(crate) struct StageState {
    pub(crate) config: ImageConfig,
    pub(crate) scope: Scope,
    /// `ARG`s declared in the stage so far, for `RUN`'s history text.
    pub(crate) args: Vec<(String, Option<String>)>,
    pub(crate) layers: Vec<LayerRef>,
    /// The cache key of the step that made each layer (`None` for base image layers),
    /// parallel to `layers`: what an exported cache records.
    pub(crate) layer_keys: Vec<Option<String>>,
    /// The instruction that made each layer (`None` for base image layers), parallel to
    /// `layers`: where the image checks point.
    pub(crate) layer_sources: Vec<Option<Span>>,
    pub(crate) snapshots: Vec<PathBuf>,
    pub(crate) base_layers: usize,
    /// The cache key of the filesystem so far.
    pub(crate) key: String,
    pub(crate) cmd_set: bool,
}

impl StageState {
    pub(crate) fn view(&self) -> MergedView {
        MergedView::new(self.snapshots.clone())
    }

    /// Stacks a step's layer: `key` is its cache record, `chain_key` the key of the filesystem
    /// it completes.
    pub(crate) fn push_layer(
        &mut self,
        layer: LayerRef,
        snapshot: PathBuf,
        key: &str,
        chain_key: String,
    ) {
        self.layers.push(layer);
        self.layer_keys.push(Some(key.to_owned()));
        self.snapshots.push(snapshot);
        self.key = chain_key;
    }

    /// Adds a history entry. Its time is `epoch` (SOURCE_DATE_EPOCH) when set; otherwise the
    /// time its layer was made, or none yet for an entry without a layer
    /// ([`fill_history_times`] gives it one at the end, as BuildKit's exporter does).
    pub(crate) fn history(&mut self, created_by: String, with_layer: bool, epoch: &Option<String>) {
        let created = match epoch {
            Some(epoch) => Some(epoch.clone()),
            None if with_layer => self.layers.last().and_then(|layer| layer.created.clone()),
            None => None,
        };
        self.config.history.push(History {
            created,
            created_by,
            author: String::new(),
            comment: HISTORY_COMMENT.to_owned(),
            empty_layer: !with_layer,
        });
    }
}

/// A finished stage: its final state, or `Err` when it failed (the error is reported once).
pub(crate) type StageResult = Result<Arc<StageState>, ()>;

/// Shared by every platform's graph of one build.
pub(crate) struct BuildShared {
    /// The main build context.
    pub(crate) context: LocalContext,
    /// The named build contexts (`--build-context`), each fetched once when first used.
    pub(crate) named: NamedContexts,
    /// SOURCE_DATE_EPOCH as a timestamp: every history entry's time and the image's, when set.
    pub(crate) created: Option<String>,
    /// Numbers steps across the whole build, every platform's graph included.
    pub(crate) step_ids: AtomicUsize,
    /// The first stage that failed: the others (of every platform) stop before their next step.
    pub(crate) failed: Mutex<Option<String>>,
    /// Secret values (secret build arguments, `--secret`s), longest first, masked in every
    /// output line.
    pub(crate) secret_values: Vec<String>,
    /// The steps running now, so that graphs reaching the same step run it once.
    pub(crate) flights: Flights,
    /// Whether the build has several target platforms: progress then names each step's.
    pub(crate) multi_platform: bool,
}

/// One platform's graph of a build, shared by its stage threads.
pub(crate) struct BuildRun<'a> {
    pub(crate) engine: &'a Engine<'a>,
    pub(crate) file: &'a Dockerfile,
    pub(crate) options: &'a BuildOptions,
    pub(crate) shared: &'a BuildShared,
    pub(crate) plan: Plan,
    pub(crate) lexer: Lexer,
    pub(crate) steps_run: AtomicUsize,
    pub(crate) steps_cached: AtomicUsize,
    pub(crate) results: Vec<StageSlot>,
    pub(crate) outcomes: Mutex<Vec<StageOutcome>>,
    /// What the graph took from outside the build (images, downloads, repositories).
    pub(crate) materials: Mutex<Vec<Material>>,
    /// The graph's steps by build-wide step number.
    pub(crate) steps: Mutex<BTreeMap<usize, StepRecord>>,
}

/// The context a step runs in: its stage, its place among the stage's steps (as BuildKit
/// numbers them), the Dockerfile line of its instruction, and whether the cache may answer it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepCtx {
    pub(crate) stage: usize,
    pub(crate) position: usize,
    pub(crate) total: usize,
    pub(crate) line: usize,
    /// `--no-cache` (or `--no-cache-filter` naming the stage): the step runs whatever the
    /// cache holds.
    pub(crate) no_cache: bool,
}

/// What is left of a graph once its stage threads are done.
pub(crate) struct FinishedRun {
    pub(crate) plan: Plan,
    /// Each stage's result: `None` for stages that did not run.
    pub(crate) results: Vec<Option<StageResult>>,
    pub(crate) outcomes: Vec<StageOutcome>,
    pub(crate) steps_run: usize,
    pub(crate) steps_cached: usize,
    pub(crate) materials: Vec<Material>,
    pub(crate) steps: Vec<StepRecord>,
}

impl BuildRun<'_> {
    /// The graph's results, once every stage thread has ended.
    pub(crate) fn finished(self) -> FinishedRun {
        FinishedRun {
            plan: self.plan,
            results: self
                .results
                .into_iter()
                .map(|slot| slot.result.into_inner().unwrap_or_else(|e| e.into_inner()))
                .collect(),
            outcomes: self
                .outcomes
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
            steps_run: self.steps_run.into_inner(),
            steps_cached: self.steps_cached.into_inner(),
            materials: {
                // Stages run in parallel: sorted, so that the list does not depend on timing.
                let mut materials = self
                    .materials
                    .into_inner()
                    .unwrap_or_else(|e| e.into_inner());
                materials.sort_by_cached_key(|m| format!("{m:?}"));
                materials
            },
            steps: self
                .steps
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .into_values()
                .collect(),
        }
    }

    /// Remembers something the graph took from outside the build.
    pub(crate) fn add_material(&self, material: Material) {
        let mut materials = self.materials.lock().unwrap_or_else(|e| e.into_inner());
        if !materials.contains(&material) {
            materials.push(material);
        }
    }

    /// How progress names a stage: its display name, after its platform when the build has
    /// several (`linux/arm64 build`), and with the target architecture when the stage runs on
    /// another platform (`linux/amd64->arm64 build`, a cross-compiling stage), as buildx does.
    pub(crate) fn stage_label(&self, index: usize) -> String {
        let stage = &self.plan.stages[index];
        if !self.shared.multi_platform {
            return stage.display_name.clone();
        }
        let target = &self.plan.target_platform;
        let arrow = if stage.image_platform == *target {
            String::new()
        } else if stage.image_platform.os == target.os {
            let mut arch = target.architecture.clone();
            if !target.variant.is_empty() {
                arch = format!("{arch}/{}", target.variant);
            }
            format!("->{arch}")
        } else {
            format!("->{target}")
        };
        format!("{}{arrow} {}", stage.image_platform, stage.display_name)
    }
}

/// Where one stage's result appears, with the stages waiting for it: each stage has its own
/// condition variable, so a finished stage wakes only the stages that wait for it (a single
/// one for all made 10,000 chained stages quadratic: every finish woke every waiter).
#[derive(Default)]
pub(crate) struct StageSlot {
    pub(crate) result: Mutex<Option<StageResult>>,
    pub(crate) finished: Condvar,
}
