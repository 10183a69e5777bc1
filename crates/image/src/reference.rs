//! Image references (`busybox`, `localhost:5000/app:1.0`,
//! `ghcr.io/o/r@sha256:…`) with Docker's normalization rules.
//!
//! This follows `github.com/distribution/reference` (`ParseNormalizedNamed`):
//!
//! * the first path component is a registry host only if it contains `.` or
//!   `:`, is `localhost`, or has uppercase letters; otherwise the registry is
//!   `docker.io` (`index.docker.io` is rewritten to `docker.io`);
//! * a single-component name on `docker.io` gets the `library/` prefix;
//! * repository path components are lowercase alphanumerics joined by `.`,
//!   `_`, `__` or runs of `-`; the whole name is at most 255 characters;
//! * a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
//! * a 64-hex string alone is refused, because it looks like an image ID.
//!
//! The one deliberate difference: digests must be sha256 (see
//! [`Digest`]), the only algorithm stagecraft stores.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry assumed when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;
/// The tag Docker assumes when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Why a reference was rejected. Every message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input is empty.
    #[error("invalid reference format: the image reference is empty")]
    Empty,
    /// The input is a bare 64-hex string.
    #[error(
        "invalid repository name {input:?}: a 64-character hexadecimal string looks like an image ID; to refer to content by digest write NAME@sha256:{input}"
    )]
    LooksLikeId {
        /// The rejected input.
        input: String,
    },
    /// Something in the syntax is wrong.
    #[error("invalid reference format {input:?}: {reason}")]
    Format {
        /// The rejected input.
        input: String,
        /// What rule was broken, in words.
        reason: String,
    },
    /// The repository path has uppercase letters.
    #[error(
        "invalid reference format {input:?}: repository name {path:?} must be lowercase (only the registry host may contain uppercase letters)"
    )]
    Uppercase {
        /// The rejected input.
        input: String,
        /// The offending repository path.
        path: String,
    },
    /// The tag is malformed.
    #[error(
        "invalid tag {tag:?} in {input:?}: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    Tag {
        /// The rejected input.
        input: String,
        /// The offending tag.
        tag: String,
    },
    /// The digest is malformed or not sha256.
    #[error("invalid digest in reference {input:?}: {source}")]
    Digest {
        /// The rejected input.
        input: String,
        /// Why the digest was rejected.
        #[source]
        source: DigestError,
    },
}

/// A parsed, normalized image reference: registry domain, repository path,
/// optional tag, optional digest.
///
/// ```
/// use stagecraft_image::Reference;
///
/// let r = Reference::parse("busybox")?.with_default_tag();
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
/// assert_eq!(r.familiar(), "busybox:latest");
/// let r = Reference::parse("localhost:5000/team/app:1.0")?;
/// assert_eq!((r.domain(), r.path(), r.tag()), ("localhost:5000", "team/app", Some("1.0")));
/// # Ok::<(), stagecraft_image::ReferenceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes `input` as `docker pull` does. No tag is added;
    /// see [`Reference::with_default_tag`].
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let format_error = |reason: &str| ReferenceError::Format {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // Said first: a space is the mistake people make most, and the rules below would call
        // it a bad path component.
        if input.contains(char::is_whitespace) {
            return Err(format_error(
                "an image reference cannot contain spaces or other white space",
            ));
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(ReferenceError::LooksLikeId {
                input: input.to_owned(),
            });
        }

        let (name_and_tag, digest) = match input.split_once('@') {
            Some((name, digest)) => {
                let digest = Digest::parse(digest).map_err(|source| ReferenceError::Digest {
                    input: input.to_owned(),
                    source,
                })?;
                (name, Some(digest))
            }
            None => (input, None),
        };

        // A ':' after the last '/' starts the tag; one before it belongs to
        // a registry port (`localhost:5000/app`).
        let last_slash = name_and_tag.rfind('/');
        let (name, tag) = match name_and_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
            }
            _ => (name_and_tag, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Tag {
                input: input.to_owned(),
                tag: tag.to_owned(),
            });
        }
        if name.is_empty() {
            return Err(format_error("the repository name is empty"));
        }

        let (domain, path) = split_docker_domain(name);
        if path.to_ascii_lowercase() != path {
            return Err(ReferenceError::Uppercase {
                input: input.to_owned(),
                path,
            });
        }
        if !valid_domain(&domain) {
            return Err(format_error(&format!(
                "{domain:?} is not a valid registry host (letters, digits and '-' in dot-separated labels, or [IPv6], optionally followed by :port)"
            )));
        }
        if let Some(bad) = path
            .split('/')
            .find(|component| !valid_path_component(component))
        {
            return Err(format_error(&if bad.is_empty() {
                "the repository path has an empty component ('//' or a trailing '/')".to_owned()
            } else {
                format!(
                    "path component {bad:?} must be lowercase letters and digits separated by single '.', '_' or '__', or runs of '-'"
                )
            }));
        }
        let full_length = domain.len() + 1 + path.len();
        if full_length > NAME_TOTAL_LENGTH_MAX {
            return Err(format_error(&format!(
                "the repository name is {full_length} characters long; the limit is {NAME_TOTAL_LENGTH_MAX}"
            )));
        }

        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Docker's `TagNameOnly`: adds `latest` when there is neither a tag nor a
    /// digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The same repository with `tag` instead of any tag or digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag {
                input: self.to_string(),
                tag: tag.to_owned(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (keeping any tag, as
    /// `name:tag@digest`).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The registry host, with port if any (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, the fully-qualified repository name.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The short form Docker prints: `busybox:latest` for
    /// `docker.io/library/busybox:latest`, `user/app` for
    /// `docker.io/user/app`, other registries unchanged.
    pub fn familiar(&self) -> String {
        let name = if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.name()
        };
        let mut out = name;
        push_suffixes(&mut out, self.tag.as_deref(), self.digest.as_ref());
        out
    }
}

fn push_suffixes(out: &mut String, tag: Option<&str>, digest: Option<&Digest>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest.as_str());
    }
}

impl fmt::Display for Reference {
    /// The fully-qualified form, `domain/path[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        push_suffixes(&mut out, self.tag.as_deref(), self.digest.as_ref());
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// distribution/reference's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_ascii_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
}

fn valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    tag.len() <= TAG_LENGTH_MAX
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// `host[:port]`, host being dot-separated labels or a bracketed IPv6.
fn valid_domain(domain: &str) -> bool {
    let valid_port = |port: &str| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let address_ok =
            !inside.is_empty() && inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
        return address_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(valid_port));
    }
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
    };
    host.split('.').all(label_ok) && port.is_none_or(valid_port)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalization_table() {
        let digest = format!("sha256:{HEX}");
        for (input, expected) in [
            ("busybox", "docker.io/library/busybox:latest".to_owned()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".to_owned()),
            (
                "library/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            ("user/app", "docker.io/user/app:latest".to_owned()),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest".to_owned(),
            ),
            ("localhost/app", "localhost/app:latest".to_owned()),
            ("localhost:5000/x", "localhost:5000/x:latest".to_owned()),
            ("localhost:5000/a/b:v1", "localhost:5000/a/b:v1".to_owned()),
            (
                "localhost:5000",
                "docker.io/library/localhost:5000".to_owned(),
            ),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest".to_owned()),
            ("[::1]:5000/app", "[::1]:5000/app:latest".to_owned()),
            ("ghcr.io/o/r/deep", "ghcr.io/o/r/deep:latest".to_owned()),
            (
                "Registry.Example/app",
                "Registry.Example/app:latest".to_owned(),
            ),
            (
                "a__b/c-d--e/f.g_h",
                "docker.io/a__b/c-d--e/f.g_h:latest".to_owned(),
            ),
            (
                &format!("busybox@{digest}"),
                format!("docker.io/library/busybox@{digest}"),
            ),
            (
                &format!("busybox:1@{digest}"),
                format!("docker.io/library/busybox:1@{digest}"),
            ),
        ] {
            let reference = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                reference.with_default_tag().to_string(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn rejection_table() {
        let long = format!("{}/x", "a".repeat(260));
        for (input, needle) in [
            ("", "empty"),
            (HEX, "looks like an image ID"),
            ("Busybox", "must be lowercase"),
            ("user/App", "must be lowercase"),
            ("busybox:", "invalid tag"),
            ("busybox:-x", "invalid tag"),
            ("busybox:a b", "cannot contain spaces"),
            ("my app:1", "cannot contain spaces"),
            ("app\t", "cannot contain spaces"),
            (":tag", "repository name is empty"),
            ("a//b", "empty component"),
            ("app/", "empty component"),
            ("a..b", "path component \"a..b\""),
            ("a___b", "path component"),
            ("-a", "path component"),
            ("bad_host.io:port/app", "not a valid registry host"),
            ("-bad.io/app", "not a valid registry host"),
            ("busybox@sha256:abc", "invalid digest"),
            ("busybox@md5:abc", "sha256 only"),
            (&long, "limit is 255"),
        ] {
            let err = Reference::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn accessors_and_familiar_form() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.familiar(), "busybox");
        let r = Reference::parse("docker.io/user/app:2").unwrap();
        assert_eq!(r.familiar(), "user/app:2");
        let r = Reference::parse("localhost:5000/app")
            .unwrap()
            .with_tag("v2")
            .unwrap();
        assert_eq!(r.familiar(), "localhost:5000/app:v2");
        assert!(r.with_tag("bad tag").is_err());
        let pinned = r.with_digest(Digest::of(b""));
        assert_eq!(pinned.digest(), Some(&Digest::of(b"")));
        assert_eq!(
            pinned.to_string(),
            format!("localhost:5000/app:v2@sha256:{HEX}")
        );
        assert_eq!(
            "busybox".parse::<Reference>().unwrap().path(),
            "library/busybox"
        );
    }

    #[test]
    fn tag_length_limit() {
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
        assert!(Reference::parse(&format!("a:{}", "t".repeat(129))).is_err());
    }
}
