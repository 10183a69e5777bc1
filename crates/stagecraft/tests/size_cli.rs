//! `stagecraft size` on images built through the CLI, as root, from the offline busybox base:
//! wasted bytes of a deleted file, a `RUN chown -R` flagged as a metadata-only re-add, numbers
//! that add up to the stored image, stage sizes, and the HTML page rendered by headless
//! Chromium.

mod common;

use common::{Machine, busybox_layout};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// 1 MB written, then deleted by a later step; 300 kB re-added by `chown -R`.
const BLOATED: &str = "FROM busybox:latest
RUN dd if=/dev/urandom of=/blob bs=1000 count=1000 && mkdir /app && dd if=/dev/urandom of=/app/data bs=1000 count=300
RUN rm /blob
RUN chown -R 1000 /app
";

const MULTI_STAGE: &str = "FROM busybox:latest AS build
RUN dd if=/dev/urandom of=/toolchain bs=1000 count=2000 && echo app > /app.bin

FROM busybox:latest
COPY --from=build /app.bin /app.bin
";

fn machine(dir: &Path, dockerfile: &str) -> Machine {
    let busybox = busybox_layout(dir);
    Machine::new(dir, "m", &busybox, &[("Dockerfile", dockerfile)])
}

/// `stagecraft size ARGS…`: its standard output, after checking it succeeded.
fn size(machine: &Machine, args: &[&str]) -> String {
    let output = machine
        .stagecraft()
        .arg("size")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "size failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn size_json(machine: &Machine, args: &[&str]) -> Value {
    let stdout = size(machine, &[args, &["--format", "json"]].concat());
    serde_json::from_str(&stdout).unwrap()
}

fn u64_at(value: &Value, pointer: &str) -> u64 {
    value
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {value:#}"))
}

#[test]
fn deleted_and_chowned_files_are_wasted_space() {
    let dir = tempfile::tempdir().unwrap();
    let machine = machine(dir.path(), BLOATED);
    machine.build(&["-t", "bloated:1"]);

    let report = size_json(&machine, &["bloated:1"]);
    let layers = report["layers"].as_array().unwrap();
    let wasted = report["wasted"].as_array().unwrap();

    let deleted = wasted
        .iter()
        .find(|w| w["path"] == "/blob")
        .expect("/blob listed as wasted");
    assert_eq!(deleted["kind"], "deleted");
    assert_eq!(deleted["bytes"], 1_000_000);
    let chowned = wasted
        .iter()
        .find(|w| w["path"] == "/app/data")
        .expect("/app/data listed as wasted");
    assert_eq!(chowned["kind"], "metadata-only-readd");
    assert_eq!(chowned["changed"], serde_json::json!(["owner"]));
    assert!(u64_at(&report, "/totals/wasted_bytes") >= 1_300_000);
    assert_eq!(u64_at(&report, "/totals/metadata_only_bytes"), 300_000);

    let chown_layer = layers.last().unwrap();
    assert!(
        chown_layer["created_by"]
            .as_str()
            .unwrap()
            .contains("chown -R 1000 /app"),
        "{chown_layer:#}"
    );
    assert_eq!(chown_layer["metadata_only_bytes"], 300_000);
    let efficiency = report["totals"]["efficiency"].as_f64().unwrap();
    assert!(efficiency > 0.0 && efficiency < 1.0, "{efficiency}");

    // The layer table adds up to the stored image.
    let inspect: Value = serde_json::from_slice(
        &machine
            .stagecraft()
            .args(["inspect", "bloated:1"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // Layers weigh what they weigh on the wire: the sizes an OCI export (or a push) sends,
    // in the order of the stored image's layers.
    let layout = machine.context.with_extension("oci.tar");
    machine
        .stagecraft()
        .args(["save", "bloated:1", "--format", "oci", "-o"])
        .arg(&layout)
        .assert()
        .success();
    let manifest = common::exported_manifest(&layout, &machine.root);
    let stored: Vec<(&str, u64)> = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(manifest["layers"].as_array().unwrap())
        .map(|(l, sent)| {
            (
                l["digest"].as_str().unwrap(),
                sent["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let reported: Vec<(&str, u64)> = layers
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap(),
                l["compressed_size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reported, stored);
    assert_eq!(
        u64_at(&report, "/totals/compressed_bytes"),
        stored.iter().map(|(_, size)| size).sum::<u64>()
    );
    assert_eq!(
        u64_at(&report, "/totals/wasted_bytes"),
        u64_at(&report, "/totals/file_bytes") - u64_at(&report, "/totals/final_bytes")
    );

    let text = size(&machine, &["bloated:1", "--top", "3"]);
    assert!(text.contains("metadata-only re-add (owner)"), "{text}");
    assert!(text.contains("deleted"), "{text}");
    assert!(text.contains("/blob"), "{text}");
    assert!(text.contains("WASTED SPACE (the biggest 2 of 2)"), "{text}");
    // The report says how to fix what it finds.
    assert!(text.contains("TO FIX"), "{text}");
    assert!(text.contains("COPY --chown"), "{text}");
    let page = dir.path().join("size.html");
    size(&machine, &["bloated:1", "--html", page.to_str().unwrap()]);
    let page = std::fs::read_to_string(&page).unwrap();
    assert!(
        page.contains("How to fix it") && page.contains("<code>COPY --chown"),
        "{page}"
    );
}

#[test]
fn stage_sizes_put_the_final_image_next_to_its_builder() {
    let dir = tempfile::tempdir().unwrap();
    let machine = machine(dir.path(), MULTI_STAGE);
    machine.build(&["--target", "build", "-t", "app:builder"]);
    machine.build(&["-t", "app:final"]);

    // What `stagecraft build` records after a build, written here from the two images so the
    // test does not depend on the build command doing it.
    let store = stagecraft_store::Store::open(&machine.root).unwrap();
    let stage = |name: &str, reference: &str| {
        let image = store.image(reference).unwrap();
        stagecraft_report::StageSizes {
            name: name.to_owned(),
            status: stagecraft_report::StageStatus::Built,
            layers: image
                .manifest
                .layers
                .iter()
                .map(|l| stagecraft_report::StageLayer {
                    digest: l.digest.clone(),
                    size: l.size,
                    uncompressed_size: None,
                    created_by: String::new(),
                })
                .collect(),
            base_layers: 1,
        }
    };
    let stages = [stage("build", "app:builder"), stage("final", "app:final")];
    let final_image = store.image("app:final").unwrap();
    stagecraft_report::save_stage_sizes(&store, &final_image.manifest_digest, &stages).unwrap();

    let text = size(&machine, &["app:final", "--stage"]);
    assert!(text.contains("final (final)"), "{text}");
    // Labelled as a comparison: the final stage is not a shrunk copy of the builder.
    assert!(
        text.contains("THE FINAL IMAGE NEXT TO EACH BUILDER STAGE"),
        "{text}"
    );
    assert!(text.contains("smaller"), "{text}");
    let report = size_json(&machine, &["app:final", "--stage"]);
    let before_after = &report["stages"]["before_after"][0];
    assert_eq!(before_after["stage"], "build");
    assert!(u64_at(before_after, "/stage_bytes") > u64_at(before_after, "/final_bytes"));
    assert!(before_after["saved_percent"].as_f64().unwrap() > 50.0);
    // Stages are weighed as the layer table weighs the image: compressed, whether the store
    // holds a layer as a plain tar (built here) or compressed (the pulled base).
    let final_row = &report["stages"]["stages"][1];
    assert_eq!(final_row["name"], "final");
    assert_eq!(
        u64_at(final_row, "/compressed_bytes"),
        u64_at(&report, "/totals/compressed_bytes")
    );
    // Every stage's uncompressed size is known, the pulled base's included.
    assert_eq!(
        u64_at(final_row, "/uncompressed_bytes"),
        u64_at(&report, "/totals/uncompressed_bytes")
    );

    // An image no build recorded: the layer report, and a note on where stage sizes come from.
    let output = machine
        .stagecraft()
        .args(["size", "busybox:latest", "--stage"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stagecraft build --report"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("LAYER"));
}

/// Installs Chromium when the machine lacks it (tests run as root on Debian).
fn chromium() -> &'static str {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let status = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .unwrap();
        assert!(status.success(), "apt-get install chromium failed");
    }
    "chromium"
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let machine = machine(dir.path(), BLOATED);
    machine.build(&["-t", "bloated:1"]);
    let html_path = dir.path().join("size-report.html");
    let report = size_json(
        &machine,
        &["bloated:1", "--html", html_path.to_str().unwrap()],
    );

    let html = fs::read_to_string(&html_path).unwrap();
    for layer in report["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        assert!(html.contains(digest), "{digest} missing from the page");
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("<svg") && html.contains("/bin/busybox"));

    let screenshot = dir.path().join("size-report.png");
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .arg("180")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", html_path.display()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let png = fs::read(&screenshot).expect("chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank 1200×800 page compresses to a few kB; the treemap and tables make far more.
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());

    let artifacts: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    fs::copy(&screenshot, artifacts.join("size-report.png")).unwrap();
    fs::copy(&html_path, artifacts.join("size-report.html")).unwrap();
}
