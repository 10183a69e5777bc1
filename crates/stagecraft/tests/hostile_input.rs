//! Hostile and broken input, by hand: each case must end in a clear error (exit 1, never a
//! panic) or a confined result, and leave the store as it was (`verify` clean, no new tag).
//! As root: builds need namespaces.

mod common;

use common::{RegistryProcess, busybox_layout, shared_dir, store_with_busybox};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

fn stagecraft(root: &Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("stagecraft").unwrap();
    command.env("STAGECRAFT_ROOT", root);
    command
}

/// Runs stagecraft, expects a failure with exit code 1 (an error, not a panic) whose
/// stderr contains every one of `needles`; returns stderr.
fn fails_with(root: &Path, args: &[&str], needles: &[&str]) -> String {
    let output = stagecraft(root).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{args:?}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: no {needle:?} in:\n{stderr}"
        );
    }
    stderr
}

/// The tags and a verify run: what "unchanged" is checked against.
fn store_state(root: &Path) -> String {
    let images = stagecraft(root).arg("images").output().unwrap();
    assert!(images.status.success());
    let verify = stagecraft(root).arg("verify").output().unwrap();
    assert!(
        verify.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    String::from_utf8_lossy(&images.stdout).into_owned()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An OCI layout at `dir` with one image made of `config` and `layers`, tagged `evil:1`.
/// Blobs are stored under their true digests.
fn write_layout(dir: &Path, config: &[u8], layers: &[Vec<u8>]) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let hex = sha256(bytes);
        fs::write(blobs.join(&hex), bytes).unwrap();
        hex
    };
    let config_hex = put(config);
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|layer| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": format!("sha256:{}", put(layer)),
                "size": layer.len(),
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": layer_descriptors,
    }))
    .unwrap();
    let manifest_hex = put(&manifest);
    write_index(dir, &manifest_hex, manifest.len());
    dir.to_owned()
}

fn write_index(dir: &Path, manifest_hex: &str, size: usize) {
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": size,
            "annotations": {"io.containerd.image.name": "docker.io/library/evil:1"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A config for a one-layer linux image of this machine's architecture.
fn config_for(diff_ids: &[String]) -> Vec<u8> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A raw tar entry (the tar crate refuses to write `..` paths, which is the point here).
fn raw_entry(path: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..path.len()].copy_from_slice(path.as_bytes());
    header[100..107].copy_from_slice(b"0000644");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = kind;
    header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn a_gigabyte_dockerfile_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    // Sparse: one gigabyte on one line, no disk used.
    let file = fs::File::create(context.join("Dockerfile")).unwrap();
    file.set_len(1 << 30).unwrap();
    let context_arg = context.to_str().unwrap();
    fails_with(
        &root,
        &["build", context_arg],
        &["Dockerfile", "is 1.074GB", "up to 16.78MB"],
    );
    fails_with(
        &root,
        &["lint", "-f", &format!("{context_arg}/Dockerfile")],
        &["is 1.074GB"],
    );
}

#[test]
fn a_heredoc_without_terminator_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_busybox(dir.path());
    let before = store_state(&root);
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nRUN <<EOF\necho never\n",
    )
    .unwrap();
    fails_with(
        &root,
        &["build", context.to_str().unwrap()],
        &["unterminated heredoc", "Dockerfile:2:1"],
    );
    assert_eq!(store_state(&root), before);
}

#[test]
fn copy_never_follows_a_context_symlink_out_of_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_busybox(dir.path());
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    std::os::unix::fs::symlink("/", context.join("hostroot")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", context.join("shadow")).unwrap();
    std::os::unix::fs::symlink("../../..", context.join("up")).unwrap();
    std::os::unix::fs::symlink("/data.txt", context.join("inside")).unwrap();
    fs::write(context.join("data.txt"), "context data\n").unwrap();

    // A source link is followed as BuildKit follows it: inside the context, whose root is `/`.
    // So none of these reach the host's /etc/shadow; there is no etc/ in the context.
    for source in ["hostroot/etc/shadow", "up/etc/shadow", "shadow"] {
        fs::write(
            context.join("Dockerfile"),
            format!("FROM busybox:latest\nCOPY {source} /stolen\n"),
        )
        .unwrap();
        let before = store_state(&root);
        fails_with(
            &root,
            &["build", context.to_str().unwrap()],
            &["not found", "Dockerfile:2"],
        );
        assert_eq!(store_state(&root), before);
    }

    // An absolute link target means the context's own root.
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nCOPY inside /copied\n",
    )
    .unwrap();
    let out = dir.path().join("rootfs");
    stagecraft(&root)
        .args(["build", "--progress=quiet", "--output"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&context)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(out.join("copied")).unwrap(),
        "context data\n"
    );
}

#[test]
fn layers_cannot_write_outside_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_busybox(dir.path());
    let marker = format!("stagecraft-escape-{}", std::process::id());
    let host_target = PathBuf::from("/tmp").join(&marker);
    let _ = fs::remove_file(&host_target);
    // `../` out of the root, then a link to `/tmp` and a file written through it.
    let mut layer = raw_entry(
        &format!("../../../../../../tmp/{marker}"),
        b'0',
        "",
        b"dotdot",
    );
    layer.extend(raw_entry("tmplink", b'2', "/tmp", &[]));
    layer.extend(raw_entry(&format!("tmplink/{marker}"), b'0', "", b"link"));
    layer.extend([0u8; 1024]);
    let config = config_for(&[format!("sha256:{}", sha256(&layer))]);
    let layout = write_layout(&dir.path().join("evil"), &config, &[layer]);
    stagecraft(&root)
        .args(["load", "-i"])
        .arg(&layout)
        .assert()
        .success();

    // Unpacking happens when a build uses the image; whatever it does, nothing lands on the
    // host, and a refusal is an error that names the entry.
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    fs::write(context.join("Dockerfile"), "FROM evil:1\nRUN true\n").unwrap();
    let output = stagecraft(&root)
        .args(["build", "--progress=plain"])
        .arg(&context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !host_target.exists(),
        "a layer wrote {}",
        host_target.display()
    );
    if !output.status.success() {
        assert!(stderr.contains(&marker), "{stderr}");
    }
    store_state(&root);
}

#[test]
fn deeply_nested_json_is_an_answer_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    stagecraft(&root).arg("images").assert().success();
    let before = store_state(&root);
    // In a field nobody reads, so only the parser's depth limit can stop it.
    let depth = 100_000;
    let config = format!(
        r#"{{"os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes();
    let layout = write_layout(&dir.path().join("nested"), &config, &[]);
    // Go's decoder would stop at depth 10,000; an unknown field may also be skipped. Either
    // way: an answer, not a stack overflow.
    let output = stagecraft(&root)
        .args(["load", "-i"])
        .arg(&layout)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{:?}: {stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    if output.status.success() {
        store_state(&root);
    } else {
        assert_eq!(store_state(&root), before);
    }
}

#[test]
fn a_manifest_naming_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    stagecraft(&root).arg("images").assert().success();
    let before = store_state(&root);
    // No document can contain its own digest, so the layout lies: the blob filed under
    // digest D is an index listing D.
    let layout = dir.path().join("loop");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let claimed = sha256(b"the name the loop claims");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{claimed}"),
            "size": 100,
        }],
    }))
    .unwrap();
    fs::write(blobs.join(&claimed), &index).unwrap();
    write_index(&layout, &claimed, index.len());
    fails_with(
        &root,
        &["load", "-i", layout.to_str().unwrap()],
        &[&claimed[..12]],
    );
    assert_eq!(store_state(&root), before);
}

#[test]
fn a_registry_blob_that_does_not_match_its_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry_dir = dir.path().join("registry");
    let _registry = RegistryProcess::start(&registry_dir, 5397);
    let image = "127.0.0.1:5397/busybox:latest";
    let pushed = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!(
            "oci:{}:latest",
            busybox_layout(dir.path()).display()
        ))
        .arg(format!("docker://{image}"))
        .status()
        .unwrap();
    assert!(pushed.success());
    // Corrupt every layer-sized blob the registry holds (it serves them without checking).
    let mut corrupted = 0;
    for entry in walk(&registry_dir) {
        if entry.file_name().is_some_and(|n| n == "data")
            && fs::metadata(&entry).unwrap().len() > 4096
        {
            let mut bytes = fs::read(&entry).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            fs::write(&entry, bytes).unwrap();
            corrupted += 1;
        }
    }
    assert!(
        corrupted > 0,
        "no layer blob found under {}",
        registry_dir.display()
    );
    let root = dir.path().join("store");
    stagecraft(&root).arg("images").assert().success();
    let before = store_state(&root);
    fails_with(&root, &["pull", image], &["digest"]);
    assert_eq!(store_state(&root), before);
    assert!(shared_dir().exists());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn ten_thousand_chained_stages_build() {
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_busybox(dir.path());
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    let mut dockerfile = String::from("FROM busybox:latest AS s0\n");
    for i in 1..10_000 {
        dockerfile.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
    }
    dockerfile.push_str("LABEL last=yes\n");
    fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    let output = stagecraft(&root)
        .args(["build", "--progress=plain", "-t", "chain:latest"])
        .arg(&context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("stages: 0 built, 10000 cached"), "{stderr}");
    let inspect = stagecraft(&root)
        .args(["inspect", "chain:latest"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("\"last\": \"yes\""));
}

#[test]
fn names_that_are_not_utf8_are_bytes_everywhere() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_busybox(dir.path());
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.bin");
    fs::write(context.join(name), "latin-1 name\n").unwrap();
    fs::write(context.join("plain.bin"), "plain\n").unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nCOPY caf?.bin *.bin /w/\n",
    )
    .unwrap();

    // Listed, escaped, one line each.
    let listing = stagecraft(&root)
        .arg("context")
        .arg(&context)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["Dockerfile", "caf\\xe9.bin", "plain.bin"]
    );

    // Wildcards match them (`?` is one byte that is not UTF-8), and the copy is byte-exact.
    let out = dir.path().join("rootfs");
    stagecraft(&root)
        .args(["build", "--progress=quiet", "--output"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&context)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(out.join("w").join(name)).unwrap(),
        "latin-1 name\n"
    );
    assert!(out.join("w/plain.bin").exists());
}
