//! `stagecraft cache ls|export|import`: a `RUN --mount=type=cache` filled on one machine is
//! there for a build on another, through a tar file or a registry; hostile archives are refused
//! and change nothing. As root: builds need namespaces.

mod common;

use common::{Machine, RegistryProcess, busybox_layout};
use stagecraft_export::cache_mounts::{ARTIFACT_TYPE, ID_ANNOTATION};
use stagecraft_image::Descriptor;
use stagecraft_image::media_type::{OCI_EMPTY_JSON, OCI_LAYER};
use std::path::Path;

/// Fills the cache (the default id of a cache mount is its target, `/cache`). The token is
/// computed, so that only the output of a step that read the cache contains it.
const WRITER: &str = "FROM busybox:latest\n\
    RUN --mount=type=cache,target=/cache echo token-$((40+2)) > /cache/token\n";
/// Needs the cache: fails when the token is missing, prints it otherwise.
const READER: &str = "FROM busybox:latest\n\
    RUN --mount=type=cache,target=/cache cat /cache/token && cp /cache/token /token\n";
const TOKEN: &str = "token-42";

fn writer(dir: &Path, busybox: &Path) -> Machine {
    let machine = Machine::new(dir, "writer", busybox, &[("Dockerfile", WRITER)]);
    machine.build(&[]);
    machine
}

fn reader(dir: &Path, name: &str, busybox: &Path) -> Machine {
    Machine::new(dir, name, busybox, &[("Dockerfile", READER)])
}

fn stdout_of(machine: &Machine, args: &[&str]) -> String {
    let output = machine.stagecraft().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "stagecraft {args:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command that must fail; returns its standard error.
fn stderr_of_failed(machine: &Machine, args: &[&str]) -> String {
    let output = machine.stagecraft().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "stagecraft {args:?} succeeded:\n{stderr}"
    );
    stderr
}

/// The reader builds only once the cache has come over, and its step read the token.
fn assert_reads_the_token_after(machine: &Machine, import: &[&str]) {
    let context = machine.context.to_str().unwrap();
    let cold = stderr_of_failed(machine, &["build", "--progress=plain", context]);
    assert!(
        cold.contains("No such file"),
        "the reader must need the cache:\n{cold}"
    );
    let imported = stdout_of(machine, import);
    assert!(
        imported.contains("imported 1 cache mounts: /cache"),
        "{imported}"
    );
    let (_, stderr) = machine.build(&[]);
    assert!(stderr.contains(TOKEN), "{stderr}");
}

#[test]
fn a_cache_mount_travels_through_a_tar_file() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let a = writer(dir.path(), &busybox);

    let listed = stdout_of(&a, &["cache", "ls"]);
    assert!(listed.lines().any(|l| l.ends_with("  /cache")), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&a, &["cache", "ls", "--format", "json"])).unwrap();
    assert_eq!(json[0]["id"], "/cache");
    assert_eq!(json[0]["files"], 1);
    assert_eq!(json[0]["size"], TOKEN.len() + 1);

    let archive = dir.path().join("mounts.tar");
    let archive_arg = archive.to_str().unwrap();
    let exported = stdout_of(&a, &["cache", "export", "-o", archive_arg]);
    assert!(exported.contains("exported 1 cache mounts"), "{exported}");

    let b = reader(dir.path(), "b", &busybox);
    assert_reads_the_token_after(&b, &["cache", "import", archive_arg]);
    let listed = stdout_of(&b, &["cache", "ls"]);
    assert!(listed.lines().any(|l| l.ends_with("  /cache")), "{listed}");
}

#[test]
fn a_cache_mount_travels_through_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let _registry = RegistryProcess::start(&dir.path().join("registry"), 5396);
    let reference = "127.0.0.1:5396/ci/cache-mounts:main";
    let a = writer(dir.path(), &busybox);
    stdout_of(
        &a,
        &[
            "cache",
            "export",
            "--id",
            "/cache",
            "--ref",
            reference,
            "--compression",
            "zstd",
        ],
    );

    // What other tools see: one artifact manifest, one annotated layer.
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["artifactType"], ARTIFACT_TYPE);
    assert_eq!(manifest["config"]["mediaType"], OCI_EMPTY_JSON);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        manifest["layers"][0]["annotations"][ID_ANNOTATION],
        "/cache"
    );

    let b = reader(dir.path(), "b", &busybox);
    assert_reads_the_token_after(&b, &["cache", "import", "--ref", reference]);
}

#[test]
fn archives_that_reach_outside_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let victim = writer(dir.path(), &busybox);
    let mounts = victim.root.join("cache-mounts");
    let before = tree(&mounts);
    assert!(before.iter().any(|(name, _)| name.ends_with("/token")));

    // A well-formed export of mount /cache whose layer climbs out of the mount directory.
    let hostile_layer = tar_with(&[("ok.txt", b"fine"), ("../escape", b"owned")]);
    let hostile = dir.path().join("hostile.tar");
    let scratch = stagecraft_store::Store::open(dir.path().join("scratch")).unwrap();
    let blob = scratch.write_blob_bytes(&hostile_layer).unwrap();
    let mut layer: Descriptor = blob.descriptor(OCI_LAYER);
    layer
        .annotations
        .insert(ID_ANNOTATION.to_owned(), "/cache".to_owned());
    let artifact = scratch
        .write_artifact(ARTIFACT_TYPE, OCI_EMPTY_JSON, b"{}", vec![layer])
        .unwrap();
    stagecraft_export::write_artifact_archive(
        &scratch,
        &artifact,
        std::fs::File::create(&hostile).unwrap(),
    )
    .unwrap();
    let stderr = stderr_of_failed(&victim, &["cache", "import", hostile.to_str().unwrap()]);
    assert!(
        stderr.contains(r#"cannot import cache mount "/cache", so no cache mount was changed"#)
            && stderr.contains(r#"refusing layer entry "../escape""#),
        "{stderr}"
    );

    // The archive itself naming a path outside: refused before anything is read.
    let outer = dir.path().join("outer.tar");
    std::fs::write(&outer, tar_with(&[("../index.json", b"{}")])).unwrap();
    let stderr = stderr_of_failed(&victim, &["cache", "import", outer.to_str().unwrap()]);
    assert!(
        stderr.contains("refusing archive entry ../index.json"),
        "{stderr}"
    );

    assert_eq!(tree(&mounts), before, "the cache mounts are as they were");
    // Nothing escaped into the store, nor stayed behind half-unpacked.
    let leftovers: Vec<_> = std::fs::read_dir(victim.root.join("ingest"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A plain tar of regular files. Names are written into the header as they are, `..` and
/// all, which the tar crate's own path setters would refuse.
fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Every path under `root` with its content (empty for directories), sorted.
fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut entries: Vec<(String, Vec<u8>)> = walk(root)
        .into_iter()
        .map(|path| {
            let content = std::fs::read(&path).unwrap_or_default();
            (
                path.strip_prefix(root).unwrap().display().to_string(),
                content,
            )
        })
        .collect();
    entries.sort();
    entries
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            paths.extend(walk(&path));
        }
        paths.push(path);
    }
    paths
}
