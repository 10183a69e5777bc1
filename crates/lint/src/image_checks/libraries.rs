//! `MissingSharedLibrary`: ELF programs and libraries whose program interpreter or needed
//! libraries the dynamic loader will not find in the image.
//!
//! Only the headers are read (see `stagecraft_imagefs::elf`), and only of files that may be
//! ELF objects: an execute bit, or a `.so`/`.node` name. A needed library counts as found
//! when it is a regular file (symlinks followed inside the image) in any directory the loader
//! could search for that object; the order of the search does not matter for whether it
//! finds one. Directory listings are read once each, so a library is looked for by name in
//! memory, and opened only to confirm what a listing names.

use super::{CheckedImage, Place, Problem, and_list, some_paths};
use crate::checks::glob_match;
use crate::rules;
use stagecraft_imagefs::elf::{self, Dynamic};
use stagecraft_imagefs::{EntryKind, FileEntry, ImageFs};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `ld.so.conf` `include`s nest at most this deep (a loop would otherwise never end).
const MAX_INCLUDE_DEPTH: usize = 8;

/// An ELF program or library of the image.
struct Object<'a> {
    entry: &'a FileEntry,
    dynamic: Dynamic,
}

impl Object<'_> {
    /// A program (it names a loader) rather than a library: only its own `RPATH`/`RUNPATH`
    /// help it, nothing loads it.
    fn is_program(&self) -> bool {
        self.dynamic.interpreter.is_some()
    }

    /// Its directory: what `$ORIGIN` stands for.
    fn origin(&self) -> &Path {
        self.entry.path.parent().unwrap_or(Path::new("/"))
    }
}

pub(super) fn check(image: &CheckedImage<'_>, entries: &[FileEntry], problems: &mut Vec<Problem>) {
    let cpu = cpu_of(&image.config.architecture);
    let objects: Vec<Object<'_>> = entries
        .iter()
        .filter(|entry| may_be_elf(entry))
        .filter_map(|entry| {
            let data = elf::lazy(image.fs.open(&entry.path).ok()?)?;
            let dynamic = elf::dynamic(&data).ok()?;
            Some(Object { entry, dynamic })
        })
        // Relocatable objects and core dumps are never loaded; objects for another CPU or
        // ABI (cross toolchains, test data, firmware, x32 helpers on amd64) are not for this
        // image's loader.
        .filter(|object| {
            object.dynamic.is_loadable()
                && cpu.is_none_or(|(machine, is_64)| {
                    object.dynamic.machine == machine && object.dynamic.is_64 == is_64
                })
                && !object.dynamic.is_static()
        })
        .collect();
    if objects.is_empty() {
        return;
    }
    let mut loader = Loader::new(image, &objects);
    // Files that one layer added and that miss the same things make one finding. The layer
    // that added a file is where its content came from (a `RUN chmod` re-adds it).
    let mut missing_by_layer: BTreeMap<(Option<usize>, Vec<Missing>), Vec<String>> =
        BTreeMap::new();
    for object in &objects {
        let missing = loader.missing(object);
        if !missing.is_empty() {
            missing_by_layer
                .entry((image.fs.first_added(object.entry), missing))
                .or_default()
                .push(object.entry.path.display().to_string());
        }
    }
    for ((layer, missing), mut paths) in missing_by_layer {
        paths.sort();
        let names: Vec<String> = missing.iter().map(Missing::describe).collect();
        let verb = if paths.len() == 1 { "needs" } else { "need" };
        let are = if names.len() == 1 { "is" } else { "are" };
        problems.push(Problem {
            rule: &rules::MissingSharedLibrary,
            place: Place::Layer(layer),
            message: format!(
                "{} {verb} {}, which {are} not in the image",
                some_paths(&paths),
                and_list(&names)
            ),
            hint: loader.fix(&missing),
        });
    }
}

/// Whether a file is worth opening to look for the ELF magic: programs have an execute bit;
/// libraries are often `0644` but are named `*.so*` (Node.js addons `*.node`).
fn may_be_elf(entry: &FileEntry) -> bool {
    // 52 bytes: the smallest ELF header.
    if entry.kind != EntryKind::File || entry.size < 52 || entry.size > elf::SIZE_LIMIT {
        return false;
    }
    let name = entry
        .path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    entry.mode & 0o111 != 0 || name.contains(".so") || name.ends_with(".node")
}

/// Something an object needs that the loader will not find.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Missing {
    /// Its program interpreter (`PT_INTERP`).
    Interpreter(String),
    /// A library it needs (`DT_NEEDED`).
    Library(String),
}

impl Missing {
    fn describe(&self) -> String {
        match self {
            Missing::Interpreter(path) => format!("the program interpreter {path}"),
            Missing::Library(name) => name.clone(),
        }
    }

    /// Whether this is the C library's part: its loader or `libc` itself.
    fn is_libc(&self) -> bool {
        match self {
            Missing::Interpreter(_) => true,
            Missing::Library(name) => name.starts_with("libc.so") || name.starts_with("libc.musl"),
        }
    }

    /// Whether it belongs to glibc (`ld-linux*.so`, `libc.so.6`) rather than musl.
    fn is_glibc(&self) -> bool {
        match self {
            Missing::Interpreter(path) => !path.contains("ld-musl"),
            Missing::Library(name) => name.starts_with("libc.so"),
        }
    }
}

/// Libraries a container runtime mounts into the container when it starts (the NVIDIA
/// container toolkit's driver libraries): an image cannot and should not contain them.
fn injected_at_run_time(name: &str) -> bool {
    ["libcuda.so", "libnvidia-", "libnvcuvid.so", "libnvoptix.so"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// What the dynamic loader would search, and what it finds there.
struct Loader<'a> {
    image: &'a CheckedImage<'a>,
    /// `LD_LIBRARY_PATH` of the image's environment.
    library_path: Vec<PathBuf>,
    /// The directories of `ld.so.conf` (with its includes) and of musl's `ld-musl-*.path`.
    configured: Vec<PathBuf>,
    /// `DT_RPATH` directories of every object without a `DT_RUNPATH`: a library may be loaded
    /// by any of them, and an `RPATH` serves the libraries of the object that has it too.
    inherited: Vec<PathBuf>,
    /// The names in each directory looked at (`None`: no such directory).
    listings: HashMap<PathBuf, Option<HashSet<OsString>>>,
    /// Whether a path is a regular file (after symlinks).
    files: HashMap<PathBuf, bool>,
}

impl<'a> Loader<'a> {
    fn new(image: &'a CheckedImage<'a>, objects: &[Object<'_>]) -> Self {
        let working_dir = Path::new(image.working_dir());
        // glibc splits LD_LIBRARY_PATH at `:` and `;`; an empty entry is the working directory.
        let library_path = image
            .env("LD_LIBRARY_PATH")
            .unwrap_or("")
            .split([':', ';'])
            .map(|dir| working_dir.join(dir))
            .collect();
        let mut configured = Vec::new();
        read_ld_so_conf(image, Path::new("/etc/ld.so.conf"), 0, &mut configured);
        read_musl_paths(image, &mut configured);
        let mut inherited = Vec::new();
        for object in objects {
            if object.dynamic.runpath.is_empty() {
                inherited.extend(expand(image, object, &object.dynamic.rpath));
            }
        }
        inherited.sort();
        inherited.dedup();
        Loader {
            image,
            library_path,
            configured,
            inherited,
            listings: HashMap::new(),
            files: HashMap::new(),
        }
    }

    /// What `object` needs and will not find, sorted.
    fn missing(&mut self, object: &Object<'_>) -> Vec<Missing> {
        let mut missing = Vec::new();
        if let Some(interpreter) = &object.dynamic.interpreter {
            let path = Path::new(self.image.working_dir()).join(interpreter);
            if !self.is_file(&path) {
                missing.push(Missing::Interpreter(interpreter.clone()));
            }
        }
        let dirs = self.search_dirs(object);
        for name in &object.dynamic.needed {
            if injected_at_run_time(name) {
                continue;
            }
            let found = if name.contains('/') {
                // A name with a slash is a path, used as it is once `$ORIGIN` and the other
                // dynamic string tokens are expanded.
                expand(self.image, object, std::slice::from_ref(name))
                    .iter()
                    .any(|path| self.is_file(path))
            } else {
                dirs.iter().any(|dir| self.has(dir, name))
            };
            if !found {
                missing.push(Missing::Library(name.clone()));
            }
        }
        missing.sort();
        missing.dedup();
        missing
    }

    /// Every directory the loader could search for `object`'s needs.
    fn search_dirs(&self, object: &Object<'_>) -> Vec<PathBuf> {
        let dynamic = &object.dynamic;
        let mut dirs = Vec::new();
        // DT_RPATH counts only without a DT_RUNPATH.
        if dynamic.runpath.is_empty() {
            dirs.extend(expand(self.image, object, &dynamic.rpath));
        }
        dirs.extend(self.library_path.iter().cloned());
        dirs.extend(expand(self.image, object, &dynamic.runpath));
        dirs.extend(self.configured.iter().cloned());
        dirs.extend(default_dirs(dynamic.machine));
        if !object.is_program() {
            // Loaded by a program (or dlopen()ed by one) whose RPATH may name this directory.
            dirs.push(object.origin().to_owned());
            dirs.extend(self.inherited.iter().cloned());
        }
        let mut seen = HashSet::new();
        dirs.retain(|dir| seen.insert(dir.clone()));
        dirs
    }

    /// Whether directory `dir` has a regular file `name` (after symlinks).
    fn has(&mut self, dir: &Path, name: &str) -> bool {
        let fs = self.image.fs;
        let listed = self
            .listings
            .entry(dir.to_owned())
            .or_insert_with(|| {
                fs.read_dir(dir)
                    .ok()
                    .map(|names| names.into_iter().collect())
            })
            .as_ref()
            .is_some_and(|names| names.contains(std::ffi::OsStr::new(name)));
        listed && self.is_file(&dir.join(name))
    }

    fn is_file(&mut self, path: &Path) -> bool {
        let fs = self.image.fs;
        *self
            .files
            .entry(path.to_owned())
            .or_insert_with(|| fs.open(path).is_ok())
    }

    /// How to fix what is missing, knowing which C library the image has.
    fn fix(&mut self, missing: &[Missing]) -> String {
        let static_build = "link the program statically (Go: CGO_ENABLED=0; Rust: a *-unknown-linux-musl target; C/C++: -static)";
        if missing.iter().any(Missing::is_libc) {
            let has_musl = self
                .image
                .fs
                .read_dir(Path::new("/lib"))
                .is_ok_and(|names| {
                    names
                        .iter()
                        .any(|name| name.to_string_lossy().starts_with("ld-musl-"))
                });
            let machine = cpu_of(&self.image.config.architecture).map_or(0, |(machine, _)| machine);
            let mut system = default_dirs(machine);
            system.extend(self.configured.iter().cloned());
            let has_glibc = system.iter().any(|dir| self.has(dir, "libc.so.6"));
            let wants_glibc = missing
                .iter()
                .filter(|m| m.is_libc())
                .all(Missing::is_glibc);
            return match (has_glibc, has_musl, wants_glibc) {
                (false, false, _) => format!(
                    "the image has no C library: {static_build}, or base the final stage on an image with glibc (gcr.io/distroless/base-debian12, debian:bookworm-slim)"
                ),
                (false, true, true) => format!(
                    "the program was linked against glibc, and this image's C library is musl (Alpine): build it in an Alpine stage, {static_build}, or base the final stage on a glibc image (debian:bookworm-slim, gcr.io/distroless/base-debian12)"
                ),
                (true, _, false) => format!(
                    "the program was linked against musl (built on Alpine), and this image's C library is glibc: build it in a stage of the same distribution as the final image, or {static_build}"
                ),
                _ => format!(
                    "install or copy the C library the program was built against, or {static_build}"
                ),
            };
        }
        format!(
            "install the package that provides them in the final stage, or COPY --from the builder the libraries (and what they need) into a directory the loader searches (/usr/lib, or the program's RUNPATH); or {static_build}"
        )
    }
}

/// The loader's directories of `rpath`-style entries of `object`, with `$ORIGIN`, `$LIB` and
/// `$PLATFORM` expanded (`$LIB` to every directory it stands for on some distribution) and
/// relative entries taken from the working directory, as the loader does.
fn expand(image: &CheckedImage<'_>, object: &Object<'_>, entries: &[String]) -> Vec<PathBuf> {
    let origin = object.origin().to_string_lossy().into_owned();
    let machine = object.dynamic.machine;
    let mut libs = vec!["lib".to_owned(), "lib64".to_owned()];
    libs.extend(triplets(machine).iter().map(|t| format!("lib/{t}")));
    let platform = platform(machine).to_owned();
    let working_dir = Path::new(image.working_dir());
    let mut dirs = Vec::new();
    for entry in entries.iter().filter(|entry| !entry.is_empty()) {
        let entry = entry
            .replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin)
            .replace("${PLATFORM}", &platform)
            .replace("$PLATFORM", &platform);
        if entry.contains("$LIB") || entry.contains("${LIB}") {
            for lib in &libs {
                let expanded = entry.replace("${LIB}", lib).replace("$LIB", lib);
                dirs.push(working_dir.join(expanded));
            }
        } else {
            dirs.push(working_dir.join(entry));
        }
    }
    dirs
}

/// The directories `ld.so.conf` (and what it includes) lists, appended to `out`.
fn read_ld_so_conf(image: &CheckedImage<'_>, path: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_INCLUDE_DEPTH {
        return;
    }
    let Some(text) = image.read_text(&path.to_string_lossy()) else {
        return;
    };
    let here = path.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(patterns) = line
            .strip_prefix("include")
            .filter(|rest| rest.starts_with([' ', '\t']))
        {
            for pattern in patterns.split_whitespace() {
                let mut files = glob(image.fs, &here.join(pattern));
                files.sort();
                for file in files {
                    read_ld_so_conf(image, &file, depth + 1, out);
                }
            }
        } else if !line.starts_with("hwcap") {
            // ldconfig takes directories separated by whitespace, colons or commas.
            out.extend(
                line.split([':', ',', ' ', '\t'])
                    .filter(|dir| dir.starts_with('/'))
                    .map(PathBuf::from),
            );
        }
    }
}

/// The directories of musl's `/etc/ld-musl-ARCH.path` files (colon- or line-separated).
fn read_musl_paths(image: &CheckedImage<'_>, out: &mut Vec<PathBuf>) {
    let Ok(names) = image.fs.read_dir(Path::new("/etc")) else {
        return;
    };
    for name in names {
        let name = name.to_string_lossy();
        if !(name.starts_with("ld-musl-") && name.ends_with(".path")) {
            continue;
        }
        if let Some(text) = image.read_text(&format!("/etc/{name}")) {
            out.extend(
                text.split([':', '\n'])
                    .map(str::trim)
                    .filter(|dir| dir.starts_with('/'))
                    .map(PathBuf::from),
            );
        }
    }
}

/// The paths in the image that `pattern` (absolute; Go `path.Match` wildcards in any
/// component) matches.
fn glob(fs: &dyn ImageFs, pattern: &Path) -> Vec<PathBuf> {
    let mut matches = vec![PathBuf::from("/")];
    for component in stagecraft_imagefs::clean_components(pattern) {
        let component = component.to_string_lossy().into_owned();
        if !stagecraft_gopath::has_wildcards(&component) {
            for path in &mut matches {
                path.push(&component);
            }
            continue;
        }
        matches = matches
            .iter()
            .flat_map(|dir| {
                let names = fs.read_dir(dir).unwrap_or_default();
                names
                    .into_iter()
                    .filter(|name| glob_match(&component, &name.to_string_lossy()))
                    .map(|name| dir.join(name))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    matches
}

/// The loader's default directories for objects of `machine`.
fn default_dirs(machine: u16) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib"]
        .iter()
        .map(PathBuf::from)
        .collect();
    for triplet in triplets(machine) {
        dirs.push(Path::new("/lib").join(triplet));
        dirs.push(Path::new("/usr/lib").join(triplet));
    }
    dirs
}

/// The ELF machine of a Go/OCI architecture name (`amd64`), and whether its programs are
/// 64-bit; `None` when unknown.
fn cpu_of(architecture: &str) -> Option<(u16, bool)> {
    Some(match architecture {
        "amd64" => (62, true),
        "arm64" => (183, true),
        "arm" => (40, false),
        "386" => (3, false),
        "ppc64le" | "ppc64" => (21, true),
        "s390x" => (22, true),
        "riscv64" => (243, true),
        "loong64" => (258, true),
        "mips64le" | "mips64" => (8, true),
        "mipsle" | "mips" => (8, false),
        _ => return None,
    })
}

/// The multiarch directory names (Debian's tuples) of an ELF machine.
fn triplets(machine: u16) -> &'static [&'static str] {
    match machine {
        62 => &["x86_64-linux-gnu"],
        183 => &["aarch64-linux-gnu"],
        40 => &["arm-linux-gnueabihf", "arm-linux-gnueabi"],
        3 => &["i386-linux-gnu"],
        21 => &["powerpc64le-linux-gnu"],
        22 => &["s390x-linux-gnu"],
        243 => &["riscv64-linux-gnu"],
        258 => &["loongarch64-linux-gnu"],
        8 => &["mips64el-linux-gnuabi64", "mipsel-linux-gnu"],
        _ => &[],
    }
}

/// What `$PLATFORM` stands for on an ELF machine (the kernel's `AT_PLATFORM`).
fn platform(machine: u16) -> &'static str {
    match machine {
        62 => "x86_64",
        183 => "aarch64",
        40 => "v7l",
        3 => "i686",
        21 => "ppc64le",
        22 => "s390x",
        243 => "riscv64",
        _ => "",
    }
}
