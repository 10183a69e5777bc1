//! The image config blob, byte-compatible with what BuildKit writes.
//!
//! BuildKit's Dockerfile frontend builds a moby `dockerspec.DockerOCIImage`
//! (the OCI `ocispec.Image` whose `config` is extended with Docker's
//! `Healthcheck`, `OnBuild` and `Shell`) and marshals it; the image exporter
//! (`patchImageConfig`) then decodes the top level into a
//! `map[string]json.RawMessage`, replaces `rootfs`, `history` and `created`,
//! and marshals the map again. Two consequences shape these types:
//!
//! * the **top-level keys are sorted** (Go sorts map keys), so
//!   [`ImageConfig`] declares its fields alphabetically (`architecture`,
//!   `author`, `config`, `created`, `history`, `os`, …) rather than in
//!   `ocispec.Image`'s struct order. `docker build`'s classic builder sorts
//!   them too (moby's `image.Image.MarshalJSON`);
//! * the **runtime config keeps Go struct order**: `User`, `ExposedPorts`,
//!   `Env`, `Entrypoint`, `Cmd`, `Volumes`, `WorkingDir`, `Labels`,
//!   `StopSignal`, `ArgsEscaped` (OCI `ImageConfig`), then Docker's
//!   `Healthcheck`, `OnBuild`, `Shell`, as [`RuntimeConfig`] declares them.
//!
//! Every `omitempty` of the Go structs is reproduced; fields without it are
//! always written (`architecture`, `os`, `config`, `rootfs`, `rootfs.type`,
//! `rootfs.diff_ids`, which is `null` when there are no layers, as Go writes
//! a nil slice).
//!
//! Unknown fields are dropped when parsing, as BuildKit drops them when it
//! builds on a base image (it decodes into the same Go struct). Legacy Docker
//! configs (`container_config`, `docker_version`, `Hostname`, …) therefore
//! parse fine but re-serialize in BuildKit's form; to keep a base image
//! unchanged, copy its blob instead of re-serializing it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;
use crate::serde_go::{
    is_false, is_none_or_empty, is_zero, nil_when_empty, null_default, optional_str_slice,
    str_slice, string_set,
};

/// The image config blob (`application/vnd.oci.image.config.v1+json` or
/// `application/vnd.docker.container.image.v1+json`).
///
/// Fields are declared in the order BuildKit writes them (sorted, see the
/// module docs); [`ImageConfig::to_json`] gives the exact bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`); always written, even empty, like Go.
    #[serde(deserialize_with = "null_default")]
    pub architecture: String,
    /// Who made the image (`MAINTAINER`).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    /// How to run a container from the image.
    #[serde(deserialize_with = "null_default")]
    pub config: RuntimeConfig,
    /// Creation time as Go wrote it (RFC 3339 with nanoseconds, see
    /// [`crate::Timestamp`]). Kept as text so parsing and writing back
    /// cannot change the bytes.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<String>,
    /// One entry per Dockerfile instruction, layer-creating or not.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Operating system (`linux`); always written.
    #[serde(deserialize_with = "null_default")]
    pub os: String,
    /// Required OS features (Windows).
    #[serde(
        rename = "os.features",
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// The uncompressed layer digests, bottom first.
    #[serde(deserialize_with = "null_default")]
    pub rootfs: RootFs,
    /// CPU variant (`v7`).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub variant: String,
}

impl ImageConfig {
    /// An empty config for `platform`: no layers, no history, no runtime
    /// settings. (What a `FROM scratch` stage adds on top, such as the
    /// default `PATH`, is the builder's business.)
    pub fn for_platform(platform: &Platform) -> Self {
        let mut config = ImageConfig::default();
        config.set_platform(platform);
        config
    }

    /// Parses a config blob leniently: unknown fields are ignored, `null`
    /// is accepted wherever Go accepts it, `Cmd`/`Entrypoint`/`Shell` may be
    /// a single string (Docker's `StrSlice`).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The exact bytes BuildKit would write for this config (compact Go
    /// JSON); hash them with [`Digest::of`] for the config digest.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::to_go_json(self)
    }

    /// The platform fields of this config.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            features: Vec::new(),
        }
    }

    /// Sets `architecture`, `os`, `os.version`, `os.features` and `variant`.
    pub fn set_platform(&mut self, platform: &Platform) {
        self.architecture.clone_from(&platform.architecture);
        self.os.clone_from(&platform.os);
        self.os_version.clone_from(&platform.os_version);
        self.os_features.clone_from(&platform.os_features);
        self.variant.clone_from(&platform.variant);
    }
}

/// The runtime part of the config (`config` key): moby's
/// `DockerOCIImageConfig`, fields in Go's order.
///
/// # `Cmd` and `Entrypoint`: `None` versus `Some(vec![])`
///
/// Go's `omitempty` drops both a nil and an empty slice, so in the config
/// blob "unset" and "empty" are written identically (the key is absent), and
/// [`ImageConfig::to_json`] does the same. In memory the difference still
/// matters while building, as it does in BuildKit's Dockerfile frontend:
/// `ENTRYPOINT` clears an inherited `CMD` (sets it to nil) unless the same
/// stage set `CMD` itself, and `CMD []` is an explicit, empty `CMD`. Parsing
/// keeps what the input said: `null` or absent → `None`, `[]` → `Some([])`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// `USER`: `name`, `uid`, `name:group` or `uid:gid`.
    #[serde(
        rename = "User",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    /// `EXPOSE`d ports, `port/proto` (`80/tcp`); written as `{"80/tcp":{}}`.
    #[serde(
        rename = "ExposedPorts",
        with = "string_set",
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub exposed_ports: BTreeSet<String>,
    /// `ENV`, as `KEY=value`, in definition order.
    #[serde(
        rename = "Env",
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT` (see the type docs for `None` versus empty).
    #[serde(
        rename = "Entrypoint",
        deserialize_with = "optional_str_slice",
        skip_serializing_if = "is_none_or_empty"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD` (see the type docs for `None` versus empty).
    #[serde(
        rename = "Cmd",
        deserialize_with = "optional_str_slice",
        skip_serializing_if = "is_none_or_empty"
    )]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME` mount points; written as `{"/data":{}}`.
    #[serde(
        rename = "Volumes",
        with = "string_set",
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub volumes: BTreeSet<String>,
    /// `WORKDIR`.
    #[serde(
        rename = "WorkingDir",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// `LABEL`s, sorted by key as Go writes maps.
    #[serde(
        rename = "Labels",
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(
        rename = "StopSignal",
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    /// Set by BuildKit for shell-form `CMD`/`ENTRYPOINT` on Windows, and
    /// kept from base images elsewhere.
    #[serde(
        rename = "ArgsEscaped",
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub args_escaped: bool,
    /// `HEALTHCHECK`; `Some` with an all-default value is written as `{}`,
    /// as Go writes a non-nil pointer to a zero struct.
    #[serde(
        rename = "Healthcheck",
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, as the original instruction text.
    #[serde(
        rename = "OnBuild",
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// `SHELL` for shell-form instructions.
    #[serde(
        rename = "Shell",
        deserialize_with = "str_slice",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

/// `HEALTHCHECK` settings (moby's `HealthcheckConfig`). Durations are
/// nanoseconds, as Go encodes `time.Duration`; zero means "inherit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Healthcheck {
    /// `[]` inherit, `["NONE"]` disable, `["CMD", args…]` exec form,
    /// `["CMD-SHELL", command]` shell form.
    #[serde(
        rename = "Test",
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Time between checks, in nanoseconds.
    #[serde(
        rename = "Interval",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub interval: i64,
    /// Time before a check counts as hung, in nanoseconds.
    #[serde(
        rename = "Timeout",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub timeout: i64,
    /// Start-up time during which failures do not count, in nanoseconds.
    #[serde(
        rename = "StartPeriod",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub start_period: i64,
    /// Time between checks during the start period, in nanoseconds.
    #[serde(
        rename = "StartInterval",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub start_interval: i64,
    /// Consecutive failures before the container is unhealthy.
    #[serde(
        rename = "Retries",
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub retries: i64,
}

/// The layer list of an image (`rootfs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", deserialize_with = "null_default")]
    pub fs_type: String,
    /// Digests of the *uncompressed* layer tars, bottom first. Written as
    /// `null` when empty, like Go's nil slice in BuildKit's output.
    #[serde(with = "nil_when_empty")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    /// `{"type":"layers","diff_ids":null}`: `layers` is the only type there is.
    fn default() -> Self {
        RootFs {
            fs_type: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry (OCI `History`), fields in Go's order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// When the step ran, as Go wrote it (see [`crate::Timestamp`]).
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<String>,
    /// The instruction, e.g. `RUN /bin/sh -c make # buildkit`.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created_by: String,
    /// Who made this step.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    /// Free text; BuildKit writes `buildkit.dockerfile.v0`.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    /// True when the step produced no layer (`ENV`, `CMD`, …).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_matches_go_zero_value() {
        let config = ImageConfig::for_platform(&Platform::parse("linux/amd64").unwrap());
        assert_eq!(
            String::from_utf8(config.to_json().unwrap()).unwrap(),
            r#"{"architecture":"amd64","config":{},"os":"linux","rootfs":{"type":"layers","diff_ids":null}}"#
        );
    }

    #[test]
    fn cmd_null_and_empty_are_kept_apart_in_memory_but_written_alike() {
        let null: RuntimeConfig = serde_json::from_str(r#"{"Cmd":null,"Entrypoint":[]}"#).unwrap();
        assert_eq!(null.cmd, None);
        assert_eq!(null.entrypoint, Some(vec![]));
        let absent: RuntimeConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.cmd, None);
        assert_eq!(crate::to_go_json(&null).unwrap(), b"{}");
    }

    #[test]
    fn str_slice_accepts_a_plain_string() {
        let config: RuntimeConfig = serde_json::from_str(r#"{"Cmd":"sh","Shell":"bash"}"#).unwrap();
        assert_eq!(config.cmd, Some(vec!["sh".to_owned()]));
        assert_eq!(config.shell, vec!["bash".to_owned()]);
    }

    #[test]
    fn empty_healthcheck_is_written_as_empty_object() {
        let config = RuntimeConfig {
            healthcheck: Some(Healthcheck::default()),
            ..RuntimeConfig::default()
        };
        assert_eq!(
            crate::to_go_json(&config).unwrap(),
            br#"{"Healthcheck":{}}"#
        );
    }

    #[test]
    fn platform_round_trip() {
        let platform = Platform::parse("linux/arm/v7").unwrap();
        let config = ImageConfig::for_platform(&platform);
        assert_eq!(config.platform(), platform);
        assert_eq!(config.variant, "v7");
    }
}
