//! buildx's option syntax: `--output type=…,dest=…`, `--cache-to type=…,mode=…`, compressions.

use crate::error::{Error, Result};
use stagecraft_layer::Compression;
use stagecraft_solve::remote_cache::CacheMode;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI layout tar; its layers compressed (`compression=` or the session's default).
    Oci(PathBuf, Option<Compression>),
    /// A `docker load` archive.
    Docker(PathBuf),
    /// The final file system as a tar.
    Tar(PathBuf),
    /// The final file system unpacked into a directory.
    Local(PathBuf),
    /// A push; its layers compressed like `Oci`'s.
    Registry(String, Option<Compression>),
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

/// `key=value,…` fields of a buildx option; `flag` names it in errors.
fn option_fields<'a>(text: &'a str, flag: &'static str) -> Result<BTreeMap<&'a str, &'a str>> {
    text.split(',')
        .map(|field| {
            field
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| Error::InvalidOption {
                    flag,
                    value: text.to_owned(),
                    reason: format!("invalid field {field:?}: expected key=value"),
                })
        })
        .collect()
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

impl Output {
    /// Parses an `--output` value as buildx does; a value without `=` is a local directory.
    pub fn parse(text: &str) -> Result<Output> {
        if !text.contains('=') {
            return Ok(Output::Local(PathBuf::from(text)));
        }
        let invalid = |reason: String| Error::InvalidOption {
            flag: "--output",
            value: text.to_owned(),
            reason,
        };
        let fields = option_fields(text, "--output")?;
        let dest = || -> Result<PathBuf> {
            fields
                .get("dest")
                .map(PathBuf::from)
                .ok_or_else(|| invalid("needs dest=PATH".to_owned()))
        };
        let compression = match fields.get("compression") {
            Some(name) => Some(parse_compression(
                name,
                fields.get("compression-level").copied(),
            )?),
            None => None,
        };
        match fields.get("type").copied() {
            Some("oci") => Ok(Output::Oci(dest()?, compression)),
            Some("docker") => Ok(Output::Docker(dest()?)),
            Some("tar") => Ok(Output::Tar(dest()?)),
            Some("local") => Ok(Output::Local(dest()?)),
            Some("registry" | "image") => fields
                .get("name")
                .map(|n| Output::Registry((*n).to_owned(), compression))
                .ok_or_else(|| invalid("needs name=REFERENCE".to_owned())),
            Some(other) => Err(invalid(format!(
                "unknown output type {other:?}\n  = help: use oci, docker, tar, local or registry"
            ))),
            None => Err(invalid("needs type=…".to_owned())),
        }
    }
}

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
        let mode = match fields.get("mode").copied() {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(other) => {
                return Err(invalid(format!(
                    "invalid mode {other:?}\n  = help: use mode=min or mode=max"
                )));
            }
        };
        let field = |name: &str| {
            fields
                .get(name)
                .copied()
                .ok_or_else(|| invalid(format!("needs {name}=…")))
        };
        let location = match fields.get("type").copied() {
            Some("local") => {
                CacheLocation::Local(PathBuf::from(field(if export { "dest" } else { "src" })?))
            }
            Some("registry") => CacheLocation::Registry(field("ref")?.to_owned()),
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

    #[test]
    fn outputs_parse_like_buildx() {
        assert_eq!(
            Output::parse("type=oci,dest=out.tar").unwrap(),
            Output::Oci("out.tar".into(), None)
        );
        assert_eq!(
            Output::parse("type=oci,dest=o.tar,compression=zstd,compression-level=9").unwrap(),
            Output::Oci("o.tar".into(), Some(Compression::Zstd { level: 9 }))
        );
        let error = Output::parse("type=oci,dest=o.tar,compression=gzip,compression-level=12");
        assert!(error.unwrap_err().to_string().contains("use 0 to 9"));
        assert_eq!(
            Output::parse("type=docker,dest=a.tar").unwrap(),
            Output::Docker("a.tar".into())
        );
        assert_eq!(
            Output::parse("type=tar, dest=fs.tar").unwrap(),
            Output::Tar("fs.tar".into())
        );
        assert_eq!(
            Output::parse("./dir").unwrap(),
            Output::Local("./dir".into())
        );
        assert_eq!(
            Output::parse("type=registry,name=localhost:5000/a:b").unwrap(),
            Output::Registry("localhost:5000/a:b".into(), None)
        );
        assert!(Output::parse("type=oci").is_err());
        assert!(Output::parse("type=zip,dest=x").is_err());
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
            ("type=registry,ref=r/c,mode=all", "mode=min or mode=max"),
        ] {
            let error = CacheLocation::parse(bad, true).unwrap_err().to_string();
            assert!(error.contains(help), "{bad}: {error}");
        }
    }
}
