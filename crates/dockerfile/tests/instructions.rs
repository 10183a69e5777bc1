//! The instruction layer: stages, flags and argument rules as BuildKit's `instructions` package.

use stagecraft_dockerfile::{CommandKind, Healthcheck, Stages, parse_str};
use std::time::Duration;

fn stages(text: &str) -> Stages {
    let file = parse_str("Dockerfile", text).unwrap_or_else(|e| panic!("{}", e.render()));
    file.stages().unwrap_or_else(|e| panic!("{}", e.render()))
}

fn stage_error(text: &str) -> String {
    let file = parse_str("Dockerfile", text).unwrap_or_else(|e| panic!("{}", e.render()));
    match file.stages() {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => format!("{}|{}", e.message(), e.hint().unwrap_or("")),
    }
}

#[test]
fn stages_meta_args_and_names() {
    let s = stages(
        "ARG BASE=alpine\nFROM ${BASE} AS Build\nRUN make\nFROM --platform=$BUILDPLATFORM scratch\n\
         COPY --from=build /out /out\n",
    );
    assert_eq!(s.meta_args.len(), 1);
    assert_eq!(s.stages.len(), 2);
    assert_eq!(s.stages[0].name.as_deref(), Some("build"));
    assert_eq!(s.stages[0].base.value, "${BASE}");
    assert_eq!(
        s.stages[1].platform.as_ref().unwrap().value,
        "$BUILDPLATFORM"
    );
    let CommandKind::Copy(copy) = &s.stages[1].commands[0].kind else {
        panic!()
    };
    assert_eq!(copy.from.as_ref().unwrap().value, "build");
    assert_eq!(copy.paths.sources[0].value, "/out");
    assert_eq!(copy.paths.dest.value, "/out");
}

#[test]
fn instruction_before_from_is_rejected() {
    assert!(stage_error("RUN x\nFROM a\n").starts_with("no build stage in current context"));
}

#[test]
fn flag_rules_match_bflags() {
    assert_eq!(
        stage_error("FROM a\nCOPY --user=me a b\n"),
        "unknown flag: --user|this instruction accepts --chown, --from, --chmod, --link, --exclude, --parents"
    );
    assert_eq!(
        stage_error("FROM a\nCOPY --form=x a b\n"),
        "unknown flag: --form|did you mean --from?"
    );
    assert_eq!(
        stage_error("FROM a\nCOPY --from=a --from=b a b\n"),
        "duplicate flag specified: --from|"
    );
    assert_eq!(
        stage_error("FROM a\nCOPY --link= a b\n"),
        "missing a value on flag: --link|write --link=VALUE"
    );
    assert_eq!(
        stage_error("FROM a\nCOPY --from a b\n"),
        "missing a value on flag: --from|write --from=VALUE"
    );
    assert_eq!(
        stage_error("FROM a\nCOPY --link=yes a b\n"),
        "expecting boolean value for flag --link, not: yes|"
    );
    assert_eq!(
        stage_error("FROM a\nWORKDIR --x /a\n"),
        "unknown flag: --x|this instruction takes no flags"
    );
    // Repeatable flags and boolean spellings.
    let s = stages(
        "FROM a\nCOPY --exclude=*.md --exclude=*.txt --link=FALSE . /\nRUN --network=none true\n",
    );
    let CommandKind::Copy(copy) = &s.stages[0].commands[0].kind else {
        panic!()
    };
    assert_eq!(copy.excludes.len(), 2);
    assert!(!copy.link);
    let CommandKind::Run(run) = &s.stages[0].commands[1].kind else {
        panic!()
    };
    assert_eq!(run.network, "none");
    assert!(
        stage_error("FROM a\nRUN --network=bridge x\n")
            .starts_with("invalid network mode \"bridge\"")
    );
    // --security: BuildKit's two modes, sandbox by default.
    let s = stages("FROM a\nRUN true\nRUN --security=insecure true\n");
    let modes: Vec<&str> = s.stages[0]
        .commands
        .iter()
        .map(|c| match &c.kind {
            CommandKind::Run(run) => run.security.as_str(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(modes, ["sandbox", "insecure"]);
    assert_eq!(
        stage_error("FROM a\nRUN --security=privileged x\n"),
        "security \"privileged\" is not valid|"
    );
    // STOPSIGNAL and ARG never look at their flags.
    stages("FROM a\nSTOPSIGNAL --whatever SIGTERM\nARG --x=1 y\n");
}

#[test]
fn argument_counts() {
    assert!(stage_error("FROM a b\n").starts_with("FROM requires either one or three arguments"));
    assert!(stage_error("FROM a AS 1st\n").starts_with("invalid name for build stage: \"1st\""));
    assert!(
        stage_error("FROM a\nCOPY onlyone\n").starts_with("COPY requires at least two arguments")
    );
    assert!(stage_error("FROM a\nWORKDIR\n").starts_with("WORKDIR requires exactly one argument"));
    assert!(stage_error("FROM a\nENV\n").starts_with("ENV requires at least one argument"));
    assert!(stage_error("FROM a\nENV =x\n").starts_with("ENV names can not be blank"));
    assert!(stage_error("FROM a\nARG =x\n").starts_with("ARG names can not be blank"));
    assert!(
        stage_error("FROM a\nSHELL sh -c\n")
            .starts_with("SHELL requires the arguments to be in JSON form")
    );
    assert!(stage_error("FROM a\nSHELL []\n").starts_with("SHELL requires at least one argument"));
    assert!(
        stage_error("FROM a\nVOLUME [\"\"]\n")
            .starts_with("VOLUME specified can not be an empty string")
    );
    assert!(
        stage_error("FROM a\nCOPY a <<EOF\nx\nEOF\n")
            .starts_with("COPY cannot accept a heredoc as a destination")
    );
    assert!(
        stage_error("FROM a\nONBUILD FROM b\n")
            .starts_with("FROM isn't allowed as an ONBUILD trigger")
    );
}

#[test]
fn command_lines_and_heredoc_sources() {
    let s = stages(
        "FROM a\nCMD [\"a\", \"b\"]\nENTRYPOINT exec  app\nCOPY <<-EOF /etc/conf\n\tkey=v\nEOF\n\
         ONBUILD RUN <<X\nhi\nX\nEXPOSE 8080/tcp 443\n",
    );
    let c = &s.stages[0].commands;
    let CommandKind::Cmd(cmd) = &c[0].kind else {
        panic!()
    };
    assert_eq!(
        (cmd.args.clone(), cmd.prepend_shell),
        (vec!["a".into(), "b".into()], false)
    );
    let CommandKind::Entrypoint(ep) = &c[1].kind else {
        panic!()
    };
    assert_eq!(
        (ep.args.clone(), ep.prepend_shell),
        (vec!["exec  app".into()], true)
    );
    let CommandKind::Copy(copy) = &c[2].kind else {
        panic!()
    };
    assert_eq!(copy.paths.inline[0].path, "EOF");
    assert_eq!(copy.paths.inline[0].data, "key=v\n");
    assert!(copy.paths.sources.is_empty());
    let CommandKind::Onbuild(expression) = &c[3].kind else {
        panic!()
    };
    assert_eq!(expression, "RUN <<X\nhi\nX");
    let CommandKind::Expose(ports) = &c[4].kind else {
        panic!()
    };
    let ports: Vec<_> = ports.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(ports, ["443", "8080/tcp"]);
}

#[test]
fn healthcheck_options() {
    let s = stages(
        "FROM a\nHEALTHCHECK --interval=30s --timeout=1.5s --retries=3 CMD curl -f x\nHEALTHCHECK NONE\n",
    );
    let CommandKind::Healthcheck(Healthcheck::Check {
        test,
        interval,
        timeout,
        retries,
        ..
    }) = &s.stages[0].commands[0].kind
    else {
        panic!()
    };
    assert_eq!(test, &["CMD-SHELL", "curl -f x"]);
    assert_eq!(
        (*interval, *timeout, *retries),
        (Duration::from_secs(30), Duration::from_millis(1500), 3)
    );
    assert!(matches!(
        s.stages[0].commands[1].kind,
        CommandKind::Healthcheck(Healthcheck::None)
    ));
    assert!(
        stage_error("FROM a\nHEALTHCHECK --interval=1us CMD x\n")
            .starts_with("Interval \"interval\" cannot be less than 1ms")
    );
    assert!(
        stage_error("FROM a\nHEALTHCHECK --retries=-1 CMD x\n")
            .starts_with("--retries cannot be negative (-1)")
    );
    assert!(
        stage_error("FROM a\nHEALTHCHECK CMD\n")
            .starts_with("Missing command after HEALTHCHECK CMD")
    );
    assert!(
        stage_error("FROM a\nHEALTHCHECK RUN x\n")
            .starts_with("Unknown type \"RUN\" in HEALTHCHECK (try CMD)")
    );
    assert!(
        stage_error("FROM a\nHEALTHCHECK NONE x\n")
            .starts_with("HEALTHCHECK NONE takes no arguments")
    );
}
