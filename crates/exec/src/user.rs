//! `USER` resolution against the rootfs' `/etc/passwd` and `/etc/group`, ported from BuildKit's
//! `executor/oci/user.go` (`GetUser`, `ParseUIDGID`) and moby/sys `user.GetExecUser`, including
//! their error wording and quirks.

/// The credentials the command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    /// The user id.
    pub(crate) uid: u32,
    /// The primary group id.
    pub(crate) gid: u32,
    /// The groups passed to `setgroups`: the primary group first (containerd's
    /// `ensureAdditionalGids`, which BuildKit applies), then the supplementary groups.
    pub(crate) groups: Vec<u32>,
}

/// moby/sys' id range: ids above `i32::MAX` are refused for 32-bit compatibility.
const MAX_ID: i64 = i32::MAX as i64;

/// BuildKit's `GetUser`: resolves `spec` (`""`, `name`, `uid`, `uid:gid`, `name:group`, …) given
/// the contents of `/etc/passwd` and `/etc/group` (`None` when missing or not a regular file).
pub(crate) fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, String> {
    // An empty USER is root; lookup errors for it are ignored (`isDefault`).
    let (spec, is_default) = if spec.is_empty() {
        ("0", true)
    } else {
        (spec, false)
    };
    let (uid, gid, supplementary) = match parse_uid_gid(spec) {
        // The fast path: both parts numeric (or "root"), no lookup and no supplementary groups.
        Some((uid, gid)) => (uid, gid, Vec::new()),
        None => match exec_user(spec, passwd, group) {
            // moby/sys works with Go ints; BuildKit converts with uint32(), which wraps.
            Ok(u) => (
                u.uid as u32,
                u.gid as u32,
                u.sgids.into_iter().map(|g| g as u32).collect(),
            ),
            Err(_) if is_default => (0, 0, Vec::new()),
            Err(e) => return Err(e),
        },
    };
    let mut groups = supplementary;
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    Ok(ExecUser { uid, gid, groups })
}

/// runc's `getUserHome`: the home directory of the first passwd entry with `uid`, else `/`.
pub(crate) fn home(uid: u32, passwd: Option<&str>) -> String {
    passwd
        .into_iter()
        .flat_map(passwd_entries)
        .find(|u| u.uid as u32 == uid)
        .map_or_else(|| "/".to_owned(), |u| u.home)
}

/// BuildKit's `ParseUIDGID`: `Some` only when the spec is `A:B` with both parts a decimal `u32` or
/// the literal `root`.
fn parse_uid_gid(spec: &str) -> Option<(u32, u32)> {
    fn part(s: &str) -> Option<u32> {
        if s == "root" {
            return Some(0);
        }
        // Go's ParseUint(s, 10, 32): digits only (no sign), at most u32::MAX.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    let (u, g) = spec.split_once(':')?;
    Some((part(u)?, part(g)?))
}

/// A `user` or `group` argument: a name, or a number that is always taken as an id.
struct Arg<'a> {
    name: &'a str,
    id: Option<i64>,
}

/// moby/sys `parseNumeric`: Go's `Atoi` (optional sign, decimal); a syntax error means "a name",
/// an out-of-range number is an error.
fn parse_arg(s: &str) -> Result<Option<Arg<'_>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let id = match s.parse::<i64>() {
        Ok(n) if (0..=MAX_ID).contains(&n) => Some(n),
        Ok(_) => return Err(range_error()),
        Err(e) => match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                return Err(range_error());
            }
            _ => None,
        },
    };
    Ok(Some(Arg { name: s, id }))
}

fn range_error() -> String {
    format!("uids and gids must be in range 0-{MAX_ID}")
}

/// The result of moby/sys `GetExecUser` (Go ints).
struct Resolved {
    uid: i64,
    gid: i64,
    sgids: Vec<i64>,
}

/// moby/sys `user.GetExecUser` with zero defaults.
fn exec_user(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<Resolved, String> {
    let (usr, grp) = spec.split_once(':').unwrap_or((spec, ""));
    let user_arg = parse_arg(usr)?;
    let group_arg = parse_arg(grp)?;
    let mut out = Resolved {
        uid: 0,
        gid: 0,
        sgids: Vec::new(),
    };

    let matched = passwd
        .into_iter()
        .flat_map(passwd_entries)
        .find(|u| match &user_arg {
            // No user part (":group"): the entry of the default uid 0.
            None => u.uid == 0,
            Some(Arg { id: Some(id), .. }) => u.uid == *id,
            Some(Arg { name, id: None }) => u.name == *name,
        });
    let matched_name = match matched {
        Some(u) => {
            out.uid = u.uid;
            out.gid = u.gid;
            u.name
        }
        None => {
            // No entry: only a numeric user can do without one.
            if let Some(arg) = &user_arg {
                match arg.id {
                    Some(id) => out.uid = id,
                    None => {
                        return Err(format!(
                            "unable to find user {}: no matching entries in passwd file",
                            arg.name
                        ));
                    }
                }
            }
            String::new()
        }
    };

    // Groups are looked at for an explicit group, or for the supplementary groups of a user found
    // by its passwd entry.
    if group_arg.is_some() || !matched_name.is_empty() {
        let groups: Vec<GroupEntry> = group
            .into_iter()
            .flat_map(group_entries)
            .filter(|g| match &group_arg {
                None => g.members.contains(&matched_name),
                Some(Arg { id: Some(id), .. }) => g.gid == *id,
                Some(Arg { name, id: None }) => g.name == *name,
            })
            .collect();
        match &group_arg {
            Some(arg) => match (groups.first(), arg.id) {
                (Some(g), _) => out.gid = g.gid,
                (None, Some(id)) => out.gid = id,
                (None, None) => {
                    return Err(format!(
                        "unable to find group {}: no matching entries in group file",
                        arg.name
                    ));
                }
            },
            // Supplementary groups only in the implicit form (`USER name`).
            None => out.sgids = groups.iter().map(|g| g.gid).collect(),
        }
    }
    Ok(out)
}

/// One `/etc/passwd` line.
struct PasswdEntry {
    name: String,
    uid: i64,
    gid: i64,
    home: String,
}

/// One `/etc/group` line.
struct GroupEntry {
    name: String,
    gid: i64,
    members: Vec<String>,
}

/// Go's `Atoi` with the error ignored, as moby/sys' `parseLine` does for numeric fields.
fn atoi(s: &str) -> i64 {
    s.parse().unwrap_or(0)
}

/// moby/sys `ParsePasswdFilter`: trimmed non-empty lines, `:`-separated (no comment handling).
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            PasswdEntry {
                name: field(0).to_owned(),
                uid: atoi(field(2)),
                gid: atoi(field(3)),
                home: field(5).to_owned(),
            }
        })
}

/// moby/sys `ParseGroupFilter`: trimmed lines, skipping blank ones and `#` comments.
fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            let members = field(3);
            GroupEntry {
                name: field(0).to_owned(),
                gid: atoi(field(2)),
                members: if members.is_empty() {
                    Vec::new()
                } else {
                    members.split(',').map(str::to_owned).collect()
                },
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        nobody:x:65534:65534:nobody:/home:/bin/false\n\
        app:x:1000:1000:app:/home/app:/bin/sh\n\
        multi:x:1001:1001::/home/multi:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        # a comment\n\
        wheel:x:10:root,multi\n\
        nogroup:x:65534:\n\
        app:x:1000:\n\
        multi:x:1001:\n\
        audio:x:29:multi\n";

    fn r(spec: &str) -> Result<ExecUser, String> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    fn user(uid: u32, gid: u32, groups: &[u32]) -> ExecUser {
        ExecUser {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn empty_user_is_root_with_its_supplementary_groups() {
        assert_eq!(r(""), Ok(user(0, 0, &[0, 10])));
        // No files at all: still root, errors ignored.
        assert_eq!(resolve("", None, None), Ok(user(0, 0, &[0])));
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(r("app"), Ok(user(1000, 1000, &[1000])));
        assert_eq!(r("1000"), Ok(user(1000, 1000, &[1000])));
        assert_eq!(r("multi"), Ok(user(1001, 1001, &[1001, 10, 29])));
        assert_eq!(r("app:wheel"), Ok(user(1000, 10, &[10])));
        assert_eq!(r("app:29"), Ok(user(1000, 29, &[29])));
        assert_eq!(r("1000:app"), Ok(user(1000, 1000, &[1000])));
        assert_eq!(r("root"), Ok(user(0, 0, &[0, 10])));
    }

    #[test]
    fn numeric_ids_need_no_entries() {
        assert_eq!(r("1234:5678"), Ok(user(1234, 5678, &[5678])));
        assert_eq!(
            resolve("1234:5678", None, None),
            Ok(user(1234, 5678, &[5678]))
        );
        // Not the fast path (no group), but numeric: gid defaults to 0.
        assert_eq!(r("4321"), Ok(user(4321, 0, &[0])));
        assert_eq!(r("root:root"), Ok(user(0, 0, &[0])));
        assert_eq!(r("4321:wheel"), Ok(user(4321, 10, &[10])));
    }

    #[test]
    fn unknown_names_use_moby_wording() {
        assert_eq!(
            r("nosuch"),
            Err("unable to find user nosuch: no matching entries in passwd file".into())
        );
        assert_eq!(
            r("app:nosuch"),
            Err("unable to find group nosuch: no matching entries in group file".into())
        );
        assert_eq!(
            resolve("app", None, None),
            Err("unable to find user app: no matching entries in passwd file".into())
        );
        assert_eq!(
            r("-1"),
            Err("uids and gids must be in range 0-2147483647".into())
        );
        assert_eq!(
            r("app:99999999999999999999"),
            Err("uids and gids must be in range 0-2147483647".into())
        );
    }

    #[test]
    fn home_directory_by_uid() {
        assert_eq!(home(1000, Some(PASSWD)), "/home/app");
        assert_eq!(home(0, Some(PASSWD)), "/root");
        assert_eq!(home(4321, Some(PASSWD)), "/");
        assert_eq!(home(0, None), "/");
    }
}
