//! The whiteout conventions layers and overlayfs share: the OCI `.wh.` entries that a layer
//! tar records deletions with, and the overlayfs xattrs that an upper directory records them
//! with. Both writing and applying a layer speak them.

/// The name prefix marking a deleted entry (`.wh.<name>`).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry marking a directory as opaque: nothing from lower layers shows through.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// The prefix of whiteout meta entries (AUFS leftovers and the opaque marker).
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";

/// Which xattr namespace overlayfs keeps its markers in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OverlayXattr {
    /// `trusted.overlay.*`: rootful overlayfs (the default).
    #[default]
    Trusted,
    /// `user.overlay.*`: overlayfs mounted with `userxattr` (rootless).
    User,
}

impl OverlayXattr {
    /// The namespace prefix overlayfs uses, e.g. `trusted.overlay.`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Trusted => "trusted.overlay.",
            Self::User => "user.overlay.",
        }
    }

    /// The xattr that marks a directory opaque, e.g. `trusted.overlay.opaque`
    /// (its value is `y`).
    pub const fn opaque(self) -> &'static str {
        match self {
            Self::Trusted => "trusted.overlay.opaque",
            Self::User => "user.overlay.opaque",
        }
    }

    /// The namespace the overlays of this process use: `trusted.*` xattrs
    /// need `CAP_SYS_ADMIN` in the initial user namespace, so only root of
    /// the host gets [`OverlayXattr::Trusted`]; everyone else, root of a
    /// rootless build's user namespace included, mounts with `userxattr` and
    /// gets [`OverlayXattr::User`].
    pub fn for_current_process() -> Self {
        // The initial namespace maps every id to itself; a kernel without
        // user namespaces has no uid_map at all.
        let initial_namespace = std::fs::read_to_string("/proc/self/uid_map").map_or(true, |map| {
            map.split_whitespace().eq(["0", "0", "4294967295"])
        });
        if initial_namespace && rustix::process::geteuid().is_root() {
            Self::Trusted
        } else {
            Self::User
        }
    }
}
