//! `stagecraft cache`: the cache mounts (`RUN --mount=type=cache`) in the store. Listing them,
//! and moving them between machines, so that a CI runner starts warm (the format is described
//! in [`stagecraft_export::cache_mounts`]).

use super::runtime::{block_on, open_store, open_store_leased, registry, write_output_file};
use super::{CommandError, CommandResult, human_bytes};
use stagecraft_export::cache_mounts::{
    CacheMountManifest, read_cache_mount_archive, store_cache_mounts,
};
use stagecraft_image::Timestamp;
use stagecraft_store::CacheMount;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// `stagecraft cache …`.
#[derive(clap::Args)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(clap::Subcommand)]
enum CacheCommand {
    /// List the cache mounts in the store: id, size, file count, last use.
    Ls(LsArgs),
    /// Write cache mounts to a tar file (-o) or push them to a registry (--ref).
    Export(ExportArgs),
    /// Restore cache mounts from a tar file or a registry, replacing the contents of the store's
    /// mounts of the same ids.
    Import(ImportArgs),
    /// Remove build cache records and the content only they keep (`docker builder prune`);
    /// cache mounts stay.
    Prune(PruneArgs),
}

impl CacheArgs {
    /// Whether the command removes files of any owner (snapshots), which needs root.
    pub(crate) fn writes_as_root(&self) -> bool {
        matches!(self.command, CacheCommand::Prune(_))
    }
}

/// `stagecraft cache prune`, `stagecraft builder prune`.
#[derive(clap::Args)]
pub(crate) struct PruneArgs {
    /// Remove all build cache. Without it, records whose layers tagged images hold stay:
    /// removing them frees nothing.
    #[arg(short = 'a', long)]
    all: bool,
    /// `until=DURATION|TIME`: only cache last used before then (`24h`, `2024-05-01T00:00:00Z`).
    #[arg(long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
    /// Stop once the store is under this size (`10GB`, `500MB`, `1.5GiB`: 1024-based, as
    /// in docker).
    #[arg(long, value_parser = super::images::size_flag)]
    keep_storage: Option<u64>,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Accepted for docker scripts: stagecraft never asks for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
}

/// `stagecraft cache ls`.
#[derive(clap::Args)]
struct LsArgs {
    /// `text` or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

/// `stagecraft cache export`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["output", "reference"])))]
struct ExportArgs {
    /// A mount to export, by id (its `id=`, else its target, as `cache ls` shows it);
    /// repeatable. Default: every mount whose id the store knows.
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<String>,
    /// Write an OCI image layout tar holding the mounts.
    #[arg(short = 'o', long = "output", value_name = "FILE.tar")]
    output: Option<PathBuf>,
    /// Push the mounts to a registry as an OCI artifact under this reference.
    #[arg(long = "ref", value_name = "REGISTRY_REF")]
    reference: Option<String>,
    /// Compression of each mount's tar: gzip (compatible) or zstd (faster, smaller).
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd"])]
    compression: String,
    /// Registries to reach over plain HTTP (localhost and 127.0.0.0/8 always are).
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
}

/// `stagecraft cache import`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "reference"])))]
struct ImportArgs {
    /// A tar written by `stagecraft cache export -o`.
    #[arg(value_name = "FILE.tar")]
    file: Option<PathBuf>,
    /// Pull the mounts from a registry, as pushed by `stagecraft cache export --ref`.
    #[arg(long = "ref", value_name = "REGISTRY_REF")]
    reference: Option<String>,
    /// Registries to reach over plain HTTP (localhost and 127.0.0.0/8 always are).
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
}

/// Runs `stagecraft cache`.
pub(crate) fn run(args: &CacheArgs) -> CommandResult {
    match &args.command {
        CacheCommand::Ls(args) => ls(args),
        CacheCommand::Export(args) => export(args),
        CacheCommand::Import(args) => import(args),
        CacheCommand::Prune(args) => prune(args),
    }
}

/// Runs `stagecraft cache prune` (and `builder prune`).
pub(crate) fn prune(args: &PruneArgs) -> CommandResult {
    let mut older_than = None;
    for filter in &args.filters {
        match filter.split_once('=') {
            Some(("until", value)) => {
                let now = Timestamp::now().unwrap_or_default();
                let limit = stagecraft_view::units::parse_until(value, now)
                    .map_err(|e| CommandError(format!("error: --filter {filter}: {e}")))?;
                let secs = u64::try_from(limit.unix_secs()).unwrap_or(0);
                older_than = Some(UNIX_EPOCH + std::time::Duration::from_secs(secs));
            }
            _ => {
                return Err(CommandError(format!(
                    "error: unsupported filter {filter:?}: stagecraft's build cache prune takes until=DURATION|TIME"
                )));
            }
        }
    }
    let report = open_store()?.prune(&stagecraft_store::PruneOptions {
        all: true,
        records_older_than: older_than,
        keep_shared_records: !args.all,
        keep_storage: args.keep_storage,
        dry_run: args.dry_run,
        ..Default::default()
    })?;
    super::images::print_prune_report(&report, args.dry_run);
    Ok(())
}

fn ls(args: &LsArgs) -> CommandResult {
    let mounts = open_store()?.list_cache_mounts()?;
    if args.format == "json" {
        let json: Vec<serde_json::Value> = mounts
            .iter()
            .map(|mount| {
                serde_json::json!({
                    "id": mount.id,
                    "key": mount.key,
                    "path": mount.path,
                    "size": mount.size,
                    "files": mount.files,
                    "last_used": mount.last_used.and_then(timestamp).map(|t| t.to_string()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!(
        "{:<12} {:>10} {:>8}  {:<20}  ID",
        "KEY", "SIZE", "FILES", "LAST USED"
    );
    for mount in &mounts {
        let last_used = mount
            .last_used
            .and_then(timestamp)
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        println!(
            "{:<12} {:>10} {:>8}  {last_used:<20}  {}",
            &mount.key[..12],
            human_bytes(mount.size),
            mount.files,
            mount
                .id
                .as_deref()
                .unwrap_or("(not recorded: a build that uses it records it)")
        );
    }
    Ok(())
}

/// A modification time to the second, as Go formats it.
fn timestamp(time: SystemTime) -> Option<Timestamp> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    Timestamp::from_unix(i64::try_from(since.as_secs()).ok()?, 0)
}

fn export(args: &ExportArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    let ids = if args.ids.is_empty() {
        recorded_ids(store.list_cache_mounts()?)
    } else {
        args.ids.clone()
    };
    if ids.is_empty() {
        return Err(CommandError(
            "error: there are no cache mounts to export: builds make them with RUN --mount=type=cache"
                .to_owned(),
        ));
    }
    // clap allows gzip and zstd only: a mount's tar always travels compressed.
    let compression =
        super::compression_flag(&args.compression).map_err(|e| CommandError(e.to_string()))?;
    let artifact = store_cache_mounts(&store, &ids, compression)?;
    let mut note = Vec::new();
    let destination = match (&args.output, &args.reference) {
        (Some(path), _) => {
            write_output_file(&store, path, |out| {
                stagecraft_export::write_artifact_archive(&store, &artifact, out)
            })?;
            path.display().to_string()
        }
        (None, Some(text)) => {
            // Merged into what the ref holds, so that runners sharing it keep each other's
            // mounts (a plain push would be last-writer-wins).
            let reference = stagecraft_registry::parse_reference(text)?;
            let merged = stagecraft_build::push_cache_mounts(
                &store,
                &registry(&args.insecure),
                &reference,
                &artifact,
                &stagecraft_registry::merge::MergePolicy::default(),
                &stagecraft_export::cache_mounts::MountBounds::default(),
                &|_| {},
            )
            .map_err(|e| CommandError(format!("error: exporting cache mounts to {text}: {e}")))?;
            if !merged.mounts.kept.is_empty() {
                note.push(format!(
                    "kept {} other cache mounts the ref held: {}",
                    merged.mounts.kept.len(),
                    merged.mounts.kept.join(", ")
                ));
            }
            if !merged.mounts.evicted.is_empty() {
                note.push(format!(
                    "dropped the ref's least recently exported cache mounts (past {} mounts or 10 GiB): {}",
                    stagecraft_export::cache_mounts::MountBounds::default().max_mounts,
                    merged.mounts.evicted.join(", ")
                ));
            }
            format!("{} ({})", reference.whole(), merged.pushed.digest)
        }
        (None, None) => unreachable!("clap requires -o or --ref"),
    };
    println!(
        "exported {} cache mounts to {destination}: {}",
        ids.len(),
        ids.join(", ")
    );
    for line in note {
        println!("{line}");
    }
    Ok(())
}

/// The ids of `mounts`; those whose id is unknown are skipped with a warning, since an import
/// could not tell where they belong.
fn recorded_ids(mounts: Vec<CacheMount>) -> Vec<String> {
    let mut ids = Vec::new();
    for mount in mounts {
        match mount.id {
            Some(id) => ids.push(id),
            None => eprintln!(
                "warning: skipping cache mount {}: its id is not recorded yet (a build that uses it records it)",
                mount.key
            ),
        }
    }
    ids
}

fn import(args: &ImportArgs) -> CommandResult {
    let (store, _lease) = open_store_leased()?;
    let manifest = match (&args.file, &args.reference) {
        (Some(path), _) => read_cache_mount_archive(&store, path)?,
        (None, Some(text)) => {
            let reference = stagecraft_registry::parse_reference(text)?;
            let registry = registry(&args.insecure);
            block_on(async {
                let remote = registry.manifest(&reference).await?;
                let manifest = CacheMountManifest::parse(&remote.bytes, text)?;
                stagecraft_registry::fetch_blobs(&registry, &store, &reference, manifest.blobs())
                    .await?;
                Ok::<_, CommandError>(manifest)
            })??
        }
        (None, None) => unreachable!("clap requires a file or --ref"),
    };
    manifest.restore(&store)?;
    let ids: Vec<&str> = manifest.ids().collect();
    println!("imported {} cache mounts: {}", ids.len(), ids.join(", "));
    Ok(())
}
