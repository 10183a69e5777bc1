//! Platforms (`linux/amd64`, `linux/arm/v7`) and the arguments BuildKit predefines from them.

use std::fmt;

/// An OS/architecture/variant triple, as in `--platform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, `v8`, … or empty.
    pub variant: String,
}

impl Platform {
    /// This machine's platform, named as OCI names it.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "aarch64" => ("arm64", ""),
            "arm" => ("arm", "v7"),
            "x86" => ("386", ""),
            "powerpc64" => ("ppc64le", ""),
            "s390x" => ("s390x", ""),
            "riscv64" => ("riscv64", ""),
            other => (other, ""),
        };
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().unwrap_or("");
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.to_lowercase(),
            architecture: architecture.to_lowercase(),
            variant: variant.to_lowercase(),
        })
    }

    /// `BUILDPLATFORM`, `TARGETOS`, … as BuildKit defines them for a build on and for this
    /// platform, with `TARGETSTAGE` naming the target.
    pub fn predefined_args(&self, target_stage: &str) -> Vec<(&'static str, String)> {
        vec![
            ("BUILDPLATFORM", self.to_string()),
            ("BUILDOS", self.os.clone()),
            ("BUILDOSVERSION", String::new()),
            ("BUILDARCH", self.architecture.clone()),
            ("BUILDVARIANT", self.variant.clone()),
            ("TARGETPLATFORM", self.to_string()),
            ("TARGETOS", self.os.clone()),
            ("TARGETOSVERSION", String::new()),
            ("TARGETARCH", self.architecture.clone()),
            ("TARGETVARIANT", self.variant.clone()),
            ("TARGETSTAGE", target_stage.to_owned()),
        ]
    }
}

/// Whether `name` is an argument BuildKit defines without an `ARG` (platform arguments and the
/// proxy variables), so passing it with `--build-arg` is never "unused".
pub(crate) fn is_predefined(name: &str) -> bool {
    const PROXIES: [&str; 8] = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
    ];
    PROXIES.contains(&name)
        || name == "ALL_PROXY"
        || name == "all_proxy"
        || name == "SOURCE_DATE_EPOCH"
        || Platform::host()
            .predefined_args("")
            .iter()
            .any(|(n, _)| *n == name)
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(
            Platform::parse("Linux/AMD64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("a/b/c/d").is_none());
    }
}
