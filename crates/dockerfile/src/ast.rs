//! The syntax tree the parser produces: BuildKit's parser `Node` tree, typed and with spans.

use crate::source::{SourceFile, Span};
use std::fmt;

/// A parsed Dockerfile: its parser directives, instructions and parser warnings.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The file the instructions were read from.
    pub source: SourceFile,
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// The escape character in force (`\` unless `# escape=` said otherwise).
    pub escape: char,
    /// Instructions in file order.
    pub instructions: Vec<Instruction>,
    /// Things BuildKit accepts but warns about (such as empty continuation lines).
    pub warnings: Vec<Warning>,
}

/// The parser directives BuildKit recognises (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` — the frontend image the file asks for.
    pub syntax: Option<Directive>,
    /// `# escape=` — the escape character, `\` or `` ` ``.
    pub escape: Option<Directive>,
    /// `# check=` — build-check configuration such as `skip=…;error=true`.
    pub check: Option<Directive>,
}

/// One parser directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The value after `=`, trimmed.
    pub value: String,
    /// 1-based line of the directive.
    pub line: usize,
    /// Where the value is.
    pub span: Span,
}

/// The instructions a Dockerfile may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyword {
    /// `ADD`
    Add,
    /// `ARG`
    Arg,
    /// `CMD`
    Cmd,
    /// `COPY`
    Copy,
    /// `ENTRYPOINT`
    Entrypoint,
    /// `ENV`
    Env,
    /// `EXPOSE`
    Expose,
    /// `FROM`
    From,
    /// `HEALTHCHECK`
    Healthcheck,
    /// `LABEL`
    Label,
    /// `MAINTAINER` (deprecated)
    Maintainer,
    /// `ONBUILD`
    Onbuild,
    /// `RUN`
    Run,
    /// `SHELL`
    Shell,
    /// `STOPSIGNAL`
    Stopsignal,
    /// `USER`
    User,
    /// `VOLUME`
    Volume,
    /// `WORKDIR`
    Workdir,
}

impl Keyword {
    /// Every keyword, in alphabetical order.
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The lowercase name, as BuildKit's `command` package spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "add",
            Keyword::Arg => "arg",
            Keyword::Cmd => "cmd",
            Keyword::Copy => "copy",
            Keyword::Entrypoint => "entrypoint",
            Keyword::Env => "env",
            Keyword::Expose => "expose",
            Keyword::From => "from",
            Keyword::Healthcheck => "healthcheck",
            Keyword::Label => "label",
            Keyword::Maintainer => "maintainer",
            Keyword::Onbuild => "onbuild",
            Keyword::Run => "run",
            Keyword::Shell => "shell",
            Keyword::Stopsignal => "stopsignal",
            Keyword::User => "user",
            Keyword::Volume => "volume",
            Keyword::Workdir => "workdir",
        }
    }

    /// Looks a keyword up case-insensitively.
    pub fn from_name(name: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether BuildKit reads heredocs (`<<EOF`) for this instruction.
    pub fn accepts_heredocs(self) -> bool {
        matches!(self, Keyword::Add | Keyword::Copy | Keyword::Run)
    }
}

impl fmt::Display for Keyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str().to_ascii_uppercase())
    }
}

/// A piece of text from the Dockerfile together with where it came from.
///
/// `value` is what BuildKit's parser keeps (quotes are kept, except in flags and JSON strings,
/// which the parser decodes); `span` covers the source text it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The parsed text.
    pub value: String,
    /// Where it is in the source.
    pub span: Span,
}

/// A `key=value` pair of `ENV` or `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, as written.
    pub key: Word,
    /// The value, before quote removal and variable expansion.
    pub value: Word,
    /// True for the legacy `ENV key value` form (no `=`).
    pub legacy: bool,
}

/// An instruction's arguments, in the shape BuildKit's parser gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arguments {
    /// A list of words (most instructions; exec-form JSON arrays decoded).
    List(Vec<Word>),
    /// `ENV` and `LABEL` pairs.
    KeyValues(Vec<KeyValue>),
    /// `ONBUILD`'s trigger instruction.
    Trigger(Box<Instruction>),
}

impl Arguments {
    /// The flat list of argument strings, as `stagecraft parse --json` prints them
    /// (`ENV a=b` → `["a", "b"]`; `ONBUILD` has none of its own).
    pub fn values(&self) -> Vec<&str> {
        match self {
            Arguments::List(words) => words.iter().map(|w| w.value.as_str()).collect(),
            Arguments::KeyValues(pairs) => pairs
                .iter()
                .flat_map(|kv| [kv.key.value.as_str(), kv.value.value.as_str()])
                .collect(),
            Arguments::Trigger(_) => Vec::new(),
        }
    }

    /// The plain word list, if these are plain words.
    pub fn words(&self) -> &[Word] {
        match self {
            Arguments::List(words) => words,
            _ => &[],
        }
    }
}

/// A heredoc attached to an instruction (`RUN <<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// The body, lines with their newlines, terminator excluded. Leading tabs are *not*
    /// removed here even for `<<-`; see [`Heredoc::chomped_content`].
    pub content: String,
    /// False when any part of the terminator word was quoted: no variable expansion.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from every line.
    pub chomp: bool,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub file_descriptor: u32,
    /// Where the body is.
    pub span: Span,
}

impl Heredoc {
    /// The content with leading tabs removed from each line when `chomp` is set.
    pub fn chomped_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

/// One instruction, with its flags, arguments and location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Which instruction.
    pub keyword: Keyword,
    /// The keyword as written (its case matters to some lint rules).
    pub keyword_text: Word,
    /// `--name=value` flags, in order, quotes and escapes removed as BuildKit does.
    pub flags: Vec<Word>,
    /// The arguments.
    pub args: Arguments,
    /// True for exec form (a JSON array).
    pub json: bool,
    /// Heredocs, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line, heredoc bodies included.
    pub end_line: usize,
    /// The logical line: continuations joined, comments inside them dropped.
    pub original: String,
    /// From the first character of the keyword to the end of the last line.
    pub span: Span,
    /// The comment lines directly above the instruction (without `#`).
    pub comments: Vec<String>,
}

impl Instruction {
    /// The value of the first flag named `name` (`--name=value`), if present.
    pub fn flag(&self, name: &str) -> Option<&Word> {
        self.flags.iter().find(|f| flag_name(&f.value) == name)
    }
}

/// The name part of a raw flag word: `--from=x` → `from`.
pub fn flag_name(raw: &str) -> &str {
    let body = raw.strip_prefix("--").unwrap_or(raw);
    body.split_once('=').map_or(body, |(name, _)| name)
}

/// A construct BuildKit accepts but warns about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// One-line description.
    pub message: String,
    /// Documentation page that explains it.
    pub url: String,
    /// 1-based line it refers to.
    pub line: usize,
}
