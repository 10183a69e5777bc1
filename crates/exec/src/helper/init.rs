//! The container's init: PID 1 of the new PID namespace, forked by the helper. It finishes the
//! container (mounts, root switch, identity) and `execve`s the command, becoming it.
//!
//! The order follows runc's `prepareRootfs`/`finalizeNamespace` and containerd's default spec, the
//! runtime and spec BuildKit uses:
//!
//! 1. Die with the helper (parent-death signal, then a check that the helper had not already died).
//! 2. A mount namespace of its own, nested in the helper's: every mount below vanishes when the
//!    container's last process exits, while the helper keeps a plain view of the rootfs to clean
//!    the mount stubs out of it afterwards.
//! 3. `/proc` (this process is in the new PID namespace, so the new procfs shows the container's
//!    processes), `/dev` (tmpfs), `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys`, then
//!    `/etc/resolv.conf` and `/etc/hosts` (read-only binds), then the step's extra mounts (secret
//!    files written to a tmpfs of this namespace first, see [`secret_files`]), then the
//!    device nodes and `/dev` symlinks, which need the `/dev` tmpfs. Every mount point is resolved
//!    inside the rootfs (never following a symlink out of it). The helper already created the
//!    missing ones in the rootfs; those inside other mounts (`/dev/pts`, a target within a bind
//!    mount) are created here.
//! 4. `pivot_root` into the rootfs and detach the old root: the host tree becomes unreachable.
//! 5. Mask and write-protect the sensitive parts of `/proc` and `/sys` (containerd's
//!    `maskedPaths`/`readonlyPaths`). This needs the new root, and must precede the capability
//!    drop because mounting needs `CAP_SYS_ADMIN`.
//! 6. Hostname, loopback interface (`--network=none`), resource limits (`--ulimit`): also
//!    privileged, so before the drop.
//! 7. Docker's default seccomp profile (while still privileged, as runc loads it), capabilities
//!    down to Docker's default set, then groups, gid, uid (in that order: changing the uid first
//!    would lose the right to change groups). `--security=insecure` skips the filter, the masks
//!    and the capability drop, as BuildKit's insecure mode does.
//! 8. `chdir` to the cwd (tried before the uid change too, like runc: a cwd only root may enter
//!    still works for root), close stray descriptors, restore signal state and umask, look the
//!    command up in `PATH` like runc (Go's `exec.LookPath`), `execve`. When the kernel refuses the
//!    program, the start of its binary goes back with the failure, so the parent can tell a
//!    foreign program without an emulator (see [`crate::emulation`]).

use super::look_path::look_path;
use crate::hints::PROC_IN_CONTAINER_HINT;
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::fs::{Kind, components, ensure, fd_path, open_in_root};
use crate::emulation::ProgramHead;
use crate::error::{Failure, errno_text};
use crate::process::DEFAULT_CAPABILITIES;
use crate::protocol::{HelperSpec, Report, send};
use crate::user::ExecUser;
use crate::userns::IdSpace;
use crate::{MountKind, Network, Security};

/// containerd's default `maskedPaths`: hidden behind `/dev/null` (files) or an empty read-only
/// tmpfs (directories).
const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// containerd's default `readonlyPaths`.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// runc's default devices: name, major, minor (all `crw-rw-rw- root root`).
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// runc's `/dev` symlinks.
const DEV_SYMLINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

/// The init's exit code when it fails before the command runs (Docker's "container could not
/// start" code). The report on the status pipe is what the parent goes by; the code only shows if
/// that pipe is gone.
const EXIT_SETUP_FAILED: i32 = 125;

/// What the init needs from the helper.
pub(crate) struct Init<'a> {
    pub(crate) spec: &'a HelperSpec,
    pub(crate) user: &'a ExecUser,
    /// The final environment (`HOME` added).
    pub(crate) env: Vec<String>,
    /// The user namespace the step runs in.
    pub(crate) ids: &'a IdSpace,
    /// The read end of a pipe whose write end only the helper holds.
    pub(crate) lifeline: OwnedFd,
    /// Where to report a failure.
    pub(crate) status: BorrowedFd<'a>,
}

/// Runs the init; never returns: it becomes the command or exits.
pub(crate) fn run(init: Init<'_>) -> ! {
    let failure = match setup_and_exec(&init) {
        Err(failure) => failure,
        Ok(never) => match never {},
    };
    // If the parent is gone there is nobody to tell; the exit code is all that is left.
    let _ = send(init.status, &Report::Failed(failure));
    // `_exit`: this is a forked copy of the helper; its exit handlers and buffers are the helper's.
    // SAFETY: _exit(2) ends the process without touching any state of ours.
    unsafe { nix::libc::_exit(EXIT_SETUP_FAILED) }
}

fn setup(message: impl std::fmt::Display) -> Failure {
    Failure::Setup(message.to_string())
}

fn setup_and_exec(init: &Init<'_>) -> Result<Infallible, Failure> {
    let spec = init.spec;

    // 1. Die with the helper. The signal is armed first; if the helper died before that, the
    // lifeline pipe (whose write end only the helper held) already reports a hang-up.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|e| setup(format!("prctl(PR_SET_PDEATHSIG): {}", errno_text(e))))?;
    let mut lifeline = [rustix::event::PollFd::new(
        &init.lifeline,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut lifeline, Some(&zero)).is_ok_and(|n| n > 0) {
        return Err(setup("the exec helper exited during set-up"));
    }

    // 2. A nested mount namespace. Descriptors opened before this point refer to the helper's
    // mounts, so the rootfs is opened again afterwards.
    // SAFETY: NEWNS does not unshare the descriptor table (the hazard of `unshare_unsafe`), and
    // this process has one thread.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| Failure::Namespaces(format!("unshare(CLONE_NEWNS): {}", errno_text(e))))?;
    let root = rustix::fs::open(
        &spec.mount_point,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| setup(format!("opening the rootfs: {}", errno_text(e))))?;

    // 3. Mounts.
    standard_mounts(&root, spec, init.ids)?;
    let secrets = secret_files(spec)?;
    for (i, mount) in spec.mounts.iter().enumerate() {
        extra_mount(&root, mount, secrets.get(&i).map(Path::new))?;
    }
    devices(&root)?;

    // 4. Switch roots.
    pivot_root(&root)?;
    drop(root);

    // 5. /proc and /sys protections (need the new root's paths and CAP_SYS_ADMIN); none for
    // `--security=insecure`, as BuildKit clears the spec's lists.
    if spec.security == Security::Sandbox {
        for path in MASKED_PATHS {
            mask_path(path)?;
        }
        for path in READONLY_PATHS {
            readonly_path(path)?;
        }
    }

    // runc creates the cwd inside the jail as well: BuildKit's helper-side mkdir may be hidden
    // by a mount (a cwd inside a cache mount).
    let cwd = format!("/{}", components(&spec.cwd).join("/"));
    mkdir_all(&cwd)?;

    // 6. UTS and network.
    rustix::system::sethostname(spec.hostname.as_bytes())
        .map_err(|e| setup(format!("sethostname({}): {}", spec.hostname, errno_text(e))))?;
    if spec.network == Network::None {
        loopback_up()?;
    }
    // Raising a hard limit needs CAP_SYS_RESOURCE: before the filter and the drop.
    crate::limits::apply(&spec.ulimits).map_err(setup)?;

    // 7. Seccomp, then identity. The filter goes on while the init still has CAP_SYS_ADMIN, as
    // runc loads it (no `no_new_privs`: setuid binaries keep working, as under Docker); the calls
    // left before `execve` are all in the allow-list. The cwd is tried while still root, as runc
    // does: a cwd only root may enter still works for a root command.
    if let Some(filters) = &spec.seccomp {
        filters
            .install()
            .map_err(|e| setup(format!("installing the seccomp filter: {}", errno_text(e))))?;
    }
    let chdir_as_root = rustix::process::chdir(cwd.as_str());
    match spec.security {
        Security::Sandbox => {
            drop_capabilities()?;
            set_identity(init.user, init.ids)?;
        }
        Security::Insecure => keep_all_capabilities(init.user, init.ids)?,
    }
    // Changing the uid/gid cleared the parent-death signal.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|e| setup(format!("prctl(PR_SET_PDEATHSIG): {}", errno_text(e))))?;

    // 8. cwd with the user's permissions, descriptors, signals, umask, exec.
    if chdir_as_root.is_err() {
        rustix::process::chdir(cwd.as_str())
            .map_err(|e| setup(format!("chdir to the cwd {cwd:?}: {}", errno_text(e))))?;
    }
    close_stray_descriptors()?;
    restore_signals()?;
    rustix::process::umask(Mode::from_raw_mode(0o022));
    exec(&spec.args, &init.env)
}

/// The spec's standard mounts: containerd's default set minus `/run` (BuildKit removes it) and
/// cgroups (not supported yet), plus BuildKit's resolv.conf and hosts binds.
fn standard_mounts(root: &OwnedFd, spec: &HelperSpec, ids: &IdSpace) -> Result<(), Failure> {
    let nosuid_noexec_nodev = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    try_mount_new(root, "/proc", "proc", "proc", nosuid_noexec_nodev, None)?.map_err(|e| {
        let mut message = errno_text(e);
        if e == Errno::PERM {
            message.push_str(PROC_IN_CONTAINER_HINT);
        }
        mount_failure("proc", "/proc", message)
    })?;
    mount_new(
        root,
        "/dev",
        "tmpfs",
        "tmpfs",
        MountFlags::NOSUID | MountFlags::STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    // A user namespace without subordinate ids has no gid 5 (tty); runc's rootless conversion
    // drops the option then.
    let devpts = if ids.maps_gid(5) {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mount_new(
        root,
        "/dev/pts",
        "devpts",
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some(devpts),
    )?;
    // BuildKit's /dev/shm is 64 MiB unless the build says otherwise (`--shm-size`).
    let shm = match spec.shm_size {
        Some(bytes) => format!("mode=1777,size={bytes}"),
        None => "mode=1777,size=65536k".to_owned(),
    };
    mount_new(
        root,
        "/dev/shm",
        "shm",
        "tmpfs",
        nosuid_noexec_nodev,
        Some(&shm),
    )?;
    mount_new(
        root,
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        nosuid_noexec_nodev,
        None,
    )?;
    sysfs(root, spec.security)?;
    bind(
        root,
        &spec.resolv_conf,
        "/etc/resolv.conf",
        Kind::File,
        Some(nosuid_noexec_nodev),
    )?;
    bind(
        root,
        &spec.hosts_file,
        "/etc/hosts",
        Kind::File,
        Some(nosuid_noexec_nodev),
    )
}

/// One of the step's extra mounts; `secret` is the file [`secret_files`] wrote for a secret mount.
fn extra_mount(root: &OwnedFd, mount: &crate::Mount, secret: Option<&Path>) -> Result<(), Failure> {
    match &mount.kind {
        MountKind::Bind { source, readonly } => {
            let kind = if source.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            };
            bind(
                root,
                source,
                &mount.target,
                kind,
                readonly.then_some(MountFlags::empty()),
            )
        }
        MountKind::Tmpfs { size } => {
            let options = size.map(|s| format!("size={s}"));
            mount_new(
                root,
                &mount.target,
                "tmpfs",
                "tmpfs",
                MountFlags::NOSUID,
                options.as_deref(),
            )
        }
        MountKind::Secret { .. } => {
            let source = secret.ok_or_else(|| setup("internal: a secret mount has no file"))?;
            bind(
                root,
                source,
                &mount.target,
                Kind::File,
                Some(MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC),
            )
        }
    }
}

/// Writes each secret mount's file, by mount index, into a tmpfs mounted on the spec's
/// `secrets_dir` in this (the init's) mount namespace, as BuildKit serves secrets from a tmpfs.
/// Nothing reaches a disk: the tmpfs is visible in no other namespace, the binds onto the targets
/// keep it alive after `pivot_root` detaches the mount point, and it is gone with the namespace,
/// whether the command exits or everything is killed.
fn secret_files(spec: &HelperSpec) -> Result<std::collections::BTreeMap<usize, String>, Failure> {
    let secrets: Vec<(usize, &[u8], u32, u32, u32)> = spec
        .mounts
        .iter()
        .enumerate()
        .filter_map(|(i, mount)| match &mount.kind {
            MountKind::Secret {
                data,
                mode,
                uid,
                gid,
            } => Some((i, data.as_bytes(), *mode, *uid, *gid)),
            _ => None,
        })
        .collect();
    let mut files = std::collections::BTreeMap::new();
    if secrets.is_empty() {
        return Ok(files);
    }
    let dir = spec
        .secrets_dir
        .to_str()
        .ok_or_else(|| setup("secrets dir: not UTF-8"))?;
    let fail = |what: String, e: Errno| Failure::Mount {
        what: "secret".into(),
        target: what,
        message: errno_text(e),
    };
    // Room for every file whatever the page size (64 KiB at most), and no more: `size=0` would
    // mean no limit.
    let size: usize = secrets.iter().map(|s| s.1.len() + (64 << 10)).sum();
    let options = CString::new(format!("mode=0700,size={size}"))
        .map_err(|_| setup("internal: tmpfs options"))?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(options.as_c_str()),
    )
    .map_err(|e| fail(dir.to_owned(), e))?;
    for (i, data, mode, uid, gid) in secrets {
        let target = &spec.mounts[i].target;
        let path = format!("{dir}/{i}");
        let file = rustix::fs::open(
            path.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| fail(target.clone(), e))?;
        let mut rest = data;
        while !rest.is_empty() {
            match rustix::io::write(&file, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(fail(target.clone(), e)),
            }
        }
        rustix::fs::fchown(
            &file,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| Failure::Mount {
            what: "secret".into(),
            target: target.clone(),
            message: format!("owner {uid}:{gid}: {}", errno_text(e)),
        })?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode & 0o777))
            .map_err(|e| fail(target.clone(), e))?;
        files.insert(i, path);
    }
    Ok(files)
}

/// Creates the mount point `target` (a directory) in the rootfs and mounts a new `fstype` on it.
fn mount_new(
    root: &OwnedFd,
    target: &str,
    source: &str,
    fstype: &str,
    flags: MountFlags,
    options: Option<&str>,
) -> Result<(), Failure> {
    try_mount_new(root, target, source, fstype, flags, options)?
        .map_err(|e| mount_failure(fstype, target, errno_text(e)))
}

/// [`mount_new`], with the `mount` syscall's own error kept apart (the inner result) for callers
/// that have a fallback.
fn try_mount_new(
    root: &OwnedFd,
    target: &str,
    source: &str,
    fstype: &str,
    flags: MountFlags,
    options: Option<&str>,
) -> Result<Result<(), Errno>, Failure> {
    let point = ensure(root, &components(target), Kind::Dir, None)
        .map_err(|message| mount_failure(fstype, target, message))?;
    let data = options
        .map(CString::new)
        .transpose()
        .map_err(|_| mount_failure(fstype, target, "mount options contain NUL".into()))?;
    Ok(rustix::mount::mount(
        source,
        fd_path(&point).as_str(),
        fstype,
        flags,
        data.as_deref(),
    ))
}

fn mount_failure(what: &str, target: &str, message: String) -> Failure {
    Failure::Mount {
        what: what.to_owned(),
        target: target.to_owned(),
        message,
    }
}

/// `/sys`, read-only but for `--security=insecure` (BuildKit's `WithWriteableSysfs`). A new
/// sysfs is only allowed to the owner of the network namespace, so in a user namespace on the host
/// network it is refused: bind the host's `/sys` then, as runc's rootless conversion does.
fn sysfs(root: &OwnedFd, security: Security) -> Result<(), Failure> {
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV;
    let readonly = match security {
        Security::Sandbox => MountFlags::RDONLY,
        Security::Insecure => MountFlags::empty(),
    };
    match try_mount_new(root, "/sys", "sysfs", "sysfs", flags | readonly, None)? {
        Ok(()) => Ok(()),
        Err(Errno::PERM) => bind(root, Path::new("/sys"), "/sys", Kind::Dir, Some(flags)),
        Err(e) => Err(mount_failure("sysfs", "/sys", errno_text(e))),
    }
}

/// Bind-mounts the host path `source` (recursively, like BuildKit's `rbind`) on `target`, made
/// read-only with `readonly_extra` flags added when that is `Some`.
fn bind(
    root: &OwnedFd,
    source: &Path,
    target: &str,
    kind: Kind,
    readonly_extra: Option<MountFlags>,
) -> Result<(), Failure> {
    let fail = |message: String| Failure::Mount {
        what: format!("bind {}", source.display()),
        target: target.to_owned(),
        message,
    };
    let components = components(target);
    let point = ensure(root, &components, kind, None).map_err(&fail)?;
    rustix::mount::mount_bind_recursive(source, fd_path(&point).as_str())
        .map_err(|e| fail(errno_text(e)))?;
    if let Some(extra) = readonly_extra {
        // A remount must name the new mount's root; the old descriptor names the mount point
        // under it, so resolve the path again.
        let mounted = open_in_root(root, &components.join("/"), OFlags::PATH)
            .map_err(|e| fail(errno_text(e)))?;
        remount_readonly(&fd_path(&mounted), extra)
            .map_err(|e| fail(format!("remount read-only: {}", errno_text(e))))?;
    }
    Ok(())
}

/// Makes the bind mount at `path` read-only, adding `extra` and keeping its current flags: in a
/// user namespace, flags inherited from a more privileged mount (nosuid, nodev, atime…) are locked
/// and a remount that drops them fails.
fn remount_readonly(path: &str, extra: MountFlags) -> Result<(), Errno> {
    use rustix::fs::StatVfsMountFlags as St;
    let current = rustix::fs::statvfs(path)?.f_flag;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY | extra;
    for (st, ms) in [
        (St::NOSUID, MountFlags::NOSUID),
        (St::NODEV, MountFlags::NODEV),
        (St::NOEXEC, MountFlags::NOEXEC),
        (St::NOATIME, MountFlags::NOATIME),
        (St::NODIRATIME, MountFlags::NODIRATIME),
        (St::RELATIME, MountFlags::RELATIME),
    ] {
        if current.contains(st) {
            flags |= ms;
        }
    }
    rustix::mount::mount_remount(path, flags, "")
}

/// runc's default device nodes in the `/dev` tmpfs: created with `mknod` when allowed, else (in a
/// user namespace) bind-mounted from the host's `/dev`. Then runc's `/dev` symlinks.
fn devices(root: &OwnedFd) -> Result<(), Failure> {
    let dev = open_in_root(root, "dev", OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| setup(format!("opening /dev: {}", errno_text(e))))?;
    for (name, major, minor) in DEVICES {
        let fail = |message: String| Failure::Mount {
            what: format!("device /dev/{name}"),
            target: format!("/dev/{name}"),
            message,
        };
        match rustix::fs::mknodat(
            &dev,
            name,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(major, minor),
        ) {
            Ok(()) => {}
            Err(Errno::PERM) => {
                let node = rustix::fs::openat(
                    &dev,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o666),
                )
                .map_err(|e| fail(errno_text(e)))?;
                let host = format!("/dev/{name}");
                rustix::mount::mount_bind(host.as_str(), fd_path(&node).as_str())
                    .map_err(|e| fail(errno_text(e)))?;
            }
            Err(e) => return Err(fail(errno_text(e))),
        }
    }
    let mut links: Vec<(&str, &str)> = DEV_SYMLINKS.to_vec();
    if rustix::fs::accessat(
        root,
        "proc/kcore",
        rustix::fs::Access::EXISTS,
        AtFlags::empty(),
    )
    .is_ok()
    {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        rustix::fs::symlinkat(target, &dev, name)
            .map_err(|e| setup(format!("symlink /dev/{name}: {}", errno_text(e))))?;
    }
    Ok(())
}

/// `pivot_root(".", ".")` as runc does it: no directory for the old root is needed, and the old
/// root, stacked on top of the new one, is detached right away.
fn pivot_root(root: &OwnedFd) -> Result<(), Failure> {
    let fail = |what: &str, e: Errno| setup(format!("{what}: {}", errno_text(e)));
    rustix::process::fchdir(root).map_err(|e| fail("entering the rootfs", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| fail("pivot_root", e))?;
    // The mount namespace is private (the helper made it so), so this unmount cannot propagate.
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| fail("detaching the old root", e))?;
    rustix::process::chdir("/").map_err(|e| fail("chdir /", e))
}

/// runc's `maskPath`.
fn mask_path(path: &str) -> Result<(), Failure> {
    let result = match rustix::mount::mount_bind("/dev/null", path) {
        Err(Errno::NOTDIR) => {
            rustix::mount::mount("tmpfs", path, "tmpfs", MountFlags::RDONLY, None)
        }
        other => other,
    };
    unless_missing(result, "a mask", path)
}

/// runc's `readonlyPath`.
fn readonly_path(path: &str) -> Result<(), Failure> {
    let result = rustix::mount::mount_bind_recursive(path, path)
        .and_then(|()| remount_readonly(path, MountFlags::empty()));
    unless_missing(result, "a read-only bind", path)
}

/// A mount of `what` on `path`, where a path the image lacks is nothing to protect (runc
/// skips those too).
fn unless_missing(result: rustix::io::Result<()>, what: &str, path: &str) -> Result<(), Failure> {
    match result {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(Failure::Mount {
            what: what.into(),
            target: path.into(),
            message: errno_text(e),
        }),
    }
}

/// `mkdir -p` inside the new root, as root, mode 0755.
fn mkdir_all(path: &str) -> Result<(), Failure> {
    let mut prefix = String::new();
    for part in components(path) {
        prefix.push('/');
        prefix.push_str(part);
        match rustix::fs::mkdir(prefix.as_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(setup(format!(
                    "creating the cwd {prefix}: {}",
                    errno_text(e)
                )));
            }
        }
    }
    Ok(())
}

/// Brings `lo` up in the fresh network namespace, as runc's `loopback` network strategy does.
fn loopback_up() -> Result<(), Failure> {
    let fail = |what: &str, e: std::io::Error| setup(format!("bringing lo up: {what}: {e}"));
    // SAFETY: plain socket(2); the result is checked and owned right away.
    let fd = unsafe {
        nix::libc::socket(
            nix::libc::AF_INET,
            nix::libc::SOCK_DGRAM | nix::libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(fail("socket", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let socket = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: nix::libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as nix::libc::c_char;
    }
    let raw = std::os::fd::AsRawFd::as_raw_fd(&socket);
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the `ifreq` passed by pointer, which lives
    // across the calls; the union member used is `ifru_flags`, the one these requests define.
    unsafe {
        if nix::libc::ioctl(raw, nix::libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(fail("SIOCGIFFLAGS", std::io::Error::last_os_error()));
        }
        req.ifr_ifru.ifru_flags |=
            (nix::libc::IFF_UP | nix::libc::IFF_RUNNING) as nix::libc::c_short;
        if nix::libc::ioctl(raw, nix::libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(fail("SIOCSIFFLAGS", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Limits the bounding set to [`DEFAULT_CAPABILITIES`], so nothing the command executes can gain
/// more (setuid binaries, file capabilities), clears the ambient and inheritable sets, and trims
/// the effective and permitted sets. A root command then runs with exactly the default set; any
/// other user runs with none, as with runc (`execve` by a non-root user keeps only ambient
/// capabilities).
fn drop_capabilities() -> Result<(), Failure> {
    let fail =
        |what: &str, e: Errno| setup(format!("dropping capabilities: {what}: {}", errno_text(e)));
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if DEFAULT_CAPABILITIES.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            // EINVAL: the kernel has no capability with this number.
            Ok(()) | Err(Errno::INVAL) => {}
            Err(e) => return Err(fail("PR_CAPBSET_DROP", e)),
        }
    }
    match rustix::thread::clear_ambient_capability_set() {
        Ok(()) | Err(Errno::INVAL) => {}
        Err(e) => return Err(fail("PR_CAP_AMBIENT_CLEAR_ALL", e)),
    }
    let current = rustix::thread::capabilities(None).map_err(|e| fail("capget", e))?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: current.effective & DEFAULT_CAPABILITIES,
            permitted: current.permitted & DEFAULT_CAPABILITIES,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| fail("capset", e))
}

/// `--security=insecure`: every capability the init has (all of them, in its user namespace)
/// stays in every set, ambient included, so that a non-root `USER` keeps them across `execve`, as
/// BuildKit's `WithInsecureSpec` grants. The kernel clears the permitted set when the uid leaves
/// 0 unless `PR_SET_KEEPCAPS` is on; runc keeps them the same way and re-applies them afterwards.
fn keep_all_capabilities(user: &ExecUser, ids: &IdSpace) -> Result<(), Failure> {
    let fail =
        |what: &str, e: Errno| setup(format!("keeping capabilities: {what}: {}", errno_text(e)));
    rustix::thread::set_keep_capabilities(true).map_err(|e| fail("PR_SET_KEEPCAPS", e))?;
    set_identity(user, ids)?;
    rustix::thread::set_keep_capabilities(false).map_err(|e| fail("PR_SET_KEEPCAPS", e))?;
    let all = rustix::thread::capabilities(None)
        .map_err(|e| fail("capget", e))?
        .permitted;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: all,
            permitted: all,
            inheritable: all,
        },
    )
    .map_err(|e| fail("capset", e))?;
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if all.contains(cap) {
            rustix::thread::configure_capability_in_ambient_set(cap, true)
                .map_err(|e| fail("PR_CAP_AMBIENT_RAISE", e))?;
        }
    }
    Ok(())
}

/// `setgroups`, `setresgid`, `setresuid`, as runc's `setupUser`. The raw per-thread syscalls are
/// right here: this process has a single thread.
fn set_identity(user: &ExecUser, ids: &IdSpace) -> Result<(), Failure> {
    let fail = |what: &str, e: Errno| setup(format!("setting the user: {what}: {}", errno_text(e)));
    // With the single-id map of a rootless run, setgroups is denied (the kernel requires it for an
    // unprivileged gid map) and only root exists anyway.
    if ids.setgroups {
        let groups: Vec<rustix::fs::Gid> = user
            .groups
            .iter()
            .map(|g| rustix::fs::Gid::from_raw(*g))
            .collect();
        rustix::thread::set_thread_groups(&groups).map_err(|e| fail("setgroups", e))?;
    }
    let gid = rustix::fs::Gid::from_raw(user.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    let uid = rustix::fs::Uid::from_raw(user.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| fail("setresuid", e))
}

/// Marks every descriptor but stdio close-on-exec, so nothing the helper inherited from its own
/// parent leaks into the command (runc's `CloseExecFrom`).
fn close_stray_descriptors() -> Result<(), Failure> {
    // close_range(2) with CLOSE_RANGE_CLOEXEC (Linux 5.11) through the raw syscall, so an older
    // C library does not matter.
    // SAFETY: close_range takes integers only and touches no memory; it marks descriptors
    // close-on-exec, invalidating no handle this process still uses.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            3u32,
            u32::MAX,
            nix::libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc < 0 {
        return Err(setup(format!(
            "close_range: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Gives the command default signal dispositions and an empty mask: the helper blocked the
/// forwarded signals before forking, and ignored dispositions (Rust ignores `SIGPIPE`) survive
/// `execve`.
fn restore_signals() -> Result<(), Failure> {
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }
            .map_err(|e| setup(format!("resetting {signal}: {e}")))?;
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| setup(format!("unblocking signals: {e}")))
}

/// runc's final step: `exec.LookPath(args[0])` with the command's `PATH`, then `execve`.
fn exec(args: &[String], env: &[String]) -> Result<Infallible, Failure> {
    let file = args
        .first()
        .ok_or_else(|| Failure::InvalidSpec("no command: args is empty".into()))?;
    let path =
        look_path(file, crate::env::path_var(env)).map_err(|e| Failure::Start(e.to_string()))?;
    let to_c =
        |s: &str| CString::new(s).map_err(|_| Failure::InvalidSpec(format!("{s:?} contains NUL")));
    let c_path = to_c(&path)?;
    let c_args = args
        .iter()
        .map(|a| to_c(a))
        .collect::<Result<Vec<_>, _>>()?;
    let c_env = env.iter().map(|e| to_c(e)).collect::<Result<Vec<_>, _>>()?;
    // execve itself, never execvp's fallback of handing a file the kernel refused (ENOEXEC) to
    // /bin/sh: that would feed a foreign ELF to the shell instead of failing.
    let errno = match nix::unistd::execve(&c_path, &c_args, &c_env) {
        Err(errno) => Errno::from_raw_os_error(errno as i32),
        Ok(never) => match never {},
    };
    let message = format!("exec {path}: {}", errno_text(errno));
    Err(match errno {
        // The kernel has no way to run the file (ENOEXEC), or misses a file it needs for it
        // (ENOENT: the file itself was just found). A program of another architecture without a
        // usable binfmt_misc interpreter fails so; the parent, which sees the host's
        // binfmt_misc, tells from the start of the binary, read here where the path resolves in
        // the container's root. Only this failure path pays for the read.
        Errno::NOEXEC | Errno::NOENT => Failure::Exec {
            message,
            head: ProgramHead::read(&path),
            program: path,
            errno: errno.raw_os_error(),
        },
        _ => Failure::Start(message),
    })
}

#[cfg(test)]
#[path = "init_tests.rs"]
mod tests;
