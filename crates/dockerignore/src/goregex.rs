//! Translates the Go (RE2) regexps that patternmatcher builds into the syntax
//! of the `regex` crate, preserving what they match.
//!
//! Why not hand the source to `regex` directly? Because patternmatcher copies
//! `[`, `]` and `\x` from the user's pattern into the regexp verbatim, and the
//! two dialects disagree on exactly those: Go has no nested classes (`[a[b]`
//! is one class holding `a`, `[`, `b`), no class set operators (`&&`, `~~`),
//! ASCII-only `\d \s \w \b`, `\Q...\E` quoting and octal escapes. So the Go
//! source is parsed with Go's rules and re-emitted in an unambiguous form:
//! every literal that is not an ASCII letter or digit is written as `\x{..}`.
//!
//! The input is always a string produced by [`crate::glob::shape`]; in it `{`,
//! `}`, `|` and `+` only ever appear escaped (or inside classes or `\Q`), so
//! the top level only has to understand `^ $ . ( ) * ?`, classes and escapes.

/// A class that matches nothing, for Go literals that cannot occur in any
/// string (surrogate code points written as `\x{D800}`).
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";

/// Go's `[[:name:]]` classes; `regex` supports the same names with the same
/// (ASCII) meaning, so they can be copied.
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Converts a Go regexp source to `regex` syntax, or explains (in Go's terms)
/// why Go would refuse it.
pub(crate) fn to_rust(go: &str) -> Result<String, String> {
    let mut translator = Translator {
        rest: go,
        out: String::with_capacity(go.len() * 2),
    };
    translator.top_level()?;
    Ok(translator.out)
}

struct Translator<'a> {
    rest: &'a str,
    out: String,
}

impl Translator<'_> {
    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.rest = &self.rest[c.len_utf8()..];
        Some(c)
    }

    fn top_level(&mut self) -> Result<(), String> {
        while let Some(c) = self.bump() {
            match c {
                '\\' => self.escape_outside_class()?,
                '[' => self.class()?,
                // Same meaning in both dialects (`^`/`$` anchor at the text
                // ends because neither multi-line mode is on).
                '^' | '$' | '.' | '(' | ')' | '*' | '?' => self.out.push(c),
                other => push_literal(&mut self.out, u32::from(other)),
            }
        }
        Ok(())
    }

    /// After a `\` outside a class; mirrors the order of Go's parser.
    fn escape_outside_class(&mut self) -> Result<(), String> {
        match self.peek() {
            Some('A') => self.simple("\\A"),
            Some('z') => self.simple("\\z"),
            // Go's word boundaries only know ASCII word characters.
            Some('b') => self.simple("(?-u:\\b)"),
            Some('B') => self.simple("(?-u:\\B)"),
            Some('C') => Err("`\\C` (any byte) is not supported".to_owned()),
            Some('Q') => {
                self.bump();
                // Everything up to `\E` (or the end) is literal.
                let (literal, after) = self.rest.split_once("\\E").unwrap_or((self.rest, ""));
                for c in literal.chars() {
                    push_literal(&mut self.out, u32::from(c));
                }
                self.rest = after;
                Ok(())
            }
            Some('p' | 'P') => {
                let class = self.unicode_class()?;
                self.out.push_str(&class);
                Ok(())
            }
            Some(c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                self.bump();
                let (negated, body) = perl_class(c);
                self.out.push('[');
                if negated {
                    self.out.push('^');
                }
                self.out.push_str(body);
                self.out.push(']');
                Ok(())
            }
            _ => {
                let code = self.escaped_char()?;
                push_literal(&mut self.out, code);
                Ok(())
            }
        }
    }

    fn simple(&mut self, rust: &str) -> Result<(), String> {
        self.bump();
        self.out.push_str(rust);
        Ok(())
    }

    /// Go's `parseEscape`, positioned after the `\`: the code point of a
    /// single-character escape.
    fn escaped_char(&mut self) -> Result<u32, String> {
        let Some(c) = self.bump() else {
            return Err("trailing `\\`".to_owned());
        };
        let code = match c {
            // Escaped punctuation (including `_`) is itself.
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => u32::from(c),
            '1'..='7' if !self.peek().is_some_and(|d| d.is_digit(8)) => {
                return Err(format!(
                    "`\\{c}` would be a backreference, which Go regexps do not support"
                ));
            }
            '0'..='7' => {
                let mut code = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(digit) => {
                            code = code * 8 + digit;
                            self.bump();
                        }
                        None => break,
                    }
                }
                code
            }
            'x' => self.hex_escape()?,
            'a' => 0x07,
            'f' => 0x0c,
            'n' => 0x0a,
            'r' => 0x0d,
            't' => 0x09,
            'v' => 0x0b,
            other => {
                return Err(format!(
                    "invalid escape `\\{other}`; a backslash in .dockerignore is passed to a \
                     regular expression, so only punctuation can be escaped"
                ));
            }
        };
        Ok(code)
    }

    /// `\xHH` or `\x{H...}`, positioned after the `x`.
    fn hex_escape(&mut self) -> Result<u32, String> {
        const BAD: &str = "invalid `\\x` escape; write `\\xHH` or `\\x{H...}`";
        if self.peek() == Some('{') {
            self.bump();
            let mut code = 0u32;
            let mut digits = 0;
            loop {
                match self.bump() {
                    Some('}') if digits > 0 => return Ok(code),
                    Some(c) => {
                        let digit = c.to_digit(16).ok_or(BAD)?;
                        code = code * 16 + digit;
                        if code > u32::from(char::MAX) {
                            return Err(BAD.to_owned());
                        }
                        digits += 1;
                    }
                    None => return Err(BAD.to_owned()),
                }
            }
        }
        let high = self.bump().and_then(|c| c.to_digit(16));
        let low = self.bump().and_then(|c| c.to_digit(16));
        match (high, low) {
            (Some(high), Some(low)) => Ok(high * 16 + low),
            _ => Err(BAD.to_owned()),
        }
    }

    /// Go's `parseUnicodeClass`, positioned at the `p`/`P` after a `\`.
    /// Returns the `regex` spelling.
    fn unicode_class(&mut self) -> Result<String, String> {
        let mut negated = self.bump() == Some('P');
        let name = if self.peek() == Some('{') {
            let Some(end) = self.rest.find('}') else {
                return Err("unterminated `\\p{...}`".to_owned());
            };
            let name = &self.rest[1..end];
            self.rest = &self.rest[end + 1..];
            name
        } else {
            let start = self.rest;
            match self.bump() {
                Some(c) => &start[..c.len_utf8()],
                None => "",
            }
        };
        let name = match name.strip_prefix('^') {
            Some(inner) => {
                negated = !negated;
                inner
            }
            None => name,
        };
        // Go only knows plain names (`L`, `Greek`, `Old_Italic`, ...). Keep
        // `regex`'s richer syntax (`gc=L`, `sc:Greek`) out; unknown plain names
        // are rejected by `regex` itself.
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '-'))
        {
            return Err(format!("unknown Unicode class name {name:?}"));
        }
        Ok(format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }))
    }

    /// Go's `parseClass`, positioned after the `[`.
    fn class(&mut self) -> Result<(), String> {
        let negated = self.peek() == Some('^');
        if negated {
            self.bump();
        }
        let mut items = String::new();
        // Go allows `]` as the first item (`[]a]` is a class of `]` and `a`).
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(MISSING_BRACKET.to_owned()),
                Some(']') if !first => {
                    self.bump();
                    break;
                }
                _ => {}
            }
            first = false;

            // `[:name:]`: Go looks for the nearest `:]` anywhere ahead.
            if let Some(after_open) = self.rest.strip_prefix("[:")
                && let Some(end) = after_open.find(":]")
            {
                let inner = &after_open[..end];
                let name = inner.strip_prefix('^').unwrap_or(inner);
                if !POSIX_CLASSES.contains(&name) {
                    return Err(format!("unknown character class [:{inner}:]"));
                }
                items.push_str(&self.rest[..end + 4]);
                self.rest = &after_open[end + 2..];
                continue;
            }
            if self.rest.starts_with("\\p") || self.rest.starts_with("\\P") {
                self.bump();
                items.push_str(&self.unicode_class()?);
                continue;
            }
            if let Some(c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) = self
                .rest
                .strip_prefix('\\')
                .and_then(|after| after.chars().next())
            {
                self.bump();
                self.bump();
                let (negated, body) = perl_class(c);
                if negated {
                    items.push_str("[^");
                    items.push_str(body);
                    items.push(']');
                } else {
                    items.push_str(body);
                }
                continue;
            }

            let low = self.class_char()?;
            let mut high = low;
            // `a-]` is `a` and `-`; otherwise `-` makes a range.
            if self.rest.starts_with('-')
                && self.rest.len() >= 2
                && !self.rest[1..].starts_with(']')
            {
                self.bump();
                high = self.class_char()?;
                if high < low {
                    return Err(format!(
                        "invalid character class range {}-{} (the range is backwards)",
                        describe(low),
                        describe(high)
                    ));
                }
            }
            push_range(&mut items, low, high);
        }

        if items.is_empty() {
            // Only possible when every item was a surrogate: Go's class then
            // matches nothing (or, negated, any character).
            self.out.push_str(if negated {
                r"[\x{0}-\x{10FFFF}]"
            } else {
                NOTHING
            });
        } else {
            self.out.push('[');
            if negated {
                self.out.push('^');
            }
            self.out.push_str(&items);
            self.out.push(']');
        }
        Ok(())
    }

    /// A single class character, escaped or not (Go's `parseClassChar`).
    fn class_char(&mut self) -> Result<u32, String> {
        match self.bump() {
            None => Err(MISSING_BRACKET.to_owned()),
            Some('\\') => self.escaped_char(),
            Some(c) => Ok(u32::from(c)),
        }
    }
}

const MISSING_BRACKET: &str = "missing closing `]`";

/// Go's ASCII-only Perl classes: whether negated, and the class body.
fn perl_class(letter: char) -> (bool, &'static str) {
    let body = match letter.to_ascii_lowercase() {
        'd' => "0-9",
        's' => r"\x{9}\x{A}\x{C}\x{D}\x{20}",
        _ => "0-9A-Za-z_",
    };
    (letter.is_ascii_uppercase(), body)
}

/// Appends one literal code point outside a class.
fn push_literal(out: &mut String, code: u32) {
    match char::from_u32(code) {
        Some(c) if c.is_ascii_alphanumeric() || !c.is_ascii() => out.push(c),
        Some(c) => out.push_str(&format!("\\x{{{:X}}}", u32::from(c))),
        None => out.push_str(NOTHING),
    }
}

/// Appends the range `low-high` to a class body. Go ranges are over code
/// points and may have surrogate ends; surrogates never occur in text, so the
/// ends are moved inwards to the nearest scalar values.
fn push_range(items: &mut String, low: u32, high: u32) {
    const SURROGATES: std::ops::RangeInclusive<u32> = 0xD800..=0xDFFF;
    let low = if SURROGATES.contains(&low) {
        0xE000
    } else {
        low
    };
    let high = if SURROGATES.contains(&high) {
        0xD7FF
    } else {
        high
    };
    if low > high {
        return;
    }
    items.push_str(&format!("\\x{{{low:X}}}"));
    if high != low {
        items.push_str(&format!("-\\x{{{high:X}}}"));
    }
}

/// A code point for an error message.
fn describe(code: u32) -> String {
    char::from_u32(code).map_or_else(|| format!("U+{code:04X}"), |c| format!("{c:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_matches(go: &str, text: &str) -> bool {
        let rust = to_rust(go).unwrap_or_else(|e| panic!("{go:?} rejected: {e}"));
        regex::Regex::new(&rust)
            .unwrap_or_else(|e| panic!("{go:?} -> {rust:?} does not compile: {e}"))
            .is_match(text)
    }

    #[test]
    fn plain_sources_keep_their_meaning() {
        assert!(go_matches("^a[^/]*\\.txt$", "abc.txt"));
        assert!(!go_matches("^a[^/]*\\.txt$", "a/b.txt"));
        assert!(go_matches("^(.*/)?foo$", "x/y/foo"));
        assert!(go_matches("^(.*/)?foo$", "foo"));
        assert!(!go_matches("^(.*/)?foo$", "xfoo"));
    }

    #[test]
    fn classes_are_not_nested_and_have_no_set_operators() {
        // Go: class {a, [, b} followed by a literal `]`.
        assert!(go_matches("^[a[b]]$", "[]"));
        assert!(!go_matches("^[a[b]]$", "a"));
        // Go: `&&` and `~~` are plain characters.
        assert!(go_matches("^[a&&b]$", "&"));
        assert!(go_matches("^[a~~b]$", "~"));
        // Go: `]` first in a class is literal.
        assert!(go_matches("^[]a]$", "]"));
        assert!(go_matches("^[^]a]$", "b"));
        // `a-]` is `a` or `-`.
        assert!(go_matches("^[a-]$", "-"));
    }

    #[test]
    fn glob_star_inside_a_class_is_go_parsed() {
        // patternmatcher turns `[a*]` into `[a[^/]*]`: Go reads the class
        // {a, [, ^, /} repeated, then a literal `]`.
        assert!(go_matches("^[a[^/]*]$", "]"));
        assert!(go_matches("^[a[^/]*]$", "a^/]"));
        assert!(!go_matches("^[a[^/]*]$", "b]"));
    }

    #[test]
    fn perl_classes_and_boundaries_are_ascii() {
        assert!(go_matches("^\\d$", "7"));
        assert!(!go_matches("^\\d$", "٣"));
        assert!(!go_matches("^\\w$", "é"));
        assert!(go_matches("^\\W$", "é"));
        assert!(go_matches("^[\\D]$", "x"));
        assert!(go_matches("^[a\\s]$", "\t"));
        assert!(go_matches("^a\\b$", "a"));
        assert!(!go_matches("^a\\bb$", "ab"));
        assert!(!go_matches("^é\\b", "é"));
    }

    #[test]
    fn escapes_follow_go() {
        assert!(go_matches("^\\x41$", "A"));
        assert!(go_matches("^\\x{1F600}$", "😀"));
        assert!(go_matches("^\\101$", "A"));
        assert!(go_matches("^\\0$", "\0"));
        assert!(go_matches("^\\t$", "\t"));
        assert!(go_matches("^\\_$", "_"));
        assert!(go_matches("^\\Qa.*$", "a.*$"));
        assert!(go_matches("^\\Qa.*\\E.$", "a.*x"));
        assert!(!go_matches("^\\x{D800}$", "\u{FFFD}"));
        assert!(go_matches("^[\\x{D800}-\\x{E000}]$", "\u{E000}"));
        assert!(!go_matches("^[\\x{D800}]$", "a"));
        assert!(go_matches("^[^\\x{D800}]$", "a"));
        for bad in [
            "\\q",
            "\\1",
            "\\8",
            "\\é",
            "\\C",
            "\\x",
            "\\xZ1",
            "\\x{}",
            "\\x{110000}",
        ] {
            assert!(to_rust(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn posix_and_unicode_classes() {
        assert!(go_matches("^[[:alpha:]]$", "q"));
        assert!(go_matches("^[[:^digit:]]$", "q"));
        assert!(to_rust("^[[:nope:]]$").is_err());
        assert!(go_matches("^\\pL$", "é"));
        assert!(go_matches("^\\p{Greek}$", "λ"));
        assert!(go_matches("^\\p{^Greek}$", "a"));
        assert!(!go_matches("^\\P{^Greek}$", "a"));
        assert!(go_matches("^[\\p{Greek}a]$", "a"));
        assert!(to_rust("^\\p{gc=L}$").is_err());
        assert!(to_rust("^\\p").is_err());
        assert!(to_rust("^\\p{L").is_err());
    }

    #[test]
    fn malformed_classes_are_rejected() {
        for bad in ["^[a", "^[z-a]$", "^[a-\\d]$", "^[\\q]$", "[", "[^"] {
            assert!(to_rust(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
