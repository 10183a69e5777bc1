//! `ADD <git repository> <dest>`: BuildKit's git sources, fetched with the `git` command.
//!
//! Which sources are repositories follows BuildKit's `dfgitutil.ParseGitRef`: a URL whose
//! scheme is `git://` or `ssh://`, an `http(s)://` URL whose path ends in `.git`, or an
//! scp-style `user@host:path`. The fragment names what to check out and where to look in it
//! (`#ref:subdir`); the query may say it too (`?ref=`, `?tag=`, `?branch=`, `?subdir=`,
//! `?checksum=` / `?commit=`, `?keep-git-dir=`). The checkout is shallow (one commit), its
//! files get the checkout time as mtime (BuildKit's default), and `.git` is left out unless
//! `--keep-git-dir` (or `keep-git-dir=true`) keeps it.

use std::path::Path;
use std::process::Command;

/// A git repository an `ADD` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitSource {
    /// The remote, without fragment or query.
    pub remote: String,
    /// Branch, tag, full ref or commit; the remote's `HEAD` when `None`.
    pub reference: Option<String>,
    /// A directory inside the repository whose content is copied instead of the whole tree.
    pub subdir: Option<String>,
    /// The commit the reference must resolve to (`checksum=`/`commit=`, or `--checksum`).
    pub checksum: Option<String>,
    /// `keep-git-dir=` in the URL, if given.
    pub keep_git_dir: Option<bool>,
}

/// Why a git source is refused or its checkout failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    /// A boolean query parameter with a value that is not one.
    #[error("invalid {key} value: {value:?}")]
    BadFlag { key: String, value: String },
    /// The query (or fragment) names two different values for one setting.
    #[error("{what} conflicts: {existing:?} vs {value:?}")]
    Conflict {
        what: &'static str,
        existing: String,
        value: String,
    },
    /// `subdir=` disagrees with the fragment's subdirectory.
    #[error("subdir conflicts: {existing:?} vs {value:?}")]
    SubdirConflict {
        existing: Option<String>,
        value: String,
    },
    /// A query parameter without a value.
    #[error("query {0:?} has no value")]
    QueryWithoutValue(String),
    /// A query parameter BuildKit does not know.
    #[error("unexpected query {0:?}")]
    UnexpectedQuery(String),
    /// Both `branch=` and `tag=`.
    #[error("branch conflicts with tag")]
    BranchAndTag,
    /// Creating or cleaning the checkout directory failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The `git` command could not be run.
    #[error("running git: {0} (ADD of a git repository needs the git command)")]
    NoGit(#[source] std::io::Error),
    /// A `git` command failed.
    #[error("git {command}: {stderr}")]
    Command { command: String, stderr: String },
    /// Fetching the reference failed.
    #[error("fetching {wanted} from {remote}: {source}")]
    Fetch {
        wanted: String,
        remote: String,
        #[source]
        source: Box<GitError>,
    },
    /// Fetching the history to find a commit in failed.
    #[error("fetching {remote} for commit {wanted}: {source}")]
    FetchCommit {
        wanted: String,
        remote: String,
        #[source]
        source: Box<GitError>,
    },
    /// The reference resolved to another commit than `checksum=` says.
    #[error("checksum mismatch: {remote} at {wanted} is commit {commit}, expected {expected}")]
    ChecksumMismatch {
        remote: String,
        wanted: String,
        commit: String,
        expected: String,
    },
}

/// The protocols BuildKit fetches git repositories over.
const GIT_SCHEMES: [&str; 4] = ["http", "https", "ssh", "git"];

/// The source as a git repository, or `None` when it is not one (then it is a local path or
/// a plain URL). `Some(Err)` is a repository URL with a bad query.
pub(crate) fn parse(source: &str) -> Option<Result<GitSource, GitError>> {
    if source.starts_with("./") || source.starts_with("../") {
        return None;
    }
    let (remote, query, fragment) = if let Some((scheme, _)) = url_scheme(source) {
        let scheme = scheme.to_ascii_lowercase();
        if !GIT_SCHEMES.contains(&scheme.as_str()) {
            return None;
        }
        let (rest, fragment) = split_once_or(source, '#');
        let (remote, query) = split_once_or(rest, '?');
        if scheme.starts_with("http") && !url_path(remote).ends_with(".git") {
            return None;
        }
        (remote, query, fragment)
    } else {
        // scp-style: `user@host:path[?query][#fragment]`.
        let (user, rest) = source.split_once('@')?;
        let (host, _) = rest.split_once(':')?;
        let user_ok = !user.is_empty()
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !user_ok || !host_ok {
            return None;
        }
        let (rest, fragment) = split_once_or(source, '#');
        let (remote, query) = split_once_or(rest, '?');
        (remote, query, fragment)
    };
    let mut git = GitSource {
        remote: remote.to_owned(),
        reference: None,
        subdir: None,
        checksum: None,
        keep_git_dir: None,
    };
    if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
        let (reference, subdir) = split_once_or(fragment, ':');
        git.reference = Some(reference.to_owned()).filter(|r| !r.is_empty());
        git.subdir = subdir.and_then(clean_subdir);
    }
    Some(git.load_query(query.unwrap_or_default()).map(|()| git))
}

impl GitSource {
    fn load_query(&mut self, query: &str) -> Result<(), GitError> {
        let mut tag = None;
        let mut branch = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = split_once_or(pair, '=');
            let value = value.unwrap_or_default();
            let flag = || -> Result<bool, GitError> {
                match value {
                    "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                    other => Err(GitError::BadFlag {
                        key: key.to_owned(),
                        value: other.to_owned(),
                    }),
                }
            };
            match key {
                "ref" => set_once(&mut self.reference, value, "ref")?,
                "tag" => tag = Some(value.to_owned()),
                "branch" => branch = Some(value.to_owned()),
                "subdir" => {
                    let subdir = clean_subdir(value);
                    if self.subdir.is_some() && self.subdir != subdir {
                        return Err(GitError::SubdirConflict {
                            existing: self.subdir.clone(),
                            value: value.to_owned(),
                        });
                    }
                    self.subdir = subdir;
                }
                "checksum" | "commit" => self.checksum = Some(value.to_owned()),
                "keep-git-dir" => self.keep_git_dir = Some(flag()?),
                _ if value.is_empty() => return Err(GitError::QueryWithoutValue(key.to_owned())),
                other => return Err(GitError::UnexpectedQuery(other.to_owned())),
            }
        }
        if let (Some(_), Some(_)) = (&tag, &branch) {
            return Err(GitError::BranchAndTag);
        }
        if let Some(tag) = tag {
            let full = with_prefix(&tag, "refs/tags/");
            set_once(&mut self.reference, &full, "ref")?;
        }
        if let Some(branch) = branch {
            let full = with_prefix(&branch, "refs/heads/");
            set_once(&mut self.reference, &full, "ref")?;
        }
        Ok(())
    }

    /// Fetches the one commit the reference names into `dir` (which must not exist) and checks
    /// it out, keeping `.git` only when `keep_git_dir`. Returns the commit.
    pub(crate) fn checkout(&self, dir: &Path, keep_git_dir: bool) -> Result<String, GitError> {
        std::fs::create_dir(dir).map_err(|source| GitError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let git = |args: &[&str]| run_git(dir, args);
        git(&["init", "--quiet"])?;
        git(&["remote", "add", "origin", &self.remote])?;
        let wanted = self.reference.as_deref().unwrap_or("HEAD");
        // A commit id can be fetched directly from servers that allow it; otherwise fetch the
        // history and find it there.
        let fetched = git(&[
            "fetch",
            "--quiet",
            "--depth=1",
            "--no-tags",
            "origin",
            wanted,
        ]);
        if let Err(error) = fetched {
            if !is_commit_id(wanted) {
                return Err(GitError::Fetch {
                    wanted: wanted.to_owned(),
                    remote: self.remote.clone(),
                    source: Box::new(error),
                });
            }
            git(&["fetch", "--quiet", "--tags", "origin"]).map_err(|e| GitError::FetchCommit {
                wanted: wanted.to_owned(),
                remote: self.remote.clone(),
                source: Box::new(e),
            })?;
        }
        let target = if is_commit_id(wanted) {
            wanted
        } else {
            "FETCH_HEAD"
        };
        git(&["checkout", "--quiet", "--detach", target])?;
        let commit = git(&["rev-parse", "HEAD"])?.trim().to_owned();
        if let Some(expected) = &self.checksum
            && !commit.starts_with(expected.as_str())
        {
            return Err(GitError::ChecksumMismatch {
                remote: self.remote.clone(),
                wanted: wanted.to_owned(),
                commit,
                expected: expected.clone(),
            });
        }
        if !keep_git_dir {
            let dot_git = dir.join(".git");
            std::fs::remove_dir_all(&dot_git).map_err(|source| GitError::Io {
                path: dot_git.display().to_string(),
                source,
            })?;
        }
        Ok(commit)
    }
}

/// Runs `git ARGS` in `dir`, returning standard output. The umask is fixed so file modes do not
/// depend on the user running the build (git applies it to checked-out files).
fn run_git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null());
    // SAFETY: umask is async-signal-safe and touches only the child's own state.
    unsafe {
        command.pre_exec(|| {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
            Ok(())
        });
    }
    let output = command.output().map_err(GitError::NoGit)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(GitError::Command {
            command: args.first().copied().unwrap_or_default().to_owned(),
            stderr: stderr.trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn is_commit_id(reference: &str) -> bool {
    matches!(reference.len(), 40 | 64) && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

fn set_once(slot: &mut Option<String>, value: &str, what: &'static str) -> Result<(), GitError> {
    match slot {
        Some(existing) if existing != value => Err(GitError::Conflict {
            what,
            existing: existing.clone(),
            value: value.to_owned(),
        }),
        _ => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    }
}

fn with_prefix(name: &str, prefix: &str) -> String {
    if name.starts_with(prefix) {
        name.to_owned()
    } else {
        format!("{prefix}{name}")
    }
}

/// `path.Join("/", subdir)` without its leading `/`; `None` for the root.
fn clean_subdir(subdir: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in subdir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// `text` split at the first `separator`, the second part `None` when there is none.
fn split_once_or(text: &str, separator: char) -> (&str, Option<&str>) {
    match text.split_once(separator) {
        Some((head, tail)) => (head, Some(tail)),
        None => (text, None),
    }
}

/// The scheme of `scheme://…` (letters and digits only, as BuildKit's `protoRegexp`).
fn url_scheme(source: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = source.split_once("://")?;
    (!scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some((scheme, rest))
}

/// The path of a URL without query or fragment.
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .map_or("", |slash| &after_scheme[slash..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(source: &str) -> GitSource {
        parse(source).unwrap().unwrap()
    }

    #[test]
    fn which_sources_are_repositories() {
        for source in [
            "https://github.com/moby/buildkit.git",
            "http://127.0.0.1:8080/repo.git#main",
            "git://127.0.0.1/repo",
            "ssh://git@example.com/repo",
            "git@github.com:moby/buildkit.git",
            "GIT://host/repo",
        ] {
            assert!(parse(source).is_some(), "{source}");
        }
        for source in [
            "https://example.com/file.tar.gz",
            "https://example.com/repo.git.tar",
            "ftp://host/repo.git",
            "./git@host:path",
            "src/",
            "github.com/moby/buildkit",
            "a:b",
            "user@host/path:x",
        ] {
            assert!(parse(source).is_none(), "{source}");
        }
    }

    #[test]
    fn fragments_and_queries_like_buildkit() {
        let source = git("https://github.com/foo/bar.git#baz/qux:quux/../quuz/");
        assert_eq!(source.remote, "https://github.com/foo/bar.git");
        assert_eq!(source.reference.as_deref(), Some("baz/qux"));
        assert_eq!(source.subdir.as_deref(), Some("quuz"));

        let source = git("git@github.com:foo/bar.git?tag=v1&subdir=docs&keep-git-dir=true");
        assert_eq!(source.remote, "git@github.com:foo/bar.git");
        assert_eq!(source.reference.as_deref(), Some("refs/tags/v1"));
        assert_eq!(source.subdir.as_deref(), Some("docs"));
        assert_eq!(source.keep_git_dir, Some(true));

        let source = git("git://h/r?branch=dev&commit=abc123");
        assert_eq!(source.reference.as_deref(), Some("refs/heads/dev"));
        assert_eq!(source.checksum.as_deref(), Some("abc123"));

        for bad in [
            "git://h/r?ref=a&ref=b#x",
            "git://h/r?tag=a&branch=b",
            "git://h/r?color=blue",
            "git://h/r?keep-git-dir=maybe",
            "git://h/r?ref=main#dev",
        ] {
            assert!(parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
