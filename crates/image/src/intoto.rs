//! In-toto statements (v1) and how BuildKit attaches them to images.
//!
//! A statement says something (its predicate: an SPDX document, SLSA provenance) about
//! subjects named by digest. BuildKit stores an image's statements in an *attestation
//! manifest*: an OCI artifact manifest (`artifactType`
//! [`ATTESTATION_ARTIFACT_TYPE`], the empty JSON config, one [`media_type::IN_TOTO`] layer
//! per statement annotated with [`PREDICATE_TYPE_ANNOTATION`], `subject` the image manifest),
//! listed in the image index after the images with platform `unknown/unknown` and the
//! annotations [`REFERENCE_TYPE_ANNOTATION`]` = `[`ATTESTATION_MANIFEST`] and
//! [`REFERENCE_DIGEST_ANNOTATION`]` = <image manifest digest>`.
//!
//! [`media_type::IN_TOTO`]: crate::media_type::IN_TOTO

use crate::digest::Digest;
use crate::manifest::Descriptor;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The statement type of in-toto v1 statements.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The layer annotation naming a statement's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// The index annotation saying what an entry is (an [`ATTESTATION_MANIFEST`]).
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// The index annotation naming the manifest an attestation manifest is about.
pub const REFERENCE_DIGEST_ANNOTATION: &str = "vnd.docker.reference.digest";
/// [`REFERENCE_TYPE_ANNOTATION`]'s value for attestation manifests.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The `artifactType` of BuildKit's attestation manifests (OCI artifact form).
pub const ATTESTATION_ARTIFACT_TYPE: &str = "application/vnd.docker.attestation.manifest.v1+json";

/// Whether an index entry is an attestation manifest, and if so the digest of the manifest
/// it is about.
pub fn attestation_subject(entry: &Descriptor) -> Option<Digest> {
    if entry.annotations.get(REFERENCE_TYPE_ANNOTATION)? != ATTESTATION_MANIFEST {
        return None;
    }
    Digest::parse(entry.annotations.get(REFERENCE_DIGEST_ANNOTATION)?).ok()
}

/// What a statement is about: a name and the digests of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// A name (BuildKit: the image's purl, `pkg:docker/app@1.0?platform=linux%2Famd64`).
    pub name: String,
    /// Digests by algorithm (`{"sha256": "<hex>"}`).
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// The subject `name` whose content has `digest`.
    pub fn new(name: &str, digest: &Digest) -> Self {
        Subject {
            name: name.to_owned(),
            digest: BTreeMap::from([(digest.algorithm().to_owned(), digest.hex().to_owned())]),
        }
    }
}

/// An in-toto v1 statement. The predicate is kept as JSON text, so a statement read back
/// keeps its predicate byte for byte.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    /// What kind of predicate it is (`https://spdx.dev/Document`,
    /// `https://slsa.dev/provenance/v1`).
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// What it is about.
    pub subject: Vec<Subject>,
    predicate: Box<RawValue>,
}

impl PartialEq for Statement {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.predicate_type == other.predicate_type
            && self.subject == other.subject
            && self.predicate.get() == other.predicate.get()
    }
}

impl Eq for Statement {}

impl Statement {
    /// A statement of `predicate_type` whose predicate is `predicate` as compact JSON.
    pub fn new(
        predicate_type: &str,
        subject: Vec<Subject>,
        predicate: &impl Serialize,
    ) -> Result<Self, serde_json::Error> {
        Ok(Statement {
            kind: STATEMENT_TYPE.to_owned(),
            predicate_type: predicate_type.to_owned(),
            subject,
            predicate: serde_json::value::to_raw_value(predicate)?,
        })
    }

    /// Reads a statement (any statement type; unknown fields ignored).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The predicate's JSON text.
    pub fn predicate(&self) -> &str {
        self.predicate.get()
    }

    /// The statement as compact JSON: an attestation manifest's layer.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement serialises")
    }

    /// The statement as indented JSON (keys of the predicate sorted), as BuildKit writes
    /// attestation files beside a `local` or `tar` output.
    pub fn to_json_pretty(&self) -> Vec<u8> {
        let value: serde_json::Value =
            serde_json::from_slice(&self.to_json()).expect("a statement is JSON");
        let mut bytes = serde_json::to_vec_pretty(&value).expect("JSON serialises");
        bytes.push(b'\n');
        bytes
    }

    /// The statement with every subject digest `old` replaced by `new`: the same statement
    /// about the image once its layers were compressed (a new manifest digest).
    pub fn with_subject_digest(mut self, old: &Digest, new: &Digest) -> Self {
        for subject in &mut self.subject {
            if subject.digest.get(old.algorithm()).map(String::as_str) == Some(old.hex()) {
                subject.digest = Subject::new("", new).digest;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_round_trip_with_their_predicate_bytes() {
        let digest = Digest::of(b"manifest");
        let statement = Statement::new(
            "https://example.com/p",
            vec![Subject::new(
                "pkg:docker/app@1?platform=linux%2Famd64",
                &digest,
            )],
            &serde_json::json!({"b": 1, "a": [true]}),
        )
        .unwrap();
        let bytes = statement.to_json();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://example.com/p","subject":[{{"name":"pkg:docker/app@1?platform=linux%2Famd64","digest":{{"sha256":"{}"}}}}],"predicate":{{"a":[true],"b":1}}}}"#,
                digest.hex()
            )
        );
        let back = Statement::from_slice(&bytes).unwrap();
        assert_eq!(back, statement);
        let new = Digest::of(b"compressed");
        let moved = back.with_subject_digest(&digest, &new);
        assert_eq!(moved.subject[0].digest["sha256"], new.hex());
        assert_eq!(moved.predicate(), statement.predicate());
        let pretty = String::from_utf8(moved.to_json_pretty()).unwrap();
        assert!(pretty.contains("\n  \"predicate\": {\n"), "{pretty}");
    }

    #[test]
    fn attestation_entries_name_their_subject() {
        let digest = Digest::of(b"image");
        let mut entry = Descriptor::of_bytes(crate::media_type::OCI_MANIFEST, b"{}");
        assert_eq!(attestation_subject(&entry), None);
        entry.annotations.insert(
            REFERENCE_TYPE_ANNOTATION.to_owned(),
            ATTESTATION_MANIFEST.to_owned(),
        );
        entry
            .annotations
            .insert(REFERENCE_DIGEST_ANNOTATION.to_owned(), digest.to_string());
        assert_eq!(attestation_subject(&entry), Some(digest));
    }
}
