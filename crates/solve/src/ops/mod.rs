//! The operations steps are made of, which never see a Dockerfile instruction: copying files
//! between views ([`copy`]), checking out git repositories ([`git`]) and downloading URLs
//! ([`http`]).

pub(crate) mod copy;
pub(crate) mod git;
pub(crate) mod http;
