//! Target platforms (`linux/amd64`, `linux/arm/v7`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::serde_go::null_default;

/// Why a platform string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform {input:?}: {reason} (expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7)"
)]
pub struct PlatformError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// An image platform, as in OCI descriptors and image configs (Go's
/// `ocispec.Platform`), plus Docker manifest lists' `features`.
///
/// Fields are declared in Go's order so the serialized bytes match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's `GOARCH` spelling (`amd64`, `arm64`, `arm`).
    #[serde(default, deserialize_with = "null_default")]
    pub architecture: String,
    /// Operating system in Go's `GOOS` spelling (`linux`, `windows`).
    #[serde(default, deserialize_with = "null_default")]
    pub os: String,
    /// OS version (Windows images only).
    #[serde(
        rename = "os.version",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// Required OS features (Windows images only).
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// CPU variant (`v7` for 32-bit arm, `v8` never for arm64 once normalized).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub variant: String,
    /// CPU features; only Docker manifest lists carry this (deprecated there).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub features: Vec<String>,
}

impl Platform {
    /// A platform from `os` and `architecture`, normalized.
    pub fn new(os: &str, architecture: &str) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            ..Platform::default()
        }
        .normalized()
    }

    /// Parses `os/arch[/variant]` (as `--platform` takes it) and normalizes
    /// aliases the way containerd does: `x86_64` → `amd64`, `aarch64` →
    /// `arm64`, `armhf` → `arm/v7`, `arm` → `arm/v7`, `arm64/v8` → `arm64`.
    pub fn parse(input: &str) -> Result<Self, PlatformError> {
        let error = |reason| PlatformError {
            input: input.to_owned(),
            reason,
        };
        let parts: Vec<&str> = input.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(error("wrong number of components"));
        }
        if parts.iter().any(|part| part.is_empty()) {
            return Err(error("empty component"));
        }
        let valid = |part: &&str| {
            part.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !parts.iter().all(valid) {
            return Err(error(
                "components may only contain letters, digits, '_', '-' and '.'",
            ));
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()).unwrap_or_default(),
            ..Platform::default()
        }
        .normalized())
    }

    /// The platform this program runs on, normalized.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch)
    }

    /// containerd's `platforms.Normalize`: canonical spellings of OS,
    /// architecture and variant, so equal platforms compare equal.
    pub fn normalized(mut self) -> Self {
        self.os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            os => os.to_owned(),
        };
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.to_ascii_lowercase();
        let (arch, variant) = match (arch.as_str(), variant.as_str()) {
            ("i386", v) => ("386", v.to_owned()),
            ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", String::new()),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.to_owned()),
            ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", String::new()),
            ("aarch64" | "arm64", "9" | "9.0" | "v9.0") => ("arm64", "v9".to_owned()),
            ("aarch64" | "arm64", v) => ("arm64", v.to_owned()),
            ("armhf", _) => ("arm", "v7".to_owned()),
            ("armel", _) => ("arm", "v6".to_owned()),
            ("arm", "" | "7") => ("arm", "v7".to_owned()),
            ("arm", v @ ("5" | "6" | "8")) => ("arm", format!("v{v}")),
            (a, v) => (a, v.to_owned()),
        };
        self.architecture = arch.to_owned();
        self.variant = variant;
        self
    }

    /// Whether an image for `self` can serve a request for `wanted` (see
    /// [`Platform::match_rank`]).
    pub fn matches(&self, wanted: &Platform) -> bool {
        self.match_rank(wanted).is_some()
    }

    /// How well an image for `self` serves a request for `wanted`, as containerd's
    /// `platforms.Only` orders candidates: `Some(0)` for the same OS, architecture and
    /// variant; then older variants the wanted CPU also runs (`amd64/v3` takes `v2`, then
    /// `amd64`; `arm/v7` takes `v6`, then `v5`; `arm64/v9` takes `arm64`), the closest first;
    /// any variant when `wanted` names none. `None` when it cannot serve it at all.
    pub fn match_rank(&self, wanted: &Platform) -> Option<usize> {
        let (have, want) = (self.clone().normalized(), wanted.clone().normalized());
        if have.os != want.os || have.architecture != want.architecture {
            return None;
        }
        if have.variant == want.variant {
            return Some(0);
        }
        if want.variant.is_empty() {
            return Some(1);
        }
        // Variants are `v` and a level; the default (empty) variant is the lowest level.
        let level = |variant: &str, default: u32| -> Option<u32> {
            if variant.is_empty() {
                return Some(default);
            }
            variant.strip_prefix('v')?.split('.').next()?.parse().ok()
        };
        let (lowest, default) = match want.architecture.as_str() {
            "amd64" => (1, 1),
            "arm" => (5, 7),
            "arm64" => (8, 8),
            _ => return None,
        };
        let (have_level, want_level) = (
            level(&have.variant, default)?,
            level(&want.variant, default)?,
        );
        (lowest..=want_level)
            .contains(&have_level)
            .then(|| (want_level - have_level) as usize + 1)
    }
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

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_normalize_table() {
        for (input, expected) in [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("Linux/i386", "linux/386"),
            ("windows/amd64", "windows/amd64"),
        ] {
            assert_eq!(
                Platform::parse(input).unwrap().to_string(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn parse_errors_explain() {
        for input in ["linux", "linux/", "a/b/c/d", "linux/am d64"] {
            let err = Platform::parse(input).unwrap_err().to_string();
            assert!(err.contains("expected os/arch[/variant]"), "{err}");
        }
    }

    #[test]
    fn host_is_normalized_and_matches_itself() {
        let host = Platform::host();
        assert!(!host.os.is_empty() && !host.architecture.is_empty());
        assert!(host.matches(&host));
        assert_eq!(host.clone().normalized(), host);
    }

    #[test]
    fn matching_ignores_missing_wanted_variant() {
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        let mut any_arm = Platform::new("linux", "arm");
        any_arm.variant.clear();
        assert!(v7.matches(&any_arm));
        assert!(!v7.matches(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(!v7.matches(&Platform::parse("linux/arm64").unwrap()));
    }

    #[test]
    fn older_variants_serve_newer_requests_closest_first() {
        let rank = |have: &str, want: &str| {
            Platform::parse(have)
                .unwrap()
                .match_rank(&Platform::parse(want).unwrap())
        };
        assert_eq!(rank("linux/amd64/v2", "linux/amd64/v2"), Some(0));
        assert!(rank("linux/amd64/v2", "linux/amd64/v3") < rank("linux/amd64", "linux/amd64/v3"));
        assert!(rank("linux/amd64", "linux/amd64/v2").is_some());
        assert_eq!(rank("linux/amd64/v3", "linux/amd64/v2"), None);
        assert!(rank("linux/arm/v6", "linux/arm/v7").is_some());
        assert_eq!(rank("linux/arm/v7", "linux/arm/v6"), None);
        assert!(rank("linux/arm64", "linux/arm64/v9").is_some());
        assert_eq!(rank("linux/arm/v7", "linux/arm64"), None);
        assert_eq!(rank("linux/arm64", "linux/arm64/v8"), Some(0));
    }

    #[test]
    fn serializes_in_go_order_and_omits_empty() {
        let mut p = Platform::parse("windows/amd64").unwrap();
        p.os_version = "10.0.17763.1".into();
        let json = String::from_utf8(crate::to_go_json(&p).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1"}"#
        );
        let back: Platform = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}
