//! The SPDX 2.3 JSON document of a catalog, and the in-toto statement that carries it as an
//! attestation (the shape BuildKit attaches to images).
//!
//! The bytes depend only on the catalog and the caller's inputs: packages are sorted, every
//! identifier is derived from content, and the creation time is the caller's (so that
//! `SOURCE_DATE_EPOCH` can fix it).

use crate::license;
use crate::package::{Catalog, Package};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use stagecraft_image::Digest;
use stagecraft_image::Timestamp;
use stagecraft_image::intoto::{Statement, Subject};
use std::collections::BTreeMap;

/// The predicate type of an SPDX document.
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document";
const NOASSERTION: &str = "NOASSERTION";
const IMAGE_ID: &str = "SPDXRef-Image";

/// A layer of the image, as the SBOM names it in each package's `sourceInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's diff ID (digest of its uncompressed tar), when known.
    pub diff_id: Option<Digest>,
    /// What made it, e.g. `Dockerfile:7 RUN apt-get install -y curl`.
    pub created_by: Option<String>,
}

/// What the document says about the image besides its packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo<'a> {
    /// The image's name (`registry.example/app:1.0`, or a directory for a plain tree).
    pub name: &'a str,
    /// The image's ID (its config digest, the same whatever its layers' compression); the
    /// document namespace is derived from it. A plain directory has none: the namespace is
    /// then derived from the packages found.
    pub digest: Option<&'a Digest>,
    /// When the document was made (clamped to `SOURCE_DATE_EPOCH` by the caller if set).
    pub created: Timestamp,
    /// The version of stagecraft writing it (`Tool: stagecraft-VERSION`).
    pub tool_version: &'a str,
    /// The image's layers, bottom first; [`Package::layer`] indexes them.
    pub layers: &'a [LayerInfo],
}

/// An SPDX 2.3 document, ready to be written.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<SpdxPackage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<ExtractedLicense>,
    relationships: Vec<Relationship>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    creators: Vec<String>,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    name: String,
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    version_info: String,
    download_location: &'static str,
    files_analyzed: bool,
    license_concluded: &'static str,
    license_declared: String,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractedLicense {
    license_id: String,
    extracted_text: String,
    name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

impl Document {
    /// The document describing `catalog`: one package for the image, which contains one
    /// package per cataloged package.
    pub fn new(catalog: &Catalog, info: &DocumentInfo<'_>) -> Self {
        let mut licenses = LicenseRefs::default();
        let mut packages = vec![SpdxPackage {
            name: info.name.to_owned(),
            spdx_id: IMAGE_ID.to_owned(),
            version_info: info
                .digest
                .map(|digest| digest.as_str().to_owned())
                .unwrap_or_default(),
            download_location: NOASSERTION,
            files_analyzed: false,
            license_concluded: NOASSERTION,
            license_declared: NOASSERTION.to_owned(),
            copyright_text: NOASSERTION,
            source_info: None,
            primary_package_purpose: Some("CONTAINER"),
            external_refs: Vec::new(),
        }];
        let mut relationships = vec![Relationship {
            spdx_element_id: "SPDXRef-DOCUMENT".to_owned(),
            relationship_type: "DESCRIBES",
            related_spdx_element: IMAGE_ID.to_owned(),
        }];
        // A catalog from `catalog` is sorted already; one put together by hand may not be.
        let mut sorted: Vec<&Package> = catalog.packages.iter().collect();
        sorted.sort();
        for package in sorted {
            let spdx_package = SpdxPackage {
                name: package.name.clone(),
                spdx_id: package_id(package),
                version_info: package.version.clone(),
                download_location: NOASSERTION,
                files_analyzed: false,
                license_concluded: NOASSERTION,
                license_declared: licenses.declared(&package.licenses),
                copyright_text: NOASSERTION,
                source_info: Some(source_info(package, info.layers)),
                primary_package_purpose: None,
                external_refs: vec![ExternalRef {
                    reference_category: "PACKAGE-MANAGER",
                    reference_type: "purl",
                    reference_locator: package.purl.clone(),
                }],
            };
            relationships.push(Relationship {
                spdx_element_id: IMAGE_ID.to_owned(),
                relationship_type: "CONTAINS",
                related_spdx_element: spdx_package.spdx_id.clone(),
            });
            packages.push(spdx_package);
        }
        let comment = (!catalog.notes.is_empty()).then(|| catalog.notes.join("\n"));
        Document {
            spdx_version: "SPDX-2.3",
            data_license: "CC0-1.0",
            spdx_id: "SPDXRef-DOCUMENT",
            name: info.name.to_owned(),
            document_namespace: format!(
                "https://spdx.org/spdxdocs/stagecraft/{}-{}",
                sanitise(info.name, '-'),
                namespace_hash(info.digest, catalog)
            ),
            creation_info: CreationInfo {
                creators: vec![format!("Tool: stagecraft-{}", info.tool_version)],
                created: whole_seconds(info.created),
                comment,
            },
            packages,
            has_extracted_licensing_infos: licenses.into_extracted(),
            relationships,
        }
    }

    /// The document as JSON (indented, as SPDX tools write it).
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("plain data serialises");
        bytes.push(b'\n');
        bytes
    }

    /// The in-toto statement whose predicate is this document, about `subjects` (the image
    /// manifests it describes).
    pub fn statement(&self, subjects: Vec<Subject>) -> Statement {
        Statement::new(PREDICATE_TYPE, subjects, self).expect("plain data serialises")
    }
}

/// The image digest's hex, or for a directory a hash of what was found in it: the same tree
/// gets the same namespace, a different one another.
fn namespace_hash(digest: Option<&Digest>, catalog: &Catalog) -> String {
    if let Some(digest) = digest {
        return digest.hex().to_owned();
    }
    let mut hasher = Sha256::new();
    for package in &catalog.packages {
        hasher.update(package_id(package).as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// `YYYY-MM-DDThh:mm:ssZ`: SPDX's `created` has no fractional seconds.
fn whole_seconds(time: Timestamp) -> String {
    Timestamp::from_unix(time.unix_secs(), 0)
        .unwrap_or(time)
        .to_string()
}

/// `SPDXRef-Package-ECOSYSTEM-NAME-HASH`: readable, and unique because the hash covers what
/// makes a catalog entry unique (its purl and where it was found).
fn package_id(package: &Package) -> String {
    let mut hasher = Sha256::new();
    hasher.update(package.purl.as_bytes());
    hasher.update([0]);
    hasher.update(package.location.as_os_str().as_encoded_bytes());
    let hash = hex::encode(&hasher.finalize()[..8]);
    format!(
        "SPDXRef-Package-{}-{}-{hash}",
        package.ecosystem,
        sanitise(&package.name, '-')
    )
}

/// `s` with everything but letters, digits, `.` and `-` (what SPDX identifiers allow)
/// replaced by `with`.
fn sanitise(s: &str, with: char) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                with
            }
        })
        .collect()
}

/// Where a package was found and which layer (and Dockerfile line) added it.
fn source_info(package: &Package, layers: &[LayerInfo]) -> String {
    let mut text = format!("acquired package info from {}", package.found_in());
    if let Some(index) = package.layer {
        text.push_str(&format!(", added by layer {index}"));
        if let Some(layer) = layers.get(index) {
            if let Some(diff_id) = &layer.diff_id {
                text.push_str(&format!(" ({diff_id})"));
            }
            if let Some(created_by) = &layer.created_by {
                text.push_str(&format!(": {created_by}"));
            }
        }
    }
    text
}

/// License statements that are not SPDX expressions, each given a `LicenseRef-` once.
#[derive(Default)]
struct LicenseRefs {
    by_statement: BTreeMap<String, String>,
}

impl LicenseRefs {
    /// The `licenseDeclared` value for a package's statements: their expressions (or
    /// references) joined with `AND`, `NOASSERTION` when there are none.
    fn declared(&mut self, statements: &[String]) -> String {
        let mut terms: Vec<String> = statements
            .iter()
            .map(|statement| match license::to_spdx(statement) {
                Some(expression) => expression,
                None => self.reference(statement),
            })
            .collect();
        terms.sort();
        terms.dedup();
        match terms.len() {
            0 => NOASSERTION.to_owned(),
            1 => terms.remove(0),
            _ => terms
                .iter()
                .map(|term| {
                    if term.contains(' ') {
                        format!("({term})")
                    } else {
                        term.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        }
    }

    fn reference(&mut self, statement: &str) -> String {
        self.by_statement
            .entry(statement.to_owned())
            .or_insert_with(|| {
                let digest = hex::encode(&Sha256::digest(statement.as_bytes())[..4]);
                let readable: String = sanitise(statement.trim(), '-').chars().take(40).collect();
                format!("LicenseRef-{}-{digest}", readable.trim_matches('-'))
            })
            .clone()
    }

    fn into_extracted(self) -> Vec<ExtractedLicense> {
        let mut extracted: Vec<ExtractedLicense> = self
            .by_statement
            .into_iter()
            .map(|(statement, license_id)| ExtractedLicense {
                license_id,
                name: statement
                    .lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty())
                    .unwrap_or_default()
                    .to_owned(),
                extracted_text: statement,
            })
            .collect();
        extracted.sort_by(|a, b| a.license_id.cmp(&b.license_id));
        extracted
    }
}

#[cfg(test)]
mod tests;
