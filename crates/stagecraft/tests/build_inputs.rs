//! Where `build` reads from and what else it can be asked, as `docker buildx build`: `build -`
//! (a Dockerfile, or a context archive, on standard input), `-f -` (the Dockerfile on standard
//! input, the context a directory), `--call=targets|outline|check` (answers about the
//! Dockerfile; nothing is built), and the limits of RUN steps (`--ulimit`, `--shm-size`). As
//! root: builds need namespaces.

mod common;

use common::{Machine, busybox_layout};
use std::fs;

fn machine(dir: &std::path::Path, files: &[(&str, &str)]) -> Machine {
    let busybox = busybox_layout(dir);
    Machine::new(dir, "m", &busybox, files)
}

/// Runs `build ARGS` with `stdin`; returns (success, stdout, stderr).
fn build_with_stdin(m: &Machine, args: &[&str], stdin: Vec<u8>) -> (bool, String, String) {
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain"])
        .args(args)
        .write_stdin(stdin)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_dockerfile_on_stdin_builds_with_an_empty_context() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), &[]);
    let out = dir.path().join("out");
    let (ok, stdout, stderr) = build_with_stdin(
        &m,
        &["-o", &format!("type=local,dest={}", out.display()), "-"],
        b"FROM busybox:latest\nRUN echo from-stdin > /made\n".to_vec(),
    );
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("sha256:"), "the image ID: {stdout}");
    assert_eq!(
        fs::read_to_string(out.join("made")).unwrap(),
        "from-stdin\n"
    );
    // The context is empty: there is nothing to copy.
    let (ok, _, stderr) = build_with_stdin(
        &m,
        &["-"],
        b"FROM busybox:latest\nCOPY anything /\n".to_vec(),
    );
    assert!(!ok);
    assert!(stderr.contains("anything"), "{stderr}");
    // Nothing of the stdin contexts stays in the store.
    assert!(
        common::names_in(&m.root.join("ingest"))
            .iter()
            .all(|name| !name.contains("stdin-context")),
        "{:?}",
        common::names_in(&m.root.join("ingest"))
    );
}

#[test]
fn a_tar_on_stdin_is_the_context_and_f_names_a_file_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), &[]);
    let mut archive = tar::Builder::new(Vec::new());
    for (path, data) in [
        (
            "build/Containerfile",
            "FROM busybox:latest\nCOPY data.txt /copied\n",
        ),
        ("data.txt", "in the archive\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        archive
            .append_data(&mut header, path, data.as_bytes())
            .unwrap();
    }
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, &archive.into_inner().unwrap()).unwrap();
    let out = dir.path().join("out");
    let (ok, _, stderr) = build_with_stdin(
        &m,
        &[
            "-f",
            "build/Containerfile",
            "-o",
            &format!("type=local,dest={}", out.display()),
            "-",
        ],
        gzip.finish().unwrap(),
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        fs::read_to_string(out.join("copied")).unwrap(),
        "in the archive\n"
    );
}

#[test]
fn dash_f_reads_the_dockerfile_from_stdin_with_a_context_directory() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), &[("data.txt", "from the directory\n")]);
    let out = dir.path().join("out");
    let (ok, _, stderr) = build_with_stdin(
        &m,
        &[
            "-f",
            "-",
            "-o",
            &format!("type=local,dest={}", out.display()),
            m.context.to_str().unwrap(),
        ],
        b"FROM busybox:latest\nCOPY data.txt /copied\n".to_vec(),
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        fs::read_to_string(out.join("copied")).unwrap(),
        "from the directory\n"
    );
    let (ok, _, stderr) = build_with_stdin(&m, &["-f", "-", "-"], b"FROM busybox\n".to_vec());
    assert!(!ok);
    assert!(
        stderr.contains("cannot both come from standard input"),
        "{stderr}"
    );
}

const CALL_DOCKERFILE: &str = "\
# GO_VERSION picks the toolchain
ARG GO_VERSION=1.22
ARG UNUSED=x

# build compiles the server
FROM golang:${GO_VERSION} AS build
# VERSION is stamped into the binary
ARG VERSION=dev
RUN --mount=type=secret,id=token,required=true --mount=type=ssh make

FROM busybox AS docs
ARG DOCS_THEME=dark

FROM scratch
COPY --from=build /out /
";

/// `build ARGS CONTEXT` on a context holding `CALL_DOCKERFILE`, without a store: `--call`
/// builds nothing.
fn call(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("Dockerfile"), CALL_DOCKERFILE).unwrap();
    let output = assert_cmd::Command::cargo_bin("stagecraft")
        .unwrap()
        .env("STAGECRAFT_ROOT", dir.path().join("store"))
        .arg("build")
        .args(args)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        !dir.path().join("store").exists(),
        "--call must not touch a store"
    );
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn call_targets_lists_the_stages_with_their_descriptions() {
    let (ok, stdout, stderr) = call(&["--call=targets"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "TARGET    DESCRIPTION\nbuild     compiles the server\ndocs      \n(default) \n"
    );
    let (ok, stdout, _) = call(&["--call", "targets,format=json"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["targets"][0]["name"], "build");
    assert_eq!(json["targets"][0]["base"], "golang:${GO_VERSION}");
    assert_eq!(json["targets"][2]["default"], true);
    assert_eq!(json["sources"].as_array().unwrap().len(), 1);
}

#[test]
fn call_outline_lists_what_the_target_takes() {
    let (ok, stdout, stderr) = call(&["--call=outline", "--build-arg", "VERSION=1.0"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "BUILD ARG    VALUE   DESCRIPTION\n\
         GO_VERSION   1.22    picks the toolchain\n\
         VERSION      1.0     is stamped into the binary\n\
         \n\
         SECRET   REQUIRED\n\
         token    true\n\
         \n\
         SSH       REQUIRED\n\
         default   \n\
         \n"
    );
    let (ok, stdout, _) = call(&["--call=outline,format=json", "--target", "docs"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["name"], "docs");
    assert_eq!(
        json["args"],
        serde_json::json!([{"name": "DOCS_THEME", "value": "dark", "location": {"ranges": [{"start": {"line": 12}, "end": {"line": 12}}]}}])
    );
}

#[test]
fn call_check_is_check_and_unknown_methods_are_refused() {
    let (ok, _, stderr) = call(&["--call=check"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("Check complete, no warnings found."),
        "{stderr}"
    );
    let (ok, stdout, _) = call(&["--call=check,format=json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
        serde_json::json!([])
    );
    let (ok, _, stderr) = call(&["--call=describe"]);
    assert!(!ok);
    assert!(
        stderr.contains("stagecraft answers build, check, outline and targets"),
        "{stderr}"
    );
    let (ok, _, stderr) = call(&["--call=outline,colour=red"]);
    assert!(!ok);
    assert!(stderr.contains("format= and ignorestatus="), "{stderr}");
    let (ok, _, stderr) = call(&["--call=outline", "--check"]);
    assert!(!ok);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn ulimit_and_shm_size_reach_run_steps_and_their_cache_keys() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        &[(
            "Dockerfile",
            "FROM busybox:latest\nRUN (ulimit -Sn; ulimit -Hn; df -k /dev/shm | tail -n 1 | awk '{print $2}') > /limits\n",
        )],
    );
    let limits = |extra: &[&str]| {
        let out = dir.path().join("out");
        let _ = fs::remove_dir_all(&out);
        let mut args = extra.to_vec();
        let dest = format!("type=local,dest={}", out.display());
        args.extend(["-o", &dest]);
        m.build(&args);
        fs::read_to_string(out.join("limits")).unwrap()
    };
    assert_eq!(
        limits(&["--ulimit", "nofile=100:200", "--shm-size", "128m"]),
        "100\n200\n131072\n"
    );
    // Without them the step is another one, not the cached run with the limits.
    let defaults = limits(&[]);
    assert!(defaults.ends_with("\n65536\n"), "{defaults}");
    assert!(!defaults.starts_with("100\n"), "{defaults}");
    let output = m
        .stagecraft()
        .args(["build", "--ulimit", "files=1"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("the types are core, cpu"));
}
