//! The command's environment: BuildKit's default `PATH`, runc's validation, de-duplication and `HOME`.

use crate::DEFAULT_PATH;

/// An environment entry runc refuses, in runc's words.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvError {
    /// No `=` between name and value.
    #[error("invalid environment variable {0:?}: missing '='")]
    MissingEquals(String),
    /// `=value`.
    #[error("invalid environment variable {0:?}: name cannot be empty")]
    EmptyName(String),
    /// A NUL byte, which no C string can carry; the entry's name.
    #[error("invalid environment variable {0:?}: contains nul byte (\\x00)")]
    Nul(String),
}

/// Checks every entry the way runc's `prepareEnv` does, so a bad entry fails before any namespace
/// is created, with runc's wording.
pub(crate) fn validate(env: &[String]) -> Result<(), EnvError> {
    for entry in env {
        let Some((key, _)) = entry.split_once('=') else {
            return Err(EnvError::MissingEquals(entry.clone()));
        };
        if key.is_empty() {
            return Err(EnvError::EmptyName(entry.clone()));
        }
        if entry.contains('\0') {
            return Err(EnvError::Nul(key.to_owned()));
        }
    }
    Ok(())
}

/// Appends `PATH=`[`DEFAULT_PATH`] when no entry sets `PATH`, exactly like BuildKit's
/// `addDefaultEnvvar` (an entry `PATH=` with an empty value counts as set).
pub(crate) fn with_default_path(env: &[String]) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    env
}

/// runc's `prepareEnv` after validation: keeps the last value of each key (in the position of that
/// last occurrence), drops an empty `HOME`, and appends `HOME` from `home()` when it is unset.
pub(crate) fn finalize(env: &[String], home: impl FnOnce() -> String) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut home_set = false;
    // Walk backwards so the last occurrence of a key is the one kept, then restore the order.
    let mut out: Vec<String> = Vec::with_capacity(env.len() + 1);
    for entry in env.iter().rev() {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        if !seen.insert(key) {
            continue;
        }
        if key == "HOME" {
            if value.is_empty() {
                continue;
            }
            home_set = true;
        }
        out.push(entry.clone());
    }
    out.reverse();
    if !home_set {
        out.push(format!("HOME={}", home()));
    }
    out
}

/// The value of `PATH` in a finalized environment, for the executable lookup.
pub(crate) fn path_var(env: &[String]) -> Option<&str> {
    env.iter().find_map(|e| e.strip_prefix("PATH="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_path_only_when_missing() {
        assert_eq!(
            with_default_path(&v(&["A=1"])),
            v(&["A=1", &format!("PATH={DEFAULT_PATH}")])
        );
        assert_eq!(with_default_path(&v(&["PATH=/x"])), v(&["PATH=/x"]));
        assert_eq!(with_default_path(&v(&["PATH="])), v(&["PATH="]));
        // A key that merely starts with PATH is not PATH.
        assert_eq!(with_default_path(&v(&["PATHX=1"])).len(), 2);
    }

    #[test]
    fn validation_uses_runc_wording() {
        assert!(validate(&v(&["A=1", "B="])).is_ok());
        assert_eq!(
            validate(&v(&["NOEQUALS"])).unwrap_err().to_string(),
            "invalid environment variable \"NOEQUALS\": missing '='"
        );
        assert!(
            validate(&v(&["=x"]))
                .unwrap_err()
                .to_string()
                .contains("name cannot be empty")
        );
        assert!(
            validate(&v(&["A=\0"]))
                .unwrap_err()
                .to_string()
                .contains("nul byte")
        );
    }

    // The cases of runc's env_test.go.
    #[test]
    fn finalize_dedups_and_sets_home() {
        let home = || "/root".to_string();
        assert_eq!(
            finalize(&v(&["HOME=/whoo", "FOO=bar"]), home),
            v(&["HOME=/whoo", "FOO=bar"])
        );
        assert_eq!(
            finalize(
                &v(&[
                    "TERM=vt100",
                    "HOME=/home/one",
                    "HOME=/home/two",
                    "TERM=xterm",
                    "HOME=/home/three",
                    "FOO=bar"
                ]),
                home
            ),
            v(&["TERM=xterm", "HOME=/home/three", "FOO=bar"])
        );
        assert_eq!(
            finalize(&v(&["HOME=", "HOME=/foo"]), home),
            v(&["HOME=/foo"])
        );
        assert_eq!(finalize(&v(&["HOME="]), home), v(&["HOME=/root"]));
        assert_eq!(
            finalize(&v(&["HOME=/foo", "HOME="]), home),
            v(&["HOME=/root"])
        );
        assert_eq!(finalize(&v(&["A=1"]), home), v(&["A=1", "HOME=/root"]));
    }

    #[test]
    fn path_var_reads_the_kept_value() {
        assert_eq!(path_var(&v(&["A=1", "PATH=/bin"])), Some("/bin"));
        assert_eq!(path_var(&v(&["A=1"])), None);
    }
}
