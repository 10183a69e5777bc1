//! Alpine packages: apk's `installed` database, one paragraph of `K:value` lines per package.
//! Keys are single letters and case matters (`P` is the name, `p` what it provides).

use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use crate::scan::Scan;
use std::path::{Path, PathBuf};

const INSTALLED: &str = "/lib/apk/db/installed";

pub(crate) fn catalog(scan: &Scan, out: &mut Catalog) {
    let database = Path::new(INSTALLED);
    if scan.entry(database).is_none() {
        return;
    }
    let text = match scan.read_text(database) {
        Ok(text) => text,
        Err(err) => {
            out.notes
                .push(format!("apk database {INSTALLED} not read: {err}"));
            return;
        }
    };
    let mut record = Record::default();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let Some(package) = record.package(scan, database) {
                out.packages.push(package);
            }
            record = Record::default();
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "P" => record.name = value.to_owned(),
            "V" => record.version = value.to_owned(),
            "A" => record.arch = value.to_owned(),
            "L" => record.license = value.to_owned(),
            "o" => record.origin = value.to_owned(),
            "F" => record.dir = Some(value.to_owned()),
            // The package's first file tells its layer, as the database itself is rewritten
            // by every layer that installs anything.
            "R" if record.first_file.is_none() => {
                let dir = record.dir.as_deref().unwrap_or_default();
                record.first_file = Some(Path::new("/").join(dir).join(value));
            }
            _ => {}
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    name: String,
    version: String,
    arch: String,
    license: String,
    origin: String,
    dir: Option<String>,
    first_file: Option<PathBuf>,
}

impl Record {
    fn package(&self, scan: &Scan, database: &Path) -> Option<Package> {
        if self.name.is_empty() {
            return None;
        }
        let distro = &scan.distro;
        let upstream = if self.origin != self.name {
            self.origin.as_str()
        } else {
            ""
        };
        let purl = Purl::new("apk", &self.name, &self.version)
            .namespace(distro.id.as_deref().unwrap_or("alpine"))
            .qualifier("arch", &self.arch)
            .qualifier("distro", &distro.qualifier())
            .qualifier("upstream", upstream);
        let layer = self
            .first_file
            .as_deref()
            .and_then(|file| scan.layer_of(file))
            .or_else(|| scan.layer_of(database));
        Some(Package {
            ecosystem: Ecosystem::Apk,
            name: self.name.clone(),
            version: self.version.clone(),
            purl: purl.to_string(),
            licenses: (!self.license.is_empty())
                .then(|| self.license.clone())
                .into_iter()
                .collect(),
            location: database.to_owned(),
            layer,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::catalogers::fixture::{Fixture, row};
    use crate::package::Ecosystem;

    #[test]
    fn packages_with_origin_license_and_layer_of_their_first_file() {
        let mut fixture = Fixture::new();
        fixture
            .file("etc/os-release", "ID=alpine\nVERSION_ID=3.20.3\n")
            .file(
                "lib/apk/db/installed",
                "C:Q1abc=\nP:musl-utils\nV:1.2.5-r0\nA:x86_64\nL:MIT AND BSD-2-Clause\no:musl\n\
                 p:cmd:ldd=1.2.5-r0\nF:usr/bin\nR:ldd\nR:iconv\n\n\
                 P:zlib\nV:1.3.1-r1\nA:x86_64\nL:Zlib\no:zlib\nF:lib\nR:libz.so.1\n",
            )
            .file("usr/bin/ldd", "")
            .file("lib/libz.so.1", "");
        fixture.layer("/", 0).layer("/usr/bin", 2);
        assert_eq!(
            fixture.found(Ecosystem::Apk),
            vec![
                row(
                    "musl-utils",
                    "1.2.5-r0",
                    "pkg:apk/alpine/musl-utils@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3&upstream=musl"
                ),
                row(
                    "zlib",
                    "1.3.1-r1",
                    "pkg:apk/alpine/zlib@1.3.1-r1?arch=x86_64&distro=alpine-3.20.3"
                ),
            ]
        );
        let catalog = fixture.catalog();
        assert_eq!(catalog.packages[0].licenses, ["MIT AND BSD-2-Clause"]);
        assert_eq!(catalog.packages[0].layer, Some(2));
        assert_eq!(catalog.packages[1].layer, Some(0));
    }
}
