//! Mount stubs: the mount points the container needs but the image lacks.
//!
//! Mounting `/etc/hosts` onto an image without one means creating an empty `/etc/hosts` first, and
//! that file would end up in the layer. BuildKit's `MountStubsCleaner` (`executor/stubs.go`) notes
//! which mount targets are missing before the run, and afterwards removes those that are still an
//! empty file or an empty directory, restoring the parent directory's times. This module does the
//! same, in recursive mode (a missing `/etc` is removed too), with two refinements:
//!
//! * The helper creates the stubs itself, so it knows the parent directory's times before and
//!   right after: when the command did not touch that directory, its original times come back
//!   (BuildKit can only undo the removal, leaving the stub's creation time).
//! * Creating `/etc/hosts` makes overlayfs copy `/etc` up into the upper directory. A copied-up
//!   directory that is still empty and still has the lower directory's mode, owner and xattrs is
//!   removed from the upper directory as well, so the upper directory holds exactly what the
//!   command changed, whatever differ reads it.
//!
//! The stubs are created in the helper's view of the merged rootfs before the init starts; the
//! cleanup runs after the rootfs is unmounted, directly on the upper directory (or the plain rootfs
//! directory), with every path re-resolved refusing symlinks, because the command could have
//! replaced a parent directory with a symlink to a host path.

use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Statx, Timespec, Timestamps};
use rustix::io::Errno;

use super::fs::{
    self, Kind, file_type, is_whiteout, open_in_root, open_no_symlinks, stat_at, stat_fd,
};
use crate::error::errno_text;

/// A mount point created for the run.
#[derive(Debug)]
struct Stub {
    /// Its path relative to the root, every symlink already resolved.
    path: String,
    /// The upper directory had a whiteout at this path, which creating the stub replaced: it is
    /// put back after the stub is removed, or the lower file would reappear.
    whiteout: bool,
}

/// An existing directory in which stubs were created.
#[derive(Debug)]
struct Parent {
    /// Its path relative to the root.
    path: String,
    /// Its times before the first stub was created in it.
    before: Timestamps,
    /// Its modification time after the last stub was created in it: if it still has that at
    /// cleanup, the command did not touch it and `before` is restored.
    after: Timespec,
}

/// A directory of the lower layers that creating a stub copied up, as it was before.
#[derive(Debug)]
struct CopiedUp {
    path: String,
    mode: u16,
    uid: u32,
    gid: u32,
    xattrs: fs::Xattrs,
}

/// What to undo after the run.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    stubs: Vec<Stub>,
    parents: Vec<Parent>,
    copied_up: Vec<CopiedUp>,
}

impl Plan {
    /// Creates the missing parts of each target path in the rootfs mounted at `root` (the merged
    /// view), as directories except a [`Kind::File`] target's last component, and records what to
    /// undo, also when it fails part-way. `upper` is the overlay's upper directory, for whiteouts
    /// and copy-ups.
    pub(crate) fn create(
        &mut self,
        root: &OwnedFd,
        upper: Option<&OwnedFd>,
        targets: &[(&str, Kind)],
    ) -> Result<(), String> {
        let root_path =
            fs::host_path(root).map_err(|e| format!("locating the rootfs: {}", errno_text(e)))?;
        for (target, kind) in targets {
            let components = fs::components(target);
            // The deepest existing prefix, resolved, and the index of the first missing component.
            let mut resolved = String::new();
            let mut missing_from = None;
            for i in 0..components.len() {
                match open_in_root(root, &fs::join(&components[..=i]), OFlags::PATH) {
                    Ok(fd) => resolved = relative(&root_path, &fd)?,
                    Err(Errno::NOENT) => {
                        missing_from = Some(i);
                        break;
                    }
                    // Not a directory on the way, etc.: the mount itself will fail and say why.
                    Err(_) => break,
                }
            }
            let Some(first_missing) = missing_from else {
                continue;
            };
            self.create_below(root, upper, &resolved, &components[first_missing..], *kind)
                .map_err(|e| match e {
                    // It did not resolve, yet it exists: a symlink to nowhere in the image.
                    Errno::EXIST => format!(
                        "creating the mount point {target}: a component is a dangling symlink"
                    ),
                    e => format!("creating the mount point {target}: {}", errno_text(e)),
                })?;
        }
        Ok(())
    }

    /// Creates `missing` below the existing directory `existing`.
    fn create_below(
        &mut self,
        root: &OwnedFd,
        upper: Option<&OwnedFd>,
        existing: &str,
        missing: &[&str],
        kind: Kind,
    ) -> Result<(), Errno> {
        if let Some(upper) = upper {
            self.note_copy_ups(root, upper, existing)?;
        }
        let mut dir = open_no_symlinks(root, existing, OFlags::PATH | OFlags::DIRECTORY)?;
        let parent_index = match self.parents.iter().position(|p| p.path == existing) {
            Some(i) => i,
            None => {
                let st = stat_fd(&dir)?;
                self.parents.push(Parent {
                    path: existing.to_owned(),
                    before: timestamps(&st),
                    after: timestamps(&st).last_modification,
                });
                self.parents.len() - 1
            }
        };
        let mut path = existing.to_owned();
        for (i, name) in missing.iter().enumerate() {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(name);
            let whiteout = match upper {
                Some(upper) => matches!(stat_in(upper, &path), Ok(st) if is_whiteout(&st)),
                None => false,
            };
            if i + 1 == missing.len() && kind == Kind::File {
                rustix::fs::openat(
                    &dir,
                    *name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )?;
            } else {
                rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o755))?;
            }
            self.stubs.push(Stub {
                path: path.clone(),
                whiteout,
            });
            if i == 0 {
                self.parents[parent_index].after = timestamps(&stat_fd(&dir)?).last_modification;
            }
            if i + 1 < missing.len() {
                dir = open_no_symlinks(&dir, name, OFlags::PATH | OFlags::DIRECTORY)?;
            }
        }
        Ok(())
    }

    /// Snapshots the directories on the way to `existing` (an existing directory of the merged
    /// view in which something is about to be created) that only the lower layers have.
    fn note_copy_ups(
        &mut self,
        root: &OwnedFd,
        upper: &OwnedFd,
        existing: &str,
    ) -> Result<(), Errno> {
        let components = fs::components(existing);
        for i in 0..components.len() {
            let path = fs::join(&components[..=i]);
            if self.copied_up.iter().any(|c| c.path == path) {
                continue;
            }
            match stat_in(upper, &path) {
                Err(Errno::NOENT) => {}
                // Already in the upper dir: not ours to remove.
                _ => continue,
            }
            let dir = open_no_symlinks(root, &path, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let st = stat_fd(&dir)?;
            self.copied_up.push(CopiedUp {
                path,
                mode: st.stx_mode,
                uid: st.stx_uid,
                gid: st.stx_gid,
                xattrs: comparable_xattrs(&dir)?,
            });
        }
        Ok(())
    }

    /// Removes the stubs (and pruneable copied-up directories) from `base`, the upper directory or
    /// the plain rootfs directory, with the rootfs unmounted. Entries that are no longer empty, or
    /// that changed, are left alone, as BuildKit does.
    pub(crate) fn clean(self, base: &OwnedFd) -> Result<(), String> {
        // Children before parents: `etc/hosts` before `etc`.
        let mut stubs = self.stubs;
        stubs.sort_by_key(|s| std::cmp::Reverse(s.path.matches('/').count()));
        for stub in &stubs {
            let parent = self.parents.iter().find(|p| p.path == split(&stub.path).0);
            remove_stub(base, stub, parent)
                .map_err(|e| format!("removing /{}: {}", stub.path, errno_text(e)))?;
        }
        let mut dirs = self.copied_up;
        dirs.sort_by_key(|d| std::cmp::Reverse(d.path.matches('/').count()));
        for dir in &dirs {
            prune_copy_up(base, dir)
                .map_err(|e| format!("removing the copy-up of /{}: {}", dir.path, errno_text(e)))?;
        }
        Ok(())
    }
}

/// The path of `fd` relative to the root at `root_path`.
fn relative(root_path: &str, fd: &OwnedFd) -> Result<String, String> {
    let path =
        fs::host_path(fd).map_err(|e| format!("locating a mount point: {}", errno_text(e)))?;
    match path.strip_prefix(root_path) {
        Some("") => Ok(String::new()),
        Some(rest) if rest.starts_with('/') => Ok(rest.trim_start_matches('/').to_owned()),
        _ => Err(format!(
            "mount point {path} resolved outside the rootfs {root_path}"
        )),
    }
}

/// `statx` of the recorded (symlink-free) `path` under `base`.
fn stat_in(base: &OwnedFd, path: &str) -> Result<rustix::fs::Statx, Errno> {
    let (parent, name) = split(path);
    let dir = open_no_symlinks(base, parent, OFlags::PATH | OFlags::DIRECTORY)?;
    stat_at(&dir, name)
}

/// `("etc", "hosts")` for `etc/hosts`, `("", "etc")` for `etc`.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// The access and modification times of a `statx` result.
fn timestamps(st: &Statx) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.stx_atime.tv_sec,
            tv_nsec: st.stx_atime.tv_nsec.into(),
        },
        last_modification: Timespec {
            tv_sec: st.stx_mtime.tv_sec,
            tv_nsec: st.stx_mtime.tv_nsec.into(),
        },
    }
}

/// Runs `remove` on an entry of `parent`, then gives `parent` back its times so the removal leaves
/// no trace (moby/buildkit#3148): the times from before the stubs were created when the command
/// left the directory alone (`original`), else those from just before the removal.
fn remove_keeping_parent_times(
    parent: &OwnedFd,
    original: Option<&Parent>,
    remove: impl FnOnce() -> Result<(), Errno>,
) -> Result<(), Errno> {
    let now = timestamps(&stat_fd(parent)?);
    remove()?;
    let times = match original {
        Some(p) if p.after == now.last_modification => &p.before,
        _ => &now,
    };
    rustix::fs::futimens(parent, times)
}

fn remove_stub(base: &OwnedFd, stub: &Stub, original: Option<&Parent>) -> Result<(), Errno> {
    let (parent_path, name) = split(&stub.path);
    let parent = match open_no_symlinks(base, parent_path, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        // Gone, or tampered with: nothing we may touch.
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = match stat_at(&parent, name) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let flags = match file_type(&st) {
        FileType::Directory => {
            let dir = fs::open_no_symlinks(&parent, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
            if !fs::dir_is_empty(&dir)? {
                return Ok(());
            }
            AtFlags::REMOVEDIR
        }
        FileType::RegularFile if st.stx_size == 0 => AtFlags::empty(),
        _ => return Ok(()),
    };
    remove_keeping_parent_times(&parent, original, || {
        rustix::fs::unlinkat(&parent, name, flags)?;
        if stub.whiteout {
            rustix::fs::mknodat(
                &parent,
                name,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )?;
        }
        Ok(())
    })
}

fn prune_copy_up(base: &OwnedFd, before: &CopiedUp) -> Result<(), Errno> {
    let (parent_path, name) = split(&before.path);
    let parent = match open_no_symlinks(base, parent_path, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(()),
        Err(e) => return Err(e),
    };
    let dir = match fs::open_no_symlinks(&parent, name, OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = stat_fd(&dir)?;
    let unchanged = st.stx_mode == before.mode
        && st.stx_uid == before.uid
        && st.stx_gid == before.gid
        && comparable_xattrs(&dir)? == before.xattrs
        && fs::dir_is_empty(&dir)?;
    if !unchanged {
        return Ok(());
    }
    drop(dir);
    remove_keeping_parent_times(&parent, None, || {
        rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)
    })
}

/// The xattrs that say something about the directory itself. overlayfs adds `overlay.origin` (a
/// file handle of the lower directory) and `overlay.impure` (bookkeeping for copied-up children)
/// to the upper copy, and hides all `overlay.*` xattrs in the merged view; anything else, an
/// opaque marker in particular, is a real difference.
fn comparable_xattrs(dir: &OwnedFd) -> Result<fs::Xattrs, Errno> {
    const BOOKKEEPING: [&[u8]; 4] = [
        b"trusted.overlay.origin",
        b"trusted.overlay.impure",
        b"user.overlay.origin",
        b"user.overlay.impure",
    ];
    let mut xattrs = fs::xattrs(dir)?;
    xattrs.retain(|(name, _)| !BOOKKEEPING.contains(&name.as_slice()));
    Ok(xattrs)
}
