//! A multi-platform image through every `--output` kind, against real peers: skopeo reads the
//! OCI layout, the Debian `docker-registry` takes the push and skopeo reads it back.
//!
//! The per-platform images are made as a `--platform linux/amd64,linux/arm64` build leaves
//! them: the offline busybox fixture's two platforms, their layers stored uncompressed.

use stagecraft_build::{
    Attestations, BuiltImage, Destination, Error, ExportFacts, Exported, ImageKeys, Output, export,
    registry,
};
use stagecraft_image::media_type::{OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST};
use stagecraft_image::{Digest, ImageIndex, ImageManifest, Platform};
use stagecraft_layer::Compression;
use stagecraft_store::{Image, ManifestFormat, MultiPlatformImage, Store};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn shared_dir() -> PathBuf {
    std::env::var_os("STAGECRAFT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// A store holding the busybox fixture for linux/amd64 and linux/arm64 as a build makes
/// images (plain tar layers), and their index.
struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    image: MultiPlatformImage,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("busybox");
        let status = Command::new(shared_dir().join("fixtures/make-busybox-image"))
            .arg(&layout)
            .args(["latest", "--platform", "linux/amd64,linux/arm64"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "make-busybox-image failed");
        let store = Store::open(dir.path().join("store")).unwrap();
        stagecraft_export::load(&store, &layout).unwrap();
        let loaded = store
            .multi_platform_image(&format!("busybox@{}", index_digest(&layout)))
            .unwrap()
            .unwrap();
        let images: Vec<Image> = loaded
            .images
            .iter()
            .map(|image| uncompressed(&store, image))
            .collect();
        let image = store.write_index(&images, ManifestFormat::Oci).unwrap();
        Fixture { dir, store, image }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn export(&self, output: &Output) -> Result<Vec<Exported>, Error> {
        export(
            &self.store,
            &BuiltImage::Multi(self.image.clone()),
            &Attestations::default(),
            &[],
            output,
            Compression::gzip(),
            &registry(&[]),
            &ExportFacts::default(),
        )
    }
}

/// The digest the fixture layout's `index.json` names.
fn index_digest(layout: &Path) -> Digest {
    let index = ImageIndex::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    index.manifests[0].digest.clone()
}

/// `image` again with its gzip layers stored as plain tars, as a build stores its layers.
fn uncompressed(store: &Store, image: &Image) -> Image {
    let layers = image
        .manifest
        .layers
        .iter()
        .map(|layer| {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(store.open_blob(&layer.digest).unwrap())
                .read_to_end(&mut plain)
                .unwrap();
            store
                .write_blob_bytes(&plain)
                .unwrap()
                .descriptor(OCI_LAYER)
        })
        .collect();
    store
        .write_image(&image.config, layers, ManifestFormat::Oci)
        .unwrap()
}

fn tool(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The platforms of an index, in order.
fn platforms(index: &ImageIndex) -> Vec<String> {
    index
        .manifests
        .iter()
        .map(|d| d.platform.as_ref().unwrap().to_string())
        .collect()
}

/// The ELF machine of a binary: 62 is x86-64, 183 is AArch64.
fn elf_machine(path: &Path) -> u16 {
    let bytes = fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{}", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn an_oci_layout_holds_the_index_with_every_platform_compressed() {
    let fixture = Fixture::new();
    let archive = fixture.path("multi.tar");
    let exported = export(
        &fixture.store,
        &BuiltImage::Multi(fixture.image.clone()),
        &Attestations::default(),
        &["docker.io/library/app:1".to_owned()],
        &Output::Oci {
            dest: Destination::File(archive.clone()),
            names: vec![],
            compression: None,
            keys: ImageKeys::default(),
        },
        Compression::gzip(),
        &registry(&[]),
        &ExportFacts::default(),
    )
    .unwrap();
    let [Exported::Layout { digest, .. }] = &exported[..] else {
        panic!("{exported:?}")
    };

    // Read the layout as a file tree: index.json → index → manifests → configs and layers.
    let unpacked = fixture.path("unpacked");
    tool(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            fixture.dir.path().to_str().unwrap(),
            "--one-top-level=unpacked",
        ],
    );
    let blob =
        |digest: &Digest| fs::read(unpacked.join("blobs/sha256").join(digest.hex())).unwrap();
    let top = ImageIndex::from_slice(&fs::read(unpacked.join("index.json")).unwrap()).unwrap();
    assert_eq!(top.manifests.len(), 1);
    let entry = &top.manifests[0];
    assert_eq!(entry.media_type, OCI_INDEX);
    assert_eq!(&entry.digest, digest);
    assert_eq!(
        entry.annotations["io.containerd.image.name"],
        "docker.io/library/app:1"
    );
    assert_eq!(entry.annotations["org.opencontainers.image.ref.name"], "1");
    let index_bytes = blob(digest);
    assert_eq!(&Digest::of(&index_bytes), digest);
    let index = ImageIndex::from_slice(&index_bytes).unwrap();
    assert_eq!(index.media_type, OCI_INDEX);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    for (descriptor, built) in index.manifests.iter().zip(&fixture.image.images) {
        assert_eq!(descriptor.media_type, OCI_MANIFEST);
        let bytes = blob(&descriptor.digest);
        assert_eq!(Digest::of(&bytes), descriptor.digest);
        let manifest = ImageManifest::from_slice(&bytes).unwrap();
        assert_eq!(manifest.config.digest, built.config_digest);
        assert_eq!(
            Digest::of(&blob(&manifest.config.digest)),
            built.config_digest
        );
        for (layer, diff_id) in manifest.layers.iter().zip(&built.config.rootfs.diff_ids) {
            assert_eq!(layer.media_type, OCI_LAYER_GZIP);
            let compressed = blob(&layer.digest);
            assert_eq!(Digest::of(&compressed), layer.digest);
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&compressed[..])
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(&Digest::of(&plain), diff_id);
        }
    }

    // skopeo reads the archive as a multi-platform image and copies every platform out of it.
    let source = format!("oci-archive:{}", archive.display());
    let raw = tool("skopeo", &["inspect", "--raw", &source]);
    assert_eq!(Digest::of(&raw), *digest);
    let arm64: serde_json::Value = serde_json::from_slice(&tool(
        "skopeo",
        &["inspect", "--override-arch", "arm64", &source],
    ))
    .unwrap();
    assert_eq!(arm64["Architecture"], "arm64");
    let copy = fixture.path("copy");
    tool(
        "skopeo",
        &[
            "copy",
            "--all",
            &source,
            &format!("oci:{}:copy", copy.display()),
        ],
    );
    let copied = ImageIndex::from_slice(&fs::read(copy.join("index.json")).unwrap()).unwrap();
    assert_eq!(&copied.manifests[0].digest, digest);
}

#[test]
fn a_push_sends_every_platform_then_the_index() {
    let fixture = Fixture::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = fixture.path("registry");
    fs::create_dir_all(&data).unwrap();
    let started = Command::new(shared_dir().join("fixtures/start-registry"))
        .arg(port.to_string())
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "start-registry: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let _registry = StopOnDrop(data.join("registry.pid"));

    let name = format!("127.0.0.1:{port}/team/app:multi");
    let exported = fixture
        .export(&Output::Image {
            names: vec![name.clone()],
            push: true,
            compression: None,
            keys: ImageKeys::default(),
        })
        .unwrap();
    let [
        Exported::Pushed {
            name: pushed,
            digest,
            ..
        },
    ] = &exported[..]
    else {
        panic!("{exported:?}")
    };
    assert_eq!(pushed, &name);
    // The tag in the store names the index as built (uncompressed layers).
    assert_eq!(
        fixture.store.resolve_tag(&name).unwrap().as_ref(),
        Some(&fixture.image.index_digest)
    );

    let remote = format!("docker://{name}");
    let raw = tool(
        "skopeo",
        &["inspect", "--raw", "--tls-verify=false", &remote],
    );
    assert_eq!(Digest::of(&raw).to_string(), *digest);
    let index = ImageIndex::from_slice(&raw).unwrap();
    assert_eq!(index.media_type, OCI_INDEX);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    for (descriptor, built) in index.manifests.iter().zip(&fixture.image.images) {
        let by_digest = format!("docker://127.0.0.1:{port}/team/app@{}", descriptor.digest);
        let manifest = tool(
            "skopeo",
            &["inspect", "--raw", "--tls-verify=false", &by_digest],
        );
        let manifest = ImageManifest::from_slice(&manifest).unwrap();
        assert_eq!(manifest.config.digest, built.config_digest);
        assert!(
            manifest
                .layers
                .iter()
                .all(|l| l.media_type == OCI_LAYER_GZIP)
        );
    }
    let arm64: serde_json::Value = serde_json::from_slice(&tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            "arm64",
            &remote,
        ],
    ))
    .unwrap();
    assert_eq!(arm64["Architecture"], "arm64");

    // Pushed again: the registry has every blob and manifest, the digest is the same.
    let again = fixture
        .export(&Output::Image {
            names: vec![name.clone()],
            push: true,
            compression: None,
            keys: ImageKeys::default(),
        })
        .unwrap();
    assert_eq!(again, exported);
}

/// Stops the process whose pid file this is when dropped.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn an_image_output_without_push_tags_the_index() {
    let fixture = Fixture::new();
    let exported = fixture
        .export(&Output::Image {
            names: vec!["app:multi".to_owned()],
            push: false,
            compression: None,
            keys: ImageKeys::default(),
        })
        .unwrap();
    assert_eq!(
        exported,
        [Exported::Named {
            names: vec!["docker.io/library/app:multi".to_owned()]
        }]
    );
    for built in &fixture.image.images {
        let found = fixture
            .store
            .image_for_platform("app:multi", &built.config.platform())
            .unwrap();
        assert_eq!(found.manifest_digest, built.manifest_digest);
    }
    assert_eq!(
        fixture.store.multi_platform_image("app:multi").unwrap(),
        Some(fixture.image.clone())
    );
}

#[test]
fn local_and_tar_outputs_split_by_platform() {
    let fixture = Fixture::new();
    let dir = fixture.path("out");
    assert_eq!(
        fixture.export(&Output::Local(dir.clone())).unwrap(),
        [Exported::Files]
    );
    let mut found: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ["linux_amd64", "linux_arm64"]);
    assert_eq!(elf_machine(&dir.join("linux_amd64/bin/busybox")), 62);
    assert_eq!(elf_machine(&dir.join("linux_arm64/bin/busybox")), 183);
    assert!(dir.join("linux_arm64/etc/passwd").is_file());

    let tar_path = fixture.path("rootfs.tar");
    fixture
        .export(&Output::Tar(Destination::File(tar_path.clone())))
        .unwrap();
    let mut archive = tar::Archive::new(fs::File::open(&tar_path).unwrap());
    let mut paths = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path == "linux_arm64/bin/busybox" {
            let mut head = [0u8; 20];
            entry.read_exact(&mut head).unwrap();
            assert_eq!(u16::from_le_bytes([head[18], head[19]]), 183);
        }
        paths.push(path);
    }
    for wanted in [
        "linux_amd64/",
        "linux_amd64/bin/busybox",
        "linux_arm64/",
        "linux_arm64/bin/busybox",
        "linux_arm64/etc/passwd",
    ] {
        assert!(paths.iter().any(|p| p == wanted), "{wanted} in {paths:?}");
    }
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("linux_amd64/") || p.starts_with("linux_arm64/")),
        "{paths:?}"
    );
}

#[test]
fn a_docker_archive_cannot_hold_several_platforms() {
    let fixture = Fixture::new();
    let dest = fixture.path("docker.tar");
    let output = Output::Docker {
        dest: Destination::File(dest.clone()),
        names: vec![],
        keys: ImageKeys::default(),
    };
    let error = fixture.export(&output).unwrap_err();
    assert!(
        matches!(error, Error::DockerMultiPlatform { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for part in [
        "docker exporter does not currently support exporting manifest lists",
        "linux/amd64, linux/arm64",
        "type=oci",
        "--push",
        "one --platform",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(!dest.exists());

    // The same answer before a build, from the platforms asked for.
    let asked = [
        Platform::parse("linux/amd64").unwrap(),
        Platform::parse("linux/arm64").unwrap(),
    ];
    let early = output.check(&asked, Compression::gzip(), None).unwrap_err();
    assert_eq!(early.to_string(), message);
    output
        .check(&asked[..1], Compression::gzip(), None)
        .unwrap();
    Output::Oci {
        dest: Destination::File(dest),
        names: vec![],
        compression: None,
        keys: ImageKeys::default(),
    }
    .check(&asked, Compression::gzip(), None)
    .unwrap();
}
