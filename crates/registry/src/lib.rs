//! A thin layer over `oci-client` with docker's conventions: plain HTTP for `localhost` and
//! 127.0.0.0/8 (and `--insecure` registries), credentials from `~/.docker/config.json`
//! (including credential helpers), digests verified on every download, monolithic uploads
//! (what the reference `registry:2` handles best), cross-repository mounts with fallback.
//!
//! Everything is async (tokio); the caller owns the runtime.
#![forbid(unsafe_code)]

use futures_util::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use sha2::{Digest as _, Sha256};
use stagecraft_image::ReferenceError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, Once};
use tokio::io::AsyncWriteExt;

pub use oci_client::Reference;

pub mod credentials;
pub mod merge;
mod transfer;
pub use transfer::{
    TransferError, fetch_blob, fetch_blobs, pull, push, push_index, push_manifest_with_blobs,
    upload_blobs,
};

/// Media types a manifest request accepts: OCI and Docker, single images and indexes.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse (the error quotes it).
    #[error(transparent)]
    BadReference(#[from] ReferenceError),
    /// A manifest to upload names a media type that is not one.
    #[error("uploading manifest to {reference}: invalid media type {media_type:?}")]
    BadMediaType {
        /// Which image.
        reference: String,
        /// The media type given.
        media_type: String,
    },
    /// The registry answered with an error or could not be reached.
    #[error("{operation} {reference}: {}{}", describe(.source), hint(.source))]
    Remote {
        /// What was being done.
        operation: &'static str,
        /// Which image.
        reference: String,
        /// The client's error.
        #[source]
        source: OciDistributionError,
    },
    /// Content did not match its digest.
    #[error(
        "{what} of {reference} has digest {actual}, expected {expected}: the registry sent corrupt or different content"
    )]
    DigestMismatch {
        /// Manifest or blob.
        what: &'static str,
        /// Which image.
        reference: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The registry refused the credentials given to `login`.
    #[error(
        "login to {server} failed: the registry refused the username and password{}",
        if .detail.is_empty() { String::new() } else { format!(" ({})", .detail) }
    )]
    LoginRefused {
        /// The registry.
        server: String,
        /// What it said.
        detail: String,
    },
    /// Local file trouble while streaming.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Whether the registry said the tag, digest or repository does not exist (as opposed to
    /// failing to answer, or refusing).
    pub fn is_not_found(&self) -> bool {
        let RegistryError::Remote { source, .. } = self else {
            return false;
        };
        if matches!(source, OciDistributionError::ImageManifestNotFoundError(_)) {
            return true;
        }
        if let OciDistributionError::ServerError { code: 404, .. } = source {
            return true;
        }
        let text = source.to_string();
        [
            "MANIFEST_UNKNOWN",
            "manifest unknown",
            "NAME_UNKNOWN",
            "repository name not known",
        ]
        .iter()
        .any(|said| text.contains(said))
    }
}

impl RegistryError {
    /// Whether trying again may succeed: the registry answered with a server error (5xx).
    /// distribution's filesystem storage, for one, answers 500 to a read of a tag that is
    /// being written at that moment.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Remote {
                source: OciDistributionError::ServerError {
                    code: 500..=599,
                    ..
                },
                ..
            }
        )
    }
}

/// The registry's answer in words: the distribution API's error codes as a sentence (the raw
/// envelope, with its URL, says the same less readably), anything else as the client put it.
fn describe(error: &OciDistributionError) -> String {
    let text = error.to_string();
    let said = |code: &str, message: &str| text.contains(code) || text.contains(message);
    if said("MANIFEST_UNKNOWN", "manifest unknown") {
        "the registry has no such tag or digest (manifest unknown)".to_owned()
    } else if said("NAME_UNKNOWN", "repository name not known") {
        "the registry has no repository of that name (name unknown)".to_owned()
    } else if said("BLOB_UNKNOWN", "blob unknown") {
        "the registry lacks a blob the manifest names (blob unknown)".to_owned()
    } else if said("DENIED", "requested access to the resource is denied") {
        "access denied".to_owned()
    } else {
        text
    }
}

fn hint(error: &OciDistributionError) -> &'static str {
    let text = error.to_string();
    if text.contains("Connection refused") || text.contains("error sending request") {
        "\n  = help: is the registry running and reachable? Registries other than localhost need HTTPS unless passed with --insecure-registry HOST:PORT"
    } else if text.contains("401") || text.contains("Unauthorized") {
        "\n  = help: log in with `stagecraft login` or `docker login` (both keep credentials in ~/.docker/config.json)"
    } else {
        ""
    }
}

/// Client options.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) to reach over plain HTTP besides localhost.
    pub insecure: Vec<String>,
}

/// A manifest as the registry serves it.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    /// The exact bytes (their digest is the manifest's identity).
    pub bytes: Vec<u8>,
    /// `sha256:…` of `bytes`.
    pub digest: String,
    /// The `mediaType` field of the manifest, when present.
    pub media_type: Option<String>,
}

/// A connection pool to registries, one client per registry host.
pub struct Registry {
    options: RegistryOptions,
    clients: Mutex<HashMap<String, Arc<Client>>>,
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Parses a reference the way docker does (`busybox` → `docker.io/library/busybox:latest`).
///
/// By [`stagecraft_image::Reference`], not by the client's own parser: that one compiles a
/// Unicode regex on first use, which cost every build that resolves an image in a registry
/// 40 ms and 12 MB.
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    let parsed = stagecraft_image::Reference::parse(text)?;
    let (registry, repository) = (parsed.domain().to_owned(), parsed.path().to_owned());
    Ok(match (parsed.tag(), parsed.digest()) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.to_owned(), digest.to_string())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.to_string()),
        (tag, None) => Reference::with_tag(
            registry,
            repository,
            tag.unwrap_or(stagecraft_image::DEFAULT_TAG).to_owned(),
        ),
    })
}

/// Whether docker talks plain HTTP to this registry host by default.
pub fn is_local_registry(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Wraps a local file error with the file's path.
fn io_at(path: &Path) -> impl Fn(std::io::Error) -> RegistryError + Copy + '_ {
    move |source| RegistryError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Wraps a client error with what was being done to which image.
fn remote(
    operation: &'static str,
    reference: &Reference,
) -> impl FnOnce(OciDistributionError) -> RegistryError {
    let reference = reference.whole();
    move |source| RegistryError::Remote {
        operation,
        reference,
        source,
    }
}

impl Registry {
    /// A registry client pool.
    pub fn new(options: RegistryOptions) -> Registry {
        install_crypto_provider();
        Registry {
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, reference: &Reference) -> Arc<Client> {
        let host = reference.resolve_registry().to_owned();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(host.clone())
            .or_insert_with(|| {
                let plain = is_local_registry(&host) || self.options.insecure.contains(&host);
                Arc::new(Client::new(ClientConfig {
                    protocol: if plain {
                        ClientProtocol::Http
                    } else {
                        ClientProtocol::Https
                    },
                    use_monolithic_push: true,
                    ..ClientConfig::default()
                }))
            })
            .clone()
    }

    /// Whether `host` takes `user` and `password`, as `docker login` checks before keeping
    /// them: the registry is asked for a token (or, for basic authentication, a manifest)
    /// with them. A repository that does not exist answers "unknown" to good credentials and
    /// "unauthorized" to bad ones.
    pub async fn check_login(
        &self,
        host: &str,
        user: &str,
        password: &str,
    ) -> Result<(), RegistryError> {
        let probe = parse_reference(&format!("{host}/stagecraft-login-check/probe:latest"))?;
        let client = self.client(&probe);
        let auth = RegistryAuth::Basic(user.to_owned(), password.to_owned());
        let result = match client.auth(&probe, &auth, RegistryOperation::Pull).await {
            Ok(_) => client.fetch_manifest_digest(&probe, &auth).await.map(drop),
            Err(error) => Err(error),
        };
        let refused = |detail: String| RegistryError::LoginRefused {
            server: host.to_owned(),
            detail,
        };
        match result {
            Ok(()) => Ok(()),
            Err(OciDistributionError::AuthenticationFailure(detail)) => Err(refused(detail)),
            Err(error @ OciDistributionError::UnauthorizedError { .. }) => {
                Err(refused(error.to_string()))
            }
            Err(OciDistributionError::ServerError { code, message, .. })
                if code == 401 || code == 403 =>
            {
                Err(refused(message))
            }
            Err(error @ OciDistributionError::RegistryError { .. })
                if error.to_string().contains("UNAUTHORIZED") =>
            {
                Err(refused(describe(&error)))
            }
            // Reached, and not refused: the probe repository is simply not there.
            Err(
                OciDistributionError::ImageManifestNotFoundError(_)
                | OciDistributionError::RegistryError { .. }
                | OciDistributionError::ServerError { .. },
            ) => Ok(()),
            Err(error) => Err(remote("logging in to", &probe)(error)),
        }
    }

    /// Credentials for the reference's registry from docker's config, anonymous otherwise.
    fn auth(reference: &Reference) -> RegistryAuth {
        let server = credentials::credential_key(reference.resolve_registry());
        match docker_credential::get_credential(&server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
                RegistryAuth::Basic(user, password)
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                RegistryAuth::Bearer(token)
            }
            Err(_) => RegistryAuth::Anonymous,
        }
    }

    async fn authenticate(
        &self,
        reference: &Reference,
        operation: RegistryOperation,
    ) -> Result<Arc<Client>, RegistryError> {
        let client = self.client(reference);
        client
            .auth(reference, &Self::auth(reference), operation)
            .await
            .map_err(remote("authenticating for", reference))?;
        Ok(client)
    }

    /// Fetches a manifest (or index) by tag or digest, verifying a digest reference.
    pub async fn manifest(&self, reference: &Reference) -> Result<RemoteManifest, RegistryError> {
        let client = self
            .authenticate(reference, RegistryOperation::Pull)
            .await?;
        let (bytes, _) = client
            .pull_manifest_raw(reference, &Self::auth(reference), &MANIFEST_MEDIA_TYPES)
            .await
            .map_err(remote("fetching manifest of", reference))?;
        let digest = sha256_digest(&bytes);
        if let Some(expected) = reference.digest()
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                reference: reference.whole(),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let media_type = media_type_of(&bytes);
        Ok(RemoteManifest {
            bytes: bytes.to_vec(),
            digest,
            media_type,
        })
    }

    /// Downloads a blob into `path`, verifying its digest while streaming.
    pub async fn blob_to_file(
        &self,
        reference: &Reference,
        digest: &str,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let client = self
            .authenticate(reference, RegistryOperation::Pull)
            .await?;
        let io_error = io_at(path);
        let mut file = tokio::fs::File::create(path).await.map_err(io_error)?;
        let mut stream = client
            .pull_blob_stream(reference, &digest)
            .await
            .map_err(remote("fetching blob of", reference))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.stream.try_next().await.map_err(io_error)? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io_error)?;
        }
        file.flush().await.map_err(io_error)?;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: "blob",
                reference: reference.whole(),
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    /// Whether the repository already has a blob (HEAD), so uploads can be skipped.
    pub async fn has_blob(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let client = self
            .authenticate(reference, RegistryOperation::Push)
            .await?;
        client
            .blob_exists(reference, digest)
            .await
            .map_err(remote("checking blob of", reference))
    }

    /// Asks the registry to link a blob from another repository of the same registry.
    /// Returns false when the registry declines (the caller uploads instead).
    pub async fn mount_blob(&self, target: &Reference, source: &Reference, digest: &str) -> bool {
        if target.resolve_registry() != source.resolve_registry() {
            return false;
        }
        let Ok(client) = self.authenticate(target, RegistryOperation::Push).await else {
            return false;
        };
        client.mount_blob(target, source, digest).await.is_ok()
    }

    /// Uploads a blob from a file in one request.
    pub async fn push_blob_file(
        &self,
        reference: &Reference,
        digest: &str,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let client = self
            .authenticate(reference, RegistryOperation::Push)
            .await?;
        let io_error = io_at(path);
        let file = tokio::fs::File::open(path).await.map_err(io_error)?;
        let size = file.metadata().await.map_err(io_error)?.len();
        let stream = tokio_util::io::ReaderStream::new(file)
            .map_err(|e| OciDistributionError::GenericError(Some(e.to_string())));
        client
            .push_blob_stream(reference, stream, digest, Some(size))
            .await
            .map_err(remote("uploading blob to", reference))?;
        Ok(())
    }

    /// Uploads a manifest's exact bytes under the reference's tag (or digest).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let client = self
            .authenticate(reference, RegistryOperation::Push)
            .await?;
        let content_type = media_type
            .parse()
            .map_err(|_| RegistryError::BadMediaType {
                reference: reference.whole(),
                media_type: media_type.to_owned(),
            })?;
        client
            .push_manifest_raw(reference, bytes.to_vec(), content_type)
            .await
            .map_err(remote("uploading manifest to", reference))?;
        Ok(sha256_digest(bytes))
    }
}

/// The `mediaType` field of a manifest document, if it has one.
fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct MediaTypeOnly {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaTypeOnly>(bytes)
        .ok()
        .and_then(|m| m.media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_registries_are_plain_http_like_docker() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_local_registry(host), "{host}");
        }
        for host in [
            "docker.io",
            "example.com:5000",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!is_local_registry(host), "{host}");
        }
    }

    #[test]
    fn references_normalize_like_docker() {
        let r = parse_reference("busybox").unwrap();
        assert_eq!(r.whole(), "docker.io/library/busybox:latest");
        let r = parse_reference("127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(r.resolve_registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert!(parse_reference("Busybox").is_err());
        assert!(parse_reference("a:b:c").is_err());
        let r = parse_reference("index.docker.io/debian").unwrap();
        assert_eq!(r.whole(), "docker.io/library/debian:latest");
    }

    #[test]
    fn references_keep_their_digest_and_get_latest_only_without_one() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = parse_reference(&format!("ghcr.io/o/r@{digest}")).unwrap();
        assert_eq!((r.tag(), r.digest()), (None, Some(digest.as_str())));
        let r = parse_reference(&format!("ghcr.io/o/r:1.0@{digest}")).unwrap();
        assert_eq!((r.tag(), r.digest()), (Some("1.0"), Some(digest.as_str())));
        assert_eq!(r.whole(), format!("ghcr.io/o/r:1.0@{digest}"));
        let error = parse_reference("ghcr.io/o/r@sha256:abc").unwrap_err();
        assert!(
            matches!(
                error,
                RegistryError::BadReference(ReferenceError::Digest { .. })
            ),
            "{error}"
        );
    }

    #[test]
    fn media_type_is_read_from_the_document() {
        assert_eq!(
            media_type_of(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#
            )
            .as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
        assert_eq!(media_type_of(b"{}"), None);
    }
}
