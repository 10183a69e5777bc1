//! The `# check=` configuration, read as BuildKit's `linter.ParseLintOptions` reads it.

use crate::rules::Rule;
use stagecraft_dockerfile::go_quote;
use std::collections::BTreeSet;

/// Which rules run and whether warnings count as errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CheckConfig {
    skip_all: bool,
    skip: BTreeSet<String>,
    experimental_all: bool,
    experimental: BTreeSet<String>,
    /// `error=true`: warnings become errors.
    pub error: bool,
}

impl CheckConfig {
    /// Parses `skip=A,B;error=true;experimental=C`. Like BuildKit, at most three `;`-separated
    /// parts are read (the third keeps any further `;`), and every part needs a `=`.
    pub(crate) fn parse(text: &str) -> Result<CheckConfig, String> {
        let text = text.trim();
        let mut config = CheckConfig::default();
        if text.is_empty() {
            return Ok(config);
        }
        for part in text.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("invalid check option {}", go_quote(part)));
            };
            let value = value.trim();
            match key.trim() {
                "skip" => read_list(value, &mut config.skip_all, &mut config.skip),
                "experimental" => read_list(
                    value,
                    &mut config.experimental_all,
                    &mut config.experimental,
                ),
                "error" => {
                    config.error = parse_go_bool(value).ok_or_else(|| {
                        format!(
                            "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                            go_quote(part),
                            go_quote(value)
                        )
                    })?;
                }
                other => return Err(format!("invalid check option {}", go_quote(other))),
            }
        }
        Ok(config)
    }

    /// This configuration with a `# check=…` comment above an instruction merged in (BuildKit's
    /// `WithMergedConfigFromComments`): the first such comment counts, its value ends at the
    /// first space (so an explanation may follow), and only skips and experimental rules are
    /// added. An unreadable comment changes nothing.
    pub(crate) fn with_comments(&self, comments: &[String]) -> Option<CheckConfig> {
        let value = comments.iter().find_map(|comment| {
            let (key, value) = comment.trim_start().split_once('=')?;
            let key = key.trim_end();
            let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic())
                && key.chars().all(|c| c.is_ascii_alphanumeric());
            (valid_key && key.eq_ignore_ascii_case("check")).then(|| value.trim())
        })?;
        let value = value.split(' ').next().unwrap_or(value);
        let extra = CheckConfig::parse(value).ok()?;
        let mut merged = self.clone();
        merged.skip_all |= extra.skip_all;
        merged.skip.extend(extra.skip);
        merged.experimental_all |= extra.experimental_all;
        merged.experimental.extend(extra.experimental);
        Some(merged)
    }

    /// Whether `rule` reports under this configuration. Experimental rules run only when
    /// enabled, and then even under `skip=all` (as in BuildKit).
    pub(crate) fn enables(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.contains(rule.id)
        } else {
            self.enables_id(rule.id)
        }
    }

    /// Whether a (non-experimental) rule called `id` reports: not skipped by name or by
    /// `skip=all`. Also for the ids of other tools' findings (ShellCheck's `SC2086`).
    pub(crate) fn enables_id(&self, id: &str) -> bool {
        !self.skip_all && !self.skip.contains(id)
    }
}

/// `all`, or a comma-separated list of rule names.
fn read_list(value: &str, all: &mut bool, names: &mut BTreeSet<String>) {
    if value == "all" {
        *all = true;
    } else {
        names.extend(value.split(',').map(|name| name.trim().to_owned()));
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules;

    #[test]
    fn parses_buildkit_syntax() {
        let config = CheckConfig::parse("skip=StageNameCasing, UndefinedVar;error=true").unwrap();
        assert!(config.error);
        assert!(!config.enables(&rules::StageNameCasing));
        assert!(!config.enables(&rules::UndefinedVar));
        assert!(config.enables(&rules::FromAsCasing));
        assert!(!config.enables(&rules::InvalidDefinitionDescription));
        let all = CheckConfig::parse("skip=all;experimental=InvalidDefinitionDescription").unwrap();
        assert!(!all.enables(&rules::FromAsCasing));
        assert!(all.enables(&rules::InvalidDefinitionDescription));
        assert_eq!(
            CheckConfig::parse("skip").unwrap_err(),
            "invalid check option \"skip\""
        );
        assert!(
            CheckConfig::parse("error=yes")
                .unwrap_err()
                .contains("ParseBool")
        );
        assert!(CheckConfig::parse("colour=red").is_err());
    }

    #[test]
    fn comments_add_skips() {
        let base = CheckConfig::default();
        let merged = base
            .with_comments(&["check=skip=JSONArgsRecommended because we want a shell".into()])
            .unwrap();
        assert!(!merged.enables(&rules::JSONArgsRecommended));
        assert!(base.with_comments(&["just a comment".into()]).is_none());
    }
}
