//! buildx's option syntax: `--output type=…,dest=…`, `--cache-to type=…,mode=…`, compressions.

use crate::error::{Error, Result};
use stagecraft_image::Platform;
use stagecraft_layer::Compression;
use stagecraft_solve::remote_cache::CacheMode;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

mod annotation;
mod attest;

pub use annotation::{Annotation, AnnotationTarget};
pub use attest::{AttestOptions, ProvenanceMode, ProvenanceOptions};

/// Where an archive output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A file, replaced only once the archive is complete.
    File(PathBuf),
    /// Standard output (`dest=-`, or `-o -`), streamed.
    Stdout,
}

impl Destination {
    fn parse(dest: &str) -> Destination {
        if dest == "-" {
            Destination::Stdout
        } else {
            Destination::File(PathBuf::from(dest))
        }
    }
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI layout tar; its layers compressed (`compression=` or the session's default).
    Oci {
        /// Where the tar goes.
        dest: Destination,
        /// Extra names recorded in the layout (`name=`), besides the tags.
        names: Vec<String>,
        /// The layers' compression, when the output says.
        compression: Option<Compression>,
        /// Media types, annotations, timestamps.
        keys: ImageKeys,
    },
    /// A `docker load` archive.
    Docker {
        /// Where the tar goes.
        dest: Destination,
        /// Extra names recorded in the archive (`name=`), besides the tags.
        names: Vec<String>,
        /// Media types, annotations, timestamps.
        keys: ImageKeys,
    },
    /// The final file system as a tar.
    Tar(Destination),
    /// The final file system unpacked into a directory.
    Local(PathBuf),
    /// An image named in the store (`type=image`) and, with `push`, in its registry
    /// (`type=registry` always pushes).
    Image {
        /// The names (`name=a,b` or several `name=`).
        names: Vec<String>,
        /// Push every name to its registry.
        push: bool,
        /// The pushed layers' compression, when the output says.
        compression: Option<Compression>,
        /// Media types, annotations, timestamps.
        keys: ImageKeys,
    },
}

/// What an image output (`type=oci|docker|image|registry`) makes of the image besides its
/// names and compression: BuildKit's image exporter keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageKeys {
    /// `oci-mediatypes=false`: Docker schema 2 media types for the manifest, config and
    /// layers, and a Docker manifest list for an index.
    pub docker_media_types: bool,
    /// `rewrite-timestamp=true`: the file times in the layers the build made clamped to
    /// `SOURCE_DATE_EPOCH` (which the build must have).
    pub rewrite_timestamp: bool,
    /// `annotation…=` keys, and the build's `--annotation`s.
    pub annotations: Vec<Annotation>,
}

impl ImageKeys {
    /// The annotations for `target` of the image of `platform` (indexes: all of them), by
    /// key (a later one wins).
    pub fn annotations_for(
        &self,
        target: AnnotationTarget,
        platform: Option<&Platform>,
    ) -> stagecraft_store::Annotations {
        // An index is of no one platform: BuildKit takes its annotations whatever platform
        // they name.
        let any_platform = matches!(
            target,
            AnnotationTarget::Index | AnnotationTarget::IndexDescriptor
        );
        self.annotations
            .iter()
            .filter(|a| a.target == target && (any_platform || a.applies_to(platform)))
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect()
    }

    /// Whether any annotation has `target`.
    pub fn has(&self, target: AnnotationTarget) -> bool {
        self.annotations.iter().any(|a| a.target == target)
    }

    /// Checks these keys (of the output `output`) against a build for `platforms` with
    /// `compression` and `source_date_epoch`, as BuildKit's exporter does before it writes
    /// anything.
    pub(crate) fn check(
        &self,
        output: &str,
        platforms: &[Platform],
        compression: Compression,
        source_date_epoch: Option<i64>,
    ) -> Result<()> {
        let conflict = |reason: String| Error::OutputConflict {
            output: output.to_owned(),
            reason,
        };
        if self.rewrite_timestamp && source_date_epoch.is_none() {
            return Err(conflict(
                "rewrite-timestamp=true needs SOURCE_DATE_EPOCH (there is no epoch to clamp file times to)\n  = help: pass --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct), or set it in the environment".to_owned(),
            ));
        }
        if self.docker_media_types {
            if matches!(compression, Compression::Zstd { .. }) {
                return Err(conflict(
                    "exporter option \"compression=zstd\" conflicts with \"oci-mediatypes=false\"\n  = help: Docker media types have no zstd layer: use --compression gzip".to_owned(),
                ));
            }
            if self
                .annotations
                .iter()
                .any(|a| a.target != AnnotationTarget::Manifest)
            {
                return Err(conflict(
                    "cannot export annotations with \"oci-mediatypes=false\": only manifest annotations fit Docker media types".to_owned(),
                ));
            }
        }
        for annotation in &self.annotations {
            if let Some(platform) = &annotation.platform
                && !platforms.iter().any(|p| annotation.applies_to(Some(p)))
            {
                return Err(conflict(format!(
                    "invalid annotation {}: no platform {platform} in the build (it is for {})",
                    annotation.key,
                    platforms
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(())
    }
}

impl Output {
    /// The names this output gives the image (`name=`).
    pub fn names(&self) -> Vec<String> {
        match self {
            Output::Oci { names, .. }
            | Output::Docker { names, .. }
            | Output::Image { names, .. } => names.clone(),
            Output::Tar(_) | Output::Local(_) => Vec::new(),
        }
    }

    /// The image keys of an output that carries an image (none for `local` and `tar`).
    pub fn image_keys(&self) -> Option<&ImageKeys> {
        match self {
            Output::Oci { keys, .. } | Output::Docker { keys, .. } | Output::Image { keys, .. } => {
                Some(keys)
            }
            Output::Tar(_) | Output::Local(_) => None,
        }
    }

    /// Adds `annotations` (`--annotation`) to an output that carries an image; returns whether
    /// it does (a `local` or `tar` output has no manifest to annotate).
    pub fn annotate(&mut self, annotations: &[Annotation]) -> bool {
        match self {
            Output::Oci { keys, .. } | Output::Docker { keys, .. } | Output::Image { keys, .. } => {
                keys.annotations.extend(annotations.iter().cloned());
                true
            }
            Output::Tar(_) | Output::Local(_) => false,
        }
    }

    /// Whether this output streams to standard output (which then carries nothing else).
    pub fn to_stdout(&self) -> bool {
        matches!(
            self,
            Output::Oci {
                dest: Destination::Stdout,
                ..
            } | Output::Docker {
                dest: Destination::Stdout,
                ..
            } | Output::Tar(Destination::Stdout)
        )
    }
}

/// Where a build cache is exported to or imported from (`--cache-to`, `--cache-from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLocation {
    /// `type=local`: an OCI layout directory.
    Local(PathBuf),
    /// `type=registry`: a manifest in a registry.
    Registry(String),
}

impl fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheLocation::Local(dir) => write!(f, "{}", dir.display()),
            CacheLocation::Registry(reference) => f.write_str(reference),
        }
    }
}

/// The comma-separated fields of a buildx option, as Go's CSV reader splits them: a field in
/// double quotes may hold commas (`"name=a:1,b:2"`), `""` inside quotes is a quote.
fn csv_fields(text: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// `key=value,…` fields of a buildx option; `flag` names it in errors. A key given twice keeps
/// every value (`name=a,name=b`).
fn option_fields(text: &str, flag: &'static str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for field in csv_fields(text) {
        let (key, value) = field.split_once('=').ok_or_else(|| Error::InvalidOption {
            flag,
            value: text.to_owned(),
            reason: format!("invalid field {field:?}: expected key=value"),
        })?;
        fields
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    Ok(fields)
}

/// The one value of `key`, if given.
fn single<'f>(fields: &'f BTreeMap<String, Vec<String>>, key: &str) -> Option<&'f str> {
    fields
        .get(key)
        .and_then(|values| values.last())
        .map(String::as_str)
}

/// buildx's `true`/`false` (and `1`/`0`) for a boolean key.
fn boolean(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// A compression name other than `gzip`, `zstd` and `uncompressed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {0:?}\n  = help: use gzip, zstd or uncompressed")]
pub struct UnknownCompression(pub String);

/// A `--compression` value: `gzip`, `zstd` or `uncompressed`, at the algorithm's default level.
pub fn compression_by_name(name: &str) -> std::result::Result<Compression, UnknownCompression> {
    match name {
        "gzip" => Ok(Compression::gzip()),
        "zstd" => Ok(Compression::zstd()),
        "uncompressed" => Ok(Compression::None),
        other => Err(UnknownCompression(other.to_owned())),
    }
}

/// The layer compression `name` at `level` (the algorithm's default when `None`), as buildx
/// spells them in `--output …,compression=…,compression-level=…`.
pub fn parse_compression(name: &str, level: Option<&str>) -> Result<Compression> {
    let invalid = |reason: String| Error::InvalidOption {
        flag: "compression",
        value: match level {
            Some(level) => format!("{name},compression-level={level}"),
            None => name.to_owned(),
        },
        reason,
    };
    let default = compression_by_name(name).map_err(|e| invalid(e.to_string()))?;
    let Some(text) = level else {
        return Ok(default);
    };
    let level_error = |range: &str| {
        invalid(format!(
            "compression-level={text:?} is not a {name} level\n  = help: use {range}"
        ))
    };
    match default {
        Compression::Gzip { .. } => match text.parse::<u32>() {
            Ok(level) if level <= 9 => Ok(Compression::Gzip { level }),
            _ => Err(level_error("0 to 9")),
        },
        Compression::Zstd { .. } => match text.parse::<i32>() {
            Ok(level) if (1..=22).contains(&level) => Ok(Compression::Zstd { level }),
            _ => Err(level_error("1 to 22")),
        },
        Compression::None => Err(level_error("no level: an uncompressed layer has none")),
    }
}

/// Keys of buildx's exporters that stagecraft does not implement yet: refused with a clear
/// message, never ignored.
const NOT_YET: [&str; 7] = [
    "push-by-digest",
    "store",
    "dangling-name-prefix",
    "name-canonical",
    "insecure",
    "tar",
    "oci-artifact",
];

impl Output {
    /// Parses an `--output` value as buildx does: `type=…` with the keys of that exporter; `-`
    /// is a tar of the final file system on standard output; a value without `=` is a local
    /// directory. Keys an exporter does not have, and buildx keys stagecraft does not
    /// implement yet, are errors.
    pub fn parse(text: &str) -> Result<Output> {
        if text == "-" {
            return Ok(Output::Tar(Destination::Stdout));
        }
        if !text.contains('=') {
            return Ok(Output::Local(PathBuf::from(text)));
        }
        let invalid = |reason: String| Error::InvalidOption {
            flag: "--output",
            value: text.to_owned(),
            reason,
        };
        let fields = option_fields(text, "--output")?;
        let kind = single(&fields, "type").ok_or_else(|| {
            invalid(
                "needs type=…\n  = help: use type=oci, docker, tar, local, image or registry"
                    .to_owned(),
            )
        })?;
        let valid: &[&str] = match kind {
            "local" | "tar" => &["type", "dest"],
            "docker" => &[
                "type",
                "dest",
                "name",
                "oci-mediatypes",
                "rewrite-timestamp",
                "annotation.*",
            ],
            "oci" => &[
                "type",
                "dest",
                "name",
                "compression",
                "compression-level",
                "force-compression",
                "oci-mediatypes",
                "rewrite-timestamp",
                "annotation.*",
            ],
            "image" | "registry" => &[
                "type",
                "name",
                "push",
                "unpack",
                "compression",
                "compression-level",
                "force-compression",
                "oci-mediatypes",
                "rewrite-timestamp",
                "annotation.*",
            ],
            other => {
                return Err(invalid(format!(
                    "unknown output type {other:?}\n  = help: use oci, docker, tar, local, image or registry"
                )));
            }
        };
        let mut keys = ImageKeys::default();
        for (key, values) in &fields {
            if valid.contains(&key.as_str()) {
                continue;
            }
            if valid.contains(&"annotation.*")
                && let Some(annotation) =
                    Annotation::from_output_key(key, values.last().map_or("", String::as_str))
            {
                keys.annotations.push(annotation?);
                continue;
            }
            if NOT_YET.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "{key}= is a buildx output key that is not supported yet (refused rather than ignored)"
                )));
            }
            return Err(invalid(format!(
                "type={kind} has no key {key:?}\n  = help: its keys are {}",
                valid.join(", ")
            )));
        }
        let flag = |key: &str| -> Result<Option<bool>> {
            single(&fields, key)
                .map(|value| {
                    boolean(value)
                        .ok_or_else(|| invalid(format!("{key}={value:?} is not true or false")))
                })
                .transpose()
        };
        keys.docker_media_types = flag("oci-mediatypes")? == Some(false);
        keys.rewrite_timestamp = flag("rewrite-timestamp")? == Some(true);
        // BuildKit's `unpack=true` unpacks the image into the image store's snapshotter so
        // that it can run; stagecraft's store keeps every layer uncompressed and makes a
        // layer's snapshot when a build first uses it, so both values give the same store
        // (`--push` is buildx's `type=registry,unpack=false`). The value must still be one.
        flag("unpack")?;
        if let Some(value) = single(&fields, "force-compression")
            && boolean(value).is_none()
        {
            // Layers are always compressed as asked (a stored plain layer is compressed once
            // per compression), which is what `force-compression=true` asks for.
            return Err(invalid(format!(
                "force-compression={value:?} is not true or false"
            )));
        }
        let dest = || -> Result<&str> {
            single(&fields, "dest").ok_or_else(|| {
                invalid("needs dest=PATH (or dest=- for standard output)".to_owned())
            })
        };
        let names: Vec<String> = fields
            .get("name")
            .into_iter()
            .flatten()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        let compression = match single(&fields, "compression") {
            Some(name) => Some(parse_compression(
                name,
                single(&fields, "compression-level"),
            )?),
            None if single(&fields, "compression-level").is_some() => {
                return Err(invalid(
                    "compression-level= needs compression=gzip|zstd".to_owned(),
                ));
            }
            None => None,
        };
        if keys.docker_media_types && matches!(compression, Some(Compression::Zstd { .. })) {
            return Err(invalid(
                "exporter option \"compression=zstd\" conflicts with \"oci-mediatypes=false\"\n  = help: Docker media types have no zstd layer: use compression=gzip".to_owned(),
            ));
        }
        Ok(match kind {
            "oci" => Output::Oci {
                dest: Destination::parse(dest()?),
                names,
                compression,
                keys,
            },
            "docker" => Output::Docker {
                dest: Destination::parse(dest()?),
                names,
                keys,
            },
            "tar" => Output::Tar(Destination::parse(dest()?)),
            "local" => match dest()? {
                "-" => {
                    return Err(invalid(
                        "a directory cannot go to standard output\n  = help: use type=tar,dest=- for a tar of it".to_owned(),
                    ));
                }
                dir => Output::Local(PathBuf::from(dir)),
            },
            registry_or_image => {
                if names.is_empty() {
                    return Err(invalid("needs name=REFERENCE".to_owned()));
                }
                let push = match single(&fields, "push") {
                    None => registry_or_image == "registry",
                    Some(value) => boolean(value)
                        .ok_or_else(|| invalid(format!("push={value:?} is not true or false")))?,
                };
                if registry_or_image == "registry" && !push {
                    return Err(invalid(
                        "type=registry always pushes\n  = help: use type=image,push=false to only name the image in the store".to_owned(),
                    ));
                }
                Output::Image {
                    names,
                    push,
                    compression,
                    keys,
                }
            }
        })
    }
}

/// Why there is no inline cache, and what to use instead.
pub(crate) const INLINE_CACHE: &str = "stagecraft has no inline cache: BuildKit's (moby.buildkit.cache.v0 in the image config) holds BuildKit's step keys, which stagecraft's content-addressed keys cannot match, and an inline cache of stagecraft's own would change the image's config and ID\n  = help: export the cache beside the image with --cache-to type=registry,ref=REPO:buildcache (mode=max for every stage), and read it back with --cache-from type=registry,ref=REPO:buildcache";

impl CacheLocation {
    /// Parses `--cache-to` (`export`) or `--cache-from` the way buildx does: `type=local`
    /// takes `dest=` to export and `src=` to import, `type=registry` takes `ref=`; a value
    /// without `=` is a registry reference.
    pub fn parse(text: &str, export: bool) -> Result<(CacheLocation, CacheMode)> {
        let flag = if export { "--cache-to" } else { "--cache-from" };
        if !text.contains('=') {
            return Ok((CacheLocation::Registry(text.to_owned()), CacheMode::Min));
        }
        let invalid = |reason: String| Error::InvalidOption {
            flag,
            value: text.to_owned(),
            reason,
        };
        let fields = option_fields(text, flag)?;
        let mode = match single(&fields, "mode") {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(other) => {
                return Err(invalid(format!(
                    "invalid mode {other:?}\n  = help: use mode=min or mode=max"
                )));
            }
        };
        let field =
            |name: &str| single(&fields, name).ok_or_else(|| invalid(format!("needs {name}=…")));
        let location = match single(&fields, "type") {
            Some("local") => {
                CacheLocation::Local(PathBuf::from(field(if export { "dest" } else { "src" })?))
            }
            Some("registry") => CacheLocation::Registry(field("ref")?.to_owned()),
            Some("inline") => return Err(invalid(INLINE_CACHE.to_owned())),
            Some(other) => {
                return Err(invalid(format!(
                    "unsupported cache type {other:?}\n  = help: use type=local or type=registry"
                )));
            }
            None => return Err(invalid("needs type=…".to_owned())),
        };
        Ok((location, mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Destination {
        Destination::File(path.into())
    }

    #[test]
    fn outputs_parse_like_buildx() {
        assert_eq!(
            Output::parse("type=oci,dest=out.tar").unwrap(),
            Output::Oci {
                dest: file("out.tar"),
                names: vec![],
                compression: None,
                keys: ImageKeys::default()
            }
        );
        assert_eq!(
            Output::parse("type=oci,dest=o.tar,compression=zstd,compression-level=9").unwrap(),
            Output::Oci {
                dest: file("o.tar"),
                names: vec![],
                compression: Some(Compression::Zstd { level: 9 }),
                keys: ImageKeys::default()
            }
        );
        let error = Output::parse("type=oci,dest=o.tar,compression=gzip,compression-level=12");
        assert!(error.unwrap_err().to_string().contains("use 0 to 9"));
        assert_eq!(
            Output::parse("type=docker,dest=a.tar,name=app:1").unwrap(),
            Output::Docker {
                dest: file("a.tar"),
                names: vec!["app:1".into()],
                keys: ImageKeys::default()
            }
        );
        assert_eq!(
            Output::parse("type=tar, dest=fs.tar").unwrap(),
            Output::Tar(file("fs.tar"))
        );
        assert_eq!(
            Output::parse("./dir").unwrap(),
            Output::Local("./dir".into())
        );
        assert!(Output::parse("type=oci").is_err());
        assert!(Output::parse("type=zip,dest=x").is_err());
    }

    #[test]
    fn image_outputs_push_only_when_asked() {
        assert_eq!(
            Output::parse("type=image,name=foo:1,push=false").unwrap(),
            Output::Image {
                names: vec!["foo:1".into()],
                push: false,
                compression: None,
                keys: ImageKeys::default()
            }
        );
        assert_eq!(
            Output::parse("type=image,name=foo:1").unwrap(),
            Output::Image {
                names: vec!["foo:1".into()],
                push: false,
                compression: None,
                keys: ImageKeys::default()
            }
        );
        // Several names: quoted (buildx's CSV) or repeated.
        for text in [
            "type=registry,\"name=r:5000/a:1,r:5000/a:2\"",
            "type=registry,name=r:5000/a:1,name=r:5000/a:2",
        ] {
            assert_eq!(
                Output::parse(text).unwrap(),
                Output::Image {
                    names: vec!["r:5000/a:1".into(), "r:5000/a:2".into()],
                    push: true,
                    compression: None,
                    keys: ImageKeys::default()
                },
                "{text}"
            );
        }
        assert!(Output::parse("type=registry,name=a,push=false").is_err());
    }

    #[test]
    fn unknown_and_unsupported_keys_are_errors_that_name_the_valid_ones() {
        let error = Output::parse("type=docker,dest=a.tar,compression=zstd")
            .unwrap_err()
            .to_string();
        assert!(error.contains("its keys are type, dest, name"), "{error}");
        let error = Output::parse("type=oci,dest=a.tar,push-by-digest=true")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not supported yet"), "{error}");
        assert!(Output::parse("type=oci,dest=a.tar,force-compression=true").is_ok());
    }

    #[test]
    fn unpack_is_a_boolean_of_image_outputs() {
        for text in [
            "type=image,name=a:1,unpack=true",
            "type=image,name=a:1,unpack=false",
            "type=registry,name=localhost:5000/a:1,unpack=false",
        ] {
            assert!(Output::parse(text).is_ok(), "{text}");
        }
        let error = Output::parse("type=image,name=a:1,unpack=yes")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unpack=\"yes\" is not true or false"),
            "{error}"
        );
        let error = Output::parse("type=oci,dest=a.tar,unpack=true")
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no key \"unpack\""), "{error}");
    }

    #[test]
    fn a_dash_is_standard_output() {
        assert_eq!(
            Output::parse("-").unwrap(),
            Output::Tar(Destination::Stdout)
        );
        assert!(Output::parse("type=tar,dest=-").unwrap().to_stdout());
        assert!(Output::parse("type=oci,dest=-").unwrap().to_stdout());
        assert!(Output::parse("type=local,dest=-").is_err());
    }

    #[test]
    fn cache_options_parse_like_buildx() {
        assert_eq!(
            CacheLocation::parse("type=local,dest=/c,mode=max", true).unwrap(),
            (CacheLocation::Local("/c".into()), CacheMode::Max)
        );
        assert_eq!(
            CacheLocation::parse("type=local,src=/c", false).unwrap(),
            (CacheLocation::Local("/c".into()), CacheMode::Min)
        );
        assert_eq!(
            CacheLocation::parse("type=registry,ref=r:5000/c:main", true).unwrap(),
            (
                CacheLocation::Registry("r:5000/c:main".into()),
                CacheMode::Min
            )
        );
        assert_eq!(
            CacheLocation::parse("r:5000/c:main", false).unwrap().0,
            CacheLocation::Registry("r:5000/c:main".into())
        );
        for (bad, help) in [
            ("type=local,src=/c", "dest="),
            ("type=gha", "unsupported cache type"),
            (
                "type=inline",
                "--cache-to type=registry,ref=REPO:buildcache",
            ),
            ("type=registry,ref=r/c,mode=all", "mode=min or mode=max"),
        ] {
            let error = CacheLocation::parse(bad, true).unwrap_err().to_string();
            assert!(error.contains(help), "{bad}: {error}");
        }
    }

    #[test]
    fn image_keys_parse_like_buildkit() {
        let output = Output::parse(
            "type=oci,dest=a.tar,oci-mediatypes=false,rewrite-timestamp=true,annotation.a=1,annotation-manifest[linux/arm64].b=2,annotation-index.c=3,annotation-manifest-descriptor.d=4,annotation-index-descriptor.e=5",
        )
        .unwrap();
        let keys = output.image_keys().unwrap();
        assert!(keys.docker_media_types && keys.rewrite_timestamp);
        let mut places: Vec<(AnnotationTarget, Option<String>, &str, &str)> = keys
            .annotations
            .iter()
            .map(|a| {
                (
                    a.target,
                    a.platform.as_ref().map(ToString::to_string),
                    a.key.as_str(),
                    a.value.as_str(),
                )
            })
            .collect();
        places.sort_by_key(|place| place.2);
        assert_eq!(
            places,
            [
                (AnnotationTarget::Manifest, None, "a", "1"),
                (
                    AnnotationTarget::Manifest,
                    Some("linux/arm64".to_owned()),
                    "b",
                    "2"
                ),
                (AnnotationTarget::Index, None, "c", "3"),
                (AnnotationTarget::ManifestDescriptor, None, "d", "4"),
                (AnnotationTarget::IndexDescriptor, None, "e", "5"),
            ]
        );
        // The image keys are BuildKit's image exporters': not local's or tar's.
        for bad in [
            "type=local,dest=d,annotation.a=1",
            "type=oci,dest=a.tar,annotation-layer.a=1",
            "type=oci,dest=a.tar,oci-mediatypes=no",
            "type=oci,dest=a.tar,oci-mediatypes=false,compression=zstd",
        ] {
            assert!(Output::parse(bad).is_err(), "{bad}");
        }
        // Only manifest annotations fit Docker media types; a platform must be the build's.
        let amd64 = [Platform::parse("linux/amd64").unwrap()];
        let gzip = Compression::gzip();
        assert!(output.check(&amd64, gzip, Some(1)).is_err());
        let docker =
            Output::parse("type=docker,dest=a.tar,oci-mediatypes=false,annotation.a=1").unwrap();
        assert!(docker.check(&amd64, gzip, Some(1)).is_ok());
        let error = Output::parse("type=image,name=a,annotation[linux/arm64].a=1")
            .unwrap()
            .check(&amd64, gzip, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no platform linux/arm64"), "{error}");
        let error = Output::parse("type=image,name=a,rewrite-timestamp=true")
            .unwrap()
            .check(&amd64, gzip, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("needs SOURCE_DATE_EPOCH"), "{error}");
    }
}
