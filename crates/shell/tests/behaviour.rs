//! Behaviour of the public API, case by case: operators, quoting, special
//! parameters, errors, the lexer options and word splitting.

use std::collections::BTreeSet;

use stagecraft_shell::{Env, ExpandErrorKind, Expansion, Lexer};

fn env(vars: &[(&str, &str)]) -> Env {
    vars.iter().copied().collect()
}

fn expand(word: &str, vars: &[(&str, &str)]) -> String {
    Lexer::default()
        .process_word(word, &env(vars))
        .unwrap_or_else(|err| panic!("{word:?}: {err}"))
}

fn error(word: &str, vars: &[(&str, &str)]) -> String {
    match Lexer::default().process_word(word, &env(vars)) {
        Ok(result) => panic!("{word:?} expanded to {result:?} instead of failing"),
        Err(err) => err.to_string(),
    }
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

mod operators {
    use super::*;

    #[test]
    fn plain_references() {
        let vars = [("A", "x"), ("E", "")];
        assert_eq!(expand("$A ${A} $E${E}. $NOPE${NOPE}", &vars), "x x . ");
        assert_eq!(expand("$A_B ${A}_B $A.B", &vars), " x_B x.B");
    }

    #[test]
    fn default_and_alternative() {
        let vars = [("SET", "v"), ("EMPTY", "")];
        // `-` and `+` look at whether the variable is set; with `:` an empty
        // value counts as unset too.
        assert_eq!(expand("${SET-d} ${EMPTY-d} ${NOPE-d}", &vars), "v  d");
        assert_eq!(expand("${SET:-d} ${EMPTY:-d} ${NOPE:-d}", &vars), "v d d");
        assert_eq!(expand("${SET+a} ${EMPTY+a} ${NOPE+a}", &vars), "a a ");
        assert_eq!(expand("${SET:+a} ${EMPTY:+a} ${NOPE:+a}", &vars), "a  ");
        assert_eq!(expand("${NOPE:-}", &vars), "");
    }

    #[test]
    fn operands_are_expanded_and_nest() {
        let vars = [("A", "x"), ("B", "y")];
        assert_eq!(expand("${NOPE:-$A-${B}}", &vars), "x-y");
        assert_eq!(expand("${NOPE:-${NOPE2:-${B}}}", &vars), "y");
        assert_eq!(expand("${A:+[${B:+$A}]}", &vars), "[x]");
        assert_eq!(expand("${NOPE:-a 'b}' \"c}\" d\\}}", &vars), "a b} c} d}");
    }

    #[test]
    fn required() {
        let vars = [("SET", "plain"), ("EMPTY", ""), ("ARG", "x")];
        assert_eq!(expand("${SET?msg} ${SET:?msg}", &vars), "plain plain");
        assert_eq!(expand("${EMPTY?msg}", &vars), "");
        assert!(error("${EMPTY:?message here$ARG}", &vars).ends_with(": EMPTY: message herex"));
        assert!(error("${NOPE:?message here$ARG}", &vars).ends_with(": NOPE: message herex"));
        assert!(error("${NOPE?message here$ARG}", &vars).ends_with(": NOPE: message herex"));
        assert!(error("${NOPE?}", &vars).ends_with(": NOPE: is not allowed to be unset"));
        assert!(error("${NOPE:?}", &vars).ends_with(": NOPE: is not allowed to be unset"));
        assert!(error("${EMPTY:?}", &vars).ends_with(": EMPTY: is not allowed to be empty"));
    }

    #[test]
    fn prefix_and_suffix_removal() {
        let vars = [("F", "xxyy"), ("X", "x"), ("E", "")];
        assert_eq!(
            expand("${F#x} ${F#*x} ${F##*x} ${F#*} ${F##*}", &vars),
            "xyy xyy yy xxyy "
        );
        assert_eq!(
            expand("${F%y} ${F%y*} ${F%%y*} ${F%*} ${F%%*}", &vars),
            "xxy xxy xx xxyy "
        );
        assert_eq!(
            expand("${F#} ${F##} ${F%} ${F%%}", &vars),
            "xxyy xxyy xxyy xxyy"
        );
        assert_eq!(expand("${F#$X} ${F#$E} ${F%%$E}", &vars), "xyy xxyy xxyy");
        assert_eq!(expand("${F#*x*y}", &vars), "y");
        assert_eq!(expand("${F#q} ${NOPE#x}.", &vars), "xxyy .");
        assert_eq!(expand("${F#xy}", &vars), "xxyy");
    }

    #[test]
    fn patterns_are_globs_not_regexes() {
        assert_eq!(
            expand("${F#()[]{\\}^$.\\*\\?|\\\\}", &[("F", "()[]{}^$.*?|\\x")]),
            "x"
        );
        assert_eq!(expand("${F#[ab]}", &[("F", "[ab]c")]), "c");
        assert_eq!(expand("${F#?\\?}", &[("F", "???y")]), "?y");
        assert_eq!(expand("${F%%\\**}", &[("F", "xx**")]), "xx");
        assert_eq!(expand("${F%%\\**\\*}", &[("F", "a***yy*")]), "a");
        // Wildcards never match a newline.
        assert_eq!(expand("${F#*}|${F##*}", &[("F", "a\nb")]), "a\nb|\nb");
        // Unicode is matched by character.
        assert_eq!(expand("${F#?}${F%??}", &[("F", "한국어")]), "국어한");
    }

    #[test]
    fn substitution() {
        let vars = [
            ("F", "/foo*/*/*.txt"),
            ("NEEDLE", "\\*/"),
            ("P", "/tmp/tmp/bar.txt"),
            ("TMP", "/tmp"),
            ("C", "/a/foo/b/c.txt"),
            ("ANY", "/?/"),
            ("SLASH", "/"),
            ("URL", "http://google.de"),
        ];
        assert_eq!(
            expand("${F/$NEEDLE/.} ${F//$NEEDLE/.}", &vars),
            "/foo.*/*.txt /foo..*.txt"
        );
        assert_eq!(
            expand("${P/$TMP/} ${P//$TMP/}", &vars),
            "/tmp/bar.txt /bar.txt"
        );
        assert_eq!(
            expand("${C/$ANY/$SLASH} ${C//$ANY/$SLASH}", &vars),
            "/foo/b/c.txt /foo/c.txt"
        );
        assert_eq!(
            expand("${URL/http:\\/\\//https:\\/\\/}", &vars),
            "https:\\/\\/google.de"
        );
        assert_eq!(
            expand("${URL/http:\\/\\//https://}", &vars),
            "https://google.de"
        );
        // Escaped slashes in the replacement keep their backslash.
        assert_eq!(expand("${P//\\//\\/}", &vars), "\\/tmp\\/tmp\\/bar.txt");
        assert_eq!(expand("${P/*/x} ${P//?/.}", &[("P", "ab")]), "x ..");
        assert_eq!(expand("${NOPE/a/b}.", &vars), ".");
    }

    #[test]
    fn substitution_edge_cases() {
        let vars = [("F", "xxyy"), ("E", "")];
        assert_eq!(expand("${F/$E/ww}", &vars), "wwxxyy");
        assert_eq!(expand("${F//$E/-}", &vars), "-x-x-y-y-");
        assert_eq!(expand("${F///}", &vars), "xxyy");
        assert_eq!(expand("${NOPE///}", &vars), "");
        assert!(error("${F//ww}", &vars).ends_with("syntax error: missing '/' in ${}"));
        assert!(error("${F//}", &vars).ends_with("syntax error: missing '/' in ${}"));
        assert!(error("${F/x/y", &vars).ends_with("syntax error: missing '}'"));
    }

    #[test]
    fn replace_all_treats_dollar_in_the_replacement_as_a_go_template() {
        // BuildKit passes the replacement of `//` to Go's ReplaceAllString:
        // `$0` is the match, other references are empty, `$$` is `$`.
        let vars = [("F", "a-b"), ("R", "<$0>"), ("D", "$$"), ("N", "$1$x")];
        assert_eq!(expand("${F//-/$R} ${F/-/$R}", &vars), "a<->b a<$0>b");
        assert_eq!(expand("${F//-/$D} ${F//-/$N}", &vars), "a$b ab");
        assert_eq!(expand("${F//-/$}", &vars), "a$b");
    }

    #[test]
    fn release_file_name() {
        let word = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
        let base = [("VERSION", "v1.2.3"), ("TARGETOS", "linux")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let vars: Vec<_> = base.iter().chain(extra).copied().collect();
            expand(word, &vars)
        };
        assert_eq!(
            with(&[("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")]),
            "something-v1.2.3.linux-arm-v7.tar.gz"
        );
        assert_eq!(
            with(&[("TARGETARCH", "arm64"), ("TARGETVARIANT", "")]),
            "something-v1.2.3.linux-arm64.tar.gz"
        );
        assert_eq!(
            with(&[("TARGETARCH", "arm64")]),
            "something-v1.2.3.linux-arm64.tar.gz"
        );
    }
}

mod quoting {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        let vars = [("PWD", "/home")];
        assert_eq!(expand("he'll'o \"a b\" 'c  d'", &vars), "hello a b c  d");
        assert_eq!(
            expand("'$PWD' \"$PWD\" \\$PWD \\\\$PWD", &vars),
            "$PWD /home $PWD \\/home"
        );
        assert_eq!(expand("'a\\tb' \"a\\tb\" a\\tb", &vars), "a\\tb a\\tb atb");
        assert_eq!(expand("\"\\\" \\$ \\\\ \\a\"", &vars), "\" $ \\ \\a");
        assert_eq!(expand("'\"' \"'\"", &vars), "\" '");
        assert_eq!(expand("hello\\", &vars), "hello");
        assert_eq!(expand("'hello\\'", &vars), "hello\\");
    }

    #[test]
    fn backtick_escape() {
        let lexer = Lexer::new('`');
        let vars = env(&[("A", "x"), ("V", "`*z")]);
        let expand = |word: &str| lexer.process_word(word, &vars).expect(word);
        assert_eq!(lexer.escape(), '`');
        assert_eq!(expand("`$A \\$A c:\\dir"), "$A \\x c:\\dir");
        assert_eq!(expand("\"`\" `$A `` \\\""), "\" $A ` \\");
        // Patterns keep their escapes and always use `\` themselves.
        assert_eq!(expand("${V#`*} ${V##`*}"), "*z ");
        assert_eq!(expand("${V#`\\*}"), "z");
    }

    #[test]
    fn special_and_positional_parameters_are_never_set() {
        let vars = [("A", "x")];
        assert_eq!(
            expand("[$@][$*][$#][$?][$-][$$][$!][$0][$1][$10]", &vars),
            "[][][][][][][][][][]"
        );
        assert_eq!(
            expand("$@@@ $1x $001a $999aaa ${1:-d} ${@:-d} ${#:+a}", &vars),
            "@@ x a aaa d d "
        );
        // A name is letters, digits and `_`; anything else is literal, and a
        // `$` without a name is kept.
        assert_eq!(expand("$ $. $A.b a$ $%", &vars), "$ $. x.b a$ $%");
    }

    #[test]
    fn names_use_unicode_letters_and_digits() {
        let vars = [("A", "x"), ("한국어", "k")];
        assert_eq!(expand("$한국어!", &vars), "k!");
        // Superscript two is a number but not a decimal digit: it ends the name.
        assert_eq!(expand("$A²", &vars), "x²");
        // Arabic-Indic digits are decimal digits: they continue a name and
        // form positional parameters.
        assert_eq!(expand("$A٣ $٣A", &vars), " A");
    }

    #[test]
    fn leading_byte_order_mark_is_dropped() {
        assert_eq!(expand("\u{feff}a\u{feff}b", &[]), "a\u{feff}b");
        assert_eq!(expand("${F#\u{feff}a}", &[("F", "ab")]), "b");
    }
}

mod errors {
    use super::*;

    #[test]
    fn messages_match_buildkit() {
        let vars = [("PWD", "/home"), ("X", "x")];
        let cases = [
            (
                "he'llo",
                "unexpected end of statement while looking for matching single-quote",
            ),
            (
                "\"hello\\\"",
                "unexpected end of statement while looking for matching double-quote",
            ),
            ("${", "syntax error: missing '}'"),
            ("${aaa:-bbb", "syntax error: missing '}'"),
            ("${}", "syntax error: bad substitution"),
            ("${:-x}", "syntax error: bad substitution"),
            ("${{aaa}", "syntax error: bad substitution"),
            ("he${PWD", "unsupported modifier (\u{fffd}) in substitution"),
            ("${.}", "unsupported modifier (.) in substitution"),
            ("${X=y}", "unsupported modifier (=) in substitution"),
            ("${X:=y}", "unsupported modifier (:=) in substitution"),
            ("${X:YYY}", "unsupported modifier (:Y) in substitution"),
            ("${X:#y}", "unsupported modifier (:#) in substitution"),
            ("${X:%%y}", "unsupported modifier (:%) in substitution"),
            ("${#x}", "unsupported modifier (x) in substitution"),
            (
                "${X#\\x}",
                "invalid pattern (\\x) in substitution: invalid escape '\\x'",
            ),
            (
                "${NOPE#a\\x}",
                "invalid pattern (a\\x) in substitution: invalid escape '\\x'",
            ),
            // `%` matches the reversed pattern, and BuildKit reports that.
            (
                "${X%a\\x}",
                "invalid pattern (\\xa) in substitution: invalid escape '\\x'",
            ),
            (
                "${X//\\x/}",
                "invalid pattern (\\x) in substitution: invalid escape '\\x'",
            ),
        ];
        for (word, reason) in cases {
            let quoted = word.replace('\\', "\\\\").replace('"', "\\\"");
            assert_eq!(
                error(word, &vars),
                format!("failed to process \"{quoted}\": {reason}"),
                "{word:?}"
            );
        }
    }

    #[test]
    fn running_into_the_end_reports_the_missing_delimiter() {
        // The inner `?` error or unterminated quote is reported as the outer
        // brace going missing, as in BuildKit.
        assert!(error("${A:-${B:?oops}", &[]).ends_with("syntax error: missing '}'"));
        assert!(error("${A:-'x}", &[]).ends_with("syntax error: missing '}'"));
        assert!(error("${A/'x/y}", &[]).ends_with("syntax error: missing '/' in ${}"));
        // Before the end, the inner error wins.
        assert!(error("${A:-${B:?oops}}", &[]).ends_with("B: oops"));
    }

    #[test]
    fn nesting_is_limited_instead_of_overflowing_the_stack() {
        let nested = |depth: usize| format!("{}x{}", "\"${A:-".repeat(depth), "}\"".repeat(depth));
        assert_eq!(expand(&nested(128), &[]), "x");
        assert!(error(&nested(129), &[]).ends_with(": substitutions nested more than 128 deep"));
        assert!(
            error(&nested(100_000), &[]).ends_with(": substitutions nested more than 128 deep")
        );
    }

    #[test]
    fn error_accessors() {
        let err = Lexer::default()
            .process_word("a${B?}", &Env::new())
            .expect_err("B is unset");
        assert_eq!(err.word(), "a${B?}");
        assert_eq!(
            err.kind(),
            &ExpandErrorKind::Required {
                name: "B".into(),
                message: "is not allowed to be unset".into()
            }
        );
    }
}

mod matches {
    use super::*;

    fn with_matches(word: &str, vars: &[(&str, &str)]) -> Expansion {
        Lexer::default()
            .process_word_with_matches(word, &env(vars))
            .unwrap_or_else(|err| panic!("{word:?}: {err}"))
    }

    #[test]
    fn reports_set_and_unset_names() {
        let vars = [("FOO", "xxx"), ("BAR", ""), ("DUMMY", "d")];
        let cases: &[(&str, &str, &[&str], &[&str])] = &[
            ("x", "x", &[], &[]),
            ("x ${UNUSED}", "x ", &[], &["UNUSED"]),
            ("x ${FOO}", "x xxx", &["FOO"], &[]),
            (
                "${FOO-a} ${BAR-b} ${BAZ-c}",
                "xxx  c",
                &["FOO", "BAR"],
                &["BAZ"],
            ),
            (
                "${FOO:-a} ${BAR:-b} ${BAZ:-c}",
                "xxx b c",
                &["FOO", "BAR"],
                &["BAZ"],
            ),
            (
                "${FOO+a} ${BAR+b} ${BAZ+c}",
                "a b ",
                &["FOO", "BAR"],
                &["BAZ"],
            ),
            (
                "${FOO:+a} ${BAR:+b} ${BAZ:+c}",
                "a  ",
                &["FOO", "BAR"],
                &["BAZ"],
            ),
            ("${FOO?a} ${BAR?b}", "xxx ", &["FOO", "BAR"], &[]),
            ("${ABC:-.}${FOO%x}${ABC:-.}", ".xx.", &["FOO"], &["ABC"]),
            // Names in an operand count even when the operand is not used.
            ("${FOO:-$ABC}", "xxx", &["FOO"], &["ABC"]),
            ("${FOO#$BAR}", "xxx", &["FOO", "BAR"], &[]),
            ("$1${@}", "", &[], &["1", "@"]),
        ];
        for &(word, result, matched, unmatched) in cases {
            let expansion = with_matches(word, &vars);
            assert_eq!(
                expansion,
                Expansion {
                    result: result.to_owned(),
                    matched: names(matched),
                    unmatched: names(unmatched),
                },
                "{word:?}"
            );
        }
    }

    #[test]
    fn errors_for_unsupported_forms() {
        for word in [
            "${FOO=aaa}",
            "${FOO=:aaa}",
            "${FOO=}",
            "${BAR:?bbb}",
            "${BAZ?ccc}",
            "${BAZ:?}",
            "${FOO:#}",
            "${FOO:##}",
            "${FOO:%}",
            "${FOO:%%}",
        ] {
            let result = Lexer::default()
                .process_word_with_matches(word, &env(&[("FOO", "x"), ("BAR", "")]));
            assert!(result.is_err(), "{word:?} gave {result:?}");
        }
    }
}

mod options {
    use super::*;

    #[test]
    fn raw_quotes_keep_quote_characters() {
        let lexer = Lexer::default().with_raw_quotes(true);
        let vars = env(&[("X", "1")]);
        assert_eq!(
            lexer.process_word("a'b $X'\"$X\"", &vars).unwrap(),
            "a'b $X'\"1\""
        );
        assert_eq!(
            lexer.process_words("'a b' \"c d\" e", &vars).unwrap(),
            ["'a b'", "\"c d\"", "e"]
        );
        assert!(lexer.process_word("'a", &vars).is_err());
    }

    #[test]
    fn raw_escapes_keep_escape_characters() {
        let lexer = Lexer::default().with_raw_escapes(true);
        let vars = env(&[("X", "1")]);
        let expand = |word: &str| lexer.process_word(word, &vars).expect(word);
        assert_eq!(expand("a\\ b \\$X $X\\"), "a\\ b \\$X 1\\");
        assert_eq!(
            lexer.process_words("a\\ b c", &vars).unwrap(),
            ["a\\ b", "c"]
        );
        // Inside double quotes an escape that escapes nothing comes out twice.
        assert_eq!(expand("\"\\$X\\a\""), "\\$X\\\\a");
        // The operands of `-`, `+` and `?` are always unescaped.
        assert_eq!(expand("${NOPE:-\\$X}"), "$X");
    }

    #[test]
    fn skip_unset_env_leaves_references_to_unset_variables() {
        let lexer = Lexer::default().with_skip_unset_env(true);
        let vars = env(&[("A", "1"), ("E", "")]);
        let expand = |word: &str| lexer.process_word(word, &vars).expect(word);
        assert_eq!(expand("$A $B ${B} $1"), "1 $B ${B} $1");
        assert_eq!(
            expand("${A:-x} ${E:-x} ${B:-x} ${B-$A}"),
            "1 x ${B:-x} ${B-1}"
        );
        assert_eq!(
            expand("${B#x} ${B%%x} ${B/a/b} ${B//a/b}"),
            "${B#x} ${B%%x} ${B/a/b} ${B/a/b}"
        );
        // Operators on unset variables are not evaluated, so not checked.
        assert_eq!(expand("${B:=x} ${B?} ${B:?no}"), "${B:=x} ${B?} ${B:?no}");
        assert!(lexer.process_word("${E:?no}", &vars).is_err());
        assert!(lexer.process_word("${B:#x}", &vars).is_err());
        assert!(lexer.process_word("${}", &vars).is_err());
    }

    #[test]
    fn skip_process_quotes_treats_quotes_as_text() {
        let lexer = Lexer::default().with_skip_process_quotes(true);
        let vars = env(&[("A", "1")]);
        assert_eq!(
            lexer.process_word("'$A' \"$A\" 'x", &vars).unwrap(),
            "'1' \"1\" 'x"
        );
        assert_eq!(
            lexer.process_words("'a b' \"c\"", &vars).unwrap(),
            ["'a", "b'", "\"c\""]
        );
        assert_eq!(lexer.process_word("${NOPE:-'a}'}", &vars).unwrap(), "'a'}");
    }

    #[test]
    fn heredoc_detection_setup() {
        // BuildKit finds heredocs in a RUN line with raw quotes, raw escapes
        // and unset variables skipped, so the line comes back unchanged.
        let lexer = Lexer::default()
            .with_raw_quotes(true)
            .with_raw_escapes(true)
            .with_skip_unset_env(true);
        let words = lexer
            .process_words("cat <<'EOF' <<-\"E2\" $OUT \\\n", &Env::new())
            .unwrap();
        assert_eq!(words, ["cat", "<<'EOF'", "<<-\"E2\"", "$OUT", "\\\n"]);
    }
}

mod words {
    use super::*;

    fn words(word: &str, vars: &[(&str, &str)]) -> Vec<String> {
        Lexer::default()
            .process_words(word, &env(vars))
            .unwrap_or_else(|err| panic!("{word:?}: {err}"))
    }

    #[test]
    fn splitting() {
        let vars = [("S", " a \t b\nc "), ("W", "a\u{3000}b\u{a0}c")];
        assert_eq!(words("  one  two\tthree\n", &vars), ["one", "two", "three"]);
        assert_eq!(words("x${S}y", &vars), ["x", "a", "b", "c", "y"]);
        assert_eq!(words("x\"${S}\"y", &vars), ["x a \t b\nc y"]);
        assert_eq!(words("a\\ b 'c d'", &vars), ["a b", "c d"]);
        assert_eq!(words("$W", &vars), ["a", "b", "c"]);
        assert!(words("", &vars).is_empty());
    }

    #[test]
    fn empty_words_are_dropped() {
        assert_eq!(words("a \"\" b '' $NOPE", &[]), ["a", "b"]);
    }

    #[test]
    fn heredoc_markers_stay_in_one_word() {
        assert_eq!(words("cat <<  EOF > x", &[]), ["cat", "<<  EOF", ">", "x"]);
        assert_eq!(words("a<b <<-EOF", &[]), ["a<b", "<<-EOF"]);
    }

    #[test]
    fn operator_expansion_drops_the_start_of_the_word() {
        // A BuildKit quirk, reproduced: the nested operand is read into the
        // same buffer as the word in progress and clears it first.
        let vars = [("X", "v")];
        assert_eq!(words("a${X:-b}c", &vars), ["vc"]);
        assert_eq!(words("a${NOPE:-b}c", &vars), ["bc"]);
        assert_eq!(words("a\"${NOPE:-b}\"c", &vars), ["bc"]);
        assert_eq!(words("a ${NOPE:-b} c", &vars), ["a", "b", "c"]);
        assert_eq!(words("a${X}c", &vars), ["avc"]);
        // Only word splitting is affected.
        assert_eq!(expand("a${X:-b}c", &vars), "avc");
    }
}
