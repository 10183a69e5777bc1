//! `EntrypointNotFound`: the program a container starts is in the image, executable, and
//! (for a script) has its `#!` interpreter.
//!
//! The program is looked up as runc's `LookPath` does: a name with a `/` is a path (relative
//! to the working directory), a bare name is searched along `PATH`, and the first executable
//! file wins. Scripts are followed through their `#!` lines as the kernel does (up to four
//! interpreters deep, `binfmt_script`'s limit).

use super::{CheckedImage, Place, Problem, Setting};
use crate::rules;
use stagecraft_imagefs::{FileEntry, ImageFs};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How many interpreters deep a script may go (Linux's `binfmt_script` limit).
const MAX_INTERPRETERS: usize = 4;

/// The shell Docker runs shell-form commands with when the image sets no `SHELL`.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

pub(super) fn check(image: &CheckedImage<'_>, entries: &[FileEntry], problems: &mut Vec<Problem>) {
    let config = &image.config.config;
    let (setting, argv) = match (&config.entrypoint, &config.cmd) {
        (Some(entrypoint), _) if !entrypoint.is_empty() => (Setting::Entrypoint, entrypoint),
        (_, Some(cmd)) if !cmd.is_empty() => (Setting::Cmd, cmd),
        // Nothing to start: `docker run` needs a command then, which the image cannot know.
        _ => return,
    };
    let keyword = setting.keyword();
    let shell: Vec<&str> = if config.shell.is_empty() {
        DEFAULT_SHELL.to_vec()
    } else {
        config.shell.iter().map(String::as_str).collect()
    };
    let shell_form = argv.len() > shell.len() && argv.iter().zip(&shell).all(|(a, s)| a == s);
    let program = &argv[0];
    let report = |problems: &mut Vec<Problem>, file: Option<File<'_>>, message: String, hint| {
        let layer = file.and_then(|file| layer_of(image, entries, file));
        problems.push(Problem {
            rule: &rules::EntrypointNotFound,
            place: Place::Setting(setting, layer),
            message,
            hint,
        });
    };
    let runs = if shell_form {
        format!("the shell form of {keyword} runs {}", shell.join(" "))
    } else {
        format!("{keyword} runs {program}")
    };
    match look_up(image, program) {
        Lookup::Missing if shell_form => report(
            problems,
            None,
            format!("{runs}, and {program} is not in the image"),
            format!(
                "write the exec form ({keyword} [\"/app\", \"--flag\"]), which needs no shell, or base the final stage on an image with {program}"
            ),
        ),
        Lookup::Missing if program.contains('/') => report(
            problems,
            None,
            format!("{runs}, which is not in the image"),
            format!(
                "copy the program to that path (check the COPY --from source and destination), or fix the path in {keyword}"
            ),
        ),
        Lookup::Missing => report(
            problems,
            None,
            format!(
                "{runs}, which is in no directory of PATH ({})",
                image.path_dirs().join(":")
            ),
            format!(
                "install it in the final stage, or write the full path of the program in {keyword}"
            ),
        ),
        Lookup::NotAFile(path) => report(
            problems,
            Some(File::Mode(&path)),
            format!("{runs}, but {} is not a regular file", path.display()),
            format!("name the program itself in {keyword}, not a directory"),
        ),
        Lookup::NotExecutable(path, mode) => report(
            problems,
            Some(File::Mode(&path)),
            format!(
                "{runs}, but {} is not executable (mode {:04o})",
                path.display(),
                mode & 0o7777
            ),
            "copy it with COPY --chmod=755 (or RUN chmod +x in the stage that makes it)".to_owned(),
        ),
        Lookup::Found(path, file) => {
            if let Some((problem, hint)) = check_program(image, file, 1) {
                report(
                    problems,
                    Some(File::Content(&path)),
                    format!("{runs}: {} {problem}", path.display()),
                    hint,
                );
            }
        }
    }
}

/// The program file a finding is about, and what about it.
#[derive(Clone, Copy)]
enum File<'a> {
    /// Its mode (set by the layer whose copy is visible).
    Mode(&'a Path),
    /// Its content (added by the first layer of its run of copies: a `RUN chmod` re-adds it).
    Content(&'a Path),
}

/// The layer of the build that set the file's mode or added its content; `None` when the
/// build did not (the listing holds the build's files under their own paths, symlinks not
/// followed).
fn layer_of(image: &CheckedImage<'_>, entries: &[FileEntry], file: File<'_>) -> Option<usize> {
    let (File::Mode(path) | File::Content(path)) = file;
    let entry = entries.iter().find(|entry| entry.path == path)?;
    match file {
        File::Mode(_) => entry.layer,
        File::Content(_) => image.fs.first_added(entry),
    }
}

/// What looking a program up found.
enum Lookup {
    /// An executable regular file, opened.
    Found(PathBuf, std::fs::File),
    /// Nothing there (or in any `PATH` directory).
    Missing,
    /// Something that is not a regular file (a directory).
    NotAFile(PathBuf),
    /// A regular file without an execute bit, with its mode.
    NotExecutable(PathBuf, u32),
}

/// Looks `program` up as runc does: a path when it has a `/`, else along `PATH`, where the
/// first executable regular file wins.
fn look_up(image: &CheckedImage<'_>, program: &str) -> Lookup {
    if program.contains('/') {
        return open_program(image.fs, &absolute(image, program));
    }
    let mut first_failure = Lookup::Missing;
    for dir in image.path_dirs() {
        let candidate = absolute(image, dir).join(program);
        match open_program(image.fs, &candidate) {
            found @ Lookup::Found(..) => return found,
            Lookup::Missing => {}
            // Go's LookPath goes on to the next directory, and says why the first one failed
            // if none has it.
            failure => {
                if matches!(first_failure, Lookup::Missing) {
                    first_failure = failure;
                }
            }
        }
    }
    first_failure
}

/// `path` made absolute against the image's working directory.
fn absolute(image: &CheckedImage<'_>, path: &str) -> PathBuf {
    Path::new(image.working_dir()).join(path)
}

fn open_program(fs: &dyn ImageFs, path: &Path) -> Lookup {
    match fs.open(path) {
        Ok(file) => match file.metadata() {
            Ok(metadata) if metadata.mode() & 0o111 != 0 => Lookup::Found(path.to_owned(), file),
            Ok(metadata) => Lookup::NotExecutable(path.to_owned(), metadata.mode()),
            Err(_) => Lookup::Missing,
        },
        Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
            Lookup::NotAFile(path.to_owned())
        }
        Err(_) => Lookup::Missing,
    }
}

/// What is wrong with an executable file as a program (`depth` interpreters deep): `None`
/// for an ELF file or a script whose interpreters are all there.
fn check_program(
    image: &CheckedImage<'_>,
    mut file: std::fs::File,
    depth: usize,
) -> Option<(String, String)> {
    // The kernel reads the first 256 bytes (BINPRM_BUF_SIZE) to choose a format.
    let mut head = Vec::with_capacity(256);
    (&mut file).take(256).read_to_end(&mut head).ok()?;
    if head.starts_with(b"\x7fELF") {
        return None;
    }
    let Some(line) = head.strip_prefix(b"#!") else {
        return Some((
            "is neither an ELF program nor a script starting with #! (the kernel refuses it: `exec format error`)".to_owned(),
            "start the script with a #! line (#!/bin/sh), or check that the file is the program you meant".to_owned(),
        ));
    };
    let line =
        String::from_utf8_lossy(line.split(|&b| b == b'\n').next().unwrap_or(&[])).into_owned();
    let line = line.trim_start_matches([' ', '\t']);
    let (interpreter, argument) = match line.split_once([' ', '\t']) {
        Some((interpreter, argument)) => (interpreter, argument.trim()),
        None => (line, ""),
    };
    if let Some(stripped) = interpreter.strip_suffix('\r') {
        return Some((
            format!(
                "has a #! line that ends with a carriage return (Windows line endings): the kernel looks for \"{stripped}\\r\""
            ),
            "convert the script to Unix line endings (dos2unix, or `*.sh text eol=lf` in .gitattributes)".to_owned(),
        ));
    }
    if interpreter.is_empty() {
        return Some((
            "has an empty #! line".to_owned(),
            "name the interpreter: #!/bin/sh".to_owned(),
        ));
    }
    let missing_hint = |name: &str| {
        format!(
            "install {name} in the final stage (on Alpine: apk add --no-cache {}), or write the script for /bin/sh (#!/bin/sh) if it is POSIX",
            Path::new(name)
                .file_name()
                .map_or(name.into(), |n| n.to_string_lossy())
        )
    };
    match open_program(image.fs, &absolute(image, interpreter)) {
        Lookup::Found(path, file) => {
            if is_env(&path)
                && let Some(command) = env_command(argument)
            {
                return match look_up(image, command) {
                    Lookup::Found(..) => None,
                    _ => Some((
                        format!(
                            "starts with #!{interpreter} {argument}, and {command} is in no directory of PATH ({})",
                            image.path_dirs().join(":")
                        ),
                        missing_hint(command),
                    )),
                };
            }
            if depth >= MAX_INTERPRETERS {
                return None;
            }
            check_program(image, file, depth + 1).map(|(problem, hint)| {
                (
                    format!("starts with #!{interpreter}, which {problem}"),
                    hint,
                )
            })
        }
        Lookup::NotExecutable(_, mode) => Some((
            format!(
                "starts with #!{interpreter}, which is not executable (mode {:04o})",
                mode & 0o7777
            ),
            format!("make {interpreter} executable"),
        )),
        Lookup::Missing | Lookup::NotAFile(_) => Some((
            format!("starts with #!{interpreter}, which is not in the image"),
            missing_hint(interpreter),
        )),
    }
}

/// Whether an interpreter is `env`, which runs the command its arguments name.
fn is_env(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "env")
}

/// The command `env ARGUMENT` runs: the first word that is neither an option (nor the value
/// of `-u NAME`/`-C DIR`) nor a `NAME=value` setting (`-S` splits the rest into words, as the
/// kernel passes it as one).
fn env_command(argument: &str) -> Option<&str> {
    let mut words = argument.split_whitespace();
    while let Some(word) = words.next() {
        if matches!(word, "-u" | "--unset" | "-C" | "--chdir") {
            words.next();
        } else if !word.starts_with('-') && !word.contains('=') {
            return Some(word);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_skips_options_and_settings() {
        assert_eq!(env_command("bash"), Some("bash"));
        assert_eq!(env_command("-S bash -e"), Some("bash"));
        assert_eq!(env_command("-i PATH=/bin python3 -u"), Some("python3"));
        assert_eq!(env_command("-u HOME node"), Some("node"));
        assert_eq!(env_command(""), None);
    }
}
