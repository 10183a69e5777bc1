//! `stagecraft lint` end to end: how the Dockerfile is named, and the inputs a build would
//! get (`--build-arg`, `--build-context`).

use assert_cmd::Command;
use std::fs;
use std::path::Path;

/// `stagecraft lint` with a store location that does not exist: lint must neither need nor
/// create one.
fn lint(store: &Path) -> Command {
    let mut command = Command::cargo_bin("stagecraft").unwrap();
    command.env("STAGECRAFT_ROOT", store).arg("lint");
    command
}

/// The rule ids of a `--format json` run, and its exit status.
fn rules(command: &mut Command) -> (Vec<String>, i32) {
    let output = command.args(["--format", "json"]).output().unwrap();
    let findings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let ids = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect();
    (ids, output.status.code().unwrap())
}

#[test]
fn the_dockerfile_is_a_positional_argument_or_dash_f() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("api.Dockerfile");
    fs::write(
        &file,
        "FROM alpine:3.20 AS Build\nUSER 1000\nCMD [\"true\"]\n",
    )
    .unwrap();

    let (positional, code) = rules(lint(&store).arg(&file));
    assert_eq!(
        (positional.as_slice(), code),
        (&["StageNameCasing".to_owned()][..], 0)
    );
    let (with_flag, _) = rules(lint(&store).arg("-f").arg(&file));
    assert_eq!(with_flag, positional);
    lint(&store)
        .arg(&file)
        .arg("-f")
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("cannot be used with"));
    assert!(!store.exists(), "lint created a store");
}

#[test]
fn build_args_reach_from_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("Dockerfile");
    fs::write(
        &file,
        "ARG BASE\nFROM ${BASE}\nRUN wget -qO- https://example.com/setup.sh | sh\n",
    )
    .unwrap();

    // Without the argument the base name is empty, and the build cannot even be planned.
    let (without, code) = rules(lint(&store).arg(&file));
    assert!(without.contains(&"BuildError".to_owned()), "{without:?}");
    assert_eq!(code, 1);

    let (with, code) = rules(
        lint(&store)
            .arg(&file)
            .args(["--build-arg", "BASE=alpine:3.20"]),
    );
    // BuildKit still warns that the default alone gives no image.
    assert_eq!(with, ["InvalidDefaultArgInFrom", "PipefailMissing"]);
    assert_eq!(code, 0);
}

#[test]
fn named_build_contexts_are_not_undefined_stages_or_images() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let file = dir.path().join("Dockerfile");
    fs::write(
        &file,
        "FROM tools\nCOPY --from=assets /dist /srv/www\nCMD [\"serve\"]\n",
    )
    .unwrap();

    let (without, _) = rules(lint(&store).arg(&file));
    assert!(
        without.contains(&"CopyFromUndefinedStage".to_owned()),
        "{without:?}"
    );
    assert!(
        without.contains(&"UntaggedBaseImage".to_owned()),
        "{without:?}"
    );

    let (with, code) = rules(lint(&store).arg(&file).args([
        "--build-context",
        "assets=./web/dist",
        "--build-context",
        "tools=docker-image://example.com/tools:1.4",
    ]));
    assert_eq!((with, code), (Vec::new(), 0));
    // Names are normalized as buildx and BuildKit do: `tools:latest` is `tools`.
    let (with, _) = rules(lint(&store).arg(&file).args([
        "--build-context",
        "assets=./web/dist",
        "--build-context",
        "docker.io/library/tools:latest=docker-image://example.com/tools:1.4",
    ]));
    assert_eq!(with, Vec::<String>::new());

    lint(&store)
        .arg(&file)
        .args(["--build-context", "assets"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("is not NAME=SOURCE"));
}

#[test]
fn rules_are_listed_and_explained_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let listed = lint(&store).arg("--list-rules").output().unwrap();
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).unwrap();
    let row = |id: &str| {
        listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"))
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row("SudoInRun"), "SudoInRun warning best-practice on");
    assert_eq!(
        row("InvalidDefinitionDescription"),
        "InvalidDefinitionDescription warning buildkit off"
    );

    // The page as docs/rules has it, whatever the working directory; ids in any case.
    let page = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/rules/PipefailMissing.md"
    ))
    .unwrap();
    lint(&store)
        .current_dir(dir.path())
        .args(["--explain", "pipefailmissing"])
        .assert()
        .success()
        .stdout(page);
    lint(&store)
        .args(["--explain", "PipefailMising"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("did you mean PipefailMissing?"));
}
