//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a pattern came from, so an error can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternSource {
    /// 1-based line number in an ignore file (comment and blank lines count).
    Line(usize),
    /// 0-based position in the list handed to [`PatternMatcher::new`](crate::PatternMatcher::new).
    Index(usize),
}

impl fmt::Display for PatternSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => write!(f, "line {line}"),
            Self::Index(index) => write!(f, "pattern #{index}"),
        }
    }
}

/// Everything that can go wrong while reading patterns or walking a context.
///
/// The first words of the pattern errors are the ones docker prints
/// (`illegal exclusion pattern: "!"`, `syntax error in pattern`), so users
/// searching for docker's message still find their answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line consisting of just `!` (possibly with surrounding spaces).
    #[error(
        "illegal exclusion pattern: \"!\" ({at}): `!` must be followed by the path to \
         re-include, e.g. `!docs/README.md`"
    )]
    LoneExclusion {
        /// Where the pattern came from.
        at: PatternSource,
    },

    /// A pattern docker refuses: malformed `[...]` class, trailing `\`, or an
    /// escape/class that the regular-expression engine behind docker rejects.
    #[error("syntax error in pattern {pattern:?} ({at}): {reason}")]
    BadPattern {
        /// The pattern as the matcher saw it (cleaned, without a leading `!`).
        pattern: String,
        /// Where the pattern came from.
        at: PatternSource,
        /// What exactly is wrong, and usually how to fix it.
        reason: String,
    },

    /// A [`MatchInfo`](crate::MatchInfo) produced by a different matcher was
    /// passed to [`PatternMatcher::matches_using_parent_results`](crate::PatternMatcher::matches_using_parent_results).
    #[error(
        "parent match info has {found} entries but the matcher has {expected} patterns; \
         pass the MatchInfo this same matcher returned for the parent directory \
         (or MatchInfo::default() when there is none)"
    )]
    MatchInfoMismatch {
        /// Number of patterns in the matcher.
        expected: usize,
        /// Number of entries in the supplied match info.
        found: usize,
    },

    /// The build context root is not a directory.
    #[error("build context {} is not a directory", path.display())]
    NotADirectory {
        /// The path given as the context root.
        path: PathBuf,
    },

    /// Reading the build context failed.
    #[error("cannot read build context entry {}: {source}", path.display())]
    Io {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}
