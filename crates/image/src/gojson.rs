//! JSON bytes identical to Go's `encoding/json`.
//!
//! Image configs, manifests and indexes are addressed by the sha256 of their
//! bytes, so matching BuildKit's digests needs Go's exact output, not just
//! equivalent JSON. `serde_json` already agrees with Go on everything the
//! image types use (compact separators, `\"` `\\` `\n` `\r` `\t` `\b` `\f`
//! short escapes, lowercase `\u00XX` for other control characters, integers)
//! except two escaping rules, which [`GoFormatter`] adds:
//!
//! * `<`, `>` and `&` become `\u003c`, `\u003e` and `\u0026` (Go's default
//!   `SetEscapeHTML(true)`, used by `json.Marshal` and `json.MarshalIndent`);
//! * U+2028 and U+2029 become `\u2028` and `\u2029`.
//!
//! (Go before 1.22 wrote `\b` and `\f` as `\u0008` and `\u000c`; BuildKit is
//! built with a newer Go, so the short forms are right.)
//!
//! Field order is the struct's declaration order, as in Go, so the types in
//! this crate declare their fields in Go's order. Maps must be `BTreeMap`:
//! Go sorts map keys by their bytes, which is `String`'s `Ord`.
//! `serde_json`'s `preserve_order` feature must never be enabled anywhere in
//! the dependency graph, because it would change the order of `Value` maps.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

/// A [`serde_json`] formatter that writes what Go's `json.Marshal` (compact)
/// or `json.MarshalIndent(v, "", "  ")` (indented) writes.
#[derive(Debug, Clone)]
pub struct GoFormatter {
    /// `None` for compact output, the per-level indent otherwise.
    indent: Option<&'static [u8]>,
    depth: usize,
    has_value: bool,
}

impl GoFormatter {
    /// The formatter of `json.Marshal`.
    pub fn compact() -> Self {
        GoFormatter {
            indent: None,
            depth: 0,
            has_value: false,
        }
    }

    /// The formatter of `json.MarshalIndent(v, "", "  ")`, which BuildKit uses
    /// for manifests and indexes.
    pub fn indented() -> Self {
        GoFormatter {
            indent: Some(b"  "),
            ..GoFormatter::compact()
        }
    }

    fn newline_and_indent<W: ?Sized + io::Write>(
        &self,
        writer: &mut W,
        indent: &[u8],
    ) -> io::Result<()> {
        writer.write_all(b"\n")?;
        for _ in 0..self.depth {
            writer.write_all(indent)?;
        }
        Ok(())
    }
}

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json hands over runs of characters it would not escape; split
        // them further at the five characters Go escapes and serde_json doesn't.
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            let escaped: &[u8] = match ch {
                '<' => b"\\u003c",
                '>' => b"\\u003e",
                '&' => b"\\u0026",
                '\u{2028}' => b"\\u2028",
                '\u{2029}' => b"\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..index])?;
            writer.write_all(escaped)?;
            start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if let Some(indent) = self.indent
            && self.has_value
        {
            self.newline_and_indent(writer, indent)?;
        }
        writer.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        match self.indent {
            None => CompactFormatter.begin_array_value(writer, first),
            Some(indent) => {
                if !first {
                    writer.write_all(b",")?;
                }
                self.newline_and_indent(writer, indent)
            }
        }
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if let Some(indent) = self.indent
            && self.has_value
        {
            self.newline_and_indent(writer, indent)?;
        }
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        match self.indent {
            None => CompactFormatter.begin_object_key(writer, first),
            Some(indent) => {
                if !first {
                    writer.write_all(b",")?;
                }
                self.newline_and_indent(writer, indent)
            }
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(if self.indent.is_some() { b": " } else { b":" })
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Serializes `value` exactly as Go's `json.Marshal` would (compact, HTML
/// characters escaped). This is how BuildKit writes image configs.
///
/// Fails only if `value`'s `Serialize` implementation fails or it has a map
/// with non-string keys; the types of this crate never do.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    write_with(value, GoFormatter::compact())
}

/// Serializes `value` exactly as Go's `json.MarshalIndent(v, "", "  ")`
/// would. This is how BuildKit writes manifests and indexes.
pub fn to_go_json_indented<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    write_with(value, GoFormatter::indented())
}

fn write_with<T: Serialize + ?Sized>(
    value: &T,
    formatter: GoFormatter,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn compact(value: &serde_json::Value) -> String {
        String::from_utf8(to_go_json(value).unwrap()).unwrap()
    }

    #[test]
    fn escapes_html_characters_like_go() {
        // Reference bytes are what Go 1.22+ json.Marshal prints for
        // []string{"sh", "-c", "a && b > c < d"}.
        assert_eq!(
            compact(&json!(["sh", "-c", "a && b > c < d"])),
            r#"["sh","-c","a \u0026\u0026 b \u003e c \u003c d"]"#
        );
    }

    #[test]
    fn escapes_line_and_paragraph_separators() {
        assert_eq!(
            compact(&json!("a\u{2028}b\u{2029}c")),
            r#""a\u2028b\u2029c""#
        );
    }

    #[test]
    fn control_characters_match_go() {
        // Go: "\"\\\b\f\n\r\t\x01\x7f" => "\"\\\b\f\n\r\t\u0001\x7f" (DEL raw).
        assert_eq!(
            compact(&json!("\"\\\u{8}\u{c}\n\r\t\u{1}\u{7f}é")),
            "\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\u{7f}é\""
        );
    }

    #[test]
    fn indented_matches_go_marshal_indent() {
        let value = json!({"a": [], "b": {}, "c": [1, {"d": "<"}], "e": {"f": true}});
        let out = String::from_utf8(to_go_json_indented(&value).unwrap()).unwrap();
        let expected = "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": \"\\u003c\"\n    }\n  ],\n  \"e\": {\n    \"f\": true\n  }\n}";
        assert_eq!(out, expected);
    }

    #[test]
    fn map_keys_sorted_bytewise() {
        let mut map = BTreeMap::new();
        map.insert("b", 1);
        map.insert("B", 2);
        map.insert("a.b", 3);
        map.insert("a", 4);
        assert_eq!(
            String::from_utf8(to_go_json(&map).unwrap()).unwrap(),
            r#"{"B":2,"a":4,"a.b":3,"b":1}"#
        );
    }

    proptest! {
        #[test]
        fn output_is_valid_json_without_raw_html_characters(s in any::<String>()) {
            let out = to_go_json(&s).unwrap();
            let text = String::from_utf8(out.clone()).unwrap();
            let raw_html = text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']);
            prop_assert!(!raw_html, "unescaped character in {}", text);
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
