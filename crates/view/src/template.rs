//! The part of Go's `text/template` that `docker … --format` strings use, over JSON values:
//! fields (`{{.Repository}}`, `{{.Config.Env}}`), `{{.}}`, pipelines (`{{.Tag | upper}}`),
//! `{{if}}`/`{{else}}`/`{{range}}`/`{{with}}`…`{{end}}`, `{{-`/`-}}` trimming, and docker's
//! functions: `json`, `join`, `split`, `lower`, `upper`, `title`, `truncate`, `pad`, `println`,
//! `index`, `len`. Values print as Go's `%v` prints them (`[a b]` for a list, `map[k:v]` for
//! an object). A field that does not exist is an error, as it is for docker's typed data,
//! never an empty string a script would take for a value.
//!
//! ```
//! use stagecraft_view::template::Template;
//!
//! let template = Template::parse("{{.Repository}}:{{.Tag}} {{join .Env \",\"}}")?;
//! let row = serde_json::json!({"Repository": "app", "Tag": "1", "Env": ["A=1", "B=2"]});
//! assert_eq!(template.render(&row)?, "app:1 A=1,B=2");
//! # Ok::<(), stagecraft_view::template::TemplateError>(())
//! ```

use serde_json::Value;
use std::fmt::Write as _;

/// Why a template did not parse or render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {message}")]
pub struct TemplateError {
    message: String,
}

fn error(message: impl Into<String>) -> TemplateError {
    TemplateError {
        message: message.into(),
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Print(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// Commands joined by `|`: each one's result is the last argument of the next.
type Pipeline = Vec<Vec<Operand>>;

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `.` followed by zero or more field names.
    Field(Vec<String>),
    String(String),
    Number(i64),
    Bool(bool),
    Function(String),
}

/// What an action is, once its keyword is read.
enum Action {
    Print(Pipeline),
    If(Pipeline),
    Range(Pipeline),
    With(Pipeline),
    Else,
    End,
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut actions = Vec::new();
        let mut rest = text;
        let mut trim_next_text = false;
        while let Some(open) = rest.find("{{") {
            let mut literal = &rest[..open];
            if trim_next_text {
                literal = literal.trim_start();
            }
            let mut inner = &rest[open + 2..];
            let close = inner
                .find("}}")
                .ok_or_else(|| error(format!("unclosed action in {text:?}")))?;
            let mut body = &inner[..close];
            inner = &inner[close + 2..];
            if let Some(trimmed) = body.strip_prefix("- ") {
                literal = literal.trim_end();
                body = trimmed;
            }
            trim_next_text = false;
            if let Some(trimmed) = body.strip_suffix(" -") {
                trim_next_text = true;
                body = trimmed;
            }
            if !literal.is_empty() {
                actions.push(Err(literal.to_owned()));
            }
            actions.push(Ok(parse_action(body)?));
            rest = inner;
        }
        let literal = if trim_next_text {
            rest.trim_start()
        } else {
            rest
        };
        if !literal.is_empty() {
            actions.push(Err(literal.to_owned()));
        }
        let mut items = actions.into_iter();
        let (nodes, end) = build(&mut items)?;
        match end {
            None => Ok(Template { nodes }),
            Some(_) => Err(error("unexpected {{end}} or {{else}}")),
        }
    }

    /// Renders the template with `data` as `.`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// The fields the template prints directly (`{{.Repository}}\t{{.Tag}}` → `Repository`,
    /// `Tag`), for the headers of docker's `table` formats.
    pub fn printed_fields(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|node| match node {
                Node::Print(pipeline) => match pipeline.first()?.last()? {
                    Operand::Field(path) => path.last().cloned(),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

/// Which of the block-closing actions ended a list of nodes.
enum BlockEnd {
    Else,
    End,
}

type Item = Result<Action, String>;

/// Builds nodes until `{{else}}`, `{{end}}` or the end of input.
fn build(
    items: &mut impl Iterator<Item = Item>,
) -> Result<(Vec<Node>, Option<BlockEnd>), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(item) = items.next() {
        let action = match item {
            Err(text) => {
                nodes.push(Node::Text(text));
                continue;
            }
            Ok(action) => action,
        };
        let block = |items: &mut dyn Iterator<Item = Item>| -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
            let mut items = items;
            let (body, end) = build(&mut items)?;
            match end {
                Some(BlockEnd::End) => Ok((body, Vec::new())),
                Some(BlockEnd::Else) => match build(&mut items)? {
                    (otherwise, Some(BlockEnd::End)) => Ok((body, otherwise)),
                    _ => Err(error("{{else}} without its {{end}}")),
                },
                None => Err(error("a block has no {{end}}")),
            }
        };
        match action {
            Action::Print(pipeline) => nodes.push(Node::Print(pipeline)),
            Action::If(pipeline) => {
                let (body, otherwise) = block(items)?;
                nodes.push(Node::If(pipeline, body, otherwise));
            }
            Action::Range(pipeline) => {
                let (body, otherwise) = block(items)?;
                nodes.push(Node::Range(pipeline, body, otherwise));
            }
            Action::With(pipeline) => {
                let (body, otherwise) = block(items)?;
                nodes.push(Node::With(pipeline, body, otherwise));
            }
            Action::Else => return Ok((nodes, Some(BlockEnd::Else))),
            Action::End => return Ok((nodes, Some(BlockEnd::End))),
        }
    }
    Ok((nodes, None))
}

fn parse_action(body: &str) -> Result<Action, TemplateError> {
    let words = tokenize(body)?;
    let keyword = words.first().map(String::as_str);
    let rest = || parse_pipeline(&words[1..], body);
    Ok(match keyword {
        Some("if") => Action::If(rest()?),
        Some("range") => Action::Range(rest()?),
        Some("with") => Action::With(rest()?),
        Some("else") if words.len() == 1 => Action::Else,
        Some("end") if words.len() == 1 => Action::End,
        Some("else" | "end") => return Err(error(format!("unexpected words in {{{{{body}}}}}"))),
        _ => Action::Print(parse_pipeline(&words, body)?),
    })
}

/// Splits an action into words: quoted strings (kept with their quotes), `|`, and the rest at
/// spaces.
fn tokenize(body: &str) -> Result<Vec<String>, TemplateError> {
    let mut words = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                words.push("|".to_owned());
            }
            '"' | '`' => {
                let mut word = String::from(c);
                chars.next();
                let mut closed = false;
                while let Some(next) = chars.next() {
                    word.push(next);
                    if next == '\\' && c == '"' {
                        if let Some(escaped) = chars.next() {
                            word.push(escaped);
                        }
                    } else if next == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(error(format!("unterminated string in {{{{{body}}}}}")));
                }
                words.push(word);
            }
            _ => {
                let mut word = String::new();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || next == '|' {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                words.push(word);
            }
        }
    }
    Ok(words)
}

fn parse_pipeline(words: &[String], body: &str) -> Result<Pipeline, TemplateError> {
    let mut pipeline = Vec::new();
    for command in words.split(|w| w == "|") {
        if command.is_empty() {
            return Err(error(format!("missing value in {{{{{body}}}}}")));
        }
        let operands = command
            .iter()
            .map(|word| parse_operand(word))
            .collect::<Result<Vec<_>, _>>()?;
        pipeline.push(operands);
    }
    if pipeline.is_empty() {
        return Err(error("empty action {{}}"));
    }
    Ok(pipeline)
}

fn parse_operand(word: &str) -> Result<Operand, TemplateError> {
    if word == "." {
        return Ok(Operand::Field(Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        let fields: Vec<String> = path.split('.').map(str::to_owned).collect();
        if fields
            .iter()
            .any(|f| f.is_empty() || !f.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            return Err(error(format!("bad field {word:?}")));
        }
        return Ok(Operand::Field(fields));
    }
    if let Some(inner) = word.strip_prefix('`') {
        return Ok(Operand::String(inner.trim_end_matches('`').to_owned()));
    }
    if word.starts_with('"') {
        return serde_json::from_str::<String>(word)
            .map(Operand::String)
            .map_err(|_| error(format!("bad string {word}")));
    }
    if let Ok(number) = word.parse::<i64>() {
        return Ok(Operand::Number(number));
    }
    match word {
        "true" => Ok(Operand::Bool(true)),
        "false" => Ok(Operand::Bool(false)),
        name if FUNCTIONS.contains(&name) => Ok(Operand::Function(name.to_owned())),
        _ => Err(error(format!(
            "function {word:?} not defined (the functions are {})",
            FUNCTIONS.join(", ")
        ))),
    }
}

const FUNCTIONS: [&str; 12] = [
    "json", "join", "split", "lower", "upper", "title", "truncate", "pad", "println", "index",
    "len", "print",
];

fn render_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Print(pipeline) => out.push_str(&display(&evaluate(pipeline, dot)?)),
            Node::If(pipeline, body, otherwise) => {
                let chosen = if truthy(&evaluate(pipeline, dot)?) {
                    body
                } else {
                    otherwise
                };
                render_nodes(chosen, dot, out)?;
            }
            Node::With(pipeline, body, otherwise) => {
                let value = evaluate(pipeline, dot)?;
                if truthy(&value) {
                    render_nodes(body, &value, out)?;
                } else {
                    render_nodes(otherwise, dot, out)?;
                }
            }
            Node::Range(pipeline, body, otherwise) => {
                let items: Vec<Value> = match evaluate(pipeline, dot)? {
                    Value::Array(items) => items,
                    Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => {
                        return Err(error(format!(
                            "range can't iterate over {}",
                            display(&other)
                        )));
                    }
                };
                if items.is_empty() {
                    render_nodes(otherwise, dot, out)?;
                }
                for item in &items {
                    render_nodes(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn evaluate(pipeline: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in pipeline {
        let (head, rest) = command
            .split_first()
            .ok_or_else(|| error("empty command"))?;
        let mut args = rest
            .iter()
            .map(|operand| operand_value(operand, dot))
            .collect::<Result<Vec<_>, _>>()?;
        args.extend(piped.take());
        piped = Some(match head {
            Operand::Function(name) => call(name, &args)?,
            operand if args.is_empty() => operand_value(operand, dot)?,
            _ => return Err(error("only a function takes arguments")),
        });
    }
    piped.ok_or_else(|| error("empty pipeline"))
}

fn operand_value(operand: &Operand, dot: &Value) -> Result<Value, TemplateError> {
    Ok(match operand {
        Operand::Field(path) => {
            let mut value = dot;
            for name in path {
                value = match value {
                    Value::Object(map) => map.get(name).ok_or_else(|| {
                        error(format!(
                            "can't evaluate field {name} (the fields are {})",
                            map.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    })?,
                    // A nil map or pointer along the way, as Go's `<no value>`.
                    Value::Null => &Value::Null,
                    other => {
                        return Err(error(format!(
                            "can't evaluate field {name} in {}",
                            display(other)
                        )));
                    }
                };
            }
            value.clone()
        }
        Operand::String(text) => Value::String(text.clone()),
        Operand::Number(number) => Value::from(*number),
        Operand::Bool(flag) => Value::Bool(*flag),
        Operand::Function(name) => call(name, &[])?,
    })
}

fn call(name: &str, args: &[Value]) -> Result<Value, TemplateError> {
    let wrong = || error(format!("wrong arguments for {name}"));
    let text = |i: usize| args.get(i).map(display).ok_or_else(wrong);
    let number = |i: usize| args.get(i).and_then(Value::as_i64).ok_or_else(wrong);
    Ok(Value::String(match name {
        "json" => {
            let value = args.first().ok_or_else(wrong)?;
            serde_json::to_string(value).map_err(|e| error(e.to_string()))?
        }
        "join" => {
            let Some(Value::Array(items)) = args.first() else {
                return Err(wrong());
            };
            items
                .iter()
                .map(display)
                .collect::<Vec<_>>()
                .join(&text(1)?)
        }
        "split" => {
            let parts = text(0)?
                .split(text(1)?.as_str())
                .map(|p| Value::String(p.to_owned()))
                .collect();
            return Ok(Value::Array(parts));
        }
        "lower" => text(0)?.to_lowercase(),
        "upper" => text(0)?.to_uppercase(),
        "title" => {
            let text = text(0)?;
            let mut chars = text.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        "truncate" => text(0)?
            .chars()
            .take(usize::try_from(number(1)?).map_err(|_| wrong())?)
            .collect(),
        "pad" => {
            let width = |i| usize::try_from(number(i)?).map_err(|_| wrong());
            format!(
                "{}{}{}",
                " ".repeat(width(1)?),
                text(0)?,
                " ".repeat(width(2)?)
            )
        }
        "println" => format!(
            "{}\n",
            args.iter().map(display).collect::<Vec<_>>().join(" ")
        ),
        "print" => args.iter().map(display).collect::<Vec<_>>().concat(),
        "len" => match args.first() {
            Some(Value::Array(items)) => items.len().to_string(),
            Some(Value::Object(map)) => map.len().to_string(),
            Some(Value::String(text)) => text.len().to_string(),
            Some(Value::Null) => "0".to_owned(),
            _ => return Err(wrong()),
        },
        "index" => {
            let mut value = args.first().ok_or_else(wrong)?.clone();
            for key in &args[1..] {
                value = match (&value, key) {
                    (Value::Object(map), key) => {
                        map.get(&display(key)).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(items), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| items.get(usize::try_from(i).ok()?))
                        .cloned()
                        .ok_or_else(|| error(format!("index {n} out of range")))?,
                    (Value::Null, _) => Value::Null,
                    _ => return Err(wrong()),
                };
            }
            return Ok(value);
        }
        other => return Err(error(format!("function {other:?} not defined"))),
    }))
}

/// Go's truth: false, 0, "", null and empty lists and maps are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// A value as Go's `%v` prints it.
fn display(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) => {
            let mut out = String::from("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&display(item));
            }
            out.push(']');
            out
        }
        Value::Object(map) => {
            let mut out = String::from("map[");
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{key}:{}", display(item));
            }
            out.push(']');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: &Value) -> String {
        Template::parse(template)
            .and_then(|t| t.render(data))
            .unwrap_or_else(|e| panic!("{template}: {e}"))
    }

    #[test]
    fn fields_print_as_go_prints_them() {
        let data = json!({
            "Id": "sha256:abc",
            "Size": 1234,
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}, "User": ""},
            "Tags": [],
        });
        assert_eq!(render("{{.Id}}", &data), "sha256:abc");
        assert_eq!(render("{{.Config.Env}}", &data), "[A=1 B=2]");
        assert_eq!(render("{{.Config.Labels}}", &data), "map[a:1 b:2]");
        assert_eq!(render("{{.Tags}} {{.Size}}", &data), "[] 1234");
        assert_eq!(render("{{ .Id }}\n", &data), "sha256:abc\n");
        assert_eq!(render("{{json .Config.Env}}", &data), r#"["A=1","B=2"]"#);
        assert_eq!(
            render("{{.Config | json}}", &data),
            serde_json::to_string(&data["Config"]).unwrap()
        );
        assert_eq!(render(r#"{{join .Config.Env ","}}"#, &data), "A=1,B=2");
        assert_eq!(render(r#"{{index .Config.Labels "a"}}"#, &data), "1");
        assert_eq!(
            render(r#"{{index .Config.Labels "z"}}"#, &data),
            "<no value>"
        );
        assert_eq!(render("{{.Id | upper}}", &data), "SHA256:ABC");
        assert_eq!(render("{{truncate .Id 6}}", &data), "sha256");
        assert_eq!(render("{{len .Config.Env}}", &data), "2");
    }

    #[test]
    fn blocks_and_trimming() {
        let data = json!({"Env": ["A=1", "B=2"], "User": "", "Name": "app"});
        assert_eq!(render("{{range .Env}}{{.}};{{end}}", &data), "A=1;B=2;");
        assert_eq!(render("{{if .User}}u{{else}}root{{end}}", &data), "root");
        assert_eq!(render("{{with .Name}}[{{.}}]{{end}}", &data), "[app]");
        assert_eq!(
            render(
                "{{range .User}}x{{else}}none{{end}}",
                &json!({"User": null})
            ),
            "none"
        );
        assert_eq!(render("a  {{- .Name -}}  b", &data), "aappb");
    }

    #[test]
    fn mistakes_are_errors_not_empty_output() {
        let data = json!({"Repository": "app"});
        for (template, expected) in [
            (
                "{{.Repo}}",
                "can't evaluate field Repo (the fields are Repository)",
            ),
            ("{{.Repository", "unclosed action"),
            ("{{if .Repository}}x", "no {{end}}"),
            ("{{end}}", "unexpected {{end}}"),
            ("{{nosuch .Repository}}", "function \"nosuch\" not defined"),
        ] {
            let error = Template::parse(template)
                .and_then(|t| t.render(&data))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{template}: {error}");
        }
    }

    #[test]
    fn printed_fields_name_the_columns() {
        let template = Template::parse("{{.Repository}}\t{{.Tag}}\t{{.ID | upper}}").unwrap();
        assert_eq!(template.printed_fields(), ["Repository", "Tag", "ID"]);
    }
}
