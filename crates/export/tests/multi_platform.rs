//! Multi-platform images out of the store: an OCI layout tar of the index (loaded back whole),
//! and root filesystems split by platform, as BuildKit's exporters write them.

use stagecraft_export::{
    IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION, load, platform_dir_name,
    unpack_rootfs_per_platform, write_index_archive, write_rootfs_tar_per_platform,
};
use stagecraft_image::media_type::{OCI_INDEX, OCI_LAYER};
use stagecraft_image::{ImageConfig, ImageIndex, Platform};
use stagecraft_store::{Image, ManifestFormat, MultiPlatformImage, Store};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const PLATFORMS: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/arm/v7"];

/// A plain layer tar holding `etc/platform` (the platform's name) and an empty `data/`.
fn layer_tar(platform: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    for name in ["etc/", "data/"] {
        builder
            .append_data(&mut dir.clone(), name, std::io::empty())
            .unwrap();
    }
    let mut file = tar::Header::new_ustar();
    file.set_mode(0o644);
    file.set_size(platform.len() as u64);
    builder
        .append_data(&mut file, "etc/platform", platform.as_bytes())
        .unwrap();
    builder.into_inner().unwrap()
}

fn platform_image(store: &Store, platform: &str) -> Image {
    let layer = store.write_blob_bytes(&layer_tar(platform)).unwrap();
    let mut config = ImageConfig::for_platform(&Platform::parse(platform).unwrap());
    config.rootfs.diff_ids = vec![layer.digest.clone()];
    store
        .write_image(
            &config,
            vec![layer.descriptor(OCI_LAYER)],
            ManifestFormat::Oci,
        )
        .unwrap()
}

fn multi(store: &Store) -> MultiPlatformImage {
    let images: Vec<Image> = PLATFORMS.iter().map(|p| platform_image(store, p)).collect();
    store.write_index(&images, ManifestFormat::Oci).unwrap()
}

fn open_store(dir: &tempfile::TempDir, name: &str) -> Store {
    Store::open(dir.path().join(name)).unwrap()
}

#[test]
fn platform_directories_are_named_like_buildkit() {
    let names: Vec<String> = PLATFORMS
        .iter()
        .map(|p| platform_dir_name(&Platform::parse(p).unwrap()))
        .collect();
    assert_eq!(names, ["linux_amd64", "linux_arm64", "linux_arm_v7"]);
}

#[test]
fn each_platform_is_unpacked_into_its_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "store");
    let image = multi(&store);
    let out = dir.path().join("out");
    unpack_rootfs_per_platform(&store, &image, &out).unwrap();
    let mut found: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ["linux_amd64", "linux_arm64", "linux_arm_v7"]);
    for platform in PLATFORMS {
        let platform_dir = out.join(platform_dir_name(&Platform::parse(platform).unwrap()));
        assert_eq!(
            fs::read_to_string(platform_dir.join("etc/platform")).unwrap(),
            platform
        );
        assert!(platform_dir.join("data").is_dir());
        let meta = fs::metadata(&platform_dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(meta.mtime(), 0);
    }
}

#[test]
fn one_tar_holds_every_platform_under_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "store");
    let image = multi(&store);
    let mut bytes = Vec::new();
    write_rootfs_tar_per_platform(&store, &image, &mut bytes).unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let header = entry.header().clone();
        let mut content = String::new();
        entry.read_to_string(&mut content).unwrap();
        entries.push((path, header, content));
    }
    for platform in PLATFORMS {
        let prefix = platform_dir_name(&Platform::parse(platform).unwrap());
        let (_, header, _) = entries
            .iter()
            .find(|(path, ..)| path.trim_end_matches('/') == prefix)
            .unwrap_or_else(|| panic!("no {prefix} entry"));
        assert_eq!(header.entry_type(), tar::EntryType::Directory);
        assert_eq!(header.mode().unwrap() & 0o7777, 0o755);
        assert_eq!(header.mtime().unwrap(), 0);
        let file = format!("{prefix}/etc/platform");
        let (_, _, content) = entries
            .iter()
            .find(|(path, ..)| *path == file)
            .unwrap_or_else(|| panic!("no {file}"));
        assert_eq!(content, platform);
    }
    assert!(
        entries.iter().all(|(path, ..)| PLATFORMS
            .iter()
            .any(|p| path.starts_with(&platform_dir_name(&Platform::parse(p).unwrap())))),
        "{:?}",
        entries.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    // The same image gives the same bytes.
    let mut again = Vec::new();
    write_rootfs_tar_per_platform(&store, &image, &mut again).unwrap();
    assert!(again == bytes);
}

#[test]
fn an_index_archive_names_the_index_and_loads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "store");
    let image = multi(&store);
    let archive = dir.path().join("multi.tar");
    let name = "docker.io/library/app:multi".to_owned();
    write_index_archive(
        &store,
        &image,
        std::slice::from_ref(&name),
        &Default::default(),
        false,
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();

    let mut tar = tar::Archive::new(fs::File::open(&archive).unwrap());
    let mut index_json = Vec::new();
    let mut blobs = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path == "index.json" {
            entry.read_to_end(&mut index_json).unwrap();
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/")
            && !hex.is_empty()
        {
            blobs.push(hex.to_owned());
        }
    }
    let top = ImageIndex::from_slice(&index_json).unwrap();
    let [entry] = &top.manifests[..] else {
        panic!("{top:?}")
    };
    assert_eq!(entry.media_type, OCI_INDEX);
    assert_eq!(entry.digest, image.index_digest);
    assert_eq!(entry.annotations[IMAGE_NAME_ANNOTATION], name);
    assert_eq!(entry.annotations[REF_NAME_ANNOTATION], "multi");
    // The index, and per platform its manifest, config and layer, each once.
    let mut expected = vec![image.index_digest.hex().to_owned()];
    for platform_image in &image.images {
        expected.push(platform_image.manifest_digest.hex().to_owned());
        expected.push(platform_image.config_digest.hex().to_owned());
        expected.push(platform_image.manifest.layers[0].digest.hex().to_owned());
    }
    blobs.sort();
    expected.sort();
    assert_eq!(blobs, expected);

    let other = open_store(&dir, "other");
    let loaded = load(&other, &archive).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, std::slice::from_ref(&name));
    assert_eq!(other.multi_platform_image(&name).unwrap(), Some(image));
}

#[test]
fn an_index_of_other_machines_platforms_loads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir, "store");
    // Platforms no test machine is.
    let images: Vec<Image> = ["linux/s390x", "linux/riscv64"]
        .iter()
        .map(|p| platform_image(&store, p))
        .collect();
    let image = store.write_index(&images, ManifestFormat::Oci).unwrap();
    let archive = dir.path().join("foreign.tar");
    let name = "docker.io/library/foreign:1".to_owned();
    write_index_archive(
        &store,
        &image,
        std::slice::from_ref(&name),
        &Default::default(),
        false,
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();
    let other = open_store(&dir, "other");
    let loaded = load(&other, &archive).unwrap();
    assert_eq!(loaded[0].image.manifest_digest, images[0].manifest_digest);
    assert_eq!(
        loaded[0].image.index_digest.as_ref(),
        Some(&image.index_digest)
    );
    assert_eq!(other.multi_platform_image(&name).unwrap(), Some(image));
}
