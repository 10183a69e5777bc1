//! Helpers shared by the rule tests.

#![allow(dead_code)] // each test binary uses its own subset

use stagecraft_lint::{Finding, LintOptions, lint};
use std::path::Path;

/// Lints a Dockerfile given as text, panicking (with the rendered error) if it does not parse.
pub(crate) fn lint_text(text: &str) -> Vec<Finding> {
    lint_with(text, &LintOptions::default())
}

/// Lints with options.
pub(crate) fn lint_with(text: &str, options: &LintOptions) -> Vec<Finding> {
    let file = stagecraft_dockerfile::parse_str("Dockerfile", text)
        .unwrap_or_else(|e| panic!("{}", e.render()));
    lint(&file, options)
}

/// Lints with a build context directory.
pub(crate) fn lint_in(text: &str, context: &Path) -> Vec<Finding> {
    lint_with(
        text,
        &LintOptions {
            context_dir: Some(context.to_path_buf()),
            ..LintOptions::default()
        },
    )
}

/// The findings of one rule.
pub(crate) fn of<'a>(findings: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.rule == rule).collect()
}

/// Asserts `rule` fires on `text`; returns its findings.
#[track_caller]
pub(crate) fn fires(rule: &str, text: &str) -> Vec<Finding> {
    let findings = lint_text(text);
    assert!(
        findings.iter().any(|f| f.rule == rule),
        "{rule} did not fire on:\n{text}\nfindings: {:#?}",
        findings
    );
    findings.into_iter().filter(|f| f.rule == rule).collect()
}

/// Asserts `rule` stays quiet on `text`.
#[track_caller]
pub(crate) fn quiet(rule: &str, text: &str) {
    let findings = lint_text(text);
    let hits = of(&findings, rule);
    assert!(hits.is_empty(), "{rule} fired on:\n{text}\n{hits:#?}");
}

/// One test per case: `fires` cases must produce the rule, `quiet` cases (the practice
/// followed) must not.
#[macro_export]
macro_rules! rule_cases {
    ($($name:ident: $rule:literal { fires: [$($bad:expr),+ $(,)?], quiet: [$($good:expr),+ $(,)?] $(,)? })*) => {
        mod fires {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    $( $crate::common::fires($rule, $bad); )+
                }
            )*
        }
        mod quiet {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    $( $crate::common::quiet($rule, $good); )+
                }
            )*
        }
    };
}
