//! Builds for other platforms: `FROM --platform`, `--platform`, the platform build arguments
//! and RUN under emulation (binfmt_misc with qemu-user-static, which `scripts/setup.sh`
//! registers), on an offline busybox index for linux/amd64 and linux/arm64. As root: builds
//! need namespaces.

mod common;

use common::{Machine, multi_platform_busybox_layout};
use std::path::Path;

fn machine(dir: &Path, dockerfile: &str) -> Machine {
    let busybox = multi_platform_busybox_layout(dir, "linux/amd64,linux/arm64");
    Machine::new(dir, "m", &busybox, &[("Dockerfile", dockerfile)])
}

/// RUN of arm64 programs needs an interpreter registered for them; `scripts/setup.sh` does it.
fn require_arm64_emulation() {
    assert!(
        Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(),
        "no arm64 interpreter in binfmt_misc: run scripts/setup.sh (../shared/fixtures/setup-binfmt)"
    );
}

/// Builds with `extra` flags into a `type=tar` output; returns the file `path` of the result.
fn build_file(m: &Machine, extra: &[&str], path: &str) -> String {
    let out = m.context.parent().unwrap().join("out.tar");
    let mut args = extra.to_vec();
    let output = format!("type=tar,dest={}", out.display());
    args.extend(["--output", &output]);
    m.build(&args);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(path.trim_start_matches('/')) {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            return text;
        }
    }
    panic!("{path} is not in the result");
}

#[test]
fn from_platform_picks_the_base_for_that_platform_and_runs_it_emulated() {
    require_arm64_emulation();
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        "FROM --platform=linux/arm64 busybox\nRUN uname -m > /arch\n",
    );
    assert_eq!(build_file(&m, &[], "/arch"), "aarch64\n");
    // The image's config says so too.
    m.build(&["-t", "arm:1"]);
    let inspect = m.stagecraft().args(["inspect", "arm:1"]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["config"]["architecture"], "arm64");
    assert_eq!(json["config"]["os"], "linux");
}

#[test]
fn cross_compile_pattern_builds_on_the_build_platform_for_the_target() {
    require_arm64_emulation();
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        "FROM --platform=$BUILDPLATFORM busybox AS build\n\
         ARG TARGETOS TARGETARCH\n\
         RUN echo \"$TARGETOS/$TARGETARCH on $(uname -m)\" > /out\n\
         FROM busybox\n\
         COPY --from=build /out /out\n\
         RUN uname -m >> /out\n",
    );
    let host_machine = std::process::Command::new("uname")
        .arg("-m")
        .output()
        .unwrap();
    let host_machine = String::from_utf8(host_machine.stdout).unwrap();
    assert_eq!(
        build_file(&m, &["--platform", "linux/arm64"], "/out"),
        format!("linux/arm64 on {host_machine}aarch64\n")
    );
}

#[test]
fn a_base_without_the_platform_says_which_platforms_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), "FROM busybox\nRUN true\n");
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain", "--platform", "linux/s390x"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the store has it for linux/amd64, linux/arm64, not for linux/s390x"),
        "{stderr}"
    );
}

#[test]
fn platform_values_are_normalized_and_bad_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        "FROM busybox\nARG TARGETPLATFORM\nRUN echo $TARGETPLATFORM > /p\n",
    );
    require_arm64_emulation();
    assert_eq!(
        build_file(&m, &["--platform", "linux/aarch64"], "/p"),
        "linux/arm64\n"
    );
    let output = m
        .stagecraft()
        .args(["build", "--platform", "linux"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected os/arch[/variant]"), "{stderr}");
}

#[test]
fn a_single_platform_base_of_another_platform_is_used_with_buildkits_warning() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = common::busybox_layout(dir.path());
    let m = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[("Dockerfile", "FROM busybox\nENV A=1\n")],
    );
    let (_, stderr) = m.build(&["--platform", "linux/arm64"]);
    let host = stagecraft_image::Platform::host();
    assert!(
        stderr.contains(&format!(
            "InvalidBaseImagePlatform: base image busybox was pulled with platform \"{host}\", expected \"linux/arm64\""
        )),
        "{stderr}"
    );
}

#[test]
fn a_foreign_run_without_an_interpreter_names_the_architecture_and_the_fix() {
    // s390x: setup registers arm64 and arm only.
    assert!(
        !Path::new("/proc/sys/fs/binfmt_misc/qemu-s390x").exists(),
        "this test needs an architecture without a binfmt_misc interpreter"
    );
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        "FROM scratch\nCOPY --chmod=755 tool /tool\nRUN [\"/tool\"]\n",
    );
    // A 64-bit big-endian ELF header for s390x (EM_S390 = 22), executable type.
    let mut elf = vec![0u8; 64];
    elf[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 2, 1]);
    elf[16..18].copy_from_slice(&2u16.to_be_bytes());
    elf[18..20].copy_from_slice(&22u16.to_be_bytes());
    elf[20..24].copy_from_slice(&1u32.to_be_bytes());
    std::fs::write(m.context.join("tool"), elf).unwrap();
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain", "--platform", "linux/s390x"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/tool, an s390x (s390x) program")
            && stderr.contains("no binfmt_misc interpreter registered for s390x")
            && stderr.contains("qemu-user-static"),
        "{stderr}"
    );
}

/// A cross-compiling Dockerfile: a `$BUILDPLATFORM` builder with a step every platform shares
/// (its random stamp tells whether it ran once) and a step per target, then a runtime stage that
/// runs `uname -m` (emulated for arm64).
const CROSS: &str = "FROM --platform=$BUILDPLATFORM busybox AS build\n\
RUN echo $RANDOM$RANDOM$RANDOM > /stamp\n\
ARG TARGETARCH\n\
RUN echo \"for $TARGETARCH on $(uname -m)\" > /out\n\
FROM busybox\n\
COPY --from=build /out /stamp /\n\
RUN uname -m >> /out\n";

const BOTH: &str = "linux/amd64,linux/arm64";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn two_platforms_give_one_index_and_share_the_build_platform_stage() {
    require_arm64_emulation();
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), CROSS);
    let out = dir.path().join("work");
    std::fs::create_dir_all(&out).unwrap();
    // A relative destination, split per platform as buildx's local exporter does.
    let output = m
        .stagecraft()
        .current_dir(&out)
        .args([
            "build",
            "--progress=json",
            "--platform",
            BOTH,
            "-t",
            "app:multi",
        ])
        .args(["--output", "type=local,dest=rootfs"])
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let host = String::from_utf8(
        std::process::Command::new("uname")
            .arg("-m")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let amd64 = out.join("rootfs/linux_amd64");
    let arm64 = out.join("rootfs/linux_arm64");
    assert_eq!(
        read(&amd64.join("out")),
        format!("for amd64 on {host}x86_64\n")
    );
    assert_eq!(
        read(&arm64.join("out")),
        format!("for arm64 on {host}aarch64\n")
    );
    // The shared builder step ran once: both images hold the same random stamp.
    assert_eq!(read(&amd64.join("stamp")), read(&arm64.join("stamp")));
    // Progress names each step's platform, with the target of a cross-compiling stage, and the
    // shared step appears once as run and once as taken from the other graph.
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let stages: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step_started")
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    for label in [
        "linux/amd64 build",
        "linux/amd64->arm64 build",
        "linux/amd64 stage-1",
        "linux/arm64 stage-1",
    ] {
        assert!(stages.contains(&label), "{label} not in {stages:?}");
    }
    let stamp_steps: Vec<usize> = events
        .iter()
        .filter(|e| {
            e["event"] == "step_started" && e["name"].as_str().unwrap().contains("> /stamp")
        })
        .map(|e| e["id"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(stamp_steps.len(), 2);
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| {
            e["event"] == "step_finished"
                && stamp_steps.contains(&(e["id"].as_u64().unwrap() as usize))
        })
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, ["cached", "done"], "{statuses:?}");
    // The tag names an index of both platforms.
    let images = m.stagecraft().args(["images"]).output().unwrap();
    let listing = String::from_utf8_lossy(&images.stdout);
    let line = listing
        .lines()
        .find(|l| l.starts_with("app ") && l.contains(" multi "))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.contains("linux/amd64,linux/arm64"), "{line}");
}

#[test]
fn a_two_platform_push_is_an_index_the_registry_serves() {
    require_arm64_emulation();
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), CROSS);
    let _registry = common::RegistryProcess::start(&dir.path().join("registry"), 5398);
    let (stdout, _) = m.build(&[
        "--platform",
        BOTH,
        "-t",
        "127.0.0.1:5398/app:multi",
        "--push",
    ]);
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg("docker://127.0.0.1:5398/app:multi")
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    // stdout is the pushed digest: the index's.
    assert_eq!(
        stdout,
        stagecraft_image::Digest::of(&raw.stdout).to_string()
    );
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    // buildx's default provenance follows the images: one attestation manifest each.
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["platform"]["os"] != "unknown")
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let attested: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["vnd.docker.reference.digest"].as_str())
        .collect();
    assert_eq!(attested.len(), 2, "{index}");
}

#[test]
fn a_docker_archive_of_two_platforms_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), "FROM busybox\nRUN touch /ran\n");
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain", "--platform", BOTH])
        .args(["--output", "type=docker,dest=image.tar"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("docker exporter does not currently support exporting manifest lists"),
        "{stderr}"
    );
    assert!(!stderr.contains("RUN touch"), "a step ran:\n{stderr}");
}

#[test]
fn every_platforms_cache_records_travel() {
    require_arm64_emulation();
    let dir = tempfile::tempdir().unwrap();
    let a = machine(dir.path(), CROSS);
    let cache = dir.path().join("cache");
    a.build(&[
        "--platform",
        BOTH,
        "--cache-to",
        &format!("type=local,dest={},mode=max", cache.display()),
    ]);
    let busybox = dir.path().join("busybox-multi");
    let b = Machine::new(dir.path(), "b", &busybox, &[("Dockerfile", CROSS)]);
    let (_, stderr) = b.build(&[
        "--platform",
        BOTH,
        "--cache-from",
        &format!("type=local,src={}", cache.display()),
    ]);
    assert!(!stderr.contains("cache miss"), "{stderr}");
    assert!(stderr.contains("0 steps run"), "{stderr}");
}
