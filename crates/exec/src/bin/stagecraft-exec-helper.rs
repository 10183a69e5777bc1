//! A binary wired exactly as every user of `stagecraft-exec` must be: `helper_main` first thing.
//!
//! The integration tests and the benchmark start it as their helper. With `--drive SPEC.json` it
//! also runs one step itself, as a whole (parent and helper), which lets a test run the executor
//! as an unprivileged user: `setpriv --reuid=nobody … stagecraft-exec-helper --drive spec.json`
//! prints the step's output and exits with its exit code (or 125 and the error on stderr). The
//! per-run state goes to `$TMPDIR` when that is set.
// A program of its own: it reports on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::ffi::OsString;
use std::io::Write as _;

use stagecraft_exec::{ExecSpec, Executor, HELPER_ARG, HelperCommand, Stream};

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == HELPER_ARG) {
        stagecraft_exec::helper_main(&args[2..]);
    }
    let code = match (args.get(1).and_then(|a| a.to_str()), args.get(2)) {
        (Some("--drive"), Some(spec)) => drive(spec.as_ref()),
        _ => {
            eprintln!("usage: stagecraft-exec-helper {HELPER_ARG} … | --drive SPEC.json");
            2
        }
    };
    std::process::exit(code)
}

fn drive(spec_path: &std::path::Path) -> i32 {
    let spec: ExecSpec = match std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|data| serde_json::from_slice(&data).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("reading {}: {e}", spec_path.display());
            return 2;
        }
    };
    let mut executor = Executor::new(HelperCommand::current_exe());
    if std::env::var_os("TMPDIR").is_some() {
        executor = executor.with_state_dir(std::env::temp_dir());
    }
    let result = executor.run(&spec, &mut |stream, data| {
        let _ = match stream {
            Stream::Stdout => std::io::stdout().write_all(data),
            Stream::Stderr => std::io::stderr().write_all(data),
        };
    });
    match result {
        Ok(status) => status.code(),
        Err(e) => {
            eprintln!("error: {e}");
            125
        }
    }
}
