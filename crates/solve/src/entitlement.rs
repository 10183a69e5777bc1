//! Entitlements: what a Dockerfile may only ask for when the person running the build allows it
//! (`--allow`), as BuildKit's `entitlements` package and buildx's `--allow` flag define them.

use std::fmt;
use std::str::FromStr;

/// A privilege a build step may only use when the build allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entitlement {
    /// `network.host`: `RUN --network=host`, the host's network namespace instead of the
    /// build's sandbox.
    NetworkHost,
    /// `security.insecure`: `RUN --security=insecure`, no seccomp profile and every capability.
    SecurityInsecure,
}

impl Entitlement {
    /// Every entitlement, in the order they are listed to users.
    pub const ALL: [Entitlement; 2] = [Entitlement::NetworkHost, Entitlement::SecurityInsecure];

    /// The name buildx and BuildKit use (`network.host`).
    pub fn name(self) -> &'static str {
        match self {
            Entitlement::NetworkHost => "network.host",
            Entitlement::SecurityInsecure => "security.insecure",
        }
    }
}

impl fmt::Display for Entitlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An `--allow` value that names no entitlement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entitlement {0:?}: valid values are {valid}", valid = valid_names())]
pub struct UnknownEntitlement(pub String);

/// `a, b and c`.
fn valid_names() -> String {
    let names: Vec<&str> = Entitlement::ALL.iter().map(|e| e.name()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl FromStr for Entitlement {
    type Err = UnknownEntitlement;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Entitlement::ALL
            .into_iter()
            .find(|e| e.name() == text)
            .ok_or_else(|| UnknownEntitlement(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid_values() {
        for entitlement in Entitlement::ALL {
            assert_eq!(entitlement.name().parse(), Ok(entitlement));
        }
        let error = "network.hots".parse::<Entitlement>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown entitlement \"network.hots\": valid values are network.host and \
             security.insecure"
        );
    }
}
