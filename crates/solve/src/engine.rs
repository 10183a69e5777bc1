//! Runs a build plan: each needed stage on its own thread once the stages it needs are done,
//! every step looked up in the content-addressed cache first.

use crate::cache::key::CacheKey;
use crate::cache::step::distinct_layers;
use crate::context_index::ContextHashes;
use crate::convert::config::{
    add_env, fill_history_times, go_quote_list, heredoc_command, normalize_workdir,
    run_command_string,
};
use crate::convert::dispatch::secret_values;
use crate::copy::{CopyPlan, CopySource, CopySpec};
use crate::mounts::{MountSpec, MountType, parse_mount_with};
use crate::progress::{Event, ProgressSink, SkipReason, Stream};
use crate::rootfs::MergedView;
use crate::scheduler::StageSlot;
use stagecraft_dockerfile::{Command, Dockerfile, ParseError};
use stagecraft_dockerignore::PatternMatcher;
use stagecraft_image::{Descriptor, Digest, History, ImageConfig, Platform, Timestamp};
use stagecraft_plan::{Plan, PlanError, PlanOptions, Scope};
use stagecraft_shell::Lexer;
use stagecraft_store::{CacheMountAccess, CacheMountLock, Image, ManifestFormat, Store};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// `created_by` comment BuildKit puts on every history entry.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";
/// The `PATH` BuildKit gives images that have none (`system.DefaultPathEnv`).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The shell used for shell-form commands when the image sets none.
pub(crate) const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

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
}

/// What the history and progress show instead of a secret value.
pub(crate) const MASK: &str = "****";

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
    /// `default`, `none` or `host`.
    pub network: &'a str,
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
pub(crate) struct StageState {
    pub(crate) config: ImageConfig,
    pub(crate) scope: Scope,
    /// `ARG`s declared in the stage so far, for `RUN`'s history text.
    pub(crate) args: Vec<(String, Option<String>)>,
    pub(crate) layers: Vec<LayerRef>,
    /// The cache key of the step that made each layer (`None` for base image layers),
    /// parallel to `layers`: what an exported cache records.
    pub(crate) layer_keys: Vec<Option<String>>,
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

impl BuildRun<'_> {
    pub(crate) fn prepare_mounts(
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
    pub(crate) fn cache_mount_dir(
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
    pub(crate) fn run_step(
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
        let prepared = self.prepare_mounts(command, run, state, &cwd)?;
        let key = CacheKey::new("RUN")
            .text("parent", &state.key)
            .text("args", &args_json)
            .text("env", &env_json)
            .text("cwd", &cwd)
            .text("user", &user)
            .text("network", &run.network)
            .text("mounts", &prepared.key)
            .finish();
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
            ("network".to_owned(), run.network.clone()),
            ("mounts".to_owned(), prepared.key.clone()),
        ];
        inputs.extend(env.iter().map(|entry| {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            let shown = if self.options.secret_args.contains(name) {
                // Enough to say it changed, without keeping the value in the store.
                format!(
                    "secret {}",
                    &CacheKey::new("secret build argument")
                        .text("value", value)
                        .finish()[..12]
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
                    network: &run.network,
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
}

/// Mounts prepared for one `RUN`, with what must stay alive while it runs.
pub(crate) struct PreparedMounts {
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

/// A bind mount of a single file: the copy holds exactly one regular file, mount that file.
pub(crate) fn plan_single_file(dir: &Path) -> Option<PathBuf> {
    let mut entries = std::fs::read_dir(dir).ok()?;
    let first = entries.next()?.ok()?;
    (entries.next().is_none() && first.file_type().ok()?.is_file()).then(|| first.path())
}

/// The name prefix of this process's scratch directories in the store's `ingest/`: it carries
/// the process id, so an interrupted build can remove exactly its own (see
/// [`remove_scratch_dirs`]).
pub(crate) fn scratch_prefix(kind: &str) -> String {
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
