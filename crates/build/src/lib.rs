//! A build session: what happens around the engine, as buildx and BuildKit's session do it.
//!
//! ```text
//! BuildRequest ─ Session::build ─ cache imports (--cache-from: local layout or registry)
//!                      │            engine (stagecraft_solve): plan → stages → image in the store
//!                      │            attestations (SBOM, provenance) of each platform's image
//!                      │            tags, outputs (oci, docker, tar, local, registry), --push
//!                      └──────────  cache exports (--cache-to) ─ BuildResult
//! ```
//!
//! The command line turns flags into a [`BuildRequest`] and renders the [`BuildResult`]; base
//! images come from the store or their registry ([`StoreOrRegistry`]), `RUN` goes through
//! stagecraft's namespace executor ([`NamespaceRunner`]).
#![forbid(unsafe_code)]

mod attest;
mod base_images;
mod cache;
mod error;
mod inputs;
mod metadata;
mod network;
mod options;
mod output;
mod runner;
mod session;
mod stdin;

pub use attest::Attestations;
pub use attest::sbom;
pub use base_images::StoreOrRegistry;
pub use cache::{
    CacheBounds, CacheMerge, ImportedCaches, MountsMerge, export_cache, merge_documents,
    push_cache_document, push_cache_mounts,
};
pub use error::{Error, Result};
pub use inputs::{default_attestations, parse_go_bool, read_secrets, read_ssh, source_date_epoch};
pub use network::{block_on, registry};
pub use options::{
    Annotation, AnnotationTarget, AttestOptions, CacheLocation, Destination, ImageKeys, Output,
    ProvenanceMode, ProvenanceOptions, UnknownCompression, compression_by_name, parse_compression,
};
pub use output::{
    BuiltImage, ExportFacts, Exported, export, fill_output_dir, write_archive_to, write_output_file,
};
pub use runner::NamespaceRunner;
pub use session::{BuildRequest, BuildResult, Published, Session};
pub use stdin::StdinContext;
