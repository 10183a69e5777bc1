//! `stagecraft parse`: print the syntax tree.

use super::{CommandResult, parse_dockerfile};
use std::path::PathBuf;

/// Arguments of `stagecraft parse`.
#[derive(clap::Args)]
pub(crate) struct ParseArgs {
    /// The Dockerfile to read (`-` for standard input).
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    file: PathBuf,
    /// Print JSON: directives and instructions with flags, arguments, heredocs and lines.
    #[arg(long)]
    json: bool,
}

/// Runs `stagecraft parse`.
pub(crate) fn run(args: &ParseArgs) -> CommandResult {
    let dockerfile = parse_dockerfile(&args.file)?;
    if args.json {
        let json = serde_json::to_string_pretty(&dockerfile.to_json())?;
        println!("{json}");
        return Ok(());
    }
    // BuildKit's S-expression dump, each line prefixed with the instruction's lines.
    for (instruction, line) in dockerfile
        .instructions
        .iter()
        .zip(dockerfile.dump().lines())
    {
        let lines = if instruction.start_line == instruction.end_line {
            instruction.start_line.to_string()
        } else {
            format!("{}-{}", instruction.start_line, instruction.end_line)
        };
        println!("{lines:>7}  {line}");
    }
    Ok(())
}
