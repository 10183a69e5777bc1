//! Go's path semantics, which Dockerfiles inherit from BuildKit: `path.Clean`, `filepath.Dir`,
//! `filepath.Match` and the syntax check `filepath.Match` does. One implementation for the
//! `.dockerignore` matcher, the build engine and the linter, so that none of them can read a
//! path or a wildcard differently from the others.
//!
//! Only the Unix flavour is implemented: `/` is the sole separator and `\` always escapes the
//! next character.
#![forbid(unsafe_code)]

/// Lexically simplifies a `/`-separated path exactly like Go's `path.Clean`:
/// repeated slashes collapse, `.` elements vanish, `..` removes the element
/// before it (or stays, at the start of a relative path), the empty path is
/// `.` and no trailing slash survives except on `/` itself.
pub fn clean(path: &str) -> String {
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
pub fn dir(path: &str) -> String {
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
pub fn check_syntax(pattern: &str) -> Result<(), &'static str> {
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

/// Whether `pattern` has wildcard characters.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Matches one name against one pattern component. A malformed pattern matches nothing.
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_from(&pattern, &name)
}

fn match_from(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Position to retry from after the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() || p < pattern.len() {
        if p < pattern.len() {
            match pattern[p] {
                '*' => {
                    star = Some((p + 1, n));
                    p += 1;
                    continue;
                }
                '?' if n < name.len() && name[n] != '/' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                '[' if n < name.len() => {
                    if let Some((matched, next)) = class(pattern, p, name[n]) {
                        if matched {
                            p = next;
                            n += 1;
                            continue;
                        }
                    } else {
                        return false;
                    }
                }
                '\\' if p + 1 < pattern.len() && n < name.len() && pattern[p + 1] == name[n] => {
                    p += 2;
                    n += 1;
                    continue;
                }
                c if c != '[' && c != '\\' && c != '?' && n < name.len() && c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last `*` swallow one more character (never a `/`).
        match star {
            Some((after_star, at)) if at < name.len() && name[at] != '/' => {
                star = Some((after_star, at + 1));
                p = after_star;
                n = at + 1;
            }
            _ => return false,
        }
    }
    true
}

/// Evaluates the class starting at `pattern[start] == '['` against `c`: whether it matched and
/// the index after the class; `None` when the class is malformed.
fn class(pattern: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = pattern.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *pattern.get(i)?;
        if ch == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *pattern.get(i)?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if pattern.get(i) == Some(&'-') && pattern.get(i + 1).is_some_and(|&n| n != ']') {
            i += 1;
            hi = if pattern[i] == '\\' {
                i += 1;
                *pattern.get(i)?
            } else {
                pattern[i]
            };
            i += 1;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_semantics() {
        assert!(matches("*.go", "main.go"));
        assert!(!matches("*.go", "main.rs"));
        assert!(matches("a?c", "abc"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[^a-c]x", "bx"));
        assert!(matches("[^a-c]x", "dx"));
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "a"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b", "a/b"));
        assert!(!matches("[", "["));
        assert!(matches("package*.json", "package-lock.json"));
    }

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
}
