//! Package URLs (`pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`), written as the purl
//! specification asks: every component percent-encoded except the unreserved characters,
//! qualifiers sorted by key, empty qualifier values left out.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use stagecraft_image::{Platform, Reference};
use std::fmt;

/// What stays as it is in a purl component: letters, digits and `.-_~` (RFC 3986's
/// unreserved set). Everything else, `@`, `:`, `/` and `+` included, is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// A package URL under construction; its `Display` is the canonical string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Purl {
    kind: &'static str,
    namespace: Vec<String>,
    name: String,
    version: String,
    qualifiers: Vec<(&'static str, String)>,
}

impl Purl {
    /// `pkg:KIND/NAME@VERSION` (an empty version is left out).
    pub(crate) fn new(kind: &'static str, name: &str, version: &str) -> Self {
        Purl {
            kind,
            namespace: Vec::new(),
            name: name.to_owned(),
            version: version.to_owned(),
            qualifiers: Vec::new(),
        }
    }

    /// Adds namespace segments; `namespace` is split on `/` (a Go module path or a Maven
    /// group with its slashes), and each segment is encoded on its own.
    pub(crate) fn namespace(mut self, namespace: &str) -> Self {
        self.namespace.extend(
            namespace
                .split('/')
                .filter(|segment| !segment.is_empty())
                .map(str::to_owned),
        );
        self
    }

    /// Adds a qualifier; an empty value is left out, as the specification says.
    pub(crate) fn qualifier(mut self, key: &'static str, value: &str) -> Self {
        if !value.is_empty() {
            self.qualifiers.push((key, value.to_owned()));
        }
        self
    }
}

impl fmt::Display for Purl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkg:{}/", self.kind)?;
        for segment in &self.namespace {
            write!(f, "{}/", utf8_percent_encode(segment, COMPONENT))?;
        }
        write!(f, "{}", utf8_percent_encode(&self.name, COMPONENT))?;
        if !self.version.is_empty() {
            write!(f, "@{}", utf8_percent_encode(&self.version, COMPONENT))?;
        }
        let mut qualifiers = self.qualifiers.clone();
        qualifiers.sort();
        for (i, (key, value)) in qualifiers.iter().enumerate() {
            let separator = if i == 0 { '?' } else { '&' };
            write!(
                f,
                "{separator}{key}={}",
                utf8_percent_encode(value, COMPONENT)
            )?;
        }
        Ok(())
    }
}

/// The purl of an image reference, as BuildKit names images in attestation subjects and
/// provenance materials: `pkg:docker/NAMESPACE/NAME@TAG?platform=OS%2FARCH` with the name
/// as docker shortens it (`busybox`, `team/app`, `registry:5000/app`), the tag (`latest`
/// when the reference has neither tag nor digest), a `digest=` qualifier for a reference by
/// digest, and the platform when given.
pub fn image_purl(reference: &Reference, platform: Option<&Platform>) -> String {
    let familiar = Reference::parse(&reference.name())
        .map(|name| name.familiar())
        .unwrap_or_else(|_| reference.name());
    let (namespace, name) = familiar.rsplit_once('/').unwrap_or(("", &familiar));
    let tag = match (reference.tag(), reference.digest()) {
        (Some(tag), _) => tag,
        (None, Some(_)) => "",
        (None, None) => stagecraft_image::DEFAULT_TAG,
    };
    let digest = reference
        .digest()
        .map(|d| d.to_string())
        .unwrap_or_default();
    let platform = platform
        .map(|p| p.clone().normalized().to_string())
        .unwrap_or_default();
    Purl::new("docker", name, tag)
        .namespace(namespace)
        .qualifier("digest", &digest)
        .qualifier("platform", &platform)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_purls_name_images_as_buildkit_does() {
        let purl = |text: &str, platform: Option<&str>| {
            let platform = platform.map(|p| Platform::parse(p).unwrap());
            image_purl(&Reference::parse(text).unwrap(), platform.as_ref())
        };
        assert_eq!(
            purl("busybox", Some("linux/amd64")),
            "pkg:docker/busybox@latest?platform=linux%2Famd64"
        );
        assert_eq!(
            purl("docker.io/team/app:1.0", Some("linux/arm/v7")),
            "pkg:docker/team/app@1.0?platform=linux%2Farm%2Fv7"
        );
        assert_eq!(
            purl("127.0.0.1:5000/app:x", None),
            "pkg:docker/127.0.0.1%3A5000/app@x"
        );
        let digest = stagecraft_image::Digest::of(b"m");
        assert_eq!(
            purl(&format!("alpine@{digest}"), None),
            format!("pkg:docker/alpine?digest=sha256%3A{}", digest.hex())
        );
    }

    #[test]
    fn encodes_each_component_and_sorts_qualifiers() {
        let purl = Purl::new("deb", "libfoo++", "1:2.0+dfsg-3")
            .namespace("ubuntu")
            .qualifier("distro", "ubuntu-24.04")
            .qualifier("arch", "amd64")
            .qualifier("upstream", "");
        assert_eq!(
            purl.to_string(),
            "pkg:deb/ubuntu/libfoo%2B%2B@1%3A2.0%2Bdfsg-3?arch=amd64&distro=ubuntu-24.04"
        );
    }

    #[test]
    fn namespaces_split_into_segments_and_scopes_are_encoded() {
        assert_eq!(
            Purl::new("golang", "text", "v0.14.0")
                .namespace("example.org/x")
                .to_string(),
            "pkg:golang/example.org/x/text@v0.14.0"
        );
        assert_eq!(
            Purl::new("npm", "parser", "7.0.0")
                .namespace("@babel")
                .to_string(),
            "pkg:npm/%40babel/parser@7.0.0"
        );
        assert_eq!(Purl::new("cargo", "x", "").to_string(), "pkg:cargo/x");
    }
}
