//! One module per subcommand.

pub mod build;
pub mod cache;
pub mod context;
pub mod images;
pub mod lint;
pub mod parse;
pub mod progress;
pub mod report;
pub mod runtime;
pub mod size;

use std::io::Read;
use std::path::Path;

/// A failure to report to the user: the text is printed as is, then the process exits with 1.
#[derive(Debug)]
pub struct CommandError(pub String);

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
pub type CommandResult = Result<(), CommandError>;

/// Reads a Dockerfile, `-` meaning standard input. Returns the name to show and the bytes.
pub fn read_dockerfile(path: &Path) -> Result<(String, Vec<u8>), CommandError> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        return Ok(("<stdin>".to_owned(), bytes));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        CommandError(format!(
            "error: cannot read Dockerfile {}: {e}\n  = help: pass its path with -f",
            path.display()
        ))
    })?;
    Ok((path.display().to_string(), bytes))
}

/// Parses a Dockerfile, printing its warnings to standard error.
pub fn parse_dockerfile(path: &Path) -> Result<stagecraft_dockerfile::Dockerfile, CommandError> {
    let (name, bytes) = read_dockerfile(path)?;
    let dockerfile = stagecraft_dockerfile::parse_bytes(&name, &bytes)
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
pub use stagecraft_report::human_bytes;
