//! User namespaces: what the current one maps, and the one a rootless build runs in.
//!
//! # Rootless builds
//!
//! A user who is not root cannot chown, mount, or create the namespaces of a `RUN` step. So a
//! rootless stagecraft first calls [`enter_rootless`], which moves the whole process into a new
//! user namespace where the user is root, the way `buildah unshare` and rootlesskit do:
//!
//! * with the user's ranges in `/etc/subuid` and `/etc/subgid`, root is the user and ids 1… are
//!   the ranges, written by the setuid helpers `newuidmap` and `newgidmap` (shadow's). Files of
//!   any owner up to the ranges' size can then be created, so layers unpack, `COPY --chown` and
//!   `USER app` work as they do for root, and the layers come out the same;
//! * without ranges, only the user is mapped, to root (the one map a process may write for
//!   itself). Anything owned by another id, a base layer's file, `COPY --chown=1000` or a
//!   `USER app` step, then fails with an error that says how to add a range. Mapping those owners
//!   to root instead would build, but build an image other than the one the Dockerfile describes,
//!   silently; failing is what podman and buildah do too.
//!
//! Everything after that is the root code path, except what the kernel reserves for root of the
//! host: overlayfs keeps its markers in `user.overlay.*` xattrs (`userxattr`), device nodes other
//! than whiteouts cannot be created, and a fresh sysfs cannot be mounted on the host network.
//! The process keeps its mount namespace: the build mounts nothing itself, and each `RUN` step's
//! helper creates its own mount, PID, UTS and IPC namespaces inside the user namespace, owned by
//! it, so a step sees neither the host's processes nor its mounts. A rootless process can only
//! write where the user can, which for a build is its store.

use crate::hints::{MAP_HELPER_IN_CONTAINER_HINT, USERNS_HINT};
use std::fs::File;
use std::io::{Read, Write};

use rustix::thread::UnshareFlags;

use crate::error::{ExecError, errno_text};

/// `/etc/subuid`, where the subordinate uid ranges of each user are listed.
const SUBUID_FILE: &str = "/etc/subuid";
/// `/etc/subgid`, the same for gids.
const SUBGID_FILE: &str = "/etc/subgid";
/// How to give a user subordinate ranges, for error messages.
const ADD_RANGES_HINT: &str = "add ranges for the user, e.g. `usermod --add-subuids \
                               100000-165535 --add-subgids 100000-165535 USER`";

/// How [`enter_rootless`] mapped the process's user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootlessMapping {
    /// Root is the user, and the ids after it are the user's subordinate ranges.
    Subordinate {
        /// How many uids are mapped, root included.
        uids: u32,
        /// How many gids are mapped, root included.
        gids: u32,
    },
    /// Root (the user) is the only id: the user has no subordinate ranges.
    SingleId,
}

/// Moves this process into a new user namespace in which the calling user is root, mapping the
/// user's subordinate id ranges when it has some (see the module docs), and says how. A process
/// that is root already stays where it is: `None`.
///
/// Call it before anything starts a thread: a multi-threaded process cannot enter a user
/// namespace.
pub fn enter_rootless() -> Result<Option<RootlessMapping>, ExecError> {
    if rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    crate::process::check_single_threaded("enter_rootless").map_err(ExecError::Namespaces)?;
    let (uid, gid) = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name);
    let owner = Owner {
        uid,
        name: name.as_deref(),
    };
    let uid_ranges = subordinate_ranges(SUBUID_FILE, &owner)?;
    let gid_ranges = subordinate_ranges(SUBGID_FILE, &owner)?;
    match (uid_ranges.is_empty(), gid_ranges.is_empty()) {
        (true, true) => {
            unshare_user()?;
            map_caller_to_root(uid, gid).map_err(ExecError::Namespaces)?;
            Ok(Some(RootlessMapping::SingleId))
        }
        (false, false) => {
            let uid_map = IdMap::rootless(uid, &uid_ranges);
            let gid_map = IdMap::rootless(gid, &gid_ranges);
            map_with_helpers(&uid_map, &gid_map)?;
            Ok(Some(RootlessMapping::Subordinate {
                uids: uid_map.size(),
                gids: gid_map.size(),
            }))
        }
        (uids_missing, _) => {
            let (has, lacks) = if uids_missing {
                (SUBGID_FILE, SUBUID_FILE)
            } else {
                (SUBUID_FILE, SUBGID_FILE)
            };
            Err(ExecError::Namespaces(format!(
                "{} has ranges in {has} but none in {lacks}; a rootless build needs both, or \
                 neither; {ADD_RANGES_HINT}",
                owner.describe()
            )))
        }
    }
}

/// Writes the one map an unprivileged process may write for itself, right after creating its
/// user namespace: its own uid and gid as root. The kernel accepts that gid map only once
/// `setgroups` is denied.
pub(crate) fn map_caller_to_root(uid: u32, gid: u32) -> Result<(), String> {
    for (file, content) in [
        ("/proc/self/setgroups", "deny".to_owned()),
        ("/proc/self/uid_map", format!("0 {uid} 1")),
        ("/proc/self/gid_map", format!("0 {gid} 1")),
    ] {
        std::fs::write(file, content).map_err(|e| format!("writing {file}: {e}"))?;
    }
    Ok(())
}

/// `unshare(CLONE_NEWUSER)`, explaining the usual refusals.
fn unshare_user() -> Result<(), ExecError> {
    // SAFETY: no FILES flag (the hazard of `unshare_unsafe`), and this process has one thread
    // (checked by the caller).
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
        .map_err(|e| ExecError::Namespaces(format!("unshare: {}{}", errno_text(e), USERNS_HINT)))
}

/// The user a process runs as, as `/etc/subuid` may name it.
struct Owner<'a> {
    uid: u32,
    name: Option<&'a str>,
}

impl Owner<'_> {
    fn describe(&self) -> String {
        match self.name {
            Some(name) => format!("user {name} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// The ranges `(start, count)` that `file` (`/etc/subuid` format: `owner:start:count`, the owner
/// a name or a uid) gives `owner`, in file order. A missing file gives none.
fn subordinate_ranges(file: &str, owner: &Owner<'_>) -> Result<Vec<(u32, u32)>, ExecError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ExecError::Namespaces(format!("reading {file}: {e}"))),
    };
    Ok(parse_subordinate(&text, owner))
}

fn parse_subordinate(text: &str, owner: &Owner<'_>) -> Vec<(u32, u32)> {
    let uid = owner.uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(3, ':');
            let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            let ours = who == uid || owner.name == Some(who);
            let range = (start.parse().ok()?, count.parse().ok()?);
            (ours && range.1 > 0).then_some(range)
        })
        .collect()
}

/// What the user namespace a step runs in maps and allows: the host's, the helper's own (an
/// unprivileged caller of the library), or the one a rootless stagecraft runs in.
#[derive(Debug)]
pub(crate) struct IdSpace {
    uids: IdMap,
    gids: IdMap,
    /// Whether `setgroups` is allowed: not under a single-id map, whose gid map needed it denied.
    pub(crate) setgroups: bool,
}

impl IdSpace {
    /// The current process's.
    pub(crate) fn current() -> Result<IdSpace, String> {
        let setgroups = match std::fs::read_to_string("/proc/self/setgroups") {
            Ok(text) => text.trim() == "allow",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(format!("reading /proc/self/setgroups: {e}")),
        };
        Ok(IdSpace {
            uids: IdMap::current("uid")?,
            gids: IdMap::current("gid")?,
            setgroups,
        })
    }

    /// Whether this is the host's own namespace, where root has the privileges overlayfs'
    /// `trusted.*` xattrs need.
    pub(crate) fn is_initial(&self) -> bool {
        self.uids.is_initial()
    }

    /// Whether `gid` exists here.
    pub(crate) fn maps_gid(&self, gid: u32) -> bool {
        self.gids.contains(gid)
    }

    /// Whether a process may take `uid` and `gid` here; explained when not.
    pub(crate) fn check_user(&self, user: &str, uid: u32, gid: u32) -> Result<(), String> {
        if self.uids.contains(uid) && self.gids.contains(gid) {
            return Ok(());
        }
        Err(format!(
            "{user:?} resolves to uid {uid} gid {gid}, which this rootless build's user namespace \
             does not map: it maps the ids of its user's {SUBUID_FILE} and {SUBGID_FILE} ranges \
             ({} uids, {} gids here, root included); {ADD_RANGES_HINT}, or use USER root for \
             this step",
            self.uids.size(),
            self.gids.size()
        ))
    }
}

/// A uid or gid map: `(inside, outside, count)` lines, as in `/proc/PID/uid_map`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdMap(Vec<(u32, u32, u32)>);

impl IdMap {
    /// The map of the current process's user namespace; `which` is `uid` or `gid`. A kernel
    /// without user namespaces has no such file: everything is its own.
    pub(crate) fn current(which: &str) -> Result<IdMap, String> {
        let path = format!("/proc/self/{which}_map");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(IdMap::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IdMap(vec![(0, 0, u32::MAX)])),
            Err(e) => Err(format!("reading {path}: {e}")),
        }
    }

    fn parse(text: &str) -> IdMap {
        IdMap(
            text.lines()
                .filter_map(|line| {
                    let mut fields = line.split_whitespace().map(|f| f.parse::<u32>().ok());
                    Some((fields.next()??, fields.next()??, fields.next()??))
                })
                .collect(),
        )
    }

    /// `id` as root, then the ranges one after the other from id 1 on.
    fn rootless(id: u32, ranges: &[(u32, u32)]) -> IdMap {
        let mut lines = vec![(0, id, 1)];
        let mut inside = 1u32;
        for &(start, count) in ranges {
            let count = count.min(u32::MAX - inside);
            if count == 0 {
                break;
            }
            lines.push((inside, start, count));
            inside += count;
        }
        IdMap(lines)
    }

    /// Whether this is the initial user namespace's map, every id its own.
    pub(crate) fn is_initial(&self) -> bool {
        self.0 == [(0, 0, u32::MAX)]
    }

    /// Whether `id` exists in the namespace.
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.0
            .iter()
            .any(|&(inside, _, count)| id >= inside && id - inside < count)
    }

    /// How many ids are mapped.
    fn size(&self) -> u32 {
        self.0.iter().map(|&(_, _, count)| count).sum()
    }

    /// The arguments of `newuidmap PID …`.
    fn helper_args(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|&(inside, outside, count)| [inside, outside, count])
            .map(|n| n.to_string())
            .collect()
    }
}

/// Creates the user namespace and has `newuidmap` and `newgidmap` write its maps.
///
/// They must run outside the new namespace: executed from inside, where root of the host is not
/// mapped, their setuid bit would be ignored. So a child is forked first, which waits until this
/// process has unshared, runs both, and reports what they said.
fn map_with_helpers(uid_map: &IdMap, gid_map: &IdMap) -> Result<(), ExecError> {
    let fail = |what: &str, e: String| ExecError::Namespaces(format!("{what}: {e}"));
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| fail("pipe", errno_text(e)))
    };
    let (go_read, go_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    let target = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: this process has a single thread (checked by `enter_rootless`), so the child may
    // run any code, allocation included.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(go_write);
            drop(report_read);
            let mut go = [0u8; 1];
            // End-of-file instead of the byte: the parent gave up (its unshare failed).
            let code = match File::from(go_read).read(&mut go) {
                Ok(1) => match run_map_helpers(target, uid_map, gid_map) {
                    Ok(()) => 0,
                    Err(message) => {
                        let _ = File::from(report_write).write_all(message.as_bytes());
                        1
                    }
                },
                _ => 1,
            };
            // `_exit`: this is a forked copy of the caller; its exit handlers and buffered
            // output are the caller's.
            // SAFETY: _exit(2) ends the process without touching any state of ours.
            unsafe { nix::libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(go_read);
            drop(report_write);
            let unshared = unshare_user();
            if unshared.is_ok() {
                // A failed write shows as the child's report or exit status below.
                let _ = File::from(go_write).write_all(&[1]);
            } else {
                drop(go_write);
            }
            let mut report = String::new();
            let _ = File::from(report_read).read_to_string(&mut report);
            let status = nix::sys::wait::waitpid(child, None);
            unshared?;
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(other) if report.is_empty() => Err(fail(
                    "mapping the subordinate ids",
                    format!("the mapping process ended with {other:?}"),
                )),
                Ok(_) => Err(ExecError::Namespaces(report)),
                Err(e) => Err(fail("waiting for the mapping process", e.to_string())),
            }
        }
        Err(e) => Err(fail("fork", e.to_string())),
    }
}

/// In the forked child: `newuidmap PID …` then `newgidmap PID …`.
fn run_map_helpers(target: i32, uid_map: &IdMap, gid_map: &IdMap) -> Result<(), String> {
    for (program, map, file) in [
        ("newuidmap", uid_map, SUBUID_FILE),
        ("newgidmap", gid_map, SUBGID_FILE),
    ] {
        let output = std::process::Command::new(program)
            .arg(target.to_string())
            .args(map.helper_args())
            .output()
            .map_err(|e| {
                format!(
                    "running {program}: {e}; it comes with shadow's uidmap package, and a \
                     rootless build needs it to use the ranges in {file}"
                )
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "{program} {} failed ({}): {}; check the ranges in {file} and that {program} is \
                 setuid root or has the {} file capability{}",
                map.helper_args().join(" "),
                output.status,
                stderr.trim(),
                if program == "newuidmap" {
                    "cap_setuid"
                } else {
                    "cap_setgid"
                },
                if stderr.contains("Operation not permitted") {
                    MAP_HELPER_IN_CONTAINER_HINT
                } else {
                    ""
                },
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text =
            "# comment\nalice:100000:65536\n1001:200000:1000\nbob:300000:0\nalice:400000:10\n";
        let alice = Owner {
            uid: 1000,
            name: Some("alice"),
        };
        assert_eq!(
            parse_subordinate(text, &alice),
            [(100000, 65536), (400000, 10)]
        );
        let by_uid = Owner {
            uid: 1001,
            name: None,
        };
        assert_eq!(parse_subordinate(text, &by_uid), [(200000, 1000)]);
        let bob = Owner {
            uid: 1002,
            name: Some("bob"),
        };
        assert!(
            parse_subordinate(text, &bob).is_empty(),
            "empty ranges count as none"
        );
    }

    #[test]
    fn rootless_maps_put_the_user_first_then_the_ranges() {
        let map = IdMap::rootless(1000, &[(100000, 65536), (400000, 10)]);
        assert_eq!(
            map.helper_args().join(" "),
            "0 1000 1 1 100000 65536 65537 400000 10"
        );
        assert_eq!(map.size(), 65547);
        assert!(map.contains(0) && map.contains(65546) && !map.contains(65547));
        assert!(!map.is_initial());
    }

    #[test]
    fn maps_parse_as_the_kernel_prints_them() {
        let initial = IdMap::parse("         0          0 4294967295\n");
        assert!(initial.is_initial());
        assert!(initial.contains(1000));
        let single = IdMap::parse("         0       1000          1\n");
        assert!(single.contains(0) && !single.contains(1));
    }
}
