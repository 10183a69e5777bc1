//! `--secret-build-arg`: RUN sees the value; the image, its history, the store and the output
//! never do. As root: builds need namespaces.

mod common;

use common::Machine;
use std::path::Path;

const SECRET: &str = "hunter2-s3cret";

const DOCKERFILE: &str = r#"FROM busybox:latest
ARG TOKEN
ARG PLAIN=visible
RUN echo "using $TOKEN with $PLAIN" && test "$(printf %s "$TOKEN" | sha256sum | cut -c1-64)" = "$EXPECTED" && echo done > /done
"#;

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(entry.display().to_string());
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(walk(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn a_secret_build_arg_reaches_run_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = common::busybox_layout(dir.path());
    // The RUN checks the value through its hash: the Dockerfile must not hold it either.
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(SECRET));
    let dockerfile = DOCKERFILE.replace("$EXPECTED", &expected);
    let machine = Machine::new(dir.path(), "m", &busybox, &[("Dockerfile", &dockerfile)]);
    let secret_arg = format!("TOKEN={SECRET}");
    let (_, stderr) = machine.build(&["-t", "app:1", "--secret-build-arg", &secret_arg]);
    assert!(stderr.contains("using **** with visible"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let leaks = files_containing(&machine.root, SECRET.as_bytes());
    assert!(leaks.is_empty(), "the secret is in {leaks:?}");

    let inspect = machine
        .stagecraft()
        .args(["inspect", "app:1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("TOKEN=****"), "{text}");
    assert!(text.contains("PLAIN=visible"), "{text}");

    // Another value is another cache key: the RUN runs again (and fails its check, so its
    // output shows the masked value is the new one).
    let output = machine
        .stagecraft()
        .args([
            "build",
            "--progress=plain",
            "--secret-build-arg",
            "TOKEN=other-value",
        ])
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("cache miss: variable TOKEN: secret"),
        "{stderr}"
    );
    assert!(!stderr.contains("other-value"), "{stderr}");
}

#[test]
fn a_secret_build_arg_cannot_be_written_into_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = common::busybox_layout(dir.path());
    let dockerfile = "FROM busybox:latest\nARG TOKEN\nENV API_TOKEN=$TOKEN\n";
    let machine = Machine::new(dir.path(), "m", &busybox, &[("Dockerfile", dockerfile)]);
    let output = machine
        .stagecraft()
        .args(["build", "--progress=plain", "--secret-build-arg"])
        .arg(format!("TOKEN={SECRET}"))
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the secret build argument TOKEN would be written into the image here"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:3:1"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}
