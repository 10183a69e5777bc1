//! The variables a word is expanded with while a stage is built.

use stagecraft_shell::EnvGetter;

/// A stage's build environment, as BuildKit keeps it in its LLB state: it starts with the base
/// image's `Env`, and every `ENV` *and* every `ARG` with a value sets a variable in it, the last
/// definition winning. Words are expanded against it and `RUN` commands see it as their
/// environment (which is how build arguments reach `RUN`). The image config's `Env` is kept
/// apart by the caller, since `ARG`s never enter it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    vars: Vec<(String, String)>,
}

impl Scope {
    /// A scope starting from an image's `Env` (`KEY=VALUE` strings).
    pub fn from_image_env<'a>(env: impl IntoIterator<Item = &'a str>) -> Scope {
        let mut scope = Scope::default();
        for entry in env {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            scope.set(key, value);
        }
        scope
    }

    /// Sets a variable, replacing an earlier value in place.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.vars.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The variables as `KEY=VALUE` strings, in definition order (a `RUN`'s environment).
    pub fn env_list(&self) -> Vec<String> {
        self.vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl EnvGetter for Scope {
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_definitions_replace_earlier_ones_in_place() {
        let mut scope = Scope::from_image_env(["PATH=/bin", "HOME=/root"]);
        scope.set("VERSION", "1");
        scope.set("PATH", "/usr/bin:/bin");
        scope.set("HOME", "/arg");
        assert_eq!(scope.get("HOME"), Some("/arg"));
        assert_eq!(scope.get("VERSION"), Some("1"));
        assert_eq!(scope.get("NOPE"), None);
        assert_eq!(
            scope.env_list(),
            ["PATH=/usr/bin:/bin", "HOME=/arg", "VERSION=1"]
        );
    }
}
