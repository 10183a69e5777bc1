//! Programs of other architectures: what an ELF header says, which interpreters the host's
//! binfmt_misc has registered, and why a `RUN` of a foreign program could not start.
//!
//! A multi-platform build runs the `RUN` steps of a foreign platform under emulation, as BuildKit
//! does: the kernel's binfmt_misc hands every ELF file whose first bytes match a registered
//! magic and mask to an interpreter, usually a static `qemu-<arch>` from qemu-user-static. The
//! executor itself changes nothing for that: `execve` of an arm64 `/bin/sh` on an amd64 host
//! just works once the interpreter is registered. It only has to work *inside the container*,
//! which is what binfmt_misc's `F` ("fix binary") flag is for: the kernel opens the interpreter
//! when it is registered, instead of looking its path up in the (container's) root at every
//! `execve`.
//!
//! When no interpreter is registered, the kernel refuses the program (`execve` fails with
//! `ENOEXEC`, "exec format error") and nothing runs: the executor calls `execve` directly and has
//! no fallback that would hand the file to a shell, as `execvp` does. The bare errno says
//! nothing about the cause, so the step's init then reads the first bytes of the program it
//! tried (see [`crate::ExecError::Emulation`]), and the caller's side, which alone sees the host's
//! binfmt_misc (a container has no `/proc/sys/fs/binfmt_misc`), turns that into an
//! [`EmulationError`] naming the program, its architecture and the fix. The native path pays
//! nothing for this: it only happens once `execve` has failed.

use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use serde::{Deserialize, Serialize};

/// Where the kernel's binfmt_misc filesystem is mounted on the host.
pub const BINFMT_MISC_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// How many bytes of a program the kernel reads to pick its loader (`BINPRM_BUF_SIZE`): ELF and
/// `#!` detection and every binfmt_misc magic look at these bytes only.
const HEAD_LEN: usize = 256;

/// How many `#!` scripts deep the kernel follows interpreters before giving up with `ELOOP`
/// (the script itself, then four more levels; `exec_binprm`'s depth limit).
const MAX_SCRIPT_DEPTH: usize = 5;

/// A CPU architecture, named as Go, OCI platforms and Docker name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Arch {
    /// x86-64 (`x86_64`).
    Amd64,
    /// 32-bit x86 (`i686`).
    I386,
    /// 64-bit ARM (`aarch64`).
    Arm64,
    /// 32-bit ARM, little-endian (`armv7l`).
    Arm,
    /// 64-bit RISC-V (`riscv64`).
    Riscv64,
    /// 64-bit POWER, little-endian (`ppc64le`).
    Ppc64le,
    /// 64-bit POWER, big-endian (`ppc64`).
    Ppc64,
    /// IBM Z (`s390x`).
    S390x,
    /// 64-bit MIPS, little-endian (`mips64`).
    Mips64le,
    /// 64-bit MIPS, big-endian (`mips64`).
    Mips64,
    /// 64-bit LoongArch (`loongarch64`).
    Loong64,
}

impl Arch {
    /// The architecture this program was built for: the machine's, as far as running programs
    /// natively goes. `None` on an architecture outside this list.
    pub const HOST: Option<Arch> = if cfg!(target_arch = "x86_64") {
        Some(Arch::Amd64)
    } else if cfg!(target_arch = "x86") {
        Some(Arch::I386)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::Arm64)
    } else if cfg!(target_arch = "arm") {
        Some(Arch::Arm)
    } else if cfg!(target_arch = "riscv64") {
        Some(Arch::Riscv64)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        Some(Arch::Ppc64le)
    } else if cfg!(target_arch = "powerpc64") {
        Some(Arch::Ppc64)
    } else if cfg!(target_arch = "s390x") {
        Some(Arch::S390x)
    } else if cfg!(all(target_arch = "mips64", target_endian = "little")) {
        Some(Arch::Mips64le)
    } else if cfg!(target_arch = "mips64") {
        Some(Arch::Mips64)
    } else if cfg!(target_arch = "loongarch64") {
        Some(Arch::Loong64)
    } else {
        None
    };

    /// The Go/OCI name: `amd64`, `386`, `arm64`, `arm`, `riscv64`, `ppc64le`, `ppc64`, `s390x`,
    /// `mips64le`, `mips64`, `loong64`. Also what `--platform linux/NAME` and
    /// `tonistiigi/binfmt --install NAME` take.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::I386 => "386",
            Arch::Arm64 => "arm64",
            Arch::Arm => "arm",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64le",
            Arch::Ppc64 => "ppc64",
            Arch::S390x => "s390x",
            Arch::Mips64le => "mips64le",
            Arch::Mips64 => "mips64",
            Arch::Loong64 => "loong64",
        }
    }

    /// What `uname -m` prints on such a machine (or under its emulator), the kernel's spelling:
    /// `x86_64`, `aarch64`, …. Where the kernel's answer depends on the CPU model it is the
    /// usual one: `i686` for 386, `armv7l` for arm (an ARMv6 or ARMv8 CPU says `armv6l` or
    /// `armv8l`); the kernel says `mips64` for both MIPS byte orders.
    pub fn uname_machine(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::I386 => "i686",
            Arch::Arm64 => "aarch64",
            Arch::Arm => "armv7l",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64le",
            Arch::Ppc64 => "ppc64",
            Arch::S390x => "s390x",
            Arch::Mips64le | Arch::Mips64 => "mips64",
            Arch::Loong64 => "loongarch64",
        }
    }

    /// Whether this machine's kernel runs programs of this architecture without an emulator:
    /// its own architecture ([`Arch::HOST`]), and 386 on amd64.
    ///
    /// Deliberately simple: amd64 kernels may be built without 32-bit support, and arm64 CPUs
    /// may run 32-bit arm too (many do not); neither is guessed at here.
    pub fn runs_natively(self) -> bool {
        match Arch::HOST {
            Some(host) => self == host || (host == Arch::Amd64 && self == Arch::I386),
            None => false,
        }
    }

    /// The English article before the name as it is read out ("an arm64", "a riscv64").
    fn article(self) -> &'static str {
        match self {
            Arch::Amd64 | Arch::Arm64 | Arch::Arm | Arch::S390x => "an",
            _ => "a",
        }
    }
}

impl fmt::Display for Arch {
    /// The Go/OCI name ([`Arch::name`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An ELF file's word size (`e_ident[EI_CLASS]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfClass {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

/// An ELF file's byte order (`e_ident[EI_DATA]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endianness {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

/// What the start of an ELF file says about the machine it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfHeader {
    /// 32 or 64 bits.
    pub class: ElfClass,
    /// Byte order.
    pub endianness: Endianness,
    /// `e_machine` (`EM_X86_64` is 62, `EM_AARCH64` 183, …), in the file's byte order.
    pub machine: u16,
}

impl ElfHeader {
    /// Reads the header from the first bytes of a file; `None` when they are not an ELF
    /// identification (magic, a known class and byte order) followed by `e_machine`.
    pub fn parse(head: &[u8]) -> Option<ElfHeader> {
        let ident = head.get(..20)?;
        if ident[..4] != *b"\x7fELF" {
            return None;
        }
        let class = match ident[4] {
            1 => ElfClass::Elf32,
            2 => ElfClass::Elf64,
            _ => return None,
        };
        // e_type (2 bytes at 16) then e_machine (2 bytes at 18), for both classes.
        let raw = [ident[18], ident[19]];
        let (endianness, machine) = match ident[5] {
            1 => (Endianness::Little, u16::from_le_bytes(raw)),
            2 => (Endianness::Big, u16::from_be_bytes(raw)),
            _ => return None,
        };
        Some(ElfHeader {
            class,
            endianness,
            machine,
        })
    }

    /// The architecture of a program with this header; `None` for other machines and for the
    /// odd ABIs of known ones (x32, big-endian arm64, 32-bit RISC-V, …), which no platform names.
    ///
    /// 32-bit ARM needs no `e_flags`: every ARM Linux ELF of today is EABI, and the platform's
    /// variant (v6, v7) is not in the header at all.
    pub fn arch(&self) -> Option<Arch> {
        use ElfClass::{Elf32, Elf64};
        use Endianness::{Big, Little};
        const EM_386: u16 = 3;
        const EM_MIPS: u16 = 8;
        const EM_PPC64: u16 = 21;
        const EM_S390: u16 = 22;
        const EM_ARM: u16 = 40;
        const EM_X86_64: u16 = 62;
        const EM_AARCH64: u16 = 183;
        const EM_RISCV: u16 = 243;
        const EM_LOONGARCH: u16 = 258;
        Some(match (self.class, self.endianness, self.machine) {
            (Elf64, Little, EM_X86_64) => Arch::Amd64,
            (Elf32, Little, EM_386) => Arch::I386,
            (Elf64, Little, EM_AARCH64) => Arch::Arm64,
            (Elf32, Little, EM_ARM) => Arch::Arm,
            (Elf64, Little, EM_RISCV) => Arch::Riscv64,
            (Elf64, Little, EM_PPC64) => Arch::Ppc64le,
            (Elf64, Big, EM_PPC64) => Arch::Ppc64,
            (Elf64, Big, EM_S390) => Arch::S390x,
            (Elf64, Little, EM_MIPS) => Arch::Mips64le,
            (Elf64, Big, EM_MIPS) => Arch::Mips64,
            (Elf64, Little, EM_LOONGARCH) => Arch::Loong64,
            _ => return None,
        })
    }
}

/// The interpreters registered with binfmt_misc, as one directory of its filesystem lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registrations {
    /// binfmt_misc as a whole is on (its `status` file says `enabled`). When it is off the kernel
    /// uses no entry at all.
    pub enabled: bool,
    /// The registered handlers, sorted by name.
    pub entries: Vec<BinfmtEntry>,
}

impl Registrations {
    /// Reads the registrations under `root`, the directory binfmt_misc is mounted on
    /// ([`BINFMT_MISC_DIR`] on the host).
    ///
    /// A directory without the `status` file (binfmt_misc not mounted there) has no
    /// registrations. An entry that is not in the kernel's format is an
    /// [`io::ErrorKind::InvalidData`] error: guessing around it could claim a handler is missing
    /// when it is not.
    pub fn read(root: &Path) -> io::Result<Registrations> {
        let status = match std::fs::read_to_string(root.join("status")) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Registrations {
                    enabled: true,
                    entries: Vec::new(),
                });
            }
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for dirent in std::fs::read_dir(root)? {
            let dirent = dirent?;
            let Some(name) = dirent.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // The two control files; every other file is a handler.
            if name == "status" || name == "register" {
                continue;
            }
            let text = std::fs::read_to_string(dirent.path())?;
            let entry = BinfmtEntry::parse(&name, &text).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a binfmt_misc entry: {text:?}",
                        dirent.path().display()
                    ),
                )
            })?;
            entries.push(entry);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Registrations {
            enabled: status.trim_end() == "enabled",
            entries,
        })
    }

    /// The handlers whose rule matches the program at `path` starting with `head`, enabled or
    /// not ([`BinfmtEntry::matches`]). When several enabled ones match, the kernel uses the one
    /// registered last, which the directory does not tell.
    pub fn matching<'a>(
        &'a self,
        path: &'a str,
        head: &'a [u8],
    ) -> impl Iterator<Item = &'a BinfmtEntry> + 'a {
        self.entries.iter().filter(move |e| e.matches(path, head))
    }
}

/// One binfmt_misc handler, as its file under the binfmt_misc directory shows it:
///
/// ```text
/// enabled
/// interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
/// flags: POF
/// offset 0
/// magic 7f454c460201010000000000000000000200b700
/// mask ffffffffffffff00fffffffffffffffffeffffff
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinfmtEntry {
    /// The handler's name, its file name (`qemu-aarch64`).
    pub name: String,
    /// Whether the kernel uses it.
    pub enabled: bool,
    /// The interpreter's path, as registered.
    pub interpreter: PathBuf,
    /// The flag letters (`P`, `O`, `C`, `F`), as the kernel lists them.
    pub flags: String,
    /// What files it takes.
    pub rule: BinfmtRule,
}

/// How a [`BinfmtEntry`] recognises its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinfmtRule {
    /// Bytes at an offset of the file, compared under a mask (type `M`).
    Magic {
        /// Where in the file the bytes start.
        offset: usize,
        /// The bytes.
        magic: Vec<u8>,
        /// Which bits count; `None` means all.
        mask: Option<Vec<u8>>,
    },
    /// The file name's extension, without the dot (type `E`).
    Extension(String),
}

impl BinfmtEntry {
    /// Parses the text of the handler's file (the kernel's `entry_status` format); `None` when it
    /// is not in that format.
    pub fn parse(name: &str, text: &str) -> Option<BinfmtEntry> {
        let mut lines = text.lines();
        let enabled = match lines.next()? {
            "enabled" => true,
            "disabled" => false,
            _ => return None,
        };
        let mut interpreter = None;
        let mut flags = String::new();
        let mut offset = 0;
        let mut magic = None;
        let mut mask = None;
        let mut extension = None;
        for line in lines {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "interpreter" => interpreter = Some(PathBuf::from(value)),
                "flags:" => flags = value.to_owned(),
                "offset" => offset = value.parse().ok()?,
                "magic" => magic = Some(hex(value)?),
                "mask" => mask = Some(hex(value)?),
                "extension" => extension = Some(value.strip_prefix('.')?.to_owned()),
                _ => return None,
            }
        }
        let rule = match (magic, extension) {
            (Some(magic), None) => {
                if mask
                    .as_ref()
                    .is_some_and(|m: &Vec<u8>| m.len() != magic.len())
                {
                    return None;
                }
                BinfmtRule::Magic {
                    offset,
                    magic,
                    mask,
                }
            }
            (None, Some(extension)) => BinfmtRule::Extension(extension),
            _ => return None,
        };
        Some(BinfmtEntry {
            name: name.to_owned(),
            enabled,
            interpreter: interpreter?,
            flags,
            rule,
        })
    }

    /// The `F` flag: the kernel opened the interpreter when it was registered, so it runs in any
    /// root and mount namespace. Without it the interpreter's path is looked up at every
    /// `execve`, inside the build's container, where it normally does not exist.
    pub fn fix_binary(&self) -> bool {
        self.flags.contains('F')
    }

    /// Whether this handler's rule takes the program at `path` (only an extension rule looks at
    /// it) whose file starts with `head`, compared as the kernel's `check_file` does, enabled or
    /// not. Bytes past the end of `head` count as zeros, as in the kernel's buffer for a short
    /// file.
    pub fn matches(&self, path: &str, head: &[u8]) -> bool {
        match &self.rule {
            BinfmtRule::Magic {
                offset,
                magic,
                mask,
            } => magic.iter().enumerate().all(|(i, want)| {
                let have = head.get(offset + i).copied().unwrap_or(0);
                let bits = mask.as_ref().map_or(0xff, |m| m[i]);
                (have ^ want) & bits == 0
            }),
            // The kernel takes everything after the last dot of the whole path.
            BinfmtRule::Extension(extension) => path
                .rsplit_once('.')
                .is_some_and(|(_, ext)| ext == extension),
        }
    }
}

/// Decodes the kernel's lower-case hex dump of a magic or mask.
fn hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A program of an architecture this machine does not run natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignProgram {
    /// Its path inside the container.
    pub path: String,
    /// When the step's program is a `#!` script, the script's path: [`path`](Self::path) is
    /// then the interpreter its `#!` line names (followed to the binary at the end).
    pub script: Option<String>,
    /// Its architecture.
    pub arch: Arch,
}

impl fmt::Display for ForeignProgram {
    /// `/bin/sh, an arm64 (aarch64) program`, with `(the interpreter of /x.sh)` after the path
    /// when the program is a script's interpreter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(script) = &self.script {
            write!(f, " (the interpreter of {script})")?;
        }
        write!(
            f,
            ", {} {} ({}) program",
            self.arch.article(),
            self.arch,
            self.arch.uname_machine()
        )
    }
}

/// Why a `RUN` step's foreign program could not start: the kernel refused it, and nothing ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulationError {
    /// No binfmt_misc handler takes the program: the kernel found no way to run it (`ENOEXEC`).
    #[error(
        "RUN needs to run {program}, but this machine ({host}) has no binfmt_misc interpreter \
         registered for {arch}: install qemu-user-static and register it (Debian: apt-get \
         install qemu-user-static binfmt-support; or docker run --privileged --rm \
         tonistiigi/binfmt --install {arch}), or build for linux/{host}",
        arch = program.arch
    )]
    NoInterpreter {
        /// The program.
        program: ForeignProgram,
        /// This machine's architecture.
        host: Arch,
    },

    /// A handler takes the program, but it is switched off (or binfmt_misc as a whole is), so the
    /// kernel ignores it (`ENOEXEC`).
    #[error(
        "RUN needs to run {program}, but this machine ({host}) has its binfmt_misc interpreter \
         for {arch} disabled: enable it (echo 1 > {switch}), or build for linux/{host}",
        arch = program.arch,
        switch = switch.display()
    )]
    InterpreterDisabled {
        /// The program.
        program: ForeignProgram,
        /// This machine's architecture.
        host: Arch,
        /// The file that turns it on: the handler's own, or binfmt_misc's `status` when it is
        /// binfmt_misc as a whole that is off.
        switch: PathBuf,
    },

    /// The handler that takes the program was registered without the `F` flag, so the kernel
    /// looked its interpreter up inside the container, where it is missing (`ENOENT`).
    #[error(
        "RUN needs to run {program}, through the binfmt_misc interpreter {interpreter} \
         ({handler}), but that handler was registered without the F flag, so the kernel looks \
         for the interpreter inside the build container, which does not have it: register it \
         again with the F flag (docker run --privileged --rm tonistiigi/binfmt --install \
         {arch} does), or build for linux/{host}",
        arch = program.arch,
        interpreter = interpreter.display()
    )]
    InterpreterNotFixed {
        /// The program.
        program: ForeignProgram,
        /// This machine's architecture.
        host: Arch,
        /// The handler's name.
        handler: String,
        /// Its interpreter, a host path.
        interpreter: PathBuf,
    },
}

/// The first bytes of the binary a program runs, as the step's init reads them inside the
/// container after `execve` failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProgramHead {
    /// The binary's path: the program's own, or the interpreter its `#!` line names.
    pub(crate) path: String,
    /// Up to [`HEAD_LEN`] bytes from its start.
    pub(crate) bytes: Vec<u8>,
}

impl ProgramHead {
    /// Reads the start of `program`, and for a `#!` script that of its interpreter instead (to the
    /// kernel's depth), resolving paths in the caller's root and working directory as `execve`
    /// does. `None` when a file cannot be read (execute-only, gone) or the scripts nest too deep.
    pub(crate) fn read(program: &str) -> Option<ProgramHead> {
        let mut path = program.to_owned();
        for _ in 0..MAX_SCRIPT_DEPTH {
            let mut bytes = Vec::with_capacity(HEAD_LEN);
            std::fs::File::open(&path)
                .ok()?
                .take(HEAD_LEN as u64)
                .read_to_end(&mut bytes)
                .ok()?;
            match shebang_interpreter(&bytes) {
                Some(interpreter) => path = interpreter,
                None => return Some(ProgramHead { path, bytes }),
            }
        }
        None
    }
}

/// The interpreter a `#!` line names, as the kernel's `binfmt_script` reads it: after `#!` and
/// blanks, up to the next blank or the end of the line (within the first [`HEAD_LEN`] bytes).
fn shebang_interpreter(head: &[u8]) -> Option<String> {
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b))?;
    let rest = &line[start..];
    let end = rest.iter().position(blank).unwrap_or(rest.len());
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Explains a failed `execve` of `program` (the path after the `PATH` lookup) with the start of
/// the binary it runs and the host's binfmt_misc registrations under `binfmt_misc`, or `None`
/// when emulation does not explain it: the binary is not a foreign ELF, or a handler that should
/// run it exists and something else failed. The runc-style message stands then.
pub(crate) fn explain_exec_failure(
    program: &str,
    errno: Errno,
    head: &ProgramHead,
    binfmt_misc: &Path,
) -> Option<EmulationError> {
    let host = Arch::HOST?;
    let arch = ElfHeader::parse(&head.bytes)?.arch()?;
    if arch.runs_natively() {
        return None;
    }
    let foreign = ForeignProgram {
        path: head.path.clone(),
        script: (head.path != program).then(|| program.to_owned()),
        arch,
    };
    let registrations = Registrations::read(binfmt_misc).ok()?;
    let handlers: Vec<&BinfmtEntry> = registrations.matching(&head.path, &head.bytes).collect();
    let usable: Vec<&BinfmtEntry> = handlers
        .iter()
        .copied()
        .filter(|e| e.enabled && registrations.enabled)
        .collect();
    if errno == Errno::NOEXEC && usable.is_empty() {
        return Some(match handlers.first() {
            None => EmulationError::NoInterpreter {
                program: foreign,
                host,
            },
            Some(handler) => EmulationError::InterpreterDisabled {
                program: foreign,
                host,
                switch: if registrations.enabled {
                    binfmt_misc.join(&handler.name)
                } else {
                    binfmt_misc.join("status")
                },
            },
        });
    }
    // ENOENT for a binary that exists: the kernel could not open the interpreter. With `F` it
    // holds the interpreter open, so only handlers without it can fail this way.
    if errno == Errno::NOENT
        && let Some(handler) = usable.first()
        && usable.iter().all(|e| !e.fix_binary())
    {
        return Some(EmulationError::InterpreterNotFixed {
            program: foreign,
            host,
            handler: handler.name.clone(),
            interpreter: handler.interpreter.clone(),
        });
    }
    None
}

#[cfg(test)]
#[path = "emulation_tests.rs"]
mod tests;
