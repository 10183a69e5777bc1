//! Expansion errors, worded like BuildKit's.

use std::fmt::Write as _;

/// A word could not be expanded.
///
/// Displays as BuildKit does: `failed to process "<word>": <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {}", go_quote(.word), .kind)]
pub struct ExpandError {
    word: String,
    kind: ExpandErrorKind,
}

impl ExpandError {
    pub(crate) fn new(word: &str, kind: ExpandErrorKind) -> Self {
        Self {
            word: word.to_owned(),
            kind,
        }
    }

    /// The word that failed to expand, as given to the lexer.
    pub fn word(&self) -> &str {
        &self.word
    }

    /// Why it failed.
    pub fn kind(&self) -> &ExpandErrorKind {
        &self.kind
    }
}

/// The reason an expansion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandErrorKind {
    /// A `'` without its closing quote.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` without its closing quote.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// `${` without its closing `}`.
    #[error("syntax error: missing '}}'")]
    MissingClosingBrace,
    /// `${var/pattern` without the `/` that starts the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:...}`, `${{...}` and similar.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// An operator BuildKit does not implement, such as `${var:=x}` or
    /// `${var:#x}`. Holds the operator as written; a missing character (the
    /// word ended) shows as U+FFFD, as in BuildKit.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${var?message}` found `var` unset, or `${var:?message}` found it unset
    /// or empty.
    #[error("{name}: {message}")]
    Required {
        /// The variable's name.
        name: String,
        /// The message from the word, or BuildKit's default one.
        message: String,
    },
    /// `${...}` operands nested more than 128 deep, which BuildKit would
    /// accept but this crate refuses rather than exhaust the stack.
    #[error("substitutions nested more than {} deep", MAX_NESTING)]
    NestingTooDeep,
    /// A `#`, `%` or `/` pattern with an escape other than `\*`, `\?`, `\\`,
    /// `\}` or `\/`.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'")]
    InvalidPattern {
        /// The pattern as BuildKit reports it (reversed for `%` and `%%`,
        /// which BuildKit matches from the end).
        pattern: String,
        /// The character after the backslash, U+FFFD if there is none.
        escaped: char,
    },
}

/// Quotes `s` like Go's `%q`, which BuildKit uses for the failing word.
///
/// Go escapes every character that is not "printable" by its Unicode tables;
/// this covers control, whitespace, format and private-use characters, which
/// are the ones a Dockerfile can plausibly contain.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_printable(c) => out.push(c),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

fn is_printable(c: char) -> bool {
    c == ' '
        || !(c.is_control()
            || c.is_whitespace()
            || matches!(
                c,
                '\u{ad}'
                    | '\u{600}'..='\u{605}'
                    | '\u{61c}'
                    | '\u{6dd}'
                    | '\u{70f}'
                    | '\u{180e}'
                    | '\u{200b}'..='\u{200f}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2060}'..='\u{206f}'
                    | '\u{feff}'
                    | '\u{fff9}'..='\u{fffb}'
                    | '\u{e000}'..='\u{f8ff}'
                    | '\u{f0000}'..='\u{10ffff}'
            ))
}

/// How many `${...}` operands may nest inside each other. Each level is a
/// recursive call, so without a limit a long enough word would overflow the
/// stack; real Dockerfiles nest a handful of levels at most. (BuildKit has
/// no limit, as Go stacks grow as needed.)
pub(crate) const MAX_NESTING: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_go() {
        assert_eq!(go_quote("he${PWD"), r#""he${PWD""#);
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("\t\n\u{1}\u{7f}"), r#""\t\n\x01\x7f""#);
        assert_eq!(go_quote("한국어 é"), "\"한국어 é\"");
        assert_eq!(
            go_quote("\u{a0}\u{feff}\u{2028}"),
            r#""\u00a0\ufeff\u2028""#
        );
        assert_eq!(go_quote("\u{f0000}"), r#""\U000f0000""#);
    }

    #[test]
    fn display() {
        let err = ExpandError::new("${a", ExpandErrorKind::MissingClosingBrace);
        assert_eq!(
            err.to_string(),
            r#"failed to process "${a": syntax error: missing '}'"#
        );
        let err = ExpandError::new(
            "${a#\\x}",
            ExpandErrorKind::InvalidPattern {
                pattern: "\\x".into(),
                escaped: 'x',
            },
        );
        assert_eq!(
            err.to_string(),
            r#"failed to process "${a#\\x}": invalid pattern (\x) in substitution: invalid escape '\x'"#
        );
    }
}
