//! Pattern text handling that docker delegates to Go's standard library:
//! `path.Clean`, `filepath.Dir`, the syntax check done by `filepath.Match`,
//! and patternmatcher's own glob-to-regexp conversion.
//!
//! Only the Unix flavour is implemented: `/` is the sole separator and `\`
//! always escapes the next character.

/// Lexically simplifies a `/`-separated path exactly like Go's `path.Clean`:
/// repeated slashes collapse, `.` elements vanish, `..` removes the element
/// before it (or stays, at the start of a relative path), the empty path is
/// `.` and no trailing slash survives except on `/` itself.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    // `..` above the root of an absolute path is the root itself,
                    // but a relative path keeps its leading `..`s.
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned (`.` when
/// there is no `/`).
pub(crate) fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(slash) => clean(&path[..=slash]),
        None => ".".to_owned(),
    }
}

/// Reports the syntax errors Go's `filepath.Match(pattern, ".")` reports.
///
/// docker calls `Match` purely for this side effect. Modern Go validates the
/// whole pattern whatever the name, so this reduces to: every `\` escapes
/// something, and every `[` starts a well-formed class (optional `^`, then one
/// or more items `c` or `c-c`, where an item may not be an unescaped `-` or
/// `]`, then `]`). `*` and `?` can never be malformed.
pub(crate) fn check_syntax(pattern: &str) -> Result<(), &'static str> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            // The guard consumes the escaped character.
            '\\' if chars.next().is_none() => return Err(TRAILING_BACKSLASH),
            '[' => check_class(&mut chars)?,
            _ => {}
        }
    }
    Ok(())
}

const TRAILING_BACKSLASH: &str =
    "a trailing `\\` escapes nothing; write `\\\\` for a literal backslash";
const UNTERMINATED_CLASS: &str = "unterminated character class; add the closing `]`";

/// Checks a class body; `chars` is positioned just after the `[`.
fn check_class(chars: &mut std::str::Chars<'_>) -> Result<(), &'static str> {
    if chars.clone().next() == Some('^') {
        chars.next();
    }
    let mut items = 0usize;
    loop {
        if items > 0 && chars.clone().next() == Some(']') {
            chars.next();
            return Ok(());
        }
        check_class_char(chars)?;
        if chars.clone().next() == Some('-') {
            chars.next();
            check_class_char(chars)?;
        }
        items += 1;
    }
}

/// One class character (Go's `getEsc`), which must be followed by more of the
/// class.
fn check_class_char(chars: &mut std::str::Chars<'_>) -> Result<(), &'static str> {
    match chars.next() {
        None => return Err(UNTERMINATED_CLASS),
        Some('-' | ']') => {
            return Err(
                "inside `[...]`, `-` and `]` must be escaped (`\\-`, `\\]`) unless `-` joins a \
                 range like `a-z`; `[]` and `[^]` are not allowed",
            );
        }
        Some('\\') => {
            if chars.next().is_none() {
                return Err(UNTERMINATED_CLASS);
            }
        }
        Some(_) => {}
    }
    if chars.clone().next().is_none() {
        return Err(UNTERMINATED_CLASS);
    }
    Ok(())
}

/// How a pattern is matched; patternmatcher avoids regexps when it can, and
/// the shortcuts have observable quirks (see [`shape`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// No wildcard: the path must equal the pattern.
    Exact,
    /// `<literal>**`: the path must start with the pattern minus the `**`.
    Prefix,
    /// `**<literal>`: the path must end with the pattern minus the leading
    /// `**` (or equal it minus `**/`).
    Suffix,
    /// Anything else, with the Go (RE2) regexp source patternmatcher builds.
    Regex(String),
}

/// patternmatcher's `compile`: classifies the (cleaned) pattern and, for
/// [`Shape::Regex`], builds the Go regexp source anchored at the context root.
///
/// Faithfully kept quirks:
/// * `**` at the very start makes the pattern a suffix match whenever the rest
///   has no wildcard, so `**foo` matches `barfoo` (a plain suffix test), not
///   just `foo` and `x/foo`.
/// * `[`/`]` and `\x` are copied into the regexp verbatim; only `.+()|{}$` are
///   escaped. Hence `[!a]` is a class containing `!`, `\d` means "digit", and
///   a `*` or `?` inside `[...]` is expanded to `[^/]*`/`[^/]` *inside* the
///   class (the Go regexp parser then decides what that means; see
///   [`crate::goregex`]).
/// * Go's `text/scanner` silently drops a byte-order mark at the very start.
pub(crate) fn shape(pattern: &str) -> Shape {
    let mut regex = String::from("^");
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars().peekable();
    chars.next_if_eq(&'\u{feff}');
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.next_if_eq(&'*').is_some() => {
                // `**/` behaves like `**`: the slash is part of the "any number
                // of directories".
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    // Zero or more whole directories.
                    regex.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                regex.push('\\');
                regex.push(c);
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    regex.push('\\');
                    regex.push(escaped);
                    kind = Kind::Regex;
                }
                // Unreachable after `check_syntax`, but harmless: Go emits a
                // lone backslash too.
                None => regex.push('\\'),
            },
            '[' | ']' => {
                regex.push(c);
                kind = Kind::Regex;
            }
            other => regex.push(other),
        }
        first = false;
    }
    match kind {
        Kind::Exact => Shape::Exact,
        Kind::Prefix => Shape::Prefix,
        Kind::Suffix => Shape::Suffix,
        Kind::Regex => {
            regex.push('$');
            Shape::Regex(regex)
        }
    }
}

/// [`Shape`] without the regexp source, tracked while the source is built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_path_clean() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./", "."),
            ("./foo", "foo"),
            ("foo/", "foo"),
            ("foo//bar", "foo/bar"),
            ("foo/./bar/", "foo/bar"),
            ("foo/../bar", "bar"),
            ("foo/..", "."),
            ("../foo", "../foo"),
            ("foo/../../bar", "../bar"),
            ("/", "/"),
            ("//", "/"),
            ("/..", "/"),
            ("/../foo", "/foo"),
            ("!foo/../bar", "bar"),
            ("a\\b", "a\\b"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn dir_matches_go_filepath_dir() {
        for (input, want) in [
            ("file", "."),
            ("a/b", "a"),
            ("a/b/c", "a/b"),
            ("a/b/", "a/b"),
            ("/a", "/"),
            ("/", "/"),
            ("a//b", "a"),
            ("a/./b", "a"),
        ] {
            assert_eq!(dir(input), want, "dir({input:?})");
        }
    }

    #[test]
    fn syntax_accepts_what_go_filepath_match_accepts() {
        for ok in [
            "abc",
            "*",
            "a?c",
            "[abc]",
            "[a-z]",
            "[^a]",
            "[!a]",
            "[\\]a]",
            "[\\-]",
            "[x\\-]",
            "[[]",
            "[*]",
            "[a-bc-d]",
            "a]b",
            "a\\*b",
            "[Local-Only]",
            "{a,b}",
        ] {
            assert_eq!(check_syntax(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn syntax_rejects_what_go_filepath_match_rejects() {
        for bad in [
            "[", "[^", "[^bc", "a[", "[]a]", "[^]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "[a-b-]x]",
            "\\", "abc\\", "[\\", "[a\\", "*[", "[a]*[",
        ] {
            assert!(check_syntax(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    fn regex_of(pattern: &str) -> String {
        match shape(pattern) {
            Shape::Regex(source) => source,
            other => panic!("{pattern:?} compiled to {other:?}, not a regexp"),
        }
    }

    #[test]
    fn shapes_follow_patternmatcher() {
        for (pattern, want) in [
            ("abc.def", Shape::Exact),
            ("a(b)c/d+e{f}|$", Shape::Exact),
            ("dir/**", Shape::Prefix),
            ("abc**", Shape::Prefix),
            ("**", Shape::Suffix),
            ("**/dir", Shape::Suffix),
            ("**file", Shape::Suffix),
            ("**/foo.bar", Shape::Suffix),
        ] {
            assert_eq!(shape(pattern), want, "{pattern:?}");
        }
    }

    #[test]
    fn regex_sources_follow_patternmatcher() {
        for (pattern, want) in [
            ("*", "^[^/]*$"),
            ("file*", "^file[^/]*$"),
            ("a*/b", "^a[^/]*/b$"),
            ("a?c", "^a[^/]c$"),
            ("**/**", "^(.*/)?.*$"),
            ("**/dir2/*", "^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", "^(.*/)?dir2/.*$"),
            ("a/**/b", "^a/(.*/)?b$"),
            ("**/**/*.txt", "^(.*/)?(.*/)?[^/]*\\.txt$"),
            (".*", "^\\.[^/]*$"),
            ("a[b-d]e", "^a[b-d]e$"),
            ("[!a]", "^[!a]$"),
            ("a\\*b", "^a\\*b$"),
            ("a\\d", "^a\\d$"),
            ("[a*]", "^[a[^/]*]$"),
            ("\u{feff}*", "^[^/]*$"),
        ] {
            assert_eq!(regex_of(pattern), want, "{pattern:?}");
        }
    }
}
