//! `UserNotInImage`: a `USER` name (and group) the container runtime will not find in the
//! image's `/etc/passwd` (`/etc/group`). Numeric ids need no entry.

use super::{CheckedImage, Place, Problem, Setting};
use crate::rules;
use stagecraft_imagefs::users::{group_entries, passwd_entries};

pub(super) fn check(image: &CheckedImage<'_>, problems: &mut Vec<Problem>) {
    let spec = image.config.config.user.trim();
    if spec.is_empty() {
        return;
    }
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let mut missing = Vec::new();
    if is_name(user) {
        let found = image
            .read_text("/etc/passwd")
            .is_some_and(|text| passwd_entries(&text).any(|(name, ..)| name == user));
        if !found {
            missing.push(format!("user {user} is not in the image's /etc/passwd"));
        }
    }
    if let Some(group) = group.filter(|group| is_name(group)) {
        let found = image
            .read_text("/etc/group")
            .is_some_and(|text| group_entries(&text).any(|(name, _)| name == group));
        if !found {
            missing.push(format!("group {group} is not in the image's /etc/group"));
        }
    }
    if missing.is_empty() {
        return;
    }
    problems.push(Problem {
        rule: &rules::UserNotInImage,
        place: Place::Setting(Setting::User, None),
        message: format!(
            "USER {spec}: {}; containers will fail to start",
            missing.join(", and ")
        ),
        hint: "create the user in the final stage (RUN adduser / useradd), copy an /etc/passwd (and /etc/group) that has it, or use numeric ids (USER 10001:10001), which need no entry".to_owned(),
    });
}

/// Whether a `USER` part is a name to look up (numbers are ids as they are).
fn is_name(part: &str) -> bool {
    !part.is_empty() && part.parse::<u32>().is_err()
}
