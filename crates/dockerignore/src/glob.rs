//! patternmatcher's own glob-to-regexp conversion (Go's `path.Clean`, `filepath.Dir` and
//! `filepath.Match` come from `stagecraft_gopath`).

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
