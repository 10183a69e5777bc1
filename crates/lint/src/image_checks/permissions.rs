//! `WorldWritableOrSetuid`: setuid/setgid files, world-writable files and world-writable
//! directories without the sticky bit that the build's own layers add. One problem per layer
//! and kind, so that a `chmod -R 777` makes one finding, not thousands.

use super::{Place, Problem, some_paths};
use crate::rules;
use stagecraft_imagefs::{EntryKind, FileEntry};
use std::collections::BTreeMap;

/// The kinds of entry reported, in the order their findings come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Setuid,
    WritableFile,
    WritableDir,
}

pub(super) fn check(entries: &[FileEntry], problems: &mut Vec<Problem>) {
    let mut found: BTreeMap<(Kind, Option<usize>), Vec<&FileEntry>> = BTreeMap::new();
    for entry in entries {
        let kind = match entry.kind {
            EntryKind::File if entry.mode & 0o6000 != 0 => Kind::Setuid,
            EntryKind::File if entry.mode & 0o002 != 0 => Kind::WritableFile,
            // A setgid directory only passes its group on; a sticky one (like /tmp) keeps
            // users from removing each other's files.
            EntryKind::Dir if entry.mode & 0o002 != 0 && entry.mode & 0o1000 == 0 => {
                Kind::WritableDir
            }
            _ => continue,
        };
        found.entry((kind, entry.layer)).or_default().push(entry);
    }
    for ((kind, layer), mut entries) in found {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let paths: Vec<String> = entries
            .iter()
            .map(|entry| format!("{} ({:04o})", entry.path.display(), entry.mode))
            .collect();
        let (what, hint) = match kind {
            Kind::Setuid => (
                "setuid or setgid files",
                "drop the bit (chmod u-s,g-s) unless the program needs it: a container that runs as a user rarely needs a way back to root (and `--security-opt no-new-privileges` disables it at run time)",
            ),
            Kind::WritableFile => (
                "world-writable files",
                "give the files to the user that needs them (COPY --chown=app --chmod=644) rather than letting every process change them",
            ),
            Kind::WritableDir => (
                "world-writable directories without the sticky bit",
                "give the directory to the user that writes it (chown), or make it sticky like /tmp (chmod 1777)",
            ),
        };
        problems.push(Problem {
            rule: &rules::WorldWritableOrSetuid,
            place: Place::Layer(layer),
            message: format!("adds {what}: {}", some_paths(&paths)),
            hint: hint.to_owned(),
        });
    }
}
