//! The profile's table and its compiled filters, checked by running the BPF programs in a small
//! interpreter of the instructions seccompiler emits, with the kernel's rule for combining several
//! filters.

use super::*;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// RUN's capability set (containerd's default), which the profile is resolved against.
fn run_caps() -> CapabilitySet {
    crate::process::DEFAULT_CAPABILITIES
}

fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => AUDIT_ARCH_X86_64,
        Arch::Aarch64 => AUDIT_ARCH_AARCH64,
    }
}

/// `struct seccomp_data` as the kernel lays it out: nr, arch, instruction pointer, six arguments.
fn seccomp_data(nr: i64, arch: u32, args: &[u64]) -> [u8; 64] {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as i32).to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
    }
    data
}

/// Runs one classic BPF program over `data`; panics on an instruction seccompiler does not emit.
fn run_program(program: &BpfProgram, data: &[u8; 64]) -> u32 {
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = &program[pc];
        pc += 1;
        match i.code {
            // BPF_LD | BPF_W | BPF_ABS
            0x20 => {
                let at = i.k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            // BPF_ALU | BPF_AND | BPF_K
            0x54 => acc &= i.k,
            // BPF_JMP | BPF_JA
            0x05 => pc += i.k as usize,
            // BPF_JMP | BPF_JEQ/JGT/JGE | BPF_K
            0x15 | 0x25 | 0x35 => {
                let taken = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            // BPF_RET | BPF_K
            0x06 => return i.k,
            code => panic!("unexpected BPF instruction {code:#x}"),
        }
    }
}

/// What the kernel returns for a call with several filters: each filter runs, newest first, and
/// a result replaces the one so far only if its action takes strictly higher precedence (a lower
/// value as a signed number), so among equals the newest filter's data wins.
fn evaluate(filters: &Filters, nr: i64, arch: u32, args: &[u64]) -> u32 {
    let data = seccomp_data(nr, arch, args);
    let mut result = RET_ALLOW;
    for program in filters.programs().iter().rev() {
        let current = run_program(program, &data);
        if ((current & 0xffff_0000) as i32) < ((result & 0xffff_0000) as i32) {
            result = current;
        }
    }
    result
}

struct Case {
    arch: Arch,
    filters: Filters,
}

impl Case {
    fn new(arch: Arch, caps: CapabilitySet) -> Case {
        Case {
            arch,
            filters: Filters::compile(arch, caps, (6, 1)).unwrap(),
        }
    }

    fn call(&self, name: &str, args: &[u64]) -> u32 {
        let nr = self
            .arch
            .number(name)
            .unwrap_or_else(|| panic!("{name} has no number on {:?}", self.arch));
        evaluate(&self.filters, nr, audit_arch(self.arch), args)
    }

    fn assert_allowed(&self, name: &str, args: &[u64]) {
        assert_eq!(
            self.call(name, args),
            RET_ALLOW,
            "{name}{args:?} on {:?}",
            self.arch
        );
    }

    fn assert_errno(&self, name: &str, args: &[u64], errno: i32) {
        assert_eq!(
            self.call(name, args),
            RET_ERRNO | errno as u32,
            "{name}{args:?} on {:?}",
            self.arch
        );
    }
}

const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWCGROUP: u64 = 0x0200_0000;
/// `fork()`'s flags as glibc passes them to clone.
const FORK_FLAGS: u64 = 0x0120_0011;
/// `pthread_create`'s.
const THREAD_FLAGS: u64 = 0x003d_0f00;

#[test]
fn the_number_table_is_sorted_and_covers_every_name_of_the_profile() {
    assert!(NUMBERS.windows(2).all(|w| w[0].0 < w[1].0), "not sorted");
    for rule in PROFILE {
        for name in rule.names {
            assert!(
                NUMBERS.binary_search_by(|e| e.0.cmp(name)).is_ok(),
                "{name} is not in the number table"
            );
        }
    }
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn native_numbers_match_the_c_library() {
    use nix::libc;
    let arch = Arch::NATIVE.unwrap();
    for (name, nr) in [
        ("read", libc::SYS_read),
        ("write", libc::SYS_write),
        ("clone", libc::SYS_clone),
        ("clone3", libc::SYS_clone3),
        ("unshare", libc::SYS_unshare),
        ("mount", libc::SYS_mount),
        ("keyctl", libc::SYS_keyctl),
        ("personality", libc::SYS_personality),
        ("socket", libc::SYS_socket),
        ("execve", libc::SYS_execve),
        ("openat", libc::SYS_openat),
        ("close_range", libc::SYS_close_range),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("faccessat2", libc::SYS_faccessat2),
    ] {
        assert_eq!(arch.number(name), Some(nr), "{name}");
    }
}

#[test]
fn ordinary_calls_are_allowed_and_privileged_ones_fail_with_eperm() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let case = Case::new(arch, run_caps());
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "exit_group",
            "wait4",
            "statx",
        ] {
            case.assert_allowed(name, &[]);
        }
        // Allowed by capability (CAP_SYS_CHROOT is in RUN's set) and by kernel version.
        case.assert_allowed("chroot", &[]);
        case.assert_allowed("ptrace", &[]);
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "open_by_handle_at",
            "reboot",
            "init_module",
            "sethostname",
            "kexec_load",
            "swapon",
            "pivot_root",
            "fsopen",
        ] {
            case.assert_errno(name, &[], EPERM);
        }
    }
    // Architecture-specific rules.
    Case::new(Arch::X86_64, run_caps()).assert_allowed("arch_prctl", &[]);
    Case::new(Arch::X86_64, run_caps()).assert_allowed("open", &[]);
    assert_eq!(Arch::Aarch64.number("arch_prctl"), None);
    assert_eq!(Arch::Aarch64.number("open"), None);
}

#[test]
fn clone_is_allowed_without_namespace_flags_and_clone3_fails_with_enosys() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let case = Case::new(arch, run_caps());
        case.assert_allowed("clone", &[FORK_FLAGS]);
        case.assert_allowed("clone", &[THREAD_FLAGS]);
        for flag in [CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWCGROUP] {
            case.assert_errno("clone", &[FORK_FLAGS | flag], EPERM);
        }
        case.assert_errno("clone3", &[], ENOSYS);
        case.assert_errno("unshare", &[CLONE_NEWUSER], EPERM);
    }
}

#[test]
fn cap_sys_admin_unlocks_namespaces_and_mounts_as_in_moby() {
    let caps = run_caps() | CapabilitySet::SYS_ADMIN;
    let case = Case::new(Arch::X86_64, caps);
    case.assert_allowed("clone", &[FORK_FLAGS | CLONE_NEWUSER]);
    case.assert_allowed("clone3", &[]);
    case.assert_allowed("unshare", &[CLONE_NEWUSER]);
    case.assert_allowed("mount", &[]);
    case.assert_allowed("setns", &[]);
    // Still not: keyctl is in no rule.
    case.assert_errno("keyctl", &[], EPERM);
}

#[test]
fn socket_and_personality_argument_filters() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let case = Case::new(arch, run_caps());
        for family in [1, 2, 10, 16, 17, 39, 41, 44] {
            case.assert_allowed("socket", &[family]);
        }
        for family in [38u64, 40] {
            case.assert_errno("socket", &[family], EPERM);
            // The kernel reads an int: high bits do not smuggle a family past the filter.
            case.assert_errno("socket", &[family | 1 << 32], EPERM);
        }
        for persona in [0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff] {
            case.assert_allowed("personality", &[persona]);
        }
        // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC: not allowed.
        case.assert_errno("personality", &[0x4_0000], EPERM);
        case.assert_errno("personality", &[0x40_0000], EPERM);
    }
}

#[test]
fn a_call_of_another_architecture_kills_the_process() {
    let case = Case::new(Arch::X86_64, run_caps());
    let nr = Arch::X86_64.number("read").unwrap();
    assert_eq!(
        evaluate(&case.filters, nr, AUDIT_ARCH_I386, &[]),
        RET_KILL_PROCESS
    );
    // x32 calls carry bit 30 in the number: none matches, so EPERM.
    assert_eq!(
        evaluate(&case.filters, nr | 0x4000_0000, AUDIT_ARCH_X86_64, &[]),
        RET_ERRNO | EPERM as u32
    );
}

#[test]
fn min_kernel_rules_follow_the_running_kernel() {
    let old = Filters::compile(Arch::X86_64, run_caps(), (4, 4)).unwrap();
    let nr = Arch::X86_64.number("ptrace").unwrap();
    assert_eq!(
        evaluate(&old, nr, AUDIT_ARCH_X86_64, &[]),
        RET_ERRNO | EPERM as u32
    );
    let (major, minor) = kernel_version();
    assert!(major >= 4, "kernel {major}.{minor}");
}

#[test]
// Prints the measured sizes for the reader of the test log.
#[allow(clippy::print_stderr)]
fn the_filters_are_small_enough_and_cheap_to_build() {
    let started = std::time::Instant::now();
    let filters = Filters::for_this_machine(run_caps()).unwrap();
    let elapsed = started.elapsed();
    if let Some(filters) = filters {
        assert_eq!(filters.programs().len(), 2);
        // seccomp(2) takes at most 4096 instructions per program.
        assert!(filters.programs()[0].len() < 4096);
        eprintln!(
            "compiled {} + {} instructions in {elapsed:?}",
            filters.programs()[0].len(),
            filters.programs()[1].len()
        );
    }
}

#[test]
fn filters_cross_to_the_helper_as_hex_and_back() {
    let filters = Filters::compile(Arch::X86_64, run_caps(), (6, 1)).unwrap();
    let json = serde_json::to_string(&filters).unwrap();
    let back: Filters = serde_json::from_str(&json).unwrap();
    assert_eq!(back, filters);
    for bad in [r#"["0"]"#, r#"[""]"#, r#"["zz00000000000000"]"#] {
        assert!(serde_json::from_str::<Filters>(bad).is_err(), "{bad}");
    }
}
