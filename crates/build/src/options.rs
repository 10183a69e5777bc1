//! buildx's option syntax: `--output type=…,dest=…`, `--cache-to type=…,mode=…`, compressions.

use crate::error::{Error, Result};
use stagecraft_layer::Compression;
use stagecraft_solve::remote_cache::CacheMode;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

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
    },
    /// A `docker load` archive.
    Docker {
        /// Where the tar goes.
        dest: Destination,
        /// Extra names recorded in the archive (`name=`), besides the tags.
        names: Vec<String>,
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
    },
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

/// A `--compression` value: `gzip`, `zstd` or `uncompressed`, at the algorithm's default level.
pub fn compression_by_name(name: &str) -> std::result::Result<Compression, String> {
    match name {
        "gzip" => Ok(Compression::gzip()),
        "zstd" => Ok(Compression::zstd()),
        "uncompressed" => Ok(Compression::None),
        other => Err(format!(
            "unknown compression {other:?}\n  = help: use gzip, zstd or uncompressed"
        )),
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
    let default = compression_by_name(name).map_err(invalid)?;
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
const NOT_YET: [&str; 9] = [
    "rewrite-timestamp",
    "push-by-digest",
    "unpack",
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
            "docker" => &["type", "dest", "name"],
            "oci" => &[
                "type",
                "dest",
                "name",
                "compression",
                "compression-level",
                "force-compression",
                "oci-mediatypes",
            ],
            "image" | "registry" => &[
                "type",
                "name",
                "push",
                "compression",
                "compression-level",
                "force-compression",
                "oci-mediatypes",
            ],
            other => {
                return Err(invalid(format!(
                    "unknown output type {other:?}\n  = help: use oci, docker, tar, local, image or registry"
                )));
            }
        };
        for key in fields.keys() {
            if valid.contains(&key.as_str()) {
                continue;
            }
            if NOT_YET.contains(&key.as_str()) || key.starts_with("annotation") {
                return Err(invalid(format!(
                    "{key}= is a buildx output key that is not supported yet (refused rather than ignored)"
                )));
            }
            return Err(invalid(format!(
                "type={kind} has no key {key:?}\n  = help: its keys are {}",
                valid.join(", ")
            )));
        }
        if let Some(value) = single(&fields, "oci-mediatypes") {
            match boolean(value) {
                Some(true) => {}
                Some(false) => {
                    return Err(invalid(
                        "oci-mediatypes=false (docker media types) is not supported yet: images are written with OCI media types".to_owned(),
                    ));
                }
                None => {
                    return Err(invalid(format!(
                        "oci-mediatypes={value:?} is not true or false"
                    )));
                }
            }
        }
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
        Ok(match kind {
            "oci" => Output::Oci {
                dest: Destination::parse(dest()?),
                names,
                compression,
            },
            "docker" => Output::Docker {
                dest: Destination::parse(dest()?),
                names,
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
                }
            }
        })
    }
}

/// How much a provenance attestation records (`mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceMode {
    /// Times, the frontend, the target and platform, materials: nothing of the build's
    /// arguments, labels, secrets or steps (safe for every build; buildx's default).
    Min,
    /// Also build arguments and labels (never secret values), the ids of secrets and SSH
    /// agents, and every step with whether it came from the cache.
    Max,
}

/// A provenance attestation (`--provenance`, `--attest type=provenance,…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceOptions {
    /// `mode=min|max` (BuildKit's default when a provenance is asked for without one: max).
    pub mode: ProvenanceMode,
    /// `builder-id=`: `runDetails.builder.id`.
    pub builder_id: String,
    /// `reproducible=true`: the build says it is reproducible.
    pub reproducible: bool,
    /// `inline-only=true`: only outputs that carry it inside an image get it, never the files
    /// beside a `local` or `tar` output (buildx's default provenance is inline-only).
    pub inline_only: bool,
    /// `filename=`: its file beside a `local` or `tar` output.
    pub filename: String,
}

/// What to attest, as buildx resolves `--attest`, `--provenance` and `--sbom`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttestOptions {
    /// An SPDX SBOM of each platform's image.
    pub sbom: bool,
    /// A SLSA provenance of each platform's image.
    pub provenance: Option<ProvenanceOptions>,
}

/// Go's `strconv.ParseBool`, which buildx uses for `--sbom=…`/`--provenance=…` shorthands.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl AttestOptions {
    /// Resolves the flags as buildx does: each `--attest` in order, then `--provenance`, then
    /// `--sbom` (`true`/`false` or the attestation's keys), the last of a type winning. Without
    /// any provenance flag, `default_provenance` (buildx's, unless
    /// `BUILDX_NO_DEFAULT_ATTESTATIONS` is set) asks for `mode=min,inline-only=true`.
    pub fn parse(
        attests: &[String],
        provenance: Option<&str>,
        sbom: Option<&str>,
        default_provenance: bool,
    ) -> Result<AttestOptions> {
        let canonical = |kind: &str, value: &str| match go_bool(value) {
            Some(enabled) => format!("type={kind},disabled={}", !enabled),
            None => format!("type={kind},{value}"),
        };
        let entries = attests
            .iter()
            .map(|a| ("--attest", a.clone()))
            .chain(provenance.map(|v| ("--provenance", canonical("provenance", v))))
            .chain(sbom.map(|v| ("--sbom", canonical("sbom", v))));
        let mut options = AttestOptions::default();
        let mut provenance_given = false;
        for (flag, text) in entries {
            let invalid = |reason: String| Error::InvalidOption {
                flag,
                value: text.clone(),
                reason,
            };
            let fields = option_fields(&text, flag)?;
            let disabled = match single(&fields, "disabled") {
                None => false,
                Some(value) => go_bool(value)
                    .ok_or_else(|| invalid(format!("disabled={value:?} is not true or false")))?,
            };
            let unsupported = |key: &str, kinds: &str| {
                invalid(format!(
                    "{key}= is not supported (refused rather than ignored)\n  = help: {kinds}"
                ))
            };
            match single(&fields, "type") {
                Some("sbom") => {
                    for key in fields.keys() {
                        match key.as_str() {
                            "type" | "disabled" => {}
                            "generator" => {
                                return Err(unsupported(
                                    key,
                                    "stagecraft catalogs the image natively, without a scanner image",
                                ));
                            }
                            other => {
                                return Err(unsupported(other, "type=sbom takes disabled= only"));
                            }
                        }
                    }
                    options.sbom = !disabled;
                }
                Some("provenance") => {
                    provenance_given = true;
                    let mut parsed = ProvenanceOptions {
                        mode: ProvenanceMode::Max,
                        builder_id: String::new(),
                        reproducible: false,
                        inline_only: false,
                        filename: "provenance.json".to_owned(),
                    };
                    let flag_value = |key: &str, value: &str| {
                        go_bool(value)
                            .ok_or_else(|| invalid(format!("{key}={value:?} is not true or false")))
                    };
                    for (key, values) in &fields {
                        let value = values.last().map(String::as_str).unwrap_or_default();
                        match key.as_str() {
                            "type" | "disabled" => {}
                            "mode" => {
                                parsed.mode = match value {
                                    "min" => ProvenanceMode::Min,
                                    "max" | "full" => ProvenanceMode::Max,
                                    other => {
                                        return Err(invalid(format!(
                                            "invalid mode {other:?}\n  = help: use mode=min or mode=max"
                                        )));
                                    }
                                }
                            }
                            "builder-id" => parsed.builder_id = value.to_owned(),
                            "reproducible" => parsed.reproducible = flag_value(key, value)?,
                            "inline-only" => parsed.inline_only = flag_value(key, value)?,
                            "filename" if !value.is_empty() && !value.contains('/') => {
                                parsed.filename = value.to_owned()
                            }
                            "filename" => {
                                return Err(invalid(format!(
                                    "filename={value:?} must be a plain file name"
                                )));
                            }
                            "version" if value == "v1" => {}
                            other => {
                                return Err(unsupported(
                                    other,
                                    "type=provenance takes mode=, builder-id=, reproducible=, inline-only=, filename=, version=v1, disabled=",
                                ));
                            }
                        }
                    }
                    options.provenance = (!disabled).then_some(parsed);
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "unknown attestation type {other:?}\n  = help: use type=sbom or type=provenance"
                    )));
                }
                None => return Err(invalid("needs type=sbom or type=provenance".to_owned())),
            }
        }
        if !provenance_given && default_provenance {
            options.provenance = Some(ProvenanceOptions {
                mode: ProvenanceMode::Min,
                builder_id: String::new(),
                reproducible: false,
                inline_only: true,
                filename: "provenance.json".to_owned(),
            });
        }
        Ok(options)
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
                compression: None
            }
        );
        assert_eq!(
            Output::parse("type=oci,dest=o.tar,compression=zstd,compression-level=9").unwrap(),
            Output::Oci {
                dest: file("o.tar"),
                names: vec![],
                compression: Some(Compression::Zstd { level: 9 })
            }
        );
        let error = Output::parse("type=oci,dest=o.tar,compression=gzip,compression-level=12");
        assert!(error.unwrap_err().to_string().contains("use 0 to 9"));
        assert_eq!(
            Output::parse("type=docker,dest=a.tar,name=app:1").unwrap(),
            Output::Docker {
                dest: file("a.tar"),
                names: vec!["app:1".into()]
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
                compression: None
            }
        );
        assert_eq!(
            Output::parse("type=image,name=foo:1").unwrap(),
            Output::Image {
                names: vec!["foo:1".into()],
                push: false,
                compression: None
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
                    compression: None
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
        for text in [
            "type=oci,dest=a.tar,annotation.org.opencontainers.image.title=x",
            "type=oci,dest=a.tar,rewrite-timestamp=true",
            "type=oci,dest=a.tar,oci-mediatypes=false",
        ] {
            let error = Output::parse(text).unwrap_err().to_string();
            assert!(error.contains("not supported yet"), "{text}: {error}");
        }
        assert!(Output::parse("type=oci,dest=a.tar,force-compression=true").is_ok());
    }

    #[test]
    fn attestations_resolve_like_buildx() {
        let parse = |attests: &[&str], provenance: Option<&str>, sbom: Option<&str>| {
            let attests: Vec<String> = attests.iter().map(|a| a.to_string()).collect();
            AttestOptions::parse(&attests, provenance, sbom, true)
        };
        // buildx's default: minimal provenance, for image outputs only.
        let default = parse(&[], None, None).unwrap();
        assert!(!default.sbom);
        let provenance = default.provenance.unwrap();
        assert_eq!(provenance.mode, ProvenanceMode::Min);
        assert!(provenance.inline_only);
        // `--provenance=true` asks for BuildKit's default mode, max; false turns it off.
        let max = parse(&[], Some("true"), Some("1")).unwrap();
        assert!(max.sbom);
        assert_eq!(max.provenance.unwrap().mode, ProvenanceMode::Max);
        assert_eq!(parse(&[], Some("false"), None).unwrap().provenance, None);
        // The shorthand comes after --attest and wins.
        let min = parse(
            &["type=provenance,mode=max", "type=sbom"],
            Some("mode=min,builder-id=https://ci.example/1"),
            None,
        )
        .unwrap();
        assert!(min.sbom);
        let provenance = min.provenance.unwrap();
        assert_eq!(provenance.mode, ProvenanceMode::Min);
        assert!(!provenance.inline_only);
        assert_eq!(provenance.builder_id, "https://ci.example/1");
        assert!(
            !parse(&["type=sbom,disabled=true"], None, None)
                .unwrap()
                .sbom
        );
        assert_eq!(
            AttestOptions::parse(&[], None, None, false).unwrap(),
            AttestOptions::default()
        );
        for (bad, says) in [
            ("type=sbom,generator=docker/scout-sbom-indexer", "natively"),
            ("type=provenance,mode=all", "mode=min or mode=max"),
            ("type=provenance,version=v0.2", "not supported"),
            ("type=vex", "unknown attestation type"),
            ("mode=max", "needs type="),
        ] {
            let error = parse(&[bad], None, None).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
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
}
