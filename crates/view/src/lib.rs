//! What docker's and buildx's commands print and read, for stagecraft's own: Go's
//! `text/tabwriter` columns, the part of Go's templates `--format` strings use, docker's size
//! and time units, `images --filter`, the rows of `images` and `history` and the object of
//! `inspect` in docker's shapes, and the text of buildx's `--call=targets|outline` answers.
//! The command line gathers the store's data; everything here is pure, and tested so.
#![forbid(unsafe_code)]

pub mod images;
mod subrequests;
mod tabwriter;
pub mod template;
pub mod units;

pub use subrequests::{render_outline, render_targets};
pub use tabwriter::align;
