//! The project's own example Dockerfiles must lint clean: no warnings and no errors (info
//! suggestions are allowed).

use stagecraft_lint::{LintOptions, Severity, lint_source, render_text};
use std::fs;
use std::path::Path;

#[test]
fn examples_lint_clean() {
    let examples = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
    let mut checked = 0;
    for entry in fs::read_dir(examples).expect("the examples directory") {
        let dir = entry.expect("a directory entry").path();
        let dockerfile = dir.join("Dockerfile");
        if !dockerfile.is_file() {
            continue;
        }
        let text = fs::read_to_string(&dockerfile).expect("a readable Dockerfile");
        let source = stagecraft_dockerfile::SourceFile::new(dockerfile.display().to_string(), text);
        let options = LintOptions {
            context_dir: Some(dir.clone()),
            ..LintOptions::default()
        };
        let findings = lint_source(source, &options);
        let serious: Vec<_> = findings
            .iter()
            .filter(|f| f.severity > Severity::Info)
            .cloned()
            .collect();
        assert!(serious.is_empty(), "{}", render_text(&serious));
        checked += 1;
    }
    assert!(checked > 0, "no example Dockerfiles found");
}
