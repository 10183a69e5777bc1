//! Dockerfile semantics, as BuildKit's `dockerfile2llb` has them: instructions applied to a
//! stage's state, expanded and checked, turned into the steps the cache and the ops run.

pub(crate) mod config;
pub(crate) mod copy;
pub(crate) mod dispatch;
pub(crate) mod from;
pub(crate) mod named;
pub(crate) mod named_slots;
pub(crate) mod run;
