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
    /// The `RUN` executor: each step is an [`stagecraft_exec::ExecSpec`] it runs.
    pub runner: &'a dyn stagecraft_exec::Run,
    /// Progress events.
    pub progress: &'a dyn ProgressSink,
    /// Where the blobs of cache records imported with `--cache-from` come from.
    pub cache_blobs: Option<&'a dyn CacheBlobs>,
}
