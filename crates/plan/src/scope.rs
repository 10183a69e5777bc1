//! The variables a word is expanded with while a stage is built.

use stagecraft_shell::EnvGetter;

/// A stage's expansion scope: the image environment (base image `Env` plus `ENV`s so far) and
/// the `ARG`s declared in the stage so far. `ENV` wins over an `ARG` of the same name, as the
/// Dockerfile reference says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    env: Vec<(String, String)>,
    args: Vec<(String, String)>,
}

impl Scope {
    /// A scope starting from an image's `Env` (`KEY=VALUE` strings).
    pub fn from_image_env<'a>(env: impl IntoIterator<Item = &'a str>) -> Scope {
        let mut scope = Scope::default();
        for entry in env {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            scope.set_env(key, value);
        }
        scope
    }

    /// Sets an environment variable (an `ENV`).
    pub fn set_env(&mut self, key: &str, value: &str) {
        set(&mut self.env, key, value);
    }

    /// Brings an argument into scope (an `ARG` with its resolved value).
    pub fn set_arg(&mut self, key: &str, value: &str) {
        set(&mut self.args, key, value);
    }

    /// The environment as `KEY=VALUE` strings, in definition order (for the image config).
    pub fn env_list(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// The arguments in scope, in declaration order.
    pub fn args(&self) -> &[(String, String)] {
        &self.args
    }
}

fn set(list: &mut Vec<(String, String)>, key: &str, value: &str) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_owned(),
        None => list.push((key.to_owned(), value.to_owned())),
    }
}

impl EnvGetter for Scope {
    fn get(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .chain(&self.args)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_over_args_and_keeps_order() {
        let mut scope = Scope::from_image_env(["PATH=/bin", "HOME=/root"]);
        scope.set_arg("HOME", "/arg");
        scope.set_arg("VERSION", "1");
        scope.set_env("PATH", "/usr/bin:/bin");
        assert_eq!(scope.get("HOME"), Some("/root"));
        assert_eq!(scope.get("VERSION"), Some("1"));
        assert_eq!(scope.env_list(), ["PATH=/usr/bin:/bin", "HOME=/root"]);
    }
}
