//! Renderings of the syntax tree: BuildKit's S-expression `Dump()` (what its parser tests
//! compare) and the JSON shape of `stagecraft parse --json`.

use crate::ast::{Arguments, Dockerfile, Instruction};
use crate::line_parsers::go_quote;
use serde::Serialize;

impl Dockerfile {
    /// BuildKit's `Node.Dump()` of the whole file: one `(keyword ["--flag"…] "arg"…)` line per
    /// instruction; `ENV`/`LABEL` pairs as (key, value, separator) triples; heredoc bodies
    /// not shown.
    pub fn dump(&self) -> String {
        self.instructions
            .iter()
            .map(|i| format!("({})\n", dump_instruction(i)))
            .collect()
    }

    /// The `stagecraft parse --json` document, ready for `serde_json` (keys in documented order).
    pub fn to_json(&self) -> JsonDocument<'_> {
        JsonDocument {
            directives: JsonDirectives {
                syntax: self.directives.syntax.as_ref().map(|d| d.value.as_str()),
                escape: self.escape.to_string(),
                check: self.directives.check.as_ref().map(|d| d.value.as_str()),
            },
            instructions: self
                .instructions
                .iter()
                .map(JsonInstruction::from)
                .collect(),
        }
    }
}

fn dump_instruction(instruction: &Instruction) -> String {
    let mut out = instruction.keyword_text.value.to_lowercase();
    if !instruction.flags.is_empty() {
        let flags: Vec<String> = instruction
            .flags
            .iter()
            .map(|f| go_quote(&f.value))
            .collect();
        out.push_str(&format!(" [{}]", flags.join(" ")));
    }
    match &instruction.args {
        Arguments::List(words) => {
            for word in words {
                out.push(' ');
                out.push_str(&go_quote(&word.value));
            }
        }
        Arguments::KeyValues(pairs) => {
            for pair in pairs {
                let separator = if pair.legacy { "" } else { "=" };
                for part in [&pair.key.value, &pair.value.value, separator] {
                    out.push(' ');
                    out.push_str(&go_quote(part));
                }
            }
        }
        Arguments::Trigger(inner) => {
            out.push_str(&format!(" ({})", dump_instruction(inner)));
        }
    }
    out
}

/// The JSON form of a parsed Dockerfile (see [`Dockerfile::to_json`]).
#[derive(Serialize)]
pub struct JsonDocument<'a> {
    directives: JsonDirectives<'a>,
    instructions: Vec<JsonInstruction<'a>>,
}

#[derive(Serialize)]
struct JsonDirectives<'a> {
    syntax: Option<&'a str>,
    escape: String,
    check: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonHeredoc<'a> {
    name: &'a str,
    content: &'a str,
    expand: bool,
    chomp: bool,
}

#[derive(Serialize)]
struct JsonInstruction<'a> {
    keyword: &'static str,
    flags: Vec<&'a str>,
    args: Vec<&'a str>,
    json: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    legacy_form: bool,
    heredocs: Vec<JsonHeredoc<'a>>,
    start_line: usize,
    end_line: usize,
    original: &'a str,
    onbuild: Option<Box<JsonInstruction<'a>>>,
}

impl<'a> From<&'a Instruction> for JsonInstruction<'a> {
    fn from(instruction: &'a Instruction) -> Self {
        let legacy_form = match &instruction.args {
            Arguments::KeyValues(pairs) => pairs.iter().any(|p| p.legacy),
            _ => false,
        };
        let onbuild = match &instruction.args {
            Arguments::Trigger(inner) => Some(Box::new(JsonInstruction::from(&**inner))),
            _ => None,
        };
        JsonInstruction {
            keyword: instruction.keyword.as_str(),
            flags: instruction.flags.iter().map(|f| f.value.as_str()).collect(),
            args: instruction.args.values(),
            json: instruction.json,
            legacy_form,
            heredocs: instruction
                .heredocs
                .iter()
                .map(|h| JsonHeredoc {
                    name: &h.name,
                    content: &h.content,
                    expand: h.expand,
                    chomp: h.chomp,
                })
                .collect(),
            start_line: instruction.start_line,
            end_line: instruction.end_line,
            original: &instruction.original,
            onbuild,
        }
    }
}
