//! `--annotation` values and `annotation*` output keys: where each annotation goes, as buildx
//! names the places, and for which platform.

use super::*;

/// Where an annotation goes, as BuildKit and buildx name the places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnotationTarget {
    /// `manifest` (the default): each image manifest.
    Manifest,
    /// `manifest-descriptor`: each image's entry in the index (or in an OCI layout's
    /// `index.json`).
    ManifestDescriptor,
    /// `index`: the image index of a multi-platform (or attested) image.
    Index,
    /// `index-descriptor`: the index's entry in an OCI layout's `index.json`.
    IndexDescriptor,
}

impl AnnotationTarget {
    fn parse(text: &str) -> Option<AnnotationTarget> {
        Some(match text {
            "manifest" => AnnotationTarget::Manifest,
            "manifest-descriptor" => AnnotationTarget::ManifestDescriptor,
            "index" => AnnotationTarget::Index,
            "index-descriptor" => AnnotationTarget::IndexDescriptor,
            _ => return None,
        })
    }
}

/// One annotation of an image output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Where it goes.
    pub target: AnnotationTarget,
    /// `[PLATFORM]`: only that platform's manifest (or entry); every one when `None`.
    pub platform: Option<Platform>,
    /// The key (`org.opencontainers.image.title`).
    pub key: String,
    /// The value.
    pub value: String,
}

/// Why an annotation was refused.
fn annotation_error(text: &str, reason: String) -> Error {
    Error::InvalidOption {
        flag: "--annotation",
        value: text.to_owned(),
        reason,
    }
}

/// `TYPE` or `TYPE[PLATFORM]` of an annotation.
fn annotation_place(text: &str, place: &str) -> Result<(AnnotationTarget, Option<Platform>)> {
    let (kind, platform) = match place.split_once('[') {
        Some((kind, rest)) => {
            let platform = rest.strip_suffix(']').ok_or_else(|| {
                annotation_error(text, format!("{place:?}: a platform ends with ]"))
            })?;
            let platform = Platform::parse(platform).map_err(|e| {
                annotation_error(text, format!("invalid platform {platform:?}: {e}"))
            })?;
            (kind, Some(platform))
        }
        None => (place, None),
    };
    let target = AnnotationTarget::parse(kind).ok_or_else(|| {
        annotation_error(
            text,
            format!("unknown annotation type {kind:?}\n  = help: use manifest, manifest-descriptor, index or index-descriptor"),
        )
    })?;
    Ok((target, platform))
}

impl Annotation {
    /// Parses buildx's `--annotation [TYPES:]KEY=VALUE`, where TYPES is a comma-separated
    /// list of `manifest`, `manifest-descriptor`, `index` and `index-descriptor`, each with
    /// an optional `[PLATFORM]` (none: `manifest`); one annotation per type.
    pub fn parse_flag(text: &str) -> Result<Vec<Annotation>> {
        let (key, value) = text.split_once('=').ok_or_else(|| {
            annotation_error(text, "expected KEY=VALUE (or TYPE:KEY=VALUE)".to_owned())
        })?;
        let (places, key) = match key.split_once(':') {
            Some((places, key)) => (Some(places), key),
            None => (None, key),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(annotation_error(text, format!("invalid key {key:?}")));
        }
        let places = match places {
            None => vec![(AnnotationTarget::Manifest, None)],
            Some(places) => places
                .split(',')
                .map(|place| annotation_place(text, place))
                .collect::<Result<_>>()?,
        };
        Ok(places
            .into_iter()
            .map(|(target, platform)| Annotation {
                target,
                platform,
                key: key.to_owned(),
                value: value.to_owned(),
            })
            .collect())
    }

    /// Parses an output key `annotation[-TYPE][[PLATFORM]].KEY` (BuildKit's exporter form)
    /// with its value; `None` for a key that is not an annotation.
    pub(super) fn from_output_key(key: &str, value: &str) -> Option<Result<Annotation>> {
        let rest = key.strip_prefix("annotation")?;
        if !rest.starts_with(['-', '[', '.']) {
            return None;
        }
        // The key follows the first `.` after the place (a platform holds none).
        let close = rest.find(']').map_or(0, |at| at + 1);
        let dot = close + rest[close..].find('.')?;
        let (place, annotation) = (&rest[..dot], &rest[dot + 1..]);
        let place = place.strip_prefix('-').unwrap_or(place);
        let place = if place.is_empty() || place.starts_with('[') {
            format!("manifest{place}")
        } else {
            place.to_owned()
        };
        Some(
            annotation_place(key, &place).and_then(|(target, platform)| {
                if annotation.is_empty() || annotation.contains(char::is_whitespace) {
                    return Err(annotation_error(key, format!("invalid key {annotation:?}")));
                }
                Ok(Annotation {
                    target,
                    platform,
                    key: annotation.to_owned(),
                    value: value.to_owned(),
                })
            }),
        )
    }

    /// Whether it applies to the image of `platform` (`None`: an image of no one platform).
    pub fn applies_to(&self, platform: Option<&Platform>) -> bool {
        match (&self.platform, platform) {
            (None, _) => true,
            (Some(wanted), Some(platform)) => {
                wanted.clone().normalized() == platform.clone().normalized()
            }
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_flags_parse_like_buildx() {
        let parsed = Annotation::parse_flag(
            "index,manifest[linux/amd64]:org.opencontainers.image.title=My app",
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].target, AnnotationTarget::Index);
        assert_eq!(parsed[1].target, AnnotationTarget::Manifest);
        assert_eq!(
            parsed[1].platform.as_ref().unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(parsed[1].value, "My app");
        let plain = Annotation::parse_flag("k=v").unwrap();
        assert_eq!(plain[0].target, AnnotationTarget::Manifest);
        for bad in ["novalue", "layer:k=v", "manifest[bad platform]:k=v", "=v"] {
            assert!(Annotation::parse_flag(bad).is_err(), "{bad}");
        }
    }
}
