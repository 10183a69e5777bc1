//! `stagecraft sbom`: the packages in a root file system, as a table or an SPDX document.

use super::{CommandError, CommandResult};
use std::path::PathBuf;

/// How to print the SBOM.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// SPDX 2.3 JSON.
    SpdxJson,
    /// One package a line: name, version, type, layer, where it was found.
    Table,
}

/// Arguments of `stagecraft sbom`.
#[derive(clap::Args)]
pub(crate) struct SbomArgs {
    /// An image in the store (name, ID or digest), or a root file system in a directory (e.g.
    /// a `--output type=local` result).
    path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "spdx-json")]
    format: Format,
}

/// Runs `stagecraft sbom`.
pub(crate) fn run(args: &SbomArgs) -> CommandResult {
    if args.path.is_dir() {
        let name = args.path.display().to_string();
        return print_sbom(args.format, &args.path, &name, None, &[]);
    }
    // An image in the store: its file system is unpacked into a scratch directory of the
    // store (removed afterwards) and cataloged like a directory.
    let reference = args.path.to_string_lossy().into_owned();
    let (store, _lease) = super::runtime::open_store_leased()?;
    let image = store.image(&reference).map_err(|e| {
        CommandError(format!(
            "error: {reference} is neither a directory nor an image in the store: {e}\n  = help: `stagecraft images` lists the store's images; pull one with `stagecraft pull`"
        ))
    })?;
    let scratch = store.scratch_dir("sbom")?;
    stagecraft_export::unpack_rootfs(&store, &image, scratch.path())?;
    // The unpacked tree no longer says which layer added a file: the packages carry no layer
    // here (a catalog over the layer stack will, when `build --sbom` lands).
    print_sbom(
        args.format,
        scratch.path(),
        &reference,
        Some(&image.manifest_digest),
        &[],
    )
}

/// Catalogs the file system at `root` and prints it in `format`.
fn print_sbom(
    format: Format,
    root: &std::path::Path,
    name: &str,
    digest: Option<&stagecraft_image::Digest>,
    layers: &[stagecraft_sbom::spdx::LayerInfo],
) -> CommandResult {
    let catalog = stagecraft_sbom::catalog(&stagecraft_sbom::DirFs::new(root))?;
    match format {
        Format::Table => print!("{}", stagecraft_sbom::table(&catalog)),
        Format::SpdxJson => {
            let info = stagecraft_sbom::spdx::DocumentInfo {
                name,
                digest,
                created: created()?,
                tool_version: env!("CARGO_PKG_VERSION"),
                layers,
            };
            let document = stagecraft_sbom::spdx::Document::new(&catalog, &info);
            print!("{}", String::from_utf8_lossy(&document.to_json()));
        }
    }
    Ok(())
}

/// Now, or `SOURCE_DATE_EPOCH` when it is set, so that the document is reproducible.
fn created() -> Result<stagecraft_image::Timestamp, CommandError> {
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => epoch
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|secs| stagecraft_image::Timestamp::from_unix(secs, 0))
            .ok_or_else(|| {
                CommandError(format!(
                    "error: SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds"
                ))
            })?,
        Err(_) => stagecraft_image::Timestamp::now()
            .ok_or_else(|| CommandError("error: the clock is before 1970".to_owned()))?,
    };
    Ok(time)
}
