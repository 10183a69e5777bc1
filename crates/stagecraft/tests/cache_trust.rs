//! Cache behaviour users rely on: a no-op rebuild needs no network, and a change to image
//! metadata only (`--label`, `LABEL`, `CMD`, …) re-runs nothing.

mod common;

use assert_cmd::Command;
use common::{busybox_layout, shared_dir};
use std::path::{Path, PathBuf};

fn stagecraft(root: &Path) -> Command {
    let mut command = Command::cargo_bin("stagecraft").unwrap();
    command.env("STAGECRAFT_ROOT", root);
    command
}

fn build(root: &Path, context: &Path, extra: &[&str]) -> String {
    let output = stagecraft(root)
        .args(["build", "--progress=plain"])
        .args(extra)
        .arg(context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

#[test]
fn no_op_rebuild_works_with_the_registry_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let layout = busybox_layout(dir.path());
    let registry_dir = dir.path().join("registry");
    let port = "5395";
    let started = std::process::Command::new(shared_dir().join("fixtures/start-registry"))
        .args([port])
        .arg(&registry_dir)
        .output()
        .unwrap();
    assert!(started.status.success());
    let pid = std::fs::read_to_string(registry_dir.join("registry.pid")).unwrap();
    let image = format!("127.0.0.1:{port}/busybox:latest");
    let copied = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{image}"))
        .status()
        .unwrap();
    assert!(copied.success());
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {image}\nRUN echo hi > /hi\n"),
    )
    .unwrap();
    let root = dir.path().join("store");
    build(&root, &context, &[]);

    // Stop the registry: the cached rebuild resolves the base from the store.
    let stopped = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap();
    assert!(stopped.success());
    let again = build(&root, &context, &[]);
    assert!(again.contains("0 steps run"), "{again}");
    // --pull insists on asking the registry, which is gone.
    stagecraft(&root)
        .args(["build", "--pull", "--progress=plain"])
        .arg(&context)
        .assert()
        .failure();
}

#[test]
fn metadata_only_changes_rerun_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (root, context) = store_and_context(dir.path());
    let write = |label: &str, cmd: &str| {
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM busybox:latest\nRUN sleep 1 && echo slow > /slow\nLABEL purpose={label}\nEXPOSE 8080\nCMD [\"{cmd}\"]\nSTOPSIGNAL SIGTERM\n"),
        )
        .unwrap();
    };
    write("first", "sh");
    build(&root, &context, &[]);
    write("second", "true");
    let changed = build(&root, &context, &["--label", "team=core"]);
    assert!(changed.contains("0 steps run"), "{changed}");
    let inspect = stagecraft(&root)
        .args(["build", "--progress=quiet", "-t", "meta:1"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let json: serde_json::Value = serde_json::from_slice(
        &stagecraft(&root)
            .args(["inspect", "meta:1"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["config"]["config"]["Labels"]["purpose"], "second");
    assert_eq!(json["config"]["config"]["Cmd"], serde_json::json!(["true"]));
}

#[test]
fn layers_are_stored_plain_and_compressed_once_when_they_leave() {
    let dir = tempfile::tempdir().unwrap();
    let (root, context) = store_and_context(dir.path());
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nRUN head -c 300000 /dev/zero > /zeros\n",
    )
    .unwrap();
    build(&root, &context, &["-t", "app:1"]);
    let inspect = |reference: &str| -> serde_json::Value {
        let output = stagecraft(&root)
            .args(["inspect", reference])
            .output()
            .unwrap();
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).unwrap()
    };
    // The build compressed nothing: its layer is a plain tar, its digest the diff ID.
    let built = inspect("app:1");
    let layer = &built["layers"][built["layers"].as_array().unwrap().len() - 1];
    assert_eq!(
        layer["media_type"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(layer["digest"], layer["diff_id"]);

    let blob_count = || {
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let save = |name: &str| -> Vec<u8> {
        let path = dir.path().join(name);
        stagecraft(&root)
            .args(["save", "app:1", "--format", "oci", "-o"])
            .arg(&path)
            .assert()
            .success();
        std::fs::read(path).unwrap()
    };
    let first = save("first.tar");
    let blobs = blob_count();
    let manifest = common::exported_manifest(&dir.path().join("first.tar"), &root);
    let exported = manifest["layers"].as_array().unwrap().last().unwrap();
    assert_eq!(
        exported["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(exported["size"].as_u64().unwrap() < 10_000, "{exported}");

    // The plain tar was never written: the build recorded it (a lazy blob), and the export
    // compressed it as it was regenerated from its snapshot.
    let plain = layer["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(!root.join("blobs/sha256").join(plain).exists());
    // The second export reuses the compressed blob without reading the layer again: it works
    // with the plain tar's record gone, gives the same bytes and adds nothing to the store.
    std::fs::remove_file(root.join("lazy-blobs").join(plain)).unwrap();
    let second = save("second.tar");
    assert_eq!(blob_count(), blobs);
    assert!(first == second, "the two OCI exports differ");
}

/// A store with busybox loaded and an empty context directory.
fn store_and_context(dir: &Path) -> (PathBuf, PathBuf) {
    let layout = busybox_layout(dir);
    let root = dir.join("store");
    stagecraft(&root)
        .args(["load", "--tag", "busybox:latest", "-i"])
        .arg(&layout)
        .assert()
        .success();
    let context = dir.join("ctx");
    std::fs::create_dir(&context).unwrap();
    (root, context)
}

#[test]
fn stages_stopped_by_a_failure_are_skipped_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (root, context) = store_and_context(dir.path());
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest AS broken\nRUN exit 3\n\
         FROM busybox:latest AS after\nCOPY --from=broken /etc/hostname /x\nRUN echo never\n\
         FROM busybox:latest AS unused\nRUN echo unused\n\
         FROM after\n",
    )
    .unwrap();
    let output = stagecraft(&root)
        .args(["build", "--progress=json"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let skipped = |stage: &str| {
        events
            .iter()
            .find(|e| e["event"] == "stage_skipped" && e["stage"] == stage)
            .map(|e| e["reason"].clone())
    };
    assert_eq!(skipped("unused"), Some(serde_json::json!("not_needed")));
    assert_eq!(
        skipped("after"),
        Some(serde_json::json!({"after_failure": {"failed_stage": "broken"}}))
    );
    assert!(
        !events.iter().any(|e| e["status"] == "cached"),
        "nothing was cached: {stderr}"
    );
    // The error is the failing RUN's, not the stopped stage's.
    assert!(stderr.contains("exit code: 3"), "{stderr}");
    assert!(!stderr.contains("the build stopped"), "{stderr}");
}

#[test]
fn explain_names_the_changed_file_with_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let (root, context) = store_and_context(dir.path());
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nCOPY a.txt b.txt /app/\nRUN cat /app/a.txt\n",
    )
    .unwrap();
    std::fs::write(context.join("a.txt"), "one\n").unwrap();
    std::fs::write(context.join("b.txt"), "same\n").unwrap();
    build(&root, &context, &[]);
    // The explanation follows the plain progress output.
    let explain = || {
        let stderr = build(&root, &context, &["--explain"]);
        stderr[stderr.rfind("\ncache: ").unwrap()..].to_owned()
    };
    let explained = explain();
    assert!(
        explained.contains("cache: every step came from the cache"),
        "{explained}"
    );
    std::fs::write(context.join("a.txt"), "two\n").unwrap();
    let explained = explain();
    assert!(explained.contains("cache: 2 steps ran"), "{explained}");
    let line = explained
        .lines()
        .find(|line| line.contains("because: file /app/a.txt: "))
        .unwrap_or_else(|| panic!("no line names a.txt:\n{explained}"));
    let (old, new) = line
        .split("because: file /app/a.txt: ")
        .nth(1)
        .unwrap()
        .split_once(" -> ")
        .unwrap();
    assert_ne!(old, new);
    assert!(!explained.contains("/app/b.txt"), "{explained}");
    assert!(explained.contains("an earlier step changed"), "{explained}");
}

/// Every file under the store's blobs/ and cache/ and its tags.json, with its mtime.
fn store_files(root: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut pending = vec![
        root.join("blobs"),
        root.join("cache"),
        root.join("tags.json"),
    ];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path).unwrap();
        if metadata.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push((path, metadata.modified().unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn a_cached_rebuild_is_the_same_image_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (root, context) = store_and_context(dir.path());
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nENV A=1\nRUN echo one > /one\nLABEL x=y\nRUN echo two > /two\nCMD [\"sh\"]\n",
    )
    .unwrap();
    // No SOURCE_DATE_EPOCH: times come from the layers, as in BuildKit.
    let build = || {
        let output = stagecraft(&root)
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["build", "--progress=quiet", "-t", "same:1"])
            .arg(&context)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let first = build();
    let before = store_files(&root);
    let second = build();
    assert_eq!(first, second, "a cached rebuild gave another image");
    assert_eq!(
        store_files(&root),
        before,
        "a cached rebuild wrote to the store"
    );

    // Entries without a layer take the time of the layer before them (the first layer's
    // when none is before), and the image was created when its last layer was.
    let inspect = stagecraft(&root)
        .args(["inspect", "same:1"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let history = json["config"]["history"].as_array().unwrap();
    let own: Vec<&str> = history[history.len() - 5..]
        .iter()
        .map(|h| h["created"].as_str().unwrap())
        .collect();
    assert_eq!(own[0], own[1], "ENV takes the first new layer's time");
    assert_eq!(own[2], own[1], "LABEL takes the layer before it");
    assert_eq!(own[4], own[3], "CMD takes the layer before it");
    assert!(own[3] >= own[1]);
    assert_eq!(json["config"]["created"].as_str().unwrap(), own[4]);
}

#[test]
fn copy_keys_on_the_metadata_the_layer_gets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (root, context) = store_and_context(dir.path());
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nCOPY --chmod=644 fixed.txt /fixed.txt\nCOPY plain.txt /plain.txt\n",
    )
    .unwrap();
    let set_mode = |name: &str, mode: u32| {
        std::fs::set_permissions(context.join(name), std::fs::Permissions::from_mode(mode))
            .unwrap();
    };
    for name in ["fixed.txt", "plain.txt"] {
        std::fs::write(context.join(name), name).unwrap();
        set_mode(name, 0o644);
    }
    build(&root, &context, &["--cache-normalize-mode"]);

    // --chmod decides the mode: the source's own does not matter.
    set_mode("fixed.txt", 0o600);
    let stderr = build(&root, &context, &[]);
    assert!(stderr.contains("0 steps run"), "{stderr}");

    // Another umask (g+w): a miss by default, a hit with --cache-normalize-mode.
    set_mode("plain.txt", 0o664);
    let stderr = build(&root, &context, &["--cache-normalize-mode"]);
    assert!(stderr.contains("0 steps run"), "{stderr}");
    let stderr = build(&root, &context, &[]);
    assert!(stderr.contains("1 steps run"), "{stderr}");
    assert!(stderr.contains("file /plain.txt"), "{stderr}");
    // A real change (executable) is a miss even normalized.
    set_mode("plain.txt", 0o755);
    let stderr = build(&root, &context, &["--cache-normalize-mode"]);
    assert!(stderr.contains("1 steps run"), "{stderr}");
}
