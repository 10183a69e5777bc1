//! One module per subcommand.

pub mod build;
pub mod context;
pub mod images;
pub mod lint;
pub mod parse;
pub mod progress;
pub mod report;
pub mod runtime;

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

/// Sizes the way docker prints them (`units.HumanSize`): decimal units, four significant digits.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = match value {
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let digits = format!("{value:.decimals$}");
    let digits = if digits.contains('.') {
        digits.trim_end_matches('0').trim_end_matches('.')
    } else {
        &digits
    };
    format!("{digits}{}", UNITS[unit])
}
