//! Removing what a layer replaces (trees, stale extended attributes, entries not unpacked),
//! always through descriptors of the directories involved.

use super::is_permission_like;
use crate::error::{Error, Result};
use crate::whiteout::OverlayXattr;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// On a directory kept from a lower layer, removes the xattrs the layer's
/// entry no longer lists: the entry describes the directory completely, and
/// stacking the layers with overlayfs would not show the old ones either.
/// Host-assigned SELinux labels and overlayfs markers are left alone.
pub(super) fn remove_stale_xattrs(
    entry: &[u8],
    fd: BorrowedFd<'_>,
    keep: &[(Vec<u8>, Vec<u8>)],
) -> Result<()> {
    let fail = |e| Error::apply(entry, "list xattrs of existing directory", e);
    // 64 KiB is the kernel's limit for a list of xattr names (XATTR_LIST_MAX).
    let mut buf = vec![0u8; 64 * 1024];
    let len = match rustix::fs::flistxattr(fd, &mut buf[..]) {
        Ok(len) => len,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    for name in buf[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let protected = name == b"security.selinux"
            || name.starts_with(OverlayXattr::Trusted.prefix().as_bytes())
            || name.starts_with(OverlayXattr::User.prefix().as_bytes());
        if protected || keep.iter().any(|(k, _)| k == name) {
            continue;
        }
        match rustix::fs::fremovexattr(fd, name) {
            Ok(()) | Err(Errno::NODATA) => {}
            // Not ours to remove (e.g. `trusted.*` without privileges):
            // leave it rather than fail the layer.
            Err(e) if is_permission_like(e) => {}
            Err(e) => return Err(Error::apply(entry, "remove stale xattr", e)),
        }
    }
    Ok(())
}

/// Where to set xattrs: an open file, or a name in a directory (symlinks and
/// device nodes, which cannot or must not be opened).
#[derive(Clone, Copy)]
pub(super) enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a [u8]),
}

/// Removes `name` in `dir` and, if it is a directory, everything in it,
/// never following symlinks. Missing is fine.
pub(super) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in child_names(&sub)? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

pub(super) fn child_names(dir: &OwnedFd) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// The opaque-directory rule of docker's applier: below `rel`, remove every
/// path this layer did not create, descending into directories it did.
pub(super) fn remove_not_unpacked(
    dir: OwnedFd,
    rel: &[u8],
    unpacked: &HashSet<Vec<u8>>,
) -> rustix::io::Result<()> {
    for name in child_names(&dir)? {
        let mut child = rel.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(&name);
        if !unpacked.contains(&child) {
            remove_all_at(dir.as_fd(), &name)?;
            continue;
        }
        match rustix::fs::openat(
            &dir,
            name.as_slice(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(sub) => remove_not_unpacked(sub, &child, unpacked)?,
            // Not a directory (or a symlink): kept as is.
            Err(Errno::NOTDIR | Errno::LOOP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
