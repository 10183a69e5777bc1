//! Resolving `--chown=user:group` the way BuildKit does: names are looked up in the
//! destination stage's `/etc/passwd` and `/etc/group`; numbers are taken as they are.

use stagecraft_imagefs::MergedView;
use stagecraft_imagefs::users::{group_entries, passwd_entries};
use std::path::Path;

/// A resolved owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Why an owner could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OwnerError {
    /// A user name not in `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A group name not in `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
}

/// Resolves `user[:group]` against the files of `view`, as BuildKit's file operations do: a
/// user name takes its uid and primary gid from `/etc/passwd`, a number is used as both uid and
/// gid, and a group (name or number) replaces the gid.
pub(crate) fn resolve_owner(spec: &str, view: &MergedView) -> Result<Owner, OwnerError> {
    let read = |path: &str| {
        view.read_file(Path::new(path))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let passwd = read("/etc/passwd");
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => passwd_entries(&passwd)
            .find(|(name, ..)| *name == user)
            .map(|(_, uid, gid)| (uid, gid))
            .ok_or_else(|| OwnerError::UnknownUser(user.to_owned()))?,
    };
    let gid = match group {
        None => primary_gid,
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(&read("/etc/group"))
                .find(|(name, _)| *name == group)
                .map(|(_, gid)| gid)
                .ok_or_else(|| OwnerError::UnknownGroup(group.to_owned()))?,
        },
    };
    Ok(Owner { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:\napp:x:1001:\n",
        )
        .unwrap();
        let view = MergedView::new(vec![tmp.path().to_owned()]);
        let owner = |s: &str| resolve_owner(s, &view);
        assert_eq!(
            owner("app"),
            Ok(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(owner("app:staff"), Ok(Owner { uid: 1000, gid: 50 }));
        assert_eq!(
            owner("1234"),
            Ok(Owner {
                uid: 1234,
                gid: 1234
            })
        );
        assert_eq!(
            owner("1234:5678"),
            Ok(Owner {
                uid: 1234,
                gid: 5678
            })
        );
        assert_eq!(owner("root:app"), Ok(Owner { uid: 0, gid: 1001 }));
        assert_eq!(
            owner("nobody"),
            Err(OwnerError::UnknownUser("nobody".into()))
        );
        assert_eq!(
            owner("app:wheel"),
            Err(OwnerError::UnknownGroup("wheel".into()))
        );
    }
}
