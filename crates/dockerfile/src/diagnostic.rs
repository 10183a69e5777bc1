//! Diagnostics: failures at a place in the Dockerfile, from the parser, the planner or a step
//! of the build, with one rendering.

use crate::source::{Position, SourceFile, Span};
use std::fmt;

/// What the parser returns when the text is not a Dockerfile: a [`Diagnostic`] with code
/// [`Code::Syntax`] (or [`Code::Instruction`] for an instruction's flags and arguments).
pub type ParseError = Diagnostic;

/// The kind of a [`Diagnostic`]: a stable name scripts and documentation can rely on.
///
/// The names ([`Code::as_str`]) never change meaning; new kinds get new names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The text is not a Dockerfile (`syntax`).
    Syntax,
    /// An instruction's flags or arguments are invalid (`instruction`).
    Instruction,
    /// A variable could not be expanded (`expansion`).
    Expansion,
    /// A stage or image reference is wrong: unknown, blank, out of range, circular (`stage`).
    Stage,
    /// A `RUN --mount` is invalid or cannot be prepared (`mount`).
    Mount,
    /// A secret or SSH agent the step needs was not provided, or a secret would be written
    /// into the image (`secret`).
    Secret,
    /// The step needs an entitlement the build was not granted (`entitlement`).
    Entitlement,
    /// A `COPY`/`ADD` source cannot be read, fetched or verified (`source`).
    Source,
    /// An `ONBUILD` trigger of the base is invalid (`onbuild`).
    Onbuild,
    /// The step's operation failed: a `RUN` command, a copy (`step`).
    Step,
}

impl Code {
    /// The stable name, as the rendering shows it (`error[mount]: …`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "syntax",
            Code::Instruction => "instruction",
            Code::Expansion => "expansion",
            Code::Stage => "stage",
            Code::Mount => "mount",
            Code::Secret => "secret",
            Code::Entitlement => "entitlement",
            Code::Source => "source",
            Code::Onbuild => "onbuild",
            Code::Step => "step",
        }
    }

    /// Where the documentation of this kind of failure is, when one page covers it.
    pub fn docs(self) -> Option<&'static str> {
        match self {
            Code::Expansion => {
                Some("https://docs.docker.com/reference/dockerfile/#environment-replacement")
            }
            Code::Stage => Some("https://docs.docker.com/build/building/multi-stage/"),
            Code::Mount => Some("https://docs.docker.com/reference/dockerfile/#run---mount"),
            Code::Secret => Some("https://docs.docker.com/build/building/secrets/"),
            Code::Entitlement => {
                Some("https://docs.docker.com/reference/cli/docker/buildx/build/#allow")
            }
            Code::Onbuild => Some("https://docs.docker.com/reference/dockerfile/#onbuild"),
            Code::Syntax | Code::Instruction | Code::Source | Code::Step => None,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure at a place in a Dockerfile: its [`Code`], the span, the message, and an optional
/// hint; the documentation link comes from the code.
///
/// `Display` prints `file:line:col: message`; [`Diagnostic::render`] adds the code, the source
/// line, a caret under the spot, the hint and the link, for terminals. (Boxed: errors are
/// rare, results are frequent.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostic(Box<Details>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Details {
    code: Code,
    message: String,
    hint: Option<String>,
    file: String,
    span: Span,
    position: Position,
    line_text: String,
}

impl Diagnostic {
    /// A diagnostic of kind `code` at `span` of `source`.
    pub fn new(code: Code, source: &SourceFile, span: Span, message: impl Into<String>) -> Self {
        let position = source.position(span.start);
        Diagnostic(Box::new(Details {
            code,
            message: message.into(),
            hint: None,
            file: source.name().to_owned(),
            span,
            position,
            line_text: source.line_text(position.line).to_owned(),
        }))
    }

    /// Sets the hint (replacing any earlier one).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    /// The kind of failure.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// What is wrong, in BuildKit's words where BuildKit has words for it.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// How to fix it, when there is a likely fix.
    pub fn hint(&self) -> Option<&str> {
        self.0.hint.as_deref()
    }

    /// Where to read more ([`Code::docs`]).
    pub fn docs(&self) -> Option<&'static str> {
        self.0.code.docs()
    }

    /// The file the failure is in.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// Where the problem is.
    pub fn span(&self) -> Span {
        self.0.span
    }

    /// The 1-based line and column of the start of [`Diagnostic::span`].
    pub fn position(&self) -> Position {
        self.0.position
    }

    /// A multi-line report: code and message, location, the source line with a caret, the
    /// hint and the documentation link.
    pub fn render(&self) -> String {
        let Details {
            code,
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
            "error[{}]: {}\n{:gutter$}--> {}:{}:{}\n{:gutter$} |\n{} | {}\n{:gutter$} | {}^",
            code,
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
        if let Some(docs) = code.docs() {
            out.push_str(&format!("\n{:gutter$} = docs: {docs}", ""));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
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
        let err = Diagnostic::new(
            Code::Syntax,
            &src,
            Span::new(7, 11),
            "unknown instruction: FORM",
        )
        .with_hint("did you mean FROM?");
        assert_eq!(err.to_string(), "Dockerfile:2:1: unknown instruction: FORM");
        let rendered = err.render();
        assert!(
            rendered.starts_with("error[syntax]: unknown instruction: FORM\n"),
            "{rendered}"
        );
        assert!(rendered.contains("--> Dockerfile:2:1"), "{rendered}");
        assert!(rendered.contains("2 | FORM b\n  | ^"), "{rendered}");
        assert!(
            rendered.ends_with("= help: did you mean FROM?"),
            "{rendered}"
        );
    }

    #[test]
    fn render_links_the_codes_documentation() {
        let src = SourceFile::new("Dockerfile", "FROM a\nRUN --mount=type=nope true\n");
        let rendered =
            Diagnostic::new(Code::Mount, &src, Span::new(7, 33), "--mount: bad type").render();
        assert!(
            rendered
                .ends_with("\n  = docs: https://docs.docker.com/reference/dockerfile/#run---mount"),
            "{rendered}"
        );
        assert_eq!(Code::Mount.as_str(), "mount");
    }
}
