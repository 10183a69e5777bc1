//! BuildKit's entitlements: privileges a Dockerfile may ask for (`RUN --security=insecure`,
//! `RUN --network=host`) but only get when the build command grants them (`--allow`, as buildx).

use std::fmt;
use std::str::FromStr;

/// One privilege a build may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entitlement {
    /// `network.host`: `RUN --network=host`.
    NetworkHost,
    /// `security.insecure`: `RUN --security=insecure` (every capability, no seccomp filter).
    SecurityInsecure,
}

impl Entitlement {
    /// Every entitlement, in the order error messages list them.
    pub const ALL: [Entitlement; 2] = [Entitlement::NetworkHost, Entitlement::SecurityInsecure];

    /// BuildKit's name.
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

impl FromStr for Entitlement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Entitlement::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                let valid: Vec<&str> = Entitlement::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "invalid entitlement {s:?}\n  = help: valid values are {}",
                    valid.join(", ")
                )
            })
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
        let error = "security.unsafe".parse::<Entitlement>().unwrap_err();
        assert!(error.contains("\"security.unsafe\""), "{error}");
        assert!(error.contains("network.host, security.insecure"), "{error}");
    }
}
