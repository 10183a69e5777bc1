//! Enumerating the files that enter a build context.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path};

use walkdir::WalkDir;

use crate::error::Error;
use crate::matcher::{MatchInfo, PatternMatcher};

/// What kind of filesystem object a [`ContextEntry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link (listed as a link; its target is never followed).
    Symlink,
    /// Anything else that is not a directory: FIFO, socket, device node.
    Other,
}

/// One non-directory entry of the build context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContextEntry {
    /// Path relative to the context root, `/`-separated (`src/main.rs`).
    pub path: String,
    /// Size in bytes as reported by `lstat` (for a symlink, the length of its
    /// target path).
    pub size: u64,
    /// What the entry is.
    pub kind: EntryKind,
}

/// Lists the non-directory entries under `root` that the ignore patterns let
/// into the build context, sorted by path (byte order).
///
/// The decisions are BuildKit's (fsutil's filtered walk):
/// * each entry is matched with
///   [`PatternMatcher::matches_using_parent_results`], feeding in the result
///   of its directory;
/// * an excluded directory is skipped entirely unless a `!` pattern might
///   re-include something below it, in which case it is walked and only the
///   re-included entries are kept;
/// * symlinks are listed, never followed (the root itself may be a symlink);
/// * entries that vanish mid-walk are ignored, as are permission errors on
///   excluded paths; any other error aborts the walk and names the path.
///
/// Directories themselves are not listed; an entry whose name is not UTF-8 is
/// an error only if it would be included.
pub fn walk_context(root: &Path, matcher: &PatternMatcher) -> Result<Vec<ContextEntry>, Error> {
    let io_error = |path: &Path, source: io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if !std::fs::metadata(root)
        .map_err(|source| io_error(root, source))?
        .is_dir()
    {
        return Err(Error::NotADirectory {
            path: root.to_path_buf(),
        });
    }

    let mut included = Vec::new();
    // Match results of the directories above the current entry; index `d`
    // holds the directory at depth `d + 1`.
    let mut ancestors: Vec<MatchInfo> = Vec::new();
    let mut walker = WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter();
    while let Some(next) = walker.next() {
        let entry = match next {
            Ok(entry) => entry,
            Err(err) => {
                let path = err.path().unwrap_or(root).to_path_buf();
                let rel = RelativePath::new(root, &path);
                // Errors on the root itself are always fatal.
                if rel.depth > 0 && tolerated(&err, rel.matches(matcher, &mut ancestors)?.0) {
                    continue;
                }
                return Err(io_error(&path, io::Error::from(err)));
            }
        };
        let rel = RelativePath::new(root, entry.path());
        let (excluded, info) = rel.matches(matcher, &mut ancestors)?;
        let file_type = entry.file_type();
        if file_type.is_dir() {
            if excluded && !matcher.may_reinclude_below(&rel.for_matching) {
                walker.skip_current_dir();
            } else {
                ancestors.push(info);
            }
            continue;
        }
        if excluded {
            continue;
        }
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(err) if tolerated(&err, false) => continue,
            Err(err) => return Err(io_error(entry.path(), io::Error::from(err))),
        };
        if !rel.utf8 {
            return Err(Error::NonUtf8Path {
                path: entry.path().to_path_buf(),
            });
        }
        let kind = if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        included.push(ContextEntry {
            path: rel.for_matching,
            size: metadata.len(),
            kind,
        });
    }
    included.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(included)
}

/// Whether a walk error can be ignored, as fsutil does: the entry vanished
/// (or a parent stopped being a directory) while we walked, or permission was
/// denied on a path that is excluded anyway.
fn tolerated(err: &walkdir::Error, excluded: bool) -> bool {
    match err.io_error().map(io::Error::kind) {
        Some(io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => true,
        Some(io::ErrorKind::PermissionDenied) => excluded,
        _ => false,
    }
}

/// A walked path relative to the context root.
struct RelativePath {
    /// Number of components (1 for entries directly in the root).
    depth: usize,
    /// The `/`-joined path the patterns are matched against. Bytes that are
    /// not UTF-8 become U+FFFD one byte at a time, which is how Go's regexp
    /// engine sees them.
    for_matching: String,
    /// Whether every name was valid UTF-8, i.e. `for_matching` is exact.
    utf8: bool,
}

impl RelativePath {
    fn new(root: &Path, path: &Path) -> Self {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let mut for_matching = String::new();
        let mut utf8 = true;
        let mut depth = 0;
        for component in relative.components() {
            // Walked paths are `root` plus plain names; nothing else to keep.
            let Component::Normal(name) = component else {
                continue;
            };
            if depth > 0 {
                for_matching.push('/');
            }
            let name = lossy_name(name);
            utf8 &= matches!(name, Cow::Borrowed(_));
            for_matching.push_str(&name);
            depth += 1;
        }
        Self {
            depth,
            for_matching,
            utf8,
        }
    }

    /// Matches this path using the results of its ancestors, first dropping
    /// results of directories the walk has left.
    fn matches(
        &self,
        matcher: &PatternMatcher,
        ancestors: &mut Vec<MatchInfo>,
    ) -> Result<(bool, MatchInfo), Error> {
        ancestors.truncate(self.depth.saturating_sub(1));
        let top_level = MatchInfo::default();
        let parent = ancestors.last().unwrap_or(&top_level);
        matcher.matches_using_parent_results(&self.for_matching, parent)
    }
}

/// A file name as text, borrowed when it is valid UTF-8.
#[cfg(unix)]
fn lossy_name(name: &OsStr) -> Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            // Unlike `String::from_utf8_lossy`, one U+FFFD per bad byte, so
            // `?` consumes one byte as it does in docker.
            let mut text = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                text.push_str(chunk.valid());
                text.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
            }
            Cow::Owned(text)
        }
    }
}

/// A file name as text, borrowed when it is valid Unicode.
#[cfg(not(unix))]
fn lossy_name(name: &OsStr) -> Cow<'_, str> {
    name.to_string_lossy()
}
