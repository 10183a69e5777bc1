//! What the parent and the helper say to each other.
//!
//! The helper is started as `PROGRAM [ARGS…] --spec-fd=N --status-fd=M`, where `N` and `M` are
//! inherited pipe ends (passed by number because fixed numbers could collide with std's own
//! pipes in the forked child):
//!
//! * **spec fd** (parent → helper): a little-endian `u64` length, then the [`HelperSpec`] as JSON.
//!   The parent then keeps its end open and writes nothing more; the helper takes the pipe
//!   becoming readable (a byte, or end-of-file because the parent closed it or died) as
//!   "cancel": it kills the command and cleans up.
//! * **status fd** (helper → parent): newline-terminated JSON [`Report`]s. Each is written with one
//!   `write(2)`, and the helper and the init process never write at the same time.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Failure;
use crate::{ExitStatus, Mount, Network, Rootfs, Security};

/// The helper argument carrying the spec fd number.
pub(crate) const SPEC_FD_ARG: &str = "--spec-fd=";
/// The helper argument carrying the status fd number.
pub(crate) const STATUS_FD_ARG: &str = "--status-fd=";
/// A spec larger than this is refused: it would be a bug, and the length comes from a pipe.
const MAX_SPEC_BYTES: u64 = 64 << 20;

/// The step as the helper needs it: the caller's spec with the parent's preparations applied
/// (environment validated and given a `PATH`, state files written, mounts sorted).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HelperSpec {
    /// The rootfs; an overlay always has at least one lower directory here.
    pub(crate) rootfs: Rootfs,
    /// An empty directory where the helper mounts the rootfs.
    pub(crate) mount_point: PathBuf,
    /// The generated file bind-mounted on `/etc/hosts`.
    pub(crate) hosts_file: PathBuf,
    /// The generated file bind-mounted on `/etc/resolv.conf`.
    pub(crate) resolv_conf: PathBuf,
    /// The argv.
    pub(crate) args: Vec<String>,
    /// The environment, validated, `PATH` defaulted; `HOME` is added by the helper.
    pub(crate) env: Vec<String>,
    /// The working directory.
    pub(crate) cwd: String,
    /// The `USER` to resolve.
    pub(crate) user: String,
    /// The hostname (never empty).
    pub(crate) hostname: String,
    /// The network mode.
    pub(crate) network: Network,
    /// The confinement.
    pub(crate) security: Security,
    /// The seccomp filters to load (compiled by the parent), none for `--security=insecure`.
    pub(crate) seccomp: Option<crate::seccomp::Filters>,
    /// For [`Network::Sandbox`]: the inherited descriptor of the namespace to join.
    pub(crate) netns_fd: Option<i32>,
    /// Extra mounts, parents before children.
    pub(crate) mounts: Vec<Mount>,
    /// An empty directory where the init mounts the tmpfs holding the secret mounts' files, in
    /// its own mount namespace (nothing is mounted there when the step has no secret).
    pub(crate) secrets_dir: PathBuf,
    /// Resource limits the init sets before it becomes the command.
    pub(crate) ulimits: Vec<crate::Ulimit>,
    /// The size of `/dev/shm` in bytes, `None` for the default.
    pub(crate) shm_size: Option<u64>,
}

/// A message from the helper (or its init process) to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The set-up failed; the command did not run.
    Failed(Failure),
    /// Removing the mount stubs failed; the layer may hold stray files.
    CleanupFailed(String),
    /// The command ran and ended.
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// Whether the helper killed it because the parent cancelled.
        cancelled: bool,
    },
}

/// Frames a spec for the spec fd.
pub(crate) fn encode_spec(spec: &HelperSpec) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(spec)?;
    let mut frame = Vec::with_capacity(8 + json.len());
    frame.extend_from_slice(&(json.len() as u64).to_le_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// Why the helper could not read the spec its parent framed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpecError {
    /// The length prefix could not be read.
    #[error("reading the spec length: {0}")]
    Length(#[source] io::Error),
    /// The length is over [`MAX_SPEC_BYTES`].
    #[error("spec of {0} bytes is larger than {MAX_SPEC_BYTES}")]
    TooLarge(u64),
    /// The spec's bytes could not be read.
    #[error("reading the spec: {0}")]
    Read(#[source] io::Error),
    /// The pipe ended before the length said.
    #[error("spec truncated at {read} of {len} bytes")]
    Truncated { read: u64, len: u64 },
    /// The bytes are not a spec.
    #[error("decoding the spec: {0}")]
    Decode(#[source] serde_json::Error),
}

/// Reads one framed spec, leaving the pipe open for the cancel signal.
pub(crate) fn read_spec(mut pipe: impl Read) -> Result<HelperSpec, SpecError> {
    let mut len = [0u8; 8];
    pipe.read_exact(&mut len).map_err(SpecError::Length)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_SPEC_BYTES {
        return Err(SpecError::TooLarge(len));
    }
    let mut json = Vec::new();
    pipe.take(len)
        .read_to_end(&mut json)
        .map_err(SpecError::Read)?;
    if json.len() as u64 != len {
        return Err(SpecError::Truncated {
            read: json.len() as u64,
            len,
        });
    }
    serde_json::from_slice(&json).map_err(SpecError::Decode)
}

/// Sends a report. Errors are returned for the caller to ignore knowingly: if the parent is gone
/// there is nobody left to tell.
pub(crate) fn send(status_fd: impl AsFd, report: &Report) -> io::Result<()> {
    let mut line = serde_json::to_vec(report).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut rest = &line[..];
    while !rest.is_empty() {
        match rustix::io::write(&status_fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Decodes one report line.
pub(crate) fn decode_report(line: &[u8]) -> Result<Report, String> {
    serde_json::from_slice(line).map_err(|e| {
        format!(
            "{e} in {:?}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_the_frame() {
        let spec = HelperSpec {
            rootfs: Rootfs::Dir("/r".into()),
            mount_point: "/m".into(),
            hosts_file: "/h".into(),
            resolv_conf: "/c".into(),
            args: vec!["true".into()],
            env: vec!["A=1".into()],
            cwd: "/".into(),
            user: "app".into(),
            hostname: "h".into(),
            network: Network::Sandbox,
            netns_fd: Some(7),
            security: Security::Sandbox,
            seccomp: crate::seccomp::Filters::default_for_run().unwrap(),
            mounts: vec![],
            secrets_dir: "/s".into(),
            ulimits: vec!["nofile=10:20".parse().unwrap()],
            shm_size: Some(1 << 20),
        };
        let frame = encode_spec(&spec).unwrap();
        let back = read_spec(&frame[..]).unwrap();
        assert_eq!(back.args, spec.args);
        assert_eq!(back.rootfs, spec.rootfs);
        assert_eq!(back.seccomp, spec.seccomp);
        assert_eq!((back.ulimits, back.shm_size), (spec.ulimits, spec.shm_size));
        assert_eq!((back.network, back.netns_fd), (Network::Sandbox, Some(7)));
        assert!(
            read_spec(&frame[..frame.len() - 1])
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
    }

    #[test]
    fn reports_round_trip() {
        let line = serde_json::to_vec(&Report::Exited {
            status: ExitStatus::Signal(9),
            cancelled: true,
        })
        .unwrap();
        assert!(matches!(
            decode_report(&line),
            Ok(Report::Exited {
                status: ExitStatus::Signal(9),
                cancelled: true
            })
        ));
        let sent = Failure::Exec {
            message: "exec /bin/sh: exec format error".into(),
            program: "/bin/sh".into(),
            errno: 8,
            head: Some(crate::emulation::ProgramHead {
                path: "/bin/sh".into(),
                bytes: vec![0x7f, b'E', b'L', b'F', 0, 255],
            }),
        };
        let line = serde_json::to_vec(&Report::Failed(sent.clone())).unwrap();
        assert!(matches!(decode_report(&line), Ok(Report::Failed(back)) if back == sent));
        assert!(decode_report(b"garbage").is_err());
    }
}
