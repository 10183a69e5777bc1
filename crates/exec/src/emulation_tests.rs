//! Unit tests of ELF header reading, binfmt_misc parsing and matching, and the explanation of a
//! failed `execve`.

use super::*;

/// The start of an ELF executable (`ET_EXEC`): identification, `e_type`, `e_machine`, zeros.
fn elf(class: u8, data: u8, machine: u16) -> Vec<u8> {
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
    head
}

fn arm64_elf() -> Vec<u8> {
    elf(2, 1, 183)
}

/// qemu-aarch64 as `/proc/sys/fs/binfmt_misc/qemu-aarch64` shows it after Debian's
/// qemu-user-static registered it with `F`.
const QEMU_AARCH64: &str = "enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
";

/// qemu-arm, likewise.
const QEMU_ARM: &str = "enabled
interpreter /usr/libexec/qemu-binfmt/arm-binfmt-P
flags: POF
offset 0
magic 7f454c4601010100000000000000000002002800
mask ffffffffffffff00fffffffffffffffffeffffff
";

/// A fake binfmt_misc directory: `status`, `register`, and the given entries.
fn binfmt_dir(status: &str, entries: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("status"), format!("{status}\n")).unwrap();
    std::fs::write(dir.path().join("register"), "").unwrap();
    for (name, text) in entries {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn elf_headers_name_their_architecture() {
    let cases = [
        (elf(2, 1, 62), Arch::Amd64, "amd64", "x86_64"),
        (elf(1, 1, 3), Arch::I386, "386", "i686"),
        (arm64_elf(), Arch::Arm64, "arm64", "aarch64"),
        (elf(1, 1, 40), Arch::Arm, "arm", "armv7l"),
        (elf(2, 1, 243), Arch::Riscv64, "riscv64", "riscv64"),
        (elf(2, 1, 21), Arch::Ppc64le, "ppc64le", "ppc64le"),
        (elf(2, 2, 21), Arch::Ppc64, "ppc64", "ppc64"),
        (elf(2, 2, 22), Arch::S390x, "s390x", "s390x"),
        (elf(2, 1, 8), Arch::Mips64le, "mips64le", "mips64"),
        (elf(2, 2, 8), Arch::Mips64, "mips64", "mips64"),
        (elf(2, 1, 258), Arch::Loong64, "loong64", "loongarch64"),
    ];
    for (head, arch, name, uname) in cases {
        let header = ElfHeader::parse(&head).unwrap();
        assert_eq!(header.arch(), Some(arch), "{header:?}");
        assert_eq!((arch.name(), arch.to_string()), (name, name.to_owned()));
        assert_eq!(arch.uname_machine(), uname);
    }
    let s390x = ElfHeader::parse(&elf(2, 2, 22)).unwrap();
    assert_eq!(
        s390x,
        ElfHeader {
            class: ElfClass::Elf64,
            endianness: Endianness::Big,
            machine: 22
        }
    );
}

#[test]
fn odd_abis_and_non_elf_files_have_no_architecture() {
    // x32 (32-bit x86_64), big-endian arm64, 32-bit RISC-V, an unknown machine.
    for head in [
        elf(1, 1, 62),
        elf(2, 2, 183),
        elf(1, 1, 243),
        elf(2, 1, 0x1234),
    ] {
        assert_eq!(ElfHeader::parse(&head).unwrap().arch(), None);
    }
    assert_eq!(ElfHeader::parse(b"#!/bin/sh\necho hi\n"), None);
    assert_eq!(ElfHeader::parse(&arm64_elf()[..19]), None, "truncated");
    let mut bad_class = arm64_elf();
    bad_class[4] = 3;
    assert_eq!(ElfHeader::parse(&bad_class), None);
    let mut bad_order = arm64_elf();
    bad_order[5] = 0;
    assert_eq!(ElfHeader::parse(&bad_order), None);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn an_amd64_host_runs_amd64_and_386_natively() {
    assert_eq!(Arch::HOST, Some(Arch::Amd64));
    assert!(Arch::Amd64.runs_natively());
    assert!(Arch::I386.runs_natively());
    assert!(!Arch::Arm64.runs_natively());
    assert!(!Arch::Arm.runs_natively());
}

#[test]
#[cfg(target_arch = "aarch64")]
fn an_arm64_host_runs_only_arm64_natively() {
    assert_eq!(Arch::HOST, Some(Arch::Arm64));
    assert!(Arch::Arm64.runs_natively());
    assert!(!Arch::Arm.runs_natively());
    assert!(!Arch::Amd64.runs_natively());
}

#[test]
fn entries_parse_in_the_kernels_format() {
    let entry = BinfmtEntry::parse("qemu-aarch64", QEMU_AARCH64).unwrap();
    assert_eq!(entry.name, "qemu-aarch64");
    assert!(entry.enabled && entry.fix_binary());
    assert_eq!(entry.flags, "POF");
    assert_eq!(
        entry.interpreter,
        Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
    );
    match &entry.rule {
        BinfmtRule::Magic {
            offset,
            magic,
            mask,
        } => {
            assert_eq!(*offset, 0);
            assert_eq!(magic.len(), 20);
            assert_eq!(&magic[..4], b"\x7fELF");
            assert_eq!(mask.as_ref().unwrap()[16], 0xfe);
        }
        other => panic!("expected a magic rule, got {other:?}"),
    }

    // Disabled, no flags, no mask, an offset (the kernel omits `mask` when none was given).
    let plain = BinfmtEntry::parse(
        "odd",
        "disabled\ninterpreter /usr/bin/odd\nflags: \noffset 2\nmagic cafe\n",
    )
    .unwrap();
    assert!(!plain.enabled && !plain.fix_binary());
    assert_eq!(
        plain.rule,
        BinfmtRule::Magic {
            offset: 2,
            magic: vec![0xca, 0xfe],
            mask: None
        }
    );
    let ext = BinfmtEntry::parse(
        "wine",
        "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n",
    )
    .unwrap();
    assert_eq!(ext.rule, BinfmtRule::Extension("exe".into()));

    for bad in [
        "",
        "maybe\ninterpreter /x\nmagic 00\n",
        "enabled\nmagic 00\n",
        "enabled\ninterpreter /x\n",
        "enabled\ninterpreter /x\nmagic 0\n",
        "enabled\ninterpreter /x\nmagic zz\n",
        "enabled\ninterpreter /x\nmagic 0000\nmask ff\n",
        "enabled\ninterpreter /x\nmagic 00\nextension .exe\n",
        "enabled\ninterpreter /x\nmagic 00\nsomething new\n",
    ] {
        assert_eq!(BinfmtEntry::parse("bad", bad), None, "{bad:?}");
    }
}

#[test]
fn magic_and_mask_match_as_the_kernel_compares() {
    let aarch64 = BinfmtEntry::parse("qemu-aarch64", QEMU_AARCH64).unwrap();
    let arm = BinfmtEntry::parse("qemu-arm", QEMU_ARM).unwrap();
    let program = arm64_elf();
    assert!(aarch64.matches("/bin/sh", &program));
    assert!(!arm.matches("/bin/sh", &program));
    // The mask ignores the OS ABI byte and the low bit of e_type (ET_EXEC or ET_DYN).
    let mut pie = program.clone();
    pie[7] = 3;
    pie[16] = 3;
    assert!(aarch64.matches("/bin/sh", &pie));
    assert!(!aarch64.matches("/bin/sh", &elf(2, 1, 62)));
    assert!(arm.matches("/bin/sh", &elf(1, 1, 40)));
    // A short file is compared as if zero-padded, like the kernel's buffer.
    let zeros = BinfmtEntry::parse(
        "z",
        "enabled\ninterpreter /z\nflags: \noffset 4\nmagic 0000\n",
    )
    .unwrap();
    assert!(zeros.matches("/f", b"abc"));
    assert!(!zeros.matches("/f", b"abcdef"));

    let ext = BinfmtEntry::parse(
        "wine",
        "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n",
    )
    .unwrap();
    assert!(ext.matches("/app/setup.exe", b"MZ"));
    assert!(!ext.matches("/app/setup", b"MZ"));
    assert!(!ext.matches("/app/setup.exec", b"MZ"));
}

#[test]
fn registrations_are_read_from_a_binfmt_misc_directory() {
    let dir = binfmt_dir(
        "enabled",
        &[("qemu-arm", QEMU_ARM), ("qemu-aarch64", QEMU_AARCH64)],
    );
    let registrations = Registrations::read(dir.path()).unwrap();
    assert!(registrations.enabled);
    let names: Vec<&str> = registrations
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["qemu-aarch64", "qemu-arm"]);
    let program = arm64_elf();
    let matching: Vec<&str> = registrations
        .matching("/bin/sh", &program)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(matching, ["qemu-aarch64"]);
    assert_eq!(registrations.matching("/bin/sh", &elf(2, 2, 22)).count(), 0);

    let off = binfmt_dir("disabled", &[]);
    assert!(!Registrations::read(off.path()).unwrap().enabled);

    // Not mounted: an empty directory (or none at all) has nothing registered.
    let empty = tempfile::tempdir().unwrap();
    for root in [empty.path().to_owned(), empty.path().join("missing")] {
        assert_eq!(
            Registrations::read(&root).unwrap(),
            Registrations {
                enabled: true,
                entries: vec![]
            }
        );
    }

    let garbled = binfmt_dir("enabled", &[("junk", "what is this\n")]);
    let error = Registrations::read(garbled.path()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("junk"), "{error}");
}

/// [`explain_exec_failure`] for a program that is its own binary (no `#!`).
fn explain(program: &str, errno: Errno, head: &[u8], dir: &Path) -> Option<EmulationError> {
    let head = ProgramHead {
        path: program.to_owned(),
        bytes: head.to_vec(),
    };
    explain_exec_failure(program, errno, &head, dir)
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_foreign_program_without_an_interpreter_says_how_to_register_one() {
    let none = binfmt_dir("enabled", &[]);
    let error = explain("/bin/sh", Errno::NOEXEC, &arm64_elf(), none.path()).unwrap();
    assert_eq!(
        error,
        EmulationError::NoInterpreter {
            program: ForeignProgram {
                path: "/bin/sh".into(),
                script: None,
                arch: Arch::Arm64
            },
            host: Arch::Amd64
        }
    );
    assert_eq!(
        error.to_string(),
        "RUN needs to run /bin/sh, an arm64 (aarch64) program, but this machine (amd64) has no \
         binfmt_misc interpreter registered for arm64: install qemu-user-static and register it \
         (Debian: apt-get install qemu-user-static binfmt-support; or docker run --privileged \
         --rm tonistiigi/binfmt --install arm64), or build for linux/amd64"
    );

    // Registered for other architectures only: the same.
    let arm_only = binfmt_dir("enabled", &[("qemu-aarch64", QEMU_AARCH64)]);
    let s390x = explain("/x", Errno::NOEXEC, &elf(2, 2, 22), arm_only.path()).unwrap();
    assert!(
        s390x.to_string().starts_with(
            "RUN needs to run /x, an s390x (s390x) program, but this machine (amd64) has no \
             binfmt_misc interpreter registered for s390x"
        ),
        "{s390x}"
    );
    let riscv = explain("/x", Errno::NOEXEC, &elf(2, 1, 243), arm_only.path()).unwrap();
    assert!(
        riscv
            .to_string()
            .contains("/x, a riscv64 (riscv64) program"),
        "{riscv}"
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_script_names_the_interpreter_that_is_foreign() {
    let none = binfmt_dir("enabled", &[]);
    let head = ProgramHead {
        path: "/bin/sh".into(),
        bytes: arm64_elf(),
    };
    let error = explain_exec_failure("/build.sh", Errno::NOEXEC, &head, none.path()).unwrap();
    assert!(
        error.to_string().starts_with(
            "RUN needs to run /bin/sh (the interpreter of /build.sh), an arm64 (aarch64) \
             program, but"
        ),
        "{error}"
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_disabled_interpreter_says_how_to_enable_it() {
    let disabled = QEMU_AARCH64.replacen("enabled", "disabled", 1);
    let dir = binfmt_dir("enabled", &[("qemu-aarch64", &disabled)]);
    let error = explain("/bin/sh", Errno::NOEXEC, &arm64_elf(), dir.path()).unwrap();
    let switch = dir.path().join("qemu-aarch64");
    assert_eq!(
        error.to_string(),
        format!(
            "RUN needs to run /bin/sh, an arm64 (aarch64) program, but this machine (amd64) has \
             its binfmt_misc interpreter for arm64 disabled: enable it (echo 1 > {}), or build \
             for linux/amd64",
            switch.display()
        )
    );

    // binfmt_misc itself switched off: its status file is the switch.
    let off = binfmt_dir("disabled", &[("qemu-aarch64", QEMU_AARCH64)]);
    match explain("/bin/sh", Errno::NOEXEC, &arm64_elf(), off.path()) {
        Some(EmulationError::InterpreterDisabled { switch, .. }) => {
            assert_eq!(switch, off.path().join("status"))
        }
        other => panic!("expected a disabled interpreter, got {other:?}"),
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn an_interpreter_without_the_f_flag_is_missing_in_the_container() {
    let no_f = QEMU_AARCH64.replace("flags: POF", "flags: OC");
    let dir = binfmt_dir("enabled", &[("qemu-aarch64", &no_f)]);
    let error = explain("/bin/sh", Errno::NOENT, &arm64_elf(), dir.path()).unwrap();
    assert_eq!(
        error.to_string(),
        "RUN needs to run /bin/sh, an arm64 (aarch64) program, through the binfmt_misc \
         interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P (qemu-aarch64), but that handler \
         was registered without the F flag, so the kernel looks for the interpreter inside the \
         build container, which does not have it: register it again with the F flag (docker run \
         --privileged --rm tonistiigi/binfmt --install arm64 does), or build for linux/amd64"
    );
    // With F the interpreter cannot be missing: ENOENT is something else (the program's own
    // dynamic loader), and the runc-style message stands.
    let fixed = binfmt_dir("enabled", &[("qemu-aarch64", QEMU_AARCH64)]);
    assert_eq!(
        explain("/bin/sh", Errno::NOENT, &arm64_elf(), fixed.path()),
        None
    );
}

#[test]
#[cfg(target_arch = "x86_64")]
fn what_emulation_does_not_explain_keeps_the_exec_error() {
    let none = binfmt_dir("enabled", &[]);
    let fixed = binfmt_dir("enabled", &[("qemu-aarch64", QEMU_AARCH64)]);
    let garbled = binfmt_dir("enabled", &[("junk", "what is this\n")]);
    let cases: [(&[u8], Errno, &Path); 7] = [
        // Native programs (a broken one, or a kernel without 32-bit support).
        (&elf(2, 1, 62), Errno::NOEXEC, none.path()),
        (&elf(1, 1, 3), Errno::NOEXEC, none.path()),
        // Not ELF; an unknown machine.
        (b"plain text\n", Errno::NOEXEC, none.path()),
        (&elf(2, 1, 0x1234), Errno::NOEXEC, none.path()),
        // A handler that takes it is there: something else failed.
        (&arm64_elf(), Errno::NOEXEC, fixed.path()),
        // An errno emulation has nothing to do with; registrations that cannot be read.
        (&arm64_elf(), Errno::ACCESS, none.path()),
        (&arm64_elf(), Errno::NOEXEC, garbled.path()),
    ];
    for (head, errno, dir) in cases {
        assert_eq!(explain("/x", errno, head, dir), None, "{head:?} {errno:?}");
    }
}

#[test]
fn the_head_of_a_script_is_its_interpreters() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let mut binary = arm64_elf();
    binary.resize(4096, 0xaa);
    std::fs::write(path("sh"), &binary).unwrap();
    std::fs::write(path("inner"), format!("#! \t{} -e\necho\n", path("sh"))).unwrap();
    std::fs::write(path("outer"), format!("#!{}\n", path("inner"))).unwrap();

    let head = ProgramHead::read(&path("sh")).unwrap();
    assert_eq!(head.path, path("sh"));
    assert_eq!(head.bytes, binary[..HEAD_LEN]);
    let head = ProgramHead::read(&path("outer")).unwrap();
    assert_eq!((head.path, head.bytes.len()), (path("sh"), HEAD_LEN));

    // A loop, a missing file, a script naming nothing.
    std::fs::write(path("loop"), format!("#!{}\n", path("loop"))).unwrap();
    assert_eq!(ProgramHead::read(&path("loop")), None);
    assert_eq!(ProgramHead::read(&path("missing")), None);
    std::fs::write(path("empty"), "#!   \n").unwrap();
    let head = ProgramHead::read(&path("empty")).unwrap();
    assert_eq!(head.path, path("empty"));
}

#[test]
fn shebang_lines_are_read_like_the_kernel() {
    assert_eq!(shebang_interpreter(b"#!/bin/sh\n"), Some("/bin/sh".into()));
    assert_eq!(
        shebang_interpreter(b"#! /usr/bin/env python3\n"),
        Some("/usr/bin/env".into())
    );
    assert_eq!(shebang_interpreter(b"#!\t/bin/sh"), Some("/bin/sh".into()));
    assert_eq!(shebang_interpreter(b"#!\n/bin/sh"), None);
    assert_eq!(shebang_interpreter(b"echo"), None);
}
