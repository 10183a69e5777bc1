//! What a build gives back: the image and its layers, each stage's outcome, or an error.

use stagecraft_dockerfile::{Diagnostic, Span};
use stagecraft_image::{Descriptor, Digest, Platform};
use stagecraft_plan::PlanError;
use stagecraft_store::Image;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Planning failed.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// A step failed at a place in the Dockerfile: an argument, a reference, a mount, a
    /// missing secret or entitlement, a source, or the step's operation, as a [`Diagnostic`]
    /// with its code.
    #[error("{0}")]
    Step(Diagnostic),
    /// The store refused something the build needed (a scratch directory, a snapshot, a cache
    /// record, the image, a lock).
    #[error("{what}: {source}")]
    Store {
        /// What the build was doing (`creating a step directory`, `storing the image`, …).
        what: String,
        /// The store's error.
        #[source]
        source: stagecraft_store::Error,
    },
    /// A file or directory of the build's own could not be read, created or moved.
    #[error("{what}: {source}")]
    Io {
        /// What was done, and on which path.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A base image could not be resolved or unpacked.
    #[error("base image {reference}: {source}")]
    BaseImage {
        /// The reference as the Dockerfile names it.
        reference: String,
        /// Why ([`crate::BaseImageError`], or the unpacking's error).
        #[source]
        source: crate::BoxError,
    },
    /// A step's layer could not be written or stored.
    #[error("{what} the layer of {step}: {source}")]
    Layer {
        /// `writing` (the tar) or `storing` (the blob).
        what: &'static str,
        /// The step's name.
        step: String,
        /// The layer writer's or the store's error.
        #[source]
        source: crate::BoxError,
    },
    /// A step's operation (the command of a `RUN`, a copy, a download) failed; the message is
    /// the operation's, and the caller locates it in the Dockerfile.
    #[error(transparent)]
    Operation(crate::BoxError),
    /// A named context (`--build-context`) could not be fetched or used.
    #[error("{0}")]
    NamedContext(String),
    /// A named context's files could not be read, checked out or downloaded. Shared: every
    /// stage that uses the context reports the one failure.
    #[error("named context {name}: {source}")]
    NamedContextFiles {
        /// The context's name.
        name: String,
        /// Why.
        #[source]
        source: std::sync::Arc<BuildError>,
    },
    /// The context's `.dockerignore` could not be read or parsed.
    #[error("{0}")]
    Dockerignore(String),
    /// A stage only an `ONBUILD` trigger needs, which the scheduler never started.
    #[error(
        "stage {0} is needed by an ONBUILD trigger, but the target does not depend on it otherwise; reference it from the target (e.g. COPY --from={0} of a file) or build it as the target"
    )]
    OnbuildOnlyStage(String),
    /// The caller asked for something the engine cannot do (no platform), or the engine broke
    /// an invariant of its own.
    #[error("{0}")]
    Engine(String),
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
            _ => format!("error: {self}"),
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

/// Something a build took from outside itself, named by its content: what SLSA provenance
/// calls a resolved dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// An image (`FROM`, `COPY --from`, a `--mount from=`).
    Image {
        /// The reference as the Dockerfile names it (`busybox`, `alpine:3.20`).
        reference: String,
        /// The platform it was resolved for.
        platform: Platform,
        /// What the reference resolved to: the index's digest when it names an index, else
        /// the manifest's.
        digest: Digest,
    },
    /// A file `ADD` downloaded.
    Http {
        /// Its URL.
        url: String,
        /// The sha256 of its content.
        digest: Digest,
    },
    /// A git repository `ADD` checked out.
    Git {
        /// The repository's URL.
        url: String,
        /// The commit checked out.
        commit: String,
    },
}

/// One step of a build, as `mode=max` provenance lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// The stage's display name.
    pub stage: String,
    /// The Dockerfile line of the instruction (for `FROM` and `ONBUILD` triggers, the
    /// stage's `FROM` line).
    pub line: usize,
    /// The instruction as progress shows it (secret values never appear: they are masked or
    /// refused before a step is named).
    pub name: String,
    /// Whether its result came from the cache.
    pub cached: bool,
    /// The layer it made (its diff ID), for steps that make one.
    pub layer: Option<Digest>,
}

/// The result of a build.
pub struct BuildOutcome {
    /// The platform built for.
    pub platform: Platform,
    /// The final image, stored.
    pub image: Image,
    /// Its layers with their snapshot directories, bottom first.
    pub layers: Vec<LayerRef>,
    /// Snapshot directories of the layers, bottom first (to export the filesystem).
    pub snapshots: Vec<PathBuf>,
    /// Where in the Dockerfile the instruction that made each layer is, parallel to `layers`:
    /// `None` for the base image's layers.
    pub layer_sources: Vec<Option<Span>>,
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
    /// What this platform's graph took from outside the build, sorted, each once.
    pub materials: Vec<Material>,
    /// This platform's graph's steps, in the order they started.
    pub steps: Vec<StepRecord>,
}
