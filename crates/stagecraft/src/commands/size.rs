//! `stagecraft size`: what each layer of an image weighs, what bloats it, and (with `--stage`)
//! what each stage of the build that made it weighed.

use super::runtime::open_store;
use super::{CommandError, CommandResult};
use stagecraft_image::Platform;
use std::path::PathBuf;

/// How to print the report.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned tables.
    Text,
    /// The whole report as JSON.
    Json,
}

/// Arguments of `stagecraft size`.
#[derive(clap::Args)]
pub(crate) struct SizeArgs {
    /// The image: a name from `stagecraft images`, or `name@sha256:…`.
    image: String,
    /// Which platform's image of a multi-platform image (`os/arch[/variant]`); this machine's
    /// by default.
    #[arg(long)]
    platform: Option<Platform>,
    /// Also show every stage of the build that made the image and the final image next to its
    /// builder stages. Needs the stage sizes `stagecraft build` records for the images it builds;
    /// `stagecraft build --report` prints the same table at build time.
    #[arg(long)]
    stage: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// How many of each layer's biggest files, and of the biggest wasted entries, to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
    /// Also write a self-contained HTML page: a treemap of the final filesystem coloured by
    /// layer, and the tables.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// Runs `stagecraft size`.
pub(crate) fn run(args: &SizeArgs) -> CommandResult {
    let store = open_store()?;
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let image = store.image_for_platform(&args.image, &platform)?;
    let options = stagecraft_report::Options { top: args.top };
    let mut report = stagecraft_report::analyze(&store, &image, &args.image, &options)?;
    if args.stage {
        match stagecraft_report::load_stage_sizes(&store, &image.manifest_digest)? {
            Some(mut stages) => {
                stagecraft_report::weigh_stages(&store, &mut stages)?;
                report.attach_stages(&stages)
            }
            // The layer report stands on its own, so a missing record is worth a note, not a
            // failure.
            None => eprintln!(
                "note: no stage sizes are recorded for {}: images that were loaded or pulled, or built by an older stagecraft, have none\n  = help: rebuild it with `stagecraft build`, or see the stages at build time with `stagecraft build --report`",
                args.image
            ),
        }
    }
    if let Some(path) = &args.html {
        std::fs::write(path, stagecraft_report::render_html(&report))
            .map_err(|e| CommandError(format!("error: cannot write {}: {e}", path.display())))?;
    }
    match args.format {
        Format::Text => print!("{}", stagecraft_report::render_text(&report)),
        Format::Json => println!("{}", report.to_json()?),
    }
    Ok(())
}
