//! What a build is asked to do besides the Dockerfile.

use stagecraft_image::{Digest, Reference, ReferenceError};
use stagecraft_plan::PlanOptions;
use stagecraft_store::ManifestFormat;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// Everything a build needs besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Target, build arguments, platform.
    pub plan: PlanOptions,
    /// The build context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile's path (for its `NAME.dockerignore`).
    pub dockerfile_path: Option<PathBuf>,
    /// Ignore the cache for every step.
    pub no_cache: bool,
    /// Ignore the cache for these stages.
    pub no_cache_filter: Vec<String>,
    /// Clamp timestamps (files and history) to this Unix time.
    pub source_date_epoch: Option<i64>,
    /// Media types of the result.
    pub manifest_format: ManifestFormat,
    /// `--label` values added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--secret` values by id. They reach `RUN --mount=type=secret` only: never a layer, the
    /// config, the history, a cache key or the progress output.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// `--ssh` agent sockets by id, for `RUN --mount=type=ssh`. Like secrets, they change
    /// no cache key.
    pub ssh: BTreeMap<String, PathBuf>,
    /// Build arguments (in `plan.build_args`) whose values are secret: `RUN` sees them as
    /// variables, but the history shows `****`, output lines have the value masked, and any
    /// other instruction that would expand one into the image (ENV, LABEL, WORKDIR, COPY
    /// paths, …) is an error. Their values change cache keys through a hash only.
    pub secret_args: BTreeSet<String>,
    /// `--cache-normalize-mode`: COPY/ADD keys see context files' modes without group and
    /// other write bits, so machines with different umasks share a cache (the layer keeps
    /// the modes of the machine that made it).
    pub cache_normalize_mode: bool,
    /// The network of `RUN` steps without a `--network` of their own (`--network`, BuildKit's
    /// `force-network-mode`): the build's sandbox by default. The caller's choice, so `Host`
    /// here needs no entitlement (buildx grants `network.host` with `--network=host`).
    pub network: stagecraft_exec::Network,
    /// `--add-host`: extra `/etc/hosts` entries every `RUN` sees.
    pub extra_hosts: Vec<stagecraft_exec::HostEntry>,
    /// `--ulimit`: resource limits of every `RUN` (none: the builder's own).
    pub ulimits: Vec<stagecraft_exec::Ulimit>,
    /// `--shm-size`: the size of every `RUN`'s `/dev/shm` in bytes (none: 64 MiB).
    pub shm_size: Option<u64>,
    /// Privileges granted with `--allow` (`RUN --security=insecure` needs `security.insecure`).
    pub entitlements: BTreeSet<crate::Entitlement>,
    /// `--build-context NAME=VALUE`: named build contexts by their name as
    /// [`stagecraft_plan::context_name`] normalizes it ([`parse_build_context`] gives both).
    /// The engine plans with these names, whatever `plan.named_contexts` says.
    pub named_contexts: BTreeMap<String, NamedContext>,
}

/// What a named build context (`--build-context NAME=VALUE`) holds, as buildx reads VALUE.
/// It replaces the stage called NAME, and is what `FROM NAME`, `COPY --from=NAME` and
/// `RUN --mount=from=NAME` take when no stage has that name (BuildKit's semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory (absolute): read like the main context, every path resolved inside
    /// it, with the `.dockerignore` at its root (not the main context's), as BuildKit does.
    Dir(PathBuf),
    /// `docker-image://REF`: an image, from the store or else its registry.
    Image(String),
    /// `docker-image://scratch`: an empty file system, as BuildKit's empty image name.
    Scratch,
    /// `oci-layout://PATH[:TAG|@DIGEST]`: an image of a local OCI image layout.
    OciLayout(OciLayoutRef),
    /// A git repository (`https://host/repo.git#ref:subdir`, `git@host:repo`, `ssh://…`),
    /// checked out as `ADD` checks one out; its files as a directory context.
    Git(String),
    /// Another `http(s)://` URL: downloaded, the context holds it as the file `context`, as
    /// BuildKit names it.
    Url(String),
}

/// An image in a local OCI image layout, as buildx parses `oci-layout://PATH[:TAG][@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayoutRef {
    /// The layout directory (absolute).
    pub path: PathBuf,
    /// The name in the layout's `index.json` (`io.containerd.image.name`, else
    /// `org.opencontainers.image.ref.name`); `latest` when neither tag nor digest is given.
    /// Unused when a digest is given.
    pub tag: Option<String>,
    /// The manifest or index, by digest.
    pub digest: Option<Digest>,
}

impl fmt::Display for OciLayoutRef {
    /// The value as buildx writes it: `oci-layout://PATH[:TAG][@DIGEST]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{OCI_LAYOUT_PREFIX}{}", self.path.display())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

const OCI_LAYOUT_PREFIX: &str = "oci-layout://";
const DOCKER_IMAGE_PREFIX: &str = "docker-image://";

/// Why a `--build-context` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum NamedContextError {
    /// Not `NAME=VALUE`.
    #[error(
        "invalid context value {value:?}, expected NAME=VALUE (e.g. `--build-context assets=./web/dist`)"
    )]
    Syntax {
        /// The value given.
        value: String,
    },
    /// The name is not a valid image reference, which buildx requires of it.
    #[error("invalid context name {name:?}: {source}")]
    Name {
        /// The name given.
        name: String,
        /// Why it is not a reference.
        #[source]
        source: ReferenceError,
    },
    /// `docker-image://` with an invalid reference.
    #[error("invalid image reference in {value:?}: {source}")]
    Image {
        /// The value given.
        value: String,
        /// Why the reference is invalid.
        #[source]
        source: ReferenceError,
    },
    /// `oci-layout://` without a layout directory.
    #[error("invalid oci-layout reference {value:?}: {reason}")]
    OciLayout {
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A git URL with a bad query or fragment.
    #[error("invalid git context {value:?}: {reason}")]
    Git {
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A `scheme://` stagecraft (and BuildKit) cannot take a context from.
    #[error(
        "unsupported context source {value:?}\n  = help: a named context is a directory, docker-image://REF, oci-layout://PATH[:TAG|@DIGEST], a git repository or an http(s):// URL"
    )]
    Unsupported {
        /// The value given.
        value: String,
    },
}

/// Parses a `--build-context NAME=VALUE` as buildx does: NAME must be an image reference and is
/// normalized ([`stagecraft_plan::context_name`]: `alpine:latest` is `alpine`); VALUE is
/// `docker-image://REF`, `oci-layout://PATH[:TAG|@DIGEST]`, a git repository or `http(s)://`
/// URL, or else a local directory (made absolute here; whether it is one is checked when the
/// build starts).
///
/// ```
/// use stagecraft_solve::{NamedContext, parse_build_context};
///
/// let (name, context) = parse_build_context("docker.io/library/alpine=docker-image://busybox:1")?;
/// assert_eq!((name.as_str(), context), ("alpine", NamedContext::Image("busybox:1".into())));
/// assert!(parse_build_context("assets=ftp://example.com/x").is_err());
/// # Ok::<(), stagecraft_solve::NamedContextError>(())
/// ```
pub fn parse_build_context(text: &str) -> Result<(String, NamedContext), NamedContextError> {
    let (name, value) = text
        .split_once('=')
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .ok_or_else(|| NamedContextError::Syntax {
            value: text.to_owned(),
        })?;
    let name = stagecraft_plan::context_name(name).map_err(|source| NamedContextError::Name {
        name: name.to_owned(),
        source,
    })?;
    Ok((name, NamedContext::parse(value)?))
}

impl NamedContext {
    /// Parses VALUE of `--build-context NAME=VALUE` (see [`parse_build_context`]).
    pub fn parse(value: &str) -> Result<NamedContext, NamedContextError> {
        if let Some(reference) = value.strip_prefix(DOCKER_IMAGE_PREFIX) {
            if reference == "scratch" {
                return Ok(NamedContext::Scratch);
            }
            Reference::parse(reference).map_err(|source| NamedContextError::Image {
                value: value.to_owned(),
                source,
            })?;
            return Ok(NamedContext::Image(reference.to_owned()));
        }
        if value.starts_with(OCI_LAYOUT_PREFIX) {
            return OciLayoutRef::parse(value).map(NamedContext::OciLayout);
        }
        if let Some(git) = crate::ops::git::parse(value) {
            return match git {
                Ok(_) => Ok(NamedContext::Git(value.to_owned())),
                Err(reason) => Err(NamedContextError::Git {
                    value: value.to_owned(),
                    reason: reason.to_string(),
                }),
            };
        }
        if crate::ops::http::is_url(value) {
            return Ok(NamedContext::Url(value.to_owned()));
        }
        if value.contains("://") {
            return Err(NamedContextError::Unsupported {
                value: value.to_owned(),
            });
        }
        // `absolute` only fails for an empty path, which `parse_build_context` refuses.
        let path = std::path::absolute(value).unwrap_or_else(|_| PathBuf::from(value));
        Ok(NamedContext::Dir(path))
    }
}

impl OciLayoutRef {
    /// Parses `oci-layout://PATH[:TAG][@DIGEST]` as buildx does: a digest after the last `@`,
    /// a tag after the last `:` when it is a valid tag, `latest` when there is neither.
    fn parse(value: &str) -> Result<OciLayoutRef, NamedContextError> {
        let invalid = |reason: String| NamedContextError::OciLayout {
            value: value.to_owned(),
            reason,
        };
        let mut path = &value[OCI_LAYOUT_PREFIX.len()..];
        // As buildx: what follows the last `@` is a digest only when it reads as one (a
        // directory name may hold an `@`).
        let mut digest = None;
        if let Some((before, after)) = path.rsplit_once('@')
            && let Ok(parsed) = Digest::parse(after)
        {
            digest = Some(parsed);
            path = before;
        }
        let mut tag = None;
        if let Some((before, after)) = path.rsplit_once(':')
            && is_tag(after)
        {
            tag = Some(after.to_owned());
            path = before;
        }
        if path.is_empty() {
            return Err(invalid("no layout directory".to_owned()));
        }
        if tag.is_none() && digest.is_none() {
            tag = Some("latest".to_owned());
        }
        Ok(OciLayoutRef {
            path: std::path::absolute(path).map_err(|e| invalid(e.to_string()))?,
            tag,
            digest,
        })
    }
}

/// Whether `text` is a valid tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`), by the one tag rule
/// of [`Reference`].
fn is_tag(text: &str) -> bool {
    Reference::parse("layout").is_ok_and(|r| r.with_tag(text).is_ok())
}
