//! `stagecraft sbom`: the packages in a root file system, as a table or an SPDX document: an
//! image's attached SBOM when a build attested it, else a catalog of its layers (kept in the
//! store), or of a directory.

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
        let catalog = stagecraft_sbom::catalog(&stagecraft_sbom::DirFs::new(&args.path))?;
        let document = || {
            let info = stagecraft_sbom::spdx::DocumentInfo {
                name: &name,
                digest: None,
                created: created()?,
                tool_version: env!("CARGO_PKG_VERSION"),
                layers: &[],
            };
            Ok(stagecraft_sbom::spdx::Document::new(&catalog, &info).to_json())
        };
        return print_sbom(args.format, &catalog, document);
    }
    let reference = args.path.to_string_lossy().into_owned();
    let (store, _lease) = super::runtime::open_store_leased()?;
    let image = store.image(&reference).map_err(|e| {
        CommandError(format!(
            "error: {reference} is neither a directory nor an image in the store: {e}\n  = help: `stagecraft images` lists the store's images; pull one with `stagecraft pull`"
        ))
    })?;
    // An image a build attested (`--sbom`) carries its SBOM: printed as it was attached.
    if let Format::SpdxJson = args.format
        && let Some(predicate) = attached_sbom(&store, &reference, &image)?
    {
        let value: serde_json::Value = serde_json::from_str(&predicate)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    // Otherwise the image's layers are cataloged (once: the store keeps the catalog by image
    // ID), each package attributed to the layer that added it.
    let catalog = stagecraft_build::sbom::image_catalog(&store, &image, None)?;
    let document = || {
        let layers = stagecraft_build::sbom::layer_infos(&image, &[], "Dockerfile");
        let epoch = source_date_epoch()?;
        Ok(
            stagecraft_build::sbom::document(&catalog, &image, &reference, &layers, epoch)
                .to_json(),
        )
    };
    print_sbom(args.format, &catalog.catalog, document)
}

/// The SPDX document attached to `image` (one platform's image of the index `reference`
/// names) as an attestation, if any.
fn attached_sbom(
    store: &stagecraft_store::Store,
    reference: &str,
    image: &stagecraft_store::Image,
) -> Result<Option<String>, CommandError> {
    let Some(index) = store.multi_platform_image(reference)? else {
        return Ok(None);
    };
    for attestation in index.attestations_of(&image.manifest_digest) {
        for statement in store.read_statements(attestation)? {
            if statement.predicate_type == stagecraft_sbom::spdx::PREDICATE_TYPE {
                return Ok(Some(statement.predicate().to_owned()));
            }
        }
    }
    Ok(None)
}

/// Prints `catalog` in `format`; `document` makes its SPDX JSON.
fn print_sbom(
    format: Format,
    catalog: &stagecraft_sbom::Catalog,
    document: impl FnOnce() -> Result<Vec<u8>, CommandError>,
) -> CommandResult {
    match format {
        Format::Table => print!("{}", stagecraft_sbom::table(catalog)),
        Format::SpdxJson => print!("{}", String::from_utf8_lossy(&document()?)),
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, when set.
fn source_date_epoch() -> Result<Option<i64>, CommandError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => epoch.trim().parse::<i64>().map(Some).map_err(|_| {
            CommandError(format!(
                "error: SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds"
            ))
        }),
        Err(_) => Ok(None),
    }
}

/// Now, or `SOURCE_DATE_EPOCH` when it is set, so that the document is reproducible.
fn created() -> Result<stagecraft_image::Timestamp, CommandError> {
    let time = match source_date_epoch()? {
        Some(secs) => stagecraft_image::Timestamp::from_unix(secs, 0),
        None => stagecraft_image::Timestamp::now(),
    };
    time.ok_or_else(|| CommandError("error: the time is out of range".to_owned()))
}
