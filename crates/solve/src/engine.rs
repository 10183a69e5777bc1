//! Runs a build plan: each needed stage on its own thread once the stages it needs are done,
//! every step looked up in the content-addressed cache first.

use crate::context_index::ContextHashes;
use crate::copy::{CopyPlan, CopySource, CopySpec};
use crate::entitlement::Entitlement;
use crate::mounts::{MountSpec, MountType, parse_mount_with};
use crate::progress::{Event, ProgressSink, SkipReason, StepStatus, Stream};
use crate::remote_cache::CacheRecord;
use crate::rootfs::MergedView;
use crate::users::resolve_owner;
use sha2::{Digest as _, Sha256};
use stagecraft_dockerfile::{
    Command, CommandKind, Dockerfile, Healthcheck as ParsedHealthcheck, KeyValue, ParseError,
};
use stagecraft_dockerignore::PatternMatcher;
use stagecraft_exec::Network;
use stagecraft_image::{
    Descriptor, Digest, Healthcheck, History, ImageConfig, Platform, Timestamp,
};
use stagecraft_layer::{
    ApplyOptions, DiffSource, MEDIA_TYPE_TAR, TarOptions, WhiteoutMode, apply_layer, write_tar,
};
use stagecraft_plan::{Base, Plan, PlanError, PlanOptions, Scope};
use stagecraft_shell::Lexer;
use stagecraft_store::{CacheMountAccess, CacheMountLock, Image, ManifestFormat, Store};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// `created_by` comment BuildKit puts on every history entry.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";
/// The `PATH` BuildKit gives images that have none (`system.DefaultPathEnv`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The shell used for shell-form commands when the image sets none.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Everything a build needs besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Target, build arguments, platform.
    pub plan: PlanOptions,
    /// The build context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile's path (for its `NAME.dockerignore`).
    pub dockerfile_path: Option<PathBuf>,
    /// Ignore the cache for every step.
    pub no_cache: bool,
    /// Ignore the cache for these stages.
    pub no_cache_filter: Vec<String>,
    /// Clamp timestamps (files and history) to this Unix time.
    pub source_date_epoch: Option<i64>,
    /// Media types of the result.
    pub manifest_format: ManifestFormat,
    /// `--label` values added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--secret` values by id. They reach `RUN --mount=type=secret` only: never a layer, the
    /// config, the history, a cache key or the progress output.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// `--ssh` agent sockets by id, for `RUN --mount=type=ssh`. Like secrets, they change
    /// no cache key.
    pub ssh: BTreeMap<String, PathBuf>,
    /// Build arguments (in `plan.build_args`) whose values are secret: `RUN` sees them as
    /// variables, but the history shows `****`, output lines have the value masked, and any
    /// other instruction that would expand one into the image (ENV, LABEL, WORKDIR, COPY
    /// paths, …) is an error. Their values change cache keys through a hash only.
    pub secret_args: BTreeSet<String>,
    /// `--cache-normalize-mode`: COPY/ADD keys see context files' modes without group and
    /// other write bits, so machines with different umasks share a cache (the layer keeps
    /// the modes of the machine that made it).
    pub cache_normalize_mode: bool,
    /// The network of `RUN` steps without a `--network` of their own (`--network`, BuildKit's
    /// `force-network-mode`): the build's sandbox by default. The caller's choice, so `Host`
    /// here needs no entitlement (buildx grants `network.host` with `--network=host`).
    pub network: Network,
    /// `--allow`: what the Dockerfile may ask for (`RUN --network=host` needs `network.host`).
    pub allow: BTreeSet<Entitlement>,
}

/// What the history and progress show instead of a secret value.
const MASK: &str = "****";

/// Where base images come from (the store, or a registry when missing).
pub trait BaseImages: Sync {
    /// Returns the image for `reference`, fetching it if needed. Its layer blobs must be in the
    /// store afterwards.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<Image, String>;
}

/// What a `RUN` step asks of the executor.
pub struct RunRequest<'a> {
    /// Layer snapshots, bottom first.
    pub lower_dirs: &'a [PathBuf],
    /// An empty directory that receives the changes.
    pub upper_dir: &'a Path,
    /// An empty scratch directory on the same filesystem as `upper_dir`.
    pub work_dir: &'a Path,
    /// The command.
    pub args: &'a [String],
    /// `KEY=VALUE` environment.
    pub env: &'a [String],
    /// Working directory.
    pub cwd: &'a str,
    /// `USER` value (empty for root).
    pub user: &'a str,
    /// The network, `RUN --network` and the build's `--network` resolved.
    pub network: Network,
    /// `RUN --mount`s, resolved to host paths.
    pub mounts: &'a [RunMount],
}

/// A `RUN --mount` as the executor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// Absolute path inside the container.
    pub target: String,
    /// What is mounted there.
    pub kind: RunMountKind,
}

/// The executor-level kinds of mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMountKind {
    /// A host file or directory.
    Bind {
        /// The host path.
        source: PathBuf,
        /// Mounted read-only.
        readonly: bool,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Size limit in bytes.
        size: Option<u64>,
    },
}

/// Runs `RUN` commands.
pub trait Runner: Sync {
    /// Runs the command, passing output chunks to `output`; returns its exit code.
    fn run(
        &self,
        request: &RunRequest<'_>,
        output: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<i32, String>;
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Planning failed.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// A step failed at a place in the Dockerfile.
    #[error("{0}")]
    Step(ParseError),
    /// Anything else (store, layer, base image).
    #[error("{0}")]
    Other(String),
    /// The stage stopped because another one failed; that one's error is the build's.
    #[error("the build stopped after another stage failed")]
    Cancelled,
}

impl BuildError {
    /// A multi-line rendering for terminals.
    pub fn render(&self) -> String {
        match self {
            BuildError::Plan(e) => e.render(),
            BuildError::Step(e) => e.render(),
            BuildError::Other(message) => format!("error: {message}"),
            BuildError::Cancelled => format!("error: {self}"),
        }
    }
}

/// One layer of a built stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerRef {
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Compressed blob: media type, digest, size.
    pub media_type: String,
    /// Blob digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// Uncompressed size, when known.
    pub uncompressed_size: Option<u64>,
    /// The instruction that made it (empty for base image layers).
    pub created_by: String,
    /// When the layer was made (RFC 3339): its history entry's time, as BuildKit keeps a
    /// cached layer's original time, so a cached rebuild gives the same image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl LayerRef {
    /// The manifest descriptor of the blob.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.digest.clone(), self.size)
    }
}

/// How a stage ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageOutcome {
    /// At least one step ran.
    Built,
    /// Every step came from the cache.
    Cached,
    /// The target does not need it.
    Skipped,
}

/// What happened to one stage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageReport {
    /// Display name.
    pub name: String,
    /// Built, cached or skipped.
    pub outcome: StageOutcome,
    /// Its layers, bottom first (base image layers included).
    pub layers: Vec<LayerRef>,
    /// How many leading layers came from the base image.
    pub base_layers: usize,
}

/// The result of a build.
pub struct BuildOutcome {
    /// The final image, stored.
    pub image: Image,
    /// Its layers with their snapshot directories, bottom first.
    pub layers: Vec<LayerRef>,
    /// Snapshot directories of the layers, bottom first (to export the filesystem).
    pub snapshots: Vec<PathBuf>,
    /// Every stage, in file order.
    pub stages: Vec<StageReport>,
    /// How many steps ran and how many came from the cache.
    pub steps_run: usize,
    /// Steps answered from the cache.
    pub steps_cached: usize,
    /// The cache records behind the layers of every stage built (what `--cache-to
    /// mode=max` exports), by cache key.
    pub cache_records: BTreeMap<String, LayerRef>,
    /// The keys of those records that made the final image's layers (`mode=min`).
    pub target_cache_keys: Vec<String>,
}

/// A stage's state between steps.
#[derive(Clone)]
struct StageState {
    config: ImageConfig,
    scope: Scope,
    /// `ARG`s declared in the stage so far, for `RUN`'s history text.
    args: Vec<(String, Option<String>)>,
    layers: Vec<LayerRef>,
    /// The cache key of the step that made each layer (`None` for base image layers),
    /// parallel to `layers`: what an exported cache records.
    layer_keys: Vec<Option<String>>,
    snapshots: Vec<PathBuf>,
    base_layers: usize,
    /// The cache key of the filesystem so far.
    key: String,
    cmd_set: bool,
}

impl StageState {
    fn view(&self) -> MergedView {
        MergedView::new(self.snapshots.clone())
    }

    /// Stacks a step's layer: `key` is its cache record, `chain_key` the key of the filesystem
    /// it completes.
    fn push_layer(&mut self, layer: LayerRef, snapshot: PathBuf, key: &str, chain_key: String) {
        self.layers.push(layer);
        self.layer_keys.push(Some(key.to_owned()));
        self.snapshots.push(snapshot);
        self.key = chain_key;
    }

    /// Adds a history entry. Its time is `epoch` (SOURCE_DATE_EPOCH) when set; otherwise the
    /// time its layer was made, or none yet for an entry without a layer
    /// ([`fill_history_times`] gives it one at the end, as BuildKit's exporter does).
    fn history(&mut self, created_by: String, with_layer: bool, epoch: &Option<String>) {
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

/// The build engine.
pub struct Engine<'a> {
    /// Where blobs, snapshots and cache records live.
    pub store: &'a Store,
    /// Base image resolution.
    pub base_images: &'a dyn BaseImages,
    /// The `RUN` executor.
    pub runner: &'a dyn Runner,
    /// Progress events.
    pub progress: &'a dyn ProgressSink,
    /// Where the blobs of cache records imported with `--cache-from` come from.
    pub cache_blobs: Option<&'a dyn CacheBlobs>,
}

/// The layer blobs of imported cache records (`--cache-from`), fetched lazily: only when a
/// cache hit needs one the store lacks.
pub trait CacheBlobs: Sync {
    /// Puts the blob of `layer` into `store`; `Ok(false)` when no imported cache has it.
    fn fetch(&self, store: &Store, layer: &LayerRef) -> Result<bool, String>;
}

/// A finished stage: its final state, or `Err` when it failed (the error is reported once).
type StageResult = Result<Arc<StageState>, ()>;

/// Shared by the stage threads of one build.
struct BuildRun<'a> {
    engine: &'a Engine<'a>,
    file: &'a Dockerfile,
    options: &'a BuildOptions,
    plan: Plan,
    lexer: Lexer,
    matcher: PatternMatcher,
    /// The hashes of the context's files, by the index the previous build left.
    context_hashes: ContextHashes,
    platform: Platform,
    /// SOURCE_DATE_EPOCH as a timestamp: every history entry's time and the image's, when set.
    created: Option<String>,
    step_ids: AtomicUsize,
    steps_run: AtomicUsize,
    steps_cached: AtomicUsize,
    results: Mutex<Vec<Option<StageResult>>>,
    finished: Condvar,
    outcomes: Mutex<Vec<StageOutcome>>,
    /// The first stage that failed: the others stop before their next step.
    failed: Mutex<Option<String>>,
    /// Secret values (secret build arguments, `--secret`s), longest first, masked in every
    /// output line.
    secret_values: Vec<String>,
}

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
            results: Mutex::new(vec![None; stage_count]),
            finished: Condvar::new(),
            outcomes: Mutex::new(vec![StageOutcome::Skipped; stage_count]),
            failed: Mutex::new(None),
            secret_values: secret_values(options),
        };
        // As BuildKit validates the entitlements of the whole build before it runs anything:
        // a refused step must not fail the build after an hour of others.
        for stage in run.plan.stages.iter().filter(|s| s.needed) {
            for command in &stage.stage.commands {
                if let CommandKind::Run(step) = &command.kind {
                    run.run_network(command, step)?;
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
                    let mut results = run.results.lock().unwrap_or_else(|e| e.into_inner());
                    results[index] = Some(match result {
                        Ok(state) => Ok(Arc::new(state)),
                        Err(error) => {
                            errors.lock().unwrap_or_else(|e| e.into_inner()).push(error);
                            Err(())
                        }
                    });
                    run.finished.notify_all();
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
        let results = run.results.into_inner().unwrap_or_else(|e| e.into_inner());
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

fn load_ignore(context: &Path, dockerfile: Option<&Path>) -> Result<PatternMatcher, BuildError> {
    let Some(path) = stagecraft_dockerignore::find_ignore_file(context, dockerfile) else {
        return Ok(PatternMatcher::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BuildError::Other(format!("reading {}: {e}", path.display())))?;
    PatternMatcher::from_ignore_file(&text)
        .map_err(|e| BuildError::Other(format!("{}: {e}", path.display())))
}

/// The snapshot of layer `diff_id`, unpacked from its blob `digest` (which must be in the
/// store) when the store has none yet.
fn unpacked_snapshot(store: &Store, diff_id: &Digest, digest: &Digest) -> Result<PathBuf, String> {
    if let Some(path) = store.snapshot_path(diff_id) {
        return Ok(path);
    }
    let blob = store.blob_path(digest);
    store
        .create_snapshot(diff_id, |dir: &Path| -> Result<(), String> {
            let file =
                std::fs::File::open(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
            let options = ApplyOptions {
                whiteouts: WhiteoutMode::Overlay(store.overlay_xattr()),
                ..ApplyOptions::default()
            };
            apply_layer(std::io::BufReader::new(file), dir, &options)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| e.to_string())
}

/// A network mode as cache keys and `--explain` name it: `RUN --network`'s words, the sandbox
/// being the default (as BuildKit's exec op leaves its network unset for it).
fn network_key(network: Network) -> &'static str {
    match network {
        Network::Sandbox => "default",
        Network::Host => "host",
        Network::None => "none",
    }
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

impl BuildRun<'_> {
    fn located(&self, command: &Command, message: impl Into<String>) -> BuildError {
        BuildError::Step(ParseError::new(
            &self.file.source,
            command.location.span,
            message,
        ))
    }

    /// The network of a `RUN` step: its own `--network`, else the build's. `--network=host`
    /// needs the `network.host` entitlement.
    fn run_network(
        &self,
        command: &Command,
        run: &stagecraft_dockerfile::RunCommand,
    ) -> Result<Network, BuildError> {
        match run.network.as_str() {
            "host" if !self.options.allow.contains(&Entitlement::NetworkHost) => {
                let host = Entitlement::NetworkHost;
                Err(BuildError::Step(
                    ParseError::new(
                        &self.file.source,
                        command.location.span,
                        format!("RUN --network=host: entitlement {host} is not allowed"),
                    )
                    .with_hint(format!(
                        "the host's network (its interfaces, its loopback services) is an \
                         entitlement: pass `--allow {host}` to stagecraft build to grant it, as \
                         with `docker buildx build --allow {host}`; without --network=host the \
                         step runs in the build's network sandbox"
                    )),
                ))
            }
            "host" => Ok(Network::Host),
            "none" => Ok(Network::None),
            _ => Ok(self.options.network),
        }
    }

    fn expand(
        &self,
        command: &Command,
        word: &str,
        state: &StageState,
    ) -> Result<String, BuildError> {
        let expansion = self
            .lexer
            .process_word_with_matches(word, &state.scope)
            .map_err(|e| self.located(command, e.to_string()))?;
        self.refuse_secret_args(command, &expansion.matched, state)?;
        Ok(expansion.result)
    }

    /// Like [`Self::expand`], split into words at unquoted whitespace (BuildKit's
    /// `ProcessWords`).
    fn expand_words(
        &self,
        command: &Command,
        word: &str,
        state: &StageState,
    ) -> Result<Vec<String>, BuildError> {
        let (expansion, words) = self
            .lexer
            .process_words_with_matches(word, &state.scope)
            .map_err(|e| self.located(command, e.to_string()))?;
        self.refuse_secret_args(command, &expansion.matched, state)?;
        Ok(words)
    }

    /// Secret build arguments reach `RUN` only: anything else the frontend expands ends up
    /// in the image (config, paths, history).
    fn refuse_secret_args(
        &self,
        command: &Command,
        used: &BTreeSet<String>,
        state: &StageState,
    ) -> Result<(), BuildError> {
        use stagecraft_shell::EnvGetter;
        let secret = used.iter().find(|name| {
            self.options.secret_args.contains(*name)
                // Still the secret: an ENV of the same name replaces it with a plain value.
                && state.scope.get(name) == self.options.plan.build_args.get(*name).map(String::as_str)
        });
        match secret {
            Some(name) => Err(BuildError::Step(
                ParseError::new(
                    &self.file.source,
                    command.location.span,
                    format!("the secret build argument {name} would be written into the image here"),
                )
                .with_hint(format!(
                    "secret build arguments reach RUN only, as the variable ${name}; pass values that belong in the image with --build-arg"
                )),
            )),
            None => Ok(()),
        }
    }

    /// `line` with every secret value replaced by [`MASK`].
    fn mask(&self, line: &str) -> String {
        mask_secrets(line, &self.secret_values)
    }

    /// Waits for a stage this one needs.
    fn wait_for(&self, index: usize) -> Result<Arc<StageState>, BuildError> {
        // The plan schedules the stages the Dockerfile's own instructions need; an ONBUILD
        // trigger of a base image may name one nothing else needs, and nobody would run it.
        if !self.plan.stages[index].needed {
            return Err(BuildError::Other(format!(
                "stage {} is needed by an ONBUILD trigger, but the target does not depend on it otherwise; reference it from the target (e.g. COPY --from={} of a file) or build it as the target",
                self.plan.stages[index].display_name, self.plan.stages[index].display_name
            )));
        }
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &results[index] {
                Some(Ok(state)) => return Ok(state.clone()),
                Some(Err(())) => return Err(BuildError::Cancelled),
                None => {
                    results = self
                        .finished
                        .wait(results)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        }
    }

    fn base_state(&self, index: usize) -> Result<StageState, BuildError> {
        let stage = &self.plan.stages[index];
        match &stage.base {
            Base::Scratch => {
                // BuildKit gives an empty image the default PATH.
                let mut config = ImageConfig::for_platform(&self.platform);
                config.config.env = vec![format!("PATH={DEFAULT_PATH}")];
                Ok(StageState {
                    scope: Scope::from_image_env(config.config.env.iter().map(String::as_str)),
                    config,
                    args: Vec::new(),
                    layers: Vec::new(),
                    layer_keys: Vec::new(),
                    snapshots: Vec::new(),
                    base_layers: 0,
                    key: sha256_hex(&["scratch", &self.platform.to_string()]),
                    cmd_set: false,
                })
            }
            Base::Stage(base) => {
                // The base stage's own ONBUILD instructions stay in `on_build`: they are this
                // stage's triggers (its base image's triggers ran in the base stage already).
                let mut state = (*self.wait_for(*base)?).clone();
                state.cmd_set = false;
                // BuildKit re-applies the image's Env at the start of every stage, so an ENV
                // wins over an ARG of the same name that the base stage set after it.
                for entry in state.config.config.env.clone() {
                    let (key, value) = entry.split_once('=').unwrap_or((&entry, ""));
                    state.scope.set(key, value);
                }
                Ok(state)
            }
            Base::Image(reference) => {
                let (image, layers, snapshots) = self.image_layers(reference)?;
                let config = image.config.clone();
                let scope = Scope::from_image_env(config.config.env.iter().map(String::as_str));
                let base_layers = layers.len();
                Ok(StageState {
                    config,
                    scope,
                    args: Vec::new(),
                    layer_keys: vec![None; base_layers],
                    layers,
                    snapshots,
                    base_layers,
                    key: sha256_hex(&["image", image.manifest_digest.as_str()]),
                    cmd_set: false,
                })
            }
        }
    }

    /// The ONBUILD triggers the stage inherits, parsed, each with its text: the base image's
    /// `OnBuild`, or a base stage's ONBUILD instructions. They are removed from the stage's
    /// config, as BuildKit clears them once they ran. Errors point at the stage's `FROM`, where
    /// BuildKit puts every trigger.
    fn onbuild_triggers(
        &self,
        index: usize,
        state: &mut StageState,
    ) -> Result<Vec<(String, Command)>, BuildError> {
        let from = &self.plan.stages[index].stage.location;
        let at_from = |message: String| {
            BuildError::Step(ParseError::new(&self.file.source, from.span, message))
        };
        std::mem::take(&mut state.config.config.on_build)
            .into_iter()
            .map(|expression| {
                // A trigger is one instruction; parsed after a `FROM` so it lands in a stage.
                let text = format!("FROM scratch\n{expression}\n");
                let parsed = stagecraft_dockerfile::parse_str("ONBUILD trigger", &text)
                    .and_then(|file| file.stages())
                    .map_err(|e| {
                        at_from(format!(
                            "the ONBUILD trigger {expression:?} of this stage's base is invalid: {}",
                            e.message()
                        ))
                    })?;
                let mut commands = parsed
                    .stages
                    .into_iter()
                    .flat_map(|stage| stage.commands)
                    .collect::<Vec<_>>();
                if commands.len() != 1 {
                    return Err(at_from(format!(
                        "the ONBUILD trigger {expression:?} of this stage's base should be a single expression"
                    )));
                }
                let mut command = commands.remove(0);
                command.location = from.clone();
                Ok((expression, command))
            })
            .collect()
    }

    /// Resolves an image and makes sure every layer has a snapshot.
    fn image_layers(
        &self,
        reference: &str,
    ) -> Result<(Image, Vec<LayerRef>, Vec<PathBuf>), BuildError> {
        let store = self.engine.store;
        let image = self
            .engine
            .base_images
            .resolve(reference, &self.platform)
            .map_err(|e| BuildError::Other(format!("base image {reference}: {e}")))?;
        let mut layers = Vec::new();
        let mut snapshots = Vec::new();
        for (descriptor, diff_id) in image
            .manifest
            .layers
            .iter()
            .zip(&image.config.rootfs.diff_ids)
        {
            let snapshot = unpacked_snapshot(store, diff_id, &descriptor.digest)
                .map_err(|e| BuildError::Other(format!("unpacking a layer of {reference}: {e}")))?;
            layers.push(LayerRef {
                diff_id: diff_id.clone(),
                media_type: descriptor.media_type.clone(),
                digest: descriptor.digest.clone(),
                size: descriptor.size,
                uncompressed_size: None,
                created_by: String::new(),
                // The base image's history carries its own times.
                created: None,
            });
            snapshots.push(snapshot);
        }
        Ok((image, layers, snapshots))
    }

    /// The filesystem `from` names: a stage (by name or index) or an image.
    fn source_view(&self, from: &str) -> Result<(MergedView, String), BuildError> {
        let stage = match from.parse::<usize>() {
            Ok(index) if index < self.plan.stages.len() => Some(index),
            _ => self
                .plan
                .stages
                .iter()
                .position(|s| s.stage.name.as_deref() == Some(from.to_lowercase().as_str())),
        };
        match stage {
            Some(index) => {
                let state = self.wait_for(index)?;
                Ok((state.view(), format!("stage {}", state.key)))
            }
            None => {
                let (image, _, snapshots) = self.image_layers(from)?;
                Ok((
                    MergedView::new(snapshots),
                    format!("image {}", image.manifest_digest),
                ))
            }
        }
    }

    fn failed_stage(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn run_stage(&self, index: usize) -> Result<StageState, BuildError> {
        let stage = &self.plan.stages[index];
        // Steps are numbered as BuildKit numbers them: the base image, then every instruction
        // that changes the filesystem.
        let fs_steps = stage
            .stage
            .commands
            .iter()
            .filter(|c| changes_filesystem(&c.kind))
            .count();
        let from_image = matches!(stage.base, Base::Image(_));
        // The `FROM` step is announced before the image, and so its ONBUILD triggers, is
        // known: its total leaves the triggers out.
        let mut total = fs_steps + usize::from(from_image);
        let mut position = 0;
        let mut state = if let Base::Image(reference) = &stage.base {
            position = 1;
            let (id, started) = self.start_step(index, 1, total, &format!("FROM {reference}"));
            let state = self.base_state(index);
            self.engine.progress.event(Event::StepFinished {
                id,
                status: if state.is_ok() {
                    StepStatus::Done
                } else {
                    StepStatus::Failed
                },
                duration: started.elapsed(),
                miss_reason: None,
            });
            state?
        } else {
            self.base_state(index)?
        };
        let triggers = self.onbuild_triggers(index, &mut state)?;
        total += triggers
            .iter()
            .filter(|(_, c)| changes_filesystem(&c.kind))
            .count();
        let no_cache = self.options.no_cache
            || self
                .options
                .no_cache_filter
                .iter()
                .any(|name| stage.stage.name.as_deref() == Some(name.to_lowercase().as_str()));
        let mut ran_any = false;
        let own = stage.stage.commands.iter().map(|command| (None, command));
        let triggered = triggers
            .iter()
            .map(|(expression, command)| (Some(expression.as_str()), command));
        for (trigger, command) in triggered.chain(own) {
            if self.failed_stage().is_some() {
                return Err(BuildError::Cancelled);
            }
            if changes_filesystem(&command.kind) {
                position += 1;
            }
            let ran = self
                .dispatch(index, position, total, command, &mut state, no_cache)
                .map_err(|error| match (trigger, error) {
                    // The error points at `FROM`; say which trigger it came from.
                    (Some(expression), BuildError::Step(e)) => BuildError::Step(
                        e.with_hint(format!("the ONBUILD trigger {expression:?} of this stage's base failed: the base declares it to run in every build FROM it")),
                    ),
                    (_, error) => error,
                })?;
            ran_any |= ran;
        }
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner())[index] = if ran_any {
            StageOutcome::Built
        } else {
            StageOutcome::Cached
        };
        Ok(state)
    }

    /// Applies one instruction. Returns whether something ran (a cache miss).
    fn dispatch(
        &self,
        stage_index: usize,
        position: usize,
        total: usize,
        command: &Command,
        state: &mut StageState,
        no_cache: bool,
    ) -> Result<bool, BuildError> {
        let created = &self.created;
        match &command.kind {
            CommandKind::Env(pairs) => {
                let mut message = String::from("ENV");
                for (key, value) in self.expand_pairs(command, pairs, state)? {
                    state.scope.set(&key, &value);
                    add_env(&mut state.config.config.env, &key, &value);
                    message.push_str(&format!(" {key}={value}"));
                }
                state.history(message, false, created);
            }
            CommandKind::Label(pairs) => {
                let mut message = String::from("LABEL");
                for (key, value) in self.expand_pairs(command, pairs, state)? {
                    message.push_str(&format!(" {key}={value}"));
                    state.config.config.labels.insert(key, value);
                }
                state.history(message, false, created);
            }
            CommandKind::Maintainer(word) => {
                state.config.author = word.value.clone();
                state.history(format!("MAINTAINER {}", word.value), false, created);
            }
            CommandKind::Arg(declarations) => {
                let mut parts = Vec::new();
                for declaration in declarations {
                    let from_cli = self.options.plan.build_args.get(&declaration.name).cloned();
                    let value = match (&from_cli, &declaration.default) {
                        (Some(value), _) => Some(value.clone()),
                        (None, Some(default)) => Some(self.expand(command, default, state)?),
                        (None, None) => self
                            .plan
                            .global_args
                            .iter()
                            .find(|(k, _)| *k == declaration.name)
                            .map(|(_, v)| v.clone()),
                    };
                    if let Some(value) = &value {
                        state.scope.set(&declaration.name, value);
                    }
                    parts.push(match &value {
                        Some(_) if self.options.secret_args.contains(&declaration.name) => {
                            format!("{}={MASK}", declaration.name)
                        }
                        Some(v) => format!("{}={v}", declaration.name),
                        None => declaration.name.clone(),
                    });
                    state.args.push((declaration.name.clone(), value));
                }
                state.history(format!("ARG {}", parts.join(" ")), false, created);
            }
            CommandKind::User(word) => {
                let user = self.expand(command, &word.value, state)?;
                state.history(format!("USER {user}"), false, created);
                state.config.config.user = user;
            }
            CommandKind::Volume(words) => {
                let mut volumes = Vec::new();
                for word in words {
                    let volume = self.expand(command, &word.value, state)?;
                    state.config.config.volumes.insert(volume.clone());
                    volumes.push(volume);
                }
                state.history(format!("VOLUME [{}]", volumes.join(" ")), false, created);
            }
            CommandKind::StopSignal(word) => {
                let signal = self.expand(command, &word.value, state)?;
                state.history(format!("STOPSIGNAL {signal}"), false, created);
                state.config.config.stop_signal = signal;
            }
            CommandKind::Expose(words) => {
                let mut ports = Vec::new();
                for word in words {
                    for port in self.expand_words(command, &word.value, state)? {
                        ports.extend(parse_port(&port).map_err(|e| self.located(command, e))?);
                    }
                }
                for port in &ports {
                    state.config.config.exposed_ports.insert(port.clone());
                }
                state.history(format!("EXPOSE [{}]", ports.join(" ")), false, created);
            }
            CommandKind::Cmd(line) => {
                let args = self.with_shell(state, &line.args, line.prepend_shell);
                state.history(format!("CMD {}", go_quote_list(&args)), false, created);
                state.config.config.cmd = Some(args);
                state.config.config.args_escaped = true;
                state.cmd_set = true;
            }
            CommandKind::Entrypoint(line) => {
                let args = self.with_shell(state, &line.args, line.prepend_shell);
                state.history(
                    format!("ENTRYPOINT {}", go_quote_list(&args)),
                    false,
                    created,
                );
                state.config.config.entrypoint = if args.is_empty() { None } else { Some(args) };
                if !state.cmd_set {
                    state.config.config.cmd = None;
                }
            }
            CommandKind::Shell(shell) => {
                state.config.config.shell = shell.clone();
                state.history(format!("SHELL [{}]", shell.join(" ")), false, created);
            }
            CommandKind::Onbuild(expression) => {
                state.config.config.on_build.push(expression.clone());
            }
            CommandKind::Healthcheck(health) => {
                let healthcheck = match health {
                    ParsedHealthcheck::None => Healthcheck {
                        test: vec!["NONE".to_owned()],
                        ..Healthcheck::default()
                    },
                    ParsedHealthcheck::Check {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => Healthcheck {
                        test: test.clone(),
                        interval: interval.as_nanos() as i64,
                        timeout: timeout.as_nanos() as i64,
                        start_period: start_period.as_nanos() as i64,
                        start_interval: start_interval.as_nanos() as i64,
                        retries: i64::from(*retries),
                    },
                };
                state.history(
                    format!("HEALTHCHECK {:?}", healthcheck.test),
                    false,
                    created,
                );
                state.config.config.healthcheck = Some(healthcheck);
            }
            CommandKind::Workdir(word) => {
                let path = self.expand(command, &word.value, state)?;
                let workdir = normalize_workdir(&state.config.config.working_dir, &path);
                state.config.config.working_dir = workdir.clone();
                if workdir == "/" {
                    state.history(format!("WORKDIR {workdir}"), false, created);
                    return Ok(false);
                }
                let name = format!("WORKDIR {workdir}");
                let owner = if state.config.config.user.is_empty() {
                    None
                } else {
                    Some(
                        resolve_owner(&state.config.config.user, &state.view())
                            .map_err(|e| self.located(command, e.to_string()))?,
                    )
                };
                let key = sha256_hex(&[&state.key, "WORKDIR", &workdir, &format!("{owner:?}")]);
                let view = state.view();
                let inputs = vec![
                    ("WORKDIR".to_owned(), workdir.clone()),
                    ("owner".to_owned(), format!("{owner:?}")),
                ];
                let ran = self.layer_step(
                    stage_index,
                    position,
                    total,
                    &name,
                    &key,
                    false,
                    no_cache,
                    inputs,
                    state,
                    |upper| {
                        if view
                            .lookup_follow(Path::new(&workdir))
                            .is_some_and(|f| f.metadata.is_dir())
                        {
                            return Ok(());
                        }
                        let owner = owner.unwrap_or(crate::users::Owner { uid: 0, gid: 0 });
                        crate::copy::ensure_dir(upper, Path::new(&workdir), &view, owner)
                            .map_err(|e| e.to_string())
                    },
                )?;
                state.history(name, true, created);
                return Ok(ran);
            }
            CommandKind::Run(run) => {
                return self.run_step(stage_index, position, total, command, run, state, no_cache);
            }
            CommandKind::Copy(copy) => {
                return self.copy_step(
                    stage_index,
                    position,
                    total,
                    command,
                    state,
                    no_cache,
                    CopyArgs {
                        is_add: false,
                        paths: &copy.paths,
                        from: copy.from.as_ref().map(|w| w.value.as_str()),
                        chown: copy.chown.as_ref().map(|w| w.value.as_str()),
                        chmod: copy.chmod.as_ref().map(|w| w.value.as_str()),
                        excludes: &copy.excludes,
                        link: copy.link,
                        parents: copy.parents,
                        unpack: Some(false),
                        checksum: None,
                        keep_git_dir: None,
                    },
                );
            }
            CommandKind::Add(add) => {
                return self.copy_step(
                    stage_index,
                    position,
                    total,
                    command,
                    state,
                    no_cache,
                    CopyArgs {
                        is_add: true,
                        paths: &add.paths,
                        from: None,
                        chown: add.chown.as_ref().map(|w| w.value.as_str()),
                        chmod: add.chmod.as_ref().map(|w| w.value.as_str()),
                        excludes: &add.excludes,
                        link: add.link,
                        parents: false,
                        unpack: add.unpack,
                        checksum: add.checksum.as_ref().map(|w| w.value.as_str()),
                        keep_git_dir: add.keep_git_dir,
                    },
                );
            }
        }
        Ok(false)
    }

    fn expand_pairs(
        &self,
        command: &Command,
        pairs: &[KeyValue],
        state: &StageState,
    ) -> Result<Vec<(String, String)>, BuildError> {
        pairs
            .iter()
            .map(|pair| {
                Ok((
                    self.expand(command, &pair.key.value, state)?,
                    self.expand(command, &pair.value.value, state)?,
                ))
            })
            .collect()
    }

    fn with_shell(&self, state: &StageState, args: &[String], prepend_shell: bool) -> Vec<String> {
        if !prepend_shell {
            return args.to_vec();
        }
        let mut full: Vec<String> = if state.config.config.shell.is_empty() {
            DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect()
        } else {
            state.config.config.shell.clone()
        };
        full.push(args.join(" "));
        full
    }

    fn start_step(
        &self,
        stage_index: usize,
        position: usize,
        total: usize,
        name: &str,
    ) -> (usize, Instant) {
        let id = self.step_ids.fetch_add(1, Ordering::Relaxed) + 1;
        self.engine.progress.event(Event::StepStarted {
            id,
            stage: self.plan.stages[stage_index].display_name.clone(),
            index: position,
            total,
            name: name.to_owned(),
        });
        (id, Instant::now())
    }

    /// Runs (or takes from the cache) a step that produces one layer. `fill` writes the
    /// layer's content into an empty directory: either as overlay "upper" output (with
    /// whiteouts) or as plain files. A `link`ed layer (`COPY --link`) does not depend on the
    /// layers below it: `key` must leave them out, and its diff is taken against nothing.
    #[allow(clippy::too_many_arguments)]
    fn layer_step(
        &self,
        stage_index: usize,
        position: usize,
        total: usize,
        name: &str,
        key: &str,
        link: bool,
        no_cache: bool,
        inputs: Vec<(String, String)>,
        state: &mut StageState,
        fill: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<bool, BuildError> {
        self.layer_step_with(
            stage_index,
            position,
            total,
            name,
            key,
            link,
            no_cache,
            inputs,
            state,
            |upper, _work, _id| fill(upper),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_step_with(
        &self,
        stage_index: usize,
        position: usize,
        total: usize,
        name: &str,
        key: &str,
        link: bool,
        no_cache: bool,
        inputs: Vec<(String, String)>,
        state: &mut StageState,
        fill: impl FnOnce(&Path, &Path, usize) -> Result<(), String>,
    ) -> Result<bool, BuildError> {
        let store = self.engine.store;
        let (id, started) = self.start_step(stage_index, position, total, name);
        // A linked layer is made on scratch, so its own key leaves out what lies below it; the
        // steps after it still depend on everything below, hence the combined chain key.
        let chain_key = if link {
            sha256_hex(&[&state.key, "link", key])
        } else {
            key.to_owned()
        };
        let lookup = if no_cache {
            Err("--no-cache".to_owned())
        } else {
            self.cached_layer(key)
        };
        // Remember this step's inputs at its place in the Dockerfile, and say what changed
        // since the last build when the cache misses.
        let place = sha256_hex(&[
            "step-inputs",
            &self
                .options
                .dockerfile_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            &self.plan.stages[stage_index].display_name,
            &position.to_string(),
        ]);
        let record = StepInputs {
            parent: state.key.clone(),
            inputs: inputs.into_iter().collect(),
        };
        let previous: Option<StepInputs> = self.engine.store.get_cache_json(&place).ok().flatten();
        // Written only when something changed: a cached rebuild should not touch the disk.
        if previous.as_ref() != Some(&record) {
            let _ = self.engine.store.put_cache_json(&place, &record);
        }
        let lookup = lookup.map_err(|reason| {
            if reason.starts_with("no cache record") {
                explain_miss(
                    previous.as_ref(),
                    &record,
                    state.layers.len() == state.base_layers,
                )
            } else {
                reason
            }
        });
        let miss_reason = match lookup {
            Ok((layer, snapshot)) => {
                self.steps_cached.fetch_add(1, Ordering::Relaxed);
                self.engine.progress.event(Event::StepFinished {
                    id,
                    status: StepStatus::Cached,
                    duration: started.elapsed(),
                    miss_reason: None,
                });
                state.push_layer(layer, snapshot, key, chain_key);
                return Ok(false);
            }
            Err(reason) => reason,
        };
        let finish = |status| {
            self.engine.progress.event(Event::StepFinished {
                id,
                status,
                duration: started.elapsed(),
                miss_reason: Some(miss_reason.clone()),
            });
        };
        let ingest = store.root().join("ingest");
        let scratch = tempfile::Builder::new()
            .prefix(&scratch_prefix("step"))
            .tempdir_in(&ingest)
            .map_err(|e| {
                BuildError::Other(format!(
                    "creating a step directory in {}: {e}",
                    ingest.display()
                ))
            })?;
        let upper = scratch.path().join("upper");
        let work = scratch.path().join("work");
        for dir in [&upper, &work] {
            std::fs::create_dir(dir)
                .map_err(|e| BuildError::Other(format!("{}: {e}", dir.display())))?;
        }
        if let Err(message) = fill(&upper, &work, id) {
            finish(StepStatus::Failed);
            return Err(BuildError::Other(message));
        }
        let lowers: &[PathBuf] = if link { &[] } else { &state.snapshots };
        let layer = self
            .commit_layer(&upper, lowers, name)
            .inspect_err(|_| finish(StepStatus::Failed))?;
        let snapshot = store
            .create_snapshot(&layer.diff_id, |content: &Path| {
                std::fs::rename(&upper, content)
            })
            .map_err(|e| BuildError::Other(format!("saving the layer snapshot: {e}")))?;
        store
            .put_cache_json(
                key,
                &CacheRecord {
                    layer: layer.clone(),
                },
            )
            .map_err(|e| BuildError::Other(format!("writing a cache record: {e}")))?;
        self.steps_run.fetch_add(1, Ordering::Relaxed);
        finish(StepStatus::Done);
        state.push_layer(layer, snapshot, key, chain_key);
        Ok(true)
    }

    /// The layer the cache record `key` names, with its snapshot. The blob comes from the
    /// store or, for records imported with `--cache-from`, from where they were imported; the
    /// snapshot is unpacked from the blob when missing (another machine made the record).
    /// `Err` is a cache miss, with its reason.
    fn cached_layer(&self, key: &str) -> Result<(LayerRef, PathBuf), String> {
        let store = self.engine.store;
        let record: CacheRecord = match store.get_cache_json(key) {
            Ok(Some(record)) => record,
            Ok(None) => return Err("no cache record for this step's inputs".to_owned()),
            Err(e) => return Err(format!("unreadable cache record: {e}")),
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
                    return Err(format!(
                        "the cached layer {} is neither in the store nor in an imported cache",
                        layer.digest.short()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "fetching the cached layer {}: {e}",
                        layer.digest.short()
                    ));
                }
            }
        }
        let snapshot = unpacked_snapshot(store, &layer.diff_id, &layer.digest)
            .map_err(|e| format!("unpacking the cached layer {}: {e}", layer.digest.short()))?;
        Ok((layer, snapshot))
    }

    /// Turns a step's upper directory into a layer blob in the store: a plain tar, written
    /// straight into the store and hashed on the way (its digest is the diff ID). Compression
    /// waits until the layer leaves the store ([`Store::compressed_layer`]): most builds never
    /// need it, and it is the slowest part of making a layer.
    fn commit_layer(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        name: &str,
    ) -> Result<LayerRef, BuildError> {
        let store = self.engine.store;
        let lower_dirs: Vec<PathBuf> = distinct_layers(lowers).into_iter().rev().collect();
        let source = DiffSource::OverlayUpper {
            upper,
            lower_dirs: &lower_dirs,
            xattr: store.overlay_xattr(),
        };
        let options = TarOptions {
            source_date_epoch: self.options.source_date_epoch,
        };
        let storing = |e: &dyn std::fmt::Display| {
            BuildError::Other(format!("storing the layer of {name}: {e}"))
        };
        let writer = store.blob_writer().map_err(|e| storing(&e))?;
        let blob = write_tar(&source, &options, writer)
            .map_err(|e| BuildError::Other(format!("writing the layer of {name}: {e}")))?
            .commit()
            .map_err(|e| storing(&e))?;
        Ok(LayerRef {
            diff_id: blob.digest.clone(),
            media_type: MEDIA_TYPE_TAR.to_owned(),
            digest: blob.digest,
            size: blob.size,
            uncompressed_size: Some(blob.size),
            created_by: name.to_owned(),
            created: Timestamp::now().map(|t| t.to_string()),
        })
    }

    fn prepare_mounts(
        &self,
        command: &Command,
        run: &stagecraft_dockerfile::RunCommand,
        state: &StageState,
        cwd: &str,
    ) -> Result<PreparedMounts, BuildError> {
        let store = self.engine.store;
        let mut prepared = PreparedMounts {
            mounts: Vec::new(),
            key: String::new(),
            env: Vec::new(),
            _scratch: Vec::new(),
            _locks: Vec::new(),
        };
        let scratch_dir = || {
            tempfile::Builder::new()
                .prefix(&scratch_prefix("mount"))
                .tempdir_in(store.root().join("ingest"))
                .map_err(|e| BuildError::Other(format!("creating a mount directory: {e}")))
        };
        let mut ssh_mounts = 0;
        // Each cache mount once, with the strongest access the step asks for: two locks on one
        // mount, one of them exclusive, would wait for each other forever.
        let mut cache_locks: BTreeMap<String, CacheMountAccess> = BTreeMap::new();
        for word in &run.mounts {
            // Errors show the value as written: an expanded one may hold a secret.
            let written = &word.value;
            // BuildKit expands each field's value after the CSV split; an expansion error
            // (a secret build argument, say) keeps its own message.
            let mut expansion_error = None;
            let parsed = parse_mount_with(written, &mut |value| {
                self.expand(command, value, state).map_err(|e| {
                    let message = e.to_string();
                    expansion_error = Some(e);
                    message
                })
            });
            if let Some(error) = expansion_error {
                return Err(error);
            }
            let spec =
                parsed.map_err(|e| self.located(command, format!("--mount={written}: {e}")))?;
            let target = |default: String| {
                let raw = spec.target.clone().unwrap_or(default);
                normalize_workdir(cwd, &raw)
            };
            match spec.kind {
                MountType::Cache => {
                    let id = spec.cache_id();
                    let dir = self.cache_mount_dir(command, &spec, &id, written)?;
                    let access = if spec.sharing == "locked" || spec.sharing == "private" {
                        CacheMountAccess::Exclusive
                    } else {
                        CacheMountAccess::Shared
                    };
                    let held = cache_locks.entry(id).or_insert(access);
                    *held = access.max(*held);
                    prepared.mounts.push(RunMount {
                        target: target(String::new()),
                        kind: RunMountKind::Bind {
                            source: dir,
                            readonly: spec.readonly,
                        },
                    });
                }
                MountType::Tmpfs => prepared.mounts.push(RunMount {
                    target: target(String::new()),
                    kind: RunMountKind::Tmpfs { size: spec.size },
                }),
                MountType::Bind => {
                    let source = spec.source.clone().unwrap_or_else(|| "/".to_owned());
                    let (view, origin): (MergedView, String) = match &spec.from {
                        Some(from) => self.source_view(from)?,
                        None => (
                            MergedView::new(vec![self.options.context_dir.clone()]),
                            "context".to_owned(),
                        ),
                    };
                    let copy_source = match &spec.from {
                        Some(_) => CopySource::Stage(view),
                        None => CopySource::Context {
                            view,
                            matcher: &self.matcher,
                            hashes: &self.context_hashes,
                        },
                    };
                    let sources = [source.clone()];
                    let copy_spec = CopySpec::as_is(&sources);
                    let plan = CopyPlan::resolve(&copy_source, &copy_spec, &MergedView::default())
                        .map_err(|e| self.located(command, format!("--mount={written}: {e}")))?;
                    let digest = plan
                        .content_digest()
                        .map_err(|e| self.located(command, e.to_string()))?;
                    prepared.key.push_str(&format!(
                        "bind {} {} {origin} {digest}\n",
                        target(String::new()),
                        spec.readonly
                    ));
                    // A private copy: `rw` changes are thrown away and the context stays untouched.
                    let copy = scratch_dir()?;
                    plan.write(copy.path(), &MergedView::default())
                        .map_err(|e| BuildError::Other(e.to_string()))?;
                    let single_file = plan_single_file(copy.path());
                    prepared.mounts.push(RunMount {
                        target: target(String::new()),
                        kind: RunMountKind::Bind {
                            source: single_file.unwrap_or_else(|| copy.path().to_owned()),
                            readonly: spec.readonly,
                        },
                    });
                    prepared._scratch.push(copy);
                }
                MountType::Secret => {
                    let id = spec.secret_id();
                    let Some(value) = self.options.secrets.get(&id) else {
                        if spec.required {
                            return Err(self.located(command, format!("secret {id} is required but was not provided (pass it with --secret id={id},src=FILE)")));
                        }
                        continue;
                    };
                    if let Some(name) = &spec.env {
                        prepared
                            .env
                            .push(format!("{name}={}", String::from_utf8_lossy(value)));
                        if spec.target.is_none() {
                            continue;
                        }
                    }
                    let dir = scratch_dir()?;
                    let file = dir.path().join("secret");
                    std::fs::write(&file, value)
                        .map_err(|e| BuildError::Other(format!("writing a secret file: {e}")))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(
                        &file,
                        std::fs::Permissions::from_mode(spec.mode.unwrap_or(0o400)),
                    )
                    .map_err(|e| BuildError::Other(e.to_string()))?;
                    std::os::unix::fs::chown(
                        &file,
                        Some(spec.uid.unwrap_or(0)),
                        Some(spec.gid.unwrap_or(0)),
                    )
                    .map_err(|e| BuildError::Other(e.to_string()))?;
                    prepared.mounts.push(RunMount {
                        target: target(format!("/run/secrets/{id}")),
                        kind: RunMountKind::Bind {
                            source: file,
                            readonly: true,
                        },
                    });
                    prepared._scratch.push(dir);
                }
                MountType::Ssh => {
                    let id = spec.id.clone().unwrap_or_else(|| "default".to_owned());
                    let Some(socket) = self.options.ssh.get(&id) else {
                        if spec.required {
                            return Err(self.located(command, format!("no SSH agent {id:?} was forwarded (pass it with --ssh {id}=$SSH_AUTH_SOCK)")));
                        }
                        continue;
                    };
                    // BuildKit numbers the default targets by the mount's place among the
                    // ssh mounts, and points SSH_AUTH_SOCK at the first one.
                    let target = target(format!("/run/buildkit/ssh_agent.{ssh_mounts}"));
                    ssh_mounts += 1;
                    if ssh_mounts == 1 {
                        prepared.env.push(format!("SSH_AUTH_SOCK={target}"));
                    }
                    prepared.mounts.push(RunMount {
                        target,
                        kind: RunMountKind::Bind {
                            source: socket.clone(),
                            readonly: false,
                        },
                    });
                }
            }
        }
        // In id order, so that steps running in parallel cannot each hold a mount the other
        // waits for.
        for (id, access) in cache_locks {
            let lock = store
                .lock_cache_mount(&id, access)
                .map_err(|e| BuildError::Other(format!("locking cache mount {id:?}: {e}")))?;
            prepared._locks.push(lock);
        }
        Ok(prepared)
    }

    /// The directory of cache mount `id`, made on first use: with the mount's `mode`, `uid` and
    /// `gid`, and seeded from `from=` (and `source=`, a path in it), which BuildKit uses as a
    /// new cache's initial content.
    fn cache_mount_dir(
        &self,
        command: &Command,
        spec: &MountSpec,
        id: &str,
        written: &str,
    ) -> Result<PathBuf, BuildError> {
        let store = self.engine.store;
        let store_error =
            |e: stagecraft_store::Error| BuildError::Other(format!("cache mount {id:?}: {e}"));
        if let Some(dir) = store.use_cache_mount(id).map_err(store_error)? {
            return Ok(dir);
        }
        let fresh = store.new_cache_mount(id).map_err(store_error)?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            fresh.path(),
            std::fs::Permissions::from_mode(spec.mode.unwrap_or(0o755)),
        );
        let _ = std::os::unix::fs::chown(
            fresh.path(),
            Some(spec.uid.unwrap_or(0)),
            Some(spec.gid.unwrap_or(0)),
        );
        if let Some(from) = &spec.from {
            let (view, _) = self.source_view(from)?;
            let sources = [spec.source.clone().unwrap_or_else(|| "/".to_owned())];
            let seed = CopySpec::as_is(&sources);
            CopyPlan::resolve(&CopySource::Stage(view), &seed, &MergedView::default())
                .and_then(|plan| plan.write(fresh.path(), &MergedView::default()))
                .map_err(|e| {
                    self.located(
                        command,
                        format!("--mount={written}: seeding the cache: {e}"),
                    )
                })?;
        }
        fresh.install().map_err(store_error)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        stage_index: usize,
        position: usize,
        total: usize,
        command: &Command,
        run: &stagecraft_dockerfile::RunCommand,
        state: &mut StageState,
        no_cache: bool,
    ) -> Result<bool, BuildError> {
        let mut args = run.command.args.clone();
        if let Some(first) = run.command.heredocs.first() {
            args = heredoc_command(&args, &run.command.heredocs, first);
        }
        let args = self.with_shell(state, &args, run.command.prepend_shell);
        let env = state.scope.env_list();
        let cwd = if state.config.config.working_dir.is_empty() {
            "/".to_owned()
        } else {
            state.config.config.working_dir.clone()
        };
        let user = state.config.config.user.clone();
        let args_json = serde_json::to_string(&args).unwrap_or_default();
        let env_json = serde_json::to_string(&env).unwrap_or_default();
        let network = self.run_network(command, run)?;
        let prepared = self.prepare_mounts(command, run, state, &cwd)?;
        let key = sha256_hex(&[
            &state.key,
            "RUN",
            &args_json,
            &env_json,
            &cwd,
            &user,
            network_key(network),
            &prepared.key,
        ]);
        let mut run_env = env.clone();
        for entry in &prepared.env {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            add_env(&mut run_env, key, value);
        }
        let name = format!(
            "RUN {}",
            args.last().map(String::as_str).unwrap_or_default()
        );
        let history = format!(
            "RUN {} # buildkit",
            run_command_string(&args, &state.args, &state.scope, &self.options.secret_args)
        );
        let lowers = distinct_layers(&state.snapshots);
        let progress = self.engine.progress;
        let runner = self.engine.runner;
        let tail: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
        let mut inputs = vec![
            ("command".to_owned(), args.join(" ")),
            ("working directory".to_owned(), cwd.clone()),
            ("user".to_owned(), user.clone()),
            ("network".to_owned(), network_key(network).to_owned()),
            ("mounts".to_owned(), prepared.key.clone()),
        ];
        inputs.extend(env.iter().map(|entry| {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            let shown = if self.options.secret_args.contains(name) {
                // Enough to say it changed, without keeping the value in the store.
                format!(
                    "secret {}",
                    &sha256_hex(&["secret build argument", value])[..12]
                )
            } else {
                value.to_owned()
            };
            (format!("variable {name}"), shown)
        }));
        let ran = self.layer_step_with(
            stage_index,
            position,
            total,
            &name,
            &key,
            false,
            no_cache,
            inputs,
            state,
            |upper, work, id| {
                let request = RunRequest {
                    lower_dirs: &lowers,
                    upper_dir: upper,
                    work_dir: work,
                    args: &args,
                    env: &run_env,
                    cwd: &cwd,
                    user: &user,
                    network,
                    mounts: &prepared.mounts,
                };
                let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
                let mut emit = |stream: Stream, bytes: &[u8]| {
                    let buffer = &mut pending[usize::from(stream == Stream::Stderr)];
                    buffer.extend_from_slice(bytes);
                    while let Some(newline) = buffer.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=newline).collect();
                        let line = self.mask(&String::from_utf8_lossy(&line[..line.len() - 1]));
                        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                        tail.push_back(line.clone());
                        if tail.len() > 20 {
                            tail.pop_front();
                        }
                        progress.event(Event::Log { id, stream, line });
                    }
                };
                let code = runner.run(&request, &mut emit)?;
                for (i, rest) in pending.iter().enumerate() {
                    if !rest.is_empty() {
                        let line = self.mask(&String::from_utf8_lossy(rest));
                        tail.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_back(line.clone());
                        progress.event(Event::Log {
                            id,
                            stream: if i == 0 {
                                Stream::Stdout
                            } else {
                                Stream::Stderr
                            },
                            line,
                        });
                    }
                }
                if code != 0 {
                    return Err(format!("exit code: {code}"));
                }
                Ok(())
            },
        );
        let ran = ran.map_err(|error| match error {
            BuildError::Other(message) => {
                let tail: Vec<String> = tail
                    .into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .into_iter()
                    .collect();
                let mut text = format!(
                    "process {} did not complete successfully: {message}",
                    go_quote_list(&args)
                );
                if !tail.is_empty() {
                    text.push_str("\n  output (last lines):\n");
                    for line in tail {
                        text.push_str(&format!("    {line}\n"));
                    }
                }
                self.located(command, text)
            }
            other => other,
        })?;
        state.history(history, true, &self.created);
        Ok(ran)
    }

    /// `ADD --checksum`, checked as BuildKit checks it: one source, and that a URL.
    fn add_checksum(
        &self,
        command: &Command,
        state: &StageState,
        args: &CopyArgs<'_>,
        sources: &[String],
        urls: &[String],
    ) -> Result<Option<crate::remote::Checksum>, BuildError> {
        let Some(raw) = args.checksum else {
            return Ok(None);
        };
        let value = self.expand(command, raw, state)?;
        if sources.len() > 1 {
            return Err(self.located(
                command,
                "checksum can't be specified for multiple sources: use one ADD per URL",
            ));
        }
        if urls.is_empty() {
            return Err(self.located(
                command,
                "checksum requires HTTP(S) or Git sources: a local file's content is already known",
            ));
        }
        crate::remote::Checksum::parse(&value)
            .map(Some)
            .map_err(|e| self.located(command, format!("--checksum: {e}")))
    }

    /// For `ADD <git repository> <dest>`: checks the repository out into a fresh directory of
    /// the store's ingest area and returns it (keep it alive while copying) with the checkout
    /// and the path to copy from it. `None` when no source is a repository. Like BuildKit, the
    /// repository is fetched on every build: only its content tells whether the cache holds.
    fn checkout_git_source(
        &self,
        command: &Command,
        state: &StageState,
        args: &CopyArgs<'_>,
        sources: &[String],
    ) -> Result<(Option<tempfile::TempDir>, Option<GitCheckout>), BuildError> {
        let Some((index, parsed)) = sources
            .iter()
            .enumerate()
            .find_map(|(i, s)| crate::git::parse(s).map(|parsed| (i, parsed)))
        else {
            return Ok((None, None));
        };
        let mut git = parsed.map_err(|e| self.located(command, e))?;
        if !args.is_add {
            return Err(self.located(
                command,
                format!(
                    "source can't be a git ref for COPY: {} (use ADD)",
                    sources[index]
                ),
            ));
        }
        if sources.len() > 1 {
            return Err(self.located(
                command,
                "ADD of a git repository takes that one source: use one ADD per repository",
            ));
        }
        if let Some(raw) = args.checksum {
            let checksum = self.expand(command, raw, state)?;
            if git.checksum.as_ref().is_some_and(|c| *c != checksum) {
                return Err(self.located(
                    command,
                    format!(
                        "checksum mismatch {:?} != {checksum:?}",
                        git.checksum.unwrap_or_default()
                    ),
                ));
            }
            git.checksum = Some(checksum);
        }
        let keep_git_dir = match (args.keep_git_dir, git.keep_git_dir) {
            (Some(flag), Some(query)) if flag != query => {
                return Err(self.located(command, "inconsistent keep-git-dir configuration"));
            }
            (flag, query) => flag.or(query).unwrap_or(false),
        };
        let ingest = self.engine.store.root().join("ingest");
        let scratch = tempfile::Builder::new()
            .prefix(&scratch_prefix("git"))
            .tempdir_in(&ingest)
            .map_err(|e| {
                BuildError::Other(format!("creating a directory in {}: {e}", ingest.display()))
            })?;
        let checkout = scratch.path().join("repository");
        let commit = git
            .checkout(&checkout, keep_git_dir)
            .map_err(|e| self.located(command, format!("ADD {}: {e}", sources[index])))?;
        self.engine.progress.event(Event::Info {
            message: format!(
                "git: {} at {} is commit {commit}",
                git.remote,
                git.reference.as_deref().unwrap_or("HEAD")
            ),
            context_files: None,
        });
        let path = match &git.subdir {
            Some(subdir) => format!("/{subdir}"),
            None => "/".to_owned(),
        };
        let checkout = GitCheckout {
            dir: checkout,
            path,
            commit,
            keep_git_dir,
        };
        Ok((Some(scratch), Some(checkout)))
    }

    /// Downloads `ADD`'s URL sources into a fresh directory of the store's ingest area (none
    /// for no URLs). BuildKit fetches them on every build too, since only the content tells
    /// whether the cached layer still holds.
    fn download_sources(
        &self,
        command: &Command,
        keyword: &str,
        urls: &[String],
        checksum: Option<&crate::remote::Checksum>,
    ) -> Result<(Option<tempfile::TempDir>, Vec<crate::remote::Download>), BuildError> {
        if urls.is_empty() {
            return Ok((None, Vec::new()));
        }
        let root = tempfile::Builder::new()
            .prefix("download-")
            .tempdir_in(self.engine.store.root().join("ingest"))
            .map_err(|e| BuildError::Other(format!("creating a download directory: {e}")))?;
        let mut downloads = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            // One directory per URL: two URLs may end in the same file name.
            let dir = root.path().join(i.to_string());
            std::fs::create_dir(&dir)
                .map_err(|e| BuildError::Other(format!("{}: {e}", dir.display())))?;
            let download = crate::remote::download(url, &dir, checksum).map_err(|e| {
                let pinned = matches!(e, crate::remote::DownloadError::Checksum { .. });
                let error = ParseError::new(
                    &self.file.source,
                    command.location.span,
                    format!("{keyword} failed: {e}"),
                );
                BuildError::Step(if pinned {
                    error.with_hint("the server now sends other content than --checksum pins; if that is expected, put the new digest in --checksum")
                } else {
                    error
                })
            })?;
            downloads.push(download);
        }
        Ok((Some(root), downloads))
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &self,
        stage_index: usize,
        position: usize,
        total: usize,
        command: &Command,
        state: &mut StageState,
        no_cache: bool,
        args: CopyArgs<'_>,
    ) -> Result<bool, BuildError> {
        let keyword = if args.is_add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for source in &args.paths.sources {
            sources.push(self.expand(command, &source.value, state)?);
        }
        // The checkout must outlive the layer's writing, which copies from it.
        let (_git_dir, git) = self.checkout_git_source(command, state, &args, &sources)?;
        let (urls, locals): (Vec<String>, Vec<String>) = match &git {
            // The repository (or its subdirectory) is copied as a directory: its content.
            Some(checkout) => (Vec::new(), vec![checkout.path.clone()]),
            None => sources
                .iter()
                .cloned()
                .partition(|s| crate::remote::is_url(s)),
        };
        if !urls.is_empty() && !args.is_add {
            return Err(self.located(
                command,
                format!(
                    "source can't be a URL for COPY: {} (use ADD to download it)",
                    urls[0]
                ),
            ));
        }
        let checksum = match git {
            Some(_) => None,
            None => self.add_checksum(command, state, &args, &sources, &urls)?,
        };
        let dest_raw = self.expand(command, &args.paths.dest.value, state)?;
        let dest = destination(&state.config.config.working_dir, &dest_raw);
        let view = state.view();
        let owner = match args.chown {
            Some(chown) => {
                let chown = self.expand(command, chown, state)?;
                Some(
                    resolve_owner(&chown, &view)
                        .map_err(|e| self.located(command, e.to_string()))?,
                )
            }
            None => None,
        };
        let chmod = match args.chmod {
            Some(chmod) => {
                let chmod = self.expand(command, chmod, state)?;
                Some(u32::from_str_radix(&chmod, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
                    self.located(command, format!("invalid chmod parameter: '{chmod}'. it should be octal string and between 0 and 07777"))
                })?)
            }
            None => None,
        };
        let excludes: Vec<String> = args
            .excludes
            .iter()
            .map(|w| self.expand(command, &w.value, state))
            .collect::<Result<_, _>>()?;
        // The directory must outlive the layer's writing, which copies from it.
        let (_download_dir, downloads) =
            self.download_sources(command, keyword, &urls, checksum.as_ref())?;
        let (source, source_key) = match (args.from, &git) {
            (_, Some(checkout)) => (
                CopySource::Stage(MergedView::new(vec![checkout.dir.clone()])),
                "git".to_owned(),
            ),
            (None, None) if !args.paths.inline.is_empty() && locals.is_empty() => {
                let docs = args
                    .paths
                    .inline
                    .iter()
                    .map(|doc| {
                        let data = if doc.expand {
                            self.expand(command, &doc.data, state)?
                        } else {
                            doc.data.clone()
                        };
                        Ok((doc.path.clone(), data))
                    })
                    .collect::<Result<Vec<_>, BuildError>>()?;
                (CopySource::Inline(docs), "inline".to_owned())
            }
            (None, None) => (
                CopySource::Context {
                    view: MergedView::new(vec![self.options.context_dir.clone()]),
                    matcher: &self.matcher,
                    hashes: &self.context_hashes,
                },
                "context".to_owned(),
            ),
            (Some(from), None) => {
                let (view, key) = self.source_view(from)?;
                (CopySource::Stage(view), key)
            }
        };
        let spec = CopySpec {
            sources: &locals,
            dest: dest.clone(),
            owner,
            chmod,
            excludes: &excludes,
            unpack_archives: args.is_add && args.unpack.unwrap_or(true),
            parents: args.parents,
            // `--chmod` applies to downloads too, as in BuildKit since dockerfile 1.3 (the
            // frontend in docker 20.10 left them 0600: moby/buildkit#2114).
            downloads: &downloads,
            // BuildKit never unpacks a remote archive unless `--unpack` says so.
            unpack_downloads: args.unpack == Some(true),
            normalize_modes: self.options.cache_normalize_mode,
        };
        // `--link` copies onto scratch (BuildKit merges the result on top): the destination
        // is resolved and written without the stage below, and the key leaves it out, so a
        // changed base keeps the layer cached.
        let dest_view = if args.link {
            MergedView::default()
        } else {
            view
        };
        let plan = CopyPlan::resolve(&source, &spec, &dest_view)
            .map_err(|e| self.located(command, format!("{keyword} failed: {e}")))?;
        let mut entries = plan
            .entries()
            .map_err(|e| self.located(command, e.to_string()))?;
        if let Some(checkout) = git.as_ref().filter(|c| c.keep_git_dir) {
            // A kept `.git` holds checkout times (index, logs): it is keyed by its commit.
            entries.retain(|(path, _)| !path.contains("/.git/") && !path.ends_with("/.git"));
            entries.push(("git commit".to_owned(), checkout.commit.clone()));
        }
        let digest = crate::copy::digest_of_entries(&entries);
        let source_kind = source_key.split(' ').next().unwrap_or_default().to_owned();
        let parent_key = if args.link { "" } else { state.key.as_str() };
        let key = sha256_hex(&[
            parent_key,
            keyword,
            &dest,
            &format!("{owner:?}"),
            &format!("{chmod:?}"),
            &source_kind,
            &digest,
            &args.link.to_string(),
            // The mtime of a download comes from `Last-Modified`, which the content digest
            // leaves out; BuildKit keys on it as well.
            &downloads
                .iter()
                .map(|d| d.last_modified.as_deref().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n"),
        ]);
        let mut message = keyword.to_owned();
        if let Some(chown) = args.chown {
            message.push_str(&format!(" --chown={chown}"));
        }
        if let Some(chmod) = args.chmod {
            message.push_str(&format!(" --chmod={chmod}"));
        }
        for source in &sources {
            message.push_str(&format!(" {source}"));
        }
        for doc in &args.paths.inline {
            message.push_str(&format!(" <<{}", doc.path));
        }
        message.push_str(&format!(" {}", args.paths.dest.value));
        let name = match args.from {
            Some(from) => format!("{keyword} --from={from} {} {dest_raw}", sources.join(" ")),
            None => format!("{keyword} {} {dest_raw}", sources.join(" ")),
        };
        let mut inputs = vec![("instruction".to_owned(), name.clone())];
        inputs.extend(entries.into_iter().map(|(path, description)| {
            (
                format!("file {path}"),
                sha256_hex(&[&description])[..12].to_owned(),
            )
        }));
        let ran = self.layer_step(
            stage_index,
            position,
            total,
            &name,
            &key,
            args.link,
            no_cache,
            inputs,
            state,
            |upper| plan.write(upper, &dest_view).map_err(|e| e.to_string()),
        )?;
        state.history(format!("{message} # buildkit"), true, &self.created);
        Ok(ran)
    }
}

/// The parts of `COPY` and `ADD` the copy step needs.
struct CopyArgs<'a> {
    is_add: bool,
    paths: &'a stagecraft_dockerfile::SourcesAndDest,
    from: Option<&'a str>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    excludes: &'a [stagecraft_dockerfile::Word],
    link: bool,
    /// `COPY --parents`.
    parents: bool,
    /// `ADD --unpack`: `None` means unpack local archives (the default) and never remote ones.
    unpack: Option<bool>,
    /// `ADD --checksum`, unexpanded.
    checksum: Option<&'a str>,
    /// `ADD --keep-git-dir`.
    keep_git_dir: Option<bool>,
}

/// A repository `ADD` checked out.
struct GitCheckout {
    /// The checkout.
    dir: PathBuf,
    /// What to copy from it: `/` or `/<subdir>`.
    path: String,
    /// The commit checked out.
    commit: String,
    /// Whether `.git` is part of the copy.
    keep_git_dir: bool,
}

/// Mounts prepared for one `RUN`, with what must stay alive while it runs.
struct PreparedMounts {
    mounts: Vec<RunMount>,
    /// What the mounts contribute to the cache key (bind mount contents only: caches, tmpfs
    /// and secrets never change the key).
    key: String,
    /// `KEY=VALUE` for the command only (never in the key or the image): secrets exposed as
    /// environment variables, `SSH_AUTH_SOCK`.
    env: Vec<String>,
    /// Temporary directories holding copies and secret files, removed after the run.
    _scratch: Vec<tempfile::TempDir>,
    /// Locks of the cache mounts (shared or exclusive, by their `sharing`), released after the
    /// run.
    _locks: Vec<CacheMountLock>,
}

/// The layer directories to stack, bottom first, with repeats removed: a layer that occurs twice
/// (two steps that changed nothing give the same empty layer) is kept at its topmost place only.
/// That is the same filesystem — the upper copy re-applies everything the lower one did — and
/// overlayfs refuses a lower directory given twice.
fn distinct_layers(snapshots: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut topmost_first: Vec<PathBuf> = snapshots
        .iter()
        .rev()
        .filter(|dir| seen.insert((*dir).clone()))
        .cloned()
        .collect();
    topmost_first.reverse();
    topmost_first
}

/// A step's inputs as last built at one place of the Dockerfile, to explain the next miss.
#[derive(PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StepInputs {
    /// The cache key of the filesystem below the step.
    parent: String,
    /// Named inputs: the instruction, variables, files with short content digests.
    inputs: BTreeMap<String, String>,
}

/// Says which input changed since the previous build of the same step.
fn explain_miss(
    previous: Option<&StepInputs>,
    current: &StepInputs,
    first_own_layer: bool,
) -> String {
    let Some(previous) = previous else {
        return "first build of this step".to_owned();
    };
    let short = |value: &str| {
        let value: String = value.chars().take(48).collect();
        if value.is_empty() {
            "(empty)".to_owned()
        } else {
            value
        }
    };
    let mut changes: Vec<String> = Vec::new();
    for (name, value) in &current.inputs {
        match previous.inputs.get(name) {
            None => changes.push(format!("{name} added ({})", short(value))),
            Some(old) if old != value => {
                changes.push(format!("{name}: {} -> {}", short(old), short(value)))
            }
            Some(_) => {}
        }
    }
    for name in previous
        .inputs
        .keys()
        .filter(|k| !current.inputs.contains_key(*k))
    {
        changes.push(format!("{name} removed"));
    }
    if !changes.is_empty() {
        let more = changes.len().saturating_sub(5);
        changes.truncate(5);
        if more > 0 {
            changes.push(format!("and {more} more"));
        }
        return changes.join("; ");
    }
    if previous.parent != current.parent {
        return if first_own_layer {
            "the base image changed".to_owned()
        } else {
            "an earlier step changed".to_owned()
        };
    }
    "same inputs as last time, but the cache record is gone (pruned?)".to_owned()
}

/// A bind mount of a single file: the copy holds exactly one regular file, mount that file.
fn plan_single_file(dir: &Path) -> Option<PathBuf> {
    let mut entries = std::fs::read_dir(dir).ok()?;
    let first = entries.next()?.ok()?;
    (entries.next().is_none() && first.file_type().ok()?.is_file()).then(|| first.path())
}

/// The name prefix of this process's scratch directories in the store's `ingest/`: it carries
/// the process id, so an interrupted build can remove exactly its own (see
/// [`remove_scratch_dirs`]).
fn scratch_prefix(kind: &str) -> String {
    format!("{kind}-{}-", std::process::id())
}

/// Removes the scratch directories this process created under `ingest` (for a build that was
/// interrupted: the normal path removes them as it goes).
pub fn remove_scratch_dirs(ingest: &Path) {
    let own = [scratch_prefix("step"), scratch_prefix("mount")];
    for entry in std::fs::read_dir(ingest).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if own
            .iter()
            .any(|prefix| name.to_string_lossy().starts_with(prefix.as_str()))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Instructions that produce a layer (and a numbered step in the progress view).
fn changes_filesystem(kind: &CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::Run(_) | CommandKind::Copy(_) | CommandKind::Add(_) | CommandKind::Workdir(_)
    )
}

/// BuildKit's heredoc handling for `RUN`: a lone heredoc becomes the script itself; otherwise
/// the heredocs are appended to the command for the shell to read.
fn heredoc_command(
    args: &[String],
    heredocs: &[stagecraft_dockerfile::Heredoc],
    first: &stagecraft_dockerfile::Heredoc,
) -> Vec<String> {
    let Some(command) = args.first() else {
        return args.to_vec();
    };
    if heredocs.len() == 1
        && stagecraft_dockerfile::heredoc::parse_marker(command)
            .ok()
            .flatten()
            .is_some()
    {
        let data = if first.chomp {
            first.chomped_content()
        } else {
            first.content.clone()
        };
        return vec![data];
    }
    let mut script = command.clone();
    for heredoc in heredocs {
        script.push('\n');
        script.push_str(&heredoc.content);
        script.push_str(&heredoc.name);
    }
    vec![script]
}

/// BuildKit's `runCommandString`: `|N ARG=value … cmd`.
fn run_command_string(
    args: &[String],
    declared: &[(String, Option<String>)],
    scope: &Scope,
    secret_args: &BTreeSet<String>,
) -> String {
    use stagecraft_shell::EnvGetter;
    let mut env: Vec<String> = Vec::new();
    for (name, value) in declared {
        let value = if secret_args.contains(name) {
            MASK.to_owned()
        } else {
            scope
                .get(name)
                .map(str::to_owned)
                .or_else(|| value.clone())
                .unwrap_or_default()
        };
        let entry = format!("{name}={value}");
        match env
            .iter()
            .position(|e| e.split_once('=').map(|(k, _)| k) == Some(name.as_str()))
        {
            Some(i) => env[i] = entry,
            None => env.push(entry),
        }
    }
    let mut parts = Vec::new();
    if !env.is_empty() {
        parts.push(format!("|{}", env.len()));
        parts.extend(env);
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// The values to mask in output: secret build arguments and `--secret`s (as text, without a
/// trailing newline), longest first so a value containing another is masked whole.
fn secret_values(options: &BuildOptions) -> Vec<String> {
    let args = options
        .secret_args
        .iter()
        .filter_map(|name| options.plan.build_args.get(name).cloned());
    let secrets = options.secrets.values().filter_map(|bytes| {
        std::str::from_utf8(bytes)
            .ok()
            .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
    });
    let mut values: Vec<String> = args.chain(secrets).filter(|v| !v.is_empty()).collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// `line` with every occurrence of each of `values` replaced by [`MASK`].
fn mask_secrets(line: &str, values: &[String]) -> String {
    values.iter().fold(line.to_owned(), |line, value| {
        line.replace(value.as_str(), MASK)
    })
}

/// Gives history entries without a time one, as BuildKit's image exporter does: an entry before
/// the first new layer gets that layer's time, a later one the time of the layer before it.
/// Returns the image's creation time: the last entry's.
fn fill_history_times(history: &mut [History]) -> Option<String> {
    // The first time after the first entry without one, else the last time there is.
    let mut created: Option<String> = None;
    let mut seen_untimed = false;
    for entry in history.iter() {
        match &entry.created {
            Some(time) => {
                created = Some(time.clone());
                if seen_untimed {
                    break;
                }
            }
            None => seen_untimed = true,
        }
    }
    let mut seen_untimed = false;
    for entry in history.iter_mut() {
        match &entry.created {
            Some(time) if seen_untimed => created = Some(time.clone()),
            Some(_) => {}
            None => {
                seen_untimed = true;
                entry.created = created.clone();
            }
        }
    }
    history.last().and_then(|entry| entry.created.clone())
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quote_list(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| stagecraft_dockerfile::go_quote(a))
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// BuildKit's `addEnv`: replace in place or append.
fn add_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter()
        .position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(i) => env[i] = entry,
        None => env.push(entry),
    }
}

/// `WORKDIR`: relative paths join the current directory; the result is clean and absolute.
fn normalize_workdir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", if current.is_empty() { "/" } else { current })
    };
    let clean: PathBuf = crate::rootfs::clean_components(Path::new(&joined))
        .iter()
        .collect();
    format!("/{}", clean.display())
}

/// `COPY` destination: relative to the working directory, trailing `/` kept.
fn destination(workdir: &str, dest: &str) -> String {
    let trailing = dest.ends_with('/') || dest == "." || dest.is_empty() || dest.ends_with("/.");
    let mut normalized = normalize_workdir(workdir, dest);
    if trailing && !normalized.ends_with('/') {
        normalized.push('/');
    }
    normalized
}

/// `EXPOSE` port specs → `port/proto` entries (ranges expanded), as BuildKit parses them.
fn parse_port(raw: &str) -> Result<Vec<String>, String> {
    let (port_part, proto) = match raw.split_once('/') {
        Some((port, proto)) => (port, proto.to_lowercase()),
        None => (raw, "tcp".to_owned()),
    };
    if proto.is_empty() {
        return Err(format!("invalid port: {raw:?}: no protocol"));
    }
    // `[ip:][hostPort:]containerPort`: only the container port counts.
    let container = port_part.rsplit(':').next().unwrap_or(port_part);
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|p| *p <= 65535)
            .ok_or_else(|| format!("invalid containerPort: {container}"))
    };
    let (start, end) = match container.split_once('-') {
        Some((a, b)) if a != b => (number(a)?, number(b)?),
        Some((a, _)) => (number(a)?, number(a)?),
        None => (number(container)?, number(container)?),
    };
    if end < start {
        return Err(format!("invalid port range: {container}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
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

    #[test]
    fn workdir_and_destination_paths() {
        assert_eq!(normalize_workdir("", "app"), "/app");
        assert_eq!(normalize_workdir("/src", "../lib/./x"), "/lib/x");
        assert_eq!(normalize_workdir("/src", "/abs/"), "/abs");
        assert_eq!(destination("/app", "."), "/app/");
        assert_eq!(destination("/app", "bin/"), "/app/bin/");
        assert_eq!(destination("", "/out/file"), "/out/file");
    }

    #[test]
    fn ports_like_buildkit() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(parse_port("127.0.0.1:8080:80").unwrap(), ["80/tcp"]);
        assert!(parse_port("http").is_err());
        assert!(parse_port("70000").is_err());
    }

    #[test]
    fn history_times_are_filled_like_buildkit() {
        let entry = |created: Option<&str>| History {
            created: created.map(str::to_owned),
            ..History::default()
        };
        // base entry, ENV, layer at t2, LABEL, layer at t3, CMD
        let mut history = vec![
            entry(Some("t0")),
            entry(None),
            entry(Some("t2")),
            entry(None),
            entry(Some("t3")),
            entry(None),
        ];
        let created = fill_history_times(&mut history);
        let times: Vec<_> = history.iter().map(|h| h.created.as_deref()).collect();
        assert_eq!(
            times,
            [
                Some("t0"),
                Some("t2"),
                Some("t2"),
                Some("t2"),
                Some("t3"),
                Some("t3")
            ]
        );
        assert_eq!(created.as_deref(), Some("t3"));
        // Nothing but metadata on a base: the base's last time.
        let mut history = vec![entry(Some("t0")), entry(Some("t1")), entry(None)];
        assert_eq!(fill_history_times(&mut history).as_deref(), Some("t1"));
    }

    #[test]
    fn run_history_lists_build_args() {
        let mut scope = Scope::default();
        scope.set("V", "2");
        let declared = vec![
            ("V".to_owned(), Some("1".to_owned())),
            ("W".to_owned(), None),
        ];
        assert_eq!(
            run_command_string(
                &["/bin/sh".into(), "-c".into(), "make".into()],
                &declared,
                &scope,
                &BTreeSet::new()
            ),
            "|2 V=2 W= /bin/sh -c make"
        );
        assert_eq!(
            run_command_string(
                &["/bin/sh".into(), "-c".into(), "make".into()],
                &declared,
                &scope,
                &BTreeSet::from(["V".to_owned()])
            ),
            "|2 V=**** W= /bin/sh -c make"
        );
        assert_eq!(
            mask_secrets(
                "token=abc-secret, again abc-secret; abc",
                &["abc-secret".into(), "abc".into()]
            ),
            "token=****, again ****; ****"
        );
        assert_eq!(
            go_quote_list(&["a b".into(), "c\"".into()]),
            r#"["a b" "c\""]"#
        );
    }
}
