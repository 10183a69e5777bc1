//! Output formats: text for people, JSON for scripts, SARIF 2.1.0 for code-scanning services.

use crate::Finding;
use crate::rules::{RULES, Severity, find_rule};
use serde_json::{Value, json};
use std::fmt::Write;
use std::str::FromStr;

/// An output format of `stagecraft lint --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `file:line:col: severity[Rule]: message`, a help line and the rule's page (the default).
    #[default]
    Text,
    /// One JSON array of findings.
    Json,
    /// A SARIF 2.1.0 log.
    Sarif,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            other => Err(format!(
                "unknown format {other:?}: use `text`, `json` or `sarif`"
            )),
        }
    }
}

/// Renders findings in `format`.
pub fn render(format: Format, findings: &[Finding]) -> String {
    match format {
        Format::Text => render_text(findings),
        Format::Json => render_json(findings),
        Format::Sarif => render_sarif(findings),
    }
}

/// One block per finding, then a summary line:
///
/// ```text
/// Dockerfile:3:1: warning[JSONArgsRecommended]: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals
///   = help: write CMD ["executable", "arg"], or set SHELL explicitly if you need a shell
///   = docs: stagecraft lint --explain JSONArgsRecommended
///
/// Found 1 problem: 1 warning.
/// ```
pub fn render_text(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "No problems found.\n".to_owned();
    }
    let mut out = String::new();
    for f in findings {
        // An image check of an image without its Dockerfile has no line: the image's name
        // alone says where.
        let place = if f.line == 0 {
            f.file.clone()
        } else {
            format!("{}:{}:{}", f.file, f.line, f.column)
        };
        // The page of a rule is built into the binary: the command works wherever it is
        // installed. Another tool's codes have their page on the web.
        let docs = match find_rule(&f.rule) {
            Some(rule) => format!("stagecraft lint --explain {}", rule.id),
            None => f.url.to_string(),
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{place}: {}[{}]: {}\n  = help: {}\n  = docs: {docs}\n\n",
            f.severity, f.rule, f.message, f.hint
        );
    }
    let counts: Vec<String> = [Severity::Error, Severity::Warning, Severity::Info]
        .into_iter()
        .filter_map(|severity| {
            let n = findings.iter().filter(|f| f.severity == severity).count();
            let plural = if n == 1 || severity == Severity::Info {
                ""
            } else {
                "s"
            };
            (n > 0).then(|| format!("{n} {severity}{plural}"))
        })
        .collect();
    let total = findings.len();
    let _ = writeln!(
        out,
        "Found {total} problem{}: {}.",
        if total == 1 { "" } else { "s" },
        counts.join(", ")
    );
    out
}

/// A JSON array of `{"rule","severity","file","line","column","message","hint","url"}`.
pub fn render_json(findings: &[Finding]) -> String {
    let mut out = serde_json::to_string_pretty(findings).unwrap_or_else(|_| "[]".to_owned());
    out.push('\n');
    out
}

/// A minimal valid SARIF 2.1.0 log: one run, the rules that fired, one result per finding.
pub fn render_sarif(findings: &[Finding]) -> String {
    let mut used: Vec<&str> = RULES
        .iter()
        .filter(|rule| findings.iter().any(|f| f.rule == rule.id))
        .map(|rule| rule.id)
        .collect();
    // Other tools' codes (ShellCheck's `SC2086`), after stagecraft's rules, each once.
    let mut external: Vec<&Finding> = findings
        .iter()
        .filter(|f| find_rule(&f.rule).is_none())
        .collect();
    external.sort_by(|a, b| a.rule.cmp(&b.rule));
    external.dedup_by(|a, b| a.rule == b.rule);
    used.extend(external.iter().map(|f| f.rule.as_ref()));
    let rules: Vec<Value> = used
        .iter()
        .map(|id| match find_rule(id) {
            Some(rule) => json!({
                "id": rule.id,
                "shortDescription": {"text": rule.summary},
                "fullDescription": {"text": rule.description()},
                "help": {
                    "text": format!("{} (see {})", rule.summary, rule.url),
                    "markdown": rule.docs,
                },
                "defaultConfiguration": {"level": sarif_level(rule.severity)},
            }),
            None => {
                let finding = external.iter().find(|f| f.rule == *id);
                let url = finding.map_or("", |f| f.url.as_ref());
                json!({
                    "id": id,
                    "shortDescription": {"text": format!("ShellCheck {id}")},
                    "helpUri": url,
                    "help": {
                        "text": format!("ShellCheck {id}: see {url}"),
                        "markdown": format!("ShellCheck [{id}]({url})"),
                    },
                })
            }
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut location = json!({"artifactLocation": {"uri": uri_path(&f.file)}});
            // SARIF lines start at 1: a finding about an image without its Dockerfile names
            // the image alone.
            if f.line > 0 {
                location["region"] = json!({"startLine": f.line, "startColumn": f.column});
            }
            let mut properties = json!({"hint": f.hint, "docs": f.url});
            if let Some(layer) = f.layer {
                properties["layer"] = json!(layer);
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": used.iter().position(|id| f.rule == *id),
                "level": sarif_level(f.severity),
                "message": {"text": f.message},
                "locations": [{"physicalLocation": location}],
                "properties": properties,
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "stagecraft",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&log).unwrap_or_default();
    out.push('\n');
    out
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A file name as a relative URI reference: `/`-separated, reserved characters escaped.
fn uri_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.replace('\\', "/").bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_reserved_characters() {
        assert_eq!(
            uri_path("dir\\my file#1.Dockerfile"),
            "dir/my%20file%231.Dockerfile"
        );
    }
}
