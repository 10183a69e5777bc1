//! What scripts rely on from `build`, as from `docker buildx build`: stdout carries the image ID
//! (or the pushed digest), `--iidfile` and `--metadata-file` name the image as it was exported,
//! JSON progress is JSON on every line, `-q` prints nothing else, bad `--build-arg`s are
//! refused, and `--build-arg SOURCE_DATE_EPOCH` clamps times. As root: builds need namespaces.

mod common;

use common::{Machine, busybox_layout, exported_manifest};
use std::fs;

const DOCKERFILE: &str = "FROM busybox:latest\nRUN echo built > /built\nENV GREETING=hello\n";

fn machine(dir: &std::path::Path) -> Machine {
    let busybox = busybox_layout(dir);
    Machine::new(dir, "m", &busybox, &[("Dockerfile", DOCKERFILE)])
}

#[test]
fn stdout_iidfile_and_metadata_name_the_image_as_exported() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    let layout = dir.path().join("image.oci.tar");
    let iidfile = dir.path().join("iid");
    let metadata_file = dir.path().join("metadata.json");
    let (stdout, _) = m.build(&[
        "-t",
        "contract:1",
        "--output",
        &format!("type=oci,dest={}", layout.display()),
        "--iidfile",
        iidfile.to_str().unwrap(),
        "--metadata-file",
        metadata_file.to_str().unwrap(),
    ]);
    let manifest = exported_manifest(&layout, &m.root);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    // stdout and --iidfile: the image ID, which is the config digest.
    assert_eq!(stdout, config_digest);
    assert_eq!(fs::read_to_string(&iidfile).unwrap(), config_digest);
    // --metadata-file: the exported manifest (compressed layers), never the store's own.
    let metadata: serde_json::Value =
        serde_json::from_slice(&fs::read(&metadata_file).unwrap()).unwrap();
    assert_eq!(metadata["containerimage.config.digest"], config_digest);
    assert_eq!(metadata["containerimage.digest"], manifest["digest"]);
    assert_eq!(
        metadata["containerimage.descriptor"]["digest"],
        manifest["digest"]
    );
    assert_eq!(metadata["image.name"], "docker.io/library/contract:1");
    let inspect = m
        .stagecraft()
        .args(["inspect", "contract:1"])
        .output()
        .unwrap();
    let local = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(
        !local.contains(manifest["digest"].as_str().unwrap()),
        "the store's manifest names plain layers, the exported one compressed ones"
    );
}

#[test]
fn json_progress_is_json_on_every_line_and_ends_with_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    let output = m
        .stagecraft()
        .args(["build", "--progress=json", "--no-cache"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        events
            .iter()
            .all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "build_finished");
    assert_eq!(last["image_id"], stdout.as_str());
    assert_eq!(last["steps_run"], 1);
    assert!(events.iter().any(|e| e["event"] == "step_finished"));
}

#[test]
fn quiet_prints_nothing_but_the_image_id() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    let output = m
        .stagecraft()
        .args(["build", "-q"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stdout.starts_with("sha256:") && stdout.trim().len() == 71,
        "{stdout}"
    );
}

#[test]
fn malformed_build_args_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    for bad in ["=foo", "", "A B=c"] {
        let output = m
            .stagecraft()
            .args(["build", "--build-arg", bad])
            .arg(&m.context)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{bad:?}: {stderr}");
        assert!(
            stderr.contains("--build-arg NAME=VALUE"),
            "{bad:?}: {stderr}"
        );
    }
}

#[test]
fn source_date_epoch_as_a_build_argument_clamps_the_image_times() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    // The machine's environment says 1700000000; the build argument wins.
    m.build(&["--build-arg", "SOURCE_DATE_EPOCH=1234", "-t", "epoch:1"]);
    let inspect = m
        .stagecraft()
        .args(["inspect", "epoch:1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("1970-01-01T00:20:34Z"), "{text}");
    assert!(!text.contains("2023-11-14"), "{text}");
    let output = m
        .stagecraft()
        .args(["build", "--build-arg", "SOURCE_DATE_EPOCH=yesterday"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SOURCE_DATE_EPOCH"));
}

#[test]
fn an_image_output_without_push_only_names_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    // docker.io is out of reach here: a push would fail the build.
    let (stdout, stderr) = m.build(&["-o", "type=image,name=foo:1,push=false"]);
    assert!(!stderr.contains("pushed"), "{stderr}");
    let inspect = m.stagecraft().args(["inspect", "foo:1"]).output().unwrap();
    assert!(inspect.status.success());
    assert!(
        String::from_utf8_lossy(&inspect.stdout).contains(&stdout),
        "the named image is the one built"
    );
    // Keys an exporter does not have are refused, naming the valid ones.
    let refused = dir.path().join("x.tar");
    let output = m
        .stagecraft()
        .args(["build", "-o"])
        .arg(format!(
            "type=docker,dest={},compression=zstd",
            refused.display()
        ))
        .arg(&m.context)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(!refused.exists(), "a refused output was written");
    assert!(String::from_utf8_lossy(&output.stderr).contains("its keys are type, dest, name"));
}

#[test]
fn a_dash_output_streams_the_file_system_tar_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain", "-o", "-"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut archive = tar::Archive::new(output.stdout.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "built"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
}

#[test]
fn add_unpacks_only_tar_archives_deciding_by_content() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let m = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest\nADD notes.gz /plain/\nADD bundle.bin /unpacked/\n",
        )],
    );
    // A gzip of text: copied as it is, name and bytes.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(b"not a tar\n").unwrap();
    let notes = encoder.finish().unwrap();
    fs::write(m.context.join("notes.gz"), &notes).unwrap();
    // A tar under a name that says nothing: unpacked.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "inside.txt", &b"inside"[..])
        .unwrap();
    fs::write(m.context.join("bundle.bin"), builder.into_inner().unwrap()).unwrap();
    let out = dir.path().join("rootfs");
    m.build(&["-o", &format!("type=local,dest={}", out.display())]);
    assert_eq!(fs::read(out.join("plain/notes.gz")).unwrap(), notes);
    assert_eq!(
        fs::read(out.join("unpacked/inside.txt")).unwrap(),
        b"inside"
    );
}

/// Runs a build that must fail with exit 1; returns stderr.
fn failing_build(m: &Machine, dockerfile: &str, extra: &[&str]) -> String {
    fs::write(m.context.join("Dockerfile"), dockerfile).unwrap();
    let output = m
        .stagecraft()
        .arg("build")
        .args(extra)
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn mistakes_are_said_before_any_registry_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    // A typo of a stage's name: no registry (docker.io is out of reach here) is contacted.
    let stderr = failing_build(
        &m,
        "FROM busybox:latest AS builder\nRUN echo x > /x\nFROM busybox:latest\nCOPY --from=buidler /x /x\n",
        &[],
    );
    assert!(
        stderr.contains("no stage or image named buidler — did you mean stage builder?"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:4"), "{stderr}");
    // A target with no close name lists the stages.
    let stderr = failing_build(
        &m,
        "FROM busybox:latest AS builder\nFROM busybox:latest AS runtime\n",
        &["--target", "production"],
    );
    assert!(
        stderr.contains("the named stages are builder, runtime"),
        "{stderr}"
    );
    // An image neither in the store nor in its registry: both facts.
    let stderr = failing_build(&m, "FROM 127.0.0.1:9/nosuch:1\n", &[]);
    assert!(stderr.contains("not in the store"), "{stderr}");
    assert!(stderr.contains("--insecure-registry"), "{stderr}");
    // A context directory that does not exist is said to be missing, not its Dockerfile.
    let output = m
        .stagecraft()
        .args(["build", "-f"])
        .arg(m.context.join("Dockerfile"))
        .arg(dir.path().join("no-such-dir"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn add_host_reaches_run_steps_and_load_is_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let m = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest\nRUN grep db.internal /etc/hosts > /hosts-line\n",
        )],
    );
    let out = dir.path().join("rootfs");
    let (_, stderr) = m.build(&[
        "--add-host",
        "db.internal:10.1.2.3",
        "--load",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ]);
    let line = fs::read_to_string(out.join("hosts-line")).unwrap();
    assert!(
        line.contains("10.1.2.3") && line.contains("db.internal"),
        "{line}"
    );
    assert!(
        stderr.contains("--load: the image is in stagecraft's store"),
        "{stderr}"
    );
    // A malformed entry is refused by the flag parser.
    let output = m
        .stagecraft()
        .args(["build", "--add-host", "db.internal:not-an-ip"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not an IP address"));
}

#[test]
fn pulling_a_missing_tag_is_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    let _registry = common::RegistryProcess::start(&dir.path().join("registry"), 5393);
    let output = assert_cmd::Command::cargo_bin("stagecraft")
        .unwrap()
        .env("STAGECRAFT_ROOT", dir.path().join("store"))
        .args(["pull", "127.0.0.1:5393/nosuch:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no such tag or digest"), "{stderr}");
    assert!(!stderr.contains("envelope"), "{stderr}");
}

/// `--progress=rawjson` (BuildKit's raw solve status) is refused with the reason and the way
/// to stagecraft's JSON lines; an unknown mode lists the valid ones, `none` among them.
#[test]
fn progress_rawjson_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    for (mode, expected) in [
        ("rawjson", "use --progress=json"),
        ("fancy", "valid: auto, tty, plain, json, quiet, none"),
    ] {
        let output = m
            .stagecraft()
            .args(["build", "--progress", mode])
            .arg(&m.context)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{mode}: {stderr}");
        assert!(stderr.contains(expected), "{mode}: {stderr}");
        assert!(output.stdout.is_empty(), "{mode}");
    }
}

/// buildx flags stagecraft cannot honour are errors that name the flag and say why; nothing
/// is built.
#[test]
fn unsupported_buildx_flags_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    for (args, expected) in [
        (
            &["--cgroup-parent", "/ci"][..],
            "--cgroup-parent \"/ci\" is not supported: stagecraft runs RUN steps",
        ),
        (
            &["--resource", "memory=2g"][..],
            "--resource \"memory=2g\" is not supported",
        ),
        (
            &["--policy", "filename=p.rego"][..],
            "--policy \"filename=p.rego\" is not supported",
        ),
        (
            &["--builder", "mybuilder"][..],
            "--builder \"mybuilder\": no such builder",
        ),
    ] {
        let output = m
            .stagecraft()
            .arg("build")
            .args(args)
            .arg(&m.context)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    // BUILDX_BUILDER names a builder as --builder does.
    let output = m
        .stagecraft()
        .env("BUILDX_BUILDER", "remote")
        .arg("build")
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("BUILDX_BUILDER \"remote\": no such builder"),
        "{stderr}"
    );
}

/// `--builder default` (and `stagecraft`) is this builder; `-D` logs the resolved request;
/// `--progress=none` is quiet; `unpack=` is accepted on image outputs.
#[test]
fn builder_debug_progress_none_and_unpack_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    let output = m
        .stagecraft()
        .args([
            "build",
            "--builder",
            "default",
            "-D",
            "-o",
            "type=image,name=dbg:1,unpack=true",
        ])
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("debug: outputs [Image"), "{stderr}");
    assert!(stderr.contains("debug: session finished in"), "{stderr}");
    let output = m
        .stagecraft()
        .args(["build", "--builder", "stagecraft", "--progress=none"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("sha256:"));
}

/// docker build's hidden legacy flags, as buildx takes them: `--rm`, `--force-rm`,
/// `--compress`, `--squash`… build with a note that says why they do nothing; the resource
/// limits (`-m`, `--cpu-quota`…) are refused as `--resource` is.
#[test]
fn legacy_docker_build_flags_are_noted_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path());
    let output = m
        .stagecraft()
        .args([
            "build",
            "--rm",
            "--force-rm=false",
            "--compress",
            "--squash",
        ])
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("no intermediate containers"), "{stderr}");
    assert!(
        stderr.contains("--compress: the context is read in place"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--squash: removed with BuildKit"),
        "{stderr}"
    );
    let output = m
        .stagecraft()
        .args(["build", "-m", "2g"])
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--memory (buildx's --resource \"memory=2g\") is not supported"),
        "{stderr}"
    );
}
