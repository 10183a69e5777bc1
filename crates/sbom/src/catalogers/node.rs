//! Node.js packages: every `node_modules/NAME/package.json` (and `node_modules/@SCOPE/NAME/`),
//! and, for projects whose `node_modules` is not in the image, the packages their
//! `package-lock.json` (lockfile version 2 or 3) pins.

use super::file_name;
use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use crate::scan::Scan;
use serde_json::Value;
use std::path::{Component, Path};

pub(crate) fn catalog(scan: &Scan, out: &mut Catalog) {
    for file in scan.files() {
        match file_name(&file.path) {
            Some("package.json") if is_installed_manifest(&file.path) => {
                let Some(manifest) = read_json(scan, &file.path, out) else {
                    continue;
                };
                let (Some(name), Some(version)) = (
                    manifest.get("name").and_then(Value::as_str),
                    manifest.get("version").and_then(Value::as_str),
                ) else {
                    continue;
                };
                out.packages.push(package(
                    name,
                    version,
                    licenses(&manifest),
                    &file.path,
                    file.layer,
                ));
            }
            Some("package-lock.json") => {
                let modules = file.path.with_file_name("node_modules");
                if !scan.under(&modules).is_empty() {
                    // The modules themselves are in the image and say more than the lock.
                    continue;
                }
                let Some(lock) = read_json(scan, &file.path, out) else {
                    continue;
                };
                lockfile(&lock, &file.path, file.layer, out);
            }
            _ => {}
        }
    }
}

/// `…/node_modules/NAME/package.json` or `…/node_modules/@SCOPE/NAME/package.json`: a
/// package's own manifest, not a file further inside it (test fixtures, templates).
fn is_installed_manifest(path: &Path) -> bool {
    let names: Vec<&str> = path
        .components()
        .rev()
        .skip(1)
        .take(3)
        .filter_map(|component| match component {
            Component::Normal(name) => name.to_str(),
            _ => None,
        })
        .collect();
    match names.as_slice() {
        [_, "node_modules", ..] => true,
        [_, scope, "node_modules"] => scope.starts_with('@'),
        _ => false,
    }
}

fn read_json(scan: &Scan, path: &Path, out: &mut Catalog) -> Option<Value> {
    let parsed = scan
        .read(path)
        .map_err(|err| err.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|err| err.to_string()));
    match parsed {
        Ok(value) => Some(value),
        Err(err) => {
            out.notes
                .push(format!("{} not read: {err}", path.display()));
            None
        }
    }
}

/// The packages a lockfile pins (the project itself, key `""`, is not one of them; workspace
/// links have no version of their own).
fn lockfile(lock: &Value, path: &Path, layer: Option<usize>, out: &mut Catalog) {
    let version = lock.get("lockfileVersion").and_then(Value::as_u64);
    let Some(packages) = lock.get("packages").and_then(Value::as_object) else {
        out.notes.push(format!(
            "{} has lockfile version {}: only versions 2 and 3 are read",
            path.display(),
            version.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
        ));
        return;
    };
    for (key, entry) in packages {
        let Some(installed_as) = key.rsplit_once("node_modules/").map(|(_, name)| name) else {
            continue;
        };
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(installed_as);
        let Some(version) = entry.get("version").and_then(Value::as_str) else {
            continue;
        };
        out.packages
            .push(package(name, version, licenses(entry), path, layer));
    }
}

/// `"license": "MIT"`, the old `"license": {"type": "MIT"}` and `"licenses": [{"type": …}]`.
fn licenses(manifest: &Value) -> Vec<String> {
    let type_of = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(object) => object
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    let mut licenses: Vec<String> = manifest
        .get("license")
        .and_then(type_of)
        .into_iter()
        .collect();
    if let Some(list) = manifest.get("licenses").and_then(Value::as_array) {
        licenses.extend(list.iter().filter_map(type_of));
    }
    licenses.retain(|license| !license.trim().is_empty());
    licenses
}

fn package(
    name: &str,
    version: &str,
    licenses: Vec<String>,
    location: &Path,
    layer: Option<usize>,
) -> Package {
    let purl = match name.split_once('/') {
        Some((scope, bare)) => Purl::new("npm", bare, version).namespace(scope),
        None => Purl::new("npm", name, version),
    };
    Package {
        ecosystem: Ecosystem::Npm,
        name: name.to_owned(),
        version: version.to_owned(),
        purl: purl.to_string(),
        licenses,
        location: location.to_owned(),
        layer,
    }
}

#[cfg(test)]
mod tests {
    use crate::catalogers::fixture::{Fixture, row};
    use crate::package::Ecosystem;

    #[test]
    fn installed_modules_scoped_nested_and_not_inner_files() {
        let fixture = Fixture::new();
        fixture
            .file(
                "app/node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
            )
            .file(
                "app/node_modules/@types/node/package.json",
                r#"{"name":"@types/node","version":"20.1.0","license":{"type":"MIT"}}"#,
            )
            .file(
                "app/node_modules/a/node_modules/b/package.json",
                r#"{"name":"b","version":"2.0.0","licenses":[{"type":"ISC"},{"type":"MIT"}]}"#,
            )
            .file(
                "app/node_modules/a/package.json",
                r#"{"name":"a","version":"0.1.0"}"#,
            )
            // Inside a package, not a package.
            .file(
                "app/node_modules/a/test/fixture/package.json",
                r#"{"name":"fixture","version":"9.9.9"}"#,
            )
            // The project itself, outside node_modules, is not listed either.
            .file("app/package.json", r#"{"name":"app","version":"1.0.0"}"#)
            .file("app/node_modules/broken/package.json", "{not json");
        assert_eq!(
            fixture.found(Ecosystem::Npm),
            vec![
                row("@types/node", "20.1.0", "pkg:npm/%40types/node@20.1.0"),
                row("a", "0.1.0", "pkg:npm/a@0.1.0"),
                row("b", "2.0.0", "pkg:npm/b@2.0.0"),
                row("left-pad", "1.3.0", "pkg:npm/left-pad@1.3.0"),
            ]
        );
        let catalog = fixture.catalog();
        assert_eq!(catalog.packages[2].licenses, ["ISC", "MIT"]);
        assert_eq!(catalog.notes.len(), 1);
        assert!(catalog.notes[0].contains("broken/package.json not read"));
    }

    #[test]
    fn lockfile_only_where_modules_are_absent() {
        let lock = r#"{"name":"svc","lockfileVersion":3,"packages":{
            "":{"name":"svc","version":"1.0.0"},
            "node_modules/@scope/x":{"version":"1.0.0","license":"MIT"},
            "node_modules/y":{"version":"2.0.0"},
            "node_modules/y/node_modules/z":{"version":"3.0.0"},
            "packages/local":{"version":"0.0.1"},
            "node_modules/local":{"resolved":"packages/local","link":true}}}"#;
        let fixture = Fixture::new();
        fixture
            .file("srv/package-lock.json", lock)
            .file("built/package-lock.json", lock)
            .file(
                "built/node_modules/y/package.json",
                r#"{"name":"y","version":"2.0.0"}"#,
            )
            .file(
                "old/package-lock.json",
                r#"{"lockfileVersion":1,"dependencies":{}}"#,
            );
        let catalog = fixture.catalog();
        let from_lock: Vec<_> = catalog
            .packages
            .iter()
            .filter(|p| p.location.starts_with("/srv"))
            .map(|p| p.purl.as_str())
            .collect();
        assert_eq!(
            from_lock,
            [
                "pkg:npm/%40scope/x@1.0.0",
                "pkg:npm/y@2.0.0",
                "pkg:npm/z@3.0.0"
            ]
        );
        assert!(
            !catalog
                .packages
                .iter()
                .any(|p| p.location.starts_with("/built/package-lock.json"))
        );
        assert!(catalog.notes[0].contains("/old/package-lock.json has lockfile version 1"));
    }
}
