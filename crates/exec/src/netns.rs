//! The build's network sandbox: one private network namespace shared by the `RUN` steps of a
//! build, connected to the outside by a user-mode network stack. It stands in for BuildKit's
//! default network mode, which gives build containers a network of their own (a CNI bridge for
//! buildkitd, slirp4netns under rootlesskit for a rootless one) and makes the host's network an
//! entitlement (`--allow network.host`).
//!
//! # What a step sees
//!
//! `lo`, up, and `tap0` with `10.0.2.100/24` and a default route via `10.0.2.2`: slirp4netns'
//! network. Each connection leaving it becomes an ordinary socket of the stack process in the
//! caller's network namespace, so package managers work wherever the caller could connect. DNS
//! goes to the stack's forwarder at [`SANDBOX_DNS`](crate::etc_files::SANDBOX_DNS), which asks the host's resolvers (the
//! generated `/etc/resolv.conf` names it, see `etc_files`). `10.0.2.2` does *not* lead to the
//! host's `127.0.0.1` (`--disable-host-loopback`): services listening on the host's loopback,
//! and its interfaces, stay out of reach. The stack itself runs confined
//! (`--enable-sandbox`: its own mount namespace, capabilities dropped; `--enable-seccomp`).
//!
//! # Why slirp4netns, not pasta
//!
//! Both are Debian packages made for this. On Debian 12, slirp4netns (1.2.0) is ready 4 to 30 ms
//! after it starts (on 2 busy cores) and has exactly the hooks a build needs: `--ready-fd` (no
//! polling for readiness) and `--exit-fd` (it exits when a pipe closes, which the kernel does
//! when the build dies, however it dies). pasta (`passt` 2023-03-09) takes 30 to 45 ms; as root it drops to `nobody`
//! before opening the target namespace and then fails, so it needs `--runas 0` and keeps
//! `CAP_SYS_ADMIN`; and nothing ties its lifetime to the build's (it daemonizes, and holds the
//! namespace open after its owner died).
//!
//! # Lifetime
//!
//! [`NetworkSandbox::start`] starts the helper with [`NEW_NETNS_ARG`], which unshares a network
//! namespace (in the caller's user namespace: root's, or a rootless build's, see
//! [`crate::userns`]) and waits; the caller opens `/proc/PID/ns/net` and lets it go. The
//! namespace lives as long as something refers to it: the sandbox's descriptor, the stack, the
//! steps' processes. Then slirp4netns is started on it. Dropping the sandbox closes the exit
//! pipe and waits for the stack; when the process dies instead, the kernel closes the pipe and
//! the namespace descriptor, so neither the stack nor the namespace outlive the build.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rustix::thread::UnshareFlags;

use crate::error::errno_text;
use crate::process::{HelperCommand, inherit_fds, pipe};

/// The user-mode network stack, looked up in `PATH` (Debian package `slirp4netns`).
pub const STACK_PROGRAM: &str = "slirp4netns";

/// The helper argument (after [`crate::HELPER_ARG`]) that makes it create a network namespace.
pub(crate) const NEW_NETNS_ARG: &str = "--new-netns";

/// The tap device in the namespace.
const TAP_NAME: &str = "tap0";

/// Why the network sandbox could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NetworkSandboxError {
    /// No network namespace could be created (no privilege over the current user namespace, a
    /// locked-down container, …).
    #[error("cannot create a network namespace: {0}")]
    Namespace(String),
    /// The stack program is not installed.
    #[error(
        "{program} is not installed (Debian package slirp4netns: apt-get install slirp4netns)",
        program = STACK_PROGRAM
    )]
    StackMissing,
    /// The stack ended before it reported the network ready.
    #[error("{program} failed ({status}): {log}", program = STACK_PROGRAM)]
    StackFailed {
        /// Its wait status, as text.
        status: String,
        /// What it printed.
        log: String,
    },
    /// Starting or talking to a process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// One private network namespace with outbound access through slirp4netns, for the steps of an
/// [`crate::Executor`] made with [`crate::Executor::with_network_sandbox`]. See the module docs.
#[derive(Debug)]
pub struct NetworkSandbox {
    netns: OwnedFd,
    stack: Child,
    /// Closing it makes the stack exit (`--exit-fd`).
    exit: Option<OwnedFd>,
}

impl NetworkSandbox {
    /// Creates the namespace with `helper` (the executor's helper, see [`HelperCommand`]) and
    /// starts the stack on it; returns once the network is configured.
    pub fn start(helper: &HelperCommand) -> Result<Self, NetworkSandboxError> {
        let netns = new_netns(helper)?;
        let (ready_read, ready_write) = pipe().map_err(io_error("creating a pipe"))?;
        let (exit_read, exit_write) = pipe().map_err(io_error("creating a pipe"))?;
        // A file rather than a pipe: nobody reads a pipe during the build, and a full one would
        // block the stack.
        let mut log = tempfile::tempfile().map_err(io_error("creating the stack's log file"))?;
        let mut command = Command::new(STACK_PROGRAM);
        command
            .args([
                "--configure",
                // rootlesskit's and podman's choice: fewer, larger packets through the stack.
                "--mtu=65520",
                "--disable-host-loopback",
                "--enable-sandbox",
                "--enable-seccomp",
                "--netns-type=path",
            ])
            .arg(format!("--ready-fd={}", ready_write.as_raw_fd()))
            .arg(format!("--exit-fd={}", exit_read.as_raw_fd()))
            // The namespace by this descriptor: no path in the file system, and no pid whose
            // owner might be gone.
            .arg(format!("/proc/self/fd/{}", netns.as_raw_fd()))
            .arg(TAP_NAME)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(io_error("duplicating the log file"))?,
            )
            .stderr(
                log.try_clone()
                    .map_err(io_error("duplicating the log file"))?,
            );
        inherit_fds(
            &mut command,
            [
                ready_write.as_raw_fd(),
                exit_read.as_raw_fd(),
                netns.as_raw_fd(),
            ],
        );
        let mut stack = command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => NetworkSandboxError::StackMissing,
            _ => NetworkSandboxError::Io {
                what: format!("starting {STACK_PROGRAM}"),
                source: e,
            },
        })?;
        // Only the stack may hold these: the ready pipe must reach end-of-file if it dies, and
        // the exit pipe's read end here would keep the stack alive after this process died.
        drop(ready_write);
        drop(exit_read);
        let mut byte = [0u8; 1];
        let ready = File::from(ready_read).read(&mut byte);
        if !matches!(ready, Ok(1)) {
            let _ = stack.kill();
            let status = stack.wait().map_err(io_error("waiting for the stack"))?;
            let mut text = String::new();
            let _ = log.rewind();
            let _ = log.read_to_string(&mut text);
            return Err(NetworkSandboxError::StackFailed {
                status: status.to_string(),
                log: text.trim().to_owned(),
            });
        }
        Ok(Self {
            netns,
            stack,
            exit: Some(exit_write),
        })
    }

    /// The namespace, for the helper to join.
    pub(crate) fn netns(&self) -> BorrowedFd<'_> {
        self.netns.as_fd()
    }
}

impl Drop for NetworkSandbox {
    fn drop(&mut self) {
        // The same signal the stack gets when this process dies: the exit pipe closes.
        self.exit.take();
        let _ = self.stack.wait();
    }
}

/// Has the helper create a network namespace and returns a descriptor of it.
fn new_netns(helper: &HelperCommand) -> Result<OwnedFd, NetworkSandboxError> {
    let mut holder = Command::new(&helper.program)
        .args(&helper.args)
        .arg(NEW_NETNS_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error(&format!(
            "starting the exec helper {}",
            helper.program.display()
        )))?;
    let mut byte = [0u8; 1];
    let ready = holder.stdout.take().map(|mut out| out.read(&mut byte));
    // Opened while the holder is still in the namespace, so it is alive.
    let opened = matches!(ready, Some(Ok(1)))
        .then(|| File::open(PathBuf::from(format!("/proc/{}/ns/net", holder.id()))));
    // End-of-file on its stdin lets the holder go.
    holder.stdin.take();
    let mut message = String::new();
    if let Some(mut err) = holder.stderr.take() {
        let _ = err.read_to_string(&mut message);
    }
    let status = holder
        .wait()
        .map_err(io_error("waiting for the exec helper"))?;
    match opened {
        Some(file) => file
            .map(OwnedFd::from)
            .map_err(io_error("opening the new network namespace")),
        None => Err(NetworkSandboxError::Namespace(match message.trim() {
            "" => format!("the exec helper ended with {status}"),
            text => text.to_owned(),
        })),
    }
}

/// Maps an I/O error to [`NetworkSandboxError::Io`], saying what was being done.
fn io_error(what: &str) -> impl FnOnce(io::Error) -> NetworkSandboxError {
    let what = what.to_owned();
    move |source| NetworkSandboxError::Io { what, source }
}

/// The helper's side of [`NEW_NETNS_ARG`]: unshares a network namespace, says so with one byte
/// on stdout, and stays in it until stdin reaches end-of-file. Returns the exit code.
// A helper process of its own: its stderr is how it reports to the parent.
#[allow(clippy::print_stderr)]
pub(crate) fn hold_new_netns() -> i32 {
    let unshared = crate::process::check_single_threaded("helper_main").and_then(|()| {
        // SAFETY: no FILES flag (the hazard of `unshare_unsafe`), and this process has one
        // thread (checked).
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(|e| {
            let hint = if e == rustix::io::Errno::PERM {
                " (this needs root, or root of a user namespace: a rootless stagecraft enters \
                 one first)"
            } else {
                ""
            };
            format!("unshare(CLONE_NEWNET): {}{hint}", errno_text(e))
        })
    });
    if let Err(message) = unshared {
        eprintln!("{message}");
        return 1;
    }
    let mut stdout = io::stdout();
    if io::Write::write_all(&mut stdout, b"1")
        .and_then(|()| io::Write::flush(&mut stdout))
        .is_err()
    {
        return 1;
    }
    // Anything, or end-of-file, means the caller holds the namespace now.
    let _ = io::stdin().read(&mut [0u8; 1]);
    0
}
