//! Docker's default seccomp profile, as BuildKit applies it to every `RUN`.
//!
//! [`PROFILE`] restates the rules of moby's `profiles/seccomp/default.json` (its Go source,
//! `DefaultProfile`): an allow-list with every other call failing with `EPERM`, `socket` for every
//! family but `AF_ALG` and `AF_VSOCK`, `personality` for the five personas containers use, rules
//! that only apply when the container has a capability (`CAP_SYS_ADMIN` unlocks `mount`,
//! `unshare`, `setns`…; `CAP_SYS_CHROOT` `chroot`; …), and for a container *without*
//! `CAP_SYS_ADMIN`: `clone` only without namespace flags, and `clone3` failing with `ENOSYS` (its
//! flags live in memory a filter cannot read, so libc falls back to `clone`). [`resolve`] keeps the
//! rules that apply to a capability set and an architecture, as moby's `setupSeccomp` does with
//! the spec's bounding set; [`Filters::compile`] turns them into classic BPF with `seccompiler`.
//!
//! The filter is for the host's architecture: a binary of another architecture run through
//! binfmt_misc and qemu-user makes the emulator's (host) system calls, which the filter sees,
//! exactly as under BuildKit. Moby also allows the host's compat ABIs (i386 and x32 on x86_64,
//! arm on aarch64); here a compat-ABI call kills the process, and an x32 one fails with `EPERM`
//! (no number matches): 32-bit binaries run under qemu-user, not natively, until a compat table
//! is added.

mod numbers;

use std::collections::BTreeMap;

use rustix::thread::CapabilitySet;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use numbers::{NA, NUMBERS};

/// An architecture the profile has syscall numbers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arch {
    /// x86_64 (moby's `amd64`).
    X86_64,
    /// aarch64 (moby's `arm64`).
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on, if the profile covers it.
    pub(crate) const NATIVE: Option<Arch> = if cfg!(target_arch = "x86_64") {
        Some(Arch::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::Aarch64)
    } else {
        None
    };

    /// The number of the call `name`, `None` when this architecture lacks it (or the name is not
    /// in the table).
    fn number(self, name: &str) -> Option<i64> {
        let (_, x86_64, aarch64) = NUMBERS[NUMBERS.binary_search_by(|e| e.0.cmp(name)).ok()?];
        let nr = match self {
            Arch::X86_64 => x86_64,
            Arch::Aarch64 => aarch64,
        };
        (nr != NA).then_some(nr)
    }

    fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }

    /// Moby's (Go's) name, as its rules' `arches` spell it.
    fn moby_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Allow,
    Errno(i32),
}

/// A comparison of one argument with a constant. Every argument the profile looks at is an `int`
/// or `unsigned int` (`socket`'s family, `personality`'s persona) or has the bits in question in
/// its low word (`clone`'s flags), so the comparison is on the low 32 bits: what the kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Eq(u8, u32),
    Lt(u8, u32),
    Gt(u8, u32),
    /// `arg & mask == 0`.
    NoneOf(u8, u32),
}

/// One rule of moby's profile: its `names`, `action` and `args`, and the `includes`/`excludes`
/// filters that decide whether it applies.
struct Rule {
    names: &'static [&'static str],
    action: Action,
    /// All must hold (moby's `args`).
    checks: &'static [Check],
    /// `includes.arches`: the rule applies only on these (empty: everywhere).
    arches: &'static [&'static str],
    /// `includes.caps`: the rule applies only if the container has all of these.
    caps: CapabilitySet,
    /// `excludes.caps`: the rule does not apply if the container has any of these.
    unless_caps: CapabilitySet,
    /// `includes.minKernel`.
    min_kernel: Option<(u32, u32)>,
}

impl Rule {
    const fn allow(names: &'static [&'static str]) -> Rule {
        Rule {
            names,
            action: Action::Allow,
            checks: &[],
            arches: &[],
            caps: CapabilitySet::empty(),
            unless_caps: CapabilitySet::empty(),
            min_kernel: None,
        }
    }

    const fn allow_if(names: &'static [&'static str], checks: &'static [Check]) -> Rule {
        Rule {
            checks,
            ..Rule::allow(names)
        }
    }

    const fn on(self, arches: &'static [&'static str]) -> Rule {
        Rule { arches, ..self }
    }

    const fn with_cap(self, caps: CapabilitySet) -> Rule {
        Rule { caps, ..self }
    }

    fn applies(&self, arch: Arch, caps: CapabilitySet, kernel: (u32, u32)) -> bool {
        (self.arches.is_empty() || self.arches.contains(&arch.moby_name()))
            && caps.contains(self.caps)
            && !caps.intersects(self.unless_caps)
            && self.min_kernel.is_none_or(|min| kernel >= min)
    }
}

const AF_ALG: u32 = 38;
const AF_VSOCK: u32 = 40;
/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
/// CLONE_NEWCGROUP`.
const CLONE_NAMESPACES: u32 =
    0x0002_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x0200_0000;
const ENOSYS: i32 = 38;
const EPERM: i32 = 1;

/// moby's `DefaultProfile()`, rule for rule, in its order. (Rules for architectures without a
/// table here — ppc64le, s390, riscv64 — are left out; their names would resolve to nothing.)
const PROFILE: &[Rule] = &[
    Rule::allow(&[
        "accept",
        "accept4",
        "access",
        "adjtimex",
        "alarm",
        "bind",
        "brk",
        "cachestat",
        "capget",
        "capset",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "close",
        "close_range",
        "connect",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fanotify_mark",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "fgetxattr",
        "flistxattr",
        "flock",
        "fork",
        "fremovexattr",
        "fsetxattr",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futex",
        "futex_requeue",
        "futex_time64",
        "futex_wait",
        "futex_waitv",
        "futex_wake",
        "futimesat",
        "getcpu",
        "getcwd",
        "getdents",
        "getdents64",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getitimer",
        "getpeername",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getrandom",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "get_robust_list",
        "getrusage",
        "getsid",
        "getsockname",
        "getsockopt",
        "get_thread_area",
        "gettid",
        "gettimeofday",
        "getuid",
        "getuid32",
        "getxattr",
        "getxattrat",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "ioctl",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "ioprio_get",
        "ioprio_set",
        "io_setup",
        "io_submit",
        "ipc",
        "kill",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "lchown",
        "lchown32",
        "lgetxattr",
        "link",
        "linkat",
        "listen",
        "listmount",
        "listxattr",
        "listxattrat",
        "llistxattr",
        "_llseek",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lstat",
        "lstat64",
        "madvise",
        "map_shadow_stack",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "mremap",
        "mseal",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "name_to_handle_at",
        "nanosleep",
        "newfstatat",
        "_newselect",
        "open",
        "openat",
        "openat2",
        "pause",
        "pidfd_open",
        "pidfd_send_signal",
        "pipe",
        "pipe2",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "poll",
        "ppoll",
        "ppoll_time64",
        "prctl",
        "pread64",
        "preadv",
        "preadv2",
        "prlimit64",
        "process_mrelease",
        "pselect6",
        "pselect6_time64",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "remap_file_pages",
        "removexattr",
        "removexattrat",
        "rename",
        "renameat",
        "renameat2",
        "restart_syscall",
        "riscv_hwprobe",
        "rmdir",
        "rseq",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
        "seccomp",
        "select",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "send",
        "sendfile",
        "sendfile64",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setitimer",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "set_robust_list",
        "setsid",
        "setsockopt",
        "set_thread_area",
        "set_tid_address",
        "setuid",
        "setuid32",
        "setxattr",
        "setxattrat",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
        "shutdown",
        "sigaltstack",
        "signalfd",
        "signalfd4",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "socketpair",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statmount",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "sysinfo",
        "tee",
        "tgkill",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
        "times",
        "tkill",
        "truncate",
        "truncate64",
        "ugetrlimit",
        "umask",
        "uname",
        "unlink",
        "unlinkat",
        "uretprobe",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vfork",
        "vmsplice",
        "wait4",
        "waitid",
        "waitpid",
        "write",
        "writev",
    ]),
    Rule {
        min_kernel: Some((4, 8)),
        ..Rule::allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    },
    // socket(2) for every family but AF_ALG (38) and AF_VSOCK (40).
    Rule::allow_if(&["socket"], &[Check::Lt(0, AF_ALG)]),
    Rule::allow_if(&["socket"], &[Check::Eq(0, AF_ALG + 1)]),
    Rule::allow_if(&["socket"], &[Check::Gt(0, AF_VSOCK)]),
    // PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query 0xffffffff.
    Rule::allow_if(&["personality"], &[Check::Eq(0, 0x0)]),
    Rule::allow_if(&["personality"], &[Check::Eq(0, 0x0008)]),
    Rule::allow_if(&["personality"], &[Check::Eq(0, 0x2_0000)]),
    Rule::allow_if(&["personality"], &[Check::Eq(0, 0x2_0008)]),
    Rule::allow_if(&["personality"], &[Check::Eq(0, 0xffff_ffff)]),
    Rule::allow(&[
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ])
    .on(&["arm", "arm64"]),
    Rule::allow(&["arch_prctl"]).on(&["amd64", "x32"]),
    Rule::allow(&["modify_ldt"]).on(&["amd64", "x32", "x86"]),
    Rule::allow(&["open_by_handle_at"]).with_cap(CapabilitySet::DAC_READ_SEARCH),
    Rule::allow(&[
        "bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "lsm_get_self_attr",
        "lsm_list_modules",
        "lsm_set_self_attr",
        "mount",
        "mount_setattr",
        "move_mount",
        "open_tree",
        "perf_event_open",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare",
    ])
    .with_cap(CapabilitySet::SYS_ADMIN),
    // Without CAP_SYS_ADMIN: clone without namespace flags (s390's argument order is moby's
    // separate rule, left out with s390).
    Rule {
        unless_caps: CapabilitySet::SYS_ADMIN,
        ..Rule::allow_if(&["clone"], &[Check::NoneOf(0, CLONE_NAMESPACES)])
    },
    // clone3's flags are in a struct the filter cannot read: ENOSYS makes libc fall back to clone.
    Rule {
        action: Action::Errno(ENOSYS),
        unless_caps: CapabilitySet::SYS_ADMIN,
        ..Rule::allow(&["clone3"])
    },
    Rule::allow(&["reboot"]).with_cap(CapabilitySet::SYS_BOOT),
    Rule::allow(&["chroot"]).with_cap(CapabilitySet::SYS_CHROOT),
    Rule::allow(&["delete_module", "init_module", "finit_module"])
        .with_cap(CapabilitySet::SYS_MODULE),
    Rule::allow(&["acct"]).with_cap(CapabilitySet::SYS_PACCT),
    Rule::allow(&[
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
    ])
    .with_cap(CapabilitySet::SYS_PTRACE),
    Rule::allow(&["iopl", "ioperm"]).with_cap(CapabilitySet::SYS_RAWIO),
    Rule::allow(&["settimeofday", "stime", "clock_settime", "clock_settime64"])
        .with_cap(CapabilitySet::SYS_TIME),
    Rule::allow(&["vhangup"]).with_cap(CapabilitySet::SYS_TTY_CONFIG),
    Rule::allow(&[
        "get_mempolicy",
        "mbind",
        "set_mempolicy",
        "set_mempolicy_home_node",
    ])
    .with_cap(CapabilitySet::SYS_NICE),
    Rule::allow(&["syslog"]).with_cap(CapabilitySet::SYSLOG),
    Rule::allow(&["bpf"]).with_cap(CapabilitySet::BPF),
    Rule::allow(&["perf_event_open"]).with_cap(CapabilitySet::PERFMON),
];

/// The profile for one architecture and capability set: what each listed call does. Anything
/// else fails with `EPERM`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Resolved {
    /// Allowed calls, each with its alternatives (any may hold; each is a list of checks that
    /// must all hold). An empty list of alternatives allows the call whatever its arguments.
    allow: BTreeMap<i64, Vec<&'static [Check]>>,
    /// Calls that fail with the given errno whatever their arguments. These win over `allow`
    /// (a filter's `ERRNO` takes precedence over another's `ALLOW`).
    errno: BTreeMap<i64, i32>,
}

fn resolve(arch: Arch, caps: CapabilitySet, kernel: (u32, u32)) -> Resolved {
    // Per call: None once some rule allows it unconditionally.
    let mut allow: BTreeMap<i64, Option<Vec<&'static [Check]>>> = BTreeMap::new();
    let mut errno = BTreeMap::new();
    for rule in PROFILE.iter().filter(|r| r.applies(arch, caps, kernel)) {
        for nr in rule.names.iter().filter_map(|name| arch.number(name)) {
            match rule.action {
                Action::Errno(code) => {
                    errno.insert(nr, code);
                }
                Action::Allow => {
                    let entry = allow.entry(nr).or_insert_with(|| Some(Vec::new()));
                    match (entry, rule.checks) {
                        (entry, []) => *entry = None,
                        (Some(alternatives), checks) => alternatives.push(checks),
                        (None, _) => {}
                    }
                }
            }
        }
    }
    Resolved {
        allow: allow
            .into_iter()
            .map(|(nr, alternatives)| (nr, alternatives.unwrap_or_default()))
            .collect(),
        errno,
    }
}

/// Compiled filters, in the order to install them. They cross from the parent, which compiles
/// them once per process, to each step's helper as hex text (16 digits an instruction: code, jt,
/// jf, k), which decodes in a fraction of the compile's time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub(crate) struct Filters(Vec<BpfProgram>);

impl From<Filters> for Vec<String> {
    fn from(filters: Filters) -> Self {
        filters
            .0
            .iter()
            .map(|program| {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut text = Vec::with_capacity(program.len() * 16);
                for i in program {
                    let word = u64::from(i.code) << 48
                        | u64::from(i.jt) << 40
                        | u64::from(i.jf) << 32
                        | u64::from(i.k);
                    text.extend(
                        (0..16)
                            .rev()
                            .map(|n| DIGITS[(word >> (4 * n)) as usize & 0xf]),
                    );
                }
                String::from_utf8(text).unwrap_or_default()
            })
            .collect()
    }
}

impl TryFrom<Vec<String>> for Filters {
    type Error = String;

    fn try_from(texts: Vec<String>) -> Result<Self, String> {
        let field = |text: &str, at: usize, len: usize| {
            text.get(at..at + len)
                .and_then(|digits| u32::from_str_radix(digits, 16).ok())
                .ok_or_else(|| format!("seccomp program: bad hex at {at}"))
        };
        let mut programs = Vec::with_capacity(texts.len());
        for text in texts {
            if text.is_empty() || text.len() % 16 != 0 || text.len() / 16 > 4096 {
                return Err(format!("seccomp program of {} hex digits", text.len()));
            }
            let mut program = Vec::with_capacity(text.len() / 16);
            for at in (0..text.len()).step_by(16) {
                program.push(seccompiler::sock_filter {
                    code: field(&text, at, 4)? as u16,
                    jt: field(&text, at + 4, 2)? as u8,
                    jf: field(&text, at + 6, 2)? as u8,
                    k: field(&text, at + 8, 8)?,
                });
            }
            programs.push(program);
        }
        Ok(Filters(programs))
    }
}

impl Filters {
    /// The default profile for RUN's capability set on this machine's architecture, compiled on
    /// first use and kept for the process; `None` where the profile has no syscall table
    /// (neither x86_64 nor aarch64).
    pub(crate) fn default_for_run() -> Result<Option<Filters>, String> {
        static FILTERS: std::sync::OnceLock<Result<Option<Filters>, String>> =
            std::sync::OnceLock::new();
        FILTERS
            .get_or_init(|| Filters::for_this_machine(crate::process::DEFAULT_CAPABILITIES))
            .clone()
    }

    /// The default profile for a capability set on this machine's architecture.
    fn for_this_machine(caps: CapabilitySet) -> Result<Option<Filters>, String> {
        let Some(arch) = Arch::NATIVE else {
            return Ok(None);
        };
        Filters::compile(arch, caps, kernel_version()).map(Some)
    }

    /// The filters for `arch`: the allow-list (default `EPERM`), then one filter per errno rule
    /// (default allow). Installed in this order, a call that both reject fails with the later
    /// one's errno (`clone3`: `ENOSYS`, not `EPERM`), as the kernel takes the most recent filter's
    /// data among results of equal precedence.
    fn compile(arch: Arch, caps: CapabilitySet, kernel: (u32, u32)) -> Result<Filters, String> {
        let resolved = resolve(arch, caps, kernel);
        let fail = |e: seccompiler::BackendError| format!("compiling the seccomp filter: {e}");
        let mut rules = BTreeMap::new();
        for (nr, alternatives) in resolved.allow {
            let mut chain = Vec::new();
            for checks in alternatives {
                let conditions = checks
                    .iter()
                    .map(|check| condition(*check))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?;
                chain.push(SeccompRule::new(conditions).map_err(fail)?);
            }
            rules.insert(nr, chain);
        }
        let mut programs = vec![program(SeccompFilter::new(
            rules,
            SeccompAction::Errno(EPERM as u32),
            SeccompAction::Allow,
            arch.target(),
        ))?];
        let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
        for (nr, code) in resolved.errno {
            by_errno.entry(code).or_default().insert(nr, Vec::new());
        }
        for (code, rules) in by_errno {
            programs.push(program(SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(code as u32),
                arch.target(),
            ))?);
        }
        Ok(Filters(programs))
    }

    /// Installs the filters on the calling thread (the init has no other). Needs
    /// `CAP_SYS_ADMIN` in the current user namespace, or `no_new_privs`: the init still holds the
    /// former, as runc's does when it loads the profile, so setuid binaries keep working in the
    /// step (no `no_new_privs`, like Docker's default).
    pub(crate) fn install(&self) -> Result<(), rustix::io::Errno> {
        for program in &self.0 {
            let fprog = nix::libc::sock_fprog {
                len: u16::try_from(program.len()).map_err(|_| rustix::io::Errno::TOOBIG)?,
                filter: program.as_ptr().cast_mut().cast::<nix::libc::sock_filter>(),
            };
            // SAFETY: `fprog` points at `program`, a live array of `len` instructions, each
            // seccompiler's `sock_filter`: repr(C) with the kernel's fields (u16, u8, u8, u32), as
            // libc's is. The kernel copies the program before returning and keeps no pointer.
            let rc = unsafe {
                nix::libc::syscall(
                    nix::libc::SYS_seccomp,
                    nix::libc::SECCOMP_SET_MODE_FILTER,
                    0 as nix::libc::c_ulong,
                    &fprog as *const nix::libc::sock_fprog,
                )
            };
            if rc != 0 {
                return Err(rustix::io::Errno::from_raw_os_error(
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                ));
            }
        }
        Ok(())
    }

    /// How many filters (for tests and `/proc/self/status`'s `Seccomp_filters`).
    #[cfg(test)]
    fn programs(&self) -> &[BpfProgram] {
        &self.0
    }
}

fn program(filter: Result<SeccompFilter, seccompiler::BackendError>) -> Result<BpfProgram, String> {
    let fail = |e: seccompiler::BackendError| format!("compiling the seccomp filter: {e}");
    filter.map_err(fail)?.try_into().map_err(fail)
}

fn condition(check: Check) -> Result<SeccompCondition, seccompiler::BackendError> {
    let (index, op, value) = match check {
        Check::Eq(i, v) => (i, SeccompCmpOp::Eq, v),
        Check::Lt(i, v) => (i, SeccompCmpOp::Lt, v),
        Check::Gt(i, v) => (i, SeccompCmpOp::Gt, v),
        Check::NoneOf(i, mask) => (i, SeccompCmpOp::MaskedEq(u64::from(mask)), 0),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, u64::from(value))
}

/// The running kernel's `major.minor`, for the profile's `minKernel` rules (as moby's
/// `kernelGreaterEqualThan`); `(0, 0)` if unreadable, which leaves those rules out.
fn kernel_version() -> (u32, u32) {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests;
