//! The file systems a build reads: user and group names ([`users`]); the build context's file
//! hashes, kept between builds ([`context_index`]); the directories copied from as build
//! contexts, main or named ([`local_context`]). Stage and image layers are read as one
//! merged view resolved inside their root (`stagecraft_imagefs::MergedView`, and as an
//! `ImageFs` for the SBOM catalogers and image checks, `stagecraft_imagefs::LayeredFs`).

pub(crate) mod context_index;
pub(crate) mod local_context;
pub(crate) mod users;
