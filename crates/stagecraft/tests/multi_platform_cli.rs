//! The image commands on a multi-platform image (the busybox fixture for linux/amd64 and
//! linux/arm64, loaded as one index): `images` lists its platforms, `inspect` shows the index
//! or one platform, `size --platform` picks one, `push` sends it whole.

mod common;

use assert_cmd::Command;
use common::RegistryProcess;
use serde_json::Value;
use stagecraft_image::{Digest, ImageIndex};
use std::fs;
use std::path::PathBuf;

struct Env {
    dir: tempfile::TempDir,
    /// The fixture's index, as its layout holds it.
    index_digest: Digest,
    index: ImageIndex,
}

impl Env {
    /// A store with the two-platform busybox loaded as `busybox:multi`.
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let layout = common::multi_platform_busybox_layout(dir.path(), "linux/amd64,linux/arm64");
        let top = ImageIndex::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let index_digest = top.manifests[0].digest.clone();
        let index = ImageIndex::from_slice(
            &fs::read(layout.join("blobs/sha256").join(index_digest.hex())).unwrap(),
        )
        .unwrap();
        let env = Env {
            dir,
            index_digest,
            index,
        };
        env.run(&[
            "load",
            "--tag",
            "busybox:multi",
            "-i",
            layout.to_str().unwrap(),
        ]);
        env
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn stagecraft(&self) -> Command {
        let mut command = Command::cargo_bin("stagecraft").unwrap();
        command.env("STAGECRAFT_ROOT", self.root());
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.stagecraft().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "stagecraft {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.run(args)).unwrap()
    }

    /// The fixture's manifest digest for `architecture`.
    fn manifest_of(&self, architecture: &str) -> &Digest {
        &self
            .index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().unwrap().architecture == architecture)
            .unwrap()
            .digest
    }
}

#[test]
fn images_lists_the_platforms_of_each_tag() {
    let env = Env::new();
    let table = env.run(&["images"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains("PLATFORMS"), "{table}");
    let row = table
        .lines()
        .find(|line| line.starts_with("busybox ") && line.contains(" multi "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("linux/amd64,linux/arm64"), "{row}");
    // A multi-platform image's ID is its index's digest, as `build` reports it.
    assert!(row.contains(env.index_digest.short()), "{row}");

    let json: Vec<Value> = env
        .run(&["images", "--format", "json", "busybox:multi"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let entry = &json[0];
    assert_eq!(entry["Digest"], env.index_digest.as_str());
    assert_eq!(entry["Platforms"], "linux/amd64,linux/arm64");
    // This machine's platform's image gives the size.
    assert!(entry["Size"].as_str().unwrap().ends_with("MB"), "{entry}");
}

#[test]
fn inspect_shows_the_index_and_with_a_platform_that_platform() {
    let env = Env::new();
    let index = env.json(&["inspect", "busybox:multi"]);
    assert_eq!(index["index_digest"], env.index_digest.as_str());
    assert_eq!(
        index["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = manifests
        .iter()
        .map(|m| {
            (
                m["platform"].as_str().unwrap(),
                m["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("linux/amd64", env.manifest_of("amd64").as_str()),
            ("linux/arm64", env.manifest_of("arm64").as_str())
        ]
    );

    let arm64 = env.json(&["inspect", "busybox:multi", "--platform", "linux/arm64"]);
    assert_eq!(arm64["manifest_digest"], env.manifest_of("arm64").as_str());
    assert_eq!(arm64["index_digest"], env.index_digest.as_str());
    assert_eq!(arm64["config"]["architecture"], "arm64");

    let missing = env
        .stagecraft()
        .args(["inspect", "busybox:multi", "--platform", "linux/s390x"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("it has: linux/amd64, linux/arm64"),
        "{stderr}"
    );
}

#[test]
fn size_picks_a_platform_and_names_the_others_when_it_is_missing() {
    let env = Env::new();
    let arm64 = env.json(&[
        "size",
        "busybox:multi",
        "--platform",
        "linux/arm64",
        "--format",
        "json",
    ]);
    assert_eq!(arm64["manifest_digest"], env.manifest_of("arm64").as_str());
    assert!(
        arm64["layers"][0]["files"].as_u64().unwrap() > 100,
        "{arm64}"
    );
    // By default, this machine's platform.
    let host = env.json(&["size", "busybox:multi", "--format", "json"]);
    let host_arch = stagecraft_image::Platform::host().architecture;
    assert_eq!(
        host["manifest_digest"],
        env.manifest_of(&host_arch).as_str()
    );

    let missing = env
        .stagecraft()
        .args(["size", "busybox:multi", "--platform", "linux/arm/v7"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("no manifest for platform linux/arm/v7")
            && stderr.contains("it has: linux/amd64, linux/arm64"),
        "{stderr}"
    );
}

#[test]
fn push_sends_every_platform_and_the_index() {
    let env = Env::new();
    let data = env.dir.path().join("registry");
    fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let _registry = RegistryProcess::start(&data, port);
    let name = format!("127.0.0.1:{port}/lib/busybox:multi");
    env.run(&["tag", "busybox:multi", &name]);
    let pushed = env.run(&["push", &name]);
    // The fixture's layers are compressed already: the index goes as it is, byte for byte.
    assert_eq!(pushed.trim(), format!("{name} {}", env.index_digest));
    let raw = skopeo_raw(&format!("docker://{name}"));
    assert_eq!(Digest::of(&raw), env.index_digest);
    for entry in &env.index.manifests {
        let by_digest = format!("docker://127.0.0.1:{port}/lib/busybox@{}", entry.digest);
        assert_eq!(Digest::of(&skopeo_raw(&by_digest)), entry.digest);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn skopeo_raw(source: &str) -> Vec<u8> {
    let output = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", source])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo {source}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
