//! Getting images out of the store and into it in the formats other tools speak:
//!
//! - an **OCI image layout** (`oci-layout`, `index.json`, `blobs/sha256/…`), as a directory or a
//!   tar — what `skopeo`, `umoci`, `crane` and BuildKit's `--output type=oci` use;
//! - a **docker archive** — the same OCI layout plus docker's `manifest.json` and
//!   `repositories`, which both `docker load` (old and new) and OCI tools accept;
//! - a **multi-platform image** (an index over per-platform images) as an OCI layout tar;
//! - a **root filesystem** (a tar, or a directory) of an image's layers applied in order, or of
//!   each platform of a multi-platform image in its own directory (`linux_amd64/`, …);
//! - **import** of a root filesystem (directory or tar) as a one-layer image;
//! - **cache mounts** as an OCI artifact, in a registry or an OCI layout tar ([`cache_mounts`]).
//!
//! Loading auto-detects an OCI layout (directory or tar) or a docker archive and keeps every
//! manifest byte for byte, so digests survive a save/load round trip.
#![forbid(unsafe_code)]

pub mod cache_mounts;
mod rootfs;

pub use rootfs::{
    platform_dir_name, unpack_rootfs, unpack_rootfs_per_platform, write_rootfs_tar,
    write_rootfs_tar_per_platform, write_tree_tar,
};

use stagecraft_image::media_type;
use stagecraft_image::{Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform};
use stagecraft_layer::{ApplyOptions, Compression, DiffSource, LayerInfo, TarOptions, apply_layer};
use stagecraft_store::{
    Artifact, BlobInfo, Image, ManifestFormat, MultiPlatformImage, ScratchDir, Store,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The annotation that names an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation with the full image name (docker and BuildKit write it too).
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// File trouble.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Store trouble.
    #[error(transparent)]
    Store(#[from] stagecraft_store::Error),
    /// Layer trouble.
    #[error(transparent)]
    Layer(#[from] stagecraft_layer::Error),
    /// No cache mount has the id asked for.
    #[error(
        "no cache mount {id:?} in the store; `stagecraft cache ls` lists them (a mount's id is its id=, else its target)"
    )]
    NoCacheMount {
        /// The id asked for.
        id: String,
    },
    /// A manifest that is not a cache-mount export was given to import.
    #[error(
        "{origin} is not a stagecraft cache-mount export: {reason} (make one with `stagecraft cache export`)"
    )]
    NotCacheMounts {
        /// The file or reference it came from.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Exporting a cache mount, or swapping an imported one in, failed.
    #[error("cache mount {id:?}: {source}")]
    CacheMount {
        /// The mount's id.
        id: String,
        /// What failed.
        #[source]
        source: Box<ExportError>,
    },
    /// An exported cache mount could not be unpacked; the store's mounts were left as they were.
    #[error("cannot import cache mount {id:?}, so no cache mount was changed: {source}")]
    Unpack {
        /// The mount's id.
        id: String,
        /// What failed.
        #[source]
        source: Box<ExportError>,
    },
    /// The input is not an image archive we understand.
    #[error("{path}: {reason}")]
    Format {
        /// The input.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An image to export with the names to give it.
pub struct NamedImage {
    /// The image.
    pub image: Image,
    /// Full references (`docker.io/library/app:1`) to record, possibly none.
    pub names: Vec<String>,
    /// Annotations of its entry in a layout's `index.json` besides the names
    /// (`annotation-manifest-descriptor.*`).
    pub annotations: BTreeMap<String, String>,
}

/// The blobs of an image: manifest (and index if any), config, layers.
fn image_blobs(image: &Image) -> Vec<Digest> {
    let mut digests = vec![image.manifest_digest.clone(), image.config_digest.clone()];
    if let Some(index) = &image.index_digest {
        digests.push(index.clone());
    }
    digests.extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
    digests
}

/// The tag part of a reference (`…:1.2` → `1.2`), `latest` when absent.
fn tag_of(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map_or("latest", |(_, t)| t).to_owned()
}

/// The descriptor of a stored manifest or index of `media_type`, as a layout's `index.json`
/// lists it.
fn stored_descriptor(
    store: &Store,
    media_type: &str,
    digest: &Digest,
) -> Result<Descriptor, ExportError> {
    Ok(Descriptor::new(
        media_type,
        digest.clone(),
        store.blob_size(digest)?,
    ))
}

/// A layout's `index.json`: each top-level descriptor once per name (annotated with the full
/// name and its tag, as BuildKit's exporters write them), or once unnamed.
fn index_json(entries: &[(Descriptor, &[String])]) -> Result<Vec<u8>, ExportError> {
    let mut manifests = Vec::new();
    for (base, names) in entries {
        if names.is_empty() {
            manifests.push(base.clone());
        }
        for name in names.iter() {
            let mut descriptor = base.clone();
            descriptor
                .annotations
                .insert(IMAGE_NAME_ANNOTATION.to_owned(), name.clone());
            descriptor
                .annotations
                .insert(REF_NAME_ANNOTATION.to_owned(), tag_of(name));
            manifests.push(descriptor);
        }
    }
    let index = ImageIndex::new(media_type::OCI_INDEX, manifests);
    index.to_json().map_err(|e| ExportError::Format {
        path: PathBuf::from("index.json"),
        reason: e.to_string(),
    })
}

/// [`index_json`] of single-platform images.
fn images_index_json(store: &Store, images: &[NamedImage]) -> Result<Vec<u8>, ExportError> {
    let entries = images
        .iter()
        .map(|named| {
            let image = &named.image;
            let mut descriptor =
                stored_descriptor(store, &image.manifest.media_type, &image.manifest_digest)?;
            descriptor.annotations.extend(named.annotations.clone());
            Ok((descriptor, named.names.as_slice()))
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    index_json(&entries)
}

/// Writes an archive entry with fixed metadata (so archives are reproducible).
fn append(
    builder: &mut tar::Builder<impl Write>,
    path: &str,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, data)
}

fn append_dir(builder: &mut tar::Builder<impl Write>, path: &str) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Directory);
    builder.append_data(&mut header, path, io::empty())
}

/// Docker's `manifest.json` entries (and `repositories`) for the images.
fn docker_manifest(images: &[NamedImage]) -> (serde_json::Value, serde_json::Value) {
    let mut entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for named in images {
        let tags: Vec<String> = named.names.iter().map(|n| docker_short_name(n)).collect();
        let layers: Vec<String> = named
            .image
            .manifest
            .layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
            .collect();
        entries.push(serde_json::json!({
            "Config": format!("blobs/sha256/{}", named.image.config_digest.hex()),
            "RepoTags": tags,
            "Layers": layers,
        }));
        for tag in &tags {
            if let Some((repo, version)) = tag.rsplit_once(':') {
                let top = named
                    .image
                    .manifest
                    .layers
                    .last()
                    .map(|l| l.digest.hex().to_owned())
                    .unwrap_or_default();
                repositories
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(version.to_owned(), top);
            }
        }
    }
    (
        serde_json::Value::Array(entries),
        serde_json::to_value(repositories).unwrap_or_default(),
    )
}

/// `docker.io/library/app:1` → `app:1`, as docker prints names.
fn docker_short_name(name: &str) -> String {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// Starts an OCI layout tar: `oci-layout`, `index.json`, then each of `blobs` once. The caller
/// may append more entries before finishing it.
fn layout_tar<W: Write>(
    store: &Store,
    index: &[u8],
    blobs: impl IntoIterator<Item = Digest>,
    out: W,
) -> Result<tar::Builder<W>, ExportError> {
    let mut builder = tar::Builder::new(out);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(&mut builder, "oci-layout", layout.len() as u64, &layout[..]).map_err(archive_error)?;
    append(&mut builder, "index.json", index.len() as u64, index).map_err(archive_error)?;
    append_dir(&mut builder, "blobs/").map_err(archive_error)?;
    append_dir(&mut builder, "blobs/sha256/").map_err(archive_error)?;
    let mut written: Vec<Digest> = Vec::new();
    for digest in blobs {
        if written.contains(&digest) {
            continue;
        }
        let path = store.blob_file(&digest)?;
        let file = fs::File::open(&path).map_err(io_at(&path))?;
        let size = file.metadata().map_err(io_at(&path))?.len();
        append(
            &mut builder,
            &format!("blobs/sha256/{}", digest.hex()),
            size,
            io::BufReader::new(file),
        )
        .map_err(archive_error)?;
        written.push(digest);
    }
    Ok(builder)
}

fn archive_error(source: io::Error) -> ExportError {
    ExportError::Io {
        path: PathBuf::from("<archive>"),
        source,
    }
}

fn finish_archive(builder: tar::Builder<impl Write>) -> Result<(), ExportError> {
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .map_err(archive_error)
}

/// Writes images as an OCI layout tar (`docker == false`) or a docker archive (`true`) —
/// the latter is the OCI layout plus `manifest.json` and `repositories`.
pub fn write_archive(
    store: &Store,
    images: &[NamedImage],
    docker: bool,
    out: impl Write,
) -> Result<(), ExportError> {
    let index = images_index_json(store, images)?;
    let blobs = images.iter().flat_map(|named| image_blobs(&named.image));
    let mut builder = layout_tar(store, &index, blobs, out)?;
    if docker {
        append_docker_manifest(&mut builder, images)?;
    }
    finish_archive(builder)
}

/// Appends docker's `manifest.json` and `repositories` for `images` to an archive.
fn append_docker_manifest(
    builder: &mut tar::Builder<impl Write>,
    images: &[NamedImage],
) -> Result<(), ExportError> {
    let (manifest, repositories) = docker_manifest(images);
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    append(
        builder,
        "manifest.json",
        manifest.len() as u64,
        &manifest[..],
    )
    .map_err(archive_error)?;
    let repositories = serde_json::to_vec(&repositories).unwrap_or_default();
    append(
        builder,
        "repositories",
        repositories.len() as u64,
        &repositories[..],
    )
    .map_err(archive_error)
}

/// Writes a multi-platform image as an OCI layout tar, as BuildKit's `oci` exporter does:
/// `index.json` lists the image's index (once per name in `names`, annotated like
/// [`write_archive`]'s), and the blobs hold the index, every platform's manifest, config and
/// layers, and its attestation manifests with their blobs; the index's entry has
/// `annotations` besides the names (`annotation-index-descriptor.*`). Compress it first
/// ([`Store::compressed_index`]) for a layout other tools expect. With `docker`, the archive
/// also has docker's `manifest.json` and `repositories` for the index's images, as BuildKit's
/// docker exporter writes an attested image (an index of one image and its attestations).
pub fn write_index_archive(
    store: &Store,
    image: &MultiPlatformImage,
    names: &[String],
    annotations: &BTreeMap<String, String>,
    docker: bool,
    out: impl Write,
) -> Result<(), ExportError> {
    let mut descriptor = stored_descriptor(store, &image.index.media_type, &image.index_digest)?;
    descriptor.annotations.extend(annotations.clone());
    let index = index_json(&[(descriptor, names)])?;
    let attestations = image.attestations.iter().flat_map(|attestation| {
        std::iter::once(attestation.descriptor.digest.clone()).chain(attestation.blobs())
    });
    let blobs = std::iter::once(image.index_digest.clone())
        .chain(image.images.iter().flat_map(image_blobs))
        .chain(attestations);
    let mut builder = layout_tar(store, &index, blobs, out)?;
    if docker {
        let named: Vec<NamedImage> = image
            .images
            .iter()
            .map(|image| NamedImage {
                image: image.clone(),
                names: names.to_vec(),
                annotations: BTreeMap::new(),
            })
            .collect();
        append_docker_manifest(&mut builder, &named)?;
    }
    finish_archive(builder)
}

/// Writes a stored artifact ([`Store::write_artifact`]) as an OCI layout tar whose
/// `index.json` names its manifest.
pub fn write_artifact_archive(
    store: &Store,
    artifact: &Artifact,
    out: impl Write,
) -> Result<(), ExportError> {
    let index = ImageIndex::new(media_type::OCI_INDEX, vec![artifact.descriptor.clone()]);
    let index = index.to_json().map_err(|e| ExportError::Format {
        path: PathBuf::from("index.json"),
        reason: e.to_string(),
    })?;
    let blobs = std::iter::once(artifact.descriptor.digest.clone()).chain(artifact.blobs.clone());
    finish_archive(layout_tar(store, &index, blobs, out)?)
}

/// Writes images as an OCI layout directory.
pub fn write_layout_dir(
    store: &Store,
    images: &[NamedImage],
    dir: &Path,
) -> Result<(), ExportError> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_at(&blobs))?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_at(dir))?;
    for named in images {
        for digest in image_blobs(&named.image) {
            let target = blobs.join(digest.hex());
            if !target.exists() {
                fs::copy(store.blob_file(&digest)?, &target).map_err(io_at(&target))?;
            }
        }
    }
    let index = images_index_json(store, images)?;
    fs::write(dir.join("index.json"), index).map_err(io_at(dir))?;
    Ok(())
}

/// An image found in an archive or layout, with the names it carried.
pub struct LoadedImage {
    /// The stored image.
    pub image: Image,
    /// Names recorded in the archive (full references).
    pub names: Vec<String>,
}

/// Loads an OCI layout (directory or tar) or a docker archive into the store.
pub fn load(store: &Store, path: &Path) -> Result<Vec<LoadedImage>, ExportError> {
    if path.is_dir() {
        return load_dir(store, path);
    }
    let scratch = unpack_archive(store, path)?;
    load_dir(store, scratch.path()).map_err(|e| in_archive(path, e))
}

/// Unpacks the regular files and directories of a tar into a new directory in the store's
/// `ingest/` (removed on drop).
fn unpack_archive(store: &Store, path: &Path) -> Result<ScratchDir, ExportError> {
    let scratch = store.scratch_dir("load")?;
    let file = fs::File::open(path).map_err(io_at(path))?;
    let not_a_tar = |e: io::Error| ExportError::Format {
        path: path.to_owned(),
        reason: format!("not a tar archive, or a damaged one: {e}"),
    };
    let mut archive = tar::Archive::new(io::BufReader::new(file));
    for entry in archive.entries().map_err(not_a_tar)? {
        let mut entry = entry.map_err(not_a_tar)?;
        let name = entry.path().map_err(not_a_tar)?.into_owned();
        // Only plain relative names: an archive must not write outside the scratch directory.
        if name.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        }) {
            return Err(ExportError::Format {
                path: path.to_owned(),
                reason: format!("refusing archive entry {}", name.display()),
            });
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(scratch.path().join(&name)).map_err(io_at(&name))?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let target = scratch.path().join(&name);
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_at(parent))?;
                }
                let mut out = fs::File::create(&target).map_err(io_at(&target))?;
                io::copy(&mut entry, &mut out).map_err(io_at(&target))?;
            }
            _ => {}
        }
    }
    Ok(scratch)
}

/// A format error found in an archive's unpacked copy, told of the archive itself.
fn in_archive(archive: &Path, error: ExportError) -> ExportError {
    match error {
        ExportError::Format { reason, .. } => ExportError::Format {
            path: archive.to_owned(),
            reason,
        },
        other => other,
    }
}

/// Reads an OCI layout tar of one artifact ([`write_artifact_archive`]): its manifest, config
/// and layers are stored (each checked against its digest); returns the manifest's digest.
pub fn read_artifact_archive(store: &Store, path: &Path) -> Result<Digest, ExportError> {
    let scratch = unpack_archive(store, path)?;
    read_artifact_layout(store, scratch.path()).map_err(|e| in_archive(path, e))
}

fn read_artifact_layout(store: &Store, dir: &Path) -> Result<Digest, ExportError> {
    let (index_path, index) = read_layout_index(dir)?;
    let [descriptor] = &index.manifests[..] else {
        return Err(ExportError::Format {
            path: index_path,
            reason: format!(
                "names {} manifests, an artifact archive has one",
                index.manifests.len()
            ),
        });
    };
    store_blob_from(store, dir, &descriptor.digest)?;
    store_config_and_layers(store, dir, &store.read_manifest(&descriptor.digest)?)?;
    Ok(descriptor.digest.clone())
}

fn load_dir(store: &Store, dir: &Path) -> Result<Vec<LoadedImage>, ExportError> {
    if dir.join("index.json").is_file() {
        load_oci_layout(store, dir)
    } else if dir.join("manifest.json").is_file() {
        load_docker_archive(store, dir)
    } else {
        Err(ExportError::Format {
            path: dir.to_owned(),
            reason: "neither an OCI layout (index.json) nor a docker archive (manifest.json)"
                .to_owned(),
        })
    }
}

fn store_blob_from(store: &Store, dir: &Path, digest: &Digest) -> Result<(), ExportError> {
    if store.has_blob(digest) {
        return Ok(());
    }
    let path = dir
        .join("blobs")
        .join(digest.algorithm())
        .join(digest.hex());
    let file = fs::File::open(&path).map_err(io_at(&path))?;
    store.write_blob_expecting(io::BufReader::new(file), digest)?;
    Ok(())
}

fn load_oci_layout(store: &Store, dir: &Path) -> Result<Vec<LoadedImage>, ExportError> {
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(io_at(&index_path))?;
    let index = ImageIndex::from_slice(&bytes).map_err(|e| ExportError::Format {
        path: index_path.clone(),
        reason: e.to_string(),
    })?;
    let mut loaded = Vec::new();
    for descriptor in &index.manifests {
        store_blob_from(store, dir, &descriptor.digest)?;
        let mut manifests = vec![descriptor.digest.clone()];
        if let stagecraft_image::AnyManifest::Index(nested) =
            store.read_any_manifest(&descriptor.digest)?
        {
            manifests = nested.manifests.iter().map(|m| m.digest.clone()).collect();
            for digest in &manifests {
                store_blob_from(store, dir, digest)?;
            }
        }
        for digest in &manifests {
            store_config_and_layers(store, dir, &store.read_manifest(digest)?)?;
        }
        // A bare `ref.name` is only a tag (`latest`), not a name: the caller names such images.
        let names: Vec<String> = descriptor
            .annotations
            .get(IMAGE_NAME_ANNOTATION)
            .or_else(|| {
                descriptor
                    .annotations
                    .get(REF_NAME_ANNOTATION)
                    .filter(|n| n.contains(['/', ':']))
            })
            .cloned()
            .into_iter()
            .collect();
        for name in &names {
            store.set_tag(name, &descriptor.digest)?;
        }
        let image = image_from_manifest_digest(store, &descriptor.digest)?;
        loaded.push(LoadedImage { image, names });
    }
    Ok(loaded)
}

/// Copies the image an OCI layout directory holds into the store and returns it, as buildx
/// and BuildKit resolve an `oci-layout://PATH[:TAG][@DIGEST]` context: by `digest` (a
/// manifest or index among the layout's blobs), else the `index.json` entry named `tag` (by
/// `io.containerd.image.name`, then `org.opencontainers.image.ref.name`), else its only entry.
/// An index is resolved for `platform`, and only that platform's manifest, config and layers
/// are copied.
pub fn load_layout_image(
    store: &Store,
    dir: &Path,
    tag: Option<&str>,
    digest: Option<&Digest>,
    platform: &Platform,
) -> Result<Image, ExportError> {
    let name = format!("oci-layout://{}", dir.display());
    let digest = match digest {
        Some(digest) => digest.clone(),
        None => {
            let (index_path, index) = read_layout_index(dir)?;
            let tag = tag.unwrap_or("latest");
            let named = |annotation: &str| {
                index
                    .manifests
                    .iter()
                    .find(|m| m.annotations.get(annotation).map(String::as_str) == Some(tag))
            };
            let entry = named(IMAGE_NAME_ANNOTATION)
                .or_else(|| named(REF_NAME_ANNOTATION))
                .or(match &index.manifests[..] {
                    [only] => Some(only),
                    _ => None,
                })
                .ok_or_else(|| ExportError::Format {
                    path: index_path.clone(),
                    reason: format!(
                        "no image named {tag:?} among its {} entries\n  = help: name one with :TAG (its org.opencontainers.image.ref.name) or @DIGEST",
                        index.manifests.len()
                    ),
                })?;
            entry.digest.clone()
        }
    };
    store_blob_from(store, dir, &digest)?;
    let manifest = match store.read_any_manifest(&digest)? {
        stagecraft_image::AnyManifest::Image(_) => Some(digest.clone()),
        stagecraft_image::AnyManifest::Index(index) => {
            index.find(platform).map(|entry| entry.digest.clone())
        }
    };
    // Without the platform, `image_at` says which platforms the index has.
    if let Some(manifest) = manifest {
        store_blob_from(store, dir, &manifest)?;
        store_config_and_layers(store, dir, &store.read_manifest(&manifest)?)?;
    }
    Ok(store.image_at(&digest, &name, platform)?)
}

/// The `index.json` of the OCI layout `dir`, and its path.
fn read_layout_index(dir: &Path) -> Result<(PathBuf, ImageIndex), ExportError> {
    let index_path = dir.join("index.json");
    let bytes = fs::read(&index_path).map_err(|source| ExportError::Format {
        path: index_path.clone(),
        reason: format!("not an OCI layout: {source}"),
    })?;
    let index = ImageIndex::from_slice(&bytes).map_err(|e| ExportError::Format {
        path: index_path.clone(),
        reason: e.to_string(),
    })?;
    Ok((index_path, index))
}

/// Stores the config and layer blobs of `manifest` from the layout `dir`.
fn store_config_and_layers(
    store: &Store,
    dir: &Path,
    manifest: &ImageManifest,
) -> Result<(), ExportError> {
    store_blob_from(store, dir, &manifest.config.digest)?;
    for layer in &manifest.layers {
        store_blob_from(store, dir, &layer.digest)?;
    }
    Ok(())
}

/// Reads a stored manifest (or index, picking this platform, else the index's first one: a
/// multi-platform image built for other machines loads too) back as an [`Image`].
pub fn image_from_manifest_digest(store: &Store, digest: &Digest) -> Result<Image, ExportError> {
    let (index_digest, manifest_digest) = match store.read_any_manifest(digest)? {
        stagecraft_image::AnyManifest::Image(_) => (None, digest.clone()),
        stagecraft_image::AnyManifest::Index(index) => {
            let entry = index
                .find(&Platform::host())
                .or_else(|| index.platform_manifests().next().map(|(entry, _)| entry))
                .ok_or_else(|| ExportError::Format {
                    path: PathBuf::from(digest.to_string()),
                    reason: "the index lists no image of any platform".to_owned(),
                })?;
            (Some(digest.clone()), entry.digest.clone())
        }
    };
    let manifest = store.read_manifest(&manifest_digest)?;
    let config = store.read_config(&manifest.config.digest)?;
    Ok(Image {
        config_digest: manifest.config.digest.clone(),
        manifest,
        manifest_digest,
        config,
        index_digest,
    })
}

fn load_docker_archive(store: &Store, dir: &Path) -> Result<Vec<LoadedImage>, ExportError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "RepoTags", default)]
        repo_tags: Option<Vec<String>>,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    let manifest_path = dir.join("manifest.json");
    let bytes = fs::read(&manifest_path).map_err(io_at(&manifest_path))?;
    let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|e| ExportError::Format {
        path: manifest_path.clone(),
        reason: e.to_string(),
    })?;
    let mut loaded = Vec::new();
    for entry in entries {
        let inside = |name: &str| -> Result<PathBuf, ExportError> {
            let path = Path::new(name);
            if path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(ExportError::Format {
                    path: manifest_path.clone(),
                    reason: format!("refusing path {name}"),
                });
            }
            Ok(dir.join(path))
        };
        let config_path = inside(&entry.config)?;
        let config_bytes = fs::read(&config_path).map_err(io_at(&config_path))?;
        let config = ImageConfig::from_slice(&config_bytes).map_err(|e| ExportError::Format {
            path: config_path.clone(),
            reason: e.to_string(),
        })?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let path = inside(layer)?;
            let mut file = fs::File::open(&path).map_err(io_at(&path))?;
            let mut magic = [0u8; 4];
            let read = file.read(&mut magic).map_err(io_at(&path))?;
            let compression = Compression::sniff(&magic[..read]);
            let file = fs::File::open(&path).map_err(io_at(&path))?;
            let blob = store.write_blob(io::BufReader::new(file))?;
            let media = match compression {
                Compression::None => media_type::DOCKER_LAYER,
                _ => media_type::DOCKER_LAYER_GZIP,
            };
            layers.push(Descriptor::new(media, blob.digest, blob.size));
        }
        let image = store.write_image(&config, layers, ManifestFormat::Docker)?;
        let names: Vec<String> = entry.repo_tags.unwrap_or_default();
        for name in &names {
            store.set_tag(name, &image.manifest_digest)?;
        }
        loaded.push(LoadedImage { image, names });
    }
    Ok(loaded)
}

/// Imports a root filesystem (a directory or a tar, possibly compressed) as a one-layer image
/// for this platform, like `docker import`.
pub fn import(
    store: &Store,
    source: &Path,
    compression: Compression,
) -> Result<Image, ExportError> {
    let scratch = store.scratch_dir("import")?;
    let root = if source.is_dir() {
        source.to_owned()
    } else {
        let root = scratch.path().join("rootfs");
        fs::create_dir(&root).map_err(io_at(&root))?;
        let file = fs::File::open(source).map_err(io_at(source))?;
        apply_layer(io::BufReader::new(file), &root, &ApplyOptions::default())?;
        root
    };
    let (info, blob) = store_tree_layer(store, &root, compression)?;
    let mut config = ImageConfig::for_platform(&Platform::host());
    config.rootfs.diff_ids =
        vec![
            Digest::parse(&info.diff_id).map_err(|e| ExportError::Format {
                path: source.to_owned(),
                reason: e.to_string(),
            })?,
        ];
    config.config.env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    let layers = vec![Descriptor::new(info.media_type(), blob.digest, blob.size)];
    Ok(store.write_image(&config, layers, ManifestFormat::Oci)?)
}

/// Stores the whole tree under `root` (the root itself not an entry, mtimes kept) as one
/// layer blob.
fn store_tree_layer(
    store: &Store,
    root: &Path,
    compression: Compression,
) -> Result<(LayerInfo, BlobInfo), ExportError> {
    let (info, blob) = stagecraft_layer::write_layer(
        &DiffSource::Rootfs { root },
        &TarOptions::default(),
        compression,
        store.blob_writer()?,
    )?;
    Ok((info, blob.commit()?))
}
