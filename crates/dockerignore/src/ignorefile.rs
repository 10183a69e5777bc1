//! Reading `.dockerignore` files and finding the one that applies.

use std::path::{Path, PathBuf};

/// `ReadAll` proper: the patterns with their 1-based line numbers.
pub(crate) fn read_patterns(content: &str) -> Vec<(usize, String)> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    // `lines` splits like Go's `bufio.ScanLines` (on `\n`, dropping a `\r`
    // before it); the one difference, a `\r` ending the last line, is
    // whitespace and trimmed below anyway.
    content
        .lines()
        .enumerate()
        .filter_map(|(index, line)| {
            if line.starts_with('#') {
                return None;
            }
            let line = line.trim();
            if line.is_empty() {
                return None;
            }
            let (exclusion, path) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut pattern = if path.is_empty() {
                // Left as a lone `!` for the matcher to reject with a position.
                String::new()
            } else {
                let cleaned = stagecraft_gopath::clean(path);
                match cleaned.strip_prefix('/') {
                    Some(relative) if !relative.is_empty() => relative.to_owned(),
                    _ => cleaned,
                }
            };
            if exclusion {
                pattern.insert(0, '!');
            }
            Some((index + 1, pattern))
        })
        .collect()
}

/// Finds the ignore file BuildKit would use for a build.
///
/// `dockerfile` is the Dockerfile's path as the caller opens it; `None` means
/// the default `<context_dir>/Dockerfile`. A file named after the Dockerfile
/// plus `.dockerignore` next to it (`build/app.Dockerfile.dockerignore` for
/// `build/app.Dockerfile`, `Dockerfile.dockerignore` for the default) takes
/// precedence over `<context_dir>/.dockerignore`; an existing one wins even
/// when empty. Returns `None` when neither exists.
///
/// The Dockerfile and the ignore file get no special treatment afterwards:
/// with BuildKit they are read through a separate channel, so they are part
/// of the context (and reach `COPY . .`) unless a pattern excludes them.
/// (Only docker's legacy builder force-includes them.)
pub fn find_ignore_file(context_dir: &Path, dockerfile: Option<&Path>) -> Option<PathBuf> {
    let dockerfile = dockerfile.map_or_else(|| context_dir.join("Dockerfile"), Path::to_path_buf);
    let beside_dockerfile = dockerfile.file_name().map(|name| {
        let mut name = name.to_os_string();
        name.push(".dockerignore");
        dockerfile.with_file_name(name)
    });
    beside_dockerfile
        .into_iter()
        .chain(std::iter::once(context_dir.join(".dockerignore")))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, PatternSource};
    use crate::matcher::parse_ignore_file;

    fn parse(content: &str) -> Vec<String> {
        parse_ignore_file(content).unwrap_or_else(|e| panic!("{content:?}: {e}"))
    }

    #[test]
    fn reads_patterns_like_docker() {
        let content =
            "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n";
        assert_eq!(
            parse(content),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path"
            ]
        );
    }

    #[test]
    fn comment_only_at_column_zero() {
        assert_eq!(parse("#x\n  # y\n\t#z"), ["# y", "#z"]);
        // `\#` is an ordinary (escaped) pattern, not a comment.
        assert_eq!(parse("\\#keep"), ["\\#keep"]);
    }

    #[test]
    fn crlf_and_final_line_without_newline() {
        assert_eq!(parse("a\r\nb\r\nc"), ["a", "b", "c"]);
        assert_eq!(parse("a\r"), ["a"]);
        assert_eq!(parse("a\n\n"), ["a"]);
        // A comment line in a CRLF file is still a comment.
        assert_eq!(parse("#c\r\nd\r\n"), ["d"]);
    }

    #[test]
    fn byte_order_mark_only_on_the_first_line() {
        assert_eq!(parse("\u{feff}# comment\nfoo"), ["foo"]);
        assert_eq!(parse("\u{feff}foo"), ["foo"]);
        // Elsewhere it is part of the pattern (not whitespace).
        assert_eq!(parse("a\n\u{feff}b"), ["a", "\u{feff}b"]);
    }

    #[test]
    fn whitespace_and_paths_are_normalised() {
        assert_eq!(
            parse("  foo  \n./bar/\n//baz\na/../b\n!  ./keep/  \n/\n.\n"),
            ["foo", "bar", "baz", "b", "!keep", "/", "."]
        );
        // Unicode whitespace is trimmed like Go's strings.TrimSpace.
        assert_eq!(parse("\u{a0}x\u{3000}"), ["x"]);
    }

    #[test]
    fn read_patterns_keeps_line_numbers() {
        assert_eq!(
            read_patterns("# c\n\na\n!\n  b"),
            [
                (3, "a".to_owned()),
                (4, "!".to_owned()),
                (5, "b".to_owned())
            ]
        );
    }

    #[test]
    fn errors_carry_line_numbers() {
        let err = parse_ignore_file("ok\n# comment\n  !  \n").unwrap_err();
        assert!(matches!(
            err,
            Error::LoneExclusion {
                at: PatternSource::Line(3)
            }
        ));
        assert_eq!(
            err.to_string(),
            "illegal exclusion pattern: \"!\" (line 3): `!` must be followed by the path to \
             re-include, e.g. `!docs/README.md`"
        );

        let err = parse_ignore_file("a\nsrc/[abc\n").unwrap_err();
        let Error::BadPattern { pattern, at, .. } = &err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(
            (pattern.as_str(), *at),
            ("src/[abc", PatternSource::Line(2))
        );
        assert!(
            err.to_string()
                .starts_with("syntax error in pattern \"src/[abc\" (line 2): ")
        );

        // `!/` cleans to `!/` here, then to a lone `!` in the matcher.
        assert!(matches!(
            parse_ignore_file("!/"),
            Err(Error::LoneExclusion {
                at: PatternSource::Line(1)
            })
        ));
    }

    #[test]
    fn ignore_file_beside_the_dockerfile_wins() {
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path();
        assert_eq!(find_ignore_file(context, None), None);

        std::fs::write(context.join(".dockerignore"), "a").unwrap();
        assert_eq!(
            find_ignore_file(context, None),
            Some(context.join(".dockerignore"))
        );

        std::fs::write(context.join("Dockerfile.dockerignore"), "").unwrap();
        assert_eq!(
            find_ignore_file(context, None),
            Some(context.join("Dockerfile.dockerignore"))
        );

        let build = context.join("build");
        std::fs::create_dir(&build).unwrap();
        let dockerfile = build.join("app.Dockerfile");
        assert_eq!(
            find_ignore_file(context, Some(&dockerfile)),
            Some(context.join(".dockerignore")),
            "no app.Dockerfile.dockerignore yet: fall back to the context's file"
        );
        std::fs::write(build.join("app.Dockerfile.dockerignore"), "b").unwrap();
        assert_eq!(
            find_ignore_file(context, Some(&dockerfile)),
            Some(build.join("app.Dockerfile.dockerignore"))
        );

        // A directory of that name is not an ignore file.
        std::fs::create_dir(build.join("other.Dockerfile.dockerignore")).unwrap();
        assert_eq!(
            find_ignore_file(context, Some(&build.join("other.Dockerfile"))),
            Some(context.join(".dockerignore"))
        );
    }
}
