//! Shared plumbing for commands that touch the store, registries and the executor.

use super::CommandError;
use stagecraft_exec::Network;
use stagecraft_image::Digest;
use stagecraft_image::Platform;
use stagecraft_layer::OverlayXattr;
use stagecraft_registry::{Registry, RegistryOptions};
use stagecraft_solve::progress::Stream;
use stagecraft_solve::remote_cache::{CacheDocument, CacheMode, LocalCache, cache_config};
use stagecraft_solve::{
    BaseImages, BuildOutcome, CacheBlobs, LayerRef, RunMountKind, RunRequest, Runner,
};
use stagecraft_store::{Image, OutputFile, Store};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Opens the store and takes a lease for the rest of the command: content a command writes
/// (blobs, then the tag that makes them reachable) must not be pruned in between. The lease
/// removes what killed commands left in the store's `ingest/`; SIGINT and SIGTERM from now on
/// remove this command's own scratch files before it exits.
pub fn open_store_leased() -> Result<(Store, stagecraft_store::Lease), CommandError> {
    let store = open_store()?;
    let lease = store
        .lease()
        .map_err(|e| CommandError(format!("error: locking the store: {e}")))?;
    stop_cleanly_on_signals(store.clone())?;
    Ok((store, lease))
}

/// Writes the output file `path` (an archive): `write` fills a partial file beside it, which
/// replaces `path` only once complete, so a failed or killed write keeps what was there.
pub fn write_output_file<E>(
    store: &Store,
    path: &Path,
    write: impl FnOnce(&mut OutputFile) -> Result<(), E>,
) -> Result<(), CommandError>
where
    CommandError: From<E>,
{
    let cannot = |e: stagecraft_store::Error| {
        CommandError(format!("error: writing {}: {e}", path.display()))
    };
    let mut file = store.output_file(path).map_err(cannot)?;
    write(&mut file)?;
    file.commit().map_err(cannot)
}

/// Fills the output directory `path` with `fill`: a new one appears complete or not at all,
/// an existing one is written into (as BuildKit does; see [`Store::output_dir`]).
pub fn fill_output_dir<E>(
    store: &Store,
    path: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), CommandError>
where
    CommandError: From<E>,
{
    let cannot = |e: stagecraft_store::Error| {
        CommandError(format!("error: writing {}: {e}", path.display()))
    };
    let dir = store.output_dir(path).map_err(cannot)?;
    fill(dir.path())?;
    dir.commit().map_err(cannot)
}

/// On SIGINT or SIGTERM: remove this process's scratch files and directories (and partial
/// outputs) and exit with 130. Running `RUN` steps stop by themselves: their helpers cancel
/// when this process goes away, and every mount lives in their private namespaces.
fn stop_cleanly_on_signals(store: Store) -> Result<(), CommandError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| CommandError(format!("error: installing signal handlers: {e}")))?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("interrupted (signal {signal}): cleaning up");
            store.remove_own_scratch();
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Opens the store at `$STAGECRAFT_ROOT` or the default location, removing what killed
/// commands left in it.
pub fn open_store() -> Result<Store, CommandError> {
    let store = match std::env::var_os("STAGECRAFT_ROOT") {
        Some(root) => Store::open(std::path::PathBuf::from(root)),
        None => Store::open_default(),
    };
    let store = store.map_err(|e| {
        CommandError(format!(
            "error: opening the store: {e}\n  = help: set STAGECRAFT_ROOT to a writable directory"
        ))
    })?;
    // Every command removes what killed ones left behind (the first lease does that), unless a
    // prune or verify holds the store: then that one removes it. Best effort, like the sweep.
    let _ = store.try_lease();
    Ok(store)
}

/// Runs a registry transfer on the process's one network runtime. One runtime for the whole
/// process matters: HTTP connections are pooled per registry and belong to the runtime that
/// opened them, so a second runtime would find them dead.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, CommandError> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match runtime {
        Ok(runtime) => Ok(runtime.block_on(future)),
        Err(e) => Err(CommandError(format!(
            "error: starting the network runtime: {e}"
        ))),
    }
}

/// Base images: from the store when present (no network for a cached build), else pulled.
pub struct StoreOrRegistry<'a> {
    /// The store.
    pub store: &'a Store,
    /// The registry client.
    pub registry: &'a Registry,
    /// Ask the registry even when the store has the tag (`--pull`).
    pub always_pull: bool,
    /// References already pulled in this build, so stages sharing a base pull it once.
    pub pulled: std::sync::Mutex<Vec<String>>,
}

impl BaseImages for StoreOrRegistry<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<Image, String> {
        // Stages resolve their bases in parallel; one at a time here keeps a shared base from
        // being fetched twice.
        let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        let fresh_enough = !self.always_pull || pulled.iter().any(|r| r == reference);
        if fresh_enough && let Ok(image) = self.store.image_for_platform(reference, platform) {
            return Ok(image);
        }
        pulled.push(reference.to_owned());
        let parsed = stagecraft_registry::parse_reference(reference).map_err(|e| e.to_string())?;
        let result = block_on(stagecraft_registry::pull(
            self.registry,
            self.store,
            &parsed,
            platform,
        ))
        .map_err(|e| e.to_string())?;
        result.map_err(|e| {
            format!(
                "{e}\n  = help: load it first with `stagecraft load` if it is not in a registry"
            )
        })
    }
}

/// A registry client for the command line.
pub fn registry(insecure: &[String]) -> Registry {
    Registry::new(RegistryOptions {
        insecure: insecure.to_vec(),
    })
}

/// Runs `RUN` steps with stagecraft's own namespace executor (this binary re-executed). One per
/// build: its network sandbox is the build's, started for the first step that needs it and
/// stopped when the runner is dropped.
pub struct NamespaceRunner {
    executor: stagecraft_exec::Executor,
    /// A rootless build's directory for the per-run state, removed with the runner.
    _state: Option<stagecraft_store::ScratchDir>,
    /// The executor for [`Network::Sandbox`] steps, `None` when the sandbox could not start.
    sandboxed: OnceLock<Option<stagecraft_exec::Executor>>,
}

impl NamespaceRunner {
    /// An executor that re-executes this binary as its helper. A rootless build keeps the
    /// per-run state in a scratch directory of the store too: it writes nothing outside its
    /// store.
    pub fn new(store: &Store) -> Result<NamespaceRunner, CommandError> {
        let helper = stagecraft_exec::HelperCommand::current_exe();
        let executor = stagecraft_exec::Executor::new(helper);
        Ok(match store.overlay_xattr() {
            OverlayXattr::User => {
                let state = store.scratch_dir("exec")?;
                NamespaceRunner {
                    executor: executor.with_state_dir(state.path()),
                    _state: Some(state),
                    sandboxed: OnceLock::new(),
                }
            }
            OverlayXattr::Trusted => NamespaceRunner {
                executor,
                _state: None,
                sandboxed: OnceLock::new(),
            },
        })
    }
}

impl NamespaceRunner {
    /// The executor for `network`, starting the build's sandbox on first use. When it cannot
    /// start, the steps get the host's network, and the user a warning: never silently.
    fn executor_for(&self, network: Network) -> (&stagecraft_exec::Executor, Network) {
        if network != Network::Sandbox {
            return (&self.executor, network);
        }
        let sandboxed = self.sandboxed.get_or_init(
            || match stagecraft_exec::NetworkSandbox::start(self.executor.helper()) {
                Ok(sandbox) => Some(
                    self.executor
                        .clone()
                        .with_network_sandbox(Arc::new(sandbox)),
                ),
                Err(error) => {
                    eprintln!(
                        "warning: RUN steps get the host's network (its interfaces and loopback \
                         services): the build's network sandbox could not start: {error}\n  \
                         = help: BuildKit isolates RUN in a network of its own; for the same, \
                         install slirp4netns and allow network namespaces (a rootless build also \
                         needs /dev/net/tun mode 0666, as udev sets it); or pass --network=host \
                         to choose the host's network and silence this"
                    );
                    None
                }
            },
        );
        match sandboxed {
            Some(executor) => (executor, Network::Sandbox),
            None => (&self.executor, Network::Host),
        }
    }
}

impl Runner for NamespaceRunner {
    fn run(
        &self,
        request: &RunRequest<'_>,
        output: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<i32, String> {
        let rootfs = stagecraft_exec::Rootfs::Overlay {
            // overlayfs wants the topmost layer first.
            lower_dirs: request.lower_dirs.iter().rev().cloned().collect(),
            upper_dir: request.upper_dir.to_owned(),
            work_dir: request.work_dir.to_owned(),
        };
        let mut spec = stagecraft_exec::ExecSpec::new(rootfs, request.args.to_vec());
        spec.env = request.env.to_vec();
        spec.cwd = request.cwd.to_owned();
        spec.user = request.user.to_owned();
        spec.mounts = request
            .mounts
            .iter()
            .map(|mount| stagecraft_exec::Mount {
                target: mount.target.clone(),
                kind: match &mount.kind {
                    RunMountKind::Bind { source, readonly } => stagecraft_exec::MountKind::Bind {
                        source: source.clone(),
                        readonly: *readonly,
                    },
                    RunMountKind::Tmpfs { size } => {
                        stagecraft_exec::MountKind::Tmpfs { size: *size }
                    }
                    RunMountKind::Secret(secret) => stagecraft_exec::MountKind::Secret {
                        data: stagecraft_exec::SecretData::new(secret.data.clone()),
                        mode: secret.mode,
                        uid: secret.uid,
                        gid: secret.gid,
                    },
                },
            })
            .collect();
        spec.security = match request.security {
            "insecure" => stagecraft_exec::Security::Insecure,
            _ => stagecraft_exec::Security::Sandbox,
        };
        let (executor, network) = self.executor_for(request.network);
        spec.network = network;
        let status = executor
            .run(&spec, &mut |stream, bytes: &[u8]| {
                let stream = match stream {
                    stagecraft_exec::Stream::Stdout => Stream::Stdout,
                    stagecraft_exec::Stream::Stderr => Stream::Stderr,
                };
                output(stream, bytes)
            })
            .map_err(|e| e.to_string())?;
        Ok(status.code())
    }
}

/// Where a build cache is exported to or imported from (`--cache-to`, `--cache-from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=local`: an OCI layout directory.
    Local(std::path::PathBuf),
    /// `type=registry`: a manifest in a registry.
    Registry(String),
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Local(dir) => write!(f, "{}", dir.display()),
            CacheLocation::Registry(reference) => f.write_str(reference),
        }
    }
}

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
    ) -> ImportedCaches<'a> {
        let mut origins = Vec::new();
        for location in locations {
            match read_cache(store, registry, location) {
                Ok((origin, document)) => match document.import(store) {
                    Ok(added) => {
                        eprintln!(
                            "imported cache {location}: {} records ({added} new)",
                            document.records.len()
                        );
                        let digests = document
                            .records
                            .values()
                            .map(|l| l.digest.clone())
                            .collect();
                        origins.push((origin, digests));
                    }
                    Err(e) => eprintln!("warning: importing cache {location}: {e}"),
                },
                Err(e) => eprintln!("warning: skipping --cache-from {location}: {e}"),
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
                let config = cache_config(&manifest.bytes, text)?;
                stagecraft_registry::fetch_blob(registry, store, &reference, &config.digest)
                    .await
                    .map_err(|e| e.to_string())?;
                let bytes = store.read_blob(&config.digest).map_err(|e| e.to_string())?;
                CacheDocument::from_json(&bytes)
            })
            .map_err(|e| e.0)??;
            Ok((CacheOrigin::Registry(reference), document))
        }
    }
}

impl CacheBlobs for ImportedCaches<'_> {
    fn fetch(&self, store: &Store, layer: &LayerRef) -> Result<bool, String> {
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
                .map_err(|e| e.0)?
                .map_err(|e| format!("{}: {e}", reference.whole()))?;
                Ok(true)
            }
        }
    }
}

/// Exports the build's cache records (`mode` picks which) with their layer blobs.
pub fn export_cache(
    store: &Store,
    registry: &Registry,
    outcome: &BuildOutcome,
    location: &CacheLocation,
    mode: CacheMode,
    compression: stagecraft_layer::Compression,
) -> Result<usize, CommandError> {
    let failed = |e: String| CommandError(format!("error: exporting the cache to {location}: {e}"));
    let document = CacheDocument::from_outcome(outcome, mode)
        .compressed(store, compression)
        .map_err(failed)?;
    let artifact = document.store_artifact(store).map_err(failed)?;
    match location {
        CacheLocation::Local(dir) => LocalCache::new(dir)
            .write(store, &artifact)
            .map_err(failed)?,
        CacheLocation::Registry(text) => {
            let reference = stagecraft_registry::parse_reference(text)?;
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
