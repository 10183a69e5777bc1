//! `stagecraft context`: the files a build would send, after `.dockerignore`.

use super::{CommandError, CommandResult, human_bytes};
use serde::Serialize;
use stagecraft_dockerignore::{PatternMatcher, find_ignore_file, parse_ignore_file, walk_context};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `stagecraft context`.
#[derive(clap::Args)]
pub(crate) struct ContextArgs {
    /// The build context directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The Dockerfile (default: DIR/Dockerfile); `NAME.dockerignore` beside it wins over
    /// DIR/.dockerignore, as in BuildKit.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Print a JSON array of `{"path", "size"}` instead of one path per line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct JsonEntry {
    /// The path, escaped where it is not printable UTF-8 (`\xNN`).
    path: String,
    size: u64,
}

/// Runs `stagecraft context`.
pub(crate) fn run(args: &ContextArgs) -> CommandResult {
    if !args.dir.is_dir() {
        return Err(CommandError(format!(
            "error: build context {} is not a directory",
            args.dir.display()
        )));
    }
    let dockerfile = args
        .file
        .clone()
        .unwrap_or_else(|| args.dir.join("Dockerfile"));
    let patterns = match find_ignore_file(&args.dir, Some(&dockerfile)) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CommandError(format!("error: cannot read {}: {e}", path.display())))?;
            parse_ignore_file(&text)
                .map_err(|e| CommandError(format!("error: {}: {e}", path.display())))?
        }
        None => Vec::new(),
    };
    let matcher = PatternMatcher::new(patterns)?;
    let entries = walk_context(&args.dir, &matcher)?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        let json: Vec<JsonEntry> = entries
            .iter()
            .map(|e| JsonEntry {
                path: e.escaped_path(),
                size: e.size,
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
    } else {
        for entry in &entries {
            writeln!(out, "{}", entry.escaped_path())?;
        }
    }
    out.flush()?;
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    eprintln!(
        "{} files, {} ({bytes} bytes)",
        entries.len(),
        human_bytes(bytes)
    );
    Ok(())
}
