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
    /// A root file system in a directory (e.g. a `--output type=local` result).
    path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "spdx-json")]
    format: Format,
}

/// Runs `stagecraft sbom`.
pub(crate) fn run(args: &SbomArgs) -> CommandResult {
    if !args.path.is_dir() {
        return Err(CommandError(format!(
            "error: {} is not a directory: `stagecraft sbom` reads a root file system in a directory for now\n  = help: write the image's file system with `stagecraft save IMAGE --format dir -o DIR` or build with `--output type=local,dest=DIR`",
            args.path.display()
        )));
    }
    let catalog = stagecraft_sbom::catalog(&stagecraft_sbom::DirFs::new(&args.path))?;
    match args.format {
        Format::Table => print!("{}", stagecraft_sbom::table(&catalog)),
        Format::SpdxJson => {
            let name = args.path.display().to_string();
            let info = stagecraft_sbom::spdx::DocumentInfo {
                name: &name,
                digest: None,
                created: created()?,
                tool_version: env!("CARGO_PKG_VERSION"),
                layers: &[],
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
