//! Per-instruction argument parsers, modelled on BuildKit's `line_parsers.go` and
//! `split_command.go`. They keep BuildKit's quirks on purpose: the exact argument lists are
//! part of the compatibility contract (see `stagecraft parse --json`).

use crate::ast::{Arguments, Instruction, KeyValue, Keyword, Word};
use crate::diagnostic::{Code, ParseError};
use crate::json_array::{self, JsonArray};
use crate::source::{SourceFile, Span};
use crate::suggest;

/// A logical line: physical lines joined after their continuation characters were removed,
/// with a map back to source offsets so every word keeps its span.
#[derive(Debug, Default)]
pub(crate) struct LogicalLine {
    /// The joined text.
    pub text: String,
    /// `(offset in text, offset in source)` at the start of each joined piece.
    pieces: Vec<(usize, usize)>,
}

impl LogicalLine {
    /// Appends a piece of source text that starts at `source_offset`.
    pub(crate) fn push(&mut self, piece: &str, source_offset: usize) {
        self.pieces.push((self.text.len(), source_offset));
        self.text.push_str(piece);
    }

    fn source_offset(&self, offset: usize) -> usize {
        let index = self.pieces.partition_point(|&(start, _)| start <= offset);
        match index.checked_sub(1).and_then(|i| self.pieces.get(i)) {
            Some(&(start, source)) => source + (offset - start),
            None => offset,
        }
    }

    /// The source span of the logical range `[start, end)`.
    pub(crate) fn span(&self, start: usize, end: usize) -> Span {
        let source_start = self.source_offset(start);
        let source_end = if end > start {
            self.source_offset(end - 1) + 1
        } else {
            source_start
        };
        Span::new(source_start, source_end)
    }
}

/// Go's `unicode.IsSpace`, which is Rust's `char::is_whitespace`.
fn is_go_space(c: char) -> bool {
    c.is_whitespace()
}

/// The class `[\t\v\f\r ]` BuildKit splits commands and words on.
fn is_split_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Go's `unicode.IsSpace(rune(b))` for a single byte, as BuildKit applies it byte by byte.
fn is_latin1_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// Where an instruction's argument text sits in its logical line.
struct Rest<'a> {
    source: &'a SourceFile,
    line: &'a LogicalLine,
    /// Offset of `text` in the logical line.
    start: usize,
    text: &'a str,
    escape: char,
}

impl Rest<'_> {
    fn word(&self, value: impl Into<String>, start: usize, end: usize) -> Word {
        Word {
            value: value.into(),
            span: self.line.span(self.start + start, self.start + end),
        }
    }

    fn whole(&self) -> Word {
        self.word(self.text, 0, self.text.len())
    }

    fn error(&self, start: usize, end: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(
            Code::Syntax,
            self.source,
            self.line.span(self.start + start, self.start + end),
            message,
        )
    }

    fn sub(&self, start: usize) -> Rest<'_> {
        Rest {
            source: self.source,
            line: self.line,
            start: self.start + start,
            text: &self.text[start..],
            escape: self.escape,
        }
    }
}

/// Parses the instruction in `line.text[offset..end]` (BuildKit's `newNodeFromLine`).
/// Line numbers are left for the caller to fill in.
pub(crate) fn instruction_from_line(
    source: &SourceFile,
    line: &LogicalLine,
    offset: usize,
    end: usize,
    escape: char,
) -> Result<Instruction, ParseError> {
    let text = &line.text[offset..end];
    let trimmed_start = offset + (text.len() - text.trim_start().len());
    let trimmed = line.text[trimmed_start..end].trim_end();
    let trimmed_end = trimmed_start + trimmed.len();
    let command_len = trimmed.find(is_split_space).unwrap_or(trimmed.len());
    let command = &trimmed[..command_len];
    let keyword_text = Word {
        value: command.to_owned(),
        span: line.span(trimmed_start, trimmed_start + command_len),
    };
    let Some(keyword) = Keyword::from_name(command) else {
        return Err(unknown_instruction(source, keyword_text));
    };

    let after_command = &trimmed[command_len..];
    let args_start = trimmed_start
        + command_len
        + (after_command.len() - after_command.trim_start_matches(is_split_space).len());
    let whole = Rest {
        source,
        line,
        start: args_start,
        text: &line.text[args_start..trimmed_end],
        escape,
    };
    let (rest_offset, flags) = extract_builder_flags(whole.text, escape);
    let flags = flags
        .into_iter()
        .map(|(value, start, end)| whole.word(value, start, end))
        .collect();
    let after_flags = &whole.text[rest_offset..];
    let rest_start = rest_offset + (after_flags.len() - after_flags.trim_start().len());
    let rest_text = after_flags.trim();
    let rest = Rest {
        text: rest_text,
        ..whole.sub(rest_start)
    };

    let (args, json) = match keyword {
        Keyword::Add | Keyword::Copy | Keyword::Volume => parse_maybe_json_to_list(&rest)?,
        Keyword::Arg => (Arguments::List(parse_name_or_name_val(&rest)), false),
        Keyword::Cmd | Keyword::Entrypoint | Keyword::Run | Keyword::Shell => {
            parse_maybe_json(&rest)?
        }
        Keyword::Env => (parse_name_val(&rest, "ENV")?, false),
        Keyword::Label => (parse_name_val(&rest, "LABEL")?, false),
        Keyword::Expose | Keyword::From => (
            Arguments::List(parse_strings_whitespace_delimited(&rest)),
            false,
        ),
        Keyword::Healthcheck => parse_health_config(&rest)?,
        Keyword::Maintainer | Keyword::Stopsignal | Keyword::User | Keyword::Workdir => {
            (Arguments::List(parse_string(&rest)), false)
        }
        Keyword::Onbuild => (parse_sub_command(&rest)?, false),
    };

    Ok(Instruction {
        keyword,
        keyword_text,
        flags,
        args,
        json,
        heredocs: Vec::new(),
        start_line: 0,
        end_line: 0,
        original: text.to_owned(),
        span: line.span(trimmed_start, end),
        comments: Vec::new(),
    })
}

fn unknown_instruction(source: &SourceFile, command: Word) -> ParseError {
    let names: Vec<String> = Keyword::ALL.iter().map(|k| k.to_string()).collect();
    let error = ParseError::new(
        Code::Syntax,
        source,
        command.span,
        format!("unknown instruction: {}", command.value),
    );
    match suggest::closest(&command.value, &names) {
        Some(name) => error.with_hint(format!("did you mean {name}?")),
        None => error.with_hint(format!(
            "a Dockerfile instruction is one of {}",
            names.join(", ")
        )),
    }
}

/// BuildKit's `extractBuilderFlags`: leading `--name=value` words. It walks *bytes* and treats
/// each as a Latin-1 character (so non-ASCII flag values come out as BuildKit mangles them).
/// Returns the offset where the remaining arguments start and the flags with their ranges.
fn extract_builder_flags(line: &str, escape: char) -> (usize, Vec<(String, usize, usize)>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(u8),
    }
    let bytes = line.as_bytes();
    let escape = escape as u8;
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut current = String::new();
    let mut word_start = 0;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= bytes.len() {
        let at_end = pos == bytes.len();
        let ch = bytes.get(pos).copied().unwrap_or(0);
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_latin1_space(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || bytes.get(pos + 1) != Some(&b'-') {
                return (next_char_boundary(line, pos), words);
            }
            phase = Phase::Word;
            word_start = pos;
        }
        if at_end {
            if current != "--" && (blank_ok || !current.is_empty()) {
                words.push((current, word_start, pos));
            }
            break;
        }
        match phase {
            Phase::Word => {
                if is_latin1_space(ch) {
                    if current == "--" {
                        return (pos, words);
                    }
                    if blank_ok || !current.is_empty() {
                        words.push((std::mem::take(&mut current), word_start, pos));
                    }
                    current.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                    pos += 1;
                    continue;
                }
                if ch == b'\'' || ch == b'"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    pos += 1;
                    continue;
                }
                let mut ch = ch;
                if ch == escape {
                    if pos + 1 == bytes.len() {
                        pos += 1;
                        continue;
                    }
                    pos += 1;
                    ch = bytes[pos];
                }
                current.push(ch as char);
            }
            Phase::Quote(quote) => {
                let mut ch = ch;
                if ch == quote {
                    phase = Phase::Word;
                    pos += 1;
                    continue;
                }
                if ch == escape {
                    if pos + 1 == bytes.len() {
                        phase = Phase::Word;
                        pos += 1;
                        continue;
                    }
                    pos += 1;
                    ch = bytes[pos];
                }
                current.push(ch as char);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
        pos += 1;
    }
    (line.len(), words)
}

/// BuildKit may stop inside a multi-byte character (it splits on bytes); we move to the next
/// character so the remainder is valid text.
fn next_char_boundary(text: &str, mut pos: usize) -> usize {
    while !text.is_char_boundary(pos) {
        pos += 1;
    }
    pos
}

/// BuildKit's `parseWords`: splits on white space, keeping quotes and escapes in the words.
fn parse_words(text: &str, escape: char) -> Vec<(String, usize, usize)> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut current = String::new();
    let mut word_start = 0;
    let mut blank_ok = false;
    let mut chars = text.char_indices().peekable();
    while let Some((pos, ch)) = chars.next() {
        if phase == Phase::Spaces {
            if is_go_space(ch) {
                continue;
            }
            phase = Phase::Word;
            word_start = pos;
        }
        let at_last = chars.peek().is_none();
        match phase {
            Phase::Word => {
                if is_go_space(ch) {
                    if blank_ok || !current.is_empty() {
                        words.push((std::mem::take(&mut current), word_start, pos));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if at_last {
                        continue;
                    }
                    // Unquoted, the escape stays with the character it escapes, even a quote.
                    current.push(ch);
                    let (_, escaped) = chars.next().expect("not at the last character");
                    current.push(escaped);
                    continue;
                }
                current.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                }
                if ch == escape && quote != '\'' {
                    if at_last {
                        phase = Phase::Word;
                        continue;
                    }
                    current.push(ch);
                    let (_, escaped) = chars.next().expect("not at the last character");
                    current.push(escaped);
                    continue;
                }
                current.push(ch);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
    if phase != Phase::Spaces && (blank_ok || !current.is_empty()) {
        words.push((current, word_start, text.len()));
    }
    words
}

/// `ENV` / `LABEL`: `key=value …`, or the legacy `key value` form.
fn parse_name_val(rest: &Rest<'_>, instruction: &str) -> Result<Arguments, ParseError> {
    let words = parse_words(rest.text, rest.escape);
    let Some((first, ..)) = words.first() else {
        return Ok(Arguments::KeyValues(Vec::new()));
    };
    if !first.contains('=') {
        let Some(split) = rest.text.find(is_split_space) else {
            return Err(rest
                .error(
                    0,
                    rest.text.len(),
                    format!("{instruction} must have two arguments"),
                )
                .with_hint(format!(
                    "give the variable a value: `{instruction} {}=value`",
                    rest.text
                )));
        };
        let value_start = split
            + (rest.text.len()
                - split
                - rest.text[split..].trim_start_matches(is_split_space).len());
        return Ok(Arguments::KeyValues(vec![KeyValue {
            key: rest.word(&rest.text[..split], 0, split),
            value: rest.word(&rest.text[value_start..], value_start, rest.text.len()),
            legacy: true,
        }]));
    }
    let mut pairs = Vec::with_capacity(words.len());
    for (word, start, end) in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(rest
                .error(
                    start,
                    end,
                    format!(
                        "Syntax error - can't find = in {}. Must be of the form: name=value",
                        go_quote(&word)
                    ),
                )
                .with_hint(format!(
                    "write `{word}=value`, or quote the value if it contains spaces"
                )));
        };
        let key_end = start + key.len();
        pairs.push(KeyValue {
            key: rest.word(key, start, key_end),
            value: rest.word(value, key_end + 1, end),
            legacy: false,
        });
    }
    Ok(Arguments::KeyValues(pairs))
}

/// `ARG`: words, each `name` or `name=value`, split later.
fn parse_name_or_name_val(rest: &Rest<'_>) -> Vec<Word> {
    parse_words(rest.text, rest.escape)
        .into_iter()
        .map(|(value, start, end)| rest.word(value, start, end))
        .collect()
}

/// Splits on runs of `[\t\v\f\r ]`.
fn parse_strings_whitespace_delimited(rest: &Rest<'_>) -> Vec<Word> {
    if rest.text.is_empty() {
        return Vec::new();
    }
    let mut words = Vec::new();
    let mut start = 0;
    let text = rest.text;
    while start <= text.len() {
        let end = text[start..]
            .find(is_split_space)
            .map_or(text.len(), |i| start + i);
        words.push(rest.word(&text[start..end], start, end));
        if end == text.len() {
            break;
        }
        start = end + text[end..].len() - text[end..].trim_start_matches(is_split_space).len();
    }
    words
}

/// The whole remainder as one argument.
fn parse_string(rest: &Rest<'_>) -> Vec<Word> {
    if rest.text.is_empty() {
        Vec::new()
    } else {
        vec![rest.whole()]
    }
}

/// Exec form when the text is a JSON array of strings.
fn parse_json(rest: &Rest<'_>) -> Result<Option<Vec<Word>>, ParseError> {
    let trimmed = rest.text.trim_start();
    let offset = rest.text.len() - trimmed.len();
    if !trimmed.starts_with('[') {
        return Ok(None);
    }
    match json_array::parse(trimmed) {
        JsonArray::NotJson => Ok(None),
        JsonArray::NotStrings { start, end } => Err(rest
            .error(
                offset + start,
                offset + end,
                "when using JSON array syntax, arrays must be comprised of strings only",
            )
            .with_hint("quote every element, e.g. [\"executable\", \"arg\"]")),
        JsonArray::Strings(items) => Ok(Some(
            items
                .into_iter()
                .map(|(value, start, end)| rest.word(value, offset + start, offset + end))
                .collect(),
        )),
    }
}

/// `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`: exec form, or the whole text as one shell-form word.
fn parse_maybe_json(rest: &Rest<'_>) -> Result<(Arguments, bool), ParseError> {
    if rest.text.is_empty() {
        return Ok((Arguments::List(Vec::new()), false));
    }
    Ok(match parse_json(rest)? {
        Some(words) => (Arguments::List(words), true),
        None => (Arguments::List(vec![rest.whole()]), false),
    })
}

/// `ADD`, `COPY`, `VOLUME`: exec form, or white-space separated words.
fn parse_maybe_json_to_list(rest: &Rest<'_>) -> Result<(Arguments, bool), ParseError> {
    Ok(match parse_json(rest)? {
        Some(words) => (Arguments::List(words), true),
        None => (
            Arguments::List(parse_strings_whitespace_delimited(rest)),
            false,
        ),
    })
}

/// `HEALTHCHECK TYPE [command]`. BuildKit finds the type's end byte by byte.
fn parse_health_config(rest: &Rest<'_>) -> Result<(Arguments, bool), ParseError> {
    let bytes = rest.text.as_bytes();
    let mut sep = bytes
        .iter()
        .position(|&b| is_latin1_space(b))
        .unwrap_or(bytes.len());
    if sep == 0 {
        return Ok((Arguments::List(Vec::new()), false));
    }
    // A separator byte inside a multi-byte character: split before that character instead.
    while !rest.text.is_char_boundary(sep) {
        sep -= 1;
    }
    let mut next = next_char_boundary(rest.text, sep + usize::from(sep < bytes.len()));
    while next < bytes.len() && is_latin1_space(bytes[next]) {
        next = next_char_boundary(rest.text, next + 1);
    }
    let kind = rest.word(&rest.text[..sep], 0, sep);
    let command = Rest {
        text: &rest.text[next..],
        ..rest.sub(next)
    };
    let (args, json) = parse_maybe_json(&command)?;
    let mut words = vec![kind];
    words.extend(args.words().iter().cloned());
    Ok((Arguments::List(words), json))
}

/// `ONBUILD INSTRUCTION …`.
fn parse_sub_command(rest: &Rest<'_>) -> Result<Arguments, ParseError> {
    if rest.text.is_empty() {
        return Ok(Arguments::List(Vec::new()));
    }
    let inner = instruction_from_line(
        rest.source,
        rest.line,
        rest.start,
        rest.start + rest.text.len(),
        rest.escape,
    )?;
    if inner.keyword == Keyword::Onbuild {
        // BuildKit's parser nests these and its instruction layer rejects them; rejecting
        // here also keeps hostile `ONBUILD ONBUILD …` lines from recursing deeply.
        return Err(ParseError::new(
            Code::Syntax,
            rest.source,
            inner.keyword_text.span,
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        )
        .with_hint("ONBUILD takes one trigger instruction, such as `ONBUILD RUN …`"));
    }
    Ok(Arguments::Trigger(Box::new(inner)))
}

pub use stagecraft_shell::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        parse_words(text, '\\')
            .into_iter()
            .map(|(w, ..)| w)
            .collect()
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        assert_eq!(words(r#"a=b c="d e""#), ["a=b", r#"c="d e""#]);
        assert_eq!(words(r#"a\ b 'c d'"#), [r"a\ b", "'c d'"]);
        assert_eq!(words(r#"x="" y=''"#), [r#"x="""#, "y=''"]);
        assert_eq!(words("trailing\\"), ["trailing"]);
        assert_eq!(words("  "), Vec::<String>::new());
    }

    #[test]
    fn builder_flags_are_unquoted_and_stop_at_first_non_flag() {
        let (rest, flags) = extract_builder_flags(r#"--from="a b" --link -- --x y"#, '\\');
        let flags: Vec<_> = flags.into_iter().map(|(f, ..)| f).collect();
        assert_eq!(flags, ["--from=a b", "--link"]);
        assert_eq!(&r#"--from="a b" --link -- --x y"#[rest..].trim(), &"--x y");
        let (rest, flags) = extract_builder_flags("-x y", '\\');
        assert!(flags.is_empty());
        assert_eq!(rest, 0);
    }
}
