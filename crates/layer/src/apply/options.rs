//! What an apply is asked to do and what it reports: whiteout handling, options, the
//! entries it skipped and its stats.

use std::fmt;

use crate::compress::Compression;
use crate::whiteout::OverlayXattr;

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Apply them: `.wh.<name>` deletes `<name>`, and `.wh..wh..opq` removes
    /// from its directory everything this layer did not itself create (the
    /// contents of lower layers). This is what flattening into one rootfs needs.
    #[default]
    Delete,
    /// Record them the way overlayfs does, so the directory can serve as one
    /// `lowerdir=` of an overlay mount: `.wh.<name>` becomes a 0/0 character
    /// device named `<name>` (replacing anything there), and `.wh..wh..opq`
    /// sets the opaque xattr (`trusted.overlay.opaque=y` for
    /// [`OverlayXattr::Trusted`], `user.overlay.opaque=y` for
    /// [`OverlayXattr::User`]) on its directory. Nothing is deleted for an
    /// opaque marker: the target is expected to be a fresh directory per layer.
    Overlay(OverlayXattr),
}

/// Options for [`apply_layer`](crate::apply_layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Set owners from the tar's numeric uid/gid. When false, files belong to
    /// the applying user. Failing to chown is an error when this is set.
    pub chown: bool,
    /// How whiteouts are applied.
    pub whiteouts: WhiteoutMode,
}

impl Default for ApplyOptions {
    /// Chown when running as root, delete whiteouts.
    fn default() -> Self {
        Self {
            chown: rustix::process::geteuid().is_root(),
            whiteouts: WhiteoutMode::Delete,
        }
    }
}

/// Something [`apply_layer`](crate::apply_layer) skipped instead of failing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyWarning {
    /// A device node could not be created (creating devices needs
    /// `CAP_MKNOD`, which rootless builds lack).
    DeviceSkipped {
        /// The entry name.
        entry: String,
        /// The error the kernel gave.
        reason: String,
    },
    /// An extended attribute was not set: the filesystem or the caller's
    /// privileges do not allow it, or it is an overlayfs-private attribute,
    /// which a layer must not be able to plant.
    XattrSkipped {
        /// The entry name.
        entry: String,
        /// The attribute name.
        name: String,
        /// Why it was skipped.
        reason: String,
    },
    /// An entry that carries no file was ignored (AUFS whiteout metadata such
    /// as `.wh..wh.plnk`, or a PAX global header).
    EntrySkipped {
        /// The entry name.
        entry: String,
        /// Why it was skipped.
        reason: String,
    },
}

impl fmt::Display for ApplyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeviceSkipped { entry, reason } => {
                write!(f, "device node {entry:?} not created: {reason}")
            }
            Self::XattrSkipped {
                entry,
                name,
                reason,
            } => {
                write!(f, "xattr {name:?} on {entry:?} not set: {reason}")
            }
            Self::EntrySkipped { entry, reason } => write!(f, "entry {entry:?} skipped: {reason}"),
        }
    }
}

/// What [`apply_layer`](crate::apply_layer) did, and the digests of what it read (to check
/// against the manifest's digest and the config's diff-id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// The compression recognised from the stream's magic bytes (levels are
    /// not recoverable and are reported as the defaults).
    pub compression: Compression,
    /// `sha256:<hex>` of the stream as read (the blob digest).
    pub digest: String,
    /// Bytes of the stream as read.
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar (the diff-id).
    pub diff_id: String,
    /// Bytes of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Entries applied (files, directories, links, devices, whiteouts, markers).
    pub entries: u64,
    /// `.wh.<name>` entries applied.
    pub whiteouts: u64,
    /// `.wh..wh..opq` entries applied.
    pub opaque_dirs: u64,
    /// What was skipped rather than applied.
    pub warnings: Vec<ApplyWarning>,
}
