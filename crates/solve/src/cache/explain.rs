//! Why a step missed the cache: a typed reason, and for a step built before at the same place
//! of the Dockerfile, which of its inputs changed (`--explain`, progress `miss_reason`).

use std::collections::BTreeMap;
use std::fmt;

/// A step's inputs as last built at one place of the Dockerfile, to explain the next miss.
#[derive(PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct StepInputs {
    /// The cache key of the filesystem below the step.
    pub(crate) parent: String,
    /// Named inputs: the instruction, variables, files with short content digests.
    pub(crate) inputs: BTreeMap<String, String>,
}

/// Why a step's cache lookup missed.
#[derive(Debug)]
pub(crate) enum Miss {
    /// `--no-cache`, or `--no-cache-filter` named the stage.
    NoCache,
    /// No record for these inputs: what changed since the step was last built here.
    Changed(Change),
    /// A record exists but cannot be read.
    UnreadableRecord(stagecraft_store::Error),
    /// The recorded layer is neither in the store nor in an imported cache.
    LayerGone {
        /// The layer's short digest.
        layer: String,
    },
    /// Fetching the recorded layer from an imported cache failed.
    FetchFailed {
        /// The layer's short digest.
        layer: String,
        /// What went wrong.
        error: crate::CacheBlobError,
    },
    /// Unpacking the recorded layer into a snapshot failed.
    UnpackFailed {
        /// The layer's short digest.
        layer: String,
        /// What went wrong.
        error: stagecraft_store::Error,
    },
}

/// What differs from the last build of a step at the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Never built at this place before.
    FirstBuild,
    /// These inputs differ (at most [`SHOWN_CHANGES`], then how many more).
    Inputs {
        /// The first differences, in input order.
        shown: Vec<InputChange>,
        /// How many more inputs differ.
        more: usize,
    },
    /// The inputs are the same, the base image below them is not.
    BaseImage,
    /// The inputs are the same, an earlier step of the stage is not.
    EarlierStep,
    /// Nothing differs, yet no record: it was pruned.
    RecordGone,
}

/// One input that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputChange {
    /// New since the last build.
    Added {
        /// The input's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Gone since the last build.
    Removed {
        /// The input's name.
        name: String,
    },
    /// Another value.
    Modified {
        /// The input's name.
        name: String,
        /// The value last time.
        old: String,
        /// The value now.
        new: String,
    },
}

/// How many changed inputs a reason lists before "and N more".
pub(crate) const SHOWN_CHANGES: usize = 5;

/// Values up to this many characters are shown whole; longer ones around where they differ.
const WHOLE_VALUE: usize = 60;
/// Characters of context kept before the first difference of a long value.
const CONTEXT_BEFORE: usize = 20;
/// Characters kept from the first difference on.
const CONTEXT_AFTER: usize = 40;

/// Which input changed since the previous build of the same step.
pub(crate) fn explain_change(
    previous: Option<&StepInputs>,
    current: &StepInputs,
    first_own_layer: bool,
) -> Change {
    let Some(previous) = previous else {
        return Change::FirstBuild;
    };
    let mut changes: Vec<InputChange> = Vec::new();
    for (name, value) in &current.inputs {
        match previous.inputs.get(name) {
            None => changes.push(InputChange::Added {
                name: name.clone(),
                value: value.clone(),
            }),
            Some(old) if old != value => changes.push(InputChange::Modified {
                name: name.clone(),
                old: old.clone(),
                new: value.clone(),
            }),
            Some(_) => {}
        }
    }
    for name in previous
        .inputs
        .keys()
        .filter(|k| !current.inputs.contains_key(*k))
    {
        changes.push(InputChange::Removed { name: name.clone() });
    }
    if !changes.is_empty() {
        let more = changes.len().saturating_sub(SHOWN_CHANGES);
        changes.truncate(SHOWN_CHANGES);
        return Change::Inputs {
            shown: changes,
            more,
        };
    }
    if previous.parent != current.parent {
        return if first_own_layer {
            Change::BaseImage
        } else {
            Change::EarlierStep
        };
    }
    Change::RecordGone
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::NoCache => f.write_str("--no-cache"),
            Miss::Changed(change) => change.fmt(f),
            Miss::UnreadableRecord(error) => write!(f, "unreadable cache record: {error}"),
            Miss::LayerGone { layer } => write!(
                f,
                "the cached layer {layer} is neither in the store nor in an imported cache"
            ),
            Miss::FetchFailed { layer, error } => {
                write!(f, "fetching the cached layer {layer}: {error}")
            }
            Miss::UnpackFailed { layer, error } => {
                write!(f, "unpacking the cached layer {layer}: {error}")
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::FirstBuild => f.write_str("first build of this step"),
            Change::BaseImage => f.write_str("the base image changed"),
            Change::EarlierStep => f.write_str("an earlier step changed"),
            Change::RecordGone => {
                f.write_str("same inputs as last time, but the cache record is gone (pruned?)")
            }
            Change::Inputs { shown, more } => {
                for (i, change) in shown.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    change.fmt(f)?;
                }
                if *more > 0 {
                    write!(f, "; and {more} more")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for InputChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputChange::Added { name, value } => {
                write!(f, "{name} added ({})", shown_whole_or_head(value))
            }
            InputChange::Removed { name } => write!(f, "{name} removed"),
            InputChange::Modified { name, old, new } => {
                let (old, new) = around_first_difference(old, new);
                write!(f, "{name}: {old} -> {new}")
            }
        }
    }
}

/// A value as a reason shows it: whole when short, else its beginning.
fn shown_whole_or_head(value: &str) -> String {
    if value.is_empty() {
        return "(empty)".to_owned();
    }
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= WHOLE_VALUE {
        value.to_owned()
    } else {
        format!("{}…", chars[..WHOLE_VALUE].iter().collect::<String>())
    }
}

/// Two values as a reason shows them: whole when both are short; otherwise each cut to a
/// window around their first difference, with `…` where text was left out, so a change at
/// the end of a long command is visible.
fn around_first_difference(old: &str, new: &str) -> (String, String) {
    let old_chars: Vec<char> = old.chars().collect();
    let new_chars: Vec<char> = new.chars().collect();
    if old_chars.len() <= WHOLE_VALUE && new_chars.len() <= WHOLE_VALUE {
        return (shown_whole_or_head(old), shown_whole_or_head(new));
    }
    let first_difference = old_chars
        .iter()
        .zip(&new_chars)
        .position(|(a, b)| a != b)
        .unwrap_or(old_chars.len().min(new_chars.len()));
    let start = first_difference.saturating_sub(CONTEXT_BEFORE);
    let window = |chars: &[char]| {
        let end = (first_difference + CONTEXT_AFTER).min(chars.len());
        let mut text = String::new();
        if start > 0 {
            text.push('…');
        }
        text.extend(&chars[start.min(chars.len())..end]);
        if end < chars.len() {
            text.push('…');
        }
        if text.is_empty() {
            text.push_str("(empty)");
        }
        text
    };
    (window(&old_chars), window(&new_chars))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> StepInputs {
        StepInputs {
            parent: "p".to_owned(),
            inputs: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_change_at_the_end_of_a_long_command_is_shown() {
        let base =
            "apt-get update && apt-get install -y --no-install-recommends build-essential curl git";
        let old = inputs(&[("command", &format!("{base} wget"))]);
        let new = inputs(&[("command", &format!("{base} rsync"))]);
        let reason = explain_change(Some(&old), &new, false).to_string();
        assert!(
            reason.contains("wget") && reason.contains("rsync"),
            "{reason}"
        );
        assert!(reason.starts_with("command: …"), "{reason}");
    }

    #[test]
    fn short_values_are_shown_whole() {
        let old = inputs(&[("variable A", "1")]);
        let new = inputs(&[("variable A", "2"), ("variable B", "")]);
        assert_eq!(
            explain_change(Some(&old), &new, false).to_string(),
            "variable A: 1 -> 2; variable B added ((empty))"
        );
    }

    #[test]
    fn first_build_only_without_an_earlier_record() {
        let current = inputs(&[("command", "true")]);
        assert_eq!(explain_change(None, &current, true), Change::FirstBuild);
        let mut moved = inputs(&[("command", "true")]);
        moved.parent = "other".to_owned();
        assert_eq!(
            explain_change(Some(&moved), &current, true),
            Change::BaseImage
        );
        assert_eq!(
            explain_change(Some(&moved), &current, false),
            Change::EarlierStep
        );
        assert_eq!(
            explain_change(Some(&current), &current, false),
            Change::RecordGone
        );
    }

    #[test]
    fn many_changes_are_counted_after_the_first_few() {
        let old = inputs(&[]);
        let pairs: Vec<(String, String)> = (0..8)
            .map(|i| (format!("file {i}"), "x".to_owned()))
            .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let reason = explain_change(Some(&old), &inputs(&refs), false).to_string();
        assert!(reason.ends_with("; and 3 more"), "{reason}");
    }
}
