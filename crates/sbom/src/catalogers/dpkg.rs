//! Debian and Ubuntu packages: the dpkg status database, and the one-file-per-package
//! `status.d/` directory that distroless images use instead.

use crate::fields::{Continuation, Paragraph, paragraphs};
use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use crate::scan::Scan;
use std::path::{Path, PathBuf};

const STATUS: &str = "/var/lib/dpkg/status";
const STATUS_D: &str = "/var/lib/dpkg/status.d";

pub(crate) fn catalog(scan: &Scan, out: &mut Catalog) {
    let mut databases: Vec<&Path> = Vec::new();
    if scan.entry(Path::new(STATUS)).is_some() {
        databases.push(Path::new(STATUS));
    }
    databases.extend(
        scan.under(Path::new(STATUS_D))
            .iter()
            .map(|file| file.path.as_path())
            // Newer distroless images keep each package's checksums beside it.
            .filter(|path| path.extension().is_none_or(|ext| ext != "md5sums")),
    );
    for database in databases {
        let text = match scan.read_text(database) {
            Ok(text) => text,
            Err(err) => {
                out.notes.push(format!(
                    "dpkg database {} not read: {err}",
                    database.display()
                ));
                continue;
            }
        };
        for paragraph in paragraphs(&text, Continuation::Folded) {
            if let Some(package) = package(scan, &paragraph, database) {
                out.packages.push(package);
            }
        }
    }
}

fn package(scan: &Scan, paragraph: &Paragraph, database: &Path) -> Option<Package> {
    // `status` keeps removed packages whose configuration files remain; status.d has no
    // Status field at all, every entry there is installed.
    if let Some(status) = paragraph.get("Status")
        && status.split_whitespace().last() != Some("installed")
    {
        return None;
    }
    let name = paragraph.first_line("Package")?;
    let version = paragraph.first_line("Version").unwrap_or_default();
    let arch = paragraph.first_line("Architecture").unwrap_or_default();
    let distro = &scan.distro;
    let mut purl = Purl::new("deb", name, version)
        .namespace(distro.id.as_deref().unwrap_or("debian"))
        .qualifier("arch", arch)
        .qualifier("distro", &distro.qualifier());
    if let Some(upstream) = upstream(paragraph, name, version) {
        purl = purl.qualifier("upstream", &upstream);
    }
    // A package's file list appears when dpkg installs it, so its layer is the package's
    // (the status file itself is rewritten by every layer that installs anything).
    let list = [format!("{name}:{arch}.list"), format!("{name}.list")]
        .into_iter()
        .map(|list| PathBuf::from("/var/lib/dpkg/info").join(list))
        .find_map(|list| scan.layer_of(&list));
    Some(Package {
        ecosystem: Ecosystem::Deb,
        name: name.to_owned(),
        version: version.to_owned(),
        purl: purl.to_string(),
        licenses: copyright_licenses(scan, name),
        location: database.to_owned(),
        layer: list.or_else(|| scan.layer_of(database)),
    })
}

/// The source package when it differs from the binary one (`Source: glibc (2.36-9)`), as
/// syft's `upstream` qualifier: `NAME` or `NAME@VERSION` when the versions differ.
fn upstream(paragraph: &Paragraph, name: &str, version: &str) -> Option<String> {
    let source = paragraph.first_line("Source")?;
    let (source_name, source_version) = match source.split_once(' ') {
        Some((source_name, rest)) => (
            source_name,
            rest.trim()
                .strip_prefix('(')
                .and_then(|rest| rest.strip_suffix(')')),
        ),
        None => (source, None),
    };
    match source_version {
        Some(source_version) if source_version != version => {
            Some(format!("{source_name}@{source_version}"))
        }
        _ if source_name != name => Some(source_name.to_owned()),
        _ => None,
    }
}

/// The `License:` names of a machine-readable (DEP-5) copyright file, sorted and distinct.
/// Free-form copyright files state no license a program can read: none then.
fn copyright_licenses(scan: &Scan, name: &str) -> Vec<String> {
    let path = PathBuf::from("/usr/share/doc").join(name).join("copyright");
    let Ok(text) = scan.read_text(&path) else {
        return Vec::new();
    };
    let paragraphs = paragraphs(&text, Continuation::Folded);
    let machine_readable = paragraphs
        .first()
        .and_then(|header| header.get("Format"))
        .is_some_and(|format| format.contains("copyright-format"));
    if !machine_readable {
        return Vec::new();
    }
    let mut licenses: Vec<String> = paragraphs
        .iter()
        .filter_map(|paragraph| paragraph.first_line("License"))
        .map(str::to_owned)
        .collect();
    licenses.sort();
    licenses.dedup();
    licenses
}

#[cfg(test)]
mod tests {
    use crate::catalogers::fixture::{Fixture, row};
    use crate::package::Ecosystem;
    use std::path::Path;

    const STATUS: &str = "\
Package: toolbox
Status: install ok installed
Architecture: amd64
Version: 1:2.5-3
Source: toolkit (2.5-1)
Description: a made-up package
 spanning two lines

Package: gone
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: libwidget2
Status: install ok installed
Architecture: arm64
Multi-Arch: same
Version: 0.9+git20240101-1
Source: widget
";

    #[test]
    fn installed_packages_with_distro_and_upstream() {
        let mut fixture = Fixture::new();
        fixture
            .file("etc/os-release", "ID=ubuntu\nVERSION_ID=\"24.04\"\n")
            .file("var/lib/dpkg/status", STATUS)
            .file("var/lib/dpkg/info/toolbox.list", "/usr/bin/toolbox\n")
            .file("var/lib/dpkg/info/libwidget2:arm64.list", "/usr/lib/w\n");
        fixture
            .layer("/var/lib/dpkg", 0)
            .layer("/var/lib/dpkg/info/libwidget2:arm64.list", 4);
        assert_eq!(
            fixture.found(Ecosystem::Deb),
            vec![
                row(
                    "libwidget2",
                    "0.9+git20240101-1",
                    "pkg:deb/ubuntu/libwidget2@0.9%2Bgit20240101-1?arch=arm64&distro=ubuntu-24.04&upstream=widget"
                ),
                row(
                    "toolbox",
                    "1:2.5-3",
                    "pkg:deb/ubuntu/toolbox@1%3A2.5-3?arch=amd64&distro=ubuntu-24.04&upstream=toolkit%402.5-1"
                ),
            ]
        );
        let catalog = fixture.catalog();
        let layers: Vec<_> = catalog.packages.iter().map(|p| p.layer).collect();
        assert_eq!(layers, [Some(4), Some(0)]);
    }

    #[test]
    fn distroless_status_d_and_machine_readable_copyright() {
        let fixture = Fixture::new();
        fixture
            .file(
                "var/lib/dpkg/status.d/base-files",
                "Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
            )
            .file(
                "var/lib/dpkg/status.d/base-files.md5sums",
                "abc  etc/issue\n",
            )
            .file(
                "usr/share/doc/base-files/copyright",
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                 Upstream-Name: base\n\n\
                 Files: *\nCopyright: someone\nLicense: GPL-2+\n\n\
                 Files: extra/*\nCopyright: someone else\nLicense: BSD-3-clause\n\n\
                 License: GPL-2+\n On Debian systems the text is in common-licenses.\n",
            );
        let catalog = fixture.catalog();
        assert_eq!(catalog.packages.len(), 1);
        let package = &catalog.packages[0];
        assert_eq!(package.purl, "pkg:deb/debian/base-files@12.4?arch=amd64");
        assert_eq!(package.licenses, ["BSD-3-clause", "GPL-2+"]);
        assert_eq!(
            package.location,
            Path::new("/var/lib/dpkg/status.d/base-files")
        );
    }

    #[test]
    fn free_form_copyright_states_no_license() {
        let fixture = Fixture::new();
        fixture
            .file(
                "var/lib/dpkg/status",
                "Package: old\nStatus: install ok installed\nVersion: 1\n",
            )
            .file(
                "usr/share/doc/old/copyright",
                "This package is under the License: MIT, more or less.\n",
            );
        assert!(fixture.catalog().packages[0].licenses.is_empty());
    }
}
