//! Finding the program a command names, as runc does (Go's `exec.LookPath`), with Go's error
//! texts: inside the container, after the root switch, so the lookup sees the image's files.

use crate::error::errno_text;
use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

/// Go's `exec.LookPath` as runc uses it, with Go's error texts.
pub(super) fn look_path(file: &str, path_var: Option<&str>) -> Result<String, String> {
    if file.contains('/') {
        return find_executable(file)
            .map(|()| file.to_owned())
            .map_err(|e| format!("exec: {file:?}: {e}"));
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
                return Err(format!(
                    "exec: {file:?}: cannot run executable found relative to current directory"
                ));
            }
            return Ok(candidate);
        }
    }
    Err(format!(
        "exec: {file:?}: executable file not found in $PATH"
    ))
}

/// Go's `findExecutable`: exists, is not a directory, and is executable for the effective ids.
fn find_executable(path: &str) -> Result<(), String> {
    let st = rustix::fs::stat(path).map_err(|e| format!("stat {path}: {}", errno_text(e)))?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Err(errno_text(Errno::ISDIR));
    }
    rustix::fs::accessat(
        rustix::fs::CWD,
        path,
        rustix::fs::Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(errno_text)
}
