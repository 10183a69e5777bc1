//! `RUN --mount=…` values, parsed with BuildKit's rules (`instructions/commands_runmount.go`):
//! CSV fields (Go's `encoding/csv`: `"…"` quotes a field, `""` is a quote in it), each value
//! expanded on its own, `type` defaulting to `bind`, read-only by default except for cache and
//! tmpfs, `mode`/`uid`/`gid` only for cache and secret mounts, secrets need an id, source or
//! target. The planner reads `from=` before anything is expanded ([`mount_from`]), so, as in
//! BuildKit, it may not use variables.

/// A mount type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// Files from the context or another stage.
    Bind,
    /// A persistent directory shared between builds (package caches).
    Cache,
    /// An empty memory file system.
    Tmpfs,
    /// A secret passed with `--secret`.
    Secret,
    /// An SSH agent socket passed with `--ssh`.
    Ssh,
}

/// A parsed `--mount` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The type.
    pub kind: MountType,
    /// `from=`: a stage or image.
    pub from: Option<String>,
    /// `source=`/`src=`: a path in the source (or the secret id).
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`.
    pub target: Option<String>,
    /// Mounted read-only.
    pub readonly: bool,
    /// `id=`: the cache or secret id.
    pub id: Option<String>,
    /// `sharing=`: `shared` (default), `private` or `locked`.
    pub sharing: String,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `size=` for tmpfs, in bytes.
    pub size: Option<u64>,
    /// `required` for secrets.
    pub required: bool,
    /// `env=` for secrets: expose the secret as this variable.
    pub env: Option<String>,
}

/// Splits a `--mount` value into its CSV fields, as Go's `encoding/csv` reads one record.
pub fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("extraneous or missing \" in quoted-field".to_owned()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(_) => return Err("extraneous or missing \" in quoted-field".to_owned()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in non-quoted-field".to_owned()),
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// The `from=` of a `--mount` value as the planner sees it, before expansion: `None` when
/// there is none. A variable in it is an error, as in BuildKit (a stage alias is the way).
pub fn mount_from(value: &str) -> Result<Option<String>, String> {
    let fields = csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut from = None;
    for field in fields {
        if let Some((key, value)) = field.split_once('=')
            && key.eq_ignore_ascii_case("from")
        {
            if value.find('$').is_some_and(|i| i != value.len() - 1) {
                return Err(
                    "'from' doesn't support variable expansion, define alias stage instead"
                        .to_owned(),
                );
            }
            from = Some(value.to_owned());
        }
    }
    Ok(from)
}

/// Parses a `--mount` value whose variables are already expanded (or have none).
pub fn parse_mount(value: &str) -> Result<MountSpec, String> {
    parse_mount_with(value, &mut |v| Ok(v.to_owned()))
}

/// Parses a `--mount` value, expanding each field's value with `expand` after the CSV split
/// (so a variable's commas never make new fields).
pub fn parse_mount_with(
    value: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<MountSpec, String> {
    let mut spec = MountSpec {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: true,
        id: None,
        sharing: String::new(),
        mode: None,
        uid: None,
        gid: None,
        size: None,
        required: false,
        env: None,
    };
    let mut readonly_given = false;
    let parse_bool = |key: &str, v: &str| -> Result<bool, String> {
        match v.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => Ok(true),
            "0" | "f" | "false" => Ok(false),
            _ => Err(format!("invalid value for {key}: {v}")),
        }
    };
    let fields = csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    for field in fields.iter().filter(|f| !f.is_empty()) {
        let field = field.as_str();
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(expand(v)?)),
            None => (field.to_ascii_lowercase(), None),
        };
        let val = val.as_deref();
        match (key.as_str(), val) {
            ("readonly" | "ro", None) => {
                spec.readonly = true;
                readonly_given = true;
            }
            ("readwrite" | "rw", None) => {
                spec.readonly = false;
                readonly_given = true;
            }
            ("required", None) => spec.required = true,
            (_, None) => return Err(format!("invalid field '{field}' must be a key=value pair")),
            ("type", Some(v)) => {
                spec.kind = match v.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    other => {
                        return Err(format!(
                            "unsupported mount type \"{other}\" (use bind, cache, tmpfs, secret or ssh)"
                        ));
                    }
                }
            }
            ("from", Some(v)) => spec.from = Some(v.to_owned()),
            ("source" | "src", Some(v)) => spec.source = Some(v.to_owned()),
            ("target" | "dst" | "destination", Some(v)) => spec.target = Some(v.to_owned()),
            ("readonly" | "ro", Some(v)) => {
                spec.readonly = parse_bool(&key, v)?;
                readonly_given = true;
            }
            ("readwrite" | "rw", Some(v)) => {
                spec.readonly = !parse_bool(&key, v)?;
                readonly_given = true;
            }
            ("required", Some(v)) => spec.required = parse_bool(&key, v)?,
            ("id", Some(v)) => spec.id = Some(v.to_owned()),
            ("sharing", Some(v)) => {
                let v = v.to_ascii_lowercase();
                if !matches!(v.as_str(), "shared" | "private" | "locked") {
                    return Err(format!(
                        "unsupported sharing value \"{v}\" (use shared, private or locked)"
                    ));
                }
                spec.sharing = v;
            }
            ("mode", Some(v)) => {
                spec.mode = Some(
                    u32::from_str_radix(v, 8).map_err(|_| format!("invalid value {v} for mode"))?,
                )
            }
            ("uid", Some(v)) => {
                spec.uid = Some(
                    v.parse()
                        .map_err(|_| format!("invalid value {v} for uid"))?,
                )
            }
            ("gid", Some(v)) => {
                spec.gid = Some(
                    v.parse()
                        .map_err(|_| format!("invalid value {v} for gid"))?,
                )
            }
            ("size", Some(v)) => {
                spec.size =
                    Some(parse_size(v).ok_or_else(|| format!("invalid value for size: {v}"))?)
            }
            ("env", Some(v)) => spec.env = Some(v.to_owned()),
            (other, Some(_)) => return Err(format!("unexpected key '{other}' in '{field}'")),
        }
    }
    if !readonly_given {
        spec.readonly = !matches!(spec.kind, MountType::Cache | MountType::Tmpfs);
    }
    let file_info_allowed = matches!(
        spec.kind,
        MountType::Cache | MountType::Secret | MountType::Ssh
    );
    if !file_info_allowed && (spec.mode.is_some() || spec.uid.is_some() || spec.gid.is_some()) {
        return Err(format!(
            "mode, uid and gid are not allowed for {:?} mounts",
            spec.kind
        )
        .to_lowercase());
    }
    if spec.size.is_some() && spec.kind != MountType::Tmpfs {
        return Err("size is only allowed for tmpfs mounts".to_owned());
    }
    if spec.required && !matches!(spec.kind, MountType::Secret | MountType::Ssh) {
        return Err("required is only allowed for secret and ssh mounts".to_owned());
    }
    if !spec.sharing.is_empty() && spec.kind != MountType::Cache {
        return Err(format!("invalid cache sharing set for {:?} mount", spec.kind).to_lowercase());
    }
    if spec.kind == MountType::Secret {
        if spec.from.is_some() {
            return Err("secret mount should not have a from".to_owned());
        }
        if spec.source.is_none() && spec.target.is_none() && spec.id.is_none() {
            return Err("invalid secret mount. one of source, target required".to_owned());
        }
        if spec.source.is_some() && spec.id.is_some() {
            return Err("both source and id can't be set".to_owned());
        }
    }
    if spec.target.is_none() && !matches!(spec.kind, MountType::Secret | MountType::Ssh) {
        return Err(format!("{:?} mount needs a target", spec.kind).to_lowercase());
    }
    Ok(spec)
}

/// docker's `units.RAMInBytes`: `64m`, `1g`, `512k`, plain bytes.
fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let number: f64 = lower[..digits_end].parse().ok()?;
    let multiplier: u64 = match lower[digits_end..].trim_end_matches(['b', 'i']) {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    Some((number * multiplier as f64) as u64)
}

impl MountSpec {
    /// The cache id: `id=`, else the target (BuildKit's default).
    pub fn cache_id(&self) -> String {
        self.id
            .clone()
            .or_else(|| self.target.clone())
            .unwrap_or_default()
    }

    /// The secret id: `id=`, else the base name of the target.
    pub fn secret_id(&self) -> String {
        self.id
            .clone()
            .or_else(|| self.source.clone())
            .or_else(|| {
                self.target
                    .as_ref()
                    .map(|t| t.rsplit('/').next().unwrap_or(t).to_owned())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_rules_match_buildkit() {
        let cache = parse_mount("type=cache,target=/root/.cache").unwrap();
        assert_eq!((cache.kind, cache.readonly), (MountType::Cache, false));
        assert_eq!(cache.cache_id(), "/root/.cache");
        let bind = parse_mount("target=/src,source=app").unwrap();
        assert_eq!((bind.kind, bind.readonly), (MountType::Bind, true));
        assert!(!parse_mount("type=bind,target=/x,rw").unwrap().readonly);
        let secret =
            parse_mount("type=secret,id=npmrc,target=/root/.npmrc,mode=0400,uid=1000").unwrap();
        assert_eq!(
            (secret.mode, secret.uid, secret.secret_id()),
            (Some(0o400), Some(1000), "npmrc".to_owned())
        );
        assert_eq!(
            parse_mount("type=secret,target=/run/secrets/token")
                .unwrap()
                .secret_id(),
            "token"
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,size=64m").unwrap().size,
            Some(64 << 20)
        );
        assert!(parse_mount("type=cache,target=/c,sharing=weird").is_err());
        assert!(parse_mount("type=bind,target=/c,sharing=locked").is_err());
        assert!(parse_mount("type=bind,target=/c,mode=0700").is_err());
        assert!(parse_mount("type=secret").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("type=cache").is_err());
        assert!(parse_mount("type=cache,target=/x,oops").is_err());
    }

    #[test]
    fn fields_are_csv_like_go() {
        assert_eq!(
            csv_fields(r#"type=bind,"target=/a,b","source=say ""hi""""#).unwrap(),
            ["type=bind", "target=/a,b", r#"source=say "hi""#]
        );
        assert_eq!(csv_fields("a,,b").unwrap(), ["a", "", "b"]);
        assert_eq!(csv_fields("").unwrap(), [""]);
        assert!(csv_fields(r#"target=/x"y"#).unwrap_err().contains("bare"));
        assert!(
            csv_fields(r#""target=/x"y"#)
                .unwrap_err()
                .contains("extraneous")
        );
        assert!(csv_fields(r#""unterminated"#).is_err());
        let spec = parse_mount(r#"type=bind,"target=/a,b""#).unwrap();
        assert_eq!(spec.target.as_deref(), Some("/a,b"));
    }

    #[test]
    fn values_are_expanded_after_the_split() {
        let mut expand = |v: &str| Ok(v.replace("$T", "/x,y"));
        let spec = parse_mount_with("type=cache,target=$T", &mut expand).unwrap();
        assert_eq!(spec.target.as_deref(), Some("/x,y"));
    }

    #[test]
    fn from_is_read_before_expansion_and_takes_no_variables() {
        assert_eq!(
            mount_from("type=bind,from=build,target=/b")
                .unwrap()
                .as_deref(),
            Some("build")
        );
        assert_eq!(mount_from("type=cache,target=/c").unwrap(), None);
        assert_eq!(mount_from("FROM=x$").unwrap().as_deref(), Some("x$"));
        assert!(
            mount_from("from=$STAGE")
                .unwrap_err()
                .contains("alias stage")
        );
    }
}
