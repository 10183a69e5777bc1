//! RUN scripts checked by the real ShellCheck (installed by `scripts/setup.sh`): findings at
//! their Dockerfile line and column, the stage's shell as the dialect, one process a file.

use stagecraft_lint::{Finding, LintOptions, Severity, ShellCheck, lint};
use std::path::PathBuf;

/// The installed ShellCheck.
fn shellcheck() -> PathBuf {
    let path = PathBuf::from("/usr/bin/shellcheck");
    assert!(
        path.exists(),
        "ShellCheck is not installed: run scripts/setup.sh (apt-get install shellcheck)"
    );
    path
}

fn lint_with(text: &str, shellcheck: ShellCheck) -> Vec<Finding> {
    let file = stagecraft_dockerfile::parse_str("Dockerfile", text).unwrap();
    lint(
        &file,
        &LintOptions {
            shellcheck,
            ..LintOptions::default()
        },
    )
}

/// `(code, line, column)` of the ShellCheck findings.
fn codes(text: &str) -> Vec<(String, usize, usize)> {
    lint_with(text, ShellCheck::Program(shellcheck()))
        .into_iter()
        .filter(|f| f.rule.starts_with("SC"))
        .map(|f| (f.rule.into_owned(), f.line, f.column))
        .collect()
}

fn has(found: &[(String, usize, usize)], code: &str, line: usize, column: usize) -> bool {
    found.iter().any(|f| *f == (code.to_owned(), line, column))
}

#[test]
fn findings_point_at_the_dockerfile_line_and_column() {
    let text = "FROM debian:bookworm-slim\n\
                RUN --mount=type=cache,target=/var/cache/apt apt-get update && \\\n\
                \x20   # the packages\n\
                \n\
                \x20   apt-get install -y $packages && \\\n\
                \x20   cd /opt; ls\n";
    let found = codes(text);
    // `$packages` on line 5, column 24; `cd` without `|| exit` on line 6, column 5.
    assert!(has(&found, "SC2086", 5, 24), "{found:?}");
    assert!(has(&found, "SC2164", 6, 5), "{found:?}");
    // On the first line, columns count from the start of the Dockerfile line.
    let found = codes("FROM alpine\nRUN --network=none echo $x\n");
    assert!(
        has(&found, "SC2154", 2, 25) && has(&found, "SC2086", 2, 25),
        "{found:?}"
    );
}

#[test]
fn the_stages_shell_is_the_dialect() {
    let posix = codes("FROM alpine\nRUN [[ -f /x ]] && echo yes\n");
    assert!(posix.iter().any(|(code, ..)| code == "SC3010"), "{posix:?}");
    let bash = codes(
        "FROM debian\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nRUN [[ -f /x ]] && echo yes\n",
    );
    assert!(bash.is_empty(), "{bash:?}");
    // Shells ShellCheck does not know, and exec form, are left alone.
    let pwsh =
        codes("FROM mcr.microsoft.com/powershell\nSHELL [\"pwsh\", \"-Command\"]\nRUN echo $x\n");
    assert!(pwsh.is_empty(), "{pwsh:?}");
    assert!(codes("FROM alpine\nRUN [\"sh\", \"-c\", \"echo $x\"]\n").is_empty());
}

#[test]
fn variables_the_dockerfile_defines_are_assigned() {
    let found = codes(
        "ARG version=1\nARG global=1\nFROM alpine\nARG version\nARG target\nENV home_dir=/srv\nRUN echo \"$version $target $home_dir $http_proxy $global\"\n",
    );
    // A global ARG is not in RUN's environment unless the stage declares it again.
    let unassigned: Vec<_> = found.iter().filter(|(c, ..)| c == "SC2154").collect();
    assert_eq!(unassigned.len(), 1, "{found:?}");
    assert_eq!((unassigned[0].1, unassigned[0].2), (7, 50));
}

#[test]
fn a_heredoc_script_maps_to_its_body() {
    let found = codes(
        "FROM alpine\nRUN <<EOF\necho hi\ncd /x\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint($x)\nEOF\n",
    );
    assert_eq!(found, [("SC2164".to_owned(), 4, 1)], "{found:?}");
}

#[test]
fn check_skip_turns_codes_off() {
    let text = "FROM alpine\n# check=skip=SC2086\nRUN echo $x\nRUN echo $y\n";
    let found = codes(text);
    assert!(
        !has(&found, "SC2086", 3, 10) && has(&found, "SC2086", 4, 10),
        "{found:?}"
    );
    assert!(codes(&format!("# check=skip=ShellCheck\n{text}")).is_empty());
    assert!(codes(&format!("# check=skip=SC2086,SC2154\n{text}")).is_empty());
}

#[test]
fn warnings_and_notes_keep_their_weight_and_point_at_the_wiki() {
    let findings = lint_with(
        "FROM alpine\nRUN cd /x\nRUN echo $1\n",
        ShellCheck::Program(shellcheck()),
    );
    let cd = findings.iter().find(|f| f.rule == "SC2164").unwrap();
    assert_eq!(cd.severity, Severity::Warning);
    assert_eq!(cd.url, "https://www.shellcheck.net/wiki/SC2164");
    let quote = findings.iter().find(|f| f.rule == "SC2086").unwrap();
    assert_eq!(quote.severity, Severity::Info);
    let text = stagecraft_lint::render_text(&findings);
    assert!(
        text.contains("= docs: https://www.shellcheck.net/wiki/SC2164"),
        "{text}"
    );
    let sarif: serde_json::Value =
        serde_json::from_str(&stagecraft_lint::render_sarif(&findings)).unwrap();
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let rule = rules.iter().find(|r| r["id"] == "SC2164").unwrap();
    assert_eq!(rule["helpUri"], "https://www.shellcheck.net/wiki/SC2164");
    for result in sarif["runs"][0]["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }
}

#[test]
fn without_shellcheck_one_note_says_so_and_off_means_off() {
    let text = "FROM alpine\nRUN echo $x\nRUN cd /y\n";
    let findings = lint_with(
        text,
        ShellCheck::Program(PathBuf::from("/nonexistent/shellcheck")),
    );
    let notes: Vec<_> = findings.iter().filter(|f| f.rule == "ShellCheck").collect();
    assert_eq!(notes.len(), 1, "{findings:#?}");
    assert_eq!((notes[0].line, notes[0].severity), (2, Severity::Info));
    assert!(
        notes[0]
            .message
            .contains("2 RUN instructions were not checked")
    );
    assert!(
        lint_with(text, ShellCheck::Off)
            .iter()
            .all(|f| !f.rule.starts_with("S"))
    );
}

#[test]
fn one_shellcheck_process_checks_every_script_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let wrapper = dir.path().join("shellcheck");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho call >> {}\nexec {} \"$@\"\n",
            log.display(),
            shellcheck().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut text = String::from("FROM alpine\n");
    for i in 0..20 {
        text.push_str(&format!("RUN cd /dir{i}\n"));
    }
    let findings = lint_with(&text, ShellCheck::Program(wrapper));
    assert_eq!(findings.iter().filter(|f| f.rule == "SC2164").count(), 20);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "call\n");
}
