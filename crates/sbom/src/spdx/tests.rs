use super::*;
use crate::package::Ecosystem;
use serde_json::Value;
use std::path::PathBuf;

fn package(ecosystem: Ecosystem, name: &str, licenses: &[&str], layer: Option<usize>) -> Package {
    Package {
        ecosystem,
        name: name.to_owned(),
        version: "1.0".to_owned(),
        purl: format!("pkg:{ecosystem}/{name}@1.0"),
        licenses: licenses.iter().map(|l| (*l).to_owned()).collect(),
        location: PathBuf::from("/var/lib/dpkg/status"),
        layer,
    }
}

fn digest() -> Digest {
    Digest::of(b"an image manifest")
}

fn layers() -> Vec<LayerInfo> {
    vec![
        LayerInfo {
            diff_id: Some(Digest::of(b"base layer")),
            created_by: None,
        },
        LayerInfo {
            diff_id: None,
            created_by: Some("Dockerfile:7 RUN apt-get install -y curl".to_owned()),
        },
    ]
}

fn document(catalog: &Catalog) -> Value {
    let digest = digest();
    let layers = layers();
    let info = DocumentInfo {
        name: "registry.example/app:1.0",
        digest: Some(&digest),
        created: Timestamp::from_unix(1_700_000_000, 123_000_000).unwrap(),
        tool_version: "0.1.0",
        layers: &layers,
    };
    serde_json::from_slice(&Document::new(catalog, &info).to_json()).unwrap()
}

#[test]
fn document_header_is_derived_from_the_inputs() {
    let doc = document(&Catalog::default());
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    assert_eq!(
        doc["documentNamespace"],
        format!(
            "https://spdx.org/spdxdocs/stagecraft/registry.example-app-1.0-{}",
            digest().hex()
        )
    );
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(doc["creationInfo"]["creators"][0], "Tool: stagecraft-0.1.0");
    assert!(doc["creationInfo"].get("comment").is_none());
    assert_eq!(doc["packages"][0]["SPDXID"], "SPDXRef-Image");
    assert_eq!(doc["packages"][0]["versionInfo"], digest().as_str());
    assert_eq!(doc["relationships"][0]["relationshipType"], "DESCRIBES");
}

#[test]
fn packages_sorted_with_purls_layers_and_licenses() {
    let catalog = Catalog {
        packages: vec![
            package(Ecosystem::Npm, "@scope/b", &["BSD License", "MIT"], None),
            package(
                Ecosystem::Deb,
                "a",
                &["GPL-2+", "MIT OR Apache-2.0"],
                Some(1),
            ),
            package(Ecosystem::Deb, "c", &[], Some(0)),
        ],
        notes: vec!["RPM database not read".to_owned()],
    };
    let doc = document(&catalog);
    let packages = doc["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["registry.example/app:1.0", "a", "c", "@scope/b"]);
    let a = &packages[1];
    assert_eq!(
        a["licenseDeclared"],
        "GPL-2.0-or-later AND (MIT OR Apache-2.0)"
    );
    assert_eq!(a["licenseConcluded"], "NOASSERTION");
    assert_eq!(
        a["sourceInfo"],
        "acquired package info from the dpkg database /var/lib/dpkg/status, added by layer 1: \
         Dockerfile:7 RUN apt-get install -y curl"
    );
    assert_eq!(a["externalRefs"][0]["referenceLocator"], "pkg:deb/a@1.0");
    assert_eq!(a["externalRefs"][0]["referenceType"], "purl");
    assert_eq!(packages[2]["licenseDeclared"], "NOASSERTION");
    assert_eq!(
        packages[2]["sourceInfo"],
        format!(
            "acquired package info from the dpkg database /var/lib/dpkg/status, added by layer 0 ({})",
            Digest::of(b"base layer")
        )
    );
    let b = &packages[3];
    let declared = b["licenseDeclared"].as_str().unwrap();
    let reference = declared.strip_suffix(" AND MIT").unwrap();
    assert!(
        reference.starts_with("LicenseRef-BSD-License-"),
        "{reference}"
    );
    let id = b["SPDXID"].as_str().unwrap();
    let hash = id.strip_prefix("SPDXRef-Package-npm--scope-b-").unwrap();
    assert_eq!(hash.len(), 16);
    assert!(hash.bytes().all(|c| c.is_ascii_hexdigit()));
    let extracted = &doc["hasExtractedLicensingInfos"];
    assert_eq!(extracted.as_array().unwrap().len(), 1);
    assert_eq!(extracted[0]["licenseId"], reference);
    assert_eq!(extracted[0]["extractedText"], "BSD License");
    assert_eq!(doc["creationInfo"]["comment"], "RPM database not read");
    let contains: Vec<&str> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "CONTAINS")
        .map(|r| r["relatedSpdxElement"].as_str().unwrap())
        .collect();
    let ids: Vec<&str> = packages[1..]
        .iter()
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    assert_eq!(contains, ids);
}

#[test]
fn identical_inputs_give_identical_bytes_whatever_the_package_order() {
    let a = package(Ecosystem::Python, "x", &["Weird License"], Some(0));
    let b = package(Ecosystem::Go, "y", &["Other Weird"], None);
    let forward = Catalog {
        packages: vec![a.clone(), b.clone()],
        notes: Vec::new(),
    };
    let backward = Catalog {
        packages: vec![b, a],
        notes: Vec::new(),
    };
    assert_eq!(document(&forward), document(&backward));
    let digest = digest();
    let info = DocumentInfo {
        name: "x",
        digest: Some(&digest),
        created: Timestamp::from_unix(0, 0).unwrap(),
        tool_version: "1",
        layers: &[],
    };
    assert_eq!(
        Document::new(&forward, &info).to_json(),
        Document::new(&backward, &info).to_json()
    );
}

#[test]
fn statement_wraps_the_document() {
    let digest = digest();
    let info = DocumentInfo {
        name: "app",
        digest: Some(&digest),
        created: Timestamp::from_unix(0, 0).unwrap(),
        tool_version: "1",
        layers: &[],
    };
    let document = Document::new(&Catalog::default(), &info);
    let statement: Value = serde_json::from_slice(
        &document
            .statement(vec![Subject::new(
                "pkg:docker/app@latest?platform=linux%2Famd64",
                &digest,
            )])
            .to_json(),
    )
    .unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://spdx.dev/Document");
    assert_eq!(
        statement["subject"][0]["name"],
        "pkg:docker/app@latest?platform=linux%2Famd64"
    );
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.hex());
    let predicate: Value = serde_json::from_slice(&document.to_json()).unwrap();
    assert_eq!(statement["predicate"], predicate);
}

#[test]
fn a_directory_without_digest_gets_a_namespace_from_its_packages() {
    let info = DocumentInfo {
        name: "/srv/rootfs",
        digest: None,
        created: Timestamp::from_unix(0, 0).unwrap(),
        tool_version: "1",
        layers: &[],
    };
    let namespace = |catalog: &Catalog| {
        let doc: Value = serde_json::from_slice(&Document::new(catalog, &info).to_json()).unwrap();
        assert!(doc["packages"][0].get("versionInfo").is_none());
        doc["documentNamespace"].as_str().unwrap().to_owned()
    };
    let one = Catalog {
        packages: vec![package(Ecosystem::Deb, "a", &[], None)],
        notes: Vec::new(),
    };
    let two = Catalog {
        packages: vec![package(Ecosystem::Deb, "b", &[], None)],
        notes: Vec::new(),
    };
    assert!(namespace(&one).starts_with("https://spdx.org/spdxdocs/stagecraft/-srv-rootfs-"));
    assert_eq!(namespace(&one), namespace(&one.clone()));
    assert_ne!(namespace(&one), namespace(&two));
}
