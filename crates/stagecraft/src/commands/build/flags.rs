//! `stagecraft build`'s flag values: each parsed as buildx parses it, or refused with the reason.

use super::super::CommandError;
use super::super::progress::ProgressMode;
use stagecraft_plan::Platform;
use stagecraft_solve::{Entitlement, NamedContext};
use std::collections::BTreeMap;

/// What `--call` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum CallMethod {
    /// Build (the default).
    #[default]
    Build,
    /// The build checks alone.
    Check,
    /// What the target takes: arguments, secrets, SSH agents.
    Outline,
    /// The stages.
    Targets,
}

/// A `--call` value: the method and how to print its answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Call {
    pub(super) method: CallMethod,
    /// `format=json`: BuildKit's JSON instead of text.
    pub(super) json: bool,
    /// `ignorestatus=true`: findings do not make `check` fail.
    pub(super) ignore_status: bool,
}

/// Parses `--call` as buildx does: a method name and `key=value` fields.
pub(super) fn call_flag(value: &str) -> Result<Call, String> {
    let mut call = Call::default();
    let mut method = None;
    for field in value.split(',') {
        match field.split_once('=') {
            Some(("format", "json")) => call.json = true,
            Some(("format", "text" | "")) => call.json = false,
            Some(("format", other)) => {
                return Err(format!(
                    "invalid format {other:?}: use format=json or format=text"
                ));
            }
            Some(("ignorestatus", flag)) => {
                call.ignore_status = flag.parse().map_err(|_| {
                    format!("invalid ignorestatus value {flag:?}: use true or false")
                })?;
            }
            Some((key, _)) => {
                return Err(format!(
                    "invalid field {key:?}: the fields are format= and ignorestatus="
                ));
            }
            None if method.is_some() => return Err(format!("invalid value {value:?}: one method")),
            None => method = Some(field),
        }
    }
    call.method = match method.unwrap_or("build") {
        "build" => CallMethod::Build,
        // buildx calls the subrequest `lint` and accepts both names.
        "check" | "lint" => CallMethod::Check,
        "outline" => CallMethod::Outline,
        "targets" => CallMethod::Targets,
        other => {
            return Err(format!(
                "unsupported method {other:?}: stagecraft answers build, check, outline and targets"
            ));
        }
    };
    Ok(call)
}

/// `--network` values, as buildx takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum NetworkMode {
    /// The build's network sandbox.
    Default,
    /// No network: only `lo`.
    None,
    /// The host's network.
    Host,
}

/// One `--add-host` value: `HOST:IP` as docker writes it, or `HOST=IP` as buildx also takes
/// (an IPv6 address may hold colons: the host is before the first separator).
pub(super) fn host_entry_flag(value: &str) -> Result<stagecraft_exec::HostEntry, String> {
    let (host, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(|| format!("{value:?} is not HOST:IP"))?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{value:?}: the host name is empty or has spaces"));
    }
    if ip == "host-gateway" {
        return Err(format!(
            "{value:?}: host-gateway is docker's daemon address, and stagecraft has no daemon: pass the IP address the host has on the network RUN steps use (or --network=host, where the host is 127.0.0.1)"
        ));
    }
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{value:?}: {ip:?} is not an IP address"))?;
    Ok(stagecraft_exec::HostEntry {
        host: host.to_owned(),
        ip,
    })
}

/// One `--progress` value. buildx's `rawjson` is BuildKit's solve-status stream (vertexes,
/// statuses and logs of its LLB graph), which a stagecraft build has no equivalent of: it is
/// refused with the way to stagecraft's own JSON lines rather than with clap's bare list.
pub(super) fn progress_flag(value: &str) -> Result<ProgressMode, String> {
    if value.eq_ignore_ascii_case("rawjson") {
        return Err("rawjson is BuildKit's raw solve-status stream, which stagecraft has no LLB graph to produce; use --progress=json (one JSON event per line, with timestamps and a final event carrying the image ID, digests and counts)".to_owned());
    }
    <ProgressMode as clap::ValueEnum>::from_str(value, true).map_err(|_| {
        let valid: Vec<String> = <ProgressMode as clap::ValueEnum>::value_variants()
            .iter()
            .filter_map(clap::ValueEnum::to_possible_value)
            .flat_map(|value| {
                let mut names = vec![value.get_name().to_owned()];
                names.extend(value.get_name_and_aliases().skip(1).map(str::to_owned));
                names
            })
            .collect();
        format!(
            "{value:?} is not a progress mode (valid: {})",
            valid.join(", ")
        )
    })
}

/// One `--ulimit` value.
pub(super) fn ulimit_flag(
    value: &str,
) -> Result<stagecraft_exec::Ulimit, stagecraft_exec::UlimitError> {
    value.parse()
}

/// One `--build-context` value.
pub(super) fn build_context_flag(value: &str) -> Result<(String, NamedContext), String> {
    stagecraft_solve::parse_build_context(value).map_err(|e| e.to_string())
}

/// One `--allow` value.
pub(super) fn entitlement_flag(value: &str) -> Result<Entitlement, String> {
    // buildx's other entitlements, refused with the reason rather than only as unknown.
    if value == "device" || value.starts_with("device=") {
        return Err(format!(
            "{value:?}: devices (RUN --device, CDI) are not supported: RUN steps see only /dev/null, zero, random and the like, never a host device"
        ));
    }
    if value == "buildx.local.delete" {
        return Err(format!(
            "{value:?} is not supported: a type=local output writes into its directory and never deletes what is there\n  = help: empty the directory first (rm -rf DIR) for an exact copy of the result"
        ));
    }
    value.parse()
}

/// `NAME=VALUE` entries of `flag` (also `lint --build-arg`; `NAME` alone takes the value from the environment, and is left out
/// when the environment has none, as docker does). A name must be one word: `=foo`, an empty
/// entry or `A B=c` is an error, never quietly ignored.
pub(crate) fn build_arg_map(
    flag: &str,
    values: &[String],
) -> Result<BTreeMap<String, String>, CommandError> {
    let mut map = BTreeMap::new();
    for entry in values {
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (entry.as_str(), None),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(CommandError(format!(
                "error: {flag} {entry:?}: {}\n  = help: write {flag} NAME=VALUE, or {flag} NAME to take the value from the environment",
                if name.is_empty() {
                    "the name is empty"
                } else {
                    "a name cannot contain spaces"
                }
            )));
        }
        if let Some(value) = value.or_else(|| std::env::var(name).ok()) {
            map.insert(name.to_owned(), value);
        }
    }
    Ok(map)
}

/// Checks a `--builder` name (or `BUILDX_BUILDER`'s): stagecraft is the one builder, called
/// `default` (buildx's name for the builder of the current Docker context) or `stagecraft`.
pub(super) fn builder_name(source: &str, name: &str) -> Result<(), CommandError> {
    match name {
        "default" | "stagecraft" => Ok(()),
        other => Err(CommandError(format!(
            "error: {source} {other:?}: no such builder: stagecraft builds in this process, without BuildKit instances to choose from\n  = help: leave out {source}, or use {source} default (or stagecraft)"
        ))),
    }
}

/// One `--platform` value: `os/arch[/variant]`, normalized as containerd does.
pub(super) fn platform_flag(text: &str) -> Result<Platform, String> {
    Platform::parse(text.trim()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_entitlements_and_host_gateway_are_refused_with_the_reason() {
        assert!(entitlement_flag("device").unwrap_err().contains("devices"));
        assert!(
            entitlement_flag("buildx.local.delete")
                .unwrap_err()
                .contains("never deletes")
        );
        assert!(entitlement_flag("network.host").is_ok());
        let error = host_entry_flag("host.docker.internal:host-gateway").unwrap_err();
        assert!(
            error.contains("host-gateway is docker's daemon address"),
            "{error}"
        );
        assert!(host_entry_flag("db:10.0.0.2").is_ok());
    }

    #[test]
    fn builder_names() {
        assert!(builder_name("--builder", "default").is_ok());
        assert!(builder_name("--builder", "stagecraft").is_ok());
        let error = builder_name("--builder", "mybuilder").unwrap_err().0;
        assert!(
            error.contains("--builder \"mybuilder\": no such builder"),
            "{error}"
        );
    }

    #[test]
    fn build_args_from_flags_and_environment() {
        // SAFETY-free: the variable name is unique to this test.
        let map = build_arg_map(
            "--build-arg",
            &[
                "A=1".into(),
                "B=x=y".into(),
                "STAGECRAFT_SURELY_UNSET_VAR".into(),
            ],
        )
        .unwrap();
        assert_eq!(map.get("A").map(String::as_str), Some("1"));
        assert_eq!(map.get("B").map(String::as_str), Some("x=y"));
        assert!(!map.contains_key("STAGECRAFT_SURELY_UNSET_VAR"));
        for bad in ["=foo", "", "A B=c"] {
            let error = build_arg_map("--build-arg", &[bad.into()]).unwrap_err().0;
            assert!(error.contains("--build-arg NAME=VALUE"), "{bad}: {error}");
        }
    }
}
