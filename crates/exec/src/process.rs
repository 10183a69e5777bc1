//! Process plumbing shared by the executor, the helper and the namespace holders: how the
//! helper is started, descriptors it inherits, pipes, the single-thread rule, and the
//! capabilities a step keeps.

use crate::HELPER_ARG;
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use rustix::io::FdFlags;
use rustix::thread::CapabilitySet;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// How to start the helper: a program and the arguments that make it call
/// [`crate::helper_main`]. The executor appends its own `--spec-fd=N --status-fd=M`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCommand {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
}

impl HelperCommand {
    /// Any program and leading arguments, e.g. a dedicated helper binary, or a wrapper such as
    /// `setpriv … -- stagecraft __stagecraft-exec`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The running binary itself (`/proc/self/exe`, which stays valid even if the file is
    /// replaced on disk) with [`HELPER_ARG`]: the usual choice, given the wiring in the crate docs.
    pub fn current_exe() -> Self {
        Self::new("/proc/self/exe", [HELPER_ARG])
    }
}

/// Makes `command`'s child inherit exactly `fds` (opened close-on-exec here), which must stay
/// open until it is spawned.
pub(crate) fn inherit_fds(command: &mut Command, fds: impl IntoIterator<Item = RawFd>) {
    let fds: Vec<RawFd> = fds.into_iter().collect();
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2), which
    // is async-signal-safe and allocates nothing. The caller keeps the descriptors open until
    // after the spawn.
    unsafe {
        command.pre_exec(move || {
            for &fd in &fds {
                // Clear close-on-exec on exactly these, in the child only, so no other process
                // spawned concurrently by the caller inherits them.
                rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), FdFlags::empty())?;
            }
            Ok(())
        });
    }
}

/// A close-on-exec pipe whose ends are both numbered 3 or above: a caller that closed its stdin
/// would otherwise get descriptor 0 here, which the helper's stdio set-up would overwrite.
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let above_stdio = |fd: OwnedFd| {
        if fd.as_raw_fd() > 2 {
            Ok(fd)
        } else {
            rustix::io::fcntl_dupfd_cloexec(&fd, 3)
        }
    };
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .and_then(|(r, w)| Ok((above_stdio(r)?, above_stdio(w)?)))?;
    Ok((read, write))
}

/// `unshare(CLONE_NEWUSER)` fails in a multi-threaded process and `fork` there is unsafe for the
/// code the child runs; a binary that starts threads before calling `function` (`helper_main`,
/// `enter_rootless`) is miswired.
pub(crate) fn check_single_threaded(function: &str) -> Result<(), String> {
    // A /proc/PID/task directory links "." and ".." plus one entry per thread.
    match std::fs::metadata("/proc/self/task") {
        Ok(meta) if meta.nlink() > 3 => Err(format!(
            "this process has {} threads; {function} must run before anything starts a thread \
             (call it first thing in main)",
            meta.nlink() - 2
        )),
        _ => Ok(()),
    }
}

/// containerd's default capability set (`oci.defaultUnixCaps`), which BuildKit's containers get,
/// the same as `docker run`'s.
pub(crate) const DEFAULT_CAPABILITIES: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::MKNOD)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::AUDIT_WRITE);
