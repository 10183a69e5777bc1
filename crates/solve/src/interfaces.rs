//! The seams to the rest of stagecraft: base images, the `RUN` executor and imported cache
//! blobs, which the caller provides (and tests fake).

use crate::options::OciLayoutRef;
use crate::outcome::LayerRef;
use crate::progress::{ProgressSink, Stream};
use stagecraft_image::Platform;
use stagecraft_store::{Image, Store};
use std::path::{Path, PathBuf};

/// Where base images come from (the store, or a registry when missing).
pub trait BaseImages: Sync {
    /// Returns the image for `reference`, fetching it if needed. Its layer blobs must be in the
    /// store afterwards.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<Image, String>;

    /// Returns the image `layout` names (a named context's `oci-layout://…`), for `platform`
    /// when it is an index, copying its blobs from the layout into the store: its layer blobs
    /// must be in the store afterwards.
    fn resolve_layout(
        &self,
        layout: &OciLayoutRef,
        platform: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>>;
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
    pub network: stagecraft_exec::Network,
    /// `--add-host` entries for the step's `/etc/hosts`.
    pub extra_hosts: &'a [stagecraft_exec::HostEntry],
    /// `--ulimit` resource limits.
    pub ulimits: &'a [stagecraft_exec::Ulimit],
    /// `--shm-size`: `/dev/shm`'s size in bytes.
    pub shm_size: Option<u64>,
    /// `sandbox` or `insecure` (granted: the engine checked the entitlement).
    pub security: &'a str,
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
    /// A file with a secret's content, which the executor must keep off any disk.
    Secret(SecretFile),
}

/// A `RUN --mount=type=secret` file: content and ownership. `Debug` leaves the content out.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The secret's bytes.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretFile({} bytes, mode {:o}, {}:{})",
            self.data.len(),
            self.mode,
            self.uid,
            self.gid
        )
    }
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

/// The layer blobs of imported cache records (`--cache-from`), fetched lazily: only when a
/// cache hit needs one the store lacks.
pub trait CacheBlobs: Sync {
    /// Puts the blob of `layer` into `store`; `Ok(false)` when no imported cache has it.
    fn fetch(&self, store: &Store, layer: &LayerRef) -> Result<bool, String>;
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
