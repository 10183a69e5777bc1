//! The line-level parser: directives, comments, continuation lines and heredocs, as BuildKit's
//! `parser.Parse` reads them.

use crate::ast::{Arguments, Directive, Directives, Dockerfile, Heredoc, Instruction, Warning};
use crate::diagnostic::{Code, ParseError};
use crate::heredoc;
use crate::line_parsers::{self, LogicalLine};
use crate::source::{SourceFile, Span};

/// BuildKit reads lines with Go's `bufio.Scanner`, whose buffer stops at 64 KiB.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Parses a Dockerfile from bytes (invalid UTF-8 becomes U+FFFD).
pub fn parse_bytes(name: &str, bytes: &[u8]) -> Result<Dockerfile, ParseError> {
    parse(SourceFile::from_bytes(name, bytes))
}

/// Parses a Dockerfile held in a string.
pub fn parse_str(name: &str, text: &str) -> Result<Dockerfile, ParseError> {
    parse(SourceFile::new(name, text))
}

/// Parses a Dockerfile.
///
/// Errors are what BuildKit's parser rejects, plus unknown instructions (which BuildKit's parser
/// lets through but every build then rejects): the error names the file, line and column.
pub fn parse(source: SourceFile) -> Result<Dockerfile, ParseError> {
    Parser::new(&source).run()
}

/// One physical line: its offset in the source and its text including the `\n`, if any.
#[derive(Clone, Copy)]
struct PhysicalLine<'a> {
    offset: usize,
    text: &'a str,
}

struct Parser<'a> {
    source: &'a SourceFile,
    text: &'a str,
    /// Offset of the next physical line.
    cursor: usize,
    /// Lines read so far (1-based number of the last line read).
    line_number: usize,
    escape: char,
    directives: DirectiveScanner,
    found: Directives,
}

impl<'a> Parser<'a> {
    fn new(source: &'a SourceFile) -> Self {
        Parser {
            source,
            text: source.text(),
            cursor: 0,
            line_number: 0,
            escape: '\\',
            directives: DirectiveScanner::default(),
            found: Directives::default(),
        }
    }

    fn error(&self, span: Span, message: impl Into<String>) -> ParseError {
        ParseError::new(Code::Syntax, self.source, span, message)
    }

    fn next_line(&mut self) -> Result<Option<PhysicalLine<'a>>, ParseError> {
        if self.cursor >= self.text.len() {
            return Ok(None);
        }
        let rest = &self.text[self.cursor..];
        let len = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = PhysicalLine {
            offset: self.cursor,
            text: &rest[..len],
        };
        let terminated = line.text.ends_with('\n');
        if len > MAX_LINE_BYTES || (!terminated && len >= MAX_LINE_BYTES) {
            return Err(self
                .error(
                    Span::new(line.offset, line.offset),
                    format!(
                        "dockerfile line greater than max allowed size of {}",
                        MAX_LINE_BYTES - 1
                    ),
                )
                .with_hint(
                    "split the line with line continuations, or move long content into a file",
                ));
        }
        self.cursor += len;
        self.line_number += 1;
        Ok(Some(line))
    }

    fn run(mut self) -> Result<Dockerfile, ParseError> {
        let mut instructions = Vec::new();
        let mut warnings = Vec::new();
        let mut comments: Vec<String> = Vec::new();

        while let Some(mut physical) = self.next_line()? {
            if self.line_number == 1 && physical.text.starts_with('\u{feff}') {
                physical.offset += '\u{feff}'.len_utf8();
                physical.text = &physical.text['\u{feff}'.len_utf8()..];
            }
            if is_comment(physical.text) {
                // BuildKit drops the line's first byte, not the `#` (so an indented comment
                // keeps its `#`); only doc comments for lint care.
                let mut chars = physical.text.chars();
                chars.next();
                let comment = chars.as_str().trim();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment.to_owned());
                }
            }
            let start_line = self.line_number;
            let (content_offset, content) = self.process_line(physical, true, &mut comments)?;
            let mut line = LogicalLine::default();
            let (kept, mut end_of_line) = trim_continuation(content, self.escape);
            if end_of_line && kept.is_empty() {
                continue;
            }
            line.push(kept, content_offset);

            let mut empty_continuation = false;
            while !end_of_line {
                let Some(next) = self.next_line()? else { break };
                let (offset, content) = self.process_line(next, false, &mut Vec::new())?;
                if is_comment(next.text) {
                    continue;
                }
                if content.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (kept, eol) = trim_continuation(content, self.escape);
                end_of_line = eol;
                line.push(kept, offset);
            }

            if empty_continuation {
                warnings.push(Warning {
                    message: format!("Empty continuation line found in: {}", line.text),
                    url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
                        .to_owned(),
                    line: self.line_number,
                });
            }

            let mut instruction = line_parsers::instruction_from_line(
                self.source,
                &line,
                0,
                line.text.len(),
                self.escape,
            )?;
            instruction.comments = std::mem::take(&mut comments);

            if can_contain_heredoc(&instruction) && line.text.contains("<<") {
                let markers = heredoc::markers_in_line(&line.text)
                    .map_err(|message| self.error(line.span(0, line.text.len()), message))?;
                for marker in markers {
                    let heredoc = self.read_heredoc(marker, instruction.span.start)?;
                    instruction.heredocs.push(heredoc);
                }
            }
            let end_offset = self.cursor.min(self.text.len());
            instruction.start_line = start_line;
            instruction.end_line = self.line_number;
            instruction.span = Span::new(instruction.span.start, end_offset);
            if let Arguments::Trigger(inner) = &mut instruction.args {
                inner.start_line = start_line;
                inner.end_line = self.line_number;
            }
            instructions.push(instruction);
        }

        if instructions.is_empty() {
            let end = self.text.len();
            return Err(self
                .error(Span::new(end, end), "file with no instructions")
                .with_hint("a Dockerfile needs at least a FROM instruction"));
        }

        Ok(Dockerfile {
            source: self.source.clone(),
            directives: self.found,
            escape: self.escape,
            instructions,
            warnings,
        })
    }

    /// BuildKit's `processLine`: trims the newline (and, for a first line, leading white space),
    /// feeds the directive scanner, and blanks out comment lines. Returns the content's offset.
    fn process_line(
        &mut self,
        line: PhysicalLine<'a>,
        strip_left: bool,
        comments: &mut Vec<String>,
    ) -> Result<(usize, &'a str), ParseError> {
        let mut text = line.text.trim_end_matches(['\r', '\n']);
        let mut offset = line.offset;
        if strip_left {
            let trimmed = text.trim_start();
            offset += text.len() - trimmed.len();
            text = trimmed;
        }
        if let Some(found) = self.directives.scan(text, offset) {
            let found = found.map_err(|(span, message, hint)| {
                let err = self.error(span, message);
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            })?;
            // The directive was also collected as a comment; it is not one.
            comments.pop();
            self.apply_directive(found)?;
        }
        if is_comment(text) {
            return Ok((offset + text.len(), ""));
        }
        Ok((offset, text))
    }

    fn apply_directive(&mut self, found: FoundDirective) -> Result<(), ParseError> {
        let directive = Directive {
            value: found.value,
            line: self.line_number,
            span: found.span,
        };
        match found.name {
            DirectiveName::Escape => {
                self.escape = match directive.value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(self
                            .error(
                                directive.span,
                                format!("invalid escape token '{other}' does not match ` or \\"),
                            )
                            .with_hint("use `# escape=\\` (the default) or `# escape=``"));
                    }
                };
                self.found.escape = Some(directive);
            }
            DirectiveName::Syntax => self.found.syntax = Some(directive),
            DirectiveName::Check => self.found.check = Some(directive),
        }
        Ok(())
    }

    /// Reads a heredoc body up to its terminator line.
    fn read_heredoc(
        &mut self,
        marker: heredoc::Marker,
        instruction_start: usize,
    ) -> Result<Heredoc, ParseError> {
        let body_start = self.cursor;
        let mut content = String::new();
        while let Some(line) = self.next_line()? {
            let candidate = line.text.trim_end_matches(['\r', '\n']);
            let candidate = if marker.chomp {
                candidate.trim_start_matches('\t')
            } else {
                candidate
            };
            if candidate == marker.name {
                return Ok(Heredoc {
                    name: marker.name,
                    content,
                    expand: marker.expand,
                    chomp: marker.chomp,
                    file_descriptor: marker.file_descriptor,
                    span: Span::new(body_start, line.offset),
                });
            }
            content.push_str(line.text);
        }
        Err(self
            .error(
                Span::new(instruction_start, instruction_start),
                format!("unterminated heredoc: no line `{}` ends it", marker.name),
            )
            .with_hint(format!(
                "add a line containing only `{}` after the heredoc's content",
                marker.name
            )))
    }
}

/// Whether BuildKit looks for heredocs in this instruction (ADD, COPY, RUN — also as ONBUILD
/// triggers — and never in exec form).
fn can_contain_heredoc(instruction: &Instruction) -> bool {
    let target = match &instruction.args {
        Arguments::Trigger(inner) => inner,
        _ => instruction,
    };
    target.keyword.accepts_heredocs() && !target.json
}

/// A comment line: `#` after optional white space.
fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// BuildKit's continuation rule: the escape character as the last non-blank character, not
/// itself preceded by the escape character (a lone escape character on a line also counts).
/// Returns the text without it, and whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let without_blanks = line.trim_end_matches([' ', '\t']);
    let Some(before) = without_blanks.strip_suffix(escape) else {
        return (line, true);
    };
    match before.chars().next_back() {
        None => ("", false),
        Some(c) if c == escape => (line, true),
        Some(_) => (before, false),
    }
}

/// The three directives BuildKit knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirectiveName {
    Syntax,
    Escape,
    Check,
}

struct FoundDirective {
    name: DirectiveName,
    value: String,
    span: Span,
}

type DirectiveError = (Span, String, Option<String>);

/// BuildKit's `DirectiveParser`: directives are `# key=value` comment lines at the very top;
/// the first line that is not one ends the search for good.
#[derive(Default)]
struct DirectiveScanner {
    done: bool,
    seen: Vec<DirectiveName>,
}

impl DirectiveScanner {
    fn scan(
        &mut self,
        line: &str,
        offset: usize,
    ) -> Option<Result<FoundDirective, DirectiveError>> {
        if self.done {
            return None;
        }
        let Some(after_hash) = line.strip_prefix('#') else {
            self.done = true;
            return None;
        };
        let body = after_hash.trim_start();
        let body_offset = offset + line.len() - body.len();
        let Some((name, value, value_start)) = split_directive(body) else {
            self.done = true;
            return None;
        };
        let name = match name.to_ascii_lowercase().as_str() {
            "syntax" => DirectiveName::Syntax,
            "escape" => DirectiveName::Escape,
            "check" => DirectiveName::Check,
            _ => {
                self.done = true;
                return None;
            }
        };
        let span = Span::new(
            body_offset + value_start,
            body_offset + value_start + value.len(),
        );
        if self.seen.contains(&name) {
            let key = format!("{name:?}").to_ascii_lowercase();
            return Some(Err((
                span,
                format!("only one {key} parser directive can be used"),
                Some(format!("remove the repeated `# {key}=` line")),
            )));
        }
        self.seen.push(name);
        Some(Ok(FoundDirective {
            name,
            value: value.to_owned(),
            span,
        }))
    }
}

/// Go's `\s` in RE2: ASCII white space without `\v`.
fn is_re2_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// Matches `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`; returns the name, the value and the
/// value's byte offset in `body`.
fn split_directive(body: &str) -> Option<(&str, &str, usize)> {
    let first = body.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_len = body
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(body.len());
    let name = &body[..name_len];
    let after_name = body[name_len..].trim_start_matches(is_re2_space);
    let after_eq = after_name.strip_prefix('=')?;
    // The value needs at least one character; when everything after `=` is blank, the lazy
    // group still takes the last blank character.
    let trimmed_end = after_eq.trim_end_matches(is_re2_space);
    let value = if trimmed_end.is_empty() {
        let last = after_eq.chars().next_back()?;
        &after_eq[after_eq.len() - last.len_utf8()..]
    } else {
        trimmed_end.trim_start_matches(is_re2_space)
    };
    let value_start = if trimmed_end.is_empty() {
        body.len() - value.len()
    } else {
        body.len() - after_eq.len() + (trimmed_end.len() - value.len())
    };
    Some((name, value, value_start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rule_matches_buildkit() {
        assert_eq!(trim_continuation("RUN a \\", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\  \t", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("  \\", '\\'), ("  ", false));
        // An escaped escape character is no continuation.
        assert_eq!(trim_continuation("RUN a \\\\", '\\'), ("RUN a \\\\", true));
        assert_eq!(trim_continuation("RUN a `", '`'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\", '`'), ("RUN a \\", true));
    }

    #[test]
    fn directive_syntax_matches_buildkit_regex() {
        assert_eq!(split_directive("escape=`"), Some(("escape", "`", 7)));
        assert_eq!(
            split_directive("syntax = docker/dockerfile:1  "),
            Some(("syntax", "docker/dockerfile:1", 9))
        );
        assert_eq!(split_directive("escape= "), Some(("escape", " ", 7)));
        assert_eq!(split_directive("escape="), None);
        assert_eq!(split_directive("1x=y"), None);
        assert_eq!(split_directive("no directive"), None);
    }
}
