//! What a build is asked to do besides the Dockerfile.

use stagecraft_plan::PlanOptions;
use stagecraft_store::ManifestFormat;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

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
    pub network: stagecraft_exec::Network,
    /// `--add-host`: extra `/etc/hosts` entries every `RUN` sees.
    pub extra_hosts: Vec<stagecraft_exec::HostEntry>,
    /// `--ulimit`: resource limits of every `RUN` (none: the builder's own).
    pub ulimits: Vec<stagecraft_exec::Ulimit>,
    /// `--shm-size`: the size of every `RUN`'s `/dev/shm` in bytes (none: 64 MiB).
    pub shm_size: Option<u64>,
    /// Privileges granted with `--allow` (`RUN --security=insecure` needs `security.insecure`).
    pub entitlements: BTreeSet<crate::Entitlement>,
}
