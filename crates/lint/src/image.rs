//! Image references, parsed with docker's grammar (`distribution/reference`), and what the
//! linter knows about well-known images.

use regex::Regex;
use std::sync::LazyLock;

/// A normalized image reference: `alpine` is `docker.io/library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// `docker.io`, `gcr.io`, `localhost:5000`, …
    pub domain: String,
    /// `library/alpine`, `dotnet/sdk`, …
    pub path: String,
    /// The tag, if one is written.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), if one is written.
    pub digest: Option<String>,
}

/// `distribution/reference`'s `ReferenceRegexp`, anchored, with ASCII classes as in Go's RE2.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let alphanumeric = "[a-z0-9]+";
    let separator = "(?:[._]|__|[-]+)";
    let component = format!("{alphanumeric}(?:{separator}{alphanumeric})*");
    let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let host = format!(r"(?:{domain_component}(?:\.{domain_component})*|\[[a-fA-F0-9:]+\])");
    let pattern = format!(
        r"^(?:(?P<domain>{host}(?::[0-9]+)?)/)?(?P<path>{component}(?:/{component})*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}))?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{{32,}}))?$"
    );
    Regex::new(&pattern).expect("the reference grammar is a valid regular expression")
});

impl ImageRef {
    /// Parses `text` as docker's `ParseNormalizedNamed` does; `None` when docker would reject
    /// it (empty, uppercase repository, bad characters, unknown digest algorithm, …).
    pub(crate) fn parse(text: &str) -> Option<ImageRef> {
        if text.len() == 64 && text.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')) {
            return None;
        }
        let (domain, remainder) = split_docker_domain(text);
        let remote = remainder.split(':').next().unwrap_or(&remainder);
        if remote.to_lowercase() != remote {
            return None;
        }
        let full = format!("{domain}/{remainder}");
        let captures = REFERENCE.captures(&full)?;
        let path = captures.name("path")?.as_str();
        if domain.len() + 1 + path.len() > 255 {
            return None;
        }
        let digest = captures.name("digest").map(|d| d.as_str().to_owned());
        if let Some(digest) = &digest {
            let (algorithm, hex) = digest.split_once(':')?;
            let expected = match algorithm {
                "sha256" => 64,
                "sha384" => 96,
                "sha512" => 128,
                _ => return None,
            };
            if hex.len() != expected {
                return None;
            }
        }
        Some(ImageRef {
            domain,
            path: path.to_owned(),
            tag: captures.name("tag").map(|t| t.as_str().to_owned()),
            digest,
        })
    }

    /// The name people write: `golang`, `bitnami/node`, `mcr.microsoft.com/dotnet/sdk`.
    pub(crate) fn short_name(&self) -> String {
        match (self.domain.as_str(), self.path.strip_prefix("library/")) {
            ("docker.io", Some(official)) => official.to_owned(),
            ("docker.io", None) => self.path.clone(),
            (domain, _) => format!("{domain}/{}", self.path),
        }
    }

    /// Whether nothing pins the version: no tag and no digest (docker then pulls `latest`).
    pub(crate) fn is_untagged(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// Whether the image sets no environment variables but `PATH`, so a variable it does not
    /// define is certainly undefined.
    pub(crate) fn has_bare_environment(&self) -> bool {
        matches!(
            self.short_name().as_str(),
            "alpine" | "busybox" | "debian" | "ubuntu"
        )
    }

    /// Whether the image has no C library, like `scratch`: only static binaries run on it.
    pub(crate) fn lacks_libc(&self) -> bool {
        let name = self.short_name();
        name.starts_with("gcr.io/distroless/static") || name == "cgr.dev/chainguard/static"
    }

    /// Whether containers of this image start as a user other than root: `nonroot`/`rootless`
    /// variants, Chainguard images (but their `-dev` variants) and Bitnami's.
    pub(crate) fn starts_unprivileged(&self) -> bool {
        let name = self.short_name();
        let tag = self.tag.as_deref().unwrap_or("");
        tag.contains("nonroot")
            || tag.contains("rootless")
            || (name.starts_with("cgr.dev/chainguard/") && !tag.contains("dev"))
            || name.starts_with("bitnami/")
    }

    /// Whether this is a Windows image (`mcr.microsoft.com/windows/servercore`, a `nanoserver`
    /// or `windowsservercore` variant, the .NET Framework images): its RUNs go to `cmd` or
    /// PowerShell, not a POSIX shell.
    pub(crate) fn is_windows(&self) -> bool {
        let name = self.short_name();
        let tag = self.tag.as_deref().unwrap_or("");
        name.starts_with("mcr.microsoft.com/windows")
            || name.starts_with("mcr.microsoft.com/dotnet/framework")
            || [name.as_str(), tag]
                .iter()
                .any(|part| part.contains("nanoserver") || part.contains("servercore"))
    }

    /// When this is a full SDK image rather than a runtime image: what it carries, and what a
    /// final stage should use instead.
    pub(crate) fn sdk_contents(&self) -> Option<(&'static str, &'static str)> {
        let name = self.short_name();
        // A digest alone says nothing about the variant: only images that are SDKs in every
        // variant count then.
        let tag = self
            .tag
            .as_deref()
            .or(self.digest.is_none().then_some("latest"));
        let tag_has = |markers: &[&str]| tag.is_some_and(|t| markers.iter().any(|m| t.contains(m)));
        let static_runtime =
            "a minimal runtime such as gcr.io/distroless/static-debian12, alpine or scratch";
        let jre = "a JRE image such as eclipse-temurin:21-jre";
        match name.as_str() {
            "golang" => Some(("the whole Go toolchain", static_runtime)),
            "rust" => Some((
                "the whole Rust toolchain",
                "gcr.io/distroless/cc-debian12, debian:bookworm-slim or alpine",
            )),
            "maven" => Some(("Maven and a full JDK", jre)),
            "gradle" => Some(("Gradle and a full JDK", jre)),
            "mcr.microsoft.com/dotnet/sdk" => Some((
                "the whole .NET SDK",
                "mcr.microsoft.com/dotnet/aspnet or mcr.microsoft.com/dotnet/runtime",
            )),
            "openjdk"
            | "eclipse-temurin"
            | "amazoncorretto"
            | "ibm-semeru-runtimes"
            | "sapmachine"
                if tag.is_some() && !tag_has(&["jre"]) =>
            {
                Some(("a full JDK (compiler included)", jre))
            }
            "node" if tag.is_some() && !tag_has(&["slim", "alpine"]) => Some((
                "compilers, headers and git (the full Debian build variant)",
                "node:<version>-slim, node:<version>-alpine or a distroless node image",
            )),
            "python" if tag.is_some() && !tag_has(&["slim", "alpine"]) => Some((
                "compilers, headers and git (the full Debian build variant)",
                "python:<version>-slim or a distroless python image",
            )),
            _ => None,
        }
    }
}

/// `distribution/reference`'s `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".to_owned();
    }
    if domain == "docker.io" && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_docker() {
        let r = ImageRef::parse("golang:1.22-alpine").unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str()),
            ("docker.io", "library/golang")
        );
        assert_eq!(r.tag.as_deref(), Some("1.22-alpine"));
        assert_eq!(r.short_name(), "golang");
        let r = ImageRef::parse(&format!(
            "localhost:5000/team/app@sha256:{}",
            "a".repeat(64)
        ))
        .unwrap();
        assert_eq!(r.short_name(), "localhost:5000/team/app");
        assert!(r.tag.is_none() && r.digest.is_some());
        assert_eq!(
            ImageRef::parse("mcr.microsoft.com/dotnet/sdk:8.0")
                .unwrap()
                .short_name(),
            "mcr.microsoft.com/dotnet/sdk"
        );
        let md5 = format!("alpine@md5:{}", "a".repeat(32));
        for bad in [
            "",
            "busybox:",
            "Alpine",
            "a b",
            "alpine@sha256:abc",
            md5.as_str(),
        ] {
            assert!(ImageRef::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sdk_images() {
        let sdk = |s: &str| ImageRef::parse(s).unwrap().sdk_contents().is_some();
        assert!(
            sdk("golang:1.22-alpine")
                && sdk("node:20")
                && sdk("python:3.12")
                && sdk("eclipse-temurin:21")
        );
        assert!(
            !sdk("python:3.12-slim") && !sdk("node:20-alpine") && !sdk("eclipse-temurin:21-jre")
        );
        assert!(!sdk("alpine:3.20") && !sdk("gcr.io/distroless/static-debian12"));
    }

    #[test]
    fn windows_images() {
        let windows = |s: &str| ImageRef::parse(s).unwrap().is_windows();
        assert!(windows("mcr.microsoft.com/windows/servercore:ltsc2022"));
        assert!(windows(
            "mcr.microsoft.com/dotnet/sdk:8.0-nanoserver-ltsc2022"
        ));
        assert!(windows(
            "mcr.microsoft.com/powershell:lts-windowsservercore-ltsc2022"
        ));
        assert!(!windows("mcr.microsoft.com/dotnet/sdk:8.0") && !windows("alpine:3.20"));
    }
}
