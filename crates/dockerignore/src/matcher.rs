//! The compiled pattern list and docker's matching rules.

use regex::Regex;

use crate::error::{Error, PatternSource};
use crate::glob::{self, Shape};
use crate::{goregex, ignorefile};

/// A compiled list of `.dockerignore` patterns.
///
/// Paths handed to the matcher are relative to the context root,
/// `/`-separated and already clean (`src/main.rs`, never `./src//main.rs`):
/// like docker, the matcher does not normalise them.
///
/// Patterns are evaluated in order and the last one that matches decides:
/// a plain pattern excludes, a `!` pattern re-includes.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    /// The negation of fsutil's `onlyPrefixExcludeExceptions`: some `!`
    /// pattern, minus a trailing `/**` or `/*`, contains a wildcard
    /// character. BuildKit then never skips an excluded directory (see
    /// [`Self::may_reinclude_below`]).
    wildcard_exclusions: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exclusion: bool,
    how: How,
}

#[derive(Debug, Clone)]
enum How {
    Exact,
    Prefix,
    Suffix,
    Regex(Regex),
}

/// Per-pattern results for a directory, passed back when matching its
/// children so that patterns which matched an ancestor need not be re-run.
///
/// `MatchInfo::default()` means "no information about the parent" and makes
/// the matcher check every ancestor itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Compiles patterns given directly (docker's `patternmatcher.New`).
    ///
    /// Each pattern is trimmed and `path.Clean`ed; blank ones are skipped; a
    /// leading `!` makes it an exclusion. Note that, as in docker, cleaning
    /// happens *before* the `!` is looked at, so pass the output of
    /// [`parse_ignore_file`](crate::parse_ignore_file) rather than raw lines
    /// (here `"!./a"` re-includes the literal path `./a`, which never occurs).
    ///
    /// Errors name the offending pattern by its index. Unlike docker, which
    /// compiles each regexp lazily the first time it is needed, every
    /// pattern is validated up front.
    pub fn new<I>(patterns: I) -> Result<Self, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::compile(
            patterns
                .into_iter()
                .enumerate()
                .map(|(index, pattern)| (pattern, PatternSource::Index(index))),
        )
    }

    /// [`parse_ignore_file`](crate::parse_ignore_file) followed by
    /// [`Self::new`], with errors that carry line numbers.
    pub fn from_ignore_file(content: &str) -> Result<Self, Error> {
        Self::compile(
            ignorefile::read_patterns(content)
                .into_iter()
                .map(|(line, pattern)| (pattern, PatternSource::Line(line))),
        )
    }

    pub(crate) fn compile<I, S>(patterns: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (S, PatternSource)>,
        S: AsRef<str>,
    {
        let mut matcher = Self::default();
        for (raw, at) in patterns {
            let raw = raw.as_ref().trim();
            if raw.is_empty() {
                continue;
            }
            let cleaned = stagecraft_gopath::clean(raw);
            let (exclusion, text) = match cleaned.strip_prefix('!') {
                Some("") => return Err(Error::LoneExclusion { at }),
                Some(rest) => (true, rest.to_owned()),
                None => (false, cleaned),
            };
            let pattern = Pattern::new(text, exclusion, at)?;
            if exclusion {
                matcher.exclusions = true;
                matcher.wildcard_exclusions |=
                    without_trailing_glob(&pattern.text).contains(WILDCARD_CHARS);
            }
            matcher.patterns.push(pattern);
        }
        Ok(matcher)
    }

    /// Whether `path` is excluded from the build context: the last pattern
    /// matching the path *or any of its parent directories* decides
    /// (docker's `MatchesOrParentMatches`).
    ///
    /// This is what docker uses to answer "is this one path excluded?". Its
    /// directory walk uses [`Self::matches_using_parent_results`] instead,
    /// which differs in rare cases: with `a/b` then `!a`, this method says
    /// `a/b` is *not* excluded (`!a` matches its parent), while the walk
    /// excludes it because `!a` was never in effect for `a` itself.
    pub fn matches(&self, path: &str) -> bool {
        let parent = stagecraft_gopath::dir(path);
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that could flip the current verdict is worth
            // evaluating.
            if pattern.exclusion != excluded {
                continue;
            }
            if pattern.matches(path) || (parent != "." && pattern.matches_an_ancestor(&parent)) {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Incremental matching for directory walks (docker's
    /// `MatchesUsingParentResults`): `parent` is the [`MatchInfo`] returned
    /// for the directory containing `path`, or `MatchInfo::default()` for
    /// entries at the top of the context. Returns whether `path` is excluded
    /// and the info to pass down to its children if it is a directory.
    ///
    /// A pattern counts as matching if it matched here or was recorded as
    /// matching an ancestor. Patterns that could not change the verdict are
    /// skipped and recorded as not matching; that shortcut is observable and
    /// deliberately kept, because it is what BuildKit's context transfer does.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), Error> {
        let inherited = &parent.parent_matched;
        if !inherited.is_empty() && inherited.len() != self.patterns.len() {
            return Err(Error::MatchInfoMismatch {
                expected: self.patterns.len(),
                found: inherited.len(),
            });
        }
        // Without parent info, fall back to checking the ancestors directly.
        let ancestors = inherited.is_empty().then(|| stagecraft_gopath::dir(path));

        let mut excluded = false;
        let mut info = vec![false; self.patterns.len()];
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut matched = inherited.get(index).copied().unwrap_or(false);
            if !matched {
                if pattern.exclusion != excluded {
                    continue;
                }
                matched = pattern.matches(path)
                    || ancestors
                        .as_deref()
                        .is_some_and(|dir| dir != "." && pattern.matches_an_ancestor(dir));
            }
            info[index] = matched;
            if matched {
                excluded = !pattern.exclusion;
            }
        }
        Ok((
            excluded,
            MatchInfo {
                parent_matched: info,
            },
        ))
    }

    /// Whether any pattern is an exclusion (`!pattern`).
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether there are no patterns at all (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a walk must look inside the *excluded* directory `dir` because
    /// a `!` pattern might re-include something below it.
    ///
    /// This is BuildKit's (fsutil's) heuristic, kept exactly because it
    /// decides what ends up in the context: if every `!` pattern is literal
    /// once a trailing `/**` or `/*` is dropped, the directory is entered only
    /// when some such literal lies beneath it; otherwise it is always entered.
    /// It is slightly unsound: with `a/x` and `!a/*/**`, `a/x/y` would be
    /// re-included, yet `a/x` is skipped because `a` does not lie below `a/x`.
    pub(crate) fn may_reinclude_below(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        if self.wildcard_exclusions {
            return true;
        }
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|pattern| pattern.exclusion)
            .any(|pattern| {
                format!("{}/", without_trailing_glob(&pattern.text)).starts_with(&dir_slash)
            })
    }
}

/// Characters that make fsutil treat an exclusion as a wildcard pattern.
const WILDCARD_CHARS: [char; 6] = ['*', '[', ']', '?', '^', '\\'];

/// fsutil's `patternWithoutTrailingGlob`: drops one trailing `/**`, then one
/// trailing `/*`.
fn without_trailing_glob(pattern: &str) -> &str {
    let pattern = pattern.strip_suffix("/**").unwrap_or(pattern);
    pattern.strip_suffix("/*").unwrap_or(pattern)
}

impl Pattern {
    fn new(text: String, exclusion: bool, at: PatternSource) -> Result<Self, Error> {
        let bad = |reason: String| Error::BadPattern {
            pattern: text.clone(),
            at,
            reason,
        };
        stagecraft_gopath::check_syntax(&text).map_err(|reason| bad(reason.to_owned()))?;
        let how = match glob::shape(&text) {
            Shape::Exact => How::Exact,
            Shape::Prefix => How::Prefix,
            Shape::Suffix => How::Suffix,
            Shape::Regex(go) => {
                let rust = goregex::to_rust(&go).map_err(bad)?;
                let regex = Regex::new(&rust).map_err(|err| {
                    bad(match err {
                        regex::Error::Syntax(message) => {
                            // The last line of a `regex` syntax error is the
                            // human-readable cause.
                            let cause = message.lines().last().unwrap_or_default();
                            format!(
                                "the regular expression docker derives from it is invalid: {cause}"
                            )
                        }
                        other => other.to_string(),
                    })
                })?;
                How::Regex(regex)
            }
        };
        Ok(Self {
            text,
            exclusion,
            how,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match &self.how {
            How::Exact => path == self.text,
            // Prefix patterns end in `**`, which is dropped.
            How::Prefix => self
                .text
                .strip_suffix("**")
                .is_some_and(|prefix| path.starts_with(prefix)),
            How::Suffix => {
                // Dropping the leading `**` is done on bytes, as in Go: the
                // `**` may follow a byte-order mark that Go's scanner skipped,
                // so byte 2 need not start a character.
                let suffix = self.text.as_bytes().get(2..).unwrap_or_default();
                let path = path.as_bytes();
                // `**/foo` also matches `foo` itself.
                path.ends_with(suffix) || suffix.strip_prefix(b"/") == Some(path)
            }
            How::Regex(regex) => regex.is_match(path),
        }
    }

    /// Whether the pattern matches `dir` or one of its ancestors (`a`, `a/b`,
    /// `a/b/c` for `a/b/c`).
    fn matches_an_ancestor(&self, dir: &str) -> bool {
        dir.match_indices('/')
            .map(|(slash, _)| &dir[..slash])
            .chain(std::iter::once(dir))
            .any(|ancestor| self.matches(ancestor))
    }
}

/// Parses the text of an ignore file into patterns, the way docker's
/// `ignorefile.ReadAll` does, and checks that every pattern is valid.
///
/// * Lines end at `\n`; one `\r` before it is dropped (so CRLF files work).
/// * A UTF-8 byte-order mark at the very start is dropped.
/// * A line is a comment only if `#` is its *first* character: ` # x` is the
///   pattern `# x`, not a comment.
/// * Surrounding whitespace is trimmed and blank lines are skipped.
/// * A leading `!` marks an exclusion (re-include); whitespace after it is
///   trimmed too.
/// * The rest is `path.Clean`ed and one leading `/` removed, so `/foo`,
///   `./foo` and `foo/` all mean `foo`.
///
/// The returned strings keep their `!` and are ready for
/// [`PatternMatcher::new`]. Errors point at the 1-based line.
pub fn parse_ignore_file(content: &str) -> Result<Vec<String>, Error> {
    let patterns = ignorefile::read_patterns(content);
    // Compiling is the only complete validation: docker's checks include
    // building each pattern's regular expression.
    PatternMatcher::compile(
        patterns
            .iter()
            .map(|(line, pattern)| (pattern, PatternSource::Line(*line))),
    )?;
    Ok(patterns.into_iter().map(|(_, pattern)| pattern).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> PatternMatcher {
        PatternMatcher::new(patterns).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
    }

    /// Asserts `matches` and both flavours of the incremental API agree.
    #[track_caller]
    fn check(patterns: &[&str], path: &str, want: bool) {
        let m = matcher(patterns);
        assert_eq!(m.matches(path), want, "matches({path:?}) with {patterns:?}");
        let (no_context, _) = m
            .matches_using_parent_results(path, &MatchInfo::default())
            .unwrap();
        assert_eq!(
            no_context, want,
            "without parent info: {path:?} with {patterns:?}"
        );
        assert_eq!(
            walked(&m, path),
            want,
            "walking to {path:?} with {patterns:?}"
        );
    }

    /// The verdict for `path` when every ancestor is matched first, as a walk does.
    fn walked(m: &PatternMatcher, path: &str) -> bool {
        let mut info = MatchInfo::default();
        let mut verdict = false;
        for (slash, _) in path
            .match_indices('/')
            .chain(std::iter::once((path.len(), "")))
        {
            (verdict, info) = m
                .matches_using_parent_results(&path[..slash], &info)
                .unwrap();
        }
        verdict
    }

    #[test]
    fn patterns_are_anchored_at_the_context_root() {
        check(&["*.log"], "app.log", true);
        check(&["*.log"], "logs/app.log", false);
        check(&["*/*.log"], "logs/app.log", true);
        check(&["*/*.log"], "a/logs/app.log", false);
        check(&["foo"], "foo", true);
        check(&["foo"], "src/foo", false);
    }

    #[test]
    fn single_star_and_question_mark_stay_within_one_component() {
        check(&["a*"], "abc", true);
        check(&["a*/b"], "abc/b", true);
        check(&["a*/b"], "a/c/b", false);
        check(&["a?c"], "abc", true);
        check(&["a?c"], "a/c", false);
        check(&["a?c"], "ac", false);
        check(&["a?b"], "a☺b", true);
    }

    #[test]
    fn double_star_forms() {
        // `**` alone: everything.
        check(&["**"], "file", true);
        check(&["**"], "dir/file", true);
        // `**/foo`: foo at any depth, including the top.
        check(&["**/foo"], "foo", true);
        check(&["**/foo"], "a/b/foo", true);
        check(&["**/foo"], "a/foo/x", true);
        check(&["**/foo"], "a/xfoo", false);
        // `foo/**`: everything below foo, but not foo itself.
        check(&["foo/**"], "foo/x", true);
        check(&["foo/**"], "foo/x/y", true);
        check(&["foo/**"], "foo", false);
        check(&["foo/**"], "foobar/x", false);
        // `a/**/b`: zero or more directories in between.
        check(&["a/**/b"], "a/b", true);
        check(&["a/**/b"], "a/x/y/b", true);
        check(&["a/**/b"], "a/xb", false);
        check(&["a/**/b"], "x/a/b", false);
        // Combinations.
        check(&["**/*.txt"], "x.txt", true);
        check(&["**/*.txt"], "a/b/x.txt", true);
        check(&["**/dir2/*"], "dir/dir2/file", true);
        check(&["a**/*.txt"], "a/dir/dir/file.txt", true);
    }

    #[test]
    fn leading_double_star_without_wildcards_is_a_plain_suffix_test() {
        // patternmatcher's suffix shortcut: `**foo` matches anything ending in foo.
        check(&["**foo"], "barfoo", true);
        check(&["**foo"], "a/xfoo", true);
        check(&["**.txt"], "notes.txt", true);
        // `**/foo.txt` stays component-aligned thanks to the slash.
        check(&["**/foo.txt"], "xfoo.txt", false);
    }

    #[test]
    fn literal_prefix_before_double_star_is_a_plain_prefix_test() {
        check(&["abc**"], "abcdef", true);
        check(&["abc**"], "abc", true);
        check(&["abc**"], "abc/x", true);
        check(&["abc/**"], "abc", false);
    }

    #[test]
    fn brackets_go_to_the_regexp_engine() {
        check(&["a[b-d]e"], "ace", true);
        check(&["a[b-d]e"], "aae", false);
        check(&["a[^b-d]e"], "aze", true);
        // `!` does not negate: it is a member of the class.
        check(&["[!a]"], "!", true);
        check(&["[!a]"], "a", true);
        check(&["[!a]"], "b", false);
        check(&["[\\]a]"], "]", true);
        // A lone `]` is an ordinary character.
        check(&["a]b"], "a]b", true);
    }

    #[test]
    fn braces_and_regex_metacharacters_are_literal() {
        check(&["{a,b}"], "{a,b}", true);
        check(&["{a,b}"], "a", false);
        check(&["*.{js,ts}"], "x.js", false);
        check(&["*.{js,ts}"], "x.{js,ts}", true);
        check(&["a.|)$(}+{bc"], "a.|)$(}+{bc", true);
        check(&["abc.def"], "abcxdef", false);
        check(&["a(b)c/*"], "a(b)c/x", true);
        check(
            &["dist/*.whl"],
            "dist/proxy.py-2.4.0rc3+g08acad9-py3-none-any.whl",
            true,
        );
    }

    #[test]
    fn backslash_escapes_reach_the_regexp_engine() {
        check(&["a\\*b"], "a*b", true);
        check(&["a\\*b"], "axb", false);
        check(&["a\\\\"], "a\\", true);
        // docker quirk: `\d` is the regexp digit class, not a literal `d`.
        check(&["v\\d"], "v1", true);
        check(&["v\\d"], "vd", false);
    }

    #[test]
    fn excluding_a_directory_excludes_everything_below_it() {
        check(&["node_modules"], "node_modules/a/b.js", true);
        check(&["build/*"], "build/out/x.o", true);
        check(&["*.d"], "x.d/y/z", true);
        check(&["src/gen"], "src/generated", false);
    }

    #[test]
    fn last_matching_pattern_wins() {
        check(&["*.md", "!README.md"], "README.md", false);
        check(&["*.md", "!README.md"], "CHANGES.md", true);
        check(&["!README.md", "*.md"], "README.md", true);
        check(&["*.md", "!README.md", "README*"], "README.md", true);
        check(&["**", "!util/docker/web"], "util/docker/web/foo", false);
        check(
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        );
    }

    #[test]
    fn exclusion_reincludes_inside_an_excluded_directory() {
        check(&["docs", "!docs/README.md"], "docs/README.md", false);
        check(&["docs", "!docs/README.md"], "docs/other.md", true);
        check(&["docs/**", "!docs/**/*.md"], "docs/a/b.md", false);
        check(&["docs/**", "!docs/**/*.md"], "docs/a/b.txt", true);
    }

    #[test]
    fn walk_order_matters_for_reinclusion_of_a_parent() {
        // `!a` only takes effect when something before it already matched;
        // `matches` sees `!a` match the parent, the walk does not.
        let m = matcher(&["a/b", "!a"]);
        assert!(!m.matches("a/b"));
        assert!(!m.matches("a/b/c"));
        assert!(walked(&m, "a/b"));
        assert!(walked(&m, "a/b/c"));
    }

    #[test]
    fn leading_slash_and_dot_slash_are_normalised_by_the_ignore_file() {
        let m = PatternMatcher::from_ignore_file("/foo\n./bar\n!/foo/keep\n").unwrap();
        assert!(m.matches("foo"));
        assert!(m.matches("bar/x"));
        assert!(!m.matches("foo/keep"));
    }

    #[test]
    fn new_cleans_before_looking_for_the_exclamation_mark() {
        // As in docker: `!` is just a path character to path.Clean.
        let m = matcher(&["!a/../b"]);
        assert!(!m.exclusions());
        assert!(m.matches("b"));
        assert!(matcher(&["x", " !x "]).exclusions());
        assert!(matcher(&["foo/"]).matches("foo"));
    }

    #[test]
    fn blank_patterns_are_ignored() {
        let m = matcher(&["", "   ", "\t"]);
        assert!(m.is_empty());
        assert!(!m.matches("anything"));
        assert!(PatternMatcher::default().is_empty());
    }

    #[test]
    fn byte_order_mark_before_double_star_does_not_panic() {
        // Go's scanner drops the BOM, leaving a suffix pattern whose suffix
        // starts mid-character; it can only ever match raw bytes we never see.
        let m = matcher(&["\u{feff}**/foo"]);
        assert!(!m.matches("foo"));
        assert!(!m.matches("a/foo"));
        // A BOM before a regexp pattern is simply dropped.
        assert!(matcher(&["\u{feff}*.log"]).matches("x.log"));
    }

    #[test]
    fn errors_name_the_pattern_and_its_position() {
        let err = PatternMatcher::new(["ok", "!"]).unwrap_err();
        assert!(matches!(
            err,
            Error::LoneExclusion {
                at: PatternSource::Index(1)
            }
        ));
        assert!(
            err.to_string()
                .starts_with("illegal exclusion pattern: \"!\"")
        );

        for bad in [
            "[",
            "a\\",
            "[]a]",
            "[x-]",
            "[z-a]",
            "[Local-Only]/",
            "\\q",
            "[[:nope:]]",
        ] {
            let err = PatternMatcher::new([bad]).unwrap_err();
            let Error::BadPattern { at, .. } = &err else {
                panic!("{bad:?}: unexpected error {err:?}");
            };
            assert_eq!(*at, PatternSource::Index(0));
            assert!(
                err.to_string().starts_with("syntax error in pattern"),
                "{bad:?}: {err}"
            );
        }
        // `!/` cleans to a lone `!`.
        assert!(matches!(
            PatternMatcher::new(["!/"]),
            Err(Error::LoneExclusion { .. })
        ));
    }

    #[test]
    fn mismatched_match_info_is_an_error() {
        let one = matcher(&["a"]);
        let (_, info) = matcher(&["a", "b"])
            .matches_using_parent_results("x", &MatchInfo::default())
            .unwrap();
        assert!(matches!(
            one.matches_using_parent_results("x/y", &info),
            Err(Error::MatchInfoMismatch {
                expected: 1,
                found: 2
            })
        ));
    }

    #[test]
    fn reinclusion_heuristic_follows_fsutil() {
        let literal = matcher(&["a", "!a/b/c/**"]);
        assert!(literal.may_reinclude_below("a"));
        assert!(literal.may_reinclude_below("a/b"));
        assert!(literal.may_reinclude_below("a/b/c"));
        assert!(!literal.may_reinclude_below("a/x"));
        assert!(!literal.may_reinclude_below("a/bc"));
        assert!(!matcher(&["a"]).may_reinclude_below("a"));
        // Any wildcard in an exclusion: always look inside.
        assert!(matcher(&["a", "!**/keep"]).may_reinclude_below("a/x"));
        // The unsound corner: only one trailing glob is considered.
        assert!(!matcher(&["a/x", "!a/*/**"]).may_reinclude_below("a/x"));
    }
}
