//! The state of a build while it runs: shared by its stage threads ([`BuildRun`]) and each
//! stage's filesystem and config between steps ([`StageState`]).

use crate::fs::context_index::ContextHashes;
use crate::interfaces::Engine;
use crate::options::BuildOptions;
use crate::outcome::{LayerRef, StageOutcome};
use stagecraft_dockerfile::{Dockerfile, Span};
use stagecraft_dockerignore::PatternMatcher;
use stagecraft_image::{History, ImageConfig, Platform};
use stagecraft_imagefs::MergedView;
use stagecraft_plan::{Plan, Scope};
use stagecraft_shell::Lexer;
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

/// Shared by the stage threads of one build.
pub(crate) struct BuildRun<'a> {
    pub(crate) engine: &'a Engine<'a>,
    pub(crate) file: &'a Dockerfile,
    pub(crate) options: &'a BuildOptions,
    pub(crate) plan: Plan,
    pub(crate) lexer: Lexer,
    pub(crate) matcher: PatternMatcher,
    /// The hashes of the context's files, by the index the previous build left.
    pub(crate) context_hashes: ContextHashes,
    pub(crate) platform: Platform,
    /// SOURCE_DATE_EPOCH as a timestamp: every history entry's time and the image's, when set.
    pub(crate) created: Option<String>,
    pub(crate) step_ids: AtomicUsize,
    pub(crate) steps_run: AtomicUsize,
    pub(crate) steps_cached: AtomicUsize,
    pub(crate) results: Vec<StageSlot>,
    pub(crate) outcomes: Mutex<Vec<StageOutcome>>,
    /// The first stage that failed: the others stop before their next step.
    pub(crate) failed: Mutex<Option<String>>,
    /// Secret values (secret build arguments, `--secret`s), longest first, masked in every
    /// output line.
    pub(crate) secret_values: Vec<String>,
}

/// Where one stage's result appears, with the stages waiting for it: each stage has its own
/// condition variable, so a finished stage wakes only the stages that wait for it (a single
/// one for all made 10,000 chained stages quadratic: every finish woke every waiter).
#[derive(Default)]
pub(crate) struct StageSlot {
    pub(crate) result: Mutex<Option<StageResult>>,
    pub(crate) finished: Condvar,
}
