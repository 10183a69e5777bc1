//! The build engine: runs a [`stagecraft_plan::Plan`] stage by stage.
//!
//! ```text
//! Engine::build ─ scheduler (a thread per needed stage)
//!        │             │ each instruction
//!        │        convert/ (Dockerfile semantics: expand, FROM, COPY/ADD, RUN → steps)
//!        │             │ each step that makes a layer
//!        │        cache/ (key → record? reuse : run, commit, record; explain misses)
//!        │             │ on a miss
//!        │        ops/ (copy, git, http) and exec::Run (RUN, in crate `exec`)
//!        │             │ reading files of the context, stages and images
//!        └──────  fs/ (merged layer views resolved inside their root; context index)
//! ```
//!
//! `docs/architecture.md` says which BuildKit part each module mirrors and where a change goes.
// One unsafe block: the pre-exec hook that sets git's umask (crates/solve/src/ops/git.rs).
#![allow(unsafe_code)]

mod cache;
mod convert;
mod engine;
mod entitlements;
mod fs;
mod interfaces;
mod ops;
mod options;
mod outcome;
mod scheduler;
mod state;
pub use stagecraft_dockerfile::mounts;
pub mod progress;
pub mod remote_cache;

pub use convert::from::{UnpackError, image_snapshots};
pub use entitlements::Entitlement;
pub use interfaces::{
    BaseImageError, BaseImages, BoxError, CacheBlobError, CacheBlobs, Engine, InStore,
};
pub use options::{
    BuildOptions, NamedContext, NamedContextError, OciLayoutRef, parse_build_context,
};
pub use outcome::{
    BuildError, BuildOutcome, LayerRef, Material, StageOutcome, StageReport, StepRecord,
};
