//! The errors of a `RUN` step that did not produce an exit status.

use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::emulation::{ProgramHead, explain_exec_failure};

/// Why a `RUN` step could not run, or could not be cleaned up.
///
/// A command that ran and exited non-zero is **not** an error: [`crate::Executor::run`] returns its
/// [`crate::ExitStatus`] and the caller reports the step.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The [`crate::ExecSpec`] cannot be run as given.
    #[error("invalid RUN step: {0}")]
    InvalidSpec(String),

    /// The per-run state directory (mount point, generated `/etc/hosts` and `/etc/resolv.conf`)
    /// could not be prepared.
    #[error("cannot prepare the RUN state directory under {dir}: {source}")]
    StateDir {
        /// The executor's state directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The helper process could not be started.
    #[error(
        "cannot start the exec helper {program}: {source} (the binary must call \
         stagecraft_exec::helper_main when started with {helper_arg})",
        helper_arg = crate::HELPER_ARG
    )]
    SpawnHelper {
        /// The helper program.
        program: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// Talking to the helper failed (a pipe broke, poll failed).
    #[error("lost contact with the exec helper: {0}")]
    Helper(#[source] io::Error),

    /// The helper ended without reporting how the step went: it crashed, was killed, or is not
    /// wired to [`crate::helper_main`] (its stderr went to the step's output).
    #[error(
        "the exec helper ended without a report ({status}); is the binary wired to call \
         stagecraft_exec::helper_main first thing in main?"
    )]
    HelperDied {
        /// The helper's wait status, as text.
        status: String,
    },

    /// The helper's report could not be decoded (a helper binary from another version?).
    #[error("unreadable report from the exec helper: {0}")]
    Protocol(String),

    /// Creating the namespaces failed (no privilege, user namespaces disabled, …).
    #[error("cannot create the container namespaces: {0}")]
    Namespaces(String),

    /// The `USER` could not be resolved, in BuildKit's wording, e.g.
    /// `unable to find user app: no matching entries in passwd file`.
    #[error("{0}")]
    User(String),

    /// A mount failed.
    #[error("cannot mount {what} on {target}: {message}")]
    Mount {
        /// What was mounted (`overlay rootfs`, `proc`, `bind /host/path`, …).
        what: String,
        /// The mount point, as seen inside the container.
        target: String,
        /// Why, with a hint when one is known.
        message: String,
    },

    /// Another step of the container set-up failed (cwd, devices, pivot_root, credentials, …).
    #[error("cannot set up the container: {0}")]
    Setup(String),

    /// The command could not be executed, in runc's wording, e.g.
    /// `unable to start container process: exec: "foo": executable file not found in $PATH`.
    #[error("unable to start container process: {0}")]
    Start(String),

    /// The command is a program of another architecture (its ELF header says which) that this
    /// machine has no usable binfmt_misc interpreter for. The kernel refused it: nothing ran.
    #[error(transparent)]
    Emulation(crate::emulation::EmulationError),

    /// The command ran, but cleaning up after it failed: unmounting the rootfs, removing the mount
    /// points created for it from the layer (which would leave stray files in the diff), or
    /// clearing the overlay's volatile marker.
    #[error("cleaning up after the RUN step failed (the layer may hold stray mount points): {0}")]
    Cleanup(String),

    /// The step was cancelled through a [`crate::Canceller`] (the command was killed; the layer
    /// was still cleaned up).
    #[error("the RUN step was cancelled")]
    Cancelled,
}

/// A set-up failure as the helper reports it over the status pipe (see [`crate::protocol`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// See [`ExecError::InvalidSpec`].
    InvalidSpec(String),
    /// See [`ExecError::Namespaces`].
    Namespaces(String),
    /// See [`ExecError::User`].
    User(String),
    /// See [`ExecError::Mount`].
    Mount {
        what: String,
        target: String,
        message: String,
    },
    /// See [`ExecError::Setup`].
    Setup(String),
    /// See [`ExecError::Start`].
    Start(String),
    /// `execve` of the looked-up program failed with an errno a foreign program explains
    /// (`ENOEXEC`, `ENOENT`). Only the parent can tell whether one does: the host's binfmt_misc
    /// is not visible in the container, so the init sends what it read of the program instead.
    Exec {
        /// runc's wording, for [`ExecError::Start`] when emulation does not explain the failure.
        message: String,
        /// The program's path in the container, after the `PATH` lookup.
        program: String,
        /// `execve`'s errno.
        errno: i32,
        /// The start of the binary `execve` was to load, when the init could read it.
        head: Option<ProgramHead>,
    },
}

impl Failure {
    /// The caller's error for this failure. A [`Failure::Exec`] is checked against the
    /// binfmt_misc registrations under `binfmt_misc` (the host's [`BINFMT_MISC_DIR`]), which
    /// turns a foreign program without a usable interpreter into an [`ExecError::Emulation`].
    ///
    /// [`BINFMT_MISC_DIR`]: crate::emulation::BINFMT_MISC_DIR
    pub(crate) fn into_error(self, binfmt_misc: &Path) -> ExecError {
        match self {
            Failure::InvalidSpec(m) => ExecError::InvalidSpec(m),
            Failure::Namespaces(m) => ExecError::Namespaces(m),
            Failure::User(m) => ExecError::User(m),
            Failure::Mount {
                what,
                target,
                message,
            } => ExecError::Mount {
                what,
                target,
                message,
            },
            Failure::Setup(m) => ExecError::Setup(m),
            Failure::Start(m) => ExecError::Start(m),
            Failure::Exec {
                message,
                program,
                errno,
                head,
            } => head
                .and_then(|head| {
                    explain_exec_failure(
                        &program,
                        Errno::from_raw_os_error(errno),
                        &head,
                        binfmt_misc,
                    )
                })
                .map_or(ExecError::Start(message), ExecError::Emulation),
        }
    }
}

/// An errno in Go's wording (`no such file or directory`), which is what BuildKit and runc print.
pub(crate) fn errno_text(errno: rustix::io::Errno) -> String {
    let text = io::Error::from_raw_os_error(errno.raw_os_error()).to_string();
    // std appends " (os error N)" to strerror's text; Go's table is the same text, lower-cased.
    let text = match text.rfind(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_matches_go_wording() {
        assert_eq!(
            errno_text(rustix::io::Errno::NOENT),
            "no such file or directory"
        );
        assert_eq!(errno_text(rustix::io::Errno::ACCESS), "permission denied");
        assert_eq!(errno_text(rustix::io::Errno::NOEXEC), "exec format error");
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn an_exec_failure_of_a_foreign_program_becomes_an_emulation_error() {
        use crate::emulation::{Arch, EmulationError};
        // An arm64 ELF identification and e_machine; no binfmt_misc registrations at all.
        let mut arm64 = vec![0u8; 64];
        arm64[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        arm64[16] = 2;
        arm64[18] = 183;
        let none = tempfile::tempdir().unwrap();
        let failure = |head: Option<Vec<u8>>| Failure::Exec {
            message: "exec /bin/sh: exec format error".into(),
            program: "/bin/sh".into(),
            errno: Errno::NOEXEC.raw_os_error(),
            head: head.map(|bytes| ProgramHead {
                path: "/bin/sh".into(),
                bytes,
            }),
        };
        match failure(Some(arm64)).into_error(none.path()) {
            ExecError::Emulation(EmulationError::NoInterpreter { program, host }) => {
                assert_eq!((program.arch, host), (Arch::Arm64, Arch::Amd64));
                assert_eq!(program.path, "/bin/sh");
            }
            other => panic!("expected an emulation error, got {other:?}"),
        }
        // Nothing read, or nothing emulation explains: runc's words.
        for head in [None, Some(b"#!/nonexistent\n".to_vec())] {
            assert_eq!(
                failure(head).into_error(none.path()).to_string(),
                "unable to start container process: exec /bin/sh: exec format error"
            );
        }
    }
}
