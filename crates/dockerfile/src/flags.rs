//! Instruction flags (`--name=value`) with BuildKit's `BFlags` rules: which flags each
//! instruction knows, boolean spellings, repeatable flags, and its error messages.

use crate::ast::Word;
use crate::suggest;

/// The kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--link`, `--link=true`, `--link=false`.
    Bool,
    /// `--from=x`, at most once.
    String,
    /// `--mount=…`, repeatable.
    Strings,
}

/// The flags one instruction accepts.
pub(crate) type FlagSpec = &'static [(&'static str, FlagKind)];

/// Flag values after parsing.
#[derive(Debug, Default)]
pub(crate) struct ParsedFlags {
    values: Vec<(&'static str, Word)>,
}

impl ParsedFlags {
    /// The value of a string flag, with its span.
    pub(crate) fn string(&self, name: &str) -> Option<Word> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| w.clone())
    }

    /// The values of a repeatable flag, in order.
    pub(crate) fn strings(&self, name: &str) -> Vec<Word> {
        self.values
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, w)| w.clone())
            .collect()
    }

    /// A boolean flag: `None` when absent.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|w| w.value == "true")
    }
}

/// A flag error: the offending flag word, the message and an optional hint.
pub(crate) type FlagError = (Word, String, Option<String>);

/// Parses raw flag words against `spec`, as BuildKit's `BFlags.Parse`.
pub(crate) fn parse_flags(raw: &[Word], spec: FlagSpec) -> Result<ParsedFlags, FlagError> {
    let mut parsed = ParsedFlags::default();
    for word in raw {
        if word.value == "--" {
            break;
        }
        let Some(body) = word.value.strip_prefix("--") else {
            return Err((
                word.clone(),
                format!("arg should start with -- : {}", word.value),
                None,
            ));
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let flag_name = format!("--{name}");
        let Some(&(known, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            let names: Vec<String> = spec.iter().map(|(n, _)| (*n).to_owned()).collect();
            let hint = match suggest::closest_case_sensitive(name, &names) {
                Some(m) => Some(format!("did you mean --{m}?")),
                None if names.is_empty() => Some("this instruction takes no flags".to_owned()),
                None => Some(format!(
                    "this instruction accepts {}",
                    names
                        .iter()
                        .map(|n| format!("--{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            return Err((word.clone(), format!("unknown flag: {flag_name}"), hint));
        };
        if kind != FlagKind::Strings && parsed.values.iter().any(|(n, _)| *n == known) {
            return Err((
                word.clone(),
                format!("duplicate flag specified: {flag_name}"),
                None,
            ));
        }
        let missing = || {
            (
                word.clone(),
                format!("missing a value on flag: {flag_name}"),
                Some(format!("write {flag_name}=VALUE")),
            )
        };
        let value = match kind {
            FlagKind::Bool => match value {
                Some("") => return Err(missing()),
                None => "true".to_owned(),
                Some(v) if v.eq_ignore_ascii_case("true") => "true".to_owned(),
                Some(v) if v.eq_ignore_ascii_case("false") => "false".to_owned(),
                Some(v) => {
                    return Err((
                        word.clone(),
                        format!("expecting boolean value for flag {flag_name}, not: {v}"),
                        None,
                    ));
                }
            },
            FlagKind::String | FlagKind::Strings => value.ok_or_else(missing)?.to_owned(),
        };
        parsed.values.push((
            known,
            Word {
                value,
                span: word.span,
            },
        ));
    }
    Ok(parsed)
}
