//! The shell patterns of `${var#pattern}`, `${var%pattern}` and
//! `${var/pattern/replacement}`.
//!
//! BuildKit converts these patterns to Go regular expressions; this module
//! matches them directly and reproduces the parts of that conversion and of
//! Go's regexp semantics that are observable:
//!
//! - `*` matches any run of characters and `?` any one character, but neither
//!   matches a newline (they become Go's `.`, which excludes `\n`).
//! - Bracket expressions are not supported: `[`, `]` and every other character
//!   match themselves.
//! - `\*`, `\?` and `\\` match the escaped character; `\}` and `\/` are the
//!   escaped delimiters of `${...}` and match `}` and `/`; any other escape is
//!   an error.
//! - The leftmost match wins, and among the matches starting there a greedy
//!   search takes the longest and a lazy one the shortest.

use crate::charclass::is_letter_or_digit;
use crate::error::ExpandErrorKind;

/// Go's text scanner, which BuildKit reads patterns and words with, silently
/// drops this character when it starts the input.
pub(crate) const BYTE_ORDER_MARK: char = '\u{feff}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
}

/// A parsed pattern, matched by simulating its automaton over the text.
#[derive(Debug)]
struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    fn parse(source: &str) -> Result<Self, ExpandErrorKind> {
        let mut chars = source.chars().peekable();
        chars.next_if_eq(&BYTE_ORDER_MARK);
        let mut tokens = Vec::new();
        while let Some(c) = chars.next() {
            let token = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyChar,
                '\\' => {
                    // The escape of a delimiter is not part of the pattern; the
                    // delimiter itself is read as a literal next time round.
                    if matches!(chars.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match chars.next() {
                        Some(escaped @ ('*' | '?' | '\\')) => Token::Literal(escaped),
                        other => {
                            return Err(ExpandErrorKind::InvalidPattern {
                                pattern: source.to_owned(),
                                escaped: other.unwrap_or(char::REPLACEMENT_CHARACTER),
                            });
                        }
                    }
                }
                literal => Token::Literal(literal),
            };
            tokens.push(token);
        }
        Ok(Self { tokens })
    }

    /// Finds the leftmost match starting at or after `from` (exactly at
    /// `from` if `anchored`), as a range of char indices into `text`.
    ///
    /// Every automaton state keeps only the earliest start that reached it:
    /// threads in the same state have the same future, and the earlier start
    /// always wins, so later ones can be dropped. That bounds the work by the
    /// text length times the pattern length, with no backtracking.
    fn find(
        &self,
        text: &[char],
        from: usize,
        anchored: bool,
        greedy: bool,
    ) -> Option<(usize, usize)> {
        let accept = self.tokens.len();
        let mut threads: Vec<Option<usize>> = vec![None; accept + 1];
        let mut best: Option<(usize, usize)> = None;
        let mut pos = from;
        loop {
            if best.is_none()
                && (!anchored || pos == from)
                && let Some(initial) = threads.first_mut()
            {
                keep_earliest(initial, pos);
            }
            self.follow_empty_runs(&mut threads);

            if let Some(start) = threads.get(accept).copied().flatten() {
                best = match best {
                    Some((best_start, _)) if best_start < start => best,
                    Some((best_start, _)) if best_start == start && !greedy => best,
                    _ => Some((start, pos)),
                };
            }
            if let Some((best_start, _)) = best {
                // Later starts can no longer win; for a lazy search neither can
                // a longer match from the chosen start.
                for thread in &mut threads {
                    if thread
                        .is_some_and(|start| start > best_start || (start == best_start && !greedy))
                    {
                        *thread = None;
                    }
                }
            }

            let idle = threads.iter().all(Option::is_none);
            let Some(&c) = text.get(pos) else { break };
            if idle && (best.is_some() || anchored) {
                break;
            }
            threads = self.step(&threads, c);
            pos += 1;
        }
        best
    }

    /// A `*` may match nothing, so a thread before it is also after it.
    fn follow_empty_runs(&self, threads: &mut [Option<usize>]) {
        for (state, token) in self.tokens.iter().enumerate() {
            if *token != Token::AnyRun {
                continue;
            }
            if let Some(start) = threads.get(state).copied().flatten()
                && let Some(next) = threads.get_mut(state + 1)
            {
                keep_earliest(next, start);
            }
        }
    }

    fn step(&self, threads: &[Option<usize>], c: char) -> Vec<Option<usize>> {
        let mut next = vec![None; threads.len()];
        for (state, (token, start)) in self.tokens.iter().zip(threads).enumerate() {
            let Some(start) = *start else { continue };
            let target = match *token {
                Token::Literal(literal) if literal == c => state + 1,
                Token::AnyChar if c != '\n' => state + 1,
                Token::AnyRun if c != '\n' => state,
                _ => continue,
            };
            if let Some(slot) = next.get_mut(target) {
                keep_earliest(slot, start);
            }
        }
        next
    }
}

fn keep_earliest(slot: &mut Option<usize>, start: usize) {
    *slot = Some(slot.map_or(start, |current| current.min(start)));
}

/// The chars of `text` in `start..end`, empty if the range is out of order.
fn span(text: &[char], start: usize, end: usize) -> &[char] {
    text.get(start..end).unwrap_or_default()
}

/// `${var#pattern}` (`longest == false`) and `${var##pattern}`.
pub(crate) fn trim_prefix(
    pattern: &str,
    value: &str,
    longest: bool,
) -> Result<String, ExpandErrorKind> {
    let pattern = Pattern::parse(pattern)?;
    let text: Vec<char> = value.chars().collect();
    Ok(match pattern.find(&text, 0, true, longest) {
        Some((_, end)) => span(&text, end, text.len()).iter().collect(),
        None => value.to_owned(),
    })
}

/// `${var%pattern}` (`longest == false`) and `${var%%pattern}`.
///
/// Like BuildKit, this reverses both the pattern and the value and trims a
/// prefix, since a leftmost search cannot find the shortest suffix directly.
pub(crate) fn trim_suffix(
    pattern: &str,
    value: &str,
    longest: bool,
) -> Result<String, ExpandErrorKind> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, longest)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern but keeps each escape before the character it escapes:
/// `a\*c` becomes `c\*a`. A trailing lone backslash moves to the front.
fn reverse_pattern(pattern: &str) -> String {
    let mut units = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let escaped = if c == '\\' { chars.next() } else { None };
        units.push((c, escaped));
    }
    let mut reversed = String::with_capacity(pattern.len());
    for (c, escaped) in units.into_iter().rev() {
        reversed.push(c);
        reversed.extend(escaped);
    }
    reversed
}

/// `${var/pattern/replacement}` (`all == false`) and `${var//pattern/replacement}`.
pub(crate) fn replace(
    value: &str,
    pattern: &str,
    replacement: &str,
    all: bool,
) -> Result<String, ExpandErrorKind> {
    let pattern = Pattern::parse(pattern)?;
    let text: Vec<char> = value.chars().collect();
    if !all {
        // BuildKit splices the first match's replacement in verbatim.
        let Some((start, end)) = pattern.find(&text, 0, false, true) else {
            return Ok(value.to_owned());
        };
        let mut out: String = span(&text, 0, start).iter().collect();
        out.push_str(replacement);
        out.extend(span(&text, end, text.len()));
        return Ok(out);
    }

    // Replacing all matches goes through Go's Regexp.ReplaceAllString, whose
    // empty-match rules and `$` templates are reproduced here.
    let mut out = String::with_capacity(value.len());
    let mut copied = 0;
    let mut search = 0;
    while search <= text.len() {
        let Some((start, end)) = pattern.find(&text, search, false, true) else {
            break;
        };
        out.extend(span(&text, copied, start));
        // An empty match right after the previous match is not replaced again.
        if end > copied || start == 0 {
            expand_template(&mut out, replacement, span(&text, start, end));
        }
        copied = end;
        search = end.max(search + 1);
    }
    out.extend(span(&text, copied, text.len()));
    Ok(out)
}

/// Appends `template` with Go's regexp template expansion: `$$` is a `$`,
/// `$name` and `${name}` refer to capture groups, and anything else after a
/// `$` leaves it literal. The converted patterns have no capture groups, so
/// only group 0 (`$0`, `${0}`: the whole match) has a value and every other
/// reference expands to nothing.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('$') {
        out.push_str(before);
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_reference(after) {
            Some((name, after)) => {
                if name == "0" {
                    out.extend(matched);
                }
                rest = after;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// Splits a `name` or `{name}` reference off the text after a `$`.
fn template_reference(text: &str) -> Option<(&str, &str)> {
    let (braced, body) = match text.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let name_len = body
        .find(|c: char| c != '_' && !is_letter_or_digit(c))
        .unwrap_or(body.len());
    if name_len == 0 {
        return None;
    }
    let (name, after) = body.split_at(name_len);
    if braced {
        after.strip_prefix('}').map(|after| (name, after))
    } else {
        Some((name, after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(pattern: &str, text: &str, anchored: bool, greedy: bool) -> Option<(usize, usize)> {
        let text: Vec<char> = text.chars().collect();
        Pattern::parse(pattern)
            .expect("valid pattern")
            .find(&text, 0, anchored, greedy)
    }

    fn invalid_escape(pattern: &str) -> Option<char> {
        match Pattern::parse(pattern) {
            Err(ExpandErrorKind::InvalidPattern { escaped, .. }) => Some(escaped),
            _ => None,
        }
    }

    #[test]
    fn parse_tokens() {
        let parsed = Pattern::parse("a*?\\*\\?\\\\\\}\\/[.]").expect("valid");
        use Token::*;
        assert_eq!(
            parsed.tokens,
            [
                Literal('a'),
                AnyRun,
                AnyChar,
                Literal('*'),
                Literal('?'),
                Literal('\\'),
                Literal('}'),
                Literal('/'),
                Literal('['),
                Literal('.'),
                Literal(']'),
            ]
        );
        assert_eq!(
            Pattern::parse("\u{feff}a").expect("valid").tokens,
            [Literal('a')]
        );
    }

    #[test]
    fn invalid_escapes() {
        assert_eq!(invalid_escape("\\"), Some(char::REPLACEMENT_CHARACTER));
        assert_eq!(invalid_escape("\\x"), Some('x'));
        assert_eq!(invalid_escape("\\\\\\"), Some(char::REPLACEMENT_CHARACTER));
        assert_eq!(invalid_escape("a\\#"), Some('#'));
        assert_eq!(invalid_escape("\\*\\?\\\\"), None);
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        assert_eq!(
            find("()[]{\\}^$.\\*\\?|\\\\", "()[]{}^$.*?|\\x", true, true),
            Some((0, 13))
        );
        assert_eq!(find(".", "a", true, true), None);
    }

    #[test]
    fn leftmost_then_longest_or_shortest() {
        assert_eq!(find("*x", "axbx", true, true), Some((0, 4)));
        assert_eq!(find("*x", "axbx", true, false), Some((0, 2)));
        assert_eq!(find("*", "abc", true, false), Some((0, 0)));
        assert_eq!(find("b*", "abcbd", false, true), Some((1, 5)));
        assert_eq!(find("b?", "abcbd", false, true), Some((1, 3)));
        assert_eq!(find("x", "abc", false, true), None);
        assert_eq!(find("", "abc", false, true), Some((0, 0)));
        // Leftmost beats shorter: the match starting at 0 ends after one at 2.
        assert_eq!(find("a*z", "a-bz", false, true), Some((0, 4)));
    }

    #[test]
    fn wildcards_stop_at_newlines() {
        assert_eq!(find("*", "ab\ncd", true, true), Some((0, 2)));
        assert_eq!(find("a?c", "a\nc", false, true), None);
        assert_eq!(find("*c", "ab\ncd", false, true), Some((3, 4)));
    }

    #[test]
    fn reversing() {
        for (pattern, expected) in [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            ("\\\\b", "b\\\\"),
        ] {
            assert_eq!(reverse_pattern(pattern), expected, "{pattern}");
        }
    }

    #[test]
    fn trimming() {
        assert_eq!(trim_prefix("*x", "xxyy", false).as_deref(), Ok("xyy"));
        assert_eq!(trim_prefix("*x", "xxyy", true).as_deref(), Ok("yy"));
        assert_eq!(trim_suffix("y*", "xxyy", false).as_deref(), Ok("xxy"));
        assert_eq!(trim_suffix("y*", "xxyy", true).as_deref(), Ok("xx"));
        assert_eq!(trim_suffix("\\**\\*", "a***yy*", true).as_deref(), Ok("a"));
        assert_eq!(trim_prefix("q", "xxyy", true).as_deref(), Ok("xxyy"));
    }

    #[test]
    fn suffix_errors_report_the_reversed_pattern() {
        assert_eq!(
            trim_suffix("ab\\", "x", false),
            Err(ExpandErrorKind::InvalidPattern {
                pattern: "\\ba".into(),
                escaped: 'b'
            })
        );
    }

    #[test]
    fn replacing() {
        assert_eq!(
            replace("/tmp/tmp/bar.txt", "/tmp", "", false).as_deref(),
            Ok("/tmp/bar.txt")
        );
        assert_eq!(
            replace("/tmp/tmp/bar.txt", "/tmp", "", true).as_deref(),
            Ok("/bar.txt")
        );
        assert_eq!(replace("xxyy", "", "ww", false).as_deref(), Ok("wwxxyy"));
        assert_eq!(replace("xxyy", "", "-", true).as_deref(), Ok("-x-x-y-y-"));
        assert_eq!(replace("abc", "x*", "-", true).as_deref(), Ok("abc"));
        assert_eq!(replace("abc", "*", "-", true).as_deref(), Ok("-"));
        assert_eq!(replace("baab", "a*", "-", true).as_deref(), Ok("b-"));
        assert_eq!(replace("ab\nab", "a?", "-", true).as_deref(), Ok("-\n-"));
        assert_eq!(replace("한국어", "?", ".", true).as_deref(), Ok("..."));
    }

    #[test]
    fn replace_all_expands_go_templates() {
        let all = |replacement: &str| replace("a-b", "-", replacement, true);
        assert_eq!(all("[$0]").as_deref(), Ok("a[-]b"));
        assert_eq!(all("[${0}]").as_deref(), Ok("a[-]b"));
        assert_eq!(all("$$").as_deref(), Ok("a$b"));
        assert_eq!(all("$1$x${y}$00").as_deref(), Ok("ab"));
        assert_eq!(all("$").as_deref(), Ok("a$b"));
        assert_eq!(all("$-${").as_deref(), Ok("a$-${b"));
        assert_eq!(all("${x").as_deref(), Ok("a${xb"));
        // The single replacement is not a template.
        assert_eq!(replace("a-b", "-", "[$0]", false).as_deref(), Ok("a[$0]b"));
    }
}
