//! Turning the license statements package metadata makes into SPDX license expressions.
//!
//! Metadata rarely says SPDX exactly: Debian's machine-readable copyright files write `GPL-2+`
//! and `BSD-3-clause`, npm and PyPI packages `mit` or `(MIT or Apache-2.0)`. Each term is
//! matched against the SPDX license list ignoring case (the SPDX specification matches
//! identifiers that way) with the GNU `+` and Debian's versions without `.0` understood. A
//! statement with a term that is not on the list is not an expression: the document writes
//! it as a `LicenseRef-` with the statement as its text, rather than guess.

/// Debian short names (DEP-5) that are not SPDX identifiers but name one exactly.
const ALIASES: &[(&str, &str)] = &[("Expat", "MIT")];

/// The SPDX expression a license statement means, canonically spelt (`GPL-2+ or MIT` →
/// `GPL-2.0-or-later OR MIT`). `None` when any part of it is not a known license, exception
/// or operator (Debian's `Artistic` names no single version, so it is not guessed).
pub(crate) fn to_spdx(statement: &str) -> Option<String> {
    let spaced = statement.replace('(', " ( ").replace(')', " ) ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(words.len());
    let mut after_with = false;
    for word in words {
        let mapped = match word.to_ascii_uppercase().as_str() {
            "AND" | "OR" | "WITH" | "(" | ")" => word.to_ascii_uppercase(),
            _ if after_with => spdx_exception(word)?,
            _ if word.starts_with("LicenseRef-") => word.to_owned(),
            _ => license_term(word)?,
        };
        after_with = mapped == "WITH";
        out.push(mapped);
    }
    let expression = out.join(" ").replace("( ", "(").replace(" )", ")");
    // The parser checks what the term mapping cannot: operator placement and parentheses.
    spdx::Expression::parse(&expression).ok()?;
    Some(expression)
}

/// One license identifier, optionally with `+`, as its canonical SPDX spelling.
fn license_term(word: &str) -> Option<String> {
    let (base, or_later) = match word.strip_suffix('+') {
        Some(base) => (base, true),
        None => (word, false),
    };
    let base = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(base))
        .map_or(base, |(_, id)| id);
    // Debian writes `GPL-2`, `LGPL-3` where the list has `GPL-2.0`, `LGPL-3.0`.
    let id = find_license(base).or_else(|| find_license(&format!("{base}.0")))?;
    if id.is_gnu() {
        let name = id.name;
        let bare = name
            .strip_suffix("-only")
            .or_else(|| name.strip_suffix("-or-later"))
            .unwrap_or(name);
        let later = or_later || name.ends_with("-or-later");
        return spdx::gnu_license_id(bare, later).map(|id| id.name.to_owned());
    }
    if id.is_deprecated() {
        return None;
    }
    Some(if or_later {
        format!("{}+", id.name)
    } else {
        id.name.to_owned()
    })
}

fn find_license(name: &str) -> Option<spdx::LicenseId> {
    if name.is_empty() || name.ends_with('+') {
        return None;
    }
    spdx::license_id(name).or_else(|| {
        spdx::identifiers::LICENSES
            .iter()
            .find(|license| license.name.eq_ignore_ascii_case(name))
            .and_then(|license| spdx::license_id(license.name))
    })
}

fn spdx_exception(word: &str) -> Option<String> {
    spdx::exception_id(word)
        .or_else(|| {
            spdx::identifiers::EXCEPTIONS
                .iter()
                .find(|exception| exception.name.eq_ignore_ascii_case(word))
                .and_then(|exception| spdx::exception_id(exception.name))
        })
        .map(|exception| exception.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::to_spdx;

    #[test]
    fn canonical_identifiers_pass_through() {
        assert_eq!(to_spdx("MIT").as_deref(), Some("MIT"));
        assert_eq!(
            to_spdx("Apache-2.0 WITH LLVM-exception").as_deref(),
            Some("Apache-2.0 WITH LLVM-exception")
        );
        assert_eq!(
            to_spdx("(MIT OR Apache-2.0) AND BSD-3-Clause").as_deref(),
            Some("(MIT OR Apache-2.0) AND BSD-3-Clause")
        );
    }

    #[test]
    fn debian_and_lowercase_spellings_are_understood() {
        assert_eq!(to_spdx("GPL-2+").as_deref(), Some("GPL-2.0-or-later"));
        assert_eq!(to_spdx("GPL-2").as_deref(), Some("GPL-2.0-only"));
        assert_eq!(to_spdx("LGPL-2.1+").as_deref(), Some("LGPL-2.1-or-later"));
        assert_eq!(to_spdx("BSD-3-clause").as_deref(), Some("BSD-3-Clause"));
        assert_eq!(to_spdx("Expat").as_deref(), Some("MIT"));
        assert_eq!(
            to_spdx("mit or apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            to_spdx("GPL-3.0-or-later with GCC-exception-3.1").as_deref(),
            Some("GPL-3.0-or-later WITH GCC-exception-3.1")
        );
        assert_eq!(to_spdx("MPL-1.1+").as_deref(), Some("MPL-1.1+"));
    }

    #[test]
    fn anything_unknown_or_malformed_is_not_an_expression() {
        for statement in [
            "",
            "public-domain",
            "BSD License",
            "GPL-2+ or Artistic-ish",
            "MIT OR",
            "(MIT",
            "MIT WITH Apache-2.0",
            "wxWindows",
            "https://www.apache.org/licenses/LICENSE-2.0.txt",
        ] {
            assert_eq!(to_spdx(statement), None, "{statement:?}");
        }
    }
}
