//! `--sbom`, `--provenance` and `--attest` resolved as buildx resolves them.

use super::*;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
