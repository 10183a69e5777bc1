//! The build engine: runs a [`stagecraft_plan::Plan`] stage by stage.

mod cache;
pub mod context_index;
mod convert;
pub mod copy;
mod engine;
pub mod git;
mod scheduler;
pub use stagecraft_dockerfile::mounts;
pub mod progress;
pub mod remote;
pub mod remote_cache;
pub mod rootfs;
pub mod users;

pub use engine::{
    BaseImages, BuildError, BuildOptions, BuildOutcome, CacheBlobs, Engine, LayerRef, RunMount,
    RunMountKind, RunRequest, Runner, StageOutcome, StageReport, remove_scratch_dirs,
};
