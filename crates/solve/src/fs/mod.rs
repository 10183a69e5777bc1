//! The file systems a build reads: stage and image layers as one merged view, resolved inside
//! their root ([`rootfs`]); user and group names ([`users`]); the build context's file hashes,
//! kept between builds ([`context_index`]).

pub(crate) mod context_index;
pub(crate) mod rootfs;
pub(crate) mod users;
