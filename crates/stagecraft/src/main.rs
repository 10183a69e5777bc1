//! `stagecraft`: the command-line interface. Every subcommand is a thin layer over a library
//! crate; this crate only parses arguments, reads files and prints.

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// A daemonless OCI image builder for multi-stage Dockerfiles.
#[derive(Parser)]
#[command(name = "stagecraft", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse a Dockerfile and print its syntax tree, as BuildKit's parser sees it.
    Parse(commands::parse::ParseArgs),
    /// List the files that enter the build context after .dockerignore.
    Context(commands::context::ContextArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => commands::parse::run(&args),
        Command::Context(args) => commands::context::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
