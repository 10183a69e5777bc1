//! `Name: value` paragraphs, the format shared (with small differences) by RFC 822 mail
//! headers (Python's `METADATA`), Debian's control files (`dpkg/status`, machine-readable
//! `copyright`) and JAR manifests.

/// How a continuation line (one starting with white space) joins its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuation {
    /// RFC 822 and deb822: a new line of the value, leading white space dropped.
    Folded,
    /// JAR manifests wrap long values at 72 bytes: exactly one leading space is removed and
    /// the rest is glued to the value, with no separator.
    Glued,
}

/// One paragraph: fields in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The first value of `name` (compared ignoring ASCII case, as both formats define).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first line of the first value of `name`, trimmed; `None` when empty.
    pub(crate) fn first_line(&self, name: &str) -> Option<&str> {
        let line = self.get(name)?.lines().next()?.trim();
        (!line.is_empty()).then_some(line)
    }

    /// Every value of `name` (a field such as `Classifier` may repeat).
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Splits `text` into paragraphs separated by blank lines. Lines that are neither a field nor a
/// continuation (comments, junk) are skipped rather than failing the whole file: a catalog
/// should report what it can read.
pub(crate) fn paragraphs(text: &str, continuation: Continuation) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut current = Paragraph::default();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.fields.last_mut() {
                match continuation {
                    Continuation::Folded => {
                        value.push('\n');
                        value.push_str(line.trim_start());
                    }
                    Continuation::Glued => value.push_str(&line[1..]),
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            let value = match continuation {
                Continuation::Folded => value.trim(),
                Continuation::Glued => value.strip_prefix(' ').unwrap_or(value),
            };
            current
                .fields
                .push((key.trim().to_owned(), value.to_owned()));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The header paragraph of a message (RFC 822: the headers end at the first blank line; what
/// follows is a body, such as a Python package's long description, and is not parsed).
pub(crate) fn headers(text: &str) -> Paragraph {
    let end = text
        .find("\n\n")
        .or_else(|| text.find("\r\n\r\n"))
        .unwrap_or(text.len());
    paragraphs(&text[..end], Continuation::Folded)
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paragraphs_and_folds_continuations() {
        let text =
            "Package: one\nDescription: short\n more\n .\n\n\nPackage: two\r\nversion: 2\r\n";
        let paragraphs = paragraphs(text, Continuation::Folded);
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[0].get("package"), Some("one"));
        assert_eq!(paragraphs[0].get("Description"), Some("short\nmore\n."));
        assert_eq!(paragraphs[0].first_line("Description"), Some("short"));
        assert_eq!(paragraphs[1].get("Version"), Some("2"));
        assert_eq!(paragraphs[1].get("Missing"), None);
    }

    #[test]
    fn glued_continuations_rejoin_wrapped_manifest_values() {
        let text =
            "Manifest-Version: 1.0\r\nBundle-SymbolicName: org.example.very.lo\r\n ng.name\r\n";
        let main = &paragraphs(text, Continuation::Glued)[0];
        assert_eq!(
            main.get("Bundle-SymbolicName"),
            Some("org.example.very.long.name")
        );
    }

    #[test]
    fn headers_stop_at_the_body_and_keep_repeated_fields() {
        let text = "Name: pkg\nClassifier: A\nClassifier: B\n\nName: not a header\n";
        let headers = headers(text);
        assert_eq!(headers.get("Name"), Some("pkg"));
        assert_eq!(headers.all("classifier").collect::<Vec<_>>(), ["A", "B"]);
    }
}
