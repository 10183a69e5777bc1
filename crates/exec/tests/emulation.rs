//! Real runs of programs of other architectures: an arm64 busybox under the qemu-user-static
//! interpreter that `shared/fixtures/setup-binfmt` registers (`scripts/setup.sh` runs it),
//! and a program of an architecture nobody registered, which must fail with the fix and run
//! nothing. They need root (namespaces, overlayfs); otherwise, or without the fixtures or the
//! registration, they are skipped with a note.
// Tests print what they skipped, for the reader of the test log.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use stagecraft_exec::emulation::{
    Arch, BINFMT_MISC_DIR, ElfHeader, EmulationError, ForeignProgram, Registrations,
};
use stagecraft_exec::{ExecError, ExecSpec, Executor, ExitStatus, HELPER_ARG, HelperCommand};
use stagecraft_exec::{Rootfs, Stream};

/// The fixture that makes the busybox image: in `shared/` beside the repository, as
/// `scripts/setup.sh` finds it (`STAGECRAFT_SHARED_DIR` overrides).
fn fixture() -> PathBuf {
    let shared = std::env::var_os("STAGECRAFT_SHARED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    shared.join("fixtures/make-busybox-image")
}

/// Skips the calling test (returns) with the reason printed.
macro_rules! skip {
    ($($reason:tt)*) => {{
        eprintln!("skipped: {}", format!($($reason)*));
        return;
    }};
}

fn executor() -> Executor {
    Executor::new(HelperCommand::new(
        env!("CARGO_BIN_EXE_stagecraft-exec-helper"),
        [HELPER_ARG],
    ))
}

fn scratch_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The start of an ELF executable for `arch` (identification, `e_type`, `e_machine`), as the
/// kernel and binfmt_misc see it; the rest of the 64-byte header is zeros.
fn elf_header(arch: Arch) -> Vec<u8> {
    // (class, byte order, e_machine)
    let (class, data, machine): (u8, u8, u16) = match arch {
        Arch::Amd64 => (2, 1, 62),
        Arch::I386 => (1, 1, 3),
        Arch::Arm64 => (2, 1, 183),
        Arch::Arm => (1, 1, 40),
        Arch::Riscv64 => (2, 1, 243),
        Arch::Ppc64le => (2, 1, 21),
        Arch::Ppc64 => (2, 2, 21),
        Arch::S390x => (2, 2, 22),
        Arch::Mips64le => (2, 1, 8),
        Arch::Mips64 => (2, 2, 8),
        Arch::Loong64 => (2, 1, 258),
    };
    let mut head = vec![0u8; 64];
    head[..4].copy_from_slice(b"\x7fELF");
    head[4] = class;
    head[5] = data;
    head[6] = 1;
    let (e_type, e_machine) = if data == 2 {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    } else {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    };
    head[16..18].copy_from_slice(&e_type);
    head[18..20].copy_from_slice(&e_machine);
    assert_eq!(ElfHeader::parse(&head).and_then(|h| h.arch()), Some(arch));
    head
}

/// The host's registrations.
fn registrations() -> Registrations {
    Registrations::read(Path::new(BINFMT_MISC_DIR)).unwrap()
}

/// A fresh upper and work directory.
struct Layer {
    dir: tempfile::TempDir,
}

impl Layer {
    fn new() -> Self {
        let dir = tempfile::tempdir_in(scratch_root()).unwrap();
        std::fs::create_dir(dir.path().join("upper")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Layer { dir }
    }

    fn rootfs(&self, lower_dirs: Vec<PathBuf>) -> Rootfs {
        Rootfs::Overlay {
            lower_dirs,
            upper_dir: self.dir.path().join("upper"),
            work_dir: self.dir.path().join("work"),
        }
    }

    /// The names in the upper directory (the step's changes), sorted.
    fn upper_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("upper"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Runs `spec`; returns the result, stdout and stderr.
fn run(spec: &ExecSpec) -> (Result<ExitStatus, ExecError>, String, String) {
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let result = executor().run(spec, &mut |stream, data| {
        let text = String::from_utf8_lossy(data);
        match stream {
            Stream::Stdout => stdout.push_str(&text),
            Stream::Stderr => stderr.push_str(&text),
        }
    });
    (result, stdout, stderr)
}

/// The arm64 busybox image's layer from the fixture (`--platform linux/arm64`: Debian's
/// busybox-static for arm64), extracted once and reused across runs.
fn arm64_busybox() -> PathBuf {
    let dir = scratch_root().join("busybox-arm64-rootfs");
    let complete = scratch_root().join("busybox-arm64-rootfs.complete");
    if complete.exists() {
        return dir;
    }
    let staging = tempfile::tempdir_in(scratch_root()).unwrap();
    let layout = staging.path().join("layout");
    let rootfs = staging.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    run_ok(
        Command::new(fixture())
            .arg(&layout)
            .args(["latest", "--platform", "linux/arm64"]),
    );
    let json = |path: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let blob = |digest: &serde_json::Value| {
        let digest = digest.as_str().unwrap().trim_start_matches("sha256:");
        layout.join("blobs/sha256").join(digest)
    };
    let index = json(layout.join("index.json"));
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(blob(&manifest["layers"][0]["digest"]))
            .arg("-C")
            .arg(&rootfs),
    );
    // Another test process may have won the race; either copy is complete.
    let _ = std::fs::rename(&rootfs, &dir);
    std::fs::write(complete, "").unwrap();
    dir
}

fn run_ok(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_arm64_busybox_runs_under_the_registered_emulator() {
    if !rustix::process::geteuid().is_root() {
        skip!("needs root");
    }
    if !Arch::Arm64.runs_natively() {
        let registrations = registrations();
        let head = elf_header(Arch::Arm64);
        let usable = registrations.enabled
            && registrations
                .matching("/bin/busybox", &head)
                .any(|e| e.enabled && e.fix_binary());
        if !usable {
            skip!(
                "no enabled binfmt_misc interpreter with the F flag for arm64 under \
                 {BINFMT_MISC_DIR} (run shared/fixtures/setup-binfmt, as scripts/setup.sh does)"
            );
        }
    }
    if !fixture().exists() {
        skip!("{} is missing", fixture().display());
    }
    let busybox = arm64_busybox();
    let binary = std::fs::read(busybox.join("bin/busybox")).unwrap();
    assert_eq!(
        ElfHeader::parse(&binary).and_then(|h| h.arch()),
        Some(Arch::Arm64)
    );

    let layer = Layer::new();
    let spec = ExecSpec::new(
        layer.rootfs(vec![busybox]),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "uname -m; echo built > /out".into(),
        ],
    );
    let (result, stdout, stderr) = run(&spec);
    assert_eq!(result.unwrap(), ExitStatus::Code(0), "stderr: {stderr}");
    assert_eq!(stdout, "aarch64\n");
    assert_eq!(layer.upper_entries(), ["out"]);
}

#[test]
fn a_program_nobody_can_run_fails_with_the_fix_and_runs_nothing() {
    if !rustix::process::geteuid().is_root() {
        skip!("needs root");
    }
    let Some(host) = Arch::HOST else {
        skip!("this machine's architecture is not one the emulation module names");
    };
    // An architecture this machine neither runs nor has any handler for, enabled or not.
    let registrations = registrations();
    let candidates = [
        Arch::S390x,
        Arch::Riscv64,
        Arch::Ppc64le,
        Arch::Mips64le,
        Arch::Loong64,
    ];
    let Some(arch) = candidates.into_iter().find(|arch| {
        !arch.runs_natively()
            && registrations
                .matching("/usr/local/bin/foreign", &elf_header(*arch))
                .next()
                .is_none()
    }) else {
        skip!("every candidate architecture has a binfmt_misc handler here");
    };

    // The foreign program, and a script it interprets. Were either handed to a shell (execvp's
    // fallback for files the kernel refuses), the lines after the header would leave a file.
    let image = tempfile::tempdir_in(scratch_root()).unwrap();
    let bin = image.path().join("usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut program = elf_header(arch);
    program.extend_from_slice(b"\ntouch /ran; echo ran\n");
    std::fs::write(bin.join("foreign"), &program).unwrap();
    std::fs::write(
        bin.join("build.sh"),
        "#!/usr/local/bin/foreign\ntouch /ran\n",
    )
    .unwrap();
    for name in ["foreign", "build.sh"] {
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    for (command, script) in [
        ("foreign", None),
        ("build.sh", Some("/usr/local/bin/build.sh")),
    ] {
        let layer = Layer::new();
        let spec = ExecSpec::new(
            layer.rootfs(vec![image.path().to_owned()]),
            vec![command.into(), "--version".into()],
        );
        let (result, stdout, stderr) = run(&spec);
        let error = match result {
            Err(ExecError::Emulation(error)) => error,
            other => panic!("expected an emulation error, got {other:?}"),
        };
        assert_eq!(
            error,
            EmulationError::NoInterpreter {
                program: ForeignProgram {
                    path: "/usr/local/bin/foreign".into(),
                    script: script.map(str::to_owned),
                    arch,
                },
                host,
            }
        );
        let interpreter_of = script
            .map(|s| format!(" (the interpreter of {s})"))
            .unwrap_or_default();
        let article = if arch == Arch::S390x { "an" } else { "a" };
        assert_eq!(
            ExecError::Emulation(error).to_string(),
            format!(
                "RUN needs to run /usr/local/bin/foreign{interpreter_of}, {article} {arch} ({}) \
                 program, but this machine ({host}) has no binfmt_misc interpreter registered \
                 for {arch}: install qemu-user-static and register it (Debian: apt-get install \
                 qemu-user-static binfmt-support; or docker run --privileged --rm \
                 tonistiigi/binfmt --install {arch}), or build for linux/{host}",
                arch.uname_machine()
            )
        );
        // Nothing ran: no output, and the layer holds no change.
        assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""));
        assert_eq!(layer.upper_entries(), Vec::<String>::new());
    }
}
