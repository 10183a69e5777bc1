//! The SPDX project's own validator (PyPI `spdx-tools`, installed by `scripts/setup.sh`)
//! accepts the documents this crate writes, for an image with a package of every kind.

use stagecraft_image::{Digest, Timestamp};
use stagecraft_sbom::spdx::{Document, DocumentInfo, LayerInfo};
use stagecraft_sbom::{DirFs, Ecosystem, FileEntry, ImageFs};
use std::io::{self, Write};
use std::path::Path;
use std::process::Command;

/// A directory seen as one layer, so that documents name the layer of each package.
struct OneLayer(DirFs);

impl ImageFs for OneLayer {
    fn entries(&self) -> io::Result<Vec<FileEntry>> {
        let mut files = self.0.entries()?;
        for file in &mut files {
            file.layer = Some(0);
        }
        Ok(files)
    }

    fn open(&self, path: &Path) -> io::Result<std::fs::File> {
        self.0.open(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        self.0.read_dir(path)
    }
}

fn write(root: &Path, path: &str, content: &[u8]) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

fn jar() -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(
            "META-INF/maven/org.example/thing/pom.properties",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
    writer
        .write_all(b"groupId=org.example\nartifactId=thing\nversion=3.1\n")
        .unwrap();
    writer.finish().unwrap().into_inner()
}

/// A root file system with packages of every cataloged kind, and licenses both SPDX and not.
fn image(root: &Path) {
    write(root, "etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n");
    write(
        root,
        "var/lib/dpkg/status",
        b"Package: libexample1\nStatus: install ok installed\nArchitecture: amd64\n\
          Version: 1:1.2+dfsg-3\nSource: example (1.2+dfsg-1)\n\n\
          Package: odd-licenses\nStatus: install ok installed\nArchitecture: all\nVersion: 0.1\n",
    );
    write(
        root,
        "usr/share/doc/libexample1/copyright",
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
          Files: *\nCopyright: 2024 Someone\nLicense: GPL-2+ with OpenSSL exception\n\n\
          Files: lib/*\nCopyright: 2024 Other\nLicense: BSD-3-clause or Expat\n",
    );
    write(
        root,
        "usr/share/doc/odd-licenses/copyright",
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
          Files: *\nCopyright: none\nLicense: public-domain\n\n\
          Files: b/*\nCopyright: none\nLicense: Artistic or GPL-1+\n",
    );
    write(
        root,
        "lib/apk/db/installed",
        b"P:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\no:busybox\n",
    );
    write(
        root,
        "usr/lib/python3/dist-packages/Some_Dist-2.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\nName: Some_Dist\nVersion: 2.0\nLicense: Copyright (c) someone,\n        \
          all rights reserved\n",
    );
    write(
        root,
        "app/node_modules/@org/pkg/package.json",
        br#"{"name":"@org/pkg","version":"1.0.0-beta.1","license":"(MIT OR CC0-1.0)"}"#,
    );
    write(
        root,
        "src/Cargo.lock",
        b"version = 4\n\n[[package]]\nname = \"tiny\"\nversion = \"0.1.0+build.5\"\n",
    );
    write(root, "opt/lib/thing-3.1.jar", &jar());
    write(root, "var/lib/rpm/Packages", b"");
}

/// Runs `pyspdxtools -i FILE`; panics with its output unless it says the document is valid.
fn validate(file: &Path) {
    let output = match Command::new("pyspdxtools").arg("-i").arg(file).output() {
        Ok(output) => output,
        Err(err) => panic!(
            "cannot run pyspdxtools ({err}): run scripts/setup.sh to install PyPI spdx-tools"
        ),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && !text.contains("invalid"),
        "pyspdxtools rejected the document:\n{text}\n{}",
        std::fs::read_to_string(file).unwrap()
    );
}

#[test]
fn generated_document_passes_the_spdx_validator() {
    let rootfs = tempfile::tempdir().unwrap();
    image(rootfs.path());
    let catalog = stagecraft_sbom::catalog(&OneLayer(DirFs::new(rootfs.path()))).unwrap();
    // Every kind is in the fixture; the validator must see all of them.
    for ecosystem in [
        Ecosystem::Deb,
        Ecosystem::Apk,
        Ecosystem::Python,
        Ecosystem::Npm,
        Ecosystem::Cargo,
        Ecosystem::Maven,
    ] {
        assert!(
            catalog.packages.iter().any(|p| p.ecosystem == ecosystem),
            "no {ecosystem} package in {catalog:?}"
        );
    }
    let digest = Digest::of(b"manifest");
    let layers = [LayerInfo {
        diff_id: Some(Digest::of(b"layer")),
        created_by: Some("Dockerfile:3 RUN \"quoted\" & <odd> text".to_owned()),
    }];
    let info = DocumentInfo {
        name: "localhost:5000/team/app:v1",
        digest: Some(&digest),
        created: Timestamp::from_unix(1_700_000_000, 5).unwrap(),
        tool_version: env!("CARGO_PKG_VERSION"),
        layers: &layers,
    };
    let document = Document::new(&catalog, &info);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sbom.spdx.json");
    std::fs::write(&file, document.to_json()).unwrap();
    validate(&file);
    if let Ok(dump) = std::env::var("SBOM_DUMP") {
        std::fs::copy(&file, dump).unwrap();
    }
    // The validator must not be one that accepts anything: a broken copy is refused.
    let broken = String::from_utf8(document.to_json())
        .unwrap()
        .replace("\"NOASSERTION\"", "\"GPL-2+\"");
    let broken_file = dir.path().join("broken.spdx.json");
    std::fs::write(&broken_file, broken).unwrap();
    let result = std::panic::catch_unwind(|| validate(&broken_file));
    assert!(result.is_err(), "the validator accepted an invalid license");
}
