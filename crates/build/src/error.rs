//! Why a build session failed.

use std::path::PathBuf;

/// A build session's failure, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A buildx-style option value that does not parse (`--output`, `--cache-to`, a
    /// compression). `reason` may end with `= help:` lines.
    #[error("{flag} {value:?}: {reason}")]
    InvalidOption {
        /// The flag, as typed (`--output`).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// The build itself (rendered with its source line by [`stagecraft_solve::BuildError::render`]).
    #[error(transparent)]
    Build(#[from] stagecraft_solve::BuildError),
    /// The store refused something.
    #[error("{what}: {source}")]
    Store {
        /// What the session was doing.
        what: String,
        /// The store's error.
        #[source]
        source: stagecraft_store::Error,
    },
    /// Writing an output file or directory.
    #[error("writing {}: {message}", path.display())]
    Output {
        /// The destination.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A registry transfer (push, pull, a cache import or export).
    #[error("{what}: {message}")]
    Transfer {
        /// What the session was doing (`pushing localhost:5000/app:1`).
        what: String,
        /// What went wrong.
        message: String,
    },
    /// A docker archive was asked for a multi-platform build.
    #[error(
        "docker exporter does not currently support exporting manifest lists: the build is for {platforms}, and a docker archive holds one image\n  = help: use --output type=oci,dest=FILE or --push for the multi-platform image, or build one --platform for a docker archive"
    )]
    DockerMultiPlatform {
        /// The build's platforms, comma-separated.
        platforms: String,
    },
    /// An output cannot carry what the build gives it, as BuildKit's exporters refuse it
    /// (attestations or descriptor annotations with Docker media types, index annotations of
    /// a single image, `rewrite-timestamp` without an epoch). `reason` may end with
    /// `= help:` lines.
    #[error("output {output}: {reason}")]
    OutputConflict {
        /// The output (`type=oci`).
        output: String,
        /// What conflicts, and how to resolve it.
        reason: String,
    },
    /// Reading the image for an output.
    #[error(transparent)]
    Export(#[from] stagecraft_export::ExportError),
    /// Making an attestation (an SBOM, a provenance) failed.
    #[error("making {what}: {message}")]
    Attestation {
        /// Which attestation.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// An input of the build (standard input's context, a Dockerfile in it) is unusable.
    #[error("{what}: {message}")]
    Input {
        /// What the session was reading.
        what: String,
        /// Why it cannot be used.
        message: String,
    },
    /// The process's network runtime could not start (shared: every later transfer of the
    /// process reports the same failure).
    #[error("starting the network runtime: {0}")]
    Runtime(#[source] std::sync::Arc<std::io::Error>),
    /// The system clock is before 1970, so the build has no time to record.
    #[error("the clock is before 1970")]
    Clock,
}

impl Error {
    /// A multi-line rendering for terminals (the source line and a caret for build errors).
    pub fn render(&self) -> String {
        match self {
            Error::Build(error) => error.render(),
            other => format!("error: {other}"),
        }
    }

    pub(crate) fn store(what: impl Into<String>) -> impl FnOnce(stagecraft_store::Error) -> Error {
        let what = what.into();
        move |source| Error::Store { what, source }
    }
}

/// What session functions return.
pub type Result<T, E = Error> = std::result::Result<T, E>;
