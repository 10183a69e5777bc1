//! Parse errors that point into the Dockerfile.

use crate::source::{Position, SourceFile, Span};
use std::fmt;

/// Why a Dockerfile could not be parsed, and where.
///
/// `Display` prints `file:line:col: message`; [`ParseError::render`] adds the source line, a caret
/// under the spot and the hint, for terminals. (Boxed: errors are rare, results are frequent.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    message: String,
    hint: Option<String>,
    file: String,
    span: Span,
    position: Position,
    line_text: String,
}

impl ParseError {
    /// An error at `span` of `source`.
    pub fn new(source: &SourceFile, span: Span, message: impl Into<String>) -> Self {
        let position = source.position(span.start);
        ParseError(Box::new(Details {
            message: message.into(),
            hint: None,
            file: source.name().to_owned(),
            span,
            position,
            line_text: source.line_text(position.line).to_owned(),
        }))
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    /// What is wrong, in BuildKit's words where BuildKit has words for it.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// How to fix it, when there is a likely fix.
    pub fn hint(&self) -> Option<&str> {
        self.0.hint.as_deref()
    }

    /// The file the error is in.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// Where the problem is.
    pub fn span(&self) -> Span {
        self.0.span
    }

    /// The 1-based line and column of the start of [`ParseError::span`].
    pub fn position(&self) -> Position {
        self.0.position
    }

    /// A multi-line report: location, message, the source line with a caret, and the hint.
    pub fn render(&self) -> String {
        let Details {
            message,
            hint,
            file,
            position: Position { line, column },
            line_text,
            ..
        } = &*self.0;
        let (line, column) = (*line, *column);
        let gutter = line.to_string().len();
        let mut out = format!(
            "error: {}\n{:gutter$}--> {}:{}:{}\n{:gutter$} |\n{} | {}\n{:gutter$} | {}^",
            message,
            "",
            file,
            line,
            column,
            "",
            line,
            line_text.replace('\t', " "),
            "",
            " ".repeat(column.saturating_sub(1)),
        );
        if let Some(hint) = hint {
            out.push_str(&format!("\n{:gutter$} = help: {hint}", ""));
        }
        out
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.0.file, self.0.position.line, self.0.position.column, self.0.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_puts_a_caret_under_the_column() {
        let src = SourceFile::new("Dockerfile", "FROM a\nFORM b\n");
        let err = ParseError::new(&src, Span::new(7, 11), "unknown instruction: FORM")
            .with_hint("did you mean FROM?");
        assert_eq!(err.to_string(), "Dockerfile:2:1: unknown instruction: FORM");
        let rendered = err.render();
        assert!(rendered.contains("--> Dockerfile:2:1"), "{rendered}");
        assert!(rendered.contains("2 | FORM b\n  | ^"), "{rendered}");
        assert!(
            rendered.ends_with("= help: did you mean FROM?"),
            "{rendered}"
        );
    }
}
