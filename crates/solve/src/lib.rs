//! The build engine: runs a [`stagecraft_plan::Plan`] stage by stage.

pub mod rootfs;
