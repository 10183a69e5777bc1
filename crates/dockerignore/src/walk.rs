//! Enumerating the files that enter a build context.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
    /// Path relative to the context root, `/`-separated (`src/main.rs`), with the exact bytes
    /// of its names (which need not be UTF-8: print it with [`ContextEntry::escaped_path`]).
    pub path: PathBuf,
    /// Size in bytes as reported by `lstat` (for a symlink, the length of its
    /// target path).
    pub size: u64,
    /// What the entry is.
    pub kind: EntryKind,
}

impl ContextEntry {
    /// The path as printable text: valid UTF-8 stays as it is, except that a backslash is
    /// doubled and control characters and bytes that are not UTF-8 are written `\xNN`
    /// (`\n`, `\t` for newline and tab), so one entry is always one unambiguous line.
    pub fn escaped_path(&self) -> String {
        escape_bytes(self.path.as_os_str().as_bytes())
    }
}

/// `bytes` as text with backslash escapes for what is not printable UTF-8 (see
/// [`ContextEntry::escaped_path`]).
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                '\t' => text.push_str("\\t"),
                c if c.is_control() => {
                    let mut buffer = [0u8; 4];
                    for byte in c.encode_utf8(&mut buffer).bytes() {
                        text.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                c => text.push(c),
            }
        }
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
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
/// Directories themselves are not listed. Names are bytes: one that is not UTF-8 is listed
/// as it is, and matched the way docker's patterns see it (one U+FFFD per bad byte).
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
        let kind = if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        included.push(ContextEntry {
            path: entry
                .path()
                .strip_prefix(root)
                .unwrap_or(entry.path())
                .to_path_buf(),
            size: metadata.len(),
            kind,
        });
    }
    // Byte order of the whole path, as BuildKit sorts (not component order).
    included.sort_unstable_by(|a, b| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
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
}

impl RelativePath {
    fn new(root: &Path, path: &Path) -> Self {
        let relative = path.strip_prefix(root).unwrap_or(path);
        let mut for_matching = String::new();
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
            for_matching.push_str(&name);
            depth += 1;
        }
        Self {
            depth,
            for_matching,
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

/// A file name (or a whole path) as docker's patterns see it: text, borrowed when it is
/// valid UTF-8, else with one U+FFFD for each byte that is not.
#[cfg(unix)]
pub fn lossy_name(name: &OsStr) -> Cow<'_, str> {
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

/// A file name (or a whole path) as text, borrowed when it is valid Unicode.
#[cfg(not(unix))]
pub fn lossy_name(name: &OsStr) -> Cow<'_, str> {
    name.to_string_lossy()
}
