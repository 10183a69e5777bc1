//! Property tests: laws the expansion follows for whole families of inputs.

use proptest::prelude::*;
use proptest::sample::select;
use stagecraft_shell::{Env, EnvGetter, Lexer};

/// Characters with a meaning to the lexer, plus a few ordinary ones, so that
/// random words are dense in syntax.
fn syntax_heavy_word() -> impl Strategy<Value = String> {
    let interesting = select(vec![
        '$', '{', '}', ':', '-', '+', '?', '=', '#', '%', '/', '\\', '`', '\'', '"', '*', '<', ' ',
        '\t', '\n', 'a', 'B', '_', '0', '1', '@', 'é', '한', '٣', '\u{feff}',
    ]);
    prop::collection::vec(prop_oneof![4 => interesting, 1 => any::<char>()], 0..40)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Text that the lexer passes through untouched.
fn plain_text() -> impl Strategy<Value = String> {
    "[^$'\"\\\\\u{feff}]*"
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,6}"
}

fn lexer_with_options() -> impl Strategy<Value = Lexer> {
    (select(vec!['\\', '`']), any::<[bool; 4]>()).prop_map(|(escape, [a, b, c, d])| {
        Lexer::new(escape)
            .with_raw_quotes(a)
            .with_raw_escapes(b)
            .with_skip_unset_env(c)
            .with_skip_process_quotes(d)
    })
}

fn single_var(value: &str) -> Env {
    [("V", value)].into_iter().collect()
}

proptest! {
    // Random words are cheap to expand, so try many of them.
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn never_panics_and_entry_points_agree(
        lexer in lexer_with_options(),
        word in syntax_heavy_word(),
        a in syntax_heavy_word(),
        with_empty in any::<bool>(),
    ) {
        let mut env: Env = [("a", a.as_str()), ("B", "x y")].into_iter().collect();
        if with_empty {
            env.set("_", "");
        }
        let word_result = lexer.process_word(&word, &env);
        let with_matches = lexer.process_word_with_matches(&word, &env);
        let words = lexer.process_words(&word, &env);
        match (&word_result, &with_matches, &words) {
            (Ok(result), Ok(expansion), Ok(_)) => {
                prop_assert_eq!(result, &expansion.result);
                prop_assert!(expansion.matched.is_disjoint(&expansion.unmatched));
                for name in &expansion.matched {
                    prop_assert!(env.get(name).is_some());
                }
                for name in &expansion.unmatched {
                    prop_assert!(env.get(name).is_none());
                }
            }
            (Err(err), Err(err2), Err(err3)) => {
                prop_assert_eq!(err, err2);
                prop_assert_eq!(err, err3);
                prop_assert_eq!(err.word(), word.as_str());
                prop_assert!(err.to_string().starts_with("failed to process \""));
            }
            _ => prop_assert!(false, "entry points disagree: {:?} {:?} {:?}", word_result, with_matches, words),
        }
    }
}

proptest! {
    #[test]
    fn plain_text_is_unchanged(text in plain_text()) {
        let expansion = Lexer::default().process_word_with_matches(&text, &Env::new()).unwrap();
        prop_assert_eq!(&expansion.result, &text);
        prop_assert!(expansion.matched.is_empty() && expansion.unmatched.is_empty());
    }

    #[test]
    fn plain_text_splits_on_whitespace(text in plain_text()) {
        // `<<` glues itself to the next word, so leave it out here.
        prop_assume!(!text.contains('<'));
        let words = Lexer::default().process_words(&text, &Env::new()).unwrap();
        prop_assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn single_quotes_are_literal(text in "[^']*") {
        let word = format!("'{text}'");
        prop_assert_eq!(Lexer::default().process_word(&word, &Env::new()).unwrap(), text);
        let raw = Lexer::default().with_raw_quotes(true);
        prop_assert_eq!(raw.process_word(&word, &Env::new()).unwrap(), word);
    }

    #[test]
    fn an_escaped_character_is_literal(c in any::<char>(), escape in select(vec!['\\', '`'])) {
        let word = format!("{escape}{c}");
        prop_assert_eq!(Lexer::new(escape).process_word(&word, &Env::new()).unwrap(), c.to_string());
    }

    #[test]
    fn references_expand_to_values(
        vars in prop::collection::btree_map(name(), any::<String>(), 1..5),
        braced in any::<bool>(),
    ) {
        let env: Env = vars.clone().into_iter().collect();
        let mut word = String::new();
        let mut expected = String::new();
        for (name, value) in &vars {
            // An unbraced name must not run into the next one.
            if braced {
                word.push_str(&format!("${{{name}}}"));
            } else {
                word.push_str(&format!("${name}-"));
                expected.push_str(value);
                expected.push('-');
                continue;
            }
            expected.push_str(value);
        }
        let expansion = Lexer::default().process_word_with_matches(&word, &env).unwrap();
        prop_assert_eq!(expansion.result, expected);
        prop_assert_eq!(expansion.matched, vars.into_keys().collect());
        prop_assert!(expansion.unmatched.is_empty());
    }

    #[test]
    fn default_and_alternative_follow_posix(value in prop::option::of(".{0,3}"), word in "[a-z]{0,3}") {
        let env: Env = value.iter().map(|value| ("V", value.as_str())).collect();
        let expand = |op: &str| Lexer::default().process_word(&format!("${{V{op}{word}}}"), &env).unwrap();
        let set = value.is_some();
        let non_empty = value.as_deref().is_some_and(|value| !value.is_empty());
        let value = value.clone().unwrap_or_default();
        prop_assert_eq!(expand("-"), if set { value.clone() } else { word.clone() });
        prop_assert_eq!(expand(":-"), if non_empty { value.clone() } else { word.clone() });
        prop_assert_eq!(expand("+"), if set { word.clone() } else { String::new() });
        prop_assert_eq!(expand(":+"), if non_empty { word.clone() } else { String::new() });
    }

    #[test]
    fn literal_patterns_trim_like_strip(value in any::<String>(), pattern in "[a-z0-9]{1,3}") {
        let env = single_var(&value);
        let expand = |op: &str| Lexer::default().process_word(&format!("${{V{op}{pattern}}}"), &env).unwrap();
        let without_prefix = value.strip_prefix(pattern.as_str()).unwrap_or(&value);
        let without_suffix = value.strip_suffix(pattern.as_str()).unwrap_or(&value);
        prop_assert_eq!(expand("#"), without_prefix);
        prop_assert_eq!(expand("##"), without_prefix);
        prop_assert_eq!(expand("%"), without_suffix);
        prop_assert_eq!(expand("%%"), without_suffix);
    }

    #[test]
    fn literal_patterns_replace_like_str_replace(
        value in "[ab/\u{e9}\n]{0,12}",
        pattern in "[ab]{1,2}",
        replacement in "[xy]{0,2}",
    ) {
        let env = single_var(&value);
        let lexer = Lexer::default();
        prop_assert_eq!(
            lexer.process_word(&format!("${{V//{pattern}/{replacement}}}"), &env).unwrap(),
            value.replace(&pattern, &replacement)
        );
        prop_assert_eq!(
            lexer.process_word(&format!("${{V/{pattern}/{replacement}}}"), &env).unwrap(),
            value.replacen(&pattern, &replacement, 1)
        );
    }

    #[test]
    fn star_patterns_take_the_shortest_or_longest_match(value in "[abc\u{e9}]{0,10}", c in select(vec!['a', 'b'])) {
        let env = single_var(&value);
        let expand = |word: String| Lexer::default().process_word(&word, &env).unwrap();
        let after_first = value.split_once(c).map_or(value.as_str(), |(_, after)| after);
        let after_last = value.rsplit_once(c).map_or(value.as_str(), |(_, after)| after);
        let before_first = value.split_once(c).map_or(value.as_str(), |(before, _)| before);
        let before_last = value.rsplit_once(c).map_or(value.as_str(), |(before, _)| before);
        prop_assert_eq!(expand(format!("${{V#*{c}}}")), after_first);
        prop_assert_eq!(expand(format!("${{V##*{c}}}")), after_last);
        prop_assert_eq!(expand(format!("${{V%{c}*}}")), before_last);
        prop_assert_eq!(expand(format!("${{V%%{c}*}}")), before_first);
    }

    #[test]
    fn skipping_unset_variables_keeps_references(
        parts in prop::collection::vec(
            prop_oneof![
                "[a-z. /-]{1,4}".prop_map(|text| (text.clone(), text)),
                name().prop_map(|name| (format!("${name}"), format!("${name}"))),
                name().prop_map(|name| (format!("${{{name}}}"), format!("${{{name}}}"))),
                (name(), select(vec![":-", "-", ":+", "+", "?", ":?", ":=", "#", "%%", "/x/"]), "[a-z]{0,3}")
                    .prop_map(|(name, op, word)| {
                        let reference = format!("${{{name}{op}{word}}}");
                        (reference.clone(), reference)
                    }),
                // BuildKit writes `//` back as a single `/`.
                (name(), "[a-z]{0,3}").prop_map(|(name, word)| {
                    (format!("${{{name}//x/{word}}}"), format!("${{{name}/x/{word}}}"))
                }),
            ],
            0..6,
        )
    ) {
        let (word, expected): (String, String) = parts.into_iter().unzip();
        let lexer = Lexer::default().with_skip_unset_env(true);
        prop_assert_eq!(lexer.process_word(&word, &Env::new()).unwrap(), expected);
    }

    #[test]
    fn case_insensitive_env_ignores_ascii_case(name in name(), value in ".{0,4}") {
        let mut env = Env::new_case_insensitive();
        env.set(name.to_lowercase(), value.as_str());
        prop_assert_eq!(env.get(&name.to_uppercase()), Some(value.as_str()));
        prop_assert_eq!(env.get(&name), Some(value.as_str()));
    }
}
