//! One module per subcommand.

pub(crate) mod build;
pub(crate) mod cache;
pub(crate) mod context;
pub(crate) mod image_checks;
pub(crate) mod images;
pub(crate) mod lint;
pub(crate) mod login;
pub(crate) mod parse;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod runtime;
pub(crate) mod sbom;
pub(crate) mod size;
pub(crate) mod system;

use std::io::Read;
use std::path::Path;

/// A failure to report to the user: the text is printed as is, then the process exits with 1.
#[derive(Debug)]
pub(crate) struct CommandError(pub String);

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for CommandError {
    fn from(error: E) -> Self {
        CommandError(format!("error: {error}"))
    }
}

/// What a subcommand returns.
pub(crate) type CommandResult = Result<(), CommandError>;

/// Reads a Dockerfile, `-` meaning standard input. Returns the name to show and the bytes.
pub(crate) fn read_dockerfile(path: &Path) -> Result<(String, Vec<u8>), CommandError> {
    let too_big = |name: &str, size: String| {
        CommandError(format!(
            "error: the Dockerfile {name} is {size}: stagecraft reads Dockerfiles up to {}\n  = help: is -f pointing at the right file?",
            human_bytes(MAX_DOCKERFILE_BYTES)
        ))
    };
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_DOCKERFILE_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
            return Err(too_big("<stdin>", "larger than that".to_owned()));
        }
        return Ok(("<stdin>".to_owned(), bytes));
    }
    let cannot_read = |e: std::io::Error| {
        CommandError(format!(
            "error: cannot read Dockerfile {}: {e}\n  = help: pass its path with -f",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    // Checked before reading: a multi-gigabyte file (a build output named by mistake, a
    // hostile input) must not be loaded into memory to be rejected.
    let size = file.metadata().map_err(cannot_read)?.len();
    if size > MAX_DOCKERFILE_BYTES {
        return Err(too_big(&path.display().to_string(), human_bytes(size)));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_DOCKERFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(too_big(
            &path.display().to_string(),
            "larger than that".to_owned(),
        ));
    }
    Ok((path.display().to_string(), bytes))
}

/// The largest Dockerfile read. BuildKit refuses lines over 64 KiB; real Dockerfiles are a few
/// kilobytes, and 16 MiB parse in well under a second.
pub(crate) const MAX_DOCKERFILE_BYTES: u64 = 16 << 20;

/// Parses a Dockerfile, printing its warnings to standard error.
pub(crate) fn parse_dockerfile(
    path: &Path,
) -> Result<stagecraft_dockerfile::Dockerfile, CommandError> {
    let (name, bytes) = read_dockerfile(path)?;
    parse_dockerfile_bytes(&name, &bytes)
}

/// Parses a Dockerfile already read (`name` is what errors call it), printing its warnings to
/// standard error.
pub(crate) fn parse_dockerfile_bytes(
    name: &str,
    bytes: &[u8],
) -> Result<stagecraft_dockerfile::Dockerfile, CommandError> {
    let dockerfile = stagecraft_dockerfile::parse_bytes(name, bytes)
        .map_err(|error| CommandError(error.render()))?;
    for warning in &dockerfile.warnings {
        eprintln!(
            "warning: {name}:{}: {} ({})",
            warning.line, warning.message, warning.url
        );
    }
    Ok(dockerfile)
}

// One formatter for every size the CLI prints, shared with the size reports.
pub(crate) use stagecraft_report::human_bytes;

/// A `--compression` flag: `gzip`, `zstd` or `uncompressed`, at the algorithm's default level
/// (a clap value parser, shared by `build`, `save` and `push`).
pub(crate) fn compression_flag(
    name: &str,
) -> Result<stagecraft_layer::Compression, stagecraft_build::UnknownCompression> {
    stagecraft_build::compression_by_name(name)
}
