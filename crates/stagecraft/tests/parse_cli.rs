//! `stagecraft parse` end to end: the JSON contract, the dump, and errors that point at the spot.

use assert_cmd::Command;
use predicates::prelude::*;
use std::io::Write;

fn stagecraft() -> Command {
    Command::cargo_bin("stagecraft").unwrap()
}

fn dockerfile(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn parse_json_text(text: &str) -> String {
    let file = dockerfile(text);
    let output = stagecraft()
        .args(["parse", "--json", "-f"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn parse_json(text: &str) -> serde_json::Value {
    serde_json::from_str(&parse_json_text(text)).unwrap()
}

#[test]
fn json_has_the_documented_shape() {
    let json = parse_json_text(
        "# syntax=docker/dockerfile:1\nFROM busybox AS build\n\
         COPY --from=build \\\n  --chown=1000:1000 /src/app /app\n\
         ENV a=b c=\"d e\"\nENV legacy value here\n\
         RUN <<EOF\necho $a\nEOF\n\
         ONBUILD RUN [\"echo\", \"hi\"]\nHEALTHCHECK CMD x\n",
    );
    insta::assert_snapshot!(json);
}

#[test]
fn exec_form_and_shell_form_are_told_apart() {
    let json = parse_json("FROM a\nCMD [\"a\", \"b\"]\nCMD ['a']\nENTRYPOINT [\"x\",]\n");
    let instructions = json["instructions"].as_array().unwrap();
    assert_eq!(instructions[1]["json"], true);
    assert_eq!(instructions[1]["args"], serde_json::json!(["a", "b"]));
    // Invalid JSON falls back to shell form, exactly as BuildKit does.
    assert_eq!(instructions[2]["json"], false);
    assert_eq!(instructions[2]["args"], serde_json::json!(["['a']"]));
    assert_eq!(instructions[3]["args"], serde_json::json!(["[\"x\",]"]));
}

#[test]
fn escape_directive_changes_continuations() {
    let json = parse_json("# escape=`\nFROM a\nRUN dir c:\\ `\n  /s\n");
    assert_eq!(json["directives"]["escape"], "`");
    assert_eq!(
        json["instructions"][1]["args"],
        serde_json::json!(["dir c:\\   /s"])
    );
    assert_eq!(json["instructions"][1]["start_line"], 3);
    assert_eq!(json["instructions"][1]["end_line"], 4);
}

#[test]
fn unknown_instruction_is_an_error_with_location_caret_and_hint() {
    let file = dockerfile("FROM busybox\n  FORM x\n");
    stagecraft()
        .args(["parse", "-f"])
        .arg(file.path())
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("unknown instruction: FORM"))
        .stderr(predicate::str::contains(":2:3\n"))
        .stderr(predicate::str::contains("2 |   FORM x\n  |   ^"))
        .stderr(predicate::str::contains("help: did you mean FROM?"));
}

#[test]
fn non_string_json_array_is_an_error_at_the_element() {
    let file = dockerfile("FROM a\nCMD [\"echo\", 1]\n");
    stagecraft()
        .args(["parse", "--json", "-f"])
        .arg(file.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "when using JSON array syntax, arrays must be comprised of strings only",
        ))
        .stderr(predicate::str::contains(":2:14"));
}

#[test]
fn empty_continuation_line_is_only_a_warning() {
    let file = dockerfile("FROM a\nRUN echo \\\n\n  ok\n");
    stagecraft()
        .args(["parse", "-f"])
        .arg(file.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("(run \"echo   ok\")"))
        .stderr(predicate::str::contains("Empty continuation line"));
}

#[test]
fn reads_standard_input_and_prints_the_dump_with_lines() {
    stagecraft()
        .args(["parse", "-f", "-"])
        .write_stdin("FROM a\nRUN x \\\n  y\n")
        .assert()
        .success()
        .stdout("      1  (from \"a\")\n    2-3  (run \"x   y\")\n");
}

#[test]
fn missing_file_says_how_to_fix_it() {
    stagecraft()
        .args(["parse", "-f", "/nonexistent/Dockerfile"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot read Dockerfile /nonexistent/Dockerfile",
        ));
}
