//! Mounting the rootfs: an overlay of the image layers, or a bind mount of a plain directory.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, fsconfig_create,
    fsconfig_set_fd, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
};

use crate::Rootfs;
use crate::error::{Failure, errno_text};

/// Options every overlay gets, and why:
/// * `index=off`: no inode index in the work dir; hard-link copy-up semantics stay simple and the
///   upper dir can be diffed by walking it.
/// * `redirect_dir=nofollow`: renaming a lower directory fails with `EXDEV` (tools fall back to
///   copy and delete) instead of writing redirect xattrs that a plain upper-dir walk cannot diff
///   (BuildKit's differ refuses them too), and a redirect xattr smuggled in by an image layer is
///   not followed. (`off` would still follow them, and conflicts with `userxattr`.)
/// * `metacopy=off`: a `chmod`/`chown` copies the whole file up, so every changed file in the
///   upper dir has its data.
///
/// Plus the flag `volatile`: no sync of the upper filesystem, neither the command's `fsync`s
/// (dpkg issues thousands) nor the `syncfs` of the *whole* upper filesystem that unmounting a
/// regular overlay performs (80 ms measured here on a busy machine, seconds after a large build).
/// A step's upper dir needs no durability: it is discarded, or turned into a layer blob that the
/// store writes and syncs itself. See [`clear_volatile_marker`] for the price.
const FIXED_OPTIONS: [(&str, &str); 3] = [
    ("index", "off"),
    ("redirect_dir", "nofollow"),
    ("metacopy", "off"),
];

/// The kernel's limit on `mount(2)` option data is one page, terminating NUL included.
const LEGACY_OPTIONS_MAX: usize = 4095;
/// The kernel's limit on an `fsconfig(FSCONFIG_SET_STRING)` value, NUL included.
const FSCONFIG_STRING_MAX: usize = 255;

/// Mounts `rootfs` on the empty directory `target`. `in_user_namespace` adds overlayfs'
/// `userxattr` (overlay metadata in `user.overlay.*`), without which an unprivileged overlay
/// mounts but fails with `EIO` on the first deleted lower directory.
pub(crate) fn mount(
    rootfs: &Rootfs,
    target: &Path,
    in_user_namespace: bool,
) -> Result<(), Failure> {
    let fail = |message: String| Failure::Mount {
        what: "the rootfs".into(),
        target: "/".into(),
        message,
    };
    match rootfs {
        Rootfs::Dir(dir) => {
            // A bind mount makes the directory a mount point, which pivot_root needs.
            rustix::mount::mount_bind_recursive(dir, target)
                .map_err(|e| fail(format!("bind {}: {}", dir.display(), errno_text(e))))
        }
        Rootfs::Overlay {
            lower_dirs,
            upper_dir,
            work_dir,
        } => {
            let layers = Layers {
                lower: lower_dirs,
                upper: upper_dir,
                work: work_dir,
                userxattr: in_user_namespace,
            };
            match layers.legacy_options() {
                Some(options) => layers.mount_legacy(&options, target),
                None => layers.mount_fsconfig(target),
            }
            .map_err(fail)
        }
    }
}

/// The overlay's directories.
struct Layers<'a> {
    lower: &'a [PathBuf],
    upper: &'a Path,
    work: &'a Path,
    userxattr: bool,
}

impl Layers<'_> {
    /// The classic `mount(2)` option string, when it fits in a page and needs no escaping (`:`,
    /// `,` and `\` are separators or escapes there). It is one syscall instead of one per layer.
    fn legacy_options(&self) -> Option<String> {
        let paths = self
            .lower
            .iter()
            .map(|p| p.as_path())
            .chain([self.upper, self.work])
            .map(|p| p.to_str())
            .collect::<Option<Vec<_>>>()?;
        if paths.iter().any(|p| p.contains([':', ',', '\\'])) {
            return None;
        }
        let (upper, work) = (paths[paths.len() - 2], paths[paths.len() - 1]);
        let mut options = format!(
            "lowerdir={},upperdir={upper},workdir={work}",
            paths[..paths.len() - 2].join(":")
        );
        for (key, value) in FIXED_OPTIONS {
            options.push_str(&format!(",{key}={value}"));
        }
        options.push_str(",volatile");
        if self.userxattr {
            options.push_str(",userxattr");
        }
        (options.len() <= LEGACY_OPTIONS_MAX).then_some(options)
    }

    fn mount_legacy(&self, options: &str, target: &Path) -> Result<(), String> {
        let data = CString::new(options).map_err(|_| "a layer path contains NUL".to_owned())?;
        rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| {
            format!(
                "{} (overlay options: {options}){}",
                errno_text(e),
                hint(e, self.userxattr)
            )
        })
    }

    /// The new mount API: one `fsconfig` per layer (`lowerdir+`, Linux 6.8+), so there is no
    /// option-length limit and no escaping; a path too long for an `fsconfig` string is passed as
    /// an open directory instead (Linux 6.13+).
    fn mount_fsconfig(&self, target: &Path) -> Result<(), String> {
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| format!("fsopen(overlay): {}", errno_text(e)))?;
        let step = |what: String, result: Result<(), Errno>| {
            result.map_err(|e| {
                format!(
                    "{what}: {}{}{}",
                    errno_text(e),
                    kernel_messages(&fs),
                    hint(e, self.userxattr)
                )
            })
        };
        for (i, lower) in self.lower.iter().enumerate() {
            step(
                format!("lower layer {i} ({})", lower.display()),
                set_layer(&fs, "lowerdir+", lower),
            )?;
        }
        step(
            format!("upper dir {}", self.upper.display()),
            set_layer(&fs, "upperdir", self.upper),
        )?;
        step(
            format!("work dir {}", self.work.display()),
            set_layer(&fs, "workdir", self.work),
        )?;
        for (key, value) in FIXED_OPTIONS {
            step(
                format!("{key}={value}"),
                fsconfig_set_string(&fs, key, value),
            )?;
        }
        step("volatile".into(), fsconfig_set_flag(&fs, "volatile"))?;
        if self.userxattr {
            step("userxattr".into(), fsconfig_set_flag(&fs, "userxattr"))?;
        }
        step("creating the overlay".into(), fsconfig_create(&fs))?;
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
            .map_err(|e| format!("fsmount: {}", errno_text(e)))?;
        move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| format!("move_mount: {}", errno_text(e)))
    }
}

/// A volatile overlay leaves `WORK/work/incompat/volatile` behind, and overlayfs refuses to mount
/// that upper and work pair again while it exists: after a crash the unsynced upper dir cannot be
/// trusted. After a clean unmount it can (the page cache holds every write), so the marker goes,
/// and the pair stays reusable by a later run or by whoever reads the layer.
pub(crate) fn clear_volatile_marker(rootfs: &Rootfs) -> Result<(), String> {
    let Rootfs::Overlay { work_dir, .. } = rootfs else {
        return Ok(());
    };
    // A directory holding marker directories (`dirty` on recent kernels).
    let marker = work_dir.join("work/incompat/volatile");
    match std::fs::remove_dir_all(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("removing {}: {e}", marker.display()))
        }
        _ => Ok(()),
    }
}

/// Passes one layer directory to the overlay being configured.
fn set_layer(fs: &OwnedFd, key: &str, path: &Path) -> Result<(), Errno> {
    if path.as_os_str().len() < FSCONFIG_STRING_MAX {
        return fsconfig_set_string(fs, key, path);
    }
    let dir: OwnedFd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    fsconfig_set_fd(fs, key, &dir)
}

/// The kernel's own explanation, which the new mount API queues on the configuration fd
/// (`e overlayfs: …` lines).
fn kernel_messages(fs: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        out.push_str(" [");
        out.push_str(line.trim_end());
        out.push(']');
    }
    out
}

/// A hint for the usual causes of an overlay mount failure.
fn hint(errno: Errno, userxattr: bool) -> &'static str {
    match errno {
        Errno::INVAL if userxattr => {
            "; rootless overlay needs Linux 5.11+ and all layers on filesystems that support \
             user xattrs; the work dir must be empty and on the upper dir's filesystem"
        }
        Errno::INVAL => {
            "; the work dir must be empty and on the upper dir's filesystem, and the upper dir \
             must not be in use by another overlay"
        }
        Errno::NOENT => "; a layer directory does not exist",
        Errno::NODEV => "; the kernel has no overlayfs",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers<'a>(lower: &'a [PathBuf], userxattr: bool) -> Layers<'a> {
        Layers {
            lower,
            upper: Path::new("/u"),
            work: Path::new("/w"),
            userxattr,
        }
    }

    #[test]
    fn legacy_options_when_short_and_plain() {
        let lower = [PathBuf::from("/l1"), PathBuf::from("/l2")];
        assert_eq!(
            layers(&lower, false).legacy_options().unwrap(),
            "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,index=off,redirect_dir=nofollow,metacopy=off,\
             volatile"
        );
        assert!(
            layers(&lower, true)
                .legacy_options()
                .unwrap()
                .ends_with(",userxattr")
        );
    }

    #[test]
    fn new_api_for_long_or_special_paths() {
        assert!(
            layers(&[PathBuf::from("/a:b")], false)
                .legacy_options()
                .is_none()
        );
        assert!(
            layers(&[PathBuf::from("/a,b")], false)
                .legacy_options()
                .is_none()
        );
        let many: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/layers/{i:040}")))
            .collect();
        assert!(layers(&many, false).legacy_options().is_none());
    }
}
