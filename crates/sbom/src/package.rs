//! What a catalog finds: packages, each with its purl, licenses and where it was read from.

use std::fmt;
use std::path::PathBuf;

/// The kind of package, i.e. which cataloger found it and which purl type it has.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// A Debian/Ubuntu package from the dpkg database.
    Deb,
    /// An Alpine package from the apk database.
    Apk,
    /// An RPM package.
    Rpm,
    /// A Python distribution (`*.dist-info`, `*.egg-info`).
    Python,
    /// A Node.js package (`node_modules`, `package-lock.json`).
    Npm,
    /// A Go module (or the Go standard library) built into a binary.
    Go,
    /// A Rust crate (a `cargo auditable` binary or a `Cargo.lock`).
    Cargo,
    /// A Java archive or a Maven artifact inside one.
    Maven,
}

impl Ecosystem {
    /// A short lower-case name (`deb`, `python`, …), used in tables and SPDX identifiers.
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Rpm => "rpm",
            Ecosystem::Python => "python",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "go",
            Ecosystem::Cargo => "cargo",
            Ecosystem::Maven => "maven",
        }
    }

    /// What the package information was read from, for the SPDX `sourceInfo` sentence.
    fn source_kind(self) -> &'static str {
        match self {
            Ecosystem::Deb => "the dpkg database",
            Ecosystem::Apk => "the apk database",
            Ecosystem::Rpm => "the rpm database",
            Ecosystem::Python => "Python package metadata",
            Ecosystem::Npm => "Node.js package metadata",
            Ecosystem::Go => "the Go build information of",
            Ecosystem::Cargo => "Rust dependency information in",
            Ecosystem::Maven => "Java archive metadata in",
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A package found in the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name as its ecosystem spells it (`libc6`, `requests`, `@babel/core`,
    /// `golang.org/x/text`, `org.slf4j:slf4j-api`).
    pub name: String,
    /// Its version (empty when the metadata has none).
    pub version: String,
    /// Its package URL.
    pub purl: String,
    /// License statements as the metadata gives them (not yet SPDX); several are all declared.
    pub licenses: Vec<String>,
    /// The file it was read from (absolute in the image).
    pub location: PathBuf,
    /// The layer that added it (bottom = 0), when the file system knows layers.
    pub layer: Option<usize>,
}

impl Package {
    /// "the dpkg database /var/lib/dpkg/status": where this package's information came from.
    pub fn found_in(&self) -> String {
        format!(
            "{} {}",
            self.ecosystem.source_kind(),
            self.location.display()
        )
    }
}

/// The result of cataloging an image: its packages (sorted, without duplicates) and notes
/// on what could not be read. It serialises (as JSON), so that an image's catalog can be
/// kept and reused.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    /// Packages sorted by ecosystem, name, version and location.
    pub packages: Vec<Package>,
    /// Human-readable notes (an unreadable database, a corrupt archive), sorted.
    pub notes: Vec<String>,
}
