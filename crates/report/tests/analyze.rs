//! Reports on images made of hand-built layers (real layer blobs written by
//! `stagecraft_layer::write_layer` from directory trees, stored in a real store).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use stagecraft_image::{Descriptor, Digest, History, ImageConfig, Platform};
use stagecraft_layer::{Compression, DiffSource, TarOptions, write_layer};
use stagecraft_report::{Options, WasteKind, analyze, render_html, render_text};
use stagecraft_store::{Image, ManifestFormat, Store};

/// (path, content, mode) of a regular file.
type Spec<'a> = (&'a str, Vec<u8>, u32);

/// Bytes that do not compress away, so compressed and uncompressed sizes differ sensibly.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// Writes `files` under `root` with one fixed mtime, so that unchanged files compare equal
/// between two trees.
fn tree(root: &Path, files: &[Spec]) {
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fs::create_dir_all(root).unwrap();
    for (path, content, mode) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
}

/// Stores layers made from successive trees (the first whole, then each as a diff from the
/// previous one) as an image whose history has an empty `ENV` entry between the layers.
fn image(store: &Store, dir: &Path, trees: &[Vec<Spec>]) -> Image {
    let mut config = ImageConfig::for_platform(&Platform::parse("linux/amd64").unwrap());
    let mut layers = Vec::new();
    for (index, files) in trees.iter().enumerate() {
        let upper = dir.join(format!("tree{index}"));
        tree(&upper, files);
        let lower = dir.join(format!("tree{}", index.saturating_sub(1)));
        let source = if index == 0 {
            DiffSource::Rootfs { root: &upper }
        } else {
            DiffSource::Directories {
                lower: &lower,
                upper: &upper,
            }
        };
        let (info, bytes) = write_layer(
            &source,
            &TarOptions::default(),
            Compression::gzip(),
            Vec::new(),
        )
        .unwrap();
        let blob = store.write_blob_bytes(&bytes).unwrap();
        assert_eq!(blob.digest.as_str(), info.digest);
        layers.push(Descriptor::new(info.media_type(), blob.digest, blob.size));
        config
            .rootfs
            .diff_ids
            .push(Digest::parse(&info.diff_id).unwrap());
        for (created_by, empty_layer) in [
            (format!("RUN step {index}"), false),
            ("ENV A=1".to_owned(), true),
        ] {
            config.history.push(History {
                created: None,
                created_by,
                author: String::new(),
                comment: String::new(),
                empty_layer,
            });
        }
    }
    store
        .write_image(&config, layers, ManifestFormat::Oci)
        .unwrap()
}

#[test]
fn deleted_overwritten_and_metadata_only_bytes_are_wasted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let base: Vec<Spec> = vec![
        ("bin/tool", noise(100_000, 1), 0o755),
        ("data/a", noise(50_000, 2), 0o644),
        ("data/b", noise(30_000, 3), 0o644),
        ("etc/conf", noise(1_000, 4), 0o644),
        ("keep", noise(10_000, 5), 0o644),
    ];
    // Layer 1: rm /data/a, rewrite /etc/conf, chmod /keep (same content).
    let second: Vec<Spec> = vec![
        ("bin/tool", noise(100_000, 1), 0o755),
        ("data/b", noise(30_000, 3), 0o644),
        ("etc/conf", noise(2_000, 6), 0o644),
        ("keep", noise(10_000, 5), 0o600),
    ];
    // Layer 2: rm -r /data, add /big.
    let third: Vec<Spec> = vec![
        ("bin/tool", noise(100_000, 1), 0o755),
        ("etc/conf", noise(2_000, 6), 0o644),
        ("keep", noise(10_000, 5), 0o600),
        ("big", noise(200_000, 7), 0o644),
    ];
    let image = image(&store, dir.path(), &[base, second, third]);
    let report = analyze(&store, &image, "test:1", &Options { top: 3 }).unwrap();

    // The numbers add up: compressed sizes are the stored blobs, summing to the manifest's.
    let manifest_bytes: u64 = image.manifest.layers.iter().map(|l| l.size).sum();
    let stored_bytes: u64 = image
        .manifest
        .layers
        .iter()
        .map(|l| fs::metadata(store.blob_path(&l.digest)).unwrap().len())
        .sum();
    let table_bytes: u64 = report.layers.iter().map(|l| l.compressed_size).sum();
    assert_eq!(table_bytes, manifest_bytes);
    assert_eq!(table_bytes, stored_bytes);
    assert_eq!(report.totals.compressed_bytes, stored_bytes);

    let totals = report.totals;
    assert_eq!(totals.file_bytes, 191_000 + 12_000 + 200_000);
    assert_eq!(totals.final_bytes, 100_000 + 2_000 + 10_000 + 200_000);
    assert_eq!(totals.wasted_bytes, 50_000 + 1_000 + 10_000 + 30_000);
    assert_eq!(totals.wasted_bytes, totals.file_bytes - totals.final_bytes);
    assert_eq!(totals.metadata_only_bytes, 10_000);
    assert!((totals.efficiency - (1.0 - 91_000.0 / 403_000.0)).abs() < 1e-12);
    assert_eq!(totals.final_files, 4);

    let per_layer: Vec<(u64, u64, u64)> = report
        .layers
        .iter()
        .map(|l| (l.wasted_bytes, l.hidden_bytes, l.metadata_only_bytes))
        .collect();
    assert_eq!(
        per_layer,
        [(91_000, 0, 0), (0, 61_000, 10_000), (0, 30_000, 0)]
    );
    let created_by: Vec<&str> = report
        .layers
        .iter()
        .map(|l| l.created_by.as_str())
        .collect();
    assert_eq!(created_by, ["RUN step 0", "RUN step 1", "RUN step 2"]);
    assert_eq!(report.layers[0].files, 5);
    assert_eq!(report.layers[1].deletions, 1);
    let biggest: Vec<&str> = report.layers[0]
        .biggest
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        biggest,
        ["/bin/tool", "/data/a", "/data/b"],
        "top 3, biggest first"
    );
    for layer in &report.layers {
        assert!(
            layer.uncompressed_size > layer.file_bytes,
            "tar headers count too"
        );
        assert_eq!(
            Some(&layer.digest),
            image.manifest.layers.get(layer.index).map(|l| &l.digest)
        );
    }

    // Top 3 of 4 waste entries, biggest first.
    assert_eq!(totals.wasted_entries, 4);
    let wasted: Vec<(&str, u64, WasteKind, usize, usize)> = report
        .wasted
        .iter()
        .map(|w| (w.path.as_str(), w.bytes, w.kind, w.added_in, w.hidden_by))
        .collect();
    assert_eq!(
        wasted,
        [
            ("/data/a", 50_000, WasteKind::Deleted, 0, 1),
            ("/data", 30_000, WasteKind::Deleted, 0, 2),
            ("/keep", 10_000, WasteKind::MetadataOnlyReadd, 0, 1),
        ]
    );
    assert_eq!(report.wasted[2].changed, ["mode"]);

    let text = render_text(&report);
    assert!(text.contains("metadata-only re-add (mode)"), "{text}");
    assert!(text.contains("efficiency 77.4%"), "{text}");
    // The wasted table's header lines up with its rows: PATH starts where the paths do.
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|l| l.contains("HIDDEN BY")).unwrap();
    let path_column = lines[header].find("PATH").unwrap();
    for row in &lines[header + 1..header + 4] {
        assert_eq!(row.find('/'), Some(path_column), "{text}");
    }
    // Each kind of waste found comes with its fix, once.
    assert!(text.contains("TO FIX"), "{text}");
    assert_eq!(text.matches("\n  deleted: ").count(), 1, "{text}");
    assert!(text.contains("COPY --chown"), "{text}");
    // The two file counts say what they count.
    assert!(text.contains("in the final filesystem"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["totals"]["wasted_bytes"], 91_000);
    assert_eq!(json["wasted"][2]["kind"], "metadata-only-readd");
    assert_eq!(json["layers"][1]["metadata_only_bytes"], 10_000);

    let html = render_html(&report);
    for layer in &report.layers {
        assert!(html.contains(layer.digest.as_str()));
    }
    assert!(html.contains("<svg") && html.contains("/bin/tool"));
    assert!(
        html.contains("How to fix it") && html.contains("<code>COPY --chown"),
        "{html}"
    );
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn an_image_without_layers_is_fully_efficient() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let image = image(&store, dir.path(), &[]);
    let report = analyze(&store, &image, "empty", &Options::default()).unwrap();
    assert_eq!(report.totals.layers, 0);
    assert_eq!(report.totals.efficiency, 1.0);
    assert!(render_text(&report).contains("WASTED SPACE: none"));
}
