//! Store management: images, tag, inspect, rmi, load, save, import, pull, push, prune, verify.

use super::runtime::{
    block_on, fill_output_dir, open_store, open_store_leased, registry, write_output_file,
};
use super::{CommandError, CommandResult, human_bytes};
use stagecraft_export::NamedImage;
use stagecraft_image::{AnyManifest, Platform};
use stagecraft_layer::Compression;
use std::path::PathBuf;

/// `stagecraft images`.
#[derive(clap::Args)]
pub(crate) struct ImagesArgs {
    /// `table` or `json`.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// `stagecraft tag SRC DST`.
#[derive(clap::Args)]
pub(crate) struct TagArgs {
    /// An image in the store.
    source: String,
    /// The new name.
    target: String,
}

/// `stagecraft inspect IMAGE`.
#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// An image in the store. A multi-platform image shows its index (its platforms'
    /// manifests) unless `--platform` picks one.
    image: String,
    /// Show the image for this platform (`os/arch[/variant]`) of a multi-platform image.
    #[arg(long)]
    platform: Option<Platform>,
}

/// `stagecraft rmi IMAGE…`.
#[derive(clap::Args)]
pub(crate) struct RmiArgs {
    /// Names to remove (blobs go with `stagecraft prune`).
    #[arg(required = true)]
    images: Vec<String>,
}

/// `stagecraft load -i FILE|DIR`.
#[derive(clap::Args)]
pub(crate) struct LoadArgs {
    /// An OCI layout (directory or tar) or a docker archive.
    #[arg(short = 'i', long = "input")]
    input: PathBuf,
    /// Name the loaded image(s) (needed when the archive carries only a tag, like
    /// `oci:DIR:latest` layouts).
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
}

/// `stagecraft save IMAGE… -o FILE`.
#[derive(clap::Args)]
pub(crate) struct SaveArgs {
    /// Images to save.
    #[arg(required = true)]
    images: Vec<String>,
    /// Where to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// `oci` (layout tar), `docker` (loads with `docker load`), `dir` (unpacked rootfs of the
    /// first image).
    #[arg(long, default_value = "oci", value_parser = ["oci", "docker", "dir"])]
    format: String,
    /// Layer compression in an OCI layout: gzip, zstd or uncompressed (a docker archive keeps
    /// layers as they are stored, as `docker save` does).
    #[arg(long, default_value = "gzip", value_parser = super::compression_flag)]
    compression: Compression,
}

/// `stagecraft import ROOTFS NAME:TAG`.
#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    /// A root filesystem: a directory or a (compressed) tar.
    source: PathBuf,
    /// The name to give the image.
    name: String,
}

/// `stagecraft pull REF`.
#[derive(clap::Args)]
pub(crate) struct TransferArgs {
    /// The image reference.
    reference: String,
    /// Registries to reach over plain HTTP (localhost and 127.0.0.0/8 always are).
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
}

/// `stagecraft push REF`.
#[derive(clap::Args)]
pub(crate) struct PushArgs {
    #[command(flatten)]
    transfer: TransferArgs,
    /// Compression of the layers the store holds uncompressed (those a build made): gzip, zstd
    /// or uncompressed. Each layer is compressed once and reused by later pushes.
    #[arg(long, default_value = "gzip", value_parser = super::compression_flag)]
    compression: Compression,
}

/// `stagecraft prune`.
#[derive(clap::Args)]
pub(crate) struct PruneArgs {
    /// Also remove build cache and everything no tag reaches.
    #[arg(long)]
    all: bool,
    /// Keep the build cache (remove only unreferenced blobs and snapshots).
    #[arg(long)]
    keep_cache: bool,
    /// Stop once the store is under this many bytes.
    #[arg(long)]
    keep_storage: Option<u64>,
}

/// Runs `stagecraft images`.
pub(crate) fn images(args: &ImagesArgs) -> CommandResult {
    let store = open_store()?;
    let mut rows = Vec::new();
    for (reference, digest) in store.list_tags()? {
        let name = reference.to_string();
        // Size and creation time are this machine's platform's, as docker lists them; a tag
        // whose content is damaged or partly missing is still listed.
        let image = store.image(&name).ok();
        let size = image.as_ref().map_or(0, |image| {
            image.manifest.layers.iter().map(|l| l.size).sum::<u64>() + image.manifest.config.size
        });
        let created = image
            .and_then(|image| image.config.created)
            .unwrap_or_default();
        let platforms: Vec<String> = store
            .platforms(&name)
            .unwrap_or_default()
            .iter()
            .map(Platform::to_string)
            .collect();
        rows.push((name, digest, size, platforms, created));
    }
    if args.format == "json" {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, digest, size, platforms, created)| serde_json::json!({"name": name, "digest": digest.as_str(), "size": size, "platforms": platforms, "created": created}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!(
        "{:<50} {:<20} {:>10}  {:<24} CREATED",
        "NAME", "DIGEST", "SIZE", "PLATFORMS"
    );
    for (name, digest, size, platforms, created) in rows {
        println!(
            "{name:<50} {:<20} {:>10}  {:<24} {created}",
            digest.short(),
            human_bytes(size),
            platforms.join(",")
        );
    }
    Ok(())
}

/// Runs `stagecraft tag`.
pub(crate) fn tag(args: &TagArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    let digest = store
        .resolve_tag(&args.source)?
        .ok_or_else(|| CommandError(format!("error: no image {} in the store", args.source)))?;
    let reference = store.set_tag(&args.target, &digest)?;
    println!("{reference}");
    Ok(())
}

/// Runs `stagecraft inspect`.
pub(crate) fn inspect(args: &InspectArgs) -> CommandResult {
    let store = open_store()?;
    if args.platform.is_none()
        && let Some(digest) = store.resolve_tag(&args.image)?
        && let AnyManifest::Index(index) = store.read_any_manifest(&digest)?
    {
        let attestations = stored_attestations(&store, &args.image);
        let manifests: Vec<serde_json::Value> = index
            .manifests
            .iter()
            .map(|entry| {
                let mut json = serde_json::json!({"digest": entry.digest.as_str(), "media_type": entry.media_type, "size": entry.size, "platform": entry.platform.as_ref().map(Platform::to_string)});
                // An attestation manifest says which image it is about and what it holds.
                if let Some(subject) = stagecraft_image::intoto::attestation_subject(entry) {
                    json["attestation_for"] = subject.as_str().into();
                    if let Some(attestation) =
                        attestations.iter().find(|a| a.descriptor.digest == entry.digest)
                    {
                        json["predicate_types"] = attestation.predicate_types().into();
                    }
                }
                json
            })
            .collect();
        let json = serde_json::json!({
            "index_digest": digest.as_str(),
            "media_type": index.media_type,
            "manifests": manifests,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let image = store.image_for_platform(&args.image, &platform)?;
    let layers: Vec<serde_json::Value> = image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(layer, diff_id)| serde_json::json!({"digest": layer.digest.as_str(), "diff_id": diff_id.as_str(), "size": layer.size, "media_type": layer.media_type}))
        .collect();
    let config: serde_json::Value = serde_json::from_slice(&image.config.to_json()?)?;
    let mut json = serde_json::json!({
        "manifest_digest": image.manifest_digest.as_str(),
        "config_digest": image.config_digest.as_str(),
        "media_type": image.manifest.media_type,
        "layers": layers,
        "config": config,
    });
    if let Some(index) = &image.index_digest {
        json["index_digest"] = index.as_str().into();
        let attestations: Vec<serde_json::Value> = stored_attestations(&store, &args.image)
            .iter()
            .filter(|a| a.subject == image.manifest_digest)
            .map(|a| serde_json::json!({"digest": a.descriptor.digest.as_str(), "predicate_types": a.predicate_types()}))
            .collect();
        if !attestations.is_empty() {
            json["attestations"] = attestations.into();
        }
    }
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

/// The attestation manifests of the index `reference` names that are in the store (none for
/// a single manifest, or an index with platforms missing).
fn stored_attestations(
    store: &stagecraft_store::Store,
    reference: &str,
) -> Vec<stagecraft_store::AttestationManifest> {
    store
        .multi_platform_image(reference)
        .ok()
        .flatten()
        .map(|index| index.attestations)
        .unwrap_or_default()
}

/// Runs `stagecraft rmi`.
pub(crate) fn rmi(args: &RmiArgs) -> CommandResult {
    let store = open_store()?;
    for name in &args.images {
        if !store.remove_tag(name)? {
            return Err(CommandError(format!("error: no image {name} in the store")));
        }
        println!("untagged {name}");
    }
    Ok(())
}

/// Runs `stagecraft load`.
pub(crate) fn load(args: &LoadArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    for loaded in stagecraft_export::load(&store, &args.input)? {
        // What the archive names: a multi-platform image's index, else the manifest.
        let digest = loaded
            .image
            .index_digest
            .as_ref()
            .unwrap_or(&loaded.image.manifest_digest);
        let mut names = loaded.names.clone();
        for tag in &args.tags {
            names.push(store.set_tag(tag, digest)?.to_string());
        }
        let names = if names.is_empty() {
            "(no name; use --tag)".to_owned()
        } else {
            names.join(", ")
        };
        println!("loaded {digest} {names}");
    }
    Ok(())
}

/// Runs `stagecraft save`.
pub(crate) fn save(args: &SaveArgs) -> CommandResult {
    // Leased: a prune must not take the blobs away while they are written out.
    let (store, _lease) = open_store_leased()?;
    let mut named = Vec::new();
    for name in &args.images {
        let image = store.image(name)?;
        let full = stagecraft_image::Reference::parse(name)
            .map(|r| r.with_default_tag().to_string())
            .unwrap_or_else(|_| name.clone());
        named.push(NamedImage {
            image,
            names: vec![full],
        });
    }
    if args.format == "dir" {
        fill_output_dir(&store, &args.output, |dir| {
            stagecraft_export::unpack_rootfs(&store, &named[0].image, dir)
        })?;
        return Ok(());
    }
    if args.format == "oci" {
        for named in &mut named {
            named.image = store.compressed_image(&named.image, args.compression)?;
        }
    }
    write_output_file(&store, &args.output, |out| {
        stagecraft_export::write_archive(&store, &named, args.format == "docker", out)
    })?;
    Ok(())
}

/// Runs `stagecraft import`.
pub(crate) fn import(args: &ImportArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    let image = stagecraft_export::import(&store, &args.source, Compression::None)?;
    let reference = store.set_tag(&args.name, &image.manifest_digest)?;
    println!("{reference} {}", image.manifest_digest);
    Ok(())
}

/// Runs `stagecraft pull`.
pub(crate) fn pull(args: &TransferArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    let registry = registry(&args.insecure);
    let reference = stagecraft_registry::parse_reference(&args.reference)?;
    let image = block_on(stagecraft_registry::pull(
        &registry,
        &store,
        &reference,
        &Platform::host(),
    ))??;
    println!(
        "{} {}",
        reference.whole(),
        image.index_digest.unwrap_or(image.manifest_digest)
    );
    Ok(())
}

/// Runs `stagecraft push`.
pub(crate) fn push(args: &PushArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    let registry = registry(&args.transfer.insecure);
    let name = &args.transfer.reference;
    let reference = stagecraft_registry::parse_reference(name)?;
    // A multi-platform image goes whole: every platform, then its index.
    let digest = match store.multi_platform_image(name)? {
        Some(image) => {
            let image = store.compressed_index(&image, args.compression)?;
            block_on(stagecraft_registry::push_index(
                &registry, &store, &image, &reference,
            ))??
        }
        None => {
            let image = store.compressed_image(&store.image(name)?, args.compression)?;
            block_on(stagecraft_registry::push(
                &registry, &store, &image, &reference,
            ))??
        }
    };
    println!("{} {digest}", reference.whole());
    Ok(())
}

/// Runs `stagecraft prune`.
pub(crate) fn prune(args: &PruneArgs) -> CommandResult {
    let store = open_store()?;
    let report = store.prune(&stagecraft_store::PruneOptions {
        all: args.all,
        keep_storage: args.keep_storage,
        keep_cache: args.keep_cache,
    })?;
    println!(
        "removed {} blobs, {} snapshots, {} cache records, {} context indexes; freed {}",
        report.removed_blobs.len(),
        report.removed_snapshots.len(),
        report.removed_cache_records.len(),
        report.removed_context_indexes,
        human_bytes(report.bytes_freed)
    );
    Ok(())
}

/// Runs `stagecraft verify`.
pub(crate) fn verify() -> CommandResult {
    let store = open_store()?;
    let report = store.verify(&stagecraft_store::VerifyOptions {
        remove_corrupt: true,
    })?;
    println!(
        "checked {} blobs and {} snapshots: {} corrupt (removed), {} dangling tags",
        report.blobs_checked,
        report.snapshots_checked,
        report.corrupt.len(),
        report.dangling_tags.len()
    );
    if report.is_clean() {
        Ok(())
    } else {
        Err(CommandError(
            "error: the store had corrupt entries (now removed)".into(),
        ))
    }
}
