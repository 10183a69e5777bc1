//! Java archives (`.jar`, `.war`, `.ear`): the Maven coordinates in
//! `META-INF/maven/GROUP/ARTIFACT/pom.properties` (one per artifact, several in a shaded
//! jar), else what `META-INF/MANIFEST.MF` says. Archives inside archives (a war's
//! `WEB-INF/lib`, a Spring Boot jar's `BOOT-INF/lib`) are read too, one level down.

use crate::fields::{Continuation, Paragraph, paragraphs};
use crate::fs::FileEntry;
use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use crate::scan::{Scan, read_limited};
use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use zip::ZipArchive;

const EXTENSIONS: &[&str] = &["jar", "war", "ear"];
/// An archive inside an archive is read into memory; larger ones are skipped with a note.
const NESTED_LIMIT: u64 = 128 << 20;
/// Metadata entries (manifests, properties) are small.
const ENTRY_LIMIT: u64 = 1 << 20;
/// How many archive levels are opened (the image's file, and archives inside it).
const MAX_DEPTH: usize = 2;

pub(crate) fn catalog(scan: &Scan, out: &mut Catalog) {
    for file in scan.files() {
        if !is_archive(&file.path) {
            continue;
        }
        let opened = scan
            .open(&file.path)
            .map_err(|err| err.to_string())
            .and_then(|handle| ZipArchive::new(handle).map_err(|err| err.to_string()));
        match opened {
            Ok(archive) => read_archive(archive, &file.path, file, 1, out),
            Err(err) => out.notes.push(format!(
                "Java archive {} not read: {err}",
                file.path.display()
            )),
        }
    }
}

fn is_archive(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

/// Catalogs one archive; `location` names it (`/app.war!/WEB-INF/lib/x.jar` inside another),
/// `file` is the image's file it is in.
fn read_archive<R: Read + Seek>(
    mut archive: ZipArchive<R>,
    location: &Path,
    file: &FileEntry,
    depth: usize,
    out: &mut Catalog,
) {
    let mut names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|name| name.into_owned())
        .collect();
    names.sort();
    let package = |name: String, version: String, purl: Purl, licenses: Vec<String>| Package {
        ecosystem: Ecosystem::Maven,
        name,
        version,
        purl: purl.to_string(),
        licenses,
        location: location.to_owned(),
        layer: file.layer,
    };
    let mut from_poms = 0;
    for name in names.iter().filter(|name| is_pom_properties(name)) {
        let Some(text) = entry_text(&mut archive, name) else {
            continue;
        };
        let properties = properties(&text);
        let get = |key: &str| {
            properties
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let (Some(group), Some(artifact)) = (get("groupId"), get("artifactId")) else {
            continue;
        };
        let version = get("version").unwrap_or_default();
        let purl = Purl::new("maven", &artifact, &version).namespace(&group);
        out.packages.push(package(
            format!("{group}:{artifact}"),
            version,
            purl,
            Vec::new(),
        ));
        from_poms += 1;
    }
    if from_poms == 0
        && let Some(manifest) = entry_text(&mut archive, "META-INF/MANIFEST.MF")
        && let Some(main) = paragraphs(&manifest, Continuation::Glued)
            .into_iter()
            .next()
    {
        let (name, version, purl, licenses) = from_manifest(&main, location);
        out.packages.push(package(name, version, purl, licenses));
    }
    if depth >= MAX_DEPTH {
        return;
    }
    for name in names.iter().filter(|name| is_archive(Path::new(name))) {
        let inner_location = PathBuf::from(format!("{}!/{name}", location.display()));
        let nested = archive
            .by_name(name)
            .map_err(|err| err.to_string())
            .and_then(|entry| read_limited(entry, NESTED_LIMIT).map_err(|err| err.to_string()))
            .and_then(|bytes| ZipArchive::new(Cursor::new(bytes)).map_err(|err| err.to_string()));
        match nested {
            Ok(inner) => read_archive(inner, &inner_location, file, depth + 1, out),
            Err(err) => out.notes.push(format!(
                "Java archive {} not read: {err}",
                inner_location.display()
            )),
        }
    }
}

fn is_pom_properties(name: &str) -> bool {
    name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties")
}

fn entry_text<R: Read + Seek>(archive: &mut ZipArchive<R>, name: &str) -> Option<String> {
    let entry = archive.by_name(name).ok()?;
    let bytes = read_limited(entry, ENTRY_LIMIT).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `key=value` (or `key: value`) lines of a Java properties file, comments skipped. The
/// escapes of the full format do not occur in Maven's generated coordinates.
fn properties(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', '!']))
        .filter_map(|line| {
            let split = line.find(['=', ':'])?;
            Some((
                line[..split].trim().to_owned(),
                line[split + 1..].trim().to_owned(),
            ))
        })
        .collect()
}

/// Name, version, purl and licenses from a manifest's main section. Maven's jar plugin
/// writes the group as `Implementation-Vendor-Id`; OSGi bundles name themselves with
/// `Bundle-SymbolicName` (parameters after `;` dropped); the file name is the last resort.
fn from_manifest(main: &Paragraph, location: &Path) -> (String, String, Purl, Vec<String>) {
    let first = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| main.first_line(key))
            .map(str::to_owned)
    };
    let symbolic = main
        .first_line("Bundle-SymbolicName")
        .map(|name| name.split(';').next().unwrap_or(name).trim().to_owned());
    let stem = location
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let artifact = first(&["Implementation-Title"])
        .or(symbolic)
        .or_else(|| first(&["Specification-Title"]))
        .unwrap_or(stem);
    let version = first(&[
        "Implementation-Version",
        "Bundle-Version",
        "Specification-Version",
    ])
    .unwrap_or_default();
    let group = main.first_line("Implementation-Vendor-Id");
    let purl = Purl::new("maven", &artifact, &version).namespace(group.unwrap_or_default());
    let name = match group {
        Some(group) => format!("{group}:{artifact}"),
        None => artifact,
    };
    let licenses = main
        .first_line("Bundle-License")
        .map(str::to_owned)
        .into_iter()
        .collect();
    (name, version, purl, licenses)
}

#[cfg(test)]
mod tests {
    use crate::catalogers::fixture::{Fixture, row};
    use crate::package::Ecosystem;
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;

    fn jar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            writer
                .start_file(*name, SimpleFileOptions::default())
                .unwrap();
            writer.write_all(content).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn pom_properties_give_coordinates_and_shaded_jars_give_several() {
        let fixture = Fixture::new();
        fixture.file(
            "opt/app/lib/shaded-all.jar",
            jar(&[
                (
                    "META-INF/MANIFEST.MF",
                    b"Manifest-Version: 1.0\r\nImplementation-Title: ignored\r\n",
                ),
                (
                    "META-INF/maven/org.example/core/pom.properties",
                    b"# generated\nartifactId=core\ngroupId=org.example\nversion=2.1.0\n",
                ),
                (
                    "META-INF/maven/com.acme/util/pom.properties",
                    b"groupId: com.acme\nartifactId: util\nversion: 0.9\n",
                ),
            ]),
        );
        assert_eq!(
            fixture.found(Ecosystem::Maven),
            vec![
                row("com.acme:util", "0.9", "pkg:maven/com.acme/util@0.9"),
                row(
                    "org.example:core",
                    "2.1.0",
                    "pkg:maven/org.example/core@2.1.0"
                ),
            ]
        );
    }

    #[test]
    fn manifest_only_and_nested_archives() {
        let inner = jar(&[(
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\nBundle-SymbolicName: org.example.bundle;singleton:=true\n\
              Bundle-Version: 4.0.0\nBundle-License: Apache-2.0\n",
        )]);
        let outer = jar(&[
            (
                "META-INF/MANIFEST.MF",
                b"Manifest-Version: 1.0\nImplementation-Title: webapp\n\
                  Implementation-Version: 1.2\nImplementation-Vendor-Id: com.shop\n",
            ),
            ("WEB-INF/lib/bundle.jar", &inner),
            ("WEB-INF/lib/broken.jar", b"not a zip"),
        ]);
        let fixture = Fixture::new();
        fixture
            .file("srv/webapp.war", &outer)
            .file("srv/plain.jar", jar(&[("x.class", b"")]))
            .file("srv/junk.jar", b"junk");
        let catalog = fixture.catalog();
        let rows: Vec<_> = catalog
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.purl.as_str(),
                    p.location.to_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "com.shop:webapp",
                    "pkg:maven/com.shop/webapp@1.2",
                    "/srv/webapp.war"
                ),
                (
                    "org.example.bundle",
                    "pkg:maven/org.example.bundle@4.0.0",
                    "/srv/webapp.war!/WEB-INF/lib/bundle.jar"
                ),
            ]
        );
        assert_eq!(catalog.packages[1].licenses, ["Apache-2.0"]);
        assert_eq!(catalog.notes.len(), 2, "{:?}", catalog.notes);
        assert!(catalog.notes[0].contains("/srv/junk.jar"));
        assert!(catalog.notes[1].contains("/srv/webapp.war!/WEB-INF/lib/broken.jar"));
    }
}
