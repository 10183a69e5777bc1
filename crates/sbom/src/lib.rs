//! A native software bill of materials for images.
//!
//! [`catalog`] reads an image's root file system through [`ImageFs`] (a directory with
//! [`DirFs`]; the engine implements it for its layer snapshots) and finds the packages that
//! package managers, language tools and compilers left behind: dpkg and apk databases,
//! Python, Node.js, Java archives, Go and `cargo auditable` binaries, `Cargo.lock` files.
//! Each package gets a purl, the licenses its metadata declares, and the layer that added
//! it. [`spdx::Document`] writes the catalog as SPDX 2.3 JSON and wraps it in the in-toto
//! statement BuildKit attaches to images; [`table`] prints it for people.

#![forbid(unsafe_code)]

mod catalogers;
mod fields;
mod license;
mod package;
mod purl;
mod scan;
pub mod spdx;
mod table;

pub use catalogers::catalog;
pub use package::{Catalog, Ecosystem, Package};
pub use purl::image_purl;
pub use scan::Error;
/// The image file system the catalogers read ([`ImageFs`], [`DirFs`]), shared with the image
/// checks.
pub use stagecraft_imagefs as fs;
pub use stagecraft_imagefs::{DirFs, FileEntry, ImageFs};
pub use table::table;
