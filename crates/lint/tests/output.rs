//! The entry points, the `# check=` directive, exit codes and the three output formats.

mod common;

use common::{lint_text, lint_with, of};
use stagecraft_dockerfile::SourceFile;
use stagecraft_lint::{
    ErrorOn, Format, LintOptions, RULES, Severity, exit_code, lint_source, render, render_json,
    render_sarif, render_text,
};

/// One Dockerfile with problems of every kind, for the snapshots.
const MANY_PROBLEMS: &str = r#"FROM node:20 AS Build
WORKDIR app
COPY . .
RUN npm install && npm run build

FROM node:20
COPY --from=Build /app/dist /srv
ENV API_TOKEN=changeme
CMD node /srv/server.js
"#;

#[test]
fn text_output() {
    insta::assert_snapshot!(render_text(&lint_text(MANY_PROBLEMS)));
}

#[test]
fn json_output() {
    insta::assert_snapshot!(render_json(&lint_text(MANY_PROBLEMS)));
}

#[test]
fn json_is_one_array_of_flat_objects() {
    let json: serde_json::Value =
        serde_json::from_str(&render(Format::Json, &lint_text(MANY_PROBLEMS))).unwrap();
    let findings = json.as_array().expect("an array");
    assert!(!findings.is_empty());
    for finding in findings {
        // (serde_json's map sorts keys; the snapshot shows the written order.)
        let keys: Vec<&str> = finding
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "column", "file", "hint", "line", "message", "rule", "severity", "url"
            ]
        );
    }
    assert_eq!(render_json(&[]), "[]\n");
}

#[test]
fn sarif_output_is_a_valid_log() {
    let findings = lint_text(MANY_PROBLEMS);
    let log: serde_json::Value = serde_json::from_str(&render_sarif(&findings)).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "stagecraft");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    for (result, finding) in results.iter().zip(&findings) {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], finding.rule.as_ref());
        assert_eq!(result["ruleId"], finding.rule.as_ref());
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        let region = &result["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], finding.line);
        assert_eq!(region["startColumn"], finding.column);
        assert_eq!(result["message"]["text"], finding.message.as_str());
    }
    // Each rule carries its whole page: the log explains itself wherever it is viewed.
    for rule in rules {
        let id = rule["id"].as_str().unwrap();
        let markdown = rule["help"]["markdown"].as_str().unwrap();
        assert!(markdown.starts_with(&format!("# {id}\n")), "{id}");
        let full = rule["fullDescription"]["text"].as_str().unwrap();
        assert!(
            full.len() > rule["shortDescription"]["text"].as_str().unwrap().len(),
            "{id}"
        );
        assert!(
            markdown.contains(full) && !full.contains("## "),
            "{id}: {full}"
        );
    }
    let empty: serde_json::Value = serde_json::from_str(&render_sarif(&[])).unwrap();
    assert_eq!(empty["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn text_output_when_clean() {
    assert_eq!(render_text(&[]), "No problems found.\n");
}

#[test]
fn formats_and_levels_parse_from_flags() {
    assert_eq!("sarif".parse::<Format>(), Ok(Format::Sarif));
    assert!("xml".parse::<Format>().is_err());
    assert_eq!("warning".parse::<ErrorOn>(), Ok(ErrorOn::Warning));
    assert!("info".parse::<ErrorOn>().is_err());
}

#[test]
fn exit_code_follows_error_on() {
    let warnings = lint_text("FROM alpine:3.20\nUSER 1000\nCMD echo hi\n");
    assert!(warnings.iter().all(|f| f.severity == Severity::Warning));
    assert_eq!(exit_code(&warnings, ErrorOn::Error), 0);
    assert_eq!(exit_code(&warnings, ErrorOn::Warning), 1);
    let info_only = lint_text("FROM alpine:3.20 AS unused\nFROM alpine:3.20\n");
    assert!(info_only.iter().all(|f| f.severity == Severity::Info));
    assert_eq!(exit_code(&info_only, ErrorOn::Warning), 0);
    assert_eq!(exit_code(&[], ErrorOn::Warning), 0);
}

#[test]
fn check_directive_skips_rules() {
    let text = "# check=skip=JSONArgsRecommended,StageNameCasing\nFROM alpine:3.20 AS Web\nUSER 1000\nCMD echo hi\n";
    assert!(lint_text(text).is_empty());
    let all = "# check=skip=all\nFROM alpine AS Web\nCMD echo hi\n";
    assert!(lint_text(all).is_empty());
}

#[test]
fn check_directive_error_true_makes_warnings_errors() {
    let findings = lint_text(
        "# check=error=true\nFROM alpine:3.20 AS unused\nFROM alpine:3.20\nCMD echo hi\n",
    );
    let json = of(&findings, "JSONArgsRecommended");
    assert_eq!(json[0].severity, Severity::Error);
    // Info stays info.
    assert_eq!(
        of(&findings, "UnreachableStage")[0].severity,
        Severity::Info
    );
    assert_eq!(exit_code(&findings, ErrorOn::Error), 1);
}

#[test]
fn comments_above_an_instruction_skip_rules_for_it() {
    let text = "FROM alpine:3.20\n# check=skip=JSONArgsRecommended (we need the shell)\nCMD echo $HOME\nENTRYPOINT top\n";
    let findings = lint_text(text);
    let json = of(&findings, "JSONArgsRecommended");
    assert_eq!(json.len(), 1);
    assert_eq!(json[0].line, 4);
}

#[test]
fn build_arg_replaces_the_check_directive() {
    let options = LintOptions {
        build_args: [(
            "BUILDKIT_DOCKERFILE_CHECK".to_owned(),
            "skip=JSONArgsRecommended".to_owned(),
        )]
        .into(),
        ..LintOptions::default()
    };
    let findings = lint_with(
        "# check=error=true\nFROM alpine:3.20\nUSER 1000\nCMD echo hi\n",
        &options,
    );
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn unreadable_check_directive_is_a_build_error() {
    let findings = lint_text("# check=skip=A;colour=red\nFROM alpine:3.20\nCMD echo hi\n");
    let errors = of(&findings, "BuildError");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "failed to parse check options: invalid check option \"colour\""
    );
    assert_eq!((errors[0].line, errors[0].column), (1, 9));
    // The rules still run, with the default configuration.
    assert_eq!(of(&findings, "JSONArgsRecommended").len(), 1);
}

#[test]
fn files_that_do_not_build_are_build_errors() {
    let parse_error = lint_source(
        SourceFile::new("Dockerfile", "FROM alpine:3.20\nFORM x\n"),
        &LintOptions::default(),
    );
    assert_eq!(parse_error.len(), 1);
    assert_eq!(parse_error[0].rule, "BuildError");
    assert_eq!(
        (parse_error[0].line, parse_error[0].severity),
        (2, Severity::Error)
    );
    assert_eq!(parse_error[0].hint, "did you mean FROM?");

    let no_stage = lint_text("RUN true\n");
    assert_eq!(no_stage[0].rule, "BuildError");

    // Plan errors come after the checks BuildKit runs before it fails.
    let cycle = lint_text(
        "FROM alpine:3.20 AS a\nCOPY --from=b /x /x\nFROM alpine:3.20 AS b\nCOPY --from=a /y /y\n",
    );
    assert!(
        of(&cycle, "BuildError")[0]
            .message
            .contains("circular dependency")
    );
    let blank = lint_text("ARG BASE\nFROM ${BASE}\n");
    assert_eq!(of(&blank, "InvalidDefaultArgInFrom").len(), 1);
    assert_eq!(of(&blank, "BuildError").len(), 1);

    let unknown_target = lint_with(
        "FROM alpine:3.20 AS app\n",
        &LintOptions {
            target: Some("ap".into()),
            ..LintOptions::default()
        },
    );
    assert_eq!(
        unknown_target[0].message,
        "target stage \"ap\" could not be found (did you mean app?)"
    );
}

#[test]
fn build_errors_cannot_be_skipped() {
    let findings = lint_text("# check=skip=all\nFROM alpine:3.20 AS a\nCOPY --from=a /x /x\n");
    assert_eq!(of(&findings, "BuildError").len(), 1);
}

#[test]
fn every_finding_links_its_rule_page() {
    for finding in lint_text(MANY_PROBLEMS) {
        assert_eq!(finding.url, format!("docs/rules/{}.md", finding.rule));
        assert!(!finding.hint.is_empty());
    }
    assert!(RULES.iter().any(|r| r.id == "BuildError"));
}
