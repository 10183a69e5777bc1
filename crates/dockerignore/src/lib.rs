//! docker's `.dockerignore` semantics, as BuildKit applies them.
//!
//! This reproduces moby/patternmatcher (pattern parsing and matching) and
//! the filtered walk of tonistiigi/fsutil (which files enter the context),
//! including their quirks, because a builder that disagrees with docker about
//! what is in the context produces different images:
//!
//! * patterns are anchored at the context root (`*.log` matches `a.log`, not
//!   `logs/a.log`), unlike `.gitignore`;
//! * `*` and `?` never cross `/`; `**` spans any number of directories;
//! * `[...]` is a regular-expression class (`[!a]` contains `!`, it does not
//!   negate), `{a,b}` is literal, `\` escapes into the regular expression;
//! * excluding a directory excludes everything in it, the last matching
//!   pattern wins, and `!pattern` re-includes, even inside an excluded
//!   directory.
//!
//! ```
//! use stagecraft_dockerignore::PatternMatcher;
//!
//! let matcher = PatternMatcher::from_ignore_file("target\n*.md\n!README.md\n")?;
//! assert!(matcher.matches("target/debug/app"));
//! assert!(matcher.matches("CHANGES.md"));
//! assert!(!matcher.matches("README.md"));
//! assert!(!matcher.matches("docs/guide.md")); // `*.md` is anchored
//! # Ok::<(), stagecraft_dockerignore::Error>(())
//! ```
//!
//! Only Unix path semantics are implemented: `/` separates, `\` escapes.
#![forbid(unsafe_code)]

mod error;
mod glob;
mod goregex;
mod ignorefile;
mod matcher;
mod walk;

pub use error::{Error, PatternSource};
pub use ignorefile::find_ignore_file;
pub use matcher::{MatchInfo, PatternMatcher, parse_ignore_file};
pub use walk::{ContextEntry, EntryKind, escape_bytes, lossy_name, walk_context};
