//! RPM databases. Reading them needs SQLite (Fedora ≥ 33, RHEL ≥ 9), Berkeley DB (older) or
//! the ndb format (SUSE); none is read yet, and a C SQLite library is too heavy a dependency
//! for what it gives. An image with one gets a note that its RPM packages are not listed, so
//! nobody mistakes the SBOM for complete.

use crate::package::Catalog;
use crate::scan::Scan;

/// Where distributions keep the database, and which format each file name means.
const DATABASES: &[(&str, &str)] = &[
    ("/var/lib/rpm/rpmdb.sqlite", "SQLite"),
    ("/usr/lib/sysimage/rpm/rpmdb.sqlite", "SQLite"),
    ("/var/lib/rpm/Packages", "Berkeley DB"),
    ("/usr/lib/sysimage/rpm/Packages", "Berkeley DB"),
    ("/var/lib/rpm/Packages.db", "ndb"),
    ("/usr/lib/sysimage/rpm/Packages.db", "ndb"),
];

pub(crate) fn catalog(scan: &Scan, out: &mut Catalog) {
    for (path, format) in DATABASES {
        if scan.entry(std::path::Path::new(path)).is_some() {
            out.notes.push(format!(
                "RPM database {path} ({format}) not read: RPM packages are not listed"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalogers::fixture::Fixture;

    #[test]
    fn a_database_present_gives_a_note() {
        let fixture = Fixture::new();
        assert!(fixture.catalog().notes.is_empty());
        fixture.file("var/lib/rpm/rpmdb.sqlite", "SQLite format 3\0");
        let notes = fixture.catalog().notes;
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("/var/lib/rpm/rpmdb.sqlite (SQLite) not read"));
    }
}
