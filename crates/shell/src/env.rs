//! Variable lookup for expansions.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// Read access to the variables an expansion can see.
///
/// A variable that is set to the empty string is still *set*: `${V-x}` keeps
/// the empty value while `${V:-x}` replaces it.
pub trait EnvGetter {
    /// Returns the value of `name`, or `None` if it is not set.
    fn get(&self, name: &str) -> Option<&str>;
}

/// An owned collection of variables with BuildKit's key semantics.
///
/// Names are case-sensitive, as for Linux images, unless the collection was
/// made with [`Env::new_case_insensitive`], which matches names the way
/// BuildKit does for Windows images. Setting a name again replaces its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
    case_insensitive: bool,
}

impl Env {
    /// Creates an empty environment with case-sensitive names.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty environment whose names ignore case, as on Windows.
    pub fn new_case_insensitive() -> Self {
        Self {
            vars: BTreeMap::new(),
            case_insensitive: true,
        }
    }

    /// Sets `name` to `value`, replacing any previous value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let key = match self.normalize(&name) {
            Cow::Borrowed(_) => name,
            Cow::Owned(upper) => upper,
        };
        self.vars.insert(key, value.into());
    }

    fn normalize<'n>(&self, name: &'n str) -> Cow<'n, str> {
        if self.case_insensitive {
            Cow::Owned(name.chars().map(simple_uppercase).collect())
        } else {
            Cow::Borrowed(name)
        }
    }
}

/// Go's `unicode.ToUpper`, which BuildKit uses to fold Windows variable names:
/// a one-to-one mapping, so characters whose uppercase form is several
/// characters long (like `ß`) are left alone instead of expanding.
fn simple_uppercase(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

impl EnvGetter for Env {
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(self.normalize(name).as_ref())
            .map(String::as_str)
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Env {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (name, value) in iter {
            self.set(name, value);
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut env = Self::new();
        env.extend(iter);
        env
    }
}

impl<S: BuildHasher> EnvGetter for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

impl EnvGetter for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

/// Later pairs win, like repeated `ENV` instructions.
impl<K: AsRef<str>, V: AsRef<str>> EnvGetter for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&str> {
        last_pair_value(self, name)
    }
}

/// Later pairs win, like repeated `ENV` instructions.
impl<K: AsRef<str>, V: AsRef<str>, const N: usize> EnvGetter for [(K, V); N] {
    fn get(&self, name: &str) -> Option<&str> {
        last_pair_value(self, name)
    }
}

fn last_pair_value<'p, K: AsRef<str>, V: AsRef<str>>(
    pairs: &'p [(K, V)],
    name: &str,
) -> Option<&'p str> {
    pairs
        .iter()
        .rev()
        .find(|(key, _)| key.as_ref() == name)
        .map(|(_, value)| value.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_value_is_set() {
        let env: Env = [("foo", "")].into_iter().collect();
        assert_eq!(env.get("foo"), Some(""));
        assert_eq!(env.get("bar"), None);
    }

    #[test]
    fn later_values_win() {
        let env: Env = [("foo", "bar"), ("car", "hat"), ("car", "bike")]
            .into_iter()
            .collect();
        assert_eq!(env.get("foo"), Some("bar"));
        assert_eq!(env.get("car"), Some("bike"));
        let pairs = vec![("car", "hat"), ("car", "bike")];
        assert_eq!(EnvGetter::get(&pairs, "car"), Some("bike"));
        assert_eq!(EnvGetter::get(&[("a", "1"), ("a", "2")], "a"), Some("2"));
    }

    #[test]
    fn case_sensitivity() {
        let unix: Env = [("PWD", "/home")].into_iter().collect();
        assert_eq!(unix.get("pwd"), None);

        let mut windows = Env::new_case_insensitive();
        windows.set("Path", "C:\\");
        assert_eq!(windows.get("PATH"), Some("C:\\"));
        assert_eq!(windows.get("path"), Some("C:\\"));
        windows.set("PATH", "D:\\");
        assert_eq!(windows.get("Path"), Some("D:\\"));
        // One-to-one folding: `ß` has no single-character uppercase form.
        windows.set("straße", "x");
        assert_eq!(windows.get("STRAßE"), Some("x"));
        assert_eq!(windows.get("STRASSE"), None);
    }

    #[test]
    fn maps() {
        let hash: HashMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        let tree: BTreeMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        assert_eq!(EnvGetter::get(&hash, "A"), Some("1"));
        assert_eq!(EnvGetter::get(&tree, "A"), Some("1"));
        assert_eq!(EnvGetter::get(&tree, "a"), None);
    }
}
