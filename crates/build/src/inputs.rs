//! What a build reads from the machine besides its context: secrets (files, environment
//! variables), SSH agent sockets, `SOURCE_DATE_EPOCH`, buildx's environment switches.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Reads `--secret` values (`id=NAME,src=FILE`, `id=NAME,env=VAR`, `id=NAME` from the variable
/// NAME): never logged, never stored.
pub fn read_secrets(values: &[String]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut secrets = BTreeMap::new();
    for value in values {
        let mut id = None;
        let mut source = None;
        let mut env = None;
        for field in value.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_owned()),
                Some(("src" | "source", v)) => source = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_owned()),
                Some(("type", "file" | "env")) => {}
                _ => {
                    return Err(input(
                        "--secret",
                        format!(
                            "invalid field {field:?}\n  = help: use id=NAME,src=FILE or id=NAME,env=VAR"
                        ),
                    ));
                }
            }
        }
        let id = id
            .or_else(|| env.clone())
            .ok_or_else(|| input("--secret", "needs id=NAME".to_owned()))?;
        let bytes = match (source, env) {
            (Some(path), _) => std::fs::read(&path).map_err(|e| {
                input(
                    "--secret",
                    format!("reading secret {id} from {}: {e}", path.display()),
                )
            })?,
            (None, Some(var)) => std::env::var(&var)
                .map_err(|_| {
                    input(
                        "--secret",
                        format!("secret {id}: environment variable {var} is not set"),
                    )
                })?
                .into_bytes(),
            (None, None) => std::env::var(&id)
                .map_err(|_| {
                    input(
                        "--secret",
                        format!("secret {id} has no src= and no variable {id} is set"),
                    )
                })?
                .into_bytes(),
        };
        secrets.insert(id, bytes);
    }
    Ok(secrets)
}

/// Reads `--ssh` values: agent sockets by id (`default` is `$SSH_AUTH_SOCK`'s; buildx's key
/// files are not supported).
pub fn read_ssh(values: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    use std::os::unix::fs::FileTypeExt;
    let mut agents = BTreeMap::new();
    for value in values {
        let (id, path) = match value.split_once('=') {
            Some((id, path)) => (id, PathBuf::from(path)),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(path) => (value.as_str(), PathBuf::from(path)),
                None => {
                    return Err(input(
                        "--ssh",
                        format!(
                            "{value}: SSH_AUTH_SOCK is not set\n  = help: start an agent (`eval $(ssh-agent)`) or pass --ssh {value}=SOCKET"
                        ),
                    ));
                }
            },
        };
        let is_socket = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket());
        if !is_socket {
            return Err(input(
                "--ssh",
                format!(
                    "{id}: {} is not an SSH agent socket\n  = help: pass the agent's socket ($SSH_AUTH_SOCK); key files are not supported, add them to an agent with ssh-add",
                    path.display()
                ),
            ));
        }
        let path = std::path::absolute(&path).map_err(|e| input("--ssh", e.to_string()))?;
        agents.insert(id.to_owned(), path);
    }
    Ok(agents)
}

/// The build's `SOURCE_DATE_EPOCH`: buildx documents it as a build argument; the environment
/// variable works too (the argument wins).
pub fn source_date_epoch(build_args: &BTreeMap<String, String>) -> Result<Option<i64>> {
    let Some(text) = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
    else {
        return Ok(None);
    };
    text.parse::<i64>().map(Some).map_err(|_| {
        input(
            "SOURCE_DATE_EPOCH",
            format!(
                "{text:?} is not a number of seconds since 1970\n  = help: pass e.g. --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)"
            ),
        )
    })
}

/// Whether buildx's default attestations (provenance `mode=min` on pushed images) apply:
/// `BUILDX_NO_DEFAULT_ATTESTATIONS` set to a true value (as Go's `strconv.ParseBool` reads
/// it) turns them off.
pub fn default_attestations() -> bool {
    !std::env::var("BUILDX_NO_DEFAULT_ATTESTATIONS")
        .ok()
        .and_then(|v| parse_go_bool(&v))
        .unwrap_or(false)
}

/// A boolean as Go's `strconv.ParseBool` reads it.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn input(what: &str, message: String) -> Error {
    Error::Input {
        what: what.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_reject_unknown_fields_and_read_files() {
        let error = read_secrets(&["id=a,bogus=1".into()]).unwrap_err().render();
        assert!(error.contains("invalid field \"bogus=1\""), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, b"hunter2").unwrap();
        let secrets = read_secrets(&[format!("id=tok,src={}", file.display())]).unwrap();
        assert_eq!(secrets["tok"], b"hunter2");
    }

    #[test]
    fn ssh_needs_a_socket() {
        let error = read_ssh(&["default=/nonexistent".into()])
            .unwrap_err()
            .render();
        assert!(error.contains("is not an SSH agent socket"), "{error}");
    }

    #[test]
    fn source_date_epoch_from_the_build_argument() {
        let mut args = BTreeMap::new();
        args.insert("SOURCE_DATE_EPOCH".to_owned(), "17".to_owned());
        assert_eq!(source_date_epoch(&args).unwrap(), Some(17));
        args.insert("SOURCE_DATE_EPOCH".to_owned(), "yesterday".to_owned());
        assert!(source_date_epoch(&args).is_err());
    }
}
