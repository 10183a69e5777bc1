//! The file systems a build reads: stage and image layers as one merged view, resolved inside
//! their root ([`rootfs`]); user and group names ([`users`]); the build context's file hashes,
//! kept between builds ([`context_index`]); an image's files as the SBOM catalogers read them
//! ([`image_fs`]).

pub(crate) mod context_index;
pub(crate) mod image_fs;
pub(crate) mod rootfs;
pub(crate) mod users;
