//! Go's `filepath.Match`, which BuildKit uses for `COPY` wildcards (one path component at a time:
//! `*` and `?` never match `/`).

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
}
