//! What package managers and build tools a command runs, and how.

use crate::script::{SHELLS, SimpleCommand, has_option};

/// A language ecosystem whose dependencies are installed from a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ecosystem {
    Node,
    Python,
    Go,
    Rust,
    Ruby,
    Php,
}

impl Ecosystem {
    /// The manifest files to copy before installing, for messages.
    pub(crate) fn manifests(self) -> &'static str {
        match self {
            Ecosystem::Node => "package.json and the lockfile",
            Ecosystem::Python => "requirements.txt (or pyproject.toml and poetry.lock)",
            Ecosystem::Go => "go.mod and go.sum",
            Ecosystem::Rust => "Cargo.toml and Cargo.lock",
            Ecosystem::Ruby => "Gemfile and Gemfile.lock",
            Ecosystem::Php => "composer.json and composer.lock",
        }
    }
}

/// A subcommand and the operands after it, skipping options (and the values of
/// `value_options`): `apt-get -y -o X=1 install curl` → `("install", ["curl"])`.
fn verb<'a>(args: &'a [String], value_options: &[&str]) -> Option<(&'a str, Vec<&'a str>)> {
    let mut positional = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg.starts_with('-') {
            skip_value = value_options.contains(&arg.as_str());
            continue;
        }
        positional.push(arg.as_str());
    }
    let (first, rest) = positional.split_first()?;
    Some((first, rest.to_vec()))
}

/// Options of apt-get that take a separate value.
const APT_VALUE_OPTIONS: [&str; 3] = ["-o", "-c", "-t"];
/// Options of apk that take a separate value.
const APK_VALUE_OPTIONS: [&str; 8] = [
    "-X",
    "--repository",
    "-t",
    "--virtual",
    "-p",
    "--root",
    "--arch",
    "--cache-dir",
];

/// The subcommand and operands of `apt-get …` / `apt …`.
fn apt(command: &SimpleCommand) -> Option<(&str, Vec<&str>)> {
    if !matches!(command.program(), "apt-get" | "apt") {
        return None;
    }
    verb(command.args(), &APT_VALUE_OPTIONS)
}

/// `apt-get install …` / `apt install …`: the packages named (a simulated install, `-s`,
/// installs nothing).
pub(crate) fn apt_install(command: &SimpleCommand) -> Option<Vec<&str>> {
    let simulated = command.has_option(&[
        "-s",
        "--simulate",
        "--dry-run",
        "--just-print",
        "--no-act",
        "--recon",
    ]);
    apt(command)
        .filter(|(verb, _)| *verb == "install" && !simulated)
        .map(|(_, packages)| packages)
}

/// `apt-get update` / `apt update`: downloads the package lists.
pub(crate) fn apt_update(command: &SimpleCommand) -> bool {
    apt(command).is_some_and(|(verb, _)| verb == "update")
}

/// Whether an apt command answers its own prompts: `-y`/`--yes`/`--assume-yes` (alone or in a
/// cluster such as `-qy`), `-qq` (which implies it) or an `Assume-Yes` option.
pub(crate) fn apt_assumes_yes(command: &SimpleCommand) -> bool {
    command.args().iter().any(|arg| {
        matches!(
            arg.as_str(),
            "--yes" | "--assume-yes" | "--force-yes" | "-qq" | "-q=2" | "--quiet=2"
        ) || (arg.starts_with('-') && !arg.starts_with("--") && arg.contains('y'))
            || arg.contains("Assume-Yes")
    })
}

/// `apt-get upgrade` / `dist-upgrade` / `full-upgrade`: the subcommand.
pub(crate) fn apt_upgrade(command: &SimpleCommand) -> Option<&str> {
    apt(command)
        .map(|(verb, _)| verb)
        .filter(|verb| matches!(*verb, "upgrade" | "dist-upgrade" | "full-upgrade"))
}

/// `apt-get dist-clean`: removes the package lists too (apt 2.7 and later).
pub(crate) fn apt_dist_clean(command: &SimpleCommand) -> bool {
    apt(command).is_some_and(|(verb, _)| verb == "dist-clean")
}

/// `apk add …`: the packages named.
pub(crate) fn apk_add(command: &SimpleCommand) -> Option<Vec<&str>> {
    if command.program() != "apk" {
        return None;
    }
    let (verb, packages) = verb(command.args(), &APK_VALUE_OPTIONS)?;
    (verb == "add").then_some(packages)
}

/// Any distribution package install (apt, apk, dnf, yum, microdnf, zypper): the packages.
pub(crate) fn system_install(command: &SimpleCommand) -> Option<Vec<&str>> {
    if let Some(packages) = apt_install(command).or_else(|| apk_add(command)) {
        return Some(packages);
    }
    if !matches!(command.program(), "dnf" | "yum" | "microdnf" | "zypper") {
        return None;
    }
    let (verb, packages) = verb(command.args(), &["--setopt", "--repo", "--enablerepo"])?;
    matches!(verb, "install" | "in").then_some(packages)
}

/// `apk del …`, `apt-get purge|remove …`, `dnf remove …`: the packages (or apk virtual
/// package names) removed again.
pub(crate) fn system_remove(command: &SimpleCommand) -> Option<Vec<&str>> {
    let (verb, packages) = match command.program() {
        "apk" => verb(command.args(), &APK_VALUE_OPTIONS)?,
        "apt-get" | "apt" => apt(command)?,
        "dnf" | "yum" | "microdnf" | "zypper" => verb(command.args(), &[])?,
        _ => return None,
    };
    matches!(verb, "del" | "purge" | "remove" | "erase" | "rm").then_some(packages)
}

/// The apk `--virtual NAME` / `-t NAME` group of an `apk add`.
pub(crate) fn apk_virtual(command: &SimpleCommand) -> Option<&str> {
    let args = command.args();
    args.iter()
        .position(|a| a == "--virtual" || a == "-t")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The arguments after `pip` in `pip install`, `pip3 install`, `python3 -m pip install`.
fn pip_args(command: &SimpleCommand) -> Option<&[String]> {
    let program = command.program();
    let versioned = |prefix: &str| {
        program
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    if versioned("pip") {
        return Some(command.args());
    }
    if versioned("python") {
        let args = command.args();
        let module = args.iter().position(|a| a == "-m")?;
        return (args.get(module + 1)? == "pip").then(|| &args[module + 2..]);
    }
    None
}

/// Options of pip that take a separate value.
const PIP_VALUE_OPTIONS: [&str; 12] = [
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--cache-dir",
];

/// `pip install …`: its arguments after `pip`.
pub(crate) fn pip_install(command: &SimpleCommand) -> Option<&[String]> {
    let args = pip_args(command)?;
    let (verb, _) = verb(args, &PIP_VALUE_OPTIONS)?;
    (verb == "install").then_some(args)
}

/// Packaging tools that are routinely upgraded unpinned (`pip install -U pip`): they do not
/// make the application.
const PIP_TOOLING: [&str; 3] = ["pip", "setuptools", "wheel"];

/// The packages a `pip install` names without a version: not `name==1.2`, `name>=1`,
/// `name @ url`, a path, a URL or an archive, and nothing when a constraints file pins them.
pub(crate) fn pip_unpinned(command: &SimpleCommand) -> Vec<&str> {
    let Some(args) = pip_install(command) else {
        return Vec::new();
    };
    if has_option(args, &["-c", "--constraint"]) {
        return Vec::new();
    }
    let Some((_, operands)) = verb(args, &PIP_VALUE_OPTIONS) else {
        return Vec::new();
    };
    operands
        .into_iter()
        .filter(|spec| {
            let name = spec.split('[').next().unwrap_or(spec).to_lowercase();
            !spec.contains(['=', '<', '>', '@', '/', '$', '~'])
                && !spec.starts_with('.')
                && ![".whl", ".tar.gz", ".zip"]
                    .iter()
                    .any(|s| spec.ends_with(s))
                && !PIP_TOOLING.contains(&name.as_str())
        })
        .collect()
}

/// What an `npm` command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Npm {
    /// `npm ci`.
    Ci,
    /// `npm install` with no package names: install what `package.json` lists.
    InstallAll,
    /// `npm install some-package`.
    InstallPackages,
    /// `npm prune`.
    Prune,
}

/// Classifies an `npm` command.
pub(crate) fn npm(command: &SimpleCommand) -> Option<Npm> {
    if command.program() != "npm" {
        return None;
    }
    let (verb, operands) = verb(
        command.args(),
        &["--prefix", "-w", "--workspace", "--cache", "--registry"],
    )?;
    match verb {
        "ci" | "clean-install" | "install-clean" | "isntall-clean" => Some(Npm::Ci),
        "install" | "i" | "in" | "ins" | "inst" | "insta" | "instal" | "isnt" | "isnta"
        | "isntal" | "isntall" | "add" => Some(if operands.is_empty() {
            Npm::InstallAll
        } else {
            Npm::InstallPackages
        }),
        "prune" => Some(Npm::Prune),
        _ => None,
    }
}

/// Whether an npm install or prune leaves development dependencies out.
pub(crate) fn npm_omits_dev(command: &SimpleCommand) -> bool {
    let args = command.args();
    has_option(args, &["--production", "--prod"])
        || args.iter().any(|a| {
            matches!(
                a.as_str(),
                "--omit=dev" | "--only=prod" | "--only=production"
            )
        })
        || args.windows(2).any(|w| w[0] == "--omit" && w[1] == "dev")
        || command.assignment("NODE_ENV") == Some("production")
}

/// Whether the command only prints its version or help (`yarn --version`, `npm install
/// --help`, `pnpm -v`): it installs nothing.
fn asks_for_information(command: &SimpleCommand) -> bool {
    let args = command.args();
    let short_flags_only = !args.is_empty() && args.iter().all(|a| a.starts_with('-'));
    command.has_option(&["--version", "--help"])
        || (short_flags_only
            && args
                .iter()
                .any(|a| matches!(a.as_str(), "-v" | "-V" | "-h")))
}

/// The ecosystem whose dependencies this command installs from a manifest, if it is one of
/// the commands that should run before the sources are copied.
pub(crate) fn dependency_install(command: &SimpleCommand) -> Option<Ecosystem> {
    if asks_for_information(command) {
        return None;
    }
    if matches!(npm(command), Some(Npm::Ci | Npm::InstallAll)) {
        return Some(Ecosystem::Node);
    }
    if let Some(args) = pip_install(command) {
        let from_file = args.iter().any(|a| {
            a == "--requirement" || a.starts_with("--requirement=") || a.starts_with("-r")
        });
        return from_file.then_some(Ecosystem::Python);
    }
    let (verb, operands) = verb(command.args(), &["--cwd", "--dir", "-C"]).unwrap_or_default();
    let first = operands.first().copied();
    match (command.program(), verb) {
        ("yarn", "" | "install") | ("pnpm", "install" | "i") if operands.is_empty() => {
            Some(Ecosystem::Node)
        }
        ("poetry", "install") | ("pipenv", "install" | "sync") | ("uv", "sync") => {
            Some(Ecosystem::Python)
        }
        ("go", "mod") if first == Some("download") => Some(Ecosystem::Go),
        ("cargo", "build" | "fetch") => Some(Ecosystem::Rust),
        ("cargo", "chef") if first == Some("cook") => Some(Ecosystem::Rust),
        ("bundle" | "bundler", "install") => Some(Ecosystem::Ruby),
        ("composer", "install") => Some(Ecosystem::Php),
        _ => None,
    }
}

/// The tool, when this command downloads or compiles things a cache mount would keep between
/// builds (apt, npm/yarn/pnpm, pip, go, cargo).
pub(crate) fn cacheable_tool(command: &SimpleCommand) -> Option<&'static str> {
    if asks_for_information(command) {
        return None;
    }
    if apt_install(command).is_some() {
        return Some("apt");
    }
    if let Some(args) = pip_install(command) {
        // `--no-cache-dir` is a deliberate choice of no cache; do not argue with it.
        let no_cache = has_option(args, &["--no-cache-dir"])
            || command.assignment("PIP_NO_CACHE_DIR").is_some();
        return (!no_cache).then_some("pip");
    }
    if matches!(
        npm(command),
        Some(Npm::Ci | Npm::InstallAll | Npm::InstallPackages)
    ) {
        return Some("npm");
    }
    let (verb, operands) = verb(command.args(), &["--cwd", "-C"]).unwrap_or_default();
    match (command.program(), verb) {
        ("yarn", "" | "install" | "add") => Some("yarn"),
        ("pnpm", "install" | "i" | "add") => Some("pnpm"),
        ("go", "build" | "install" | "get" | "test") => Some("go"),
        ("go", "mod") if operands.first() == Some(&"download") => Some("go"),
        ("cargo", "build" | "fetch" | "install" | "test") => Some("cargo"),
        ("cargo", "chef") if operands.first() == Some(&"cook") => Some("cargo"),
        _ => None,
    }
}

/// A command that downloads and writes what it fetched to standard output (when piped).
pub(crate) fn is_download(command: &SimpleCommand) -> bool {
    matches!(command.program(), "curl" | "wget")
}

/// A command that takes an empty or truncated input without failing and with consequences: a
/// shell or interpreter runs whatever arrived (nothing, for a failed download), `tee` and `dd`
/// save it, a compressor compresses it, and `tar`/`cpio` unpack a plain archive cut at a file
/// boundary. Not a decompressor (`gunzip`, `xz -d`, `tar xz`): an empty or truncated compressed
/// stream makes it fail (GNU and BusyBox tools alike), and the step with it.
pub(crate) fn trusts_its_input(command: &SimpleCommand) -> bool {
    let program = command.program();
    SHELLS.contains(&program)
        || ["python", "perl", "ruby", "node", "php"]
            .iter()
            .any(|interpreter| program.starts_with(interpreter))
        || match program {
            "tar" | "bsdtar" => !tar_decompresses(command),
            "gzip" | "bzip2" | "xz" | "zstd" => !command.has_option(&["-d", "--decompress"]),
            "cpio" | "tee" | "dd" => true,
            _ => false,
        }
}

/// Whether a `tar` reads a compressed archive: `-z`/`-j`/`-J`/`-Z` alone or in a bundle
/// (`xzf`, `-xJf`), a long option naming a compressor, or a compress program (`-I zstd`).
fn tar_decompresses(command: &SimpleCommand) -> bool {
    const LONG: [&str; 9] = [
        "--gzip",
        "--gunzip",
        "--bzip2",
        "--xz",
        "--lzma",
        "--zstd",
        "--compress",
        "--uncompress",
        "--use-compress-program",
    ];
    command.has_option(&LONG)
        || command.args().iter().enumerate().any(|(index, arg)| {
            // Short options, bundled or not; the first argument may omit its dash (`tar xzf`).
            let bundle = match arg.strip_prefix('-') {
                Some(rest) if !rest.starts_with('-') => rest,
                None if index == 0 => arg.as_str(),
                _ => return false,
            };
            bundle.contains(['z', 'j', 'J', 'Z', 'I'])
        })
}

/// Options of `go build` / `go install` that take a separate value.
const GO_VALUE_OPTIONS: [&str; 9] = [
    "-o",
    "-C",
    "-ldflags",
    "-tags",
    "-gcflags",
    "-asmflags",
    "-p",
    "-mod",
    "-modfile",
];

/// A `go build` or `go install`: a command that links Go binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoBuild<'a> {
    /// `go install`: the binaries go to `$GOBIN` (or `$GOPATH/bin`).
    pub install: bool,
    /// The `-o` value, if given.
    pub output: Option<&'a str>,
    /// The packages named (`.`, `./cmd/app`, …).
    pub packages: Vec<&'a str>,
}

/// Reads `go build …` / `go install …`.
pub(crate) fn go_build(command: &SimpleCommand) -> Option<GoBuild<'_>> {
    if command.program() != "go" {
        return None;
    }
    let args = command.args();
    let (verb, packages) = verb(args, &GO_VALUE_OPTIONS)?;
    let install = match verb {
        "build" => false,
        "install" => true,
        _ => return None,
    };
    let output = args
        .iter()
        .enumerate()
        .find_map(|(i, arg)| match arg.as_str() {
            "-o" | "--o" => args.get(i + 1).map(String::as_str),
            _ => arg.strip_prefix("-o=").or_else(|| arg.strip_prefix("--o=")),
        });
    Some(GoBuild {
        install,
        output,
        packages,
    })
}

/// Whether a `go build` produces a static binary whatever `CGO_ENABLED` says: external
/// static linking, or the pure-Go `netgo` build tag.
pub(crate) fn go_build_is_static(command: &SimpleCommand) -> bool {
    command
        .args()
        .iter()
        .any(|a| a.contains("-static") || a.contains("netgo"))
}

/// Compiler toolchains that only a build stage should need.
pub(crate) fn is_compiler_package(package: &str) -> bool {
    // `gcc=4:12.2.0-3` (apt pin), `gcc~=12` / `gcc>12` (apk constraints).
    let name = package
        .split(['=', '~', '>', '<'])
        .next()
        .unwrap_or(package);
    is_c_compiler_package(name)
        || matches!(
            name,
            "make"
                | "cmake"
                | "autoconf"
                | "automake"
                | "libtool"
                | "gfortran"
                | "golang"
                | "golang-go"
                | "go"
                | "rustc"
                | "cargo"
        )
}

/// Packages that bring a C compiler (what cgo needs to be on): `gcc`, `build-base`, `clang-17`…
pub(crate) fn is_c_compiler_package(package: &str) -> bool {
    let name = package
        .split(['=', '~', '>', '<'])
        .next()
        .unwrap_or(package);
    matches!(
        name,
        "gcc" | "g++" | "gcc-c++" | "clang" | "build-essential" | "build-base"
    ) || ["gcc-", "g++-", "clang-"].iter().any(|prefix| {
        name.strip_prefix(prefix)
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::Script;

    fn first(text: &str) -> SimpleCommand {
        Script::parse(text).commands()[0].clone()
    }

    #[test]
    fn recognises_installs() {
        assert_eq!(
            apt_install(&first(
                "apt-get -y -o Dpkg::Options::=--force-confold install curl"
            )),
            Some(vec!["curl"])
        );
        assert_eq!(
            apk_add(&first("apk add --no-cache --virtual .deps gcc")),
            Some(vec!["gcc"])
        );
        assert!(pip_install(&first("python3 -m pip install -r requirements.txt")).is_some());
        assert_eq!(npm(&first("npm i")), Some(Npm::InstallAll));
        assert_eq!(
            npm(&first("npm install -g pm2")),
            Some(Npm::InstallPackages)
        );
        assert_eq!(dependency_install(&first("yarn")), Some(Ecosystem::Node));
        assert_eq!(dependency_install(&first("yarn add left-pad")), None);
        assert_eq!(
            dependency_install(&first("go mod download")),
            Some(Ecosystem::Go)
        );
        assert_eq!(dependency_install(&first("pip install .")), None);
        for informational in ["yarn --version", "yarn -v", "npm install --help", "pnpm -v"] {
            assert_eq!(
                cacheable_tool(&first(informational)),
                None,
                "{informational}"
            );
            assert_eq!(
                dependency_install(&first(informational)),
                None,
                "{informational}"
            );
        }
        assert_eq!(cacheable_tool(&first("go build -v ./...")), Some("go"));
        let command = first("go build -ldflags '-s -w' -o /out/app ./cmd/app");
        let build = go_build(&command).unwrap();
        assert_eq!(
            (build.output, build.packages),
            (Some("/out/app"), vec!["./cmd/app"])
        );
        assert!(go_build(&first("go install ./...")).unwrap().install);
        assert!(go_build(&first("go test ./...")).is_none());
        for yes in [
            "apt-get install -y x",
            "apt-get -qy install x",
            "apt install -qq x",
            "apt-get --yes install x",
        ] {
            assert!(apt_assumes_yes(&first(yes)), "{yes}");
        }
        assert!(!apt_assumes_yes(&first(
            "apt-get install -q --no-install-recommends x"
        )));
        assert_eq!(
            pip_unpinned(&first(
                "pip install -U pip flask 'uvicorn[standard]' django==5.0 'attrs>=23' ./local -r req.txt"
            )),
            ["flask", "uvicorn[standard]"]
        );
        assert!(pip_unpinned(&first("pip install -c constraints.txt flask")).is_empty());
        assert!(is_compiler_package("gcc-12") && is_compiler_package("g++=4:12"));
        assert!(!is_compiler_package("gcc-doc") && !is_compiler_package("makedev"));
    }
}
