//! The image keys of `--output` and `--annotation`, as BuildKit's image exporters take them:
//! `oci-mediatypes=false` (Docker schema 2 media types, a Docker manifest list),
//! `rewrite-timestamp=true` (file times clamped to SOURCE_DATE_EPOCH in the build's own
//! layers) and annotations on manifests, indexes and their descriptors. As root: builds need
//! namespaces.

mod common;

use common::{Machine, RegistryProcess, busybox_layout, multi_platform_busybox_layout};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// The files of an OCI layout tar by path.
fn layout_files(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// The blob `digest` of a layout, as JSON.
fn blob(files: &BTreeMap<String, Vec<u8>>, digest: &Value) -> Value {
    let digest = digest.as_str().unwrap();
    let bytes = &files[&format!("blobs/sha256/{}", &digest["sha256:".len()..])];
    serde_json::from_slice(bytes).unwrap()
}

fn index_json(files: &BTreeMap<String, Vec<u8>>) -> Value {
    serde_json::from_slice(&files["index.json"]).unwrap()
}

/// Runs `build ARGS CONTEXT`; returns (success, stderr).
fn try_build(m: &Machine, args: &[&str]) -> (bool, String) {
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain"])
        .args(args)
        .arg(&m.context)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn docker_media_types_give_a_schema_2_manifest_and_refuse_attestations() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let m = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[("Dockerfile", "FROM busybox:latest\nRUN echo hi > /hi\n")],
    );
    let out = dir.path().join("docker-types.tar");
    let output = format!(
        "type=oci,dest={},oci-mediatypes=false,annotation.org.opencontainers.image.title=app",
        out.display()
    );
    let (ok, stderr) = try_build(&m, &["-o", &output]);
    assert!(ok, "{stderr}");
    let files = layout_files(&out);
    let entry = &index_json(&files)["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let manifest = blob(&files, &entry["digest"]);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    for layer in manifest["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    // Manifest annotations fit Docker media types, as BuildKit writes them.
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "app"
    );

    // A push carries buildx's default provenance, which Docker media types cannot: BuildKit's
    // refusal, with the way out.
    let registry_dir = dir.path().join("registry");
    let _registry = RegistryProcess::start(&registry_dir, 5389);
    let push = "type=registry,name=127.0.0.1:5389/app:docker,oci-mediatypes=false";
    let (ok, stderr) = try_build(&m, &["-o", push]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot export attestations") && stderr.contains("--provenance=false"),
        "{stderr}"
    );
    let metadata = dir.path().join("metadata.json");
    let (ok, stderr) = try_build(
        &m,
        &[
            "-o",
            push,
            "--provenance=false",
            "--metadata-file",
            metadata.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    // The metadata describes what was pushed, media type included.
    let metadata: Value = serde_json::from_slice(&fs::read(&metadata).unwrap()).unwrap();
    assert_eq!(
        metadata["containerimage.descriptor"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let raw = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "docker://127.0.0.1:5389/app:docker",
        ])
        .output()
        .unwrap();
    assert!(raw.status.success());
    let pushed: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        pushed["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // zstd has no Docker media type.
    let (ok, stderr) = try_build(&m, &["-o", &format!("{output},compression=zstd")]);
    assert!(!ok);
    assert!(stderr.contains("conflicts with"), "{stderr}");
}

#[test]
fn annotations_land_on_manifests_indexes_and_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = multi_platform_busybox_layout(dir.path(), "linux/amd64,linux/arm64");
    let m = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[("Dockerfile", "FROM busybox:latest\nCOPY Dockerfile /\n")],
    );
    let out = dir.path().join("single.tar");
    let (ok, stderr) = try_build(
        &m,
        &[
            "-o",
            &format!(
                "type=oci,dest={},annotation-manifest-descriptor.org.example.entry=e",
                out.display()
            ),
            "--annotation",
            "org.opencontainers.image.title=single",
            "--annotation",
            "manifest:org.example.vendor=me",
        ],
    );
    assert!(ok, "{stderr}");
    let files = layout_files(&out);
    let entry = &index_json(&files)["manifests"][0];
    assert_eq!(entry["annotations"]["org.example.entry"], "e");
    let manifest = blob(&files, &entry["digest"]);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "single"
    );
    assert_eq!(manifest["annotations"]["org.example.vendor"], "me");
    // A single image has no index to annotate.
    let (ok, stderr) = try_build(
        &m,
        &[
            "-o",
            &format!("type=oci,dest={}", out.display()),
            "--annotation",
            "index:k=v",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("index annotations not supported"),
        "{stderr}"
    );
    // An annotation needs an image output.
    let (ok, stderr) = try_build(&m, &["--annotation", "k=v"]);
    assert!(!ok);
    assert!(stderr.contains("no output carries an image"), "{stderr}");

    let out = dir.path().join("multi.tar");
    let (ok, stderr) = try_build(
        &m,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!(
                "type=oci,dest={},annotation-index.org.example.index=i",
                out.display()
            ),
            "--annotation",
            "manifest[linux/arm64]:org.example.arch=arm",
            "--annotation",
            "manifest-descriptor,index-descriptor:org.example.described=d",
        ],
    );
    assert!(ok, "{stderr}");
    let files = layout_files(&out);
    let top = &index_json(&files)["manifests"][0];
    assert_eq!(top["annotations"]["org.example.described"], "d");
    let index = blob(&files, &top["digest"]);
    assert_eq!(index["annotations"]["org.example.index"], "i");
    for entry in index["manifests"].as_array().unwrap() {
        let architecture = entry["platform"]["architecture"].as_str().unwrap();
        if architecture == "unknown" {
            // An attestation manifest keeps its own annotations only.
            assert!(entry["annotations"]["org.example.described"].is_null());
            continue;
        }
        assert_eq!(entry["annotations"]["org.example.described"], "d");
        let manifest = blob(&files, &entry["digest"]);
        let expected = if architecture == "arm64" {
            Value::from("arm")
        } else {
            Value::Null
        };
        assert_eq!(
            manifest["annotations"]["org.example.arch"], expected,
            "{architecture}"
        );
    }
    // A platform the build does not make is an error, before the build.
    let (ok, stderr) = try_build(
        &m,
        &[
            "-o",
            &format!("type=oci,dest={}", out.display()),
            "--annotation",
            "manifest[linux/s390x]:k=v",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("no platform linux/s390x"), "{stderr}");
}

#[test]
fn rewrite_timestamp_clamps_the_builds_own_layers_to_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let m = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            (
                "Dockerfile",
                "FROM busybox:latest\nCOPY data.txt /data.txt\n",
            ),
            ("data.txt", "data\n"),
        ],
    );
    // Built first without an epoch: the cached layer keeps the file's real time, which a
    // later build with SOURCE_DATE_EPOCH takes from the cache.
    let first = m
        .stagecraft()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--progress=plain"])
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(first.status.success());
    let epoch = "1000000000";
    let layer_times = |rewrite: bool| {
        let out = dir.path().join(format!("rewrite-{rewrite}.tar"));
        let mut output = format!("type=oci,dest={},compression=uncompressed", out.display());
        if rewrite {
            output.push_str(",rewrite-timestamp=true");
        }
        let metadata = dir.path().join(format!("metadata-{rewrite}.json"));
        let (ok, stderr) = try_build(
            &m,
            &[
                "--build-arg",
                &format!("SOURCE_DATE_EPOCH={epoch}"),
                "-o",
                &output,
                "--metadata-file",
                metadata.to_str().unwrap(),
            ],
        );
        assert!(ok, "{stderr}");
        let files = layout_files(&out);
        let manifest = blob(&files, &index_json(&files)["manifests"][0]["digest"]);
        let config = blob(&files, &manifest["config"]["digest"]);
        // The metadata names the config the layout has.
        let metadata: Value = serde_json::from_slice(&fs::read(&metadata).unwrap()).unwrap();
        assert_eq!(
            metadata["containerimage.config.digest"],
            manifest["config"]["digest"]
        );
        let layers: Vec<(String, Vec<u64>)> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| {
                let digest = layer["digest"].as_str().unwrap().to_owned();
                // The base image's layer is gzip: only the plain ones are listed.
                if !layer["mediaType"].as_str().unwrap().ends_with(".tar") {
                    return (digest, Vec::new());
                }
                let bytes = &files[&format!("blobs/sha256/{}", &digest["sha256:".len()..])];
                let mut archive = tar::Archive::new(&bytes[..]);
                let times = archive
                    .entries()
                    .unwrap()
                    .map(|e| e.unwrap().header().mtime().unwrap())
                    .collect();
                (digest, times)
            })
            .collect();
        (layers, config["rootfs"]["diff_ids"].clone())
    };
    let (plain, _) = layer_times(false);
    let (rewritten, diff_ids) = layer_times(true);
    let epoch: u64 = epoch.parse().unwrap();
    assert!(
        plain.last().unwrap().1.iter().any(|&t| t > epoch),
        "the cached layer has later times: {plain:?}"
    );
    assert!(
        rewritten.last().unwrap().1.iter().all(|&t| t <= epoch),
        "{rewritten:?}"
    );
    // The base image's layer is left as it is; the config names the new layer.
    assert_eq!(rewritten[0], plain[0]);
    assert_eq!(
        diff_ids.as_array().unwrap().last().unwrap().as_str(),
        Some(rewritten.last().unwrap().0.as_str())
    );
    // Without an epoch there is nothing to clamp to: an error, before the build.
    let output = m
        .stagecraft()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--progress=plain", "-o"])
        .arg(format!(
            "type=oci,dest={},rewrite-timestamp=true",
            dir.path().join("x.tar").display()
        ))
        .arg(&m.context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("needs SOURCE_DATE_EPOCH"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
