//! Why a report could not be made.

use stagecraft_image::Digest;

/// A failure while reading an image for its report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not give a blob, a manifest or a cache record.
    #[error(transparent)]
    Store(#[from] stagecraft_store::Error),
    /// A layer blob could not be decompressed or is not a valid tar.
    #[error("could not read layer {digest}: {source} (run `stagecraft verify` to check the store)")]
    Layer {
        /// The layer's blob digest.
        digest: Digest,
        /// What went wrong while reading it.
        #[source]
        source: std::io::Error,
    },
}

/// A report result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
