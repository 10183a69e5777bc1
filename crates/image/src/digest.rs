//! Content digests (`sha256:<64 lowercase hex>`).

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a string is not a digest stagecraft can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string has no `algorithm:` prefix.
    #[error(
        "{input:?} is not a digest: expected `sha256:` followed by 64 lowercase hex characters"
    )]
    MissingAlgorithm {
        /// The rejected input.
        input: String,
    },
    /// The algorithm is well-formed but not sha256.
    #[error(
        "digest {input:?} uses algorithm {algorithm:?}; stagecraft addresses content by sha256 only"
    )]
    UnsupportedAlgorithm {
        /// The algorithm named by the input.
        algorithm: String,
        /// The rejected input.
        input: String,
    },
    /// The encoded part is not 64 lowercase hex characters.
    #[error(
        "digest {input:?} is invalid: a sha256 digest has 64 lowercase hex characters ({reason})"
    )]
    BadEncoding {
        /// The rejected input.
        input: String,
        /// What exactly is wrong with the hex part.
        reason: String,
    },
}

/// A validated sha256 content digest, as written in OCI descriptors:
/// `sha256:` followed by exactly 64 lowercase hex characters.
///
/// Only sha256 is accepted: it is what every registry, BuildKit and Docker
/// produce, and one algorithm keeps store paths and cache keys unambiguous.
/// Uppercase hex is rejected (as go-digest does) because the same content
/// would otherwise have two names.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

const PREFIX: &str = "sha256:";
const HEX_LEN: usize = 64;

impl Digest {
    /// Parses and validates `sha256:<64 lowercase hex>`.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        let Some((algorithm, encoded)) = input.split_once(':') else {
            return Err(DigestError::MissingAlgorithm {
                input: input.to_owned(),
            });
        };
        if algorithm != "sha256" {
            return Err(if algorithm.is_empty() {
                DigestError::MissingAlgorithm {
                    input: input.to_owned(),
                }
            } else {
                DigestError::UnsupportedAlgorithm {
                    algorithm: algorithm.to_owned(),
                    input: input.to_owned(),
                }
            });
        }
        check_hex(encoded).map_err(|reason| DigestError::BadEncoding {
            input: input.to_owned(),
            reason,
        })?;
        Ok(Digest(input.to_owned()))
    }

    /// Builds a digest from the 64 hex characters alone (a store file name,
    /// for example).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        check_hex(hex).map_err(|reason| DigestError::BadEncoding {
            input: hex.to_owned(),
            reason,
        })?;
        Ok(Digest(format!("{PREFIX}{hex}")))
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut digester = Digester::new();
        digester.update(bytes);
        digester.finish()
    }

    /// The whole digest, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &str {
        "sha256"
    }

    /// The 64 lowercase hex characters after `sha256:`.
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The first 12 hex characters, the short form docker prints for IDs.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }
}

fn check_hex(hex: &str) -> Result<(), String> {
    if hex.len() != HEX_LEN {
        return Err(format!("found {} characters", hex.len()));
    }
    if let Some(bad) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!("found {bad:?}"));
    }
    Ok(())
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 hashing that also counts bytes; it implements
/// [`io::Write`] so it can sit behind `io::copy` or a tee.
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
    len: u64,
}

impl Digester {
    /// A digester that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more content.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        // usize always fits in u64 on supported targets.
        self.len += bytes.len() as u64;
    }

    /// How many bytes were fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no bytes were fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest(format!("{PREFIX}{}", hex::encode(self.hasher.finalize())))
    }
}

impl io::Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn of_empty_is_the_well_known_digest() {
        assert_eq!(Digest::of(b"").as_str(), EMPTY);
        assert_eq!(
            Digest::of(b"{}").as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn parse_accepts_canonical_form() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.hex(), &EMPTY[7..]);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::from_hex(d.hex()).unwrap(), d);
    }

    #[test]
    fn parse_rejects_bad_input_with_reasons() {
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        for (input, needle) in [
            ("", "not a digest"),
            ("e3b0c442", "not a digest"),
            (":abc", "not a digest"),
            ("sha512:abcd", "sha256 only"),
            ("sha256:abc", "found 3 characters"),
            (upper.as_str(), "found 'E'"),
        ] {
            let err = Digest::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn digester_matches_one_shot_and_counts() {
        let mut d = Digester::new();
        assert!(d.is_empty());
        d.update(b"hello ");
        std::io::Write::write_all(&mut d, b"world").unwrap();
        assert_eq!(d.len(), 11);
        assert_eq!(d.finish(), Digest::of(b"hello world"));
    }

    #[test]
    fn serde_validates() {
        let json = format!("\"{EMPTY}\"");
        let d: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), json);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
