//! Image config and history text as BuildKit writes them: paths, ports, environment entries,
//! `RUN`'s history line and heredoc commands.

use crate::state::MASK;
use stagecraft_image::History;
use stagecraft_plan::Scope;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// BuildKit's heredoc handling for `RUN`: a lone heredoc becomes the script itself; otherwise
/// the heredocs are appended to the command for the shell to read.
pub(crate) fn heredoc_command(
    args: &[String],
    heredocs: &[stagecraft_dockerfile::Heredoc],
    first: &stagecraft_dockerfile::Heredoc,
) -> Vec<String> {
    let Some(command) = args.first() else {
        return args.to_vec();
    };
    if heredocs.len() == 1
        && stagecraft_dockerfile::heredoc::parse_marker(command)
            .ok()
            .flatten()
            .is_some()
    {
        let data = if first.chomp {
            first.chomped_content()
        } else {
            first.content.clone()
        };
        return vec![data];
    }
    let mut script = command.clone();
    for heredoc in heredocs {
        script.push('\n');
        script.push_str(&heredoc.content);
        script.push_str(&heredoc.name);
    }
    vec![script]
}

/// BuildKit's `runCommandString`: `|N ARG=value … cmd`.
pub(crate) fn run_command_string(
    args: &[String],
    declared: &[(String, Option<String>)],
    scope: &Scope,
    secret_args: &BTreeSet<String>,
) -> String {
    use stagecraft_shell::EnvGetter;
    let mut env: Vec<String> = Vec::new();
    for (name, value) in declared {
        let value = if secret_args.contains(name) {
            MASK.to_owned()
        } else {
            scope
                .get(name)
                .map(str::to_owned)
                .or_else(|| value.clone())
                .unwrap_or_default()
        };
        let entry = format!("{name}={value}");
        match env
            .iter()
            .position(|e| e.split_once('=').map(|(k, _)| k) == Some(name.as_str()))
        {
            Some(i) => env[i] = entry,
            None => env.push(entry),
        }
    }
    let mut parts = Vec::new();
    if !env.is_empty() {
        parts.push(format!("|{}", env.len()));
        parts.extend(env);
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// Gives history entries without a time one, as BuildKit's image exporter does: an entry before
/// the first new layer gets that layer's time, a later one the time of the layer before it.
/// Returns the image's creation time: the last entry's.
pub(crate) fn fill_history_times(history: &mut [History]) -> Option<String> {
    // The first time after the first entry without one, else the last time there is.
    let mut created: Option<String> = None;
    let mut seen_untimed = false;
    for entry in history.iter() {
        match &entry.created {
            Some(time) => {
                created = Some(time.clone());
                if seen_untimed {
                    break;
                }
            }
            None => seen_untimed = true,
        }
    }
    let mut seen_untimed = false;
    for entry in history.iter_mut() {
        match &entry.created {
            Some(time) if seen_untimed => created = Some(time.clone()),
            Some(_) => {}
            None => {
                seen_untimed = true;
                entry.created = created.clone();
            }
        }
    }
    history.last().and_then(|entry| entry.created.clone())
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub(crate) fn go_quote_list(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| stagecraft_dockerfile::go_quote(a))
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// BuildKit's `addEnv`: replace in place or append.
pub(crate) fn add_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter()
        .position(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(i) => env[i] = entry,
        None => env.push(entry),
    }
}

/// `WORKDIR`: relative paths join the current directory; the result is clean and absolute.
pub(crate) fn normalize_workdir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", if current.is_empty() { "/" } else { current })
    };
    let clean: PathBuf = stagecraft_imagefs::clean_components(Path::new(&joined))
        .iter()
        .collect();
    format!("/{}", clean.display())
}

/// `COPY` destination: relative to the working directory, trailing `/` kept.
pub(crate) fn destination(workdir: &str, dest: &str) -> String {
    let trailing = dest.ends_with('/') || dest == "." || dest.is_empty() || dest.ends_with("/.");
    let mut normalized = normalize_workdir(workdir, dest);
    if trailing && !normalized.ends_with('/') {
        normalized.push('/');
    }
    normalized
}

/// Why an `EXPOSE` port spec is invalid (BuildKit's words).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PortError {
    /// `80/`: a slash and no protocol.
    #[error("invalid port: {0:?}: no protocol")]
    NoProtocol(String),
    /// The container port is not a number up to 65535.
    #[error("invalid containerPort: {0}")]
    ContainerPort(String),
    /// A range that ends before it starts.
    #[error("invalid port range: {0}")]
    Range(String),
}

/// `EXPOSE` port specs → `port/proto` entries (ranges expanded), as BuildKit parses them.
pub(crate) fn parse_port(raw: &str) -> Result<Vec<String>, PortError> {
    let (port_part, proto) = match raw.split_once('/') {
        Some((port, proto)) => (port, proto.to_lowercase()),
        None => (raw, "tcp".to_owned()),
    };
    if proto.is_empty() {
        return Err(PortError::NoProtocol(raw.to_owned()));
    }
    // `[ip:][hostPort:]containerPort`: only the container port counts.
    let container = port_part.rsplit(':').next().unwrap_or(port_part);
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|p| *p <= 65535)
            .ok_or_else(|| PortError::ContainerPort(container.to_owned()))
    };
    let (start, end) = match container.split_once('-') {
        Some((a, b)) if a != b => (number(a)?, number(b)?),
        Some((a, _)) => (number(a)?, number(a)?),
        None => (number(container)?, number(container)?),
    };
    if end < start {
        return Err(PortError::Range(container.to_owned()));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::dispatch::mask_secrets;

    #[test]
    fn workdir_and_destination_paths() {
        assert_eq!(normalize_workdir("", "app"), "/app");
        assert_eq!(normalize_workdir("/src", "../lib/./x"), "/lib/x");
        assert_eq!(normalize_workdir("/src", "/abs/"), "/abs");
        assert_eq!(destination("/app", "."), "/app/");
        assert_eq!(destination("/app", "bin/"), "/app/bin/");
        assert_eq!(destination("", "/out/file"), "/out/file");
    }

    #[test]
    fn ports_like_buildkit() {
        assert_eq!(parse_port("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_port("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(parse_port("127.0.0.1:8080:80").unwrap(), ["80/tcp"]);
        assert_eq!(
            parse_port("http").unwrap_err().to_string(),
            "invalid containerPort: http"
        );
        assert!(matches!(
            parse_port("70000"),
            Err(PortError::ContainerPort(_))
        ));
        assert!(matches!(parse_port("90-80"), Err(PortError::Range(_))));
        assert!(matches!(parse_port("80/"), Err(PortError::NoProtocol(_))));
    }

    #[test]
    fn history_times_are_filled_like_buildkit() {
        let entry = |created: Option<&str>| History {
            created: created.map(str::to_owned),
            ..History::default()
        };
        // base entry, ENV, layer at t2, LABEL, layer at t3, CMD
        let mut history = vec![
            entry(Some("t0")),
            entry(None),
            entry(Some("t2")),
            entry(None),
            entry(Some("t3")),
            entry(None),
        ];
        let created = fill_history_times(&mut history);
        let times: Vec<_> = history.iter().map(|h| h.created.as_deref()).collect();
        assert_eq!(
            times,
            [
                Some("t0"),
                Some("t2"),
                Some("t2"),
                Some("t2"),
                Some("t3"),
                Some("t3")
            ]
        );
        assert_eq!(created.as_deref(), Some("t3"));
        // Nothing but metadata on a base: the base's last time.
        let mut history = vec![entry(Some("t0")), entry(Some("t1")), entry(None)];
        assert_eq!(fill_history_times(&mut history).as_deref(), Some("t1"));
    }

    #[test]
    fn run_history_lists_build_args() {
        let mut scope = Scope::default();
        scope.set("V", "2");
        let declared = vec![
            ("V".to_owned(), Some("1".to_owned())),
            ("W".to_owned(), None),
        ];
        assert_eq!(
            run_command_string(
                &["/bin/sh".into(), "-c".into(), "make".into()],
                &declared,
                &scope,
                &BTreeSet::new()
            ),
            "|2 V=2 W= /bin/sh -c make"
        );
        assert_eq!(
            run_command_string(
                &["/bin/sh".into(), "-c".into(), "make".into()],
                &declared,
                &scope,
                &BTreeSet::from(["V".to_owned()])
            ),
            "|2 V=**** W= /bin/sh -c make"
        );
        assert_eq!(
            mask_secrets(
                "token=abc-secret, again abc-secret; abc",
                &["abc-secret".into(), "abc".into()]
            ),
            "token=****, again ****; ****"
        );
        assert_eq!(
            go_quote_list(&["a b".into(), "c\"".into()]),
            r#"["a b" "c\""]"#
        );
    }
}
