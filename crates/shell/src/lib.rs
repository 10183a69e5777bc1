//! BuildKit-compatible expansion of Dockerfile words.
//!
//! Dockerfile instructions expand `ARG` and `ENV` variables in their
//! arguments with a small shell-like language: `$VAR` and `${VAR}`, the
//! operators `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`, the pattern operators
//! `${VAR#pattern}`, `${VAR##pattern}`, `${VAR%pattern}`, `${VAR%%pattern}`,
//! `${VAR/pattern/replacement}` and `${VAR//pattern/replacement}`, single
//! and double quotes, and escapes with a configurable escape character.
//!
//! This crate reproduces the behaviour of BuildKit's lexer, including its
//! error messages and its quirks, so that words expand exactly as they would
//! in `docker build`. It never panics, whatever the input.
//!
//! Quirks of BuildKit that are reproduced on purpose:
//!
//! - Patterns are globs with `*` and `?` only; `[` is literal, and wildcards
//!   do not match a newline.
//! - In `${VAR//pattern/replacement}`, a `$` in the (already expanded)
//!   replacement follows Go's regexp templates: `$0` is the matched text,
//!   `$$` is `$`, other references are empty. `${VAR/pattern/replacement}`
//!   uses the replacement verbatim.
//! - [`Lexer::process_words`] loses the part of a word before an operator
//!   expansion: `a${X:-b}c` splits into the single word `bc`.
//! - Variable names end at the first character that is not a Unicode letter,
//!   decimal digit or `_`, by Go's definitions (Unicode 15.0 tables).
//! - A byte order mark at the very start of a word or pattern is dropped.
//!
//! The one deliberate difference: operands of `${...}` may nest at most 128
//! deep ([`ExpandErrorKind::NestingTooDeep`]), where BuildKit has no limit.
//!
//! ```
//! use stagecraft_shell::{Env, Lexer};
//!
//! let env: Env = [("VERSION", "1.2.3"), ("ARCH", "arm64")].into_iter().collect();
//! let lexer = Lexer::default();
//! assert_eq!(
//!     lexer.process_word("tool-${VERSION}_${ARCH%64}.tar.gz", &env)?,
//!     "tool-1.2.3_arm.tar.gz",
//! );
//! assert_eq!(
//!     lexer.process_words(r#"echo "a  b" $VERSION"#, &env)?,
//!     ["echo", "a  b", "1.2.3"],
//! );
//! let err = lexer.process_word("${MISSING:?must be set}", &env).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     r#"failed to process "${MISSING:?must be set}": MISSING: must be set"#,
//! );
//! # Ok::<(), stagecraft_shell::ExpandError>(())
//! ```
#![forbid(unsafe_code)]

mod charclass;
mod env;
mod error;
mod lex;
mod pattern;
mod unicode_tables;

pub use env::{Env, EnvGetter};
pub use error::{ExpandError, ExpandErrorKind, go_quote};
pub use lex::{Expansion, Lexer};
