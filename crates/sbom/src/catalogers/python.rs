//! Python distributions installed anywhere (site-packages, dist-packages, virtual
//! environments): `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, and the single-file
//! `*.egg-info` older installers wrote. All are RFC 822 headers (the core metadata spec).

use super::file_name;
use crate::fields::{Paragraph, headers};
use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use crate::scan::Scan;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Trove classifiers that name exactly one SPDX license. Others (`BSD License`, `Apache
/// Software License`: which version?) stay as written and become `LicenseRef-`s.
const CLASSIFIERS: &[(&str, &str)] = &[
    ("MIT License", "MIT"),
    ("MIT No Attribution License (MIT-0)", "MIT-0"),
    ("ISC License (ISCL)", "ISC"),
    ("Mozilla Public License 2.0 (MPL 2.0)", "MPL-2.0"),
    ("GNU General Public License v2 (GPLv2)", "GPL-2.0-only"),
    (
        "GNU General Public License v2 or later (GPLv2+)",
        "GPL-2.0-or-later",
    ),
    ("GNU General Public License v3 (GPLv3)", "GPL-3.0-only"),
    (
        "GNU General Public License v3 or later (GPLv3+)",
        "GPL-3.0-or-later",
    ),
    (
        "GNU Lesser General Public License v3 (LGPLv3)",
        "LGPL-3.0-only",
    ),
    (
        "GNU Lesser General Public License v3 or later (LGPLv3+)",
        "LGPL-3.0-or-later",
    ),
    ("GNU Affero General Public License v3", "AGPL-3.0-only"),
    ("Python Software Foundation License", "PSF-2.0"),
    ("The Unlicense (Unlicense)", "Unlicense"),
    ("Boost Software License 1.0 (BSL-1.0)", "BSL-1.0"),
    ("zlib/libpng License", "Zlib"),
];

pub(crate) fn catalog(scan: &Scan, out: &mut Catalog) {
    let mut found = Vec::new();
    for file in scan.files() {
        let Some(kind) = metadata_kind(&file.path) else {
            continue;
        };
        let text = match scan.read_text(&file.path) {
            Ok(text) => text,
            Err(err) => {
                out.notes.push(format!(
                    "Python metadata {} not read: {err}",
                    file.path.display()
                ));
                continue;
            }
        };
        let headers = headers(&text);
        let (Some(name), Some(version)) =
            (headers.first_line("Name"), headers.first_line("Version"))
        else {
            continue;
        };
        let normalised = normalise(name);
        found.push(Found {
            kind,
            site: site_of(&file.path, kind).to_owned(),
            package: Package {
                ecosystem: Ecosystem::Python,
                name: name.to_owned(),
                version: version.to_owned(),
                purl: Purl::new("pypi", &normalised, version).to_string(),
                licenses: licenses(&headers),
                location: file.path.clone(),
                layer: file.layer,
            },
            normalised,
        });
    }
    // A distribution with a dist-info directory in a site directory is that distribution
    // there: an egg-info of the same name beside it (Debian's python3-cryptography ships
    // both) is shadowed, as importlib.metadata, and so pip, resolve it.
    let installed: HashSet<(PathBuf, String)> = found
        .iter()
        .filter(|found| found.kind == Kind::DistInfo)
        .map(|found| (found.site.clone(), found.normalised.clone()))
        .collect();
    out.packages.extend(
        found
            .into_iter()
            .filter(|found| {
                found.kind == Kind::DistInfo
                    || !installed.contains(&(found.site.clone(), found.normalised.clone()))
            })
            .map(|found| found.package),
    );
}

/// Which kind of metadata a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `NAME-VERSION.dist-info/METADATA` (wheels, pip).
    DistInfo,
    /// `NAME.egg-info/PKG-INFO` or the single file `NAME.egg-info` (setuptools, eggs).
    EggInfo,
}

/// A distribution read, with what decides whether another one shadows it.
struct Found {
    kind: Kind,
    /// The directory the distribution is installed in (`site-packages`).
    site: PathBuf,
    /// Its PEP 503 name.
    normalised: String,
    package: Package,
}

fn metadata_kind(path: &Path) -> Option<Kind> {
    let parent = path.parent().and_then(file_name).unwrap_or_default();
    match file_name(path)? {
        "METADATA" => parent.ends_with(".dist-info").then_some(Kind::DistInfo),
        "PKG-INFO" => parent.ends_with(".egg-info").then_some(Kind::EggInfo),
        name => name.ends_with(".egg-info").then_some(Kind::EggInfo),
    }
}

/// The site directory of a metadata file: the parent of its `*-info` directory, or of the
/// single-file `*.egg-info` itself.
fn site_of(path: &Path, kind: Kind) -> &Path {
    let info = match (kind, file_name(path)) {
        (Kind::EggInfo, Some(name)) if name.ends_with(".egg-info") => path,
        _ => path.parent().unwrap_or(path),
    };
    info.parent().unwrap_or(info)
}

/// PEP 503's normalised name, which the purl specification asks for PyPI: lower case, every
/// run of `-`, `_` and `.` one `-`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `License-Expression` (PEP 639) when there is one; else the free-text `License` field;
/// else the license classifiers.
fn licenses(headers: &Paragraph) -> Vec<String> {
    if let Some(expression) = headers.first_line("License-Expression") {
        return vec![expression.to_owned()];
    }
    if let Some(license) = headers.get("License").map(str::trim)
        && !license.is_empty()
        && license != "UNKNOWN"
    {
        return vec![license.to_owned()];
    }
    headers
        .all("Classifier")
        .filter_map(|classifier| classifier.strip_prefix("License ::"))
        .map(|classifier| {
            let last = classifier.rsplit("::").next().unwrap_or_default().trim();
            CLASSIFIERS
                .iter()
                .find(|(name, _)| *name == last)
                .map_or(last, |(_, id)| id)
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::normalise;
    use crate::catalogers::fixture::{Fixture, row};
    use crate::package::Ecosystem;

    #[test]
    fn names_are_normalised_for_the_purl_only() {
        assert_eq!(normalise("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(normalise("typing_extensions"), "typing-extensions");
    }

    #[test]
    fn dist_info_egg_info_and_single_file_egg_info() {
        let fixture = Fixture::new();
        let site = "opt/venv/lib/python3.12/site-packages";
        fixture
            .file(
                &format!("{site}/Zope.Interface-6.0.dist-info/METADATA"),
                "Metadata-Version: 2.1\nName: Zope.Interface\nVersion: 6.0\n\
                 License: ZPL 2.1\n\nName: not-this\n",
            )
            .file(
                &format!("{site}/Zope.Interface-6.0.dist-info/RECORD"),
                "zope/__init__.py,,\n",
            )
            .file(
                "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                "Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\nLicense: MIT\n",
            )
            .file(
                "usr/lib/python3/dist-packages/legacy_thing-0.3.egg-info",
                "Metadata-Version: 1.0\nName: legacy_thing\nVersion: 0.3\nLicense: UNKNOWN\n",
            )
            // Not metadata: a METADATA file outside a dist-info directory.
            .file(&format!("{site}/pkg/METADATA"), "Name: fake\nVersion: 1\n");
        assert_eq!(
            fixture.found(Ecosystem::Python),
            vec![
                row("Zope.Interface", "6.0", "pkg:pypi/zope-interface@6.0"),
                row("legacy_thing", "0.3", "pkg:pypi/legacy-thing@0.3"),
                row("six", "1.16.0", "pkg:pypi/six@1.16.0"),
            ]
        );
        let licenses: Vec<_> = fixture
            .catalog()
            .packages
            .into_iter()
            .map(|p| p.licenses)
            .collect();
        assert_eq!(
            licenses,
            [vec!["ZPL 2.1".to_owned()], vec![], vec!["MIT".to_owned()]]
        );
    }

    #[test]
    fn a_dist_info_shadows_an_egg_info_of_the_same_name_in_its_directory() {
        let fixture = Fixture::new();
        let site = "usr/lib/python3/dist-packages";
        let metadata = "Metadata-Version: 2.1\nName: cryptography\nVersion: 38.0.4\n";
        fixture
            .file(
                &format!("{site}/cryptography-38.0.4.dist-info/METADATA"),
                metadata,
            )
            .file(&format!("{site}/cryptography.egg-info/PKG-INFO"), metadata)
            // Spelt differently, still the same distribution.
            .file(
                &format!("{site}/Six-1.16.0.dist-info/METADATA"),
                "Name: Six\nVersion: 1.16.0\n",
            )
            .file(
                &format!("{site}/six.egg-info"),
                "Name: six\nVersion: 1.15.0\n",
            )
            // Another directory is another installation.
            .file(
                "opt/venv/lib/python3.11/site-packages/cryptography.egg-info/PKG-INFO",
                metadata,
            );
        let found: Vec<_> = fixture
            .catalog()
            .packages
            .into_iter()
            .map(|p| p.location.display().to_string())
            .collect();
        assert_eq!(
            found,
            [
                "/usr/lib/python3/dist-packages/Six-1.16.0.dist-info/METADATA",
                "/opt/venv/lib/python3.11/site-packages/cryptography.egg-info/PKG-INFO",
                "/usr/lib/python3/dist-packages/cryptography-38.0.4.dist-info/METADATA",
            ]
        );
    }

    #[test]
    fn license_expression_wins_then_classifiers_fill_in() {
        let fixture = Fixture::new();
        fixture
            .file(
                "site/a-1.dist-info/METADATA",
                "Name: a\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\nLicense: see file\n",
            )
            .file(
                "site/b-2.dist-info/METADATA",
                "Name: b\nVersion: 2\nClassifier: License :: OSI Approved :: MIT License\n\
                 Classifier: License :: OSI Approved :: BSD License\n\
                 Classifier: Programming Language :: Python\n",
            );
        let licenses: Vec<_> = fixture
            .catalog()
            .packages
            .into_iter()
            .map(|p| p.licenses)
            .collect();
        assert_eq!(
            licenses,
            [vec!["MIT OR Apache-2.0"], vec!["MIT", "BSD License"]]
        );
    }
}
