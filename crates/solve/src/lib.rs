//! The build engine: runs a [`stagecraft_plan::Plan`] stage by stage.

pub mod context_index;
pub mod copy;
mod engine;
pub mod entitlement;
pub mod git;
mod glob;
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
