//! Path operations confined to the container's root.
//!
//! The image is untrusted input: its `/etc` may be a symlink to `/` or to `../../..`. Every path
//! inside the rootfs is therefore resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`, which
//! treats the rootfs as `/` for symlinks and `..` (what BuildKit's `fs.RootPath` and runc's
//! securejoin emulate in user space), and mounts target the resulting file descriptor through
//! `/proc/self/fd/N`, so no path is looked up twice.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Statx, StatxFlags};
use rustix::io::Errno;

/// Lexically cleans a container path into its components, as Go's `filepath.Join("/", p)` does:
/// empty parts and `.` vanish, `..` removes the previous component and stops at the root.
pub(crate) fn components(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(part),
        }
    }
    out
}

/// The components joined into a path relative to the root (`""` is the root itself).
pub(crate) fn join(components: &[&str]) -> String {
    components.join("/")
}

/// `rel` as an `openat` path: the root itself is `.`.
fn at_path(rel: &str) -> &str {
    if rel.is_empty() { "." } else { rel }
}

/// Opens `rel` under `root`, resolving symlinks and `..` inside the root.
pub(crate) fn open_in_root(root: impl AsFd, rel: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    openat2_retry(
        root,
        at_path(rel),
        flags | OFlags::CLOEXEC,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens `rel` under `base` refusing every symlink: for paths recorded as already resolved, where
/// a symlink can only mean the tree was changed under us (by the command, maliciously).
pub(crate) fn open_no_symlinks(
    base: impl AsFd,
    rel: &str,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    openat2_retry(
        base,
        at_path(rel),
        flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
}

/// `openat2` retried on `EAGAIN`, which `RESOLVE_IN_ROOT` returns when a concurrent rename
/// anywhere on the system might have let `..` escape.
fn openat2_retry(
    dir: impl AsFd,
    path: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(&dir, path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN | Errno::INTR) if attempts < 16 => attempts += 1,
            other => return other,
        }
    }
}

/// The path of `fd` for syscalls that take paths (mount): its magic link in `/proc/self/fd`.
pub(crate) fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The host path `fd` refers to.
pub(crate) fn host_path(fd: &OwnedFd) -> Result<String, Errno> {
    let target = rustix::fs::readlink(fd_path(fd), Vec::new())?;
    Ok(target.to_string_lossy().into_owned())
}

/// `statx` of `name` in the directory `dir`, not following a final symlink.
pub(crate) fn stat_at(dir: impl AsFd, name: &str) -> Result<Statx, Errno> {
    rustix::fs::statx(
        dir,
        at_path(name),
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
}

/// `statx` of an open file.
pub(crate) fn stat_fd(fd: impl AsFd) -> Result<Statx, Errno> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
}

/// The file type bits of a `statx` result.
pub(crate) fn file_type(st: &Statx) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode(st.stx_mode.into())
}

/// Whether `st` is an overlayfs whiteout: a character device 0/0.
pub(crate) fn is_whiteout(st: &Statx) -> bool {
    file_type(st) == rustix::fs::FileType::CharacterDevice
        && st.stx_rdev_major == 0
        && st.stx_rdev_minor == 0
}

/// What to create at the end of a missing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// An empty regular file (a mount point for a file bind mount).
    File,
}

/// `mkdir -p` (or, for [`Kind::File`], `mkdir -p` of the parent and `touch`) of `components` under
/// `root`, resolving existing parts inside the root. New entries get mode 0755 (files 0644; the
/// caller's umask is 0) and, with `owner`, that owner. Returns an `O_PATH` descriptor of the
/// final entry.
pub(crate) fn ensure(
    root: &OwnedFd,
    components: &[&str],
    kind: Kind,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd, String> {
    let full = join(components);
    for i in 0..components.len() {
        let prefix = join(&components[..=i]);
        match open_in_root(root, &prefix, OFlags::PATH) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(format!("/{prefix}: {}", crate::error::errno_text(e))),
        }
        // Missing: create it inside its (resolved) parent.
        let parent = open_in_root(
            root,
            &join(&components[..i]),
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .map_err(|e| {
            format!(
                "/{}: {}",
                join(&components[..i]),
                crate::error::errno_text(e)
            )
        })?;
        let name = components[i];
        let last = i + 1 == components.len();
        let created = if last && kind == Kind::File {
            rustix::fs::openat(
                &parent,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755))
        };
        match created {
            Ok(()) => {}
            // Exists but did not resolve: a symlink pointing nowhere.
            Err(Errno::EXIST) => {
                return Err(format!(
                    "/{prefix} is a dangling symlink; create its target in an earlier step"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "creating /{prefix}: {}",
                    crate::error::errno_text(e)
                ));
            }
        }
        if let Some((uid, gid)) = owner {
            rustix::fs::chownat(
                &parent,
                name,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("chown /{prefix}: {}", crate::error::errno_text(e)))?;
        }
    }
    open_in_root(root, &full, OFlags::PATH)
        .map_err(|e| format!("/{full}: {}", crate::error::errno_text(e)))
}

/// Whether the directory `dir` has no entries.
pub(crate) fn dir_is_empty(dir: &OwnedFd) -> Result<bool, Errno> {
    let mut entries = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Extended attributes as sorted `(name, value)` pairs.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The extended attributes of `fd`.
pub(crate) fn xattrs(fd: &OwnedFd) -> Result<Xattrs, Errno> {
    let size = rustix::fs::flistxattr_query(fd)?;
    let mut names = vec![0u8; size];
    let len = rustix::fs::flistxattr(fd, &mut names[..])?;
    names.truncate(len);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).map_err(|_| Errno::INVAL)?;
        let size = rustix::fs::fgetxattr_query(fd, cname.as_c_str())?;
        let mut value = vec![0u8; size];
        let len = rustix::fs::fgetxattr(fd, cname.as_c_str(), &mut value[..])?;
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_clean_like_go() {
        assert_eq!(components("/etc/hosts"), ["etc", "hosts"]);
        assert_eq!(components("a//b/./c/"), ["a", "b", "c"]);
        assert_eq!(components("/../../x/../y"), ["y"]);
        assert!(components("/").is_empty());
        assert!(components("").is_empty());
    }

    #[test]
    fn ensure_creates_missing_parts_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        // A symlink that would escape the root if followed on the host.
        std::os::unix::fs::symlink("/", dir.path().join("escape")).unwrap();
        let root =
            rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        ensure(&root, &["etc", "hosts"], Kind::File, None).unwrap();
        assert!(dir.path().join("etc/hosts").is_file());
        ensure(&root, &["escape", "inside", "deep"], Kind::Dir, None).unwrap();
        assert!(dir.path().join("inside/deep").is_dir());
        std::os::unix::fs::symlink("/nowhere", dir.path().join("dangling")).unwrap();
        let err = ensure(&root, &["dangling"], Kind::Dir, None).unwrap_err();
        assert!(err.contains("dangling symlink"), "{err}");
    }

    #[test]
    fn dir_is_empty_ignores_dot_entries() {
        let dir = tempfile::tempdir().unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        assert!(dir_is_empty(&fd).unwrap());
        std::fs::write(dir.path().join("f"), "").unwrap();
        let fd = rustix::fs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        assert!(!dir_is_empty(&fd).unwrap());
    }
}
