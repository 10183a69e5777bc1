//! Serde helpers that give Go `encoding/json` semantics: `omitempty`
//! predicates, `null` accepted wherever Go accepts it, `map[string]struct{}`
//! sets, and nil slices written as `null`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Go decodes `null` into any field as "leave the zero value"; serde would
/// reject it for strings, vectors and maps.
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `omitempty` for `bool`.
pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}

/// `omitempty` for integers (`time.Duration`, `int`).
pub(crate) fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// `omitempty` for a slice whose nil/empty distinction we keep in memory:
/// Go omits both.
pub(crate) fn is_none_or_empty<T>(value: &Option<Vec<T>>) -> bool {
    value.as_ref().is_none_or(Vec::is_empty)
}

/// A Go `map[string]struct{}` (`ExposedPorts`, `Volumes`): written as
/// `{"key":{}}`, read from an object whose values are ignored (or `null`).
pub(crate) mod string_set {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        set: &BTreeSet<String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Empty {}
        serializer.collect_map(set.iter().map(|key| (key, Empty {})))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeSet<String>, D::Error> {
        let map = Option::<BTreeMap<String, IgnoredAny>>::deserialize(deserializer)?;
        Ok(map.unwrap_or_default().into_keys().collect())
    }
}

/// A Go slice without `omitempty`: a nil slice is written `null`. Our types
/// hold a `Vec`, so "empty" stands for nil (BuildKit never builds a non-nil
/// empty slice for these fields). `null` and `[]` both read as empty.
pub(crate) mod nil_when_empty {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        items: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if items.is_empty() {
            serializer.serialize_none()
        } else {
            serializer.collect_seq(items)
        }
    }

    pub(crate) fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        null_default(deserializer)
    }
}

/// Docker's `strslice.StrSlice` reading rules for `Cmd`, `Entrypoint` and
/// `Shell`: `null` (or absent) is "not set", a JSON string is a one-element
/// list, an array is itself. `[]` stays distinct from `null`.
pub(crate) fn optional_str_slice<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    struct StrSliceVisitor;

    impl<'de> Visitor<'de> for StrSliceVisitor {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null, a string or an array of strings")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![value.to_owned()]))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(Some(items))
        }
    }

    deserializer.deserialize_option(StrSliceVisitor)
}

/// Like [`optional_str_slice`] for fields where "not set" and "empty" mean
/// the same thing.
pub(crate) fn str_slice<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    Ok(optional_str_slice(deserializer)?.unwrap_or_default())
}
