//! The content cache: how steps are keyed ([`key`]), and records imported from and exported
//! to other machines ([`crate::remote_cache`]).

pub(crate) mod explain;
pub(crate) mod flight;
pub(crate) mod key;
pub(crate) mod step;
