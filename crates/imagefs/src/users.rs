//! `/etc/passwd` and `/etc/group` as the C library reads them: one `name:password:id:…` entry
//! a line; lines that do not have that shape are skipped.

/// The `(name, uid, gid)` of each entry of a passwd file.
pub fn passwd_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((name, uid, gid))
    })
}

/// The `(name, gid)` of each entry of a group file.
pub fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32)> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let id = fields.next()?.parse().ok()?;
        Some((name, id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_skipped() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken:x:zero:0\napp:x:1000:1001::/home/app:/bin/sh\n";
        let users: Vec<_> = passwd_entries(passwd).collect();
        assert_eq!(users, [("root", 0, 0), ("app", 1000, 1001)]);
        let groups: Vec<_> = group_entries("root:x:0:\nstaff:x:50:app\nnoid:x\n").collect();
        assert_eq!(groups, [("root", 0), ("staff", 50)]);
    }
}
