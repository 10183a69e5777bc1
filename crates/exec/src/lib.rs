//! Runs one Dockerfile `RUN` step the way BuildKit's runc executor does, with no daemon and no runc.
//!
//! The caller hands over an [`ExecSpec`]: the rootfs (an overlay of image layers with a fresh upper
//! directory, or a plain directory), the argv, environment, working directory, `USER`, hostname,
//! network mode and extra mounts. [`Executor::run`] runs the command as PID 1 of fresh mount, PID,
//! UTS and IPC namespaces (plus a network namespace for [`Network::None`], the build's shared one
//! of a [`NetworkSandbox`] for [`Network::Sandbox`], and a user namespace when not root), streams
//! its output line by line, and returns its [`ExitStatus`]. Everything the
//! command wrote ends up in the overlay's upper directory, and *only* that: mount points the
//! executor had to create (`/etc/hosts`, `/etc/resolv.conf`, `/proc`, `/dev`, `/sys`, targets of
//! extra mounts) are removed again afterwards, as BuildKit's `MountStubsCleaner` does.
//!
//! # Process layout
//!
//! ```text
//! caller (any process, may be multi-threaded)
//!   └─ spawn (std::process::Command: fork+exec, thread-safe) ─▶ helper: the caller's binary re-exec'd,
//!      single-threaded. [setns(build's net) →] unshare(mnt, pid, uts, ipc[, net][, user]) →
//!      make / private → mount the rootfs → resolve USER → create the cwd → create the missing
//!      mount points, noting them → fork
//!        └─ init: PID 1 of the new PID namespace. Own (nested) mount namespace → /proc, /dev, /sys,
//!           /etc/resolv.conf, /etc/hosts, extra mounts → pivot_root → hostname, seccomp,
//!           capabilities, groups/gid/uid → chdir → execve(command)
//!      helper: forwards signals, waits, unmounts the rootfs, removes the mount stubs, reports
//! ```
//!
//! The command runs with containerd's default capabilities under Docker's default seccomp profile
//! (moby's `default.json`, restated in `src/seccomp/` and compiled once per process with
//! `seccompiler`), unless [`ExecSpec::security`] is [`Security::Insecure`]. Secret mounts
//! ([`MountKind::Secret`]) are written to a tmpfs inside the container's mount namespace, never to
//! disk.
//!
//! All mounts live in namespaces private to the helper, so they vanish when it exits: the caller's
//! `/proc/self/mountinfo` never changes, even if the helper is killed. The whole round trip for
//! `/bin/true` costs about 3.5 ms (see `examples/overhead.rs`), against about 50 ms for `runc run`.
//!
//! # Wiring the helper into a binary
//!
//! The helper is the caller's own executable started again with [`HELPER_ARG`] as its first
//! argument. Every binary that uses an [`Executor`] must dispatch to [`helper_main`] **first thing in
//! `main`**, before it starts any thread (no tokio runtime yet): a process with several threads cannot
//! create a user namespace and must not fork.
//!
//! ```no_run
//! // First thing in `main`:
//! let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
//! if args.get(1).is_some_and(|a| a == stagecraft_exec::HELPER_ARG) {
//!     stagecraft_exec::helper_main(&args[2..]);
//! }
//! // ... then the normal program, which may create
//! // `Executor::new(HelperCommand::current_exe())` and run steps from any thread.
//! ```
//!
//! # Rootless
//!
//! Root runs steps in the host's user namespace. Anyone else has two ways:
//!
//! * **a rootless stagecraft** calls [`userns::enter_rootless`] first, which moves the whole
//!   process into a user namespace where its user is root, with the user's `/etc/subuid` and
//!   `/etc/subgid` ranges mapped when it has some (see [`userns`]). The helper then runs as root
//!   of that namespace and creates the step's namespaces inside it; any `USER` whose ids are
//!   mapped works;
//! * **a plain unprivileged caller** of [`Executor`] gets a user namespace from the helper itself,
//!   mapping the caller's uid and gid to root, which needs no `newuidmap` and no `/etc/subuid`
//!   entry. It follows that the layers' files must belong to the caller (unpack them as the
//!   building user: files of other owners show up as `nobody` inside, and root there cannot
//!   change them), and that only `USER root` works.
//!
//! Either way, outside the host's user namespace the overlay keeps its metadata in
//! `user.overlay.*` xattrs (`userxattr`; whiteouts are still 0/0 character devices, opaque
//! directories carry `user.overlay.opaque`), and a `USER` whose ids the namespace does not map
//! is an [`ExecError::User`] that says how to map them.
//!
//! # Foreign platforms
//!
//! A step of another architecture (an arm64 image built on an amd64 machine) runs exactly like a
//! native one: the kernel hands the foreign program to the emulator registered with binfmt_misc
//! (qemu-user-static, registered with the `F` flag so that it works inside the container). When
//! none is registered the kernel refuses the program and nothing runs; the step then fails with
//! an [`ExecError::Emulation`] that names the program's architecture, read from its ELF header,
//! and how to register an emulator. See [`emulation`].
//!
//! # What is not done (yet)
//!
//! AppArmor or SELinux labels, cgroups (so no memory/CPU limits and no
//! `/sys/fs/cgroup` mount), or TTY allocation. Rlimits are the caller's unless the spec sets
//! some ([`ExecSpec::ulimits`]), as BuildKit leaves them when no ulimit is given.
// Namespaces, mounts, seccomp and the re-executed helper need system calls std does not
// wrap; every unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]

pub mod emulation;
mod env;
mod error;
mod etc_files;
mod executor;
mod helper;
mod hints;
mod limits;
mod netns;
mod process;
mod protocol;
mod seccomp;
mod user;
pub mod userns;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use error::ExecError;
pub use executor::{Canceller, Execution, Executor};
pub use helper::helper_main;
pub use limits::{LimitResource, Ulimit, UlimitError};
pub use netns::{NetworkSandbox, NetworkSandboxError, STACK_PROGRAM};
pub use process::HelperCommand;

/// The first argument that makes a binary act as the exec helper (see the crate docs for wiring).
pub const HELPER_ARG: &str = "__stagecraft-exec";

/// BuildKit's hostname for build containers (`executor/oci/hosts.go`), used when
/// [`ExecSpec::hostname`] is empty.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// The `PATH` added when the step's environment has none, as BuildKit's exec op does
/// (`solver/llbsolver/ops/exec.go`, `addDefaultEnvvar`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The filesystem the command runs in.
///
/// Paths must be absolute and valid UTF-8 (they cross to the helper as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rootfs {
    /// An overlay of read-only image layers with a writable upper directory that receives every
    /// change the command makes: the layer diff.
    ///
    /// It is mounted `volatile`: nothing is synced to disk, not even the command's own `fsync`s,
    /// so whoever keeps the result syncs it (the store does when it writes the layer blob). The
    /// upper and work directories can be mounted again after the run.
    Overlay {
        /// The read-only layers, **topmost first** (the order of overlayfs' `lowerdir=`). May be
        /// empty (a `FROM scratch` base): an empty directory is used then.
        lower_dirs: Vec<PathBuf>,
        /// Receives the changes. Should start empty (a fresh snapshot per step, as BuildKit does);
        /// whiteouts already in it are preserved.
        upper_dir: PathBuf,
        /// overlayfs' scratch directory: empty, on the same filesystem as `upper_dir`.
        work_dir: PathBuf,
    },
    /// A plain directory used directly as the root and modified in place (no diff possible).
    Dir(PathBuf),
}

/// The network the command sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// The build's private network namespace (`RUN --network=default`, BuildKit's default
    /// "sandbox" mode): `lo` and a tap device whose traffic a user-mode network stack
    /// (`slirp4netns`) carries out through ordinary sockets of the caller, so outbound
    /// connections and DNS work while the host's interfaces and its loopback services stay out
    /// of reach. Shared by every step of an [`Executor`] given a [`NetworkSandbox`]
    /// ([`Executor::with_network_sandbox`]); any other executor refuses it.
    #[default]
    Sandbox,
    /// The host's network namespace (`RUN --network=host`, an entitlement in BuildKit);
    /// BuildKit's resolv.conf handling for host networking applies. The one mode that needs
    /// nothing from the executor, so [`ExecSpec::new`] picks it.
    Host,
    /// A fresh network namespace with only the loopback interface, up (`RUN --network=none`).
    None,
}

/// How much the command is confined (`RUN --security`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Security {
    /// BuildKit's default: containerd's default capability set, Docker's default seccomp profile
    /// (see the crate docs), `/proc` and `/sys` partly masked or read-only.
    #[default]
    Sandbox,
    /// `RUN --security=insecure`, as BuildKit's `security.insecure` entitlement: every capability
    /// (ambient too, so a non-root `USER` has them), no seccomp filter, nothing masked, `/sys`
    /// writable.
    Insecure,
}

impl Security {
    /// The mode as `RUN --security=` spells it: `sandbox` or `insecure`.
    pub fn name(self) -> &'static str {
        match self {
            Security::Sandbox => "sandbox",
            Security::Insecure => "insecure",
        }
    }
}

/// An extra mount for the command (`RUN --mount`, resolved to host paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Where the mount appears inside the container. Relative paths are taken from `/`. Missing
    /// mount points are created and removed again after the run.
    pub target: String,
    /// What is mounted.
    pub kind: MountKind,
}

/// The kinds of [`Mount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A recursive bind mount of a host file or directory (BuildKit's `rbind`).
    Bind {
        /// The host path (absolute, UTF-8).
        source: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs (`nosuid`, as BuildKit mounts `RUN --mount=type=tmpfs`).
    Tmpfs {
        /// Size limit in bytes; `None` leaves the kernel default (half of RAM).
        size: Option<u64>,
    },
    /// A file holding `data` (`RUN --mount=type=secret`), bind-mounted read-only (`nosuid`,
    /// `nodev`, `noexec`). The bytes travel to the helper over its spec pipe and are written to a
    /// tmpfs mounted in the container's own mount namespace only, as BuildKit serves secrets from
    /// a tmpfs: they never reach a disk, and vanish with the namespace, however the run ends.
    Secret {
        /// The content.
        data: SecretData,
        /// The file's permission bits (BuildKit keeps `mode & 0o777`).
        mode: u32,
        /// The file's owner, an id of the step's user namespace.
        uid: u32,
        /// The file's group.
        gid: u32,
    },
}

/// A secret's bytes: `Debug` shows only their length, so no log of a spec shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretData(Vec<u8>);

impl SecretData {
    /// Wraps the bytes.
    pub fn new(data: Vec<u8>) -> Self {
        Self(data)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretData({} bytes)", self.0.len())
    }
}

/// One `--add-host` entry: a line `IP<TAB>HOST` appended to the generated `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// The host name.
    pub host: String,
    /// Its address.
    pub ip: IpAddr,
}

/// Everything about one `RUN` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The filesystem to run in.
    pub rootfs: Rootfs,
    /// The argv. The shell form is already `["/bin/sh", "-c", …]` (the caller's job). `args[0]` is
    /// looked up in the step's `PATH` unless it contains a `/`.
    pub args: Vec<String>,
    /// The environment as `KEY=VALUE`. Later duplicates win. [`DEFAULT_PATH`] is added when there is
    /// no `PATH`, and `HOME` from the user's passwd entry (else `/`) when there is no `HOME`, as
    /// BuildKit and runc do.
    pub env: Vec<String>,
    /// The working directory. Created when missing (owned by the resolved user, mode 0755, as
    /// BuildKit does); that directory is a genuine change and stays in the layer.
    pub cwd: String,
    /// The `USER`: `""` (root), `name`, `uid`, `uid:gid`, `name:group`, … resolved against the
    /// rootfs' `/etc/passwd` and `/etc/group` exactly as BuildKit does, supplementary groups
    /// included. Numeric ids need no entries; unknown names are an [`ExecError::User`].
    pub user: String,
    /// The hostname; empty means [`DEFAULT_HOSTNAME`].
    pub hostname: String,
    /// The network mode.
    pub network: Network,
    /// The confinement: capabilities, seccomp, masked paths.
    #[serde(default)]
    pub security: Security,
    /// Extra mounts, applied after the standard ones. They are applied in order of path depth so a
    /// mount never hides one nested in it.
    pub mounts: Vec<Mount>,
    /// Extra `/etc/hosts` entries.
    pub extra_hosts: Vec<HostEntry>,
    /// `true` (the default, like BuildKit's `RUN`) gives the command `/dev/null` as stdin; `false`
    /// lets it inherit the caller's stdin.
    pub stdin_null: bool,
    /// Resource limits (`--ulimit`); none leaves the caller's.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// The size of `/dev/shm` in bytes (`--shm-size`); `None` is BuildKit's 64 MiB.
    #[serde(default)]
    pub shm_size: Option<u64>,
}

impl ExecSpec {
    /// A spec with BuildKit's defaults: empty environment (so [`DEFAULT_PATH`]), cwd `/`, user root,
    /// hostname [`DEFAULT_HOSTNAME`], the seccomp sandbox, no extra mounts or hosts, stdin
    /// `/dev/null`; but the host network, which any executor can give (BuildKit's default is
    /// [`Network::Sandbox`]).
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Self {
        Self {
            rootfs,
            args,
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: String::new(),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            network: Network::Host,
            security: Security::Sandbox,
            mounts: Vec::new(),
            extra_hosts: Vec::new(),
            stdin_null: true,
            ulimits: Vec::new(),
            shm_size: None,
        }
    }
}

/// Runs the step an [`ExecSpec`] describes: the one interface between the build engine and
/// whatever runs `RUN` commands. [`Executor`] is the real one; tests fake it (recording the
/// specs they are given, writing into the overlay's upper directory), so the engine is tested
/// without namespaces.
pub trait Run: Sync {
    /// Runs the step, passing output chunks to `output`. A command that ran returns its
    /// [`ExitStatus`], zero or not; [`ExecError`] means it could not run.
    fn run(
        &self,
        spec: &ExecSpec,
        output: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<ExitStatus, ExecError>;
}

impl Run for Executor {
    fn run(
        &self,
        spec: &ExecSpec,
        output: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<ExitStatus, ExecError> {
        Executor::run(self, spec, output)
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// `true` for exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The exit code as runc reports it to BuildKit: the code itself, or `128 + signal` for a
    /// command killed by a signal (so `SIGKILL` gives 137).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(signal) => 128 + signal,
        }
    }
}

impl fmt::Display for ExitStatus {
    /// BuildKit's wording: `exit code: 2`; a signal is reported as its runc exit code, with the
    /// signal number added.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code: {code}"),
            ExitStatus::Signal(signal) => {
                write!(f, "exit code: {} (killed by signal {signal})", self.code())
            }
        }
    }
}
