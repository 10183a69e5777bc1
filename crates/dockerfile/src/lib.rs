//! The Dockerfile frontend of stagecraft: a hand-written parser that reads Dockerfiles exactly
//! as BuildKit's `frontend/dockerfile/parser` does — parser directives, the escape character,
//! comments and blank lines inside continuations, exec versus shell form (with BuildKit's
//! fallback when the JSON is not valid), `--flags`, `ENV`/`LABEL` pairs and heredocs — and
//! keeps a source span on every instruction, flag and argument for error messages and lint.
//!
//! ```
//! let file = stagecraft_dockerfile::parse_str("Dockerfile", "FROM alpine AS build\nRUN make\n")?;
//! assert_eq!(file.instructions.len(), 2);
//! assert_eq!(file.dump(), "(from \"alpine\" \"AS\" \"build\")\n(run \"make\")\n");
//! # Ok::<(), stagecraft_dockerfile::ParseError>(())
//! ```
#![forbid(unsafe_code)]

mod ast;
mod diagnostic;
mod dump;
mod duration;
mod flags;
pub mod heredoc;
mod instructions;
mod json_array;
mod line_parsers;
pub mod mounts;
mod parser;
mod source;
pub mod suggest;

pub use ast::{
    Arguments, Directive, Directives, Dockerfile, Heredoc, Instruction, KeyValue, Keyword, Warning,
    Word, flag_name,
};
pub use diagnostic::{Code, Diagnostic, ParseError};
pub use dump::JsonDocument;
pub use duration::parse_go_duration;
pub use instructions::{
    AddCommand, ArgDeclaration, Command, CommandKind, CommandLine, CopyCommand, Healthcheck,
    InlineSource, Location, RunCommand, SourcesAndDest, Stage, Stages,
};
pub use line_parsers::go_quote;
pub use parser::{parse, parse_bytes, parse_str};
pub use source::{Position, SourceFile, Span};
