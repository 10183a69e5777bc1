//! Store management: images, tag, inspect, rmi, load, save, import, pull, push, prune, verify.

use super::runtime::{
    block_on, fill_output_dir, open_store, open_store_leased, registry, write_output_file,
};
use super::{CommandError, CommandResult, human_bytes};
use stagecraft_export::NamedImage;
use stagecraft_image::Platform;
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
    /// An image in the store.
    image: String,
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
        let size = store
            .image(&reference.to_string())
            .map(|image| {
                image.manifest.layers.iter().map(|l| l.size).sum::<u64>()
                    + image.manifest.config.size
            })
            .unwrap_or(0);
        let created = store
            .image(&reference.to_string())
            .ok()
            .and_then(|i| i.config.created.clone())
            .unwrap_or_default();
        rows.push((reference.to_string(), digest, size, created));
    }
    if args.format == "json" {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, digest, size, created)| serde_json::json!({"name": name, "digest": digest.as_str(), "size": size, "created": created}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("{:<50} {:<20} {:>10}  CREATED", "NAME", "DIGEST", "SIZE");
    for (name, digest, size, created) in rows {
        println!(
            "{name:<50} {:<20} {:>10}  {created}",
            digest.short(),
            human_bytes(size)
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
    let image = store.image(&args.image)?;
    let layers: Vec<serde_json::Value> = image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(layer, diff_id)| serde_json::json!({"digest": layer.digest.as_str(), "diff_id": diff_id.as_str(), "size": layer.size, "media_type": layer.media_type}))
        .collect();
    let config: serde_json::Value = serde_json::from_slice(&image.config.to_json()?)?;
    let json = serde_json::json!({
        "manifest_digest": image.manifest_digest.as_str(),
        "config_digest": image.config_digest.as_str(),
        "media_type": image.manifest.media_type,
        "layers": layers,
        "config": config,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
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
        let mut names = loaded.names.clone();
        for tag in &args.tags {
            names.push(
                store
                    // An index is tagged whole: every platform stays reachable by the name.
                    .set_tag(
                        tag,
                        loaded
                            .image
                            .index_digest
                            .as_ref()
                            .unwrap_or(&loaded.image.manifest_digest),
                    )?
                    .to_string(),
            );
        }
        let names = if names.is_empty() {
            "(no name; use --tag)".to_owned()
        } else {
            names.join(", ")
        };
        println!("loaded {} {names}", loaded.image.manifest_digest);
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
    let image =
        store.compressed_image(&store.image(&args.transfer.reference)?, args.compression)?;
    let reference = stagecraft_registry::parse_reference(&args.transfer.reference)?;
    let digest = block_on(stagecraft_registry::push(
        &registry, &store, &image, &reference,
    ))??;
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
