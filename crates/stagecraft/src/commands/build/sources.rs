//! Where a build's context and Dockerfile come from.

use super::super::runtime::open_store_leased;
use super::super::{CommandError, MAX_DOCKERFILE_BYTES, parse_dockerfile, parse_dockerfile_bytes};
use super::BuildArgs;
use stagecraft_build::StdinContext;
use stagecraft_store::{Lease, Store};
use std::path::{Path, PathBuf};

/// Where the build's context and Dockerfile come from: a directory and a file, or standard
/// input as `docker build -` and `-f -` read it.
pub(super) struct Sources {
    /// The context directory.
    pub(super) context: PathBuf,
    /// The Dockerfile's path, for its `NAME.dockerignore` (none when it came from stdin).
    pub(super) dockerfile_path: Option<PathBuf>,
    /// The Dockerfile, parsed.
    pub(super) file: stagecraft_dockerfile::Dockerfile,
    /// A context read from standard input, removed when the build ends.
    pub(super) stdin: Option<StdinContext>,
    /// The store, opened (and leased) already when the context came from standard input.
    pub(super) store: Option<(Store, Lease)>,
}

impl Sources {
    pub(super) fn read(args: &BuildArgs) -> Result<Sources, CommandError> {
        let dash = Path::new("-");
        if args.context != dash {
            // Before the Dockerfile is looked for: a missing context is the first thing to say.
            if !args.context.is_dir() {
                return Err(CommandError(format!(
                    "error: build context {} {}\n  = help: pass the directory to build from (default: the current one), or - to read it from standard input",
                    args.context.display(),
                    if args.context.exists() {
                        "is not a directory"
                    } else {
                        "does not exist"
                    }
                )));
            }
            let dockerfile_path = args
                .file
                .clone()
                .unwrap_or_else(|| args.context.join("Dockerfile"));
            return Ok(Sources {
                context: args.context.clone(),
                file: parse_dockerfile(&dockerfile_path)?,
                // `-f -`: the context's own .dockerignore applies.
                dockerfile_path: (dockerfile_path != dash).then_some(dockerfile_path),
                stdin: None,
                store: None,
            });
        }
        if args.file.as_deref() == Some(dash) {
            return Err(CommandError(
                "error: the Dockerfile and the context cannot both come from standard input (build - with -f -)\n  = help: pass the context directory, or put the Dockerfile in the context archive".to_owned(),
            ));
        }
        let (store, lease) = open_store_leased()?;
        let stdin = StdinContext::read(&store, std::io::stdin().lock(), MAX_DOCKERFILE_BYTES)
            .map_err(|e| CommandError(e.render()))?;
        let (name, bytes) = match (&stdin.dockerfile, &args.file) {
            (Some(bytes), None) => ("<stdin>".to_owned(), bytes.clone()),
            (Some(_), Some(_)) => {
                return Err(CommandError(
                    "error: -f names a Dockerfile in the context, but standard input held a Dockerfile, not a context archive\n  = help: leave out -f, or pipe a tar of the context".to_owned(),
                ));
            }
            (None, file) => {
                let name = file.clone().unwrap_or_else(|| PathBuf::from("Dockerfile"));
                let bytes = stdin
                    .dockerfile_in_archive(&name)
                    .map_err(|e| CommandError(e.render()))?;
                (name.display().to_string(), bytes)
            }
        };
        Ok(Sources {
            context: stdin.dir.path().to_owned(),
            dockerfile_path: None,
            file: parse_dockerfile_bytes(&name, &bytes)?,
            stdin: Some(stdin),
            store: Some((store, lease)),
        })
    }
}
