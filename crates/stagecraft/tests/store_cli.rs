//! Image store commands against real peers: skopeo and umoci read our OCI layouts, the Debian
//! `docker-registry` takes our pushes, and what skopeo pushed we pull back byte for byte.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn shared_dir() -> PathBuf {
    std::env::var_os("STAGECRAFT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

struct Env {
    dir: tempfile::TempDir,
    layout: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("busybox");
        let ok = std::process::Command::new(shared_dir().join("fixtures/make-busybox-image"))
            .arg(&layout)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        Env { dir, layout }
    }

    fn stagecraft(&self, store: &str) -> Command {
        let mut command = Command::cargo_bin("stagecraft").unwrap();
        command.env("STAGECRAFT_ROOT", self.dir.path().join(store));
        command
    }

    fn run(&self, store: &str, args: &[&str]) -> String {
        let output = self.stagecraft(store).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "stagecraft {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn tool(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A registry on a loopback port, stopped on drop.
struct RegistryProcess {
    pid: u32,
    port: u16,
}

impl RegistryProcess {
    fn start(data: &Path, port: u16) -> RegistryProcess {
        Self::start_with(data, port, &[])
    }

    fn start_with(data: &Path, port: u16, extra: &[&str]) -> RegistryProcess {
        let output = std::process::Command::new(shared_dir().join("fixtures/start-registry"))
            .arg(port.to_string())
            .arg(data)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "start-registry: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pid = std::fs::read_to_string(data.join("registry.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        RegistryProcess { pid, port }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.pid.to_string())
            .status();
    }
}

#[test]
fn oci_layouts_we_write_are_read_by_skopeo_and_umoci() {
    let env = Env::new();
    let loaded = env.run(
        "s",
        &[
            "load",
            "--tag",
            "busybox:latest",
            "-i",
            &env.layout.display().to_string(),
        ],
    );
    let digest = loaded.split_whitespace().nth(1).unwrap().to_owned();
    let archive = env.path("saved.tar");
    env.run("s", &["save", "busybox:latest", "-o", &archive]);
    let inspect = tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{archive}")],
    );
    let manifest: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    // The manifest bytes are the loaded ones: same digest after a load/save round trip.
    let layout = env.path("unpacked-layout");
    std::fs::create_dir(&layout).unwrap();
    tool("tar", &["-xf", &archive, "-C", &layout]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{layout}/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let bundle = env.path("bundle");
    tool(
        "umoci",
        &["unpack", "--image", &format!("{layout}:latest"), &bundle],
    );
    assert!(Path::new(&bundle).join("rootfs/bin/busybox").is_file());

    // A docker archive carries docker's manifest.json next to the OCI layout.
    let docker = env.path("docker.tar");
    env.run(
        "s",
        &[
            "save",
            "--format",
            "docker",
            "busybox:latest",
            "-o",
            &docker,
        ],
    );
    let listing = tool("tar", &["-tf", &docker]);
    assert!(listing.lines().any(|l| l == "manifest.json"), "{listing}");
    // And it loads back into a fresh store.
    let reloaded = env.run("t", &["load", "-i", &docker]);
    assert!(reloaded.contains("busybox:latest"), "{reloaded}");
}

#[test]
fn push_and_pull_keep_digests_with_a_real_registry() {
    let env = Env::new();
    let registry = RegistryProcess::start(&env.dir.path().join("registry"), 5392);
    let host = format!("127.0.0.1:{}", registry.port);
    // skopeo pushes, we pull: the manifest digest is the registry's.
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:latest", env.layout.display()),
            &format!("docker://{host}/base/busybox:1"),
        ],
    );
    let remote = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{host}/base/busybox:1"),
        ],
    );
    let pulled = env.run("a", &["pull", &format!("{host}/base/busybox:1")]);
    assert_eq!(pulled.split_whitespace().nth(1), Some(remote.trim()));
    // We push under a new name; skopeo sees the same digest.
    env.run(
        "a",
        &[
            "tag",
            &format!("{host}/base/busybox:1"),
            &format!("{host}/copy/busybox:2"),
        ],
    );
    let pushed = env.run("a", &["push", &format!("{host}/copy/busybox:2")]);
    let remote_copy = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            &format!("docker://{host}/copy/busybox:2"),
        ],
    );
    assert_eq!(pushed.split_whitespace().nth(1), Some(remote_copy.trim()));
    assert_eq!(remote_copy.trim(), remote.trim());
    // A second machine (another store) pulls it back.
    let again = env.run("b", &["pull", &format!("{host}/copy/busybox:2")]);
    assert_eq!(again.split_whitespace().nth(1), Some(remote.trim()));
}

#[test]
fn import_tag_inspect_rmi_prune_verify() {
    let env = Env::new();
    let rootfs = env.dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), "hi\n").unwrap();
    env.run("s", &["import", &rootfs.display().to_string(), "mine:1"]);
    env.run("s", &["tag", "mine:1", "mine:2"]);
    let images = env.run("s", &["images", "--format", "json"]);
    let images: Vec<serde_json::Value> = images
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(images.len(), 2);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.run("s", &["inspect", "mine:2"])).unwrap();
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 1);
    env.run("s", &["rmi", "mine:1", "mine:2"]);
    env.stagecraft("s")
        .args(["inspect", "mine:1"])
        .assert()
        .failure();
    let pruned = env.run("s", &["prune", "--all"]);
    assert!(pruned.starts_with("removed 3 blobs"), "{pruned}");
    env.run("s", &["verify"]);
}

#[test]
fn basic_auth_from_docker_config_and_cross_repository_mounts() {
    let env = Env::new();
    let registry = RegistryProcess::start_with(
        &env.dir.path().join("registry"),
        5393,
        &["--htpasswd", "builder:s3cret"],
    );
    let host = format!("127.0.0.1:{}", registry.port);
    env.run(
        "s",
        &[
            "load",
            "--tag",
            &format!("{host}/team/base:1"),
            "-i",
            &env.layout.display().to_string(),
        ],
    );

    // Without credentials the registry refuses, and the error says how to log in.
    let config_dir = env.dir.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    env.stagecraft("s")
        .env("DOCKER_CONFIG", &config_dir)
        .args(["push", &format!("{host}/team/base:1")])
        .assert()
        .failure()
        .stderr(predicates::str::contains("docker login"));

    // With docker's config.json (base64 of "builder:s3cret"), pushes go through.
    std::fs::write(
        config_dir.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"YnVpbGRlcjpzM2NyZXQ="}}}}}}"#),
    )
    .unwrap();
    let push = |name: &str| {
        env.stagecraft("s")
            .env("DOCKER_CONFIG", &config_dir)
            .args(["push", name])
            .assert()
            .success();
    };
    push(&format!("{host}/team/base:1"));
    // A second repository of the same registry gets the layer by mount (no re-upload needed).
    env.run(
        "s",
        &[
            "tag",
            &format!("{host}/team/base:1"),
            &format!("{host}/team/app:1"),
        ],
    );
    push(&format!("{host}/team/app:1"));
    let inspect = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "builder:s3cret",
            &format!("docker://{host}/team/app:1"),
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(json["Layers"].as_array().unwrap().len(), 1);
}
