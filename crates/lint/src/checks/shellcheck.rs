//! Shell scripts in `RUN`, checked by ShellCheck when it is installed (as hadolint does): one
//! `shellcheck` process for all the scripts of the file, each written to a file of its own
//! whose `#!` line names the stage's shell, and its findings mapped back to the Dockerfile.
//!
//! A script keeps its lines: the Dockerfile's `\` continuations are the shell's too, so a
//! script line is a Dockerfile line. Comment and empty lines inside a continuation, which the
//! Dockerfile drops, become a lone `\`, and blanks after a continuing `\` go (the shell would
//! read `\ ` as an escaped space). The variables the stage's `ARG`s and `ENV`s define are
//! assigned on a header line, so that ShellCheck does not take them for unassigned; findings
//! on the header are dropped.

use crate::ShellCheck;
use crate::model::{At, Ctx, Sink, is_shell_body, whole_heredoc};
use crate::rules::{self, Severity};
use serde::Deserialize;
use stagecraft_dockerfile::{Arguments, CommandKind, Dockerfile, Instruction};
use std::path::{Path, PathBuf};

/// The build arguments every build predefines in lowercase (BuildKit's proxy arguments).
const PREDEFINED: [&str; 5] = [
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "all_proxy",
];

/// ShellCheck's checks of things a Dockerfile's scripts cannot have: a `source`d file of the
/// image (SC1090, SC1091) is not in the context.
const EXCLUDED: &str = "SC1090,SC1091";

/// One script to check.
struct Script<'a> {
    /// The file ShellCheck reads: `#!` line, variables header, the script's lines.
    text: String,
    /// How many lines precede the script's first line.
    header_lines: usize,
    /// The Dockerfile line of the script's first line.
    first_line: usize,
    /// How many characters precede the script on its first line.
    first_column: usize,
    /// The RUN instruction.
    instruction: &'a Instruction,
}

pub(super) fn check(ctx: &Ctx<'_>, sink: &mut Sink<'_>, program_asked: &ShellCheck) {
    if *program_asked == ShellCheck::Off {
        return;
    }
    let file = ctx.model.file;
    let scripts = scripts(ctx);
    let Some(first) = scripts.first() else {
        return;
    };
    let program = match program_asked {
        ShellCheck::Off => None,
        ShellCheck::Auto => find_on_path("shellcheck"),
        ShellCheck::Program(path) => Some(path.clone()).filter(|path| path.is_file()),
    };
    let at_first = At::instruction(first.instruction);
    let Some(program) = program else {
        let missing = match program_asked {
            ShellCheck::Program(path) => format!("there is no ShellCheck at {}", path.display()),
            _ => "ShellCheck is not installed".to_owned(),
        };
        sink.report(
            &rules::ShellCheck,
            at_first,
            format!(
                "{missing}: the shell scripts of {} RUN instruction{} were not checked",
                scripts.len(),
                if scripts.len() == 1 { "" } else { "s" }
            ),
            "install it (Debian, Ubuntu: apt-get install shellcheck; macOS: brew install shellcheck), or pass --shellcheck=off",
        );
        return;
    };
    match run(&program, &scripts) {
        Ok(comments) => {
            for comment in comments {
                report(file, sink, &scripts, &comment);
            }
        }
        Err(error) => sink.report(
            &rules::ShellCheck,
            at_first,
            format!("ShellCheck could not check the RUN scripts: {error}"),
            "run the shellcheck command alone to see why (is it a working ShellCheck?)",
        ),
    }
}

/// The shell dialect ShellCheck knows a `SHELL` by (`/bin/bash` → `bash`); `None` for shells
/// it cannot check (PowerShell, cmd, zsh, fish, …).
fn dialect(shell: &[String]) -> Option<&'static str> {
    let program = shell.first()?;
    let name = Path::new(program).file_name()?.to_str()?;
    Some(match name {
        "sh" | "ash" | "busybox" => "sh",
        "bash" => "bash",
        "dash" => "dash",
        "ksh" | "mksh" | "ksh93" => "ksh",
        _ => return None,
    })
}

/// The shell-form RUN scripts of the linted stages, with the shell each runs in.
fn scripts<'a>(ctx: &Ctx<'a>) -> Vec<Script<'a>> {
    let file = ctx.model.file;
    let mut scripts = Vec::new();
    for view in ctx.linted() {
        let index = view.stage.index;
        if ctx.is_windows(index) {
            continue;
        }
        let mut shell = vec!["/bin/sh".to_owned(), "-c".to_owned()];
        // What RUN's environment has: the stage chain's ARGs (with or without a default: a
        // --build-arg may give the value) and ENVs. A global ARG is not in it unless the
        // stage declares it again.
        let mut variables: Vec<String> = Vec::new();
        for (step, own) in ctx.steps_through(index) {
            match &step.command.kind {
                CommandKind::Shell(words) => shell.clone_from(words),
                CommandKind::Arg(declarations) => {
                    variables.extend(declarations.iter().map(|d| d.name.clone()));
                }
                CommandKind::Env(pairs) => {
                    variables.extend(pairs.iter().map(|pair| pair.key.value.clone()));
                }
                CommandKind::Run(run) if own && run.command.prepend_shell => {
                    if let Some(dialect) = dialect(&shell) {
                        scripts.extend(script(file, step.instruction, dialect, &variables));
                    }
                }
                _ => {}
            }
        }
    }
    scripts
}

/// The script of a shell-form RUN for ShellCheck, `None` when it has none to check (a
/// heredoc in another language).
fn script<'a>(
    file: &Dockerfile,
    instruction: &'a Instruction,
    dialect: &str,
    variables: &[String],
) -> Option<Script<'a>> {
    let Arguments::List(words) = &instruction.args else {
        return None;
    };
    let word = words.first()?;
    let source = file.source.text();
    let header = |variables: &[String]| {
        let mut names: Vec<&str> = variables
            .iter()
            .map(String::as_str)
            .chain(PREDEFINED)
            .filter(|name| is_identifier(name))
            .collect();
        names.sort_unstable();
        names.dedup();
        let assignments: Vec<String> = names.iter().map(|name| format!("{name}=''")).collect();
        format!("#!/bin/{dialect}\n{}\n", assignments.join(" "))
    };
    if let Some(heredoc) = whole_heredoc(&word.value, instruction) {
        let body = source.get(heredoc.span.start..heredoc.span.end)?;
        if !is_shell_body(body) {
            return None;
        }
        let first_line = file.source.position(heredoc.span.start).line;
        // A body with its own `#!` line keeps it: ShellCheck reads the dialect there.
        let (text, header_lines) = if body.starts_with("#!") {
            (body.to_owned(), 0)
        } else {
            (format!("{}{body}", header(variables)), 2)
        };
        return Some(Script {
            text,
            header_lines,
            first_line,
            first_column: 0,
            instruction,
        });
    }
    let start = file.source.position(word.span.start);
    let end = end_of_line(source, instruction.end_line);
    let raw = source.get(word.span.start..end)?;
    Some(Script {
        text: format!("{}{}", header(variables), shell_lines(raw, file.escape)),
        header_lines: 2,
        first_line: start.line,
        first_column: start.column - 1,
        instruction,
    })
}

/// The byte offset where 1-based line `line` of `text` ends (its newline excluded).
fn end_of_line(text: &str, line: usize) -> usize {
    text.match_indices('\n')
        .nth(line.saturating_sub(1))
        .map_or(text.len(), |(at, _)| at)
}

/// A RUN's lines as the shell reads them, one for one: inside a continuation, the comment
/// and empty lines the Dockerfile drops become a lone escape (a continuation of nothing), and
/// blanks after a continuing escape go. Lines after the command (heredoc bodies) are kept.
fn shell_lines(raw: &str, escape: char) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_command = true;
    for (index, line) in raw.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        if !in_command {
            out.push_str(line);
            continue;
        }
        let trimmed = line.trim_start();
        if index > 0 && (trimmed.is_empty() || trimmed.starts_with('#')) {
            out.push(escape);
            continue;
        }
        let kept = line.trim_end();
        in_command = kept.ends_with(escape);
        out.push_str(if in_command { kept } else { line });
    }
    out
}

/// Whether `name` can be assigned in a shell.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The first executable file called `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// One finding of ShellCheck's `json1` output (columns count a tab as one character).
#[derive(Debug, Deserialize)]
struct Comment {
    file: String,
    line: usize,
    column: usize,
    level: String,
    code: u32,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Output {
    comments: Vec<Comment>,
}

/// Why running ShellCheck failed.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it exited with {status}: {stderr}")]
    Failed { status: String, stderr: String },
    #[error("its output is not the JSON expected: {0}")]
    Output(#[from] serde_json::Error),
}

/// Runs ShellCheck once on every script.
fn run(program: &Path, scripts: &[Script<'_>]) -> Result<Vec<Comment>, RunError> {
    let dir = tempfile::tempdir()?;
    let mut paths = Vec::with_capacity(scripts.len());
    for (index, script) in scripts.iter().enumerate() {
        let path = dir.path().join(index.to_string());
        std::fs::write(&path, &script.text)?;
        paths.push(path);
    }
    let output = std::process::Command::new(program)
        .args(["--format=json1", "--norc", "--exclude", EXCLUDED])
        .args(&paths)
        .stdin(std::process::Stdio::null())
        .output()?;
    // 0: nothing found; 1: findings.
    if !matches!(output.status.code(), Some(0 | 1)) {
        return Err(RunError::Failed {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let output: Output = serde_json::from_slice(&output.stdout)?;
    let mut comments = output.comments;
    // The file names are the scripts' indexes.
    for comment in &mut comments {
        if let Some(name) = Path::new(&comment.file).file_name() {
            comment.file = name.to_string_lossy().into_owned();
        }
    }
    Ok(comments)
}

/// Reports one ShellCheck finding at its place in the Dockerfile.
fn report(file: &Dockerfile, sink: &mut Sink<'_>, scripts: &[Script<'_>], comment: &Comment) {
    let Some(script) = comment
        .file
        .parse::<usize>()
        .ok()
        .and_then(|index| scripts.get(index))
    else {
        return;
    };
    let Some(line) = comment.line.checked_sub(script.header_lines + 1) else {
        return;
    };
    let column = if line == 0 {
        comment.column + script.first_column
    } else {
        comment.column
    };
    let severity = match comment.level.as_str() {
        "error" | "warning" => Severity::Warning,
        _ => Severity::Info,
    };
    let code = format!("SC{:04}", comment.code);
    let url = format!("https://www.shellcheck.net/wiki/{code}");
    sink.report_external(
        &rules::ShellCheck,
        code.clone(),
        url.clone(),
        severity,
        (script.first_line + line, column, &script.instruction.comments),
        comment.message.clone(),
        format!(
            "see {url}; to silence it here, put `# check=skip={code}` right above the RUN (or at the top of {} for the whole file)",
            file.source.name()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_stay_lines() {
        let raw =
            "apt-get update && \\  \n    # a comment\n\n    apt-get install -y curl\nnot part";
        assert_eq!(
            shell_lines(raw, '\\'),
            "apt-get update && \\\n\\\n\\\n    apt-get install -y curl\nnot part"
        );
        // After the command, heredoc bodies are kept as they are.
        assert_eq!(
            shell_lines("cat <<EOF\n# not a comment\n\nEOF", '\\'),
            "cat <<EOF\n# not a comment\n\nEOF"
        );
    }

    #[test]
    fn dialects() {
        let shell = |s: &[&str]| dialect(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(shell(&["/bin/bash", "-o", "pipefail", "-c"]), Some("bash"));
        assert_eq!(shell(&["/bin/ash", "-eo", "pipefail", "-c"]), Some("sh"));
        assert_eq!(shell(&["dash", "-c"]), Some("dash"));
        assert_eq!(shell(&["pwsh", "-Command"]), None);
        assert_eq!(shell(&["cmd", "/S", "/C"]), None);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("http_proxy") && is_identifier("_X1"));
        assert!(!is_identifier("1x") && !is_identifier("a-b") && !is_identifier(""));
    }
}
