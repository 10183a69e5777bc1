//! Finding the program a command names, as runc does (Go's `exec.LookPath`), with Go's error
//! texts: inside the container, after the root switch, so the lookup sees the image's files.

use crate::error::errno_text;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

/// Why the program a command names cannot be run, in Go's words.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum LookPathError {
    /// A path (with a `/`) that names no executable file.
    #[error("exec: {file:?}: {reason}")]
    Path {
        file: String,
        #[source]
        reason: NotExecutable,
    },
    /// A name found only through a relative `$PATH` entry.
    #[error("exec: {0:?}: cannot run executable found relative to current directory")]
    Relative(String),
    /// A name no `$PATH` entry holds an executable of.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
}

/// Why a path is not an executable file (Go's `findExecutable`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum NotExecutable {
    /// It cannot be looked up.
    #[error("stat {path}: {}", errno_text(*.errno))]
    Stat { path: String, errno: Errno },
    /// It is a directory.
    #[error("{}", errno_text(Errno::ISDIR))]
    Directory,
    /// The effective ids may not execute it.
    #[error("{}", errno_text(*.0))]
    Access(Errno),
}

/// Go's `exec.LookPath` as runc uses it, with Go's error texts.
pub(super) fn look_path(file: &str, path_var: Option<&str>) -> Result<String, LookPathError> {
    if file.contains('/') {
        return find_executable(file)
            .map(|()| file.to_owned())
            .map_err(|reason| LookPathError::Path {
                file: file.to_owned(),
                reason,
            });
    }
    // Go's filepath.SplitList: an empty PATH has no entries; an empty entry means ".".
    let dirs = match path_var {
        None | Some("") => Vec::new(),
        Some(p) => p.split(':').collect(),
    };
    for dir in dirs {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{}/{file}", dir.trim_end_matches('/'));
        if find_executable(&candidate).is_ok() {
            if !candidate.starts_with('/') {
                return Err(LookPathError::Relative(file.to_owned()));
            }
            return Ok(candidate);
        }
    }
    Err(LookPathError::NotFound(file.to_owned()))
}

/// Go's `findExecutable`: exists, is not a directory, and is executable for the effective ids.
fn find_executable(path: &str) -> Result<(), NotExecutable> {
    let st = rustix::fs::stat(path).map_err(|errno| NotExecutable::Stat {
        path: path.to_owned(),
        errno,
    })?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Err(NotExecutable::Directory);
    }
    rustix::fs::accessat(
        rustix::fs::CWD,
        path,
        rustix::fs::Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(NotExecutable::Access)
}
