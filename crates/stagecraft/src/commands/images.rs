//! Store management as docker's image commands: images, tag, inspect, history, rmi, load,
//! save, import, pull, push, prune, verify.

use super::runtime::{
    block_on, fill_output_dir, open_store, open_store_leased, registry, write_archive_to,
};
use super::{CommandError, CommandResult, human_bytes};
use stagecraft_build::Destination;
use stagecraft_export::NamedImage;
use stagecraft_image::{AnyManifest, Platform, Reference, Timestamp};
use stagecraft_layer::Compression;
use stagecraft_store::{Image, Store};
use stagecraft_view::images::{
    HISTORY_TABLE, ImageEntry, ImageFilters, InspectedImage, ListFormat, history_rows, image_row,
    images_table, inspect_object, short_id,
};
use stagecraft_view::template::Template;
use std::io::IsTerminal;
use std::path::PathBuf;

/// `stagecraft images`.
#[derive(clap::Args)]
pub(crate) struct ImagesArgs {
    /// List only images whose name matches (`REPOSITORY[:TAG]`, wildcards as in
    /// `--filter reference=`).
    reference: Option<String>,
    /// Show all images. The store holds no intermediate images to hide: the same list.
    #[arg(short = 'a', long)]
    all: bool,
    /// Print only image IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Show the digests registries know the images by (`<none>` for a build's own manifest,
    /// whose layers are uncompressed).
    #[arg(long)]
    digests: bool,
    /// Do not truncate image IDs.
    #[arg(long)]
    no_trunc: bool,
    /// `reference=PATTERN`, `dangling=true|false`, `before=IMAGE`, `since=IMAGE`,
    /// `label=KEY[=VALUE]`; repeatable.
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// `table` (default), `table TEMPLATE`, `json` (one object per line, docker's fields) or
    /// a Go template (`{{.Repository}}:{{.Tag}}`, fields ID, Repository, Tag, Digest,
    /// CreatedSince, CreatedAt, Size, Platforms).
    #[arg(long)]
    format: Option<String>,
}

/// `stagecraft tag SRC DST`.
#[derive(clap::Args)]
pub(crate) struct TagArgs {
    /// An image in the store, by name or image ID.
    source: String,
    /// The new name.
    target: String,
}

/// `stagecraft inspect IMAGE…`.
#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// Images in the store, by name or image ID (a unique prefix is enough). A multi-platform
    /// image shows its index (its platforms' manifests) unless `--platform` picks one.
    #[arg(required = true)]
    images: Vec<String>,
    /// Show the image for this platform (`os/arch[/variant]`) of a multi-platform image.
    #[arg(long)]
    platform: Option<Platform>,
    /// Print docker's inspect object instead of stagecraft's: `json`, or a Go template
    /// (`{{.Id}}`, `{{.Config.Env}}`, `{{json .Config}}`), one line per image.
    #[arg(short = 'f', long)]
    format: Option<String>,
}

/// `stagecraft rmi IMAGE…`.
#[derive(clap::Args)]
pub(crate) struct RmiArgs {
    /// Names or image IDs to remove (blobs go with `stagecraft prune`).
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove every name of an image given by ID, even when it has several.
    #[arg(short = 'f', long)]
    force: bool,
}

/// `stagecraft load -i FILE|DIR`.
#[derive(clap::Args)]
pub(crate) struct LoadArgs {
    /// An OCI layout (directory or tar) or a docker archive (default: standard input).
    #[arg(short = 'i', long = "input")]
    input: Option<PathBuf>,
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
    /// Where to write (default: standard output, unless it is a terminal).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
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
    /// Stop once the store is under this size (`10GB`, `500MB`, `1.5GiB`: 1024-based, as
    /// in docker; a bare number is bytes).
    #[arg(long, value_parser = size_flag)]
    keep_storage: Option<u64>,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `stagecraft history IMAGE`.
#[derive(clap::Args)]
pub(crate) struct HistoryArgs {
    /// An image in the store, by name or image ID.
    image: String,
    /// Do not truncate IDs and commands.
    #[arg(long)]
    no_trunc: bool,
    /// Print only the IDs (`<missing>` for the steps below the top, as docker prints them).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Sizes and dates for people (`--human=false`: bytes and RFC 3339 times).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// `table` (default), `table TEMPLATE`, `json` or a Go template (fields ID,
    /// CreatedSince, CreatedAt, CreatedBy, Size, Comment).
    #[arg(long)]
    format: Option<String>,
    /// The platform's image of a multi-platform image (default: this machine's).
    #[arg(long)]
    platform: Option<Platform>,
}

/// A size flag (`--keep-storage`): docker's units.
pub(crate) fn size_flag(text: &str) -> Result<u64, String> {
    stagecraft_view::units::parse_size(text)
}

/// The image entries of the store's tags, newest first, as the listings show them. A tag whose
/// content is damaged or partly missing is still listed.
pub(crate) fn image_entries(store: &Store) -> Result<Vec<ImageEntry>, CommandError> {
    let mut entries = Vec::new();
    for (reference, target) in store.list_tags()? {
        let name = reference.to_string();
        // Size and creation time are this machine's platform's, as docker lists them.
        let image = store.image_at(&target, &name, &Platform::host()).ok();
        entries.push(ImageEntry {
            id: store.image_id(&target).unwrap_or_else(|_| target.clone()),
            size: image.as_ref().map_or(0, image_size),
            registry_digest: image
                .as_ref()
                .filter(|image| registries_know(image))
                .map(|_| target.clone()),
            config: image.map(|image| image.config),
            platforms: store
                .platforms(&name)
                .unwrap_or_default()
                .iter()
                .map(Platform::to_string)
                .collect(),
            reference,
            target,
        });
    }
    entries.sort_by(|a, b| {
        b.created()
            .cmp(&a.created())
            .then(a.reference.cmp(&b.reference))
    });
    Ok(entries)
}

/// An image's size as the listings show it: its config and layers as stored.
pub(crate) fn image_size(image: &Image) -> u64 {
    image.manifest.layers.iter().map(|l| l.size).sum::<u64>() + image.manifest.config.size
}

/// Whether a registry can know the image by its stored manifest: a build's own manifest
/// names uncompressed layers, which only a push or an export compresses (and so renames).
fn registries_know(image: &Image) -> bool {
    image.manifest.layers.iter().all(|layer| {
        layer.media_type != stagecraft_layer::MEDIA_TYPE_TAR
            && layer.media_type != stagecraft_layer::DOCKER_MEDIA_TYPE_TAR
    })
}

/// The creation time of the image `text` names, for `before=` and `since=`.
fn created_of(
    store: &Store,
    entries: &[ImageEntry],
    text: &str,
) -> Result<Option<Timestamp>, CommandError> {
    let target = store.lookup_image(text)?;
    Ok(entries
        .iter()
        .find(|e| e.target == target)
        .and_then(ImageEntry::created))
}

/// The time now, for "2 weeks ago".
fn now() -> Timestamp {
    Timestamp::now().unwrap_or_default()
}

/// Runs `stagecraft images`.
pub(crate) fn images(args: &ImagesArgs) -> CommandResult {
    let store = open_store()?;
    let mut filters =
        ImageFilters::parse(&args.filters).map_err(|e| CommandError(format!("error: {e}")))?;
    filters.references.extend(args.reference.clone());
    let format = ListFormat::parse(args.format.as_deref(), images_table(args.digests))?;
    let entries = image_entries(&store)?;
    let before = match &filters.before {
        Some(text) => created_of(&store, &entries, text)?,
        None => None,
    };
    let since = match &filters.since {
        Some(text) => created_of(&store, &entries, text)?,
        None => None,
    };
    let kept = entries
        .iter()
        .filter(|entry| filters.keep(entry, before, since));
    if args.quiet {
        for entry in kept {
            println!("{}", short_id(&entry.id, !args.no_trunc));
        }
        return Ok(());
    }
    let now = now();
    let rows: Vec<serde_json::Value> = kept
        .map(|entry| image_row(entry, !args.no_trunc, now))
        .collect();
    print!("{}", format.render(&rows)?);
    Ok(())
}

/// Runs `stagecraft tag`.
pub(crate) fn tag(args: &TagArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    let digest = store.lookup_image(&args.source)?;
    let reference = store.set_tag(&args.target, &digest)?;
    println!("{reference}");
    Ok(())
}

/// The tags that point at `target`.
fn tags_of(
    store: &Store,
    target: &stagecraft_image::Digest,
) -> Result<Vec<Reference>, CommandError> {
    Ok(store
        .list_tags()?
        .into_iter()
        .filter(|(_, digest)| digest == target)
        .map(|(reference, _)| reference)
        .collect())
}

/// Runs `stagecraft inspect`.
pub(crate) fn inspect(args: &InspectArgs) -> CommandResult {
    let store = open_store()?;
    let template = match args.format.as_deref() {
        None | Some("json") => None,
        Some(text) => Some(Template::parse(text)?),
    };
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    for text in &args.images {
        let target = store.lookup_image(text)?;
        if args.format.is_some() {
            let image = store.image_at(&target, text, &platform)?;
            let id = store.image_id(&target)?;
            let tags = tags_of(&store, &target)?;
            let mut repo_digests: Vec<String> = Vec::new();
            if registries_know(&image) {
                for tag in &tags {
                    let name = Reference::parse(&tag.name())
                        .map(|r| r.familiar())
                        .unwrap_or_else(|_| tag.name());
                    let pinned = format!("{name}@{target}");
                    if !repo_digests.contains(&pinned) {
                        repo_digests.push(pinned);
                    }
                }
            }
            let object = inspect_object(&InspectedImage {
                id: &id,
                repo_tags: tags,
                repo_digests,
                config: &image.config,
                size: image_size(&image),
            });
            match &template {
                Some(template) => println!("{}", template.render(&object)?),
                None => println!("{}", serde_json::to_string(&object)?),
            }
            continue;
        }
        if args.platform.is_none()
            && let AnyManifest::Index(index) = store.read_any_manifest(&target)?
        {
            let attestations = stored_attestations(&store, text);
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
                "index_digest": target.as_str(),
                "media_type": index.media_type,
                "manifests": manifests,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
            continue;
        }
        let image = store.image_at(&target, text, &platform)?;
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
            let attestations: Vec<serde_json::Value> = stored_attestations(&store, text)
                .iter()
                .filter(|a| a.subject == image.manifest_digest)
                .map(|a| serde_json::json!({"digest": a.descriptor.digest.as_str(), "predicate_types": a.predicate_types()}))
                .collect();
            if !attestations.is_empty() {
                json["attestations"] = attestations.into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
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

/// Runs `stagecraft history`.
pub(crate) fn history(args: &HistoryArgs) -> CommandResult {
    let store = open_store()?;
    let target = store.lookup_image(&args.image)?;
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let image = store.image_at(&target, &args.image, &platform)?;
    let id = store.image_id(&target)?;
    let sizes: Vec<u64> = image.manifest.layers.iter().map(|l| l.size).collect();
    let rows = history_rows(
        &id,
        &image.config,
        &sizes,
        !args.no_trunc,
        args.human,
        now(),
    );
    if args.quiet {
        for row in &rows {
            println!("{}", row["ID"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    let format =
        ListFormat::parse(args.format.as_deref(), HISTORY_TABLE)?.with_header("ID", "IMAGE");
    print!("{}", format.render(&rows)?);
    Ok(())
}

/// Runs `stagecraft rmi`: a name loses that tag; an image ID loses every tag of the image
/// (with `--force` when it has several, as docker asks).
pub(crate) fn rmi(args: &RmiArgs) -> CommandResult {
    let store = open_store()?;
    for text in &args.images {
        let tagged = Reference::parse(text)
            .ok()
            .filter(|r| r.digest().is_none())
            .map(Reference::with_default_tag)
            .filter(|r| store.resolve_tag(&r.to_string()).ok().flatten().is_some());
        if let Some(reference) = tagged {
            store.remove_tag(&reference.to_string())?;
            println!("Untagged: {}", reference.familiar());
            continue;
        }
        let target = store.lookup_image(text)?;
        let tags = tags_of(&store, &target)?;
        if tags.len() > 1 && !args.force {
            return Err(CommandError(format!(
                "error: image {text} has {} names ({}): give one, or pass -f to remove them all",
                tags.len(),
                tags.iter()
                    .map(Reference::familiar)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for tag in tags {
            store.remove_tag(&tag.to_string())?;
            println!("Untagged: {}", tag.familiar());
        }
    }
    Ok(())
}

/// Runs `stagecraft load`.
pub(crate) fn load(args: &LoadArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    // Standard input, as `docker load < image.tar`: kept in the store's ingest/ while it loads.
    let from_stdin = match &args.input {
        Some(_) => None,
        None => {
            if std::io::stdin().is_terminal() {
                return Err(CommandError(
                    "error: no -i FILE and standard input is a terminal\n  = help: pass -i image.tar, or pipe the archive: stagecraft load < image.tar".to_owned(),
                ));
            }
            let scratch = store.scratch_file("load-stdin")?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(scratch.path())?;
            std::io::copy(&mut std::io::stdin().lock(), &mut file)?;
            Some(scratch)
        }
    };
    let input = match (&args.input, &from_stdin) {
        (Some(path), _) => path.as_path(),
        (None, Some(scratch)) => scratch.path(),
        (None, None) => unreachable!("standard input was read above"),
    };
    for loaded in stagecraft_export::load(&store, input)? {
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
    let dest = match &args.output {
        Some(path) => Destination::File(path.clone()),
        None if args.format == "dir" => {
            return Err(CommandError(
                "error: --format dir writes a directory: name it with -o DIR".to_owned(),
            ));
        }
        None if std::io::stdout().is_terminal() => {
            return Err(CommandError(
                "error: refusing to write an image archive to a terminal\n  = help: pass -o FILE, or redirect: stagecraft save IMAGE > image.tar".to_owned(),
            ));
        }
        None => Destination::Stdout,
    };
    let mut named = Vec::new();
    for text in &args.images {
        let target = store.lookup_image(text)?;
        let image = store.image_at(&target, text, &Platform::host())?;
        // A name is kept in the archive; an image ID names none, as with docker.
        let names = match Reference::parse(text) {
            Ok(reference) if reference.digest().is_none() => {
                vec![reference.with_default_tag().to_string()]
            }
            _ => Vec::new(),
        };
        named.push(NamedImage {
            image,
            names,
            annotations: Default::default(),
        });
    }
    if let Destination::File(path) = &dest
        && args.format == "dir"
    {
        fill_output_dir(&store, path, |dir| {
            stagecraft_export::unpack_rootfs(&store, &named[0].image, dir)
        })?;
        return Ok(());
    }
    if args.format == "oci" {
        for named in &mut named {
            named.image = store.compressed_image(&named.image, args.compression)?;
        }
    }
    write_archive_to(&store, &dest, |out| {
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
        dry_run: args.dry_run,
        ..Default::default()
    })?;
    print_prune_report(&report, args.dry_run);
    Ok(())
}

/// What a prune removed, or with `dry_run` would remove.
pub(crate) fn print_prune_report(report: &stagecraft_store::PruneReport, dry_run: bool) {
    println!(
        "{} {} blobs, {} snapshots, {} cache records, {} context indexes; {} {}",
        if dry_run { "would remove" } else { "removed" },
        report.removed_blobs.len(),
        report.removed_snapshots.len(),
        report.removed_cache_records.len(),
        report.removed_context_indexes,
        if dry_run { "would free" } else { "freed" },
        human_bytes(report.bytes_freed)
    );
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
