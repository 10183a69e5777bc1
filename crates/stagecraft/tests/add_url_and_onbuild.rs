//! `ADD <url>` against a loopback HTTP server, and ONBUILD triggers of a base image and of a
//! base stage, end to end as root.

mod common;

use common::{HttpServer, Machine, busybox_layout};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// The entries of a tar: path → (uid, mode, mtime, content).
fn tar_entries(path: &Path) -> std::collections::BTreeMap<String, (u64, u32, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            (
                entry
                    .path()
                    .unwrap()
                    .display()
                    .to_string()
                    .trim_end_matches('/')
                    .to_owned(),
                (
                    header.uid().unwrap(),
                    header.mode().unwrap() & 0o7777,
                    header.mtime().unwrap(),
                    content,
                ),
            )
        })
        .collect()
}

/// Builds `dockerfile` (a path in the context) expecting failure; returns stderr.
fn failed_build(machine: &Machine, dockerfile: &str) -> String {
    let output = machine
        .stagecraft()
        .args(["build", "--progress=plain", "-f"])
        .arg(machine.context.join(dockerfile))
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "the build succeeded:\n{stderr}");
    stderr
}

/// The sha256 of `data`, hex, from coreutils (this crate does not depend on a hasher).
fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn add_url_downloads_with_buildkit_mode_mtime_and_no_unpacking() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let served = dir.path().join("served");
    fs::create_dir(&served).unwrap();
    fs::write(served.join("tool.txt"), "remote v1\n").unwrap();
    // A tar archive: ADD unpacks local ones, never downloaded ones.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "inner.txt", &b"inner\n"[..])
        .unwrap();
    let archive = builder.into_inner().unwrap();
    fs::write(served.join("bundle.tar"), &archive).unwrap();
    // Its `Last-Modified` becomes the file's mtime (before SOURCE_DATE_EPOCH, so not clamped).
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(served.join("tool.txt"))
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let server = HttpServer::start(&served);
    let good = sha256_hex(b"remote v1\n");
    let dockerfile = format!(
        "FROM busybox:latest\n\
         ADD {tool} {bundle} /downloads/\n\
         ADD --chown=1:1 --chmod=755 {tool} /bin-tool\n\
         ADD --checksum=sha256:{good} {tool} /checked.txt\n\
         ADD {root} /index/\n\
         ADD --unpack=true {bundle} /unpacked/\n",
        tool = server.url("tool.txt"),
        bundle = server.url("bundle.tar"),
        root = server.url(""),
    );
    let machine = Machine::new(dir.path(), "m", &busybox, &[("Dockerfile", &dockerfile)]);
    let rootfs = dir.path().join("rootfs.tar");
    let output = format!("type=tar,dest={}", rootfs.display());
    let (_, stderr) = machine.build(&["-o", &output]);
    assert!(stderr.contains(": 5 steps run"), "{stderr}");

    let entries = tar_entries(&rootfs);
    let tool = &entries["downloads/tool.txt"];
    assert_eq!(
        (tool.0, tool.1, tool.2, tool.3.as_slice()),
        (0, 0o600, 1_000_000_000, &b"remote v1\n"[..])
    );
    assert_eq!(entries["downloads/bundle.tar"].3, archive);
    assert!(!entries.contains_key("downloads/inner.txt"), "{entries:?}");
    let bin = &entries["bin-tool"];
    assert_eq!((bin.0, bin.1), (1, 0o755));
    assert_eq!(entries["checked.txt"].3, b"remote v1\n");
    // A URL without a file name is saved as BuildKit names it.
    assert!(entries.contains_key("index/__unnamed__"), "{entries:?}");
    // Unless `--unpack=true` asks for it.
    assert_eq!(entries["unpacked/inner.txt"].3, b"inner\n");

    // Same content: every step is cached, though each URL was fetched again.
    let (_, stderr) = machine.build(&[]);
    assert!(stderr.contains(": 0 steps run, 5 cached"), "{stderr}");
    // New content: the steps that download it run again, and --checksum now refuses it.
    fs::write(served.join("tool.txt"), "remote v2\n").unwrap();
    let stderr = failed_build(&machine, "Dockerfile");
    let bad = sha256_hex(b"remote v2\n");
    assert!(
        stderr.contains(&format!("sha256:{good}")) && stderr.contains(&format!("sha256:{bad}")),
        "{stderr}"
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(stderr.contains("Dockerfile:4"), "{stderr}");
}

#[test]
fn add_url_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let served = dir.path().join("served");
    fs::create_dir(&served).unwrap();
    let server = HttpServer::start(&served);
    let missing = server.url("missing.bin");
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            (
                "missing.Dockerfile",
                &format!("FROM busybox:latest\nADD {missing} /x\n"),
            ),
            (
                "copy.Dockerfile",
                &format!("FROM busybox:latest\nCOPY {missing} /x\n"),
            ),
            (
                "local.Dockerfile",
                &format!(
                    "FROM busybox:latest\nADD --checksum=sha256:{} a.txt /\n",
                    "0".repeat(64)
                ),
            ),
            ("a.txt", "a"),
        ],
    );
    let stderr = failed_build(&machine, "missing.Dockerfile");
    assert!(stderr.contains("404"), "{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
    assert!(stderr.contains("missing.Dockerfile:2"), "{stderr}");
    let stderr = failed_build(&machine, "copy.Dockerfile");
    assert!(
        stderr.contains("source can't be a URL for COPY"),
        "{stderr}"
    );
    let stderr = failed_build(&machine, "local.Dockerfile");
    assert!(stderr.contains("checksum requires HTTP(S)"), "{stderr}");
}

#[test]
fn onbuild_triggers_run_in_the_next_build_and_are_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            (
                "base/Dockerfile",
                "FROM busybox:latest\n\
                 ONBUILD RUN echo triggered > /onbuild.txt\n\
                 ONBUILD COPY marker.txt /\n",
            ),
            (
                "Dockerfile",
                "FROM onbase:latest AS app\n\
                 RUN cat /onbuild.txt /marker.txt > /both.txt\n\
                 ONBUILD RUN echo from-stage > /stage.txt\n\
                 FROM app\n",
            ),
            ("marker.txt", "marker\n"),
        ],
    );
    machine
        .stagecraft()
        .args(["build", "--progress=plain", "-t", "onbase:latest"])
        .arg(machine.context.join("base"))
        .assert()
        .success();
    let inspect = |reference: &str| -> serde_json::Value {
        let output = machine
            .stagecraft()
            .args(["inspect", reference])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let base = inspect("onbase:latest");
    assert_eq!(
        base["config"]["config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered > /onbuild.txt", "COPY marker.txt /"])
    );

    // The base image's triggers run at the start of `app`, the base stage's ONBUILD at the
    // start of the final stage; neither is left in the result.
    let rootfs = dir.path().join("rootfs.tar");
    let output = format!("type=tar,dest={}", rootfs.display());
    machine.build(&["-t", "app:latest", "-o", &output]);
    let entries = tar_entries(&rootfs);
    assert_eq!(entries["both.txt"].3, b"triggered\nmarker\n");
    assert_eq!(entries["stage.txt"].3, b"from-stage\n");
    let app = inspect("app:latest");
    let on_build = &app["config"]["config"]["OnBuild"];
    assert!(
        on_build.is_null() || on_build.as_array().is_some_and(Vec::is_empty),
        "{app}"
    );
}

#[test]
fn a_failing_onbuild_trigger_points_at_from() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest AS base\nONBUILD RUN exit 7\n\nFROM base\nRUN true\n",
        )],
    );
    let stderr = failed_build(&machine, "Dockerfile");
    assert!(stderr.contains("Dockerfile:4"), "{stderr}");
    assert!(stderr.contains("exit code: 7"), "{stderr}");
    assert!(
        stderr.contains("ONBUILD trigger \"RUN exit 7\""),
        "{stderr}"
    );
}
