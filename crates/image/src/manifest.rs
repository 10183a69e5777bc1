//! Descriptors, manifests and indexes (OCI v1 and Docker schema 2).
//!
//! These are our own types rather than `oci-spec`'s because the bytes are
//! digested: `oci-spec` keeps annotations in a `HashMap` (random key order
//! per process), does not let us reproduce Go's `null` for an empty
//! `layers`/`manifests`, and serializes with `serde_json`'s default escaping.
//! Here maps are `BTreeMap`, fields follow Go's struct order, and
//! [`ImageManifest::to_json`]/[`ImageIndex::to_json`] produce what BuildKit's
//! `json.MarshalIndent(v, "", "  ")` produces. One set of types reads both
//! OCI and Docker documents, which differ only in media types (and Docker
//! manifest lists' `platform.features`, kept in [`Platform::features`]).

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media_type;
use crate::platform::Platform;
use crate::serde_go::{nil_when_empty, null_default};

/// Why a manifest or index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not valid JSON, or a field has the wrong type or an invalid digest.
    #[error("invalid {what} JSON: {source}")]
    Json {
        /// What was being parsed (`image manifest`, `image index`, …).
        what: &'static str,
        /// The parser's complaint, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A Docker schema 1 manifest, which registries stopped serving in 2024.
    #[error(
        "Docker schema 1 manifests are not supported; re-push the image with a current docker or buildx"
    )]
    SchemaV1,
    /// Neither a manifest nor an index.
    #[error(
        "unsupported manifest media type {media_type:?}: expected an OCI or Docker schema 2 manifest or index"
    )]
    UnsupportedMediaType {
        /// The media type found (empty if there was none and the shape did
        /// not tell).
        media_type: String,
    },
}

/// A content descriptor (OCI `Descriptor`), fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// What the content is; always written, as Go has no `omitempty` here.
    #[serde(rename = "mediaType", default, deserialize_with = "null_default")]
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// Alternative download locations (foreign layers).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
    /// Annotations, sorted by key.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The content itself, base64-encoded (kept verbatim).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub data: String,
    /// The platform of a manifest listed in an index.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub platform: Option<Platform>,
    /// The artifact type of an artifact manifest.
    #[serde(
        rename = "artifactType",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
}

impl Descriptor {
    /// A descriptor with only the three required fields.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: String::new(),
            platform: None,
            artifact_type: String::new(),
        }
    }

    /// The descriptor of `bytes` (digest and size computed here).
    pub fn of_bytes(media_type: &str, bytes: &[u8]) -> Self {
        // usize always fits in u64 on supported targets.
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }
}

/// A single-platform image manifest (OCI `Manifest`, or Docker schema 2,
/// which has the same shape), fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// [`media_type::OCI_MANIFEST`] or [`media_type::DOCKER_MANIFEST`].
    #[serde(
        rename = "mediaType",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// Set for artifact manifests.
    #[serde(
        rename = "artifactType",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
    /// The image config blob.
    pub config: Descriptor,
    /// Layer blobs, bottom first; written `null` when empty, like Go.
    #[serde(default, with = "nil_when_empty")]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject: Option<Descriptor>,
    /// Annotations, sorted by key.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// A schema-2 manifest of type `media_type` ([`media_type::OCI_MANIFEST`]
    /// or [`media_type::DOCKER_MANIFEST`]).
    pub fn new(media_type: &str, config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: media_type.to_owned(),
            artifact_type: String::new(),
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Parses a manifest leniently (unknown fields ignored, `null` accepted).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image manifest",
            source,
        })
    }

    /// The bytes BuildKit writes for this manifest
    /// (`json.MarshalIndent(m, "", "  ")`).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::to_go_json_indented(self)
    }
}

/// A multi-platform index (OCI `Index`, or Docker manifest list), fields in
/// Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: i64,
    /// [`media_type::OCI_INDEX`] or [`media_type::DOCKER_MANIFEST_LIST`].
    #[serde(
        rename = "mediaType",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// Set for artifact indexes.
    #[serde(
        rename = "artifactType",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
    /// One descriptor per platform manifest (and attestation manifests);
    /// written `null` when empty, like Go.
    #[serde(default, with = "nil_when_empty")]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject: Option<Descriptor>,
    /// Annotations, sorted by key.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// A schema-2 index of type `media_type` ([`media_type::OCI_INDEX`] or
    /// [`media_type::DOCKER_MANIFEST_LIST`]).
    pub fn new(media_type: &str, manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: media_type.to_owned(),
            artifact_type: String::new(),
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Parses an index leniently (unknown fields ignored, `null` accepted).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image index",
            source,
        })
    }

    /// The bytes BuildKit writes for this index
    /// (`json.MarshalIndent(i, "", "  ")`).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::to_go_json_indented(self)
    }

    /// The entries that are images of a platform, in order, with that
    /// platform: image manifests whose descriptor names a platform. Entries
    /// without one, nested indexes, and BuildKit's attestation manifests
    /// (platform `unknown/unknown`, describing another entry rather than
    /// being an image to run) are left out.
    pub fn platform_manifests(&self) -> impl Iterator<Item = (&Descriptor, &Platform)> {
        self.manifests.iter().filter_map(|descriptor| {
            let platform = descriptor.platform.as_ref()?;
            let attestation = platform.os == "unknown" && platform.architecture == "unknown";
            (media_type::is_manifest(&descriptor.media_type) && !attestation)
                .then_some((descriptor, platform))
        })
    }

    /// The image manifest among [`ImageIndex::platform_manifests`] that serves `wanted` best
    /// (see [`Platform::match_rank`]; the first of equally good ones).
    pub fn find(&self, wanted: &Platform) -> Option<&Descriptor> {
        self.platform_manifests()
            .filter_map(|(descriptor, platform)| Some((platform.match_rank(wanted)?, descriptor)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, descriptor)| descriptor)
    }

    /// The platforms of its images (`linux/amd64`, `linux/arm64`), for messages that say what
    /// an image offers.
    pub fn platforms(&self) -> Vec<String> {
        self.platform_manifests()
            .map(|(_, platform)| platform.to_string())
            .collect()
    }
}

/// A manifest or an index, told apart by media type or, failing that, by
/// shape (`manifests` versus `config`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "values are parsed once per document and consumed right away; boxing would only add an allocation and make matching clumsier"
)]
pub enum AnyManifest {
    /// A single-platform image manifest.
    Image(ImageManifest),
    /// A multi-platform index.
    Index(ImageIndex),
}

impl AnyManifest {
    /// Parses `bytes`. `media_type` is the type the referring descriptor or
    /// the registry's `Content-Type` gave, when known; it wins over the
    /// document's own `mediaType` field, which is optional in OCI.
    pub fn from_slice(bytes: &[u8], media_type: Option<&str>) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        struct Peek {
            #[serde(rename = "schemaVersion", default)]
            schema_version: Option<i64>,
            #[serde(rename = "mediaType", default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<IgnoredAny>,
            #[serde(default)]
            config: Option<IgnoredAny>,
        }
        let peek: Peek = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "manifest",
            source,
        })?;
        if peek.schema_version == Some(1)
            || media_type == Some(media_type::DOCKER_MANIFEST_V1_SIGNED)
        {
            return Err(ManifestError::SchemaV1);
        }
        let declared = media_type
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .or(peek.media_type.filter(|m| !m.is_empty()));
        match declared.as_deref() {
            Some(m) if media_type::is_manifest(m) => {
                ImageManifest::from_slice(bytes).map(AnyManifest::Image)
            }
            Some(m) if media_type::is_index(m) => {
                ImageIndex::from_slice(bytes).map(AnyManifest::Index)
            }
            Some(other) => Err(ManifestError::UnsupportedMediaType {
                media_type: other.to_owned(),
            }),
            None if peek.manifests.is_some() => {
                ImageIndex::from_slice(bytes).map(AnyManifest::Index)
            }
            None if peek.config.is_some() => {
                ImageManifest::from_slice(bytes).map(AnyManifest::Image)
            }
            None => Err(ManifestError::UnsupportedMediaType {
                media_type: String::new(),
            }),
        }
    }

    /// The document's media type (possibly empty for an OCI document that
    /// omitted it).
    pub fn media_type(&self) -> &str {
        match self {
            AnyManifest::Image(manifest) => &manifest.media_type,
            AnyManifest::Index(index) => &index.media_type,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::*;

    fn sample_manifest() -> ImageManifest {
        ImageManifest::new(
            OCI_MANIFEST,
            Descriptor::of_bytes(OCI_CONFIG, b"{}"),
            vec![Descriptor::of_bytes(OCI_LAYER_GZIP, b"layer")],
        )
    }

    #[test]
    fn manifest_bytes_match_buildkit_marshal_indent() {
        let json = String::from_utf8(sample_manifest().to_json().unwrap()).unwrap();
        let expected = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:4c1ee0ae6cd3e1fc6e8bc37e3e4c4f4e53b18c7af5b4fcdbb8e0c4f6bd7a4b62",
      "size": 5
    }
  ]
}"#;
        let expected = expected.replace(
            "sha256:4c1ee0ae6cd3e1fc6e8bc37e3e4c4f4e53b18c7af5b4fcdbb8e0c4f6bd7a4b62",
            Digest::of(b"layer").as_str(),
        );
        assert_eq!(json, expected);
        assert_eq!(
            ImageManifest::from_slice(json.as_bytes()).unwrap(),
            sample_manifest()
        );
    }

    #[test]
    fn empty_layers_are_null_like_go() {
        let mut manifest = sample_manifest();
        manifest.layers.clear();
        let json = String::from_utf8(manifest.to_json().unwrap()).unwrap();
        assert!(json.contains("\"layers\": null"), "{json}");
        assert_eq!(
            ImageManifest::from_slice(json.as_bytes()).unwrap(),
            manifest
        );
    }

    #[test]
    fn annotations_are_sorted() {
        let mut manifest = sample_manifest();
        for key in ["z", "a", "m"] {
            manifest.annotations.insert(key.into(), "v&".into());
        }
        let json = String::from_utf8(crate::to_go_json(&manifest).unwrap()).unwrap();
        assert!(
            json.ends_with(r#""annotations":{"a":"v\u0026","m":"v\u0026","z":"v\u0026"}}"#),
            "{json}"
        );
    }

    #[test]
    fn index_find_skips_attestations_and_other_platforms() {
        let mut amd64 = Descriptor::of_bytes(OCI_MANIFEST, b"amd64");
        amd64.platform = Some(Platform::parse("linux/amd64").unwrap());
        let mut arm = Descriptor::of_bytes(OCI_MANIFEST, b"arm");
        arm.platform = Some(Platform::parse("linux/arm/v7").unwrap());
        let mut attestation = Descriptor::of_bytes(OCI_MANIFEST, b"att");
        attestation.platform = Some(Platform {
            os: "unknown".into(),
            architecture: "unknown".into(),
            ..Platform::default()
        });
        let index = ImageIndex::new(OCI_INDEX, vec![attestation, arm.clone(), amd64.clone()]);
        assert_eq!(
            index.find(&Platform::parse("linux/amd64").unwrap()),
            Some(&amd64)
        );
        assert_eq!(
            index.find(&Platform::parse("linux/arm").unwrap()),
            Some(&arm)
        );
        assert_eq!(index.find(&Platform::parse("linux/s390x").unwrap()), None);
        let unknown = Platform {
            os: "unknown".into(),
            architecture: "unknown".into(),
            ..Platform::default()
        };
        assert_eq!(index.find(&unknown), None);
        let mut nested = Descriptor::of_bytes(OCI_INDEX, b"nested");
        nested.platform = Some(Platform::parse("linux/riscv64").unwrap());
        let bare = Descriptor::of_bytes(OCI_MANIFEST, b"no platform");
        let mut index = index;
        index.manifests.extend([nested, bare]);
        let listed: Vec<String> = index
            .platform_manifests()
            .map(|(descriptor, platform)| format!("{platform} {}", descriptor.digest))
            .collect();
        assert_eq!(
            listed,
            [
                format!("linux/arm/v7 {}", arm.digest),
                format!("linux/amd64 {}", amd64.digest)
            ]
        );
    }

    #[test]
    fn any_manifest_detection() {
        let manifest = sample_manifest().to_json().unwrap();
        let index = ImageIndex::new(DOCKER_MANIFEST_LIST, vec![])
            .to_json()
            .unwrap();
        assert!(matches!(
            AnyManifest::from_slice(&manifest, None),
            Ok(AnyManifest::Image(_))
        ));
        assert!(matches!(
            AnyManifest::from_slice(&index, None),
            Ok(AnyManifest::Index(_))
        ));
        // OCI allows omitting mediaType: decide by shape.
        let bare = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            AnyManifest::from_slice(bare, None),
            Ok(AnyManifest::Index(_))
        ));
        let bare = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":2}}}}"#,
            Digest::of(b"{}")
        );
        let parsed = AnyManifest::from_slice(bare.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(parsed.media_type(), "");
        assert!(matches!(
            AnyManifest::from_slice(br#"{"schemaVersion":1,"fsLayers":[]}"#, None),
            Err(ManifestError::SchemaV1)
        ));
        let err =
            AnyManifest::from_slice(br#"{"schemaVersion":2}"#, Some("text/plain")).unwrap_err();
        assert!(err.to_string().contains("\"text/plain\""), "{err}");
    }

    #[test]
    fn docker_manifest_list_platform_features_round_trip() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":5,"platform":{{"architecture":"amd64","os":"linux","features":["sse4"]}}}}]}}"#,
            Digest::of(b"hello")
        );
        let index = ImageIndex::from_slice(json.as_bytes()).unwrap();
        assert_eq!(crate::to_go_json(&index).unwrap(), json.as_bytes());
    }
}
