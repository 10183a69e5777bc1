//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while writing or applying a layer.
///
/// Every variant names the file on disk or the layer entry it is about, so a
/// message is actionable without a backtrace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation on the source tree (while writing a layer) or
    /// on the target root failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `read directory`.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// Writing the tar stream or the compressed bytes to the destination failed.
    #[error("cannot write layer output: {source}")]
    Output {
        /// The underlying error.
        source: io::Error,
    },

    /// Reading or decoding the layer stream (decompression, tar framing) failed.
    #[error("cannot read layer stream: {source}")]
    Input {
        /// The underlying error.
        source: io::Error,
    },

    /// A regular file changed size while it was being archived, so its header
    /// (already written) no longer matches its content.
    #[error(
        "{} shrank while it was being archived (header says {expected} bytes, read {read}); \
         do not modify the tree while a layer is being written",
        path.display()
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// The size recorded in the tar header.
        expected: u64,
        /// How many bytes could be read.
        read: u64,
    },

    /// The overlay upper directory uses a feature this crate cannot turn into
    /// a self-contained layer (`metacopy` or `redirect_dir`).
    #[error(
        "overlay upper entry {} carries the `{xattr}` attribute; mount overlayfs with \
         metacopy=off,redirect_dir=off so that upper directories hold full copies",
        path.display()
    )]
    UnsupportedOverlayFeature {
        /// The upper-dir entry.
        path: PathBuf,
        /// The overlay xattr found on it.
        xattr: String,
    },

    /// A layer entry was refused because applying it could escape the root or
    /// is malformed (for example a `..` component or a whiteout of `..`).
    #[error("refusing layer entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry name as it appears in the tar (lossily decoded).
        entry: String,
        /// Why it was refused.
        reason: String,
    },

    /// A layer entry has a tar type this crate does not apply.
    #[error("layer entry {entry:?} has unsupported tar type {kind:?}")]
    UnsupportedEntryType {
        /// The entry name as it appears in the tar (lossily decoded).
        entry: String,
        /// The raw type flag byte, as a character.
        kind: char,
    },

    /// Applying a layer entry failed at the filesystem level.
    #[error("layer entry {entry:?}: cannot {action}: {source}")]
    Apply {
        /// The entry name as it appears in the tar (lossily decoded).
        entry: String,
        /// What was being done, e.g. `create file`.
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn apply(entry: &[u8], action: &'static str, source: impl Into<io::Error>) -> Self {
        Self::Apply {
            entry: String::from_utf8_lossy(entry).into_owned(),
            action,
            source: source.into(),
        }
    }

    /// A failed `chown` of `entry` to `uid`:`gid`, explained when the owner
    /// is not mapped (see [`crate::owner_error`]).
    pub(crate) fn set_owner(
        entry: &[u8],
        uid: rustix::process::Uid,
        gid: rustix::process::Gid,
        source: rustix::io::Errno,
    ) -> Self {
        let source = owner_error(source.into(), uid.as_raw(), gid.as_raw());
        Self::apply(entry, "set owner", source)
    }

    pub(crate) fn unsafe_entry(entry: &[u8], reason: impl Into<String>) -> Self {
        Self::UnsafeEntry {
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }
}

/// `source` with a hint added when it is the `EINVAL` that `chown` gives for
/// an owner the current user namespace does not map: what a rootless build
/// without subordinate id ranges meets for any owner but root.
pub fn owner_error(source: io::Error, uid: u32, gid: u32) -> io::Error {
    if source.raw_os_error() != Some(rustix::io::Errno::INVAL.raw_os_error()) {
        return source;
    }
    io::Error::new(
        source.kind(),
        format!(
            "{source}: uid {uid} or gid {gid} is not mapped in this user namespace; a rootless \
             build maps the ids of its user's /etc/subuid and /etc/subgid ranges, and only root \
             without them (add a range: usermod --add-subuids 100000-165535 \
             --add-subgids 100000-165535 USER)"
        ),
    )
}
