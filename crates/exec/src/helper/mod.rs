//! The helper: the caller's binary re-executed, single-threaded, owning the container's namespaces.
//!
//! It runs in this order, each step needing the previous one:
//!
//! 1. Read the spec; mark the protocol pipes close-on-exec so the command never inherits them.
//! 2. Join the build's network namespace for [`Network::Sandbox`] (see [`crate::netns`]), then
//!    `unshare` the mount, PID, UTS and IPC namespaces (network too for `--network=none`), all in
//!    one call, with a user namespace first when not root: the kernel then makes the user namespace
//!    the owner of the others, which is what lets an unprivileged process mount in them. A rootless
//!    helper then maps itself (uid and gid) to root, the one mapping it may write unaided. (Under
//!    a rootless stagecraft the helper is root already, of the user namespace the caller entered
//!    with [`crate::userns::enter_rootless`], and creates none.) Whatever user namespace it ends
//!    up in decides the rest: outside the host's, the overlay needs `userxattr`, and only the
//!    ids it maps can be a `USER` (see [`crate::userns`]).
//! 3. Make `/` private, recursively, **before mounting anything**: the copied mount table shares
//!    propagation with the host's (systemd mounts `/` shared), and every mount below would
//!    otherwise appear on the host.
//! 4. Mount the rootfs on the per-run mount point.
//! 5. Resolve `USER` from the rootfs' own `/etc/passwd` and `/etc/group` (the image decides who
//!    `app` is), then create the cwd owned by that user, as BuildKit does before starting runc.
//! 6. Create the mount points the image lacks, noting what to remove afterwards (see [`stubs`]).
//! 7. Block the signals to forward, fork the init (PID 1 of the new PID namespace, see
//!    [`init`]), forward signals to it, kill it on cancel, and reap it.
//! 8. Unmount the rootfs (the init's own mount namespace died with it), remove the mount stubs
//!    from the layer, and report.

pub(crate) mod fs;
mod init;
mod look_path;
mod rootfs;
mod stubs;

use crate::process::check_single_threaded;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::{Errno, FdFlags};
use rustix::mount::{MountPropagationFlags, UnmountFlags};
use rustix::process::{Pid, PidfdFlags, WaitOptions};
use rustix::thread::UnshareFlags;

use crate::error::{Failure, errno_text};
use crate::hints::USERNS_HINT;
use crate::protocol::{self, HelperSpec, Report, SPEC_FD_ARG, STATUS_FD_ARG};
use crate::userns::{IdSpace, map_caller_to_root};
use crate::{ExitStatus, MountKind, Network, Rootfs};

/// Signals the helper passes on to the command, so that signalling the helper (the process the
/// caller knows) reaches the command. The command, as PID 1 of its namespace, only receives those
/// it installed a handler for, exactly as under runc.
const FORWARDED_SIGNALS: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// BuildKit's limit on `/etc/passwd` and `/etc/group` (`maxUserFileBytes`).
const MAX_USER_FILE_BYTES: u64 = 10 << 20;

/// The exec helper's entry point: call it when the process was started with [`crate::HELPER_ARG`]
/// as its first argument, passing the arguments after it, **before starting any thread** (see the
/// crate docs). It runs the step the parent sends over the inherited pipes and exits; it never
/// returns.
pub fn helper_main(args: &[OsString]) -> ! {
    std::process::exit(main(args))
}

// The helper is a process of its own: its stderr is how it reports to the parent.
#[allow(clippy::print_stderr)]
fn main(args: &[OsString]) -> i32 {
    if args.len() == 1 && args[0] == crate::netns::NEW_NETNS_ARG {
        return crate::netns::hold_new_netns();
    }
    let (spec_fd, status_fd) = match take_pipes(args) {
        Ok(fds) => fds,
        Err(message) => {
            // No status pipe to report on: this is for a human who started the helper by hand.
            eprintln!("stagecraft exec helper: {message}");
            return 2;
        }
    };
    let mut spec_pipe = File::from(spec_fd);
    let spec = match protocol::read_spec(&mut spec_pipe) {
        Ok(spec) => spec,
        Err(error) => {
            let failure = Failure::InvalidSpec(error.to_string());
            let _ = protocol::send(&status_fd, &Report::Failed(failure));
            return 1;
        }
    };
    match supervise(&spec, spec_pipe.as_fd(), status_fd.as_fd()) {
        Ok(()) => 0,
        Err(failure) => {
            // If the parent is gone, nobody is left to tell.
            let _ = protocol::send(&status_fd, &Report::Failed(failure));
            1
        }
    }
}

/// Why what the parent hands the helper (the arguments naming its pipes, the descriptors) is
/// unusable.
#[derive(Debug, thiserror::Error)]
enum HandoverError {
    /// An argument that is not UTF-8.
    #[error("non-UTF-8 argument")]
    NotUtf8,
    /// An argument other than the two descriptor flags.
    #[error("unexpected argument {0:?}; the helper is started by stagecraft_exec::Executor")]
    Unexpected(String),
    /// A descriptor flag whose value is not a number.
    #[error("bad descriptor in {0:?}")]
    BadDescriptor(String),
    /// One of the descriptor flags is missing.
    #[error("missing {SPEC_FD_ARG}N or {STATUS_FD_ARG}M")]
    Missing,
    /// Standard streams, or the same descriptor twice.
    #[error("bad descriptor numbers")]
    BadNumbers,
    /// A descriptor that is not open.
    #[error("descriptor {fd}: {}", errno_text(*.errno))]
    Closed { fd: i32, errno: rustix::io::Errno },
}

/// Takes ownership of the spec and status pipes named by `--spec-fd=N --status-fd=M`.
fn take_pipes(args: &[OsString]) -> Result<(OwnedFd, OwnedFd), HandoverError> {
    let (mut spec, mut status) = (None, None);
    for arg in args {
        let arg = arg.to_str().ok_or(HandoverError::NotUtf8)?;
        let (slot, value) = if let Some(v) = arg.strip_prefix(SPEC_FD_ARG) {
            (&mut spec, v)
        } else if let Some(v) = arg.strip_prefix(STATUS_FD_ARG) {
            (&mut status, v)
        } else {
            return Err(HandoverError::Unexpected(arg.to_owned()));
        };
        let fd: i32 = value
            .parse()
            .map_err(|_| HandoverError::BadDescriptor(arg.to_owned()))?;
        *slot = Some(fd);
    }
    let (Some(spec), Some(status)) = (spec, status) else {
        return Err(HandoverError::Missing);
    };
    if spec < 3 || status < 3 || spec == status {
        return Err(HandoverError::BadNumbers);
    }
    Ok((adopt_fd(spec)?, adopt_fd(status)?))
}

/// Takes ownership of a descriptor the parent passed by number (see `Executor::spawn`), marking
/// it close-on-exec: it had to survive this process's `execve`; the command must not inherit it.
fn adopt_fd(fd: i32) -> Result<OwnedFd, HandoverError> {
    // SAFETY: F_GETFD only inspects the descriptor number; it does not claim ownership.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let closed = |errno| HandoverError::Closed { fd, errno };
    rustix::io::fcntl_getfd(borrowed).map_err(closed)?;
    rustix::io::fcntl_setfd(borrowed, FdFlags::CLOEXEC).map_err(closed)?;
    // SAFETY: the parent opened it for this process alone and passed its number, once; nothing
    // else in this fresh process owns it, and it is open (checked).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Steps 2–8 of the module docs.
fn supervise(
    spec: &HelperSpec,
    control: BorrowedFd<'_>,
    status: BorrowedFd<'_>,
) -> Result<(), Failure> {
    check_single_threaded("helper_main").map_err(Failure::Setup)?;
    // With umask 0 the modes passed to mkdir/mknod are the modes created: 0755 for the cwd, as
    // BuildKit's MkdirAll under buildkitd's usual 022. The init sets 022 for the command.
    rustix::process::umask(Mode::empty());
    let netns = match (spec.network, spec.netns_fd) {
        (Network::Sandbox, Some(fd)) => {
            Some(adopt_fd(fd).map_err(|e| Failure::InvalidSpec(e.to_string()))?)
        }
        (Network::Sandbox, None) => {
            return Err(Failure::InvalidSpec(
                "the sandbox network without a namespace descriptor".into(),
            ));
        }
        _ => None,
    };
    enter_namespaces(spec.network, netns, !rustix::process::geteuid().is_root())?;
    let ids = IdSpace::current().map_err(Failure::Namespaces)?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| Failure::Namespaces(format!("making / private: {}", errno_text(e))))?;

    rootfs::mount(&spec.rootfs, &spec.mount_point, !ids.is_initial())?;
    // From here on, every way out goes through the cleanup: the stubs created so far must go, and
    // a volatile overlay must be unmounted and unmarked or its work dir cannot be mounted again.
    let mut plan = stubs::Plan::default();
    let mut upper = None;
    let outcome = prepare_and_run(spec, &ids, &mut plan, &mut upper, status, control);
    if let Err(message) = unmount_and_clean(spec, plan, upper) {
        let _ = protocol::send(status, &Report::CleanupFailed(message));
    }
    let (exit, cancelled) = outcome?;
    let _ = protocol::send(
        status,
        &Report::Exited {
            status: exit,
            cancelled,
        },
    );
    Ok(())
}

/// Steps 5–7, with the rootfs mounted: user, cwd, mount stubs (recorded in `plan`, with the upper
/// directory they live in put in `upper`), then the container itself.
fn prepare_and_run(
    spec: &HelperSpec,
    ids: &IdSpace,
    plan: &mut stubs::Plan,
    upper: &mut Option<OwnedFd>,
    status: BorrowedFd<'_>,
    control: BorrowedFd<'_>,
) -> Result<(ExitStatus, bool), Failure> {
    // Dropped before the container runs: an open descriptor would keep the rootfs busy and make
    // the unmount fail.
    let root = rustix::fs::open(
        &spec.mount_point,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Failure::Setup(format!("opening the rootfs: {}", errno_text(e))))?;

    let passwd = read_user_file(&root, "etc/passwd")?;
    let group = read_user_file(&root, "etc/group")?;
    let user = crate::user::resolve(&spec.user, passwd.as_deref(), group.as_deref())
        .map_err(Failure::User)?;
    if user.uid == u32::MAX || user.gid == u32::MAX {
        return Err(Failure::User(format!(
            "{:?} resolves to uid {} gid {}; 4294967295 is not a valid id",
            spec.user, user.uid, user.gid
        )));
    }
    ids.check_user(&spec.user, user.uid, user.gid)
        .map_err(Failure::User)?;
    let env = crate::env::finalize(&spec.env, || crate::user::home(user.uid, passwd.as_deref()));

    fs::ensure(
        &root,
        &fs::components(&spec.cwd),
        fs::Kind::Dir,
        Some((user.uid, user.gid)),
    )
    .map_err(|m| {
        Failure::Setup(format!(
            "failed to create working directory {}: {m}",
            spec.cwd
        ))
    })?;

    if let Rootfs::Overlay { upper_dir, .. } = &spec.rootfs {
        let fd = rustix::fs::open(
            upper_dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Failure::Setup(format!(
                "opening {}: {}",
                upper_dir.display(),
                errno_text(e)
            ))
        })?;
        *upper = Some(fd);
    }
    plan.create(&root, upper.as_ref(), &stub_targets(spec))
        .map_err(Failure::Setup)?;
    drop(root);
    run_container(spec, &user, env, ids, status, control)
}

/// The mount points in the rootfs itself, with what each must be. Targets under `/proc`, `/dev`
/// and `/sys` are left to the init: they land in the filesystems mounted there, not in the layer.
fn stub_targets(spec: &HelperSpec) -> Vec<(&str, fs::Kind)> {
    let mut targets = vec![
        ("/proc", fs::Kind::Dir),
        ("/dev", fs::Kind::Dir),
        ("/sys", fs::Kind::Dir),
        ("/etc/resolv.conf", fs::Kind::File),
        ("/etc/hosts", fs::Kind::File),
    ];
    for mount in &spec.mounts {
        if matches!(
            fs::components(&mount.target).first(),
            Some(&("proc" | "dev" | "sys"))
        ) {
            continue;
        }
        let kind = match &mount.kind {
            MountKind::Bind { source, .. } if !source.is_dir() => fs::Kind::File,
            MountKind::Secret { .. } => fs::Kind::File,
            _ => fs::Kind::Dir,
        };
        targets.push((mount.target.as_str(), kind));
    }
    targets
}

/// Step 2 of the module docs: `netns` is the build's namespace to join, for
/// [`Network::Sandbox`].
fn enter_namespaces(network: Network, netns: Option<OwnedFd>, userns: bool) -> Result<(), Failure> {
    if let Some(netns) = netns {
        // Before a user namespace is created: joining needs CAP_SYS_ADMIN over the namespace's
        // owner, the caller's user namespace, which a new one would not have.
        rustix::thread::move_into_link_name_space(
            netns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| {
            Failure::Namespaces(format!(
                "joining the build's network namespace: {}",
                errno_text(e)
            ))
        })?;
    }
    let (uid, gid) = (rustix::process::getuid(), rustix::process::getgid());
    let mut flags =
        UnshareFlags::NEWNS | UnshareFlags::NEWPID | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    if network == Network::None {
        flags |= UnshareFlags::NEWNET;
    }
    if userns {
        flags |= UnshareFlags::NEWUSER;
    }
    // SAFETY: no FILES flag (the hazard of `unshare_unsafe`), and this process has one thread.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| {
        let hint = match (e, userns) {
            (Errno::PERM, false) => {
                "; root without CAP_SYS_ADMIN (inside an unprivileged container?)"
            }
            (Errno::PERM | Errno::NOSPC | Errno::INVAL, true) => USERNS_HINT,
            _ => "",
        };
        Failure::Namespaces(format!("unshare: {}{hint}", errno_text(e)))
    })?;
    if userns {
        map_caller_to_root(uid.as_raw(), gid.as_raw()).map_err(Failure::Namespaces)?;
    }
    Ok(())
}

/// The contents of a rootfs file for user lookup, `None` when missing or not a regular file (as
/// BuildKit's `openUserFile`; the non-blocking open keeps a FIFO from hanging the build).
fn read_user_file(root: &OwnedFd, rel: &str) -> Result<Option<String>, Failure> {
    let Ok(fd) = fs::open_in_root(
        root,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    ) else {
        return Ok(None);
    };
    match fs::stat_fd(&fd) {
        Ok(st) if fs::file_type(&st) == FileType::RegularFile => {}
        _ => return Ok(None),
    }
    let mut data = Vec::new();
    File::from(fd)
        .take(MAX_USER_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| Failure::User(format!("reading /{rel}: {e}")))?;
    if data.len() as u64 > MAX_USER_FILE_BYTES {
        return Err(Failure::User(format!(
            "\"/{rel}\" exceeds {MAX_USER_FILE_BYTES} bytes"
        )));
    }
    Ok(Some(String::from_utf8_lossy(&data).into_owned()))
}

/// Step 7: fork the init and supervise it. Returns how the command ended and whether it was
/// cancelled.
fn run_container(
    spec: &HelperSpec,
    user: &crate::user::ExecUser,
    env: Vec<String>,
    ids: &IdSpace,
    status: BorrowedFd<'_>,
    control: BorrowedFd<'_>,
) -> Result<(ExitStatus, bool), Failure> {
    let fail = |what: &str, e: String| Failure::Setup(format!("{what}: {e}"));
    // Blocked before the fork so that none arrives unforwarded in between; the init unblocks them
    // before exec.
    let mut forwarded = SigSet::empty();
    for signal in FORWARDED_SIGNALS {
        forwarded.add(signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None)
        .map_err(|e| fail("blocking signals", e.to_string()))?;
    let signals = SignalFd::with_flags(&forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| fail("signalfd", e.to_string()))?;
    let (lifeline_read, lifeline_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| fail("pipe", errno_text(e)))?;
    let init = init::Init {
        spec,
        user,
        env,
        ids,
        lifeline: lifeline_read,
        status,
    };

    // SAFETY: this process has a single thread (checked in `supervise`), so the child may run any
    // code, allocation included.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // Only the helper may hold the lifeline's write end, or the init could not tell
            // that the helper died.
            drop(lifeline_write);
            drop(signals);
            init::run(init)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(init);
            let result = monitor(child.as_raw(), &signals, control);
            // Held until the init is gone: while open, it proves to the init that we are alive.
            drop(lifeline_write);
            result
        }
        Err(e) => Err(Failure::Namespaces(format!("fork: {e}"))),
    }
}

/// Waits for the init to exit, forwarding signals and turning a readable control pipe (cancel, or
/// the parent died) into `SIGKILL`.
fn monitor(
    child: i32,
    signals: &SignalFd,
    control: BorrowedFd<'_>,
) -> Result<(ExitStatus, bool), Failure> {
    let pid = Pid::from_raw(child).ok_or_else(|| Failure::Setup("fork returned pid 0".into()))?;
    let pidfd = rustix::process::pidfd_open(pid, PidfdFlags::empty())
        .map_err(|e| Failure::Setup(format!("pidfd_open: {}", errno_text(e))))?;
    let kill = |signal: rustix::process::Signal| rustix::process::pidfd_send_signal(&pidfd, signal);
    let mut cancelled = false;
    loop {
        let mut fds = vec![
            rustix::event::PollFd::new(&pidfd, rustix::event::PollFlags::IN),
            rustix::event::PollFd::new(signals, rustix::event::PollFlags::IN),
        ];
        if !cancelled {
            fds.push(rustix::event::PollFd::new(
                &control,
                rustix::event::PollFlags::IN,
            ));
        }
        if let Err(e) = rustix::event::poll(&mut fds, None)
            && e != Errno::INTR
        {
            // Cannot supervise any more: stop the command rather than leave it unattended.
            drop(fds);
            let _ = kill(rustix::process::Signal::KILL);
            let _ = reap(pid);
            return Err(Failure::Setup(format!("poll: {}", errno_text(e))));
        }
        let ready = |i: usize| fds.get(i).is_some_and(|fd| !fd.revents().is_empty());
        let (exited, signalled, cancel) = (ready(0), ready(1), ready(2));
        drop(fds);
        if signalled {
            while let Ok(Some(info)) = signals.read_signal() {
                if let Some(signal) = rustix::process::Signal::from_named_raw(info.ssi_signo as i32)
                {
                    let _ = kill(signal);
                }
            }
        }
        if cancel {
            let _ = kill(rustix::process::Signal::KILL);
            cancelled = true;
        }
        if exited {
            break;
        }
    }
    let exit = reap(pid)?;
    Ok((exit, cancelled))
}

/// Waits for the (exited or killed) init.
fn reap(pid: Pid) -> Result<ExitStatus, Failure> {
    let status = loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => break status,
            Ok(None) | Err(Errno::INTR) => {}
            Err(e) => return Err(Failure::Setup(format!("waitpid: {}", errno_text(e)))),
        }
    };
    Ok(match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(signal)) => ExitStatus::Signal(signal),
        (None, None) => ExitStatus::Code(-1),
    })
}

/// Step 8. The init's mount namespace is gone with its last process, so the rootfs is mounted
/// only in this namespace and unmounts cleanly; the stubs are then removed from the layer itself.
fn unmount_and_clean(
    spec: &HelperSpec,
    plan: stubs::Plan,
    upper: Option<OwnedFd>,
) -> Result<(), String> {
    rustix::mount::unmount(&spec.mount_point, UnmountFlags::empty())
        .map_err(|e| format!("unmounting the rootfs: {}", errno_text(e)))?;
    let marker = rootfs::clear_volatile_marker(&spec.rootfs);
    let base = match (upper, &spec.rootfs) {
        (Some(upper), _) => upper,
        (None, Rootfs::Dir(dir)) | (None, Rootfs::Overlay { upper_dir: dir, .. }) => {
            rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| format!("opening {}: {}", dir.display(), errno_text(e)))?
        }
    };
    plan.clean(&base).and(marker)
}
