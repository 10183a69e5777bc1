//! `stagecraft sbom DIR` end to end: a table or an SPDX document of a root file system, the
//! same bytes for the same tree and SOURCE_DATE_EPOCH, and an error for what is not a directory.

use assert_cmd::Command;
use predicates::prelude::*;

fn stagecraft() -> Command {
    Command::cargo_bin("stagecraft").unwrap()
}

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    };
    write("etc/os-release", "ID=debian\nVERSION_ID=12\n");
    write(
        "var/lib/dpkg/status",
        "Package: greeter\nStatus: install ok installed\nVersion: 2.1-1\nArchitecture: amd64\n",
    );
    write(
        "app/node_modules/leftpad/package.json",
        r#"{"name":"leftpad","version":"0.0.3","license":"MIT"}"#,
    );
    dir
}

#[test]
fn table_lists_the_packages() {
    let dir = rootfs();
    stagecraft()
        .arg("sbom")
        .arg(dir.path())
        .args(["--format", "table"])
        .assert()
        .success()
        .stdout(predicate::str::contains("greeter  2.1-1    deb"))
        .stdout(predicate::str::contains(
            "leftpad  0.0.3    npm   -      /app/node_modules/leftpad/package.json",
        ));
}

#[test]
fn spdx_document_is_reproducible_with_source_date_epoch() {
    let dir = rootfs();
    let run = || {
        let output = stagecraft()
            .arg("sbom")
            .arg(dir.path())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(output.status.success());
        output.stdout
    };
    let first = run();
    assert_eq!(first, run());
    let document: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(document["spdxVersion"], "SPDX-2.3");
    assert_eq!(document["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let purls: Vec<&str> = document["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
        .collect();
    assert_eq!(
        purls,
        [
            "pkg:deb/debian/greeter@2.1-1?arch=amd64&distro=debian-12",
            "pkg:npm/leftpad@0.0.3"
        ]
    );
}

#[test]
fn neither_a_directory_nor_an_image_is_an_error_with_help() {
    let store = tempfile::tempdir().unwrap();
    stagecraft()
        .env("STAGECRAFT_ROOT", store.path())
        .args(["sbom", "/nonexistent/rootfs"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "is neither a directory nor an image in the store",
        ))
        .stderr(predicate::str::contains("stagecraft images"));
}

#[test]
fn an_image_in_the_store_is_cataloged() {
    let dir = rootfs();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\n",
    )
    .unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(dir.path())
        .arg(context.path().join("rootfs"))
        .status()
        .unwrap();
    assert!(copy.success());
    let store = tempfile::tempdir().unwrap();
    stagecraft()
        .env("STAGECRAFT_ROOT", store.path())
        .args(["build", "-q", "-t", "sbom-test:1"])
        .arg(context.path())
        .assert()
        .success();
    let output = stagecraft()
        .env("STAGECRAFT_ROOT", store.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["sbom", "sbom-test:1"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["name"], "sbom-test:1");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("pkg:deb/debian/greeter@2.1-1"), "{text}");
    assert!(text.contains("pkg:npm/leftpad@0.0.3"), "{text}");
}
