//! The errors of a `RUN` step that did not produce an exit status.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
}

impl From<Failure> for ExecError {
    fn from(failure: Failure) -> Self {
        match failure {
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
}
