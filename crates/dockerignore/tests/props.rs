//! Properties of the matcher over generated patterns and paths.

use proptest::prelude::*;
use stagecraft_dockerignore::{MatchInfo, PatternMatcher, parse_ignore_file};

/// A clean relative path of 1-4 components.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-c]{1,3}", 1..5).prop_map(|parts| parts.join("/"))
}

/// Characters that stress every part of the pattern language.
fn noisy_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(vec![
                "*", "**", "?", "[", "]", "^", "!", "-", "\\", "/", ".", "..", "a", "b",
                ":", "{", "}", "(", ")", "$", "+", "|", " ", "\r", "\n", "#", "\u{feff}",
                "[:alpha:]", "\\p", "\\x{", "\\Q", "\\E", "é",
            ])
            .prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
        0..12,
    )
    .prop_map(|pieces| pieces.concat())
}

/// The verdict a walk reaches for `path`: every ancestor is matched first
/// and its results are passed down.
fn walked(matcher: &PatternMatcher, path: &str) -> bool {
    let mut info = MatchInfo::default();
    let mut verdict = false;
    let ends = path.match_indices('/').map(|(slash, _)| slash);
    for end in ends.chain(std::iter::once(path.len())) {
        (verdict, info) = matcher
            .matches_using_parent_results(&path[..end], &info)
            .unwrap();
    }
    verdict
}

/// Reference semantics for a glob without `**` or classes: `*` is any run of
/// non-`/` characters, `?` one non-`/` character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            let run = text.iter().take_while(|&&c| c != b'/').count();
            (0..=run).any(|skip| glob(rest, &text[skip..]))
        }
        Some((b'?', rest)) => text.first().is_some_and(|&c| c != b'/') && glob(rest, &text[1..]),
        Some((&c, rest)) => text.first() == Some(&c) && glob(rest, &text[1..]),
    }
}

proptest! {
    #[test]
    fn literal_pattern_matches_itself_and_its_descendants_only(
        target in path(),
        child in "[a-c]{1,3}",
        other in path(),
    ) {
        let matcher = PatternMatcher::new([&target]).unwrap();
        prop_assert!(matcher.matches(&target));
        let descendant = format!("{target}/{child}");
        prop_assert!(matcher.matches(&descendant));
        prop_assert!(walked(&matcher, &descendant));
        let sibling = format!("{target}{child}");
        prop_assert!(!matcher.matches(&sibling));
        let related = other == target || other.starts_with(&format!("{target}/"));
        prop_assert_eq!(matcher.matches(&other), related);
    }

    #[test]
    fn single_star_globs_match_components_like_the_reference(
        // No `**`: every `*` is followed by another character or ends the segment.
        segments in prop::collection::vec(r"(\*?[ab?]){1,3}\*?", 1..4),
        target in path(),
    ) {
        let pattern = segments.join("/");
        let matcher = PatternMatcher::new([&pattern]).unwrap();
        // Excluded if the path or any parent directory matches.
        let ends = target.match_indices('/').map(|(slash, _)| slash);
        let want = ends
            .chain(std::iter::once(target.len()))
            .any(|end| glob(pattern.as_bytes(), &target.as_bytes()[..end]));
        prop_assert_eq!(matcher.matches(&target), want, "pattern {:?}", pattern);
    }

    #[test]
    fn without_exclusions_walk_and_direct_matching_agree(
        patterns in prop::collection::vec("[ab*/]{1,6}", 0..4),
        target in path(),
    ) {
        let Ok(matcher) = PatternMatcher::new(&patterns) else {
            return Ok(());
        };
        let direct = matcher.matches(&target);
        prop_assert_eq!(walked(&matcher, &target), direct);
        let (no_context, _) = matcher
            .matches_using_parent_results(&target, &MatchInfo::default())
            .unwrap();
        prop_assert_eq!(no_context, direct);
    }

    #[test]
    fn never_panics_on_arbitrary_patterns_and_paths(
        patterns in prop::collection::vec(noisy_text(), 0..4),
        target in noisy_text(),
    ) {
        if let Ok(matcher) = PatternMatcher::new(&patterns) {
            matcher.matches(&target);
            walked(&matcher, &target);
        }
        if let Ok(parsed) = parse_ignore_file(&patterns.join("\n")) {
            // Whatever parses must compile.
            prop_assert!(PatternMatcher::new(&parsed).is_ok());
        }
    }
}
