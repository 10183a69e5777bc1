//! `stagecraft`: the command-line interface. Every subcommand is a thin layer over a library
//! crate; this crate only parses arguments, reads files and prints.
// The command line is where printing belongs.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![forbid(unsafe_code)]

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
    /// Build a Dockerfile into an image (docker buildx flags).
    Build(Box<commands::build::BuildArgs>),
    /// Check a Dockerfile: BuildKit's build checks and multi-stage best practices.
    Lint(commands::lint::LintArgs),
    /// Parse a Dockerfile and print its syntax tree, as BuildKit's parser sees it.
    Parse(commands::parse::ParseArgs),
    /// List the files that enter the build context after .dockerignore.
    Context(commands::context::ContextArgs),
    /// List the images in the store.
    Images(commands::images::ImagesArgs),
    /// Give an image another name.
    Tag(commands::images::TagArgs),
    /// Show images' config and layers as JSON (`--format`: docker's inspect object).
    Inspect(commands::images::InspectArgs),
    /// Show the steps that made an image, newest first, as `docker history`.
    History(commands::images::HistoryArgs),
    /// Remove image names (their blobs go with `prune`).
    Rmi(commands::images::RmiArgs),
    /// Load an OCI layout (directory or tar) or a docker archive.
    Load(commands::images::LoadArgs),
    /// Save images as an OCI layout tar, a docker archive or an unpacked root filesystem.
    Save(commands::images::SaveArgs),
    /// Import a root filesystem (directory or tar) as an image.
    Import(commands::images::ImportArgs),
    /// Pull an image from a registry.
    Pull(commands::images::TransferArgs),
    /// Push an image to a registry.
    Push(commands::images::PushArgs),
    /// Remove unreferenced blobs, snapshots and build cache.
    Prune(commands::images::PruneArgs),
    /// Re-hash every blob and snapshot; remove corrupt ones.
    Verify,
    /// List the cache mounts (RUN --mount=type=cache) in the store; export them to a tar file or
    /// a registry, and import them, so that a CI runner starts warm.
    Cache(commands::cache::CacheArgs),
    /// Remove build cache (`docker builder prune`; the same as `stagecraft cache prune`).
    Builder(BuilderArgs),
    /// Keep a registry's credentials in docker's config (checked with the registry first).
    Login(commands::login::LoginArgs),
    /// Forget a registry's credentials.
    Logout(commands::login::LogoutArgs),
    /// What the store weighs (`system df`).
    System(commands::system::SystemArgs),
    /// Print the version.
    Version(commands::system::VersionArgs),
    /// Report what each layer (and stage) of an image weighs and what bloats it.
    Size(commands::size::SizeArgs),
    /// List the packages in a root file system (a `type=local` output) as SPDX JSON or a table.
    Sbom(commands::sbom::SbomArgs),
}

/// `stagecraft builder …`, as `docker builder`.
#[derive(clap::Args)]
struct BuilderArgs {
    #[command(subcommand)]
    command: BuilderCommand,
}

#[derive(Subcommand)]
enum BuilderCommand {
    /// Remove build cache records and the content only they keep; cache mounts stay.
    Prune(commands::cache::PruneArgs),
}

impl Command {
    /// Whether the command creates, reads or removes files of any owner (snapshots of layers,
    /// `RUN` steps, a root filesystem's files), which only root can, so a rootless one runs in
    /// its own user namespace. `save` does not: an unpacked root filesystem it writes belongs to
    /// the user, who could not remove files of subordinate owners.
    fn writes_as_root(&self) -> bool {
        match self {
            Command::Cache(args) => args.writes_as_root(),
            other => matches!(
                other,
                Command::Build(_)
                    | Command::Import(_)
                    | Command::Prune(_)
                    | Command::Builder(_)
                    | Command::Verify
            ),
        }
    }
}

fn main() -> ExitCode {
    // RUN steps re-execute this binary as the namespace helper; it must take over before any
    // thread starts (a multi-threaded process cannot enter new namespaces safely).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == stagecraft_exec::HELPER_ARG)
    {
        stagecraft_exec::helper_main(&args[2..]);
    }
    let cli = Cli::parse();
    // Still single-threaded: a user who is not root builds as root of a user namespace of its
    // own (see stagecraft_exec::userns). Commands that only read the store need none.
    if cli.command.writes_as_root()
        && let Err(error) = stagecraft_exec::userns::enter_rootless()
    {
        eprintln!("error: cannot start a rootless build: {error}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Build(args) => commands::build::run(&args),
        Command::Lint(args) => commands::lint::run_command(&args),
        Command::Parse(args) => commands::parse::run(&args),
        Command::Context(args) => commands::context::run(&args),
        Command::Images(args) => commands::images::images(&args),
        Command::Tag(args) => commands::images::tag(&args),
        Command::Inspect(args) => commands::images::inspect(&args),
        Command::History(args) => commands::images::history(&args),
        Command::Builder(BuilderArgs {
            command: BuilderCommand::Prune(args),
        }) => commands::cache::prune(&args),
        Command::Login(args) => commands::login::login(&args),
        Command::Logout(args) => commands::login::logout(&args),
        Command::System(args) => commands::system::run(&args),
        Command::Version(args) => commands::system::version(&args),
        Command::Rmi(args) => commands::images::rmi(&args),
        Command::Load(args) => commands::images::load(&args),
        Command::Save(args) => commands::images::save(&args),
        Command::Import(args) => commands::images::import(&args),
        Command::Pull(args) => commands::images::pull(&args),
        Command::Push(args) => commands::images::push(&args),
        Command::Prune(args) => commands::images::prune(&args),
        Command::Verify => commands::images::verify(),
        Command::Cache(args) => commands::cache::run(&args),
        Command::Size(args) => commands::size::run(&args),
        Command::Sbom(args) => commands::sbom::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !error.0.is_empty() {
                eprintln!("{error}");
            }
            ExitCode::FAILURE
        }
    }
}
