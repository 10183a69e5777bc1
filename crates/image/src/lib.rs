//! OCI and Docker image metadata whose JSON is byte-identical to what
//! BuildKit (Go) writes, so that stagecraft's config, manifest and index
//! digests can match BuildKit's for the same build.
//!
//! * [`ImageConfig`] is the config blob (moby's `dockerspec.DockerOCIImage`:
//!   the OCI image config plus Docker's `Healthcheck`, `OnBuild`, `Shell`).
//! * [`ImageManifest`], [`ImageIndex`] and [`Descriptor`] cover OCI v1 and
//!   Docker schema 2 documents; [`AnyManifest`] tells them apart.
//! * [`to_go_json`] / [`to_go_json_indented`] reproduce Go's
//!   `json.Marshal` / `json.MarshalIndent(v, "", "  ")`, including Go's
//!   escaping of `<`, `>`, `&`, U+2028 and U+2029.
//! * [`Digest`] (sha256 only), [`Platform`], [`Reference`] (Docker's
//!   normalization rules), [`Timestamp`] (Go's time format) and the
//!   [`media_type`] constants are the supporting vocabulary.
//! * [`intoto`] has the in-toto statements of attestations and the annotations with which
//!   BuildKit attaches them to an image index.
//!
//! Parsing is lenient like Go's decoder (unknown fields ignored, `null`
//! accepted where Go accepts it); writing is exact. One Go leniency is not
//! reproduced: Go matches JSON keys case-insensitively (`"cmd"` fills
//! `Cmd`); these types want the canonical spelling, which every real
//! producer uses.
//!
//! ```
//! use stagecraft_image::{Digest, ImageConfig, Platform};
//!
//! let mut config = ImageConfig::for_platform(&Platform::parse("linux/amd64")?);
//! config.config.cmd = Some(vec!["sh".into(), "-c".into(), "make && make install".into()]);
//! let bytes = config.to_json()?;
//! assert_eq!(
//!     String::from_utf8(bytes.clone())?,
//!     r#"{"architecture":"amd64","config":{"Cmd":["sh","-c","make \u0026\u0026 make install"]},"os":"linux","rootfs":{"type":"layers","diff_ids":null}}"#
//! );
//! let digest = Digest::of(&bytes);
//! assert_eq!(digest.algorithm(), "sha256");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod config;
mod digest;
mod gojson;
pub mod intoto;
mod manifest;
pub mod media_type;
mod platform;
mod reference;
mod serde_go;
mod time;

pub use config::{Healthcheck, History, ImageConfig, RootFs, RuntimeConfig};
pub use digest::{Digest, DigestError, Digester};
pub use gojson::{GoFormatter, to_go_json, to_go_json_indented};
pub use manifest::{AnyManifest, Descriptor, ImageIndex, ImageManifest, ManifestError};
pub use platform::{Platform, PlatformError};
pub use reference::{DEFAULT_DOMAIN, DEFAULT_TAG, Reference, ReferenceError};
pub use time::Timestamp;
