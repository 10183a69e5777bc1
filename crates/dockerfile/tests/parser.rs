//! Parser behaviour beyond BuildKit's test files: heredocs, directives, errors and warnings,
//! spans. Expectations come from reading BuildKit's parser; each test names the rule.

use stagecraft_dockerfile::{Arguments, Dockerfile, Keyword, ParseError, parse_str};

fn parse(text: &str) -> Dockerfile {
    parse_str("Dockerfile", text).unwrap_or_else(|e| panic!("{}", e.render()))
}

fn error(text: &str) -> ParseError {
    match parse_str("Dockerfile", text) {
        Ok(file) => panic!("parsed, but should fail:\n{}", file.dump()),
        Err(e) => e,
    }
}

#[test]
fn heredocs_collect_bodies_and_quoting() {
    let file = parse(
        "FROM a\nRUN <<EOF\necho $HOME\nEOF\n\
         COPY <<one <<'two' /dest\n1\none\n2\ntwo\n\
         RUN <<-TABS\n\t\tindented\n\tTABS\n\
         RUN 3<<\"Q\" cat <&3\n# not a comment\nQ\n",
    );
    let docs: Vec<_> = file.instructions.iter().map(|i| &i.heredocs).collect();
    assert!(docs[0].is_empty());
    assert_eq!(docs[1][0].name, "EOF");
    assert_eq!(docs[1][0].content, "echo $HOME\n");
    assert!(docs[1][0].expand);
    assert_eq!(
        (docs[2][0].name.as_str(), docs[2][0].content.as_str()),
        ("one", "1\n")
    );
    assert_eq!(
        (docs[2][1].name.as_str(), docs[2][1].expand),
        ("two", false)
    );
    assert!(docs[3][0].chomp);
    // The body keeps its tabs; chomping is applied on use.
    assert_eq!(docs[3][0].content, "\t\tindented\n");
    assert_eq!(docs[3][0].chomped_content(), "indented\n");
    assert_eq!(docs[4][0].file_descriptor, 3);
    assert_eq!(docs[4][0].content, "# not a comment\n");
    // Heredoc lines count towards the instruction's end line.
    let lines: Vec<_> = file
        .instructions
        .iter()
        .map(|i| (i.start_line, i.end_line))
        .collect();
    assert_eq!(lines, [(1, 1), (2, 4), (5, 9), (10, 12), (13, 15)]);
}

#[test]
fn heredocs_only_in_run_copy_add_shell_form() {
    let file = parse("FROM a\nUSER <<X\nRUN [\"<<EOF\"]\nONBUILD RUN <<EOF\nbody\nEOF\n");
    assert!(file.instructions[1].heredocs.is_empty());
    assert!(file.instructions[2].heredocs.is_empty());
    assert_eq!(file.instructions[3].heredocs[0].content, "body\n");
}

#[test]
fn unterminated_heredoc_is_an_error() {
    let err = error("FROM a\nRUN <<EOF\necho hi\n");
    assert!(err.message().contains("unterminated heredoc"), "{err}");
    assert_eq!(err.position().line, 2);
}

#[test]
fn directives_only_at_the_top() {
    let file = parse("# syntax=docker/dockerfile:1.7\n#check=skip=JSONArgsRecommended\nFROM a\n");
    assert_eq!(
        file.directives.syntax.as_ref().unwrap().value,
        "docker/dockerfile:1.7"
    );
    assert_eq!(
        file.directives.check.as_ref().unwrap().value,
        "skip=JSONArgsRecommended"
    );
    // After a comment that is not a directive, `# escape=` is an ordinary comment.
    let file = parse("# hello\n# escape=`\nFROM a\nRUN a \\\n b\n");
    assert_eq!(file.escape, '\\');
    assert_eq!(file.instructions.len(), 2);
    // A blank line ends the directives too.
    let file = parse("\n# escape=`\nFROM a\n");
    assert_eq!(file.escape, '\\');
    // Unknown directive names end the search.
    let file = parse("# foo=bar\n# escape=`\nFROM a\n");
    assert!(file.directives.escape.is_none());
}

#[test]
fn directive_errors() {
    let err = error("# escape=x\nFROM a\n");
    assert_eq!(
        err.message(),
        "invalid escape token 'x' does not match ` or \\"
    );
    assert_eq!((err.position().line, err.position().column), (1, 10));
    let err = error("# syntax=a\n# SYNTAX=b\nFROM a\n");
    assert_eq!(
        err.message(),
        "only one syntax parser directive can be used"
    );
    assert_eq!(err.position().line, 2);
}

#[test]
fn comments_inside_continuations_are_dropped_and_blank_lines_warned() {
    let file = parse("FROM a\nRUN one \\\n# comment\n    two \\\n\n    three\n");
    assert_eq!(
        file.instructions[1].args.values(),
        ["one     two     three"]
    );
    assert_eq!(file.warnings.len(), 1);
    assert!(
        file.warnings[0]
            .message
            .starts_with("Empty continuation line found in: RUN one")
    );
    assert_eq!(file.warnings[0].line, 6);
}

#[test]
fn env_and_label_pairs() {
    let file =
        parse("FROM a\nENV a=b c=\"d e\" f\\ g=h\nENV legacy  the rest  \nLABEL \"k\"=v x=\n");
    let Arguments::KeyValues(pairs) = &file.instructions[1].args else {
        panic!()
    };
    let pairs: Vec<_> = pairs
        .iter()
        .map(|p| (p.key.value.as_str(), p.value.value.as_str()))
        .collect();
    assert_eq!(pairs, [("a", "b"), ("c", "\"d e\""), ("f\\ g", "h")]);
    let Arguments::KeyValues(legacy) = &file.instructions[2].args else {
        panic!()
    };
    assert!(legacy[0].legacy);
    assert_eq!(legacy[0].value.value, "the rest");
    assert_eq!(file.instructions[3].args.values(), ["\"k\"", "v", "x", ""]);
}

#[test]
fn env_errors_match_buildkit() {
    assert_eq!(
        error("FROM a\nENV PATH\n").message(),
        "ENV must have two arguments"
    );
    assert_eq!(
        error("FROM a\nLABEL x\n").message(),
        "LABEL must have two arguments"
    );
    let err = error("FROM a\nENV a=b c\n");
    assert_eq!(
        err.message(),
        "Syntax error - can't find = in \"c\". Must be of the form: name=value"
    );
    assert_eq!((err.position().line, err.position().column), (2, 9));
}

#[test]
fn healthcheck_and_onbuild_shapes() {
    let file = parse(
        "FROM a\nHEALTHCHECK --interval=5s CMD [\"curl\", \"-f\", \"x\"]\nHEALTHCHECK NONE\n\
         ONBUILD COPY --chown=1 . /app\n",
    );
    let health = &file.instructions[1];
    assert!(health.json);
    assert_eq!(health.args.values(), ["CMD", "curl", "-f", "x"]);
    assert_eq!(health.flags[0].value, "--interval=5s");
    assert_eq!(file.instructions[2].args.values(), ["NONE"]);
    let Arguments::Trigger(inner) = &file.instructions[3].args else {
        panic!()
    };
    assert_eq!(inner.keyword, Keyword::Copy);
    assert_eq!(inner.flags[0].value, "--chown=1");
    assert_eq!(inner.original, "COPY --chown=1 . /app");
    assert_eq!(inner.start_line, 4);
}

#[test]
fn chained_onbuild_is_rejected() {
    let err = error("FROM a\nONBUILD ONBUILD RUN x\n");
    assert!(err.message().contains("ONBUILD ONBUILD"), "{err}");
    assert_eq!((err.position().line, err.position().column), (2, 9));
}

#[test]
fn empty_and_comment_only_files_are_errors() {
    assert_eq!(error("").message(), "file with no instructions");
    assert_eq!(
        error("# only\n\n   \n").message(),
        "file with no instructions"
    );
}

#[test]
fn overlong_lines_are_rejected_like_buildkit() {
    let long = format!("FROM a\nRUN {}\n", "x".repeat(70_000));
    let err = error(&long);
    assert_eq!(
        err.message(),
        "dockerfile line greater than max allowed size of 65535"
    );
    assert_eq!(err.position().line, 2);
    // Just under the limit is fine.
    let ok = format!("FROM a\nRUN {}\n", "x".repeat(65_000));
    assert_eq!(parse(&ok).instructions.len(), 2);
}

#[test]
fn keywords_are_case_insensitive_and_spans_point_at_words() {
    let text = "from alpine As build\ncopy --from=build \\\n    /a /b\n";
    let file = parse(text);
    let copy = &file.instructions[1];
    assert_eq!(copy.keyword, Keyword::Copy);
    assert_eq!(copy.keyword_text.value, "copy");
    let slice = |span: stagecraft_dockerfile::Span| &text[span.start..span.end];
    assert_eq!(slice(copy.flags[0].span), "--from=build");
    let args = copy.args.words();
    assert_eq!(slice(args[0].span), "/a");
    assert_eq!(file.source.position(args[1].span.start).line, 3);
    assert_eq!(file.source.position(args[1].span.start).column, 8);
}

#[test]
fn byte_order_mark_and_crlf_are_accepted() {
    let file = parse("\u{feff}FROM a\r\nRUN x \\\r\n  y\r\n");
    assert_eq!(file.dump(), "(from \"a\")\n(run \"x   y\")\n");
}

#[test]
fn flags_are_unquoted_and_double_dash_ends_them() {
    let file = parse("FROM a\nCOPY --chown=\"a b\" -- --weird /dst\n");
    let flags: Vec<_> = file.instructions[1]
        .flags
        .iter()
        .map(|f| f.value.as_str())
        .collect();
    assert_eq!(flags, ["--chown=a b"]);
    assert_eq!(file.instructions[1].args.values(), ["--weird", "/dst"]);
}
