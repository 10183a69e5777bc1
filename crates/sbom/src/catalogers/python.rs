//! Python distributions installed anywhere (site-packages, dist-packages, virtual
//! environments): `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`, and the single-file
//! `*.egg-info` older installers wrote. All are RFC 822 headers (the core metadata spec).

use super::file_name;
use crate::fields::{Paragraph, headers};
use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use crate::scan::Scan;
use std::path::Path;

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
    for file in scan.files() {
        if !is_metadata(&file.path) {
            continue;
        }
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
        out.packages.push(Package {
            ecosystem: Ecosystem::Python,
            name: name.to_owned(),
            version: version.to_owned(),
            purl: Purl::new("pypi", &normalise(name), version).to_string(),
            licenses: licenses(&headers),
            location: file.path.clone(),
            layer: file.layer,
        });
    }
}

fn is_metadata(path: &Path) -> bool {
    let parent = path.parent().and_then(file_name).unwrap_or_default();
    match file_name(path) {
        Some("METADATA") => parent.ends_with(".dist-info"),
        Some("PKG-INFO") => parent.ends_with(".egg-info"),
        Some(name) => name.ends_with(".egg-info"),
        None => false,
    }
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
