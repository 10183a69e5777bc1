//! Reading exec-form arguments (`["a", "b"]`) the way BuildKit does, through Go's `encoding/json`.
//!
//! The difference between "not JSON" and "JSON, but not an array of strings" matters: the first
//! makes BuildKit fall back to shell form, the second is a parse error. Go's decoder validates the
//! whole input before decoding, allows nesting up to 10,000 levels, and turns lone UTF-16
//! surrogates into U+FFFD; serde_json differs on the last two, hence this small scanner. It is
//! iterative, so hostile nesting cannot overflow the stack.

/// Go's `encoding/json` maximum nesting depth.
const MAX_DEPTH: usize = 10_000;

/// What an argument string turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonArray {
    /// Not a JSON array: BuildKit treats the text as shell form.
    NotJson,
    /// Valid JSON, but an element is not a string; the byte range of that element.
    NotStrings { start: usize, end: usize },
    /// The decoded strings with the byte range each came from.
    Strings(Vec<(String, usize, usize)>),
}

/// Reads `text` (already trimmed of leading white space by the caller or not) as a JSON array.
pub(crate) fn parse(text: &str) -> JsonArray {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    scanner.array().unwrap_or(JsonArray::NotJson)
}

/// Marker for a JSON syntax error; the caller only needs to know that there was one.
struct SyntaxError;

type Scan<T> = Result<T, SyntaxError>;

struct Scanner<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

enum Element {
    Str(String),
    Other,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    fn array(&mut self) -> Scan<JsonArray> {
        self.skip_whitespace();
        self.expect(b'[')?;
        let mut elements = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_whitespace();
                let start = self.pos;
                let element = if self.peek() == Some(b'"') {
                    Element::Str(self.string()?)
                } else {
                    self.value(1)?;
                    Element::Other
                };
                elements.push((element, start, self.pos));
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(SyntaxError),
                }
            }
        }
        self.skip_whitespace();
        if self.pos != self.bytes.len() {
            return Err(SyntaxError);
        }
        let mut strings = Vec::with_capacity(elements.len());
        for (element, start, end) in elements {
            match element {
                Element::Str(s) => strings.push((s, start, end)),
                Element::Other => return Ok(JsonArray::NotStrings { start, end }),
            }
        }
        Ok(JsonArray::Strings(strings))
    }

    /// Skips one JSON value of any kind; `depth` is the nesting level it sits at.
    fn value(&mut self, depth: usize) -> Scan<()> {
        // Closing bytes of the containers we are inside, innermost last.
        let mut open: Vec<u8> = Vec::new();
        'value: loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(open_byte @ (b'[' | b'{')) => {
                    self.pos += 1;
                    if depth + open.len() + 1 > MAX_DEPTH {
                        return Err(SyntaxError);
                    }
                    let close = if open_byte == b'[' { b']' } else { b'}' };
                    open.push(close);
                    self.skip_whitespace();
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        open.pop();
                    } else {
                        if close == b'}' {
                            self.object_key()?;
                        }
                        continue 'value;
                    }
                }
                _ => return Err(SyntaxError),
            }
            // After a complete value: close containers or move to the next element.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(());
                };
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            self.object_key()?;
                        }
                        continue 'value;
                    }
                    Some(b) if b == close => {
                        self.pos += 1;
                        open.pop();
                    }
                    _ => return Err(SyntaxError),
                }
            }
        }
    }

    fn object_key(&mut self) -> Scan<()> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(SyntaxError);
        }
        self.string()?;
        self.skip_whitespace();
        self.expect(b':')
    }

    fn literal(&mut self, word: &str) -> Scan<()> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Scan<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(SyntaxError),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(SyntaxError);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(SyntaxError);
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Scan<u32> {
        let digits = self.text.get(self.pos..self.pos + 4).ok_or(SyntaxError)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SyntaxError);
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| SyntaxError)
    }

    /// Decodes a string starting at its opening quote.
    fn string(&mut self) -> Scan<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Only ASCII bytes stop the run, so both ends are on character boundaries.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self.peek().ok_or(SyntaxError)?;
                    self.pos += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(SyntaxError),
                    }
                }
                _ => return Err(SyntaxError),
            }
        }
    }

    /// The character of a `\uXXXX` escape (after the `u`), pairing surrogates like Go does.
    fn unicode_escape(&mut self) -> Scan<char> {
        let first = self.hex4()?;
        if !(0xD800..0xE000).contains(&first) {
            return char::from_u32(first).ok_or(SyntaxError);
        }
        if (0xD800..0xDC00).contains(&first) && self.bytes[self.pos..].starts_with(b"\\u") {
            let saved = self.pos;
            self.pos += 2;
            if let Ok(second) = self.hex4()
                && (0xDC00..0xE000).contains(&second)
            {
                let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return char::from_u32(combined).ok_or(SyntaxError);
            }
            // Not a pair: Go replaces the lone half and reads the next escape on its own.
            self.pos = saved;
        }
        Ok(char::REPLACEMENT_CHARACTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(text: &str) -> Vec<String> {
        match parse(text) {
            JsonArray::Strings(items) => items.into_iter().map(|(s, _, _)| s).collect(),
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn decodes_string_arrays() {
        assert_eq!(strings(r#"["a", "b c"]"#), ["a", "b c"]);
        assert_eq!(strings("[]"), Vec::<String>::new());
        assert_eq!(strings(" [ \"x\" ] \n"), ["x"]);
        assert_eq!(strings(r#"["\u00e9\n\t\"\\\/"]"#), ["é\n\t\"\\/"]);
        assert_eq!(strings(r#"["\ud83d\ude00"]"#), ["😀"]);
        assert_eq!(strings(r#"["\ud83dx"]"#), ["\u{fffd}x"]);
        assert_eq!(strings(r#"["\ud83d\u0041"]"#), ["\u{fffd}A"]);
    }

    #[test]
    fn syntax_errors_fall_back_to_shell_form() {
        for text in [
            "[",
            "['a']",
            r#"["a",]"#,
            r#"["a" "b"]"#,
            r#"["a"] x"#,
            r#"["a\x"]"#,
            "[\"a\u{1}\"]",
            r#"[01]"#,
            r#"[1.]"#,
            r#"[tru]"#,
            r#"[{"a" 1}]"#,
            r#"[1, ["#,
            "echo hi",
        ] {
            assert_eq!(parse(text), JsonArray::NotJson, "{text}");
        }
    }

    #[test]
    fn valid_json_with_non_strings_is_an_error() {
        assert_eq!(
            parse(r#"["a", 1]"#),
            JsonArray::NotStrings { start: 6, end: 7 }
        );
        assert!(matches!(
            parse(r#"[ "echo", [ "nested json" ] ]"#),
            JsonArray::NotStrings { .. }
        ));
        assert!(matches!(
            parse(r#"[{"k": [true, null, -1.5e3]}]"#),
            JsonArray::NotStrings { .. }
        ));
    }

    #[test]
    fn nesting_beyond_go_limit_is_a_syntax_error() {
        let deep_ok = format!(
            "[{}{}]",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(matches!(parse(&deep_ok), JsonArray::NotStrings { .. }));
        let too_deep = format!("[{}{}]", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(parse(&too_deep), JsonArray::NotJson);
    }
}
