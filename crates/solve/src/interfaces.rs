//! The seams to the rest of stagecraft: base images, the `RUN` executor (crate `exec`'s
//! [`stagecraft_exec::Run`]) and imported cache blobs, which the caller provides (and tests
//! fake).

use crate::options::OciLayoutRef;
use crate::outcome::LayerRef;
use crate::progress::ProgressSink;
use stagecraft_image::Platform;
use stagecraft_store::{Image, Store};

/// Where base images come from (the store, or a registry when missing).
pub trait BaseImages: Sync {
    /// Returns the image for `reference`, fetching it if needed. Its layer blobs must be in the
    /// store afterwards.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<Image, BaseImageError>;

    /// Returns the image `layout` names (a named context's `oci-layout://…`), for `platform`
    /// when it is an index, copying its blobs from the layout into the store: its layer blobs
    /// must be in the store afterwards.
    fn resolve_layout(
        &self,
        layout: &OciLayoutRef,
        platform: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>>;
}

/// The layer blobs of imported cache records (`--cache-from`), fetched lazily: only when a
/// cache hit needs one the store lacks.
pub trait CacheBlobs: Sync {
    /// Puts the blob of `layer` into `store`; `Ok(false)` when no imported cache has it.
    fn fetch(&self, store: &Store, layer: &LayerRef) -> Result<bool, CacheBlobError>;
}

/// A boxed error of another crate (the registry's, the store's) at a seam `solve` declares.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why [`BaseImages::resolve`] found no image.
#[derive(Debug, thiserror::Error)]
pub enum BaseImageError {
    /// The reference does not parse.
    #[error("{0}")]
    Reference(#[source] BoxError),
    /// The process's network runtime could not start.
    #[error("{0}")]
    Runtime(#[source] BoxError),
    /// The store lacks it (for this platform) and pulling it failed.
    #[error(
        "{in_store}, and pulling it failed: {source}\n  = help: load it first with `stagecraft load` if it is not in a registry (for several platforms, load an image index); for a registry over plain HTTP, pass --insecure-registry HOST:PORT"
    )]
    Pull {
        /// What the store has under the name.
        in_store: InStore,
        /// The registry's error.
        #[source]
        source: BoxError,
    },
}

/// What the store has under a base image's name, for [`BaseImageError::Pull`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InStore {
    /// Nothing.
    #[error("not in the store (`stagecraft images` lists what it has)")]
    Nothing,
    /// The name, for other platforms.
    #[error("the store has it for {available}, not for {platform}")]
    OtherPlatforms {
        /// The platforms it has, as the store lists them.
        available: String,
        /// The platform asked for.
        platform: String,
    },
}

/// Why [`CacheBlobs::fetch`] could not fetch a blob an imported cache has.
#[derive(Debug, thiserror::Error)]
pub enum CacheBlobError {
    /// Reading it from a local cache directory, or writing it into the store, failed.
    #[error("{}: {source}", path.display())]
    Local {
        /// The blob's file in the cache directory.
        path: std::path::PathBuf,
        /// The I/O or store error.
        #[source]
        source: BoxError,
    },
    /// Pulling it from a registry failed.
    #[error("{reference}: {source}")]
    Registry {
        /// The cache's reference.
        reference: String,
        /// The registry's error.
        #[source]
        source: BoxError,
    },
    /// The process's network runtime could not start.
    #[error("{0}")]
    Runtime(#[source] BoxError),
}

/// The build engine.
pub struct Engine<'a> {
    /// Where blobs, snapshots and cache records live.
    pub store: &'a Store,
    /// Base image resolution.
    pub base_images: &'a dyn BaseImages,
    /// The `RUN` executor: each step is an [`stagecraft_exec::ExecSpec`] it runs.
    pub runner: &'a dyn stagecraft_exec::Run,
    /// Progress events.
    pub progress: &'a dyn ProgressSink,
    /// Where the blobs of cache records imported with `--cache-from` come from.
    pub cache_blobs: Option<&'a dyn CacheBlobs>,
}
