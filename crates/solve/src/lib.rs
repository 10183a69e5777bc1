//! The build engine: runs a [`stagecraft_plan::Plan`] stage by stage.

mod cache;
mod convert;
mod engine;
mod fs;
mod interfaces;
mod ops;
mod options;
mod outcome;
mod scheduler;
mod scratch;
mod state;
pub use stagecraft_dockerfile::mounts;
pub mod progress;
pub mod remote_cache;

pub use interfaces::{BaseImages, CacheBlobs, Engine, RunMount, RunMountKind, RunRequest, Runner};
pub use options::BuildOptions;
pub use outcome::{BuildError, BuildOutcome, LayerRef, StageOutcome, StageReport};
pub use scratch::remove_scratch_dirs;
