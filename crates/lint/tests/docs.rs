//! Every rule has a documentation page explaining why, with a bad and a good example.

use stagecraft_lint::RULES;
use std::fs;
use std::path::Path;

#[test]
fn every_rule_has_a_page_with_examples() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for rule in RULES {
        let page = root.join(rule.url);
        let text = fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.starts_with(&format!("# {}\n", rule.id)),
            "{}: title",
            rule.id
        );
        for section in ["## Why", "## Bad", "## Good"] {
            assert!(
                text.contains(section),
                "{}: no `{section}` section",
                rule.id
            );
        }
        assert!(
            text.matches("```dockerfile").count() >= 2,
            "{}: needs a bad and a good Dockerfile example",
            rule.id
        );
        assert!(
            text.contains(rule.severity.as_str()),
            "{}: severity not stated",
            rule.id
        );
    }
}

#[test]
fn every_page_belongs_to_a_rule() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rules"));
    for entry in fs::read_dir(dir).expect("docs/rules") {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(id) = name.strip_suffix(".md") else {
            continue;
        };
        assert!(
            id == "README" || RULES.iter().any(|r| r.id == id),
            "docs/rules/{name} documents no rule"
        );
    }
}

/// The first Dockerfile example after `heading` in a rule page.
fn example<'a>(page: &'a str, heading: &str) -> &'a str {
    let after = &page[page.find(heading).expect("the section")..];
    let start = after.find("```dockerfile\n").expect("an example") + "```dockerfile\n".len();
    let end = after[start..].find("```").expect("a closed example");
    &after[start..start + end]
}

/// A build context for an example, from its `# context: a b/` and
/// `# .dockerignore contains: p, q` comment lines.
fn example_context(example: &str) -> Option<tempfile::TempDir> {
    let files = example
        .lines()
        .find_map(|l| l.strip_prefix("# context: "))
        .unwrap_or("");
    let ignore = example
        .lines()
        .find_map(|l| l.strip_prefix("# .dockerignore contains: "));
    if files.is_empty() && ignore.is_none() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    for file in files.split_whitespace() {
        let path = dir.path().join(file);
        if file.ends_with('/') {
            fs::create_dir_all(path.join("placeholder")).unwrap();
            fs::write(path.join("placeholder/file"), "").unwrap();
        } else {
            fs::write(path, "x").unwrap();
        }
    }
    if let Some(patterns) = ignore {
        let lines: Vec<&str> = patterns.split(',').map(str::trim).collect();
        fs::write(dir.path().join(".dockerignore"), lines.join("\n")).unwrap();
    }
    Some(dir)
}

/// The examples in the documentation are true: the bad one triggers the rule, the good one
/// does not (image checks and other tools: neither, from the Dockerfile alone).
#[test]
fn page_examples_behave_as_documented() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    for rule in RULES {
        let page = fs::read_to_string(root.join(rule.url)).unwrap();
        for (heading, should_fire) in [("## Bad", true), ("## Good", false)] {
            let text = example(&page, heading);
            let context = example_context(text);
            let options = stagecraft_lint::LintOptions {
                context_dir: context.as_ref().map(|d| d.path().to_path_buf()),
                ..Default::default()
            };
            let findings = stagecraft_lint::lint_source(
                stagecraft_dockerfile::SourceFile::new("Dockerfile", text),
                &options,
            );
            let fired = findings.iter().any(|f| f.rule == rule.id);
            // Image checks look at a built image, never at the Dockerfile alone: their
            // examples are builds, tried in the stagecraft crate's end-to-end tests. Other
            // tools' findings carry the tool's codes (tests/shellcheck.rs tries ShellCheck's).
            let should_fire = should_fire
                && !matches!(
                    rule.origin,
                    stagecraft_lint::Origin::Image | stagecraft_lint::Origin::Tool
                );
            assert_eq!(
                fired,
                should_fire,
                "{} {heading} example:\n{text}\n{}",
                rule.id,
                stagecraft_lint::render_text(&findings)
            );
        }
    }
}
