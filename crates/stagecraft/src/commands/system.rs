//! `version` and `system df`: what docker scripts ask the engine about itself.

use super::CommandResult;
use super::images::image_entries;
use super::runtime::open_store;
use stagecraft_image::Platform;
use stagecraft_store::PruneOptions;
use stagecraft_view::images::{DISK_USAGE_TABLE, DiskUsageCounts, ListFormat, disk_usage_rows};
use stagecraft_view::template::Template;

/// `stagecraft version`.
#[derive(clap::Args)]
pub(crate) struct VersionArgs {
    /// `json`, or a Go template over docker's fields (`{{.Client.Version}}`).
    #[arg(short = 'f', long)]
    format: Option<String>,
}

/// `stagecraft system …`.
#[derive(clap::Args)]
pub(crate) struct SystemArgs {
    #[command(subcommand)]
    command: SystemCommand,
}

#[derive(clap::Subcommand)]
enum SystemCommand {
    /// What the store's images, build cache, cache mounts and context indexes weigh, and what
    /// `prune` would free of them.
    Df(DfArgs),
}

/// `stagecraft system df`.
#[derive(clap::Args)]
struct DfArgs {
    /// `table` (default), `table TEMPLATE`, `json` or a Go template (fields Type,
    /// TotalCount, Active, Size, Reclaimable).
    #[arg(long)]
    format: Option<String>,
}

/// Runs `stagecraft version`. There is no daemon: the client is all there is.
pub(crate) fn version(args: &VersionArgs) -> CommandResult {
    let platform = Platform::host();
    let version = serde_json::json!({
        "Client": {
            "Platform": {"Name": "stagecraft"},
            "Version": env!("CARGO_PKG_VERSION"),
            "Os": platform.os,
            "Arch": platform.architecture,
        },
    });
    match args.format.as_deref() {
        Some("json") => println!("{}", serde_json::to_string(&version)?),
        Some(template) => println!("{}", Template::parse(template)?.render(&version)?),
        None => {
            // Named, not opened: asking the version must not create a store.
            let root = match std::env::var_os("STAGECRAFT_ROOT") {
                Some(root) => std::path::PathBuf::from(root),
                None => stagecraft_store::default_root()?,
            };
            println!(
                "Client: stagecraft\n Version:    {}\n OS/Arch:    {}/{}\n Daemon:     none (the store is {})",
                env!("CARGO_PKG_VERSION"),
                platform.os,
                platform.architecture,
                root.display()
            );
        }
    }
    Ok(())
}

/// Runs `stagecraft system`.
pub(crate) fn run(args: &SystemArgs) -> CommandResult {
    match &args.command {
        SystemCommand::Df(args) => df(args),
    }
}

fn df(args: &DfArgs) -> CommandResult {
    let format = ListFormat::parse(args.format.as_deref(), DISK_USAGE_TABLE)?;
    let store = open_store()?;
    let usage = store.disk_usage()?;
    // What the prunes would free: `prune` what nothing references, `prune --all` also the
    // build cache and what only it keeps, and the context indexes.
    let dry = |all| {
        store.prune(&PruneOptions {
            all,
            dry_run: true,
            ..PruneOptions::default()
        })
    };
    let unreferenced = dry(false)?;
    let everything = dry(true)?;
    let mut targets: Vec<_> = image_entries(&store)?
        .into_iter()
        .map(|e| e.target)
        .collect();
    targets.sort();
    targets.dedup();
    let mounts = store.list_cache_mounts()?;
    let cache_size = everything
        .bytes_freed
        .saturating_sub(everything.context_index_bytes)
        .saturating_sub(unreferenced.bytes_freed);
    let counts = DiskUsageCounts {
        images: targets.len(),
        images_size: (usage.blobs + usage.snapshots + usage.cache_records)
            .saturating_sub(cache_size),
        unreferenced_size: unreferenced.bytes_freed,
        cache_records: store.list_cache_records()?.len(),
        cache_size,
        cache_mounts: mounts.len(),
        cache_mounts_size: mounts.iter().map(|m| m.size).sum(),
        context_indexes: everything.removed_context_indexes,
        context_indexes_size: everything.context_index_bytes,
    };
    print!("{}", format.render(&disk_usage_rows(&counts))?);
    Ok(())
}
