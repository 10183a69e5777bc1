//! The caller's side: preparing a run, starting the helper, streaming output, collecting the result.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use tempfile::TempDir;

use crate::error::ExecError;
use crate::helper::fs::components as fs_components;
use crate::process::{HelperCommand, inherit_fds, pipe};
use crate::protocol::{self, HelperSpec, Report, SPEC_FD_ARG, STATUS_FD_ARG};
use crate::seccomp::Filters;
use crate::{
    DEFAULT_HOSTNAME, ExecSpec, ExitStatus, MountKind, Network, NetworkSandbox, Rootfs, Security,
    Stream,
};

/// Runs `RUN` steps. Cheap to create; holds no resources between runs but the network sandbox it
/// may be given, and any number of runs may proceed concurrently from different threads.
#[derive(Debug, Clone)]
pub struct Executor {
    helper: HelperCommand,
    state_dir: PathBuf,
    /// The namespace [`Network::Sandbox`] steps join.
    network_sandbox: Option<Arc<NetworkSandbox>>,
}

impl Executor {
    /// An executor starting `helper`, keeping its per-run state in `/dev/shm` when that is a
    /// writable directory, else in the system temp directory.
    ///
    /// The state is tiny, but creating and removing its directories on a disk filesystem is not
    /// free: on this project's test machines (ext4 mounted with `discard`) each `rmdir` costs 2–4
    /// ms, more than the rest of the run. A tmpfs avoids that.
    pub fn new(helper: HelperCommand) -> Self {
        let shm = Path::new("/dev/shm");
        let usable = rustix::fs::access(
            shm,
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        )
        .is_ok()
            && shm.is_dir();
        Self {
            helper,
            state_dir: if usable {
                shm.to_owned()
            } else {
                std::env::temp_dir()
            },
            network_sandbox: None,
        }
    }

    /// Runs [`Network::Sandbox`] steps in `sandbox`'s namespace (without one they are refused).
    /// The steps of one build share one sandbox, as a build's steps share BuildKit's network.
    pub fn with_network_sandbox(mut self, sandbox: Arc<NetworkSandbox>) -> Self {
        self.network_sandbox = Some(sandbox);
        self
    }

    /// The helper this executor starts.
    pub fn helper(&self) -> &HelperCommand {
        &self.helper
    }

    /// Keeps the per-run state (an empty mount point, the generated `/etc/hosts` and
    /// `/etc/resolv.conf`; a few hundred bytes, removed after each run) under `dir` instead.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Runs a step to completion, passing its output to `output` line by line as it arrives.
    ///
    /// Each call of `output` carries one line including its `\n`; a line longer than 64 KiB is
    /// passed in 64 KiB pieces, and a last line without `\n` is passed when the stream ends.
    /// A command that ran returns its [`ExitStatus`], zero or not; [`ExecError`] means it could not
    /// run, or its mount points could not be removed from the layer.
    pub fn run(
        &self,
        spec: &ExecSpec,
        output: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<ExitStatus, ExecError> {
        self.spawn(spec)?.wait(output)
    }

    /// Starts a step and returns at once, for callers that need to cancel it (see
    /// [`Execution::canceller`]).
    pub fn spawn(&self, spec: &ExecSpec) -> Result<Execution, ExecError> {
        validate(spec)?;
        let network_sandbox = match (spec.network, &self.network_sandbox) {
            (Network::Sandbox, None) => {
                return Err(ExecError::InvalidSpec(
                    "Network::Sandbox needs an executor with a network sandbox \
                     (Executor::with_network_sandbox)"
                        .into(),
                ));
            }
            (Network::Sandbox, Some(sandbox)) => Some(Arc::clone(sandbox)),
            _ => None,
        };
        let netns_fd = network_sandbox.as_ref().map(|s| s.netns().as_raw_fd());
        let state = State::create(&self.state_dir, spec)?;
        let helper_spec = HelperSpec {
            rootfs: state.rootfs.clone(),
            mount_point: state.mount_point(),
            hosts_file: state.dir.path().join("hosts"),
            resolv_conf: state.dir.path().join("resolv.conf"),
            args: spec.args.clone(),
            env: crate::env::with_default_path(&spec.env),
            cwd: spec.cwd.clone(),
            user: spec.user.clone(),
            hostname: if spec.hostname.is_empty() {
                DEFAULT_HOSTNAME.to_owned()
            } else {
                spec.hostname.clone()
            },
            network: spec.network,
            security: spec.security,
            seccomp: match spec.security {
                Security::Sandbox => Filters::default_for_run().map_err(ExecError::Setup)?,
                Security::Insecure => None,
            },
            netns_fd,
            mounts: sorted_mounts(&spec.mounts),
            secrets_dir: state.dir.path().join("secrets"),
            ulimits: spec.ulimits.clone(),
            shm_size: spec.shm_size,
        };
        let frame = protocol::encode_spec(&helper_spec)
            .map_err(|e| ExecError::InvalidSpec(format!("paths must be valid UTF-8: {e}")))?;

        let (spec_read, spec_write) = pipe().map_err(ExecError::Helper)?;
        let (status_read, status_write) = pipe().map_err(ExecError::Helper)?;
        let mut command = Command::new(&self.helper.program);
        command
            .args(&self.helper.args)
            .arg(format!("{SPEC_FD_ARG}{}", spec_read.as_raw_fd()))
            .arg(format!("{STATUS_FD_ARG}{}", status_write.as_raw_fd()))
            .stdin(if spec.stdin_null {
                Stdio::null()
            } else {
                Stdio::inherit()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if spec.stdin_null {
            // Its own process group: a Ctrl-C at the terminal reaches the caller, which decides
            // whether to cancel, rather than racing it to the helper. A command reading the
            // caller's terminal must stay in the foreground group, or reading stops it (SIGTTIN).
            command.process_group(0);
        }
        inherit_fds(
            &mut command,
            [spec_read.as_raw_fd(), status_write.as_raw_fd()]
                .into_iter()
                .chain(netns_fd),
        );
        let mut child = command.spawn().map_err(|source| ExecError::SpawnHelper {
            program: self.helper.program.clone(),
            source,
        })?;
        // The helper's ends belong to the helper now; holding the status write end here would
        // keep the status pipe from ever reaching end-of-file.
        drop(spec_read);
        drop(status_write);

        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(out), Some(err)) => (OwnedFd::from(out), OwnedFd::from(err)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ExecError::Helper(std::io::Error::other(
                    "helper output pipes missing",
                )));
            }
        };
        // A helper that died at once (not wired to helper_main) breaks this pipe; the collected
        // exit status explains it better than the write error would.
        let _ = write_all(&spec_write, &frame);
        Ok(Execution {
            running: Some(Running {
                child,
                stdout,
                stderr,
                status: status_read,
            }),
            canceller: Canceller {
                control: Arc::new(Mutex::new(Some(spec_write))),
            },
            _state: state.dir,
            _network_sandbox: network_sandbox,
        })
    }
}

/// A started step. Dropping it without [`wait`](Execution::wait)ing cancels the step and waits
/// for the cleanup.
#[derive(Debug)]
pub struct Execution {
    running: Option<Running>,
    canceller: Canceller,
    /// Removed (with the mount point, unmounted since the helper's namespaces died) on drop.
    _state: TempDir,
    /// Kept until the step is collected: its network must outlive it.
    _network_sandbox: Option<Arc<NetworkSandbox>>,
}

#[derive(Debug)]
struct Running {
    child: Child,
    stdout: OwnedFd,
    stderr: OwnedFd,
    status: OwnedFd,
}

/// Cancels a running step from any thread: the command is killed, its mount points are still
/// removed from the layer, and [`Execution::wait`] returns [`ExecError::Cancelled`].
#[derive(Debug, Clone)]
pub struct Canceller {
    /// The parent's end of the spec pipe: closing it is the cancel signal.
    control: Arc<Mutex<Option<OwnedFd>>>,
}

impl Canceller {
    /// Requests cancellation; idempotent, and harmless after the step ended.
    pub fn cancel(&self) {
        let mut control = self
            .control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        control.take();
    }
}

impl Execution {
    /// A handle that cancels this step.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Streams the output to `output` (as described at [`Executor::run`]) until the step ends,
    /// then returns its exit status.
    pub fn wait(mut self, output: &mut dyn FnMut(Stream, &[u8])) -> Result<ExitStatus, ExecError> {
        match self.running.take() {
            Some(running) => running.finish(output),
            // Only `wait` (which consumes the execution) and `drop` take it.
            None => Err(ExecError::Helper(std::io::Error::other(
                "the step was already collected",
            ))),
        }
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.canceller.cancel();
            let _ = running.finish(&mut |_, _| {});
        }
    }
}

impl Running {
    fn finish(mut self, output: &mut dyn FnMut(Stream, &[u8])) -> Result<ExitStatus, ExecError> {
        let mut lines = [
            LineBuffer::new(Stream::Stdout),
            LineBuffer::new(Stream::Stderr),
        ];
        let mut reports = Vec::new();
        let streamed = self.stream(&mut lines, &mut reports, output);
        for buffer in &mut lines {
            buffer.finish(output);
        }
        let wait = self.child.wait();
        streamed?;
        let status = wait.map_err(ExecError::Helper)?;
        decide(&reports, &status)
    }

    /// Copies both output pipes to `output` and the status pipe to `reports` until all three
    /// reach end-of-file, which happens once the helper and the container's last process are gone.
    fn stream(
        &self,
        lines: &mut [LineBuffer; 2],
        reports: &mut Vec<u8>,
        output: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<(), ExecError> {
        let mut open = [true; 3];
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let sources = [&self.stdout, &self.stderr, &self.status];
            let mut fds = Vec::with_capacity(3);
            let mut which = Vec::with_capacity(3);
            for (i, fd) in sources.iter().enumerate() {
                if open[i] {
                    fds.push(PollFd::new(*fd, PollFlags::IN));
                    which.push(i);
                }
            }
            if fds.is_empty() {
                return Ok(());
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(ExecError::Helper(e.into())),
            }
            let ready: Vec<usize> = fds
                .iter()
                .zip(&which)
                .filter(|(fd, _)| !fd.revents().is_empty())
                .map(|(_, i)| *i)
                .collect();
            drop(fds);
            for i in ready {
                match rustix::io::read(sources[i], &mut buf[..]) {
                    Ok(0) => open[i] = false,
                    Ok(n) if i == 2 => reports.extend_from_slice(&buf[..n]),
                    Ok(n) => lines[i].feed(&buf[..n], output),
                    Err(Errno::INTR | Errno::AGAIN) => {}
                    Err(e) => return Err(ExecError::Helper(e.into())),
                }
            }
        }
    }
}

/// The step's result from the helper's reports and exit status. A set-up failure wins over
/// everything (the command did not run); then cancellation; then a failed cleanup (the layer is
/// dirty even if the command succeeded); then the command's status.
fn decide(reports: &[u8], helper: &std::process::ExitStatus) -> Result<ExitStatus, ExecError> {
    let mut exited = None;
    let mut cleanup = None;
    for line in reports.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match protocol::decode_report(line).map_err(ExecError::Protocol)? {
            Report::Failed(failure) => {
                return Err(failure.into_error(Path::new(crate::emulation::BINFMT_MISC_DIR)));
            }
            Report::CleanupFailed(message) => cleanup = Some(message),
            Report::Exited { status, cancelled } => exited = Some((status, cancelled)),
        }
    }
    match (exited, cleanup) {
        (Some((_, true)), _) => Err(ExecError::Cancelled),
        (_, Some(message)) => Err(ExecError::Cleanup(message)),
        (Some((status, false)), None) => Ok(status),
        (None, None) => Err(ExecError::HelperDied {
            status: helper.to_string(),
        }),
    }
}

/// Splits a byte stream into lines for the output callback.
struct LineBuffer {
    stream: Stream,
    pending: Vec<u8>,
}

/// Longer lines are passed on in pieces, so one runaway line cannot grow memory without bound.
const MAX_LINE: usize = 64 * 1024;

impl LineBuffer {
    fn new(stream: Stream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    fn feed(&mut self, mut data: &[u8], output: &mut dyn FnMut(Stream, &[u8])) {
        while let Some(end) = data.iter().position(|b| *b == b'\n') {
            let (line, rest) = data.split_at(end + 1);
            if self.pending.is_empty() {
                output(self.stream, line);
            } else {
                self.pending.extend_from_slice(line);
                output(self.stream, &self.pending);
                self.pending.clear();
            }
            data = rest;
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() >= MAX_LINE {
            output(self.stream, &self.pending[..MAX_LINE]);
            self.pending.drain(..MAX_LINE);
        }
    }

    fn finish(&mut self, output: &mut dyn FnMut(Stream, &[u8])) {
        if !self.pending.is_empty() {
            output(self.stream, &self.pending);
            self.pending.clear();
        }
    }
}

/// The per-run state directory.
struct State {
    dir: TempDir,
    /// The rootfs as the helper gets it (an empty lower directory substituted when there is none).
    rootfs: Rootfs,
}

impl State {
    fn create(state_dir: &Path, spec: &ExecSpec) -> Result<Self, ExecError> {
        let err = |source| ExecError::StateDir {
            dir: state_dir.to_owned(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("stagecraft-exec-")
            .tempdir_in(state_dir)
            .map_err(err)?;
        std::fs::create_dir(dir.path().join("root")).map_err(err)?;
        if spec
            .mounts
            .iter()
            .any(|m| matches!(m.kind, MountKind::Secret { .. }))
        {
            std::fs::create_dir(dir.path().join("secrets")).map_err(err)?;
        }
        std::fs::write(
            dir.path().join("hosts"),
            crate::etc_files::hosts(&spec.hostname, &spec.extra_hosts),
        )
        .map_err(err)?;
        let host_resolv =
            std::fs::read_to_string(crate::etc_files::resolv_conf_source(spec.network)).ok();
        std::fs::write(
            dir.path().join("resolv.conf"),
            crate::etc_files::resolv_conf(host_resolv.as_deref(), spec.network),
        )
        .map_err(err)?;
        let rootfs = match &spec.rootfs {
            // overlayfs needs a lower layer; an empty one stands for `FROM scratch`.
            Rootfs::Overlay {
                lower_dirs,
                upper_dir,
                work_dir,
            } if lower_dirs.is_empty() => {
                let empty = dir.path().join("empty");
                std::fs::create_dir(&empty).map_err(err)?;
                Rootfs::Overlay {
                    lower_dirs: vec![empty],
                    upper_dir: upper_dir.clone(),
                    work_dir: work_dir.clone(),
                }
            }
            other => other.clone(),
        };
        Ok(Self { dir, rootfs })
    }

    fn mount_point(&self) -> PathBuf {
        self.dir.path().join("root")
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Rejects what the helper could only fail on later, with less context.
fn validate(spec: &ExecSpec) -> Result<(), ExecError> {
    let invalid = |m: String| Err(ExecError::InvalidSpec(m));
    if spec.args.is_empty() {
        return invalid("no command: args is empty".into());
    }
    if let Some(arg) = spec.args.iter().find(|a| a.contains('\0')) {
        return invalid(format!("argument {arg:?} contains a NUL byte"));
    }
    crate::env::validate(&spec.env).map_err(|e| ExecError::InvalidSpec(e.to_string()))?;
    for (what, value) in [
        ("cwd", &spec.cwd),
        ("user", &spec.user),
        ("hostname", &spec.hostname),
    ] {
        if value.contains('\0') {
            return invalid(format!("{what} {value:?} contains a NUL byte"));
        }
    }
    if spec.hostname.len() > 64 {
        return invalid(format!(
            "hostname {:?} is longer than 64 bytes",
            spec.hostname
        ));
    }
    let paths: Vec<&Path> = match &spec.rootfs {
        Rootfs::Overlay {
            lower_dirs,
            upper_dir,
            work_dir,
        } => lower_dirs
            .iter()
            .map(PathBuf::as_path)
            .chain([upper_dir.as_path(), work_dir.as_path()])
            .collect(),
        Rootfs::Dir(dir) => vec![dir.as_path()],
    };
    if let Some(path) = paths.iter().find(|p| !p.is_absolute()) {
        return invalid(format!("rootfs path {} is not absolute", path.display()));
    }
    for mount in &spec.mounts {
        if fs_components(&mount.target).is_empty() {
            return invalid(format!("mount target {:?} is the root", mount.target));
        }
        if let MountKind::Bind { source, .. } = &mount.kind
            && !source.is_absolute()
        {
            return invalid(format!(
                "bind mount source {} is not absolute",
                source.display()
            ));
        }
    }
    let secret_bytes: usize = spec
        .mounts
        .iter()
        .filter_map(|m| match &m.kind {
            MountKind::Secret { data, .. } => Some(data.as_bytes().len()),
            _ => None,
        })
        .sum();
    if secret_bytes > MAX_SECRET_BYTES {
        return invalid(format!(
            "the secret mounts hold {secret_bytes} bytes; at most {MAX_SECRET_BYTES} are supported"
        ));
    }
    Ok(())
}

/// What a step's secret mounts may hold in all: they cross to the helper in its spec (as JSON, up
/// to four bytes a byte, against the spec's 64 MiB bound) and live in memory. BuildKit allows
/// 500 KB per secret.
const MAX_SECRET_BYTES: usize = 8 << 20;

/// The mounts with parents before children (stable, by depth), so a mount never hides one that
/// is nested in it.
fn sorted_mounts(mounts: &[crate::Mount]) -> Vec<crate::Mount> {
    let mut sorted = mounts.to_vec();
    sorted.sort_by_key(|m| fs_components(&m.target).len());
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buffer = LineBuffer::new(Stream::Stdout);
        let mut sink = |_: Stream, data: &[u8]| out.push(data.to_vec());
        for chunk in chunks {
            buffer.feed(chunk, &mut sink);
        }
        buffer.finish(&mut sink);
        out
    }

    #[test]
    fn output_is_split_into_lines() {
        assert_eq!(
            collect(&[b"a\nb", b"c\n\nd"]),
            [
                b"a\n".to_vec(),
                b"bc\n".to_vec(),
                b"\n".to_vec(),
                b"d".to_vec()
            ]
        );
        let long = vec![b'x'; MAX_LINE + 10];
        let pieces = collect(&[&long]);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].len(), MAX_LINE);
    }

    #[test]
    fn mounts_are_sorted_parents_first() {
        let m = |t: &str| crate::Mount {
            target: t.into(),
            kind: MountKind::Tmpfs { size: None },
        };
        let sorted = sorted_mounts(&[m("/a/b/c"), m("/x"), m("/a/b"), m("/y")]);
        let targets: Vec<&str> = sorted.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["/x", "/y", "/a/b", "/a/b/c"]);
    }

    #[test]
    fn validation_catches_obvious_mistakes() {
        let spec = |args: Vec<String>| ExecSpec::new(Rootfs::Dir("/r".into()), args);
        assert!(matches!(
            validate(&spec(vec![])),
            Err(ExecError::InvalidSpec(_))
        ));
        assert!(validate(&spec(vec!["true".into()])).is_ok());
        let mut bad = spec(vec!["true".into()]);
        bad.rootfs = Rootfs::Dir("relative".into());
        assert!(validate(&bad).is_err());
        let mut bad = spec(vec!["true".into()]);
        bad.env = vec!["NOEQUALS".into()];
        assert!(validate(&bad).is_err());
    }

    #[test]
    fn decide_prefers_failures_then_cancel_then_cleanup() {
        use std::os::unix::process::ExitStatusExt;
        let ok = std::process::ExitStatus::from_raw(0);
        let exited = br#"{"Exited":{"status":{"Code":3},"cancelled":false}}"#;
        assert!(matches!(decide(exited, &ok), Ok(ExitStatus::Code(3))));
        let mut both = br#"{"Failed":{"User":"unable to find user x"}}"#.to_vec();
        both.push(b'\n');
        both.extend_from_slice(exited);
        assert!(matches!(decide(&both, &ok), Err(ExecError::User(_))));
        assert!(matches!(
            decide(b"", &ok),
            Err(ExecError::HelperDied { .. })
        ));
        let cancelled = br#"{"Exited":{"status":{"Signal":9},"cancelled":true}}"#;
        assert!(matches!(decide(cancelled, &ok), Err(ExecError::Cancelled)));
    }
}
