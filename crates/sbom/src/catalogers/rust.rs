//! Rust crates: binaries built with `cargo auditable` (a `.dep-v0` section holding the
//! zlib-compressed JSON dependency list) and `Cargo.lock` files.

use super::file_name;
use crate::fs::FileEntry;
use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use crate::scan::{Scan, read_limited};
use object::{Object, ObjectSection, ReadRef};
use serde::Deserialize;
use std::path::Path;

/// The decompressed dependency list is small JSON; more is a zip bomb.
const AUDIT_LIMIT: u64 = 64 << 20;

/// Both formats list packages by name and version; nothing else is needed.
#[derive(Debug, Deserialize)]
struct Crate {
    name: String,
    version: String,
}

/// `cargo auditable`'s format (`{"packages": [...]}`).
#[derive(Debug, Deserialize)]
struct AuditData {
    packages: Vec<Crate>,
}

/// `Cargo.lock` (`[[package]]` tables).
#[derive(Debug, Deserialize)]
struct Lockfile {
    #[serde(default)]
    package: Vec<Crate>,
}

pub(crate) fn catalog_binary<'data, R: ReadRef<'data>>(
    elf: &object::File<'data, R>,
    file: &FileEntry,
    out: &mut Catalog,
) {
    let Some(section) = elf.section_by_name(".dep-v0") else {
        return;
    };
    let parsed = section
        .data()
        .map_err(|err| err.to_string())
        .and_then(|compressed| {
            read_limited(flate2::read::ZlibDecoder::new(compressed), AUDIT_LIMIT)
                .map_err(|err| err.to_string())
        })
        .and_then(|json| serde_json::from_slice::<AuditData>(&json).map_err(|err| err.to_string()));
    match parsed {
        Ok(audit) => push_all(audit.packages, &file.path, file.layer, out),
        Err(err) => out.notes.push(format!(
            "cargo auditable data of {} not read: {err}",
            file.path.display()
        )),
    }
}

pub(crate) fn catalog_lockfiles(scan: &Scan, out: &mut Catalog) {
    for file in scan.files() {
        if file_name(&file.path) != Some("Cargo.lock") {
            continue;
        }
        let parsed = scan
            .read_text(&file.path)
            .map_err(|err| err.to_string())
            .and_then(|text| toml::from_str::<Lockfile>(&text).map_err(|err| err.to_string()));
        match parsed {
            Ok(lock) => push_all(lock.package, &file.path, file.layer, out),
            Err(err) => out
                .notes
                .push(format!("{} not read: {err}", file.path.display())),
        }
    }
}

fn push_all(crates: Vec<Crate>, location: &Path, layer: Option<usize>, out: &mut Catalog) {
    out.packages.extend(crates.into_iter().map(|krate| Package {
        ecosystem: Ecosystem::Cargo,
        purl: Purl::new("cargo", &krate.name, &krate.version).to_string(),
        name: krate.name,
        version: krate.version,
        licenses: Vec::new(),
        location: location.to_owned(),
        layer,
    }));
}

#[cfg(test)]
mod tests {
    use crate::catalogers::binary::test_elf::{Section, elf64};
    use crate::catalogers::fixture::{Fixture, row};
    use crate::package::Ecosystem;
    use std::io::Write;

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn auditable_binary_lists_its_crates() {
        let fixture = Fixture::new();
        let json = br#"{"packages":[
            {"name":"mytool","version":"0.3.0","source":"local","root":true,"dependencies":[1]},
            {"name":"serde","version":"1.0.200","source":"crates.io","kind":"runtime"}]}"#;
        fixture
            .executable(
                "usr/local/bin/mytool",
                elf64(&[Section {
                    name: ".dep-v0",
                    address: 0x2000,
                    data: zlib(json),
                }]),
            )
            .executable(
                "usr/local/bin/corrupt",
                elf64(&[Section {
                    name: ".dep-v0",
                    address: 0x2000,
                    data: b"not zlib".to_vec(),
                }]),
            );
        let catalog = fixture.catalog();
        assert_eq!(
            crate::catalogers::fixture::summary(&catalog.packages, Ecosystem::Cargo),
            vec![
                row("mytool", "0.3.0", "pkg:cargo/mytool@0.3.0"),
                row("serde", "1.0.200", "pkg:cargo/serde@1.0.200"),
            ]
        );
        assert_eq!(catalog.notes.len(), 1);
        assert!(catalog.notes[0].contains("/usr/local/bin/corrupt"));
    }

    #[test]
    fn lockfile_packages_with_duplicates_merged() {
        let fixture = Fixture::new();
        fixture
            .file(
                "src/app/Cargo.lock",
                "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\
                 dependencies = [\"itoa\"]\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\n\
                 source = \"registry+https://github.com/rust-lang/crates.io-index\"\n\
                 checksum = \"abc\"\n\n[[package]]\nname = \"itoa\"\nversion = \"1.0.11\"\n\
                 source = \"git+https://example.com/itoa#abc\"\n",
            )
            .file("src/bad/Cargo.lock", "[[package]\nname=");
        let catalog = fixture.catalog();
        assert_eq!(
            crate::catalogers::fixture::summary(&catalog.packages, Ecosystem::Cargo),
            vec![
                row("app", "0.1.0", "pkg:cargo/app@0.1.0"),
                row("itoa", "1.0.11", "pkg:cargo/itoa@1.0.11"),
            ]
        );
        assert!(catalog.notes[0].starts_with("/src/bad/Cargo.lock not read"));
    }
}
