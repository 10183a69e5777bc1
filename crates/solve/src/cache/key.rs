//! Cache keys with an explicit, versioned encoding.
//!
//! A key is the sha256 of a sequence of named fields, each written as its name and its value,
//! both length-prefixed, after a format version and the kind of key. Nothing is encoded through
//! `Debug` or any other formatting that a refactor could change silently: renaming a Rust
//! field or changing a derive leaves every key as it was, and two different inputs cannot
//! collide by printing alike. Changing how any field is encoded means bumping
//! [`KEY_FORMAT`], which makes every older record a plain miss.

use crate::fs::users::Owner;
use sha2::{Digest as _, Sha256};

/// The version of the encoding below; part of every key.
pub(crate) const KEY_FORMAT: u32 = 1;

/// A key being built, field by field.
pub(crate) struct CacheKey {
    hasher: Sha256,
}

impl CacheKey {
    /// A key of the given kind (`"RUN"`, `"COPY"`, `"image"`, …).
    pub(crate) fn new(kind: &str) -> CacheKey {
        let mut key = CacheKey {
            hasher: Sha256::new(),
        };
        key.hasher.update(KEY_FORMAT.to_le_bytes());
        key.bytes(kind.as_bytes());
        key
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// Adds a text field.
    pub(crate) fn text(mut self, name: &str, value: &str) -> CacheKey {
        self.bytes(name.as_bytes());
        self.bytes(value.as_bytes());
        self
    }

    /// Adds a yes/no field.
    pub(crate) fn flag(self, name: &str, value: bool) -> CacheKey {
        self.text(name, if value { "1" } else { "0" })
    }

    /// Adds an optional owner: absent, or `uid:gid` in decimal.
    pub(crate) fn owner(self, name: &str, owner: Option<Owner>) -> CacheKey {
        match owner {
            Some(Owner { uid, gid }) => self.text(name, &format!("{uid}:{gid}")),
            None => self.text(name, ""),
        }
    }

    /// Adds optional permission bits: absent, or octal.
    pub(crate) fn mode(self, name: &str, mode: Option<u32>) -> CacheKey {
        match mode {
            Some(mode) => self.text(name, &format!("{mode:o}")),
            None => self.text(name, ""),
        }
    }

    /// The key, as lowercase hex.
    pub(crate) fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// How an owner reads in `--explain` (the same text the key holds).
pub(crate) fn describe_owner(owner: Option<Owner>) -> String {
    match owner {
        Some(Owner { uid, gid }) => format!("{uid}:{gid}"),
        None => "(the default)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_delimited_so_shifted_text_does_not_collide() {
        let a = CacheKey::new("k").text("x", "ab").text("y", "c").finish();
        let b = CacheKey::new("k").text("x", "a").text("y", "bc").finish();
        assert_ne!(a, b);
        let c = CacheKey::new("k").text("xa", "b").text("y", "c").finish();
        assert_ne!(a, c);
    }

    #[test]
    fn absent_and_zero_owners_and_modes_differ() {
        let none = CacheKey::new("k").owner("o", None).finish();
        let root = CacheKey::new("k")
            .owner("o", Some(Owner { uid: 0, gid: 0 }))
            .finish();
        assert_ne!(none, root);
        assert_ne!(
            CacheKey::new("k").mode("m", None).finish(),
            CacheKey::new("k").mode("m", Some(0)).finish()
        );
        // 0o755 and 755 (decimal) are different modes and different keys.
        assert_ne!(
            CacheKey::new("k").mode("m", Some(0o755)).finish(),
            CacheKey::new("k").mode("m", Some(755)).finish()
        );
    }

    #[test]
    fn the_encoding_is_pinned() {
        // The exact bytes of one key: a change here changes every cache key, which must come
        // with a new KEY_FORMAT.
        let mut expected = Sha256::new();
        expected.update(1u32.to_le_bytes());
        for text in ["COPY", "dest", "/app"] {
            expected.update((text.len() as u64).to_le_bytes());
            expected.update(text.as_bytes());
        }
        assert_eq!(
            CacheKey::new("COPY").text("dest", "/app").finish(),
            hex::encode(expected.finalize())
        );
    }
}
