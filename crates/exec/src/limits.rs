//! Resource limits of the command, as docker's and buildx's `--ulimit` gives them: set by the
//! init with `setrlimit` while it still holds `CAP_SYS_RESOURCE`, before the capability drop
//! and `execve`, as runc sets a spec's `rlimits`. Without any, the command inherits the
//! caller's limits, as under BuildKit when no ulimit is given.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The limits docker's `--ulimit` names (go-units' `ulimitNameMapping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitResource {
    /// `core`: core file size.
    Core,
    /// `cpu`: CPU seconds.
    Cpu,
    /// `data`: data segment size.
    Data,
    /// `fsize`: file size.
    Fsize,
    /// `locks`: file locks.
    Locks,
    /// `memlock`: locked memory.
    Memlock,
    /// `msgqueue`: POSIX message queue bytes.
    Msgqueue,
    /// `nice`: nice ceiling.
    Nice,
    /// `nofile`: open files.
    Nofile,
    /// `nproc`: processes.
    Nproc,
    /// `rss`: resident set size.
    Rss,
    /// `rtprio`: real-time priority ceiling.
    Rtprio,
    /// `rttime`: real-time CPU microseconds.
    Rttime,
    /// `sigpending`: pending signals.
    Sigpending,
    /// `stack`: stack size.
    Stack,
}

const NAMES: [(&str, LimitResource); 15] = [
    ("core", LimitResource::Core),
    ("cpu", LimitResource::Cpu),
    ("data", LimitResource::Data),
    ("fsize", LimitResource::Fsize),
    ("locks", LimitResource::Locks),
    ("memlock", LimitResource::Memlock),
    ("msgqueue", LimitResource::Msgqueue),
    ("nice", LimitResource::Nice),
    ("nofile", LimitResource::Nofile),
    ("nproc", LimitResource::Nproc),
    ("rss", LimitResource::Rss),
    ("rtprio", LimitResource::Rtprio),
    ("rttime", LimitResource::Rttime),
    ("sigpending", LimitResource::Sigpending),
    ("stack", LimitResource::Stack),
];

impl LimitResource {
    /// docker's name for it.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, resource)| *resource == self)
            .map_or("?", |(name, _)| name)
    }

    pub(crate) fn rustix(self) -> rustix::process::Resource {
        use rustix::process::Resource;
        match self {
            LimitResource::Core => Resource::Core,
            LimitResource::Cpu => Resource::Cpu,
            LimitResource::Data => Resource::Data,
            LimitResource::Fsize => Resource::Fsize,
            LimitResource::Locks => Resource::Locks,
            LimitResource::Memlock => Resource::Memlock,
            LimitResource::Msgqueue => Resource::Msgqueue,
            LimitResource::Nice => Resource::Nice,
            LimitResource::Nofile => Resource::Nofile,
            LimitResource::Nproc => Resource::Nproc,
            LimitResource::Rss => Resource::Rss,
            LimitResource::Rtprio => Resource::Rtprio,
            LimitResource::Rttime => Resource::Rttime,
            LimitResource::Sigpending => Resource::Sigpending,
            LimitResource::Stack => Resource::Stack,
        }
    }
}

/// One limit: `nofile=1024:2048` (soft and hard; one value sets both; `-1` is unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// What is limited.
    pub resource: LimitResource,
    /// The soft limit (`None`: unlimited).
    pub soft: Option<u64>,
    /// The hard limit (`None`: unlimited).
    pub hard: Option<u64>,
}

/// Why a `--ulimit` value is refused, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UlimitError {
    /// No `=` between the type and the values.
    #[error("invalid ulimit {0:?}: write NAME=SOFT[:HARD], e.g. nofile=1024:2048")]
    Syntax(String),
    /// A type docker does not know.
    #[error("invalid ulimit type {0:?}: the types are {types}", types = NAMES.map(|(n, _)| n).join(", "))]
    Type(String),
    /// A value that is neither a number nor -1.
    #[error("invalid ulimit value {0:?}: a number, or -1 for unlimited")]
    Value(String),
    /// A soft limit above the hard one.
    #[error("invalid ulimit {0:?}: the soft limit must not be above the hard limit")]
    SoftAboveHard(String),
}

impl FromStr for Ulimit {
    type Err = UlimitError;

    /// Parses docker's `NAME=SOFT[:HARD]`.
    fn from_str(text: &str) -> Result<Ulimit, UlimitError> {
        let (name, values) = text
            .split_once('=')
            .ok_or_else(|| UlimitError::Syntax(text.to_owned()))?;
        let resource = NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| *r)
            .ok_or_else(|| UlimitError::Type(name.to_owned()))?;
        let value = |text: &str| -> Result<Option<u64>, UlimitError> {
            match text.parse::<i64>() {
                Ok(-1) => Some(None),
                Ok(n) => u64::try_from(n).map(Some).ok(),
                Err(_) => None,
            }
            .ok_or_else(|| UlimitError::Value(text.to_owned()))
        };
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (value(soft)?, value(hard)?),
            None => {
                let both = value(values)?;
                (both, both)
            }
        };
        let as_number = |limit: Option<u64>| limit.unwrap_or(u64::MAX);
        if as_number(soft) > as_number(hard) {
            return Err(UlimitError::SoftAboveHard(text.to_owned()));
        }
        Ok(Ulimit {
            resource,
            soft,
            hard,
        })
    }
}

impl fmt::Display for Ulimit {
    /// `nofile=1024:2048`, `-1` for unlimited: the form it was given in, canonical.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |limit: Option<u64>| limit.map_or_else(|| "-1".to_owned(), |n| n.to_string());
        write!(
            f,
            "{}={}:{}",
            self.resource.name(),
            show(self.soft),
            show(self.hard)
        )
    }
}

/// Sets `limits` on this process (the init, before it becomes the command).
pub(crate) fn apply(limits: &[Ulimit]) -> Result<(), String> {
    for limit in limits {
        rustix::process::setrlimit(
            limit.resource.rustix(),
            rustix::process::Rlimit {
                current: limit.soft,
                maximum: limit.hard,
            },
        )
        .map_err(|e| format!("setrlimit({limit}): {}", crate::error::errno_text(e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_parse_as_docker_s() {
        let parse = |text: &str| text.parse::<Ulimit>();
        assert_eq!(
            parse("nofile=1024:2048"),
            Ok(Ulimit {
                resource: LimitResource::Nofile,
                soft: Some(1024),
                hard: Some(2048)
            })
        );
        assert_eq!(parse("nproc=64").unwrap().to_string(), "nproc=64:64");
        assert_eq!(parse("core=-1").unwrap().to_string(), "core=-1:-1");
        assert_eq!(parse("stack=8192:-1").unwrap().to_string(), "stack=8192:-1");
        for (bad, says) in [
            ("nofile", "NAME=SOFT[:HARD]"),
            ("files=1", "the types are core, cpu"),
            ("nofile=many", "a number, or -1"),
            ("nofile=-5", "a number, or -1"),
            ("nofile=2048:1024", "soft limit must not be above"),
            ("nofile=-1:10", "soft limit must not be above"),
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
