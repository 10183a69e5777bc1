//! `stagecraft lint`: BuildKit's build checks and the multi-stage best practices.

use super::{CommandError, CommandResult, read_dockerfile};
use stagecraft_lint::{ErrorOn, Format, LintOptions, RULES};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `stagecraft lint`.
#[derive(clap::Args)]
pub(crate) struct LintArgs {
    /// The Dockerfile to check (`-` for standard input; default: `Dockerfile`).
    #[arg(value_name = "DOCKERFILE", conflicts_with = "file")]
    path: Option<PathBuf>,
    /// The Dockerfile to check, as `build -f` names it.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// `NAME=VALUE` for an ARG, as the build would get it (`NAME` alone takes the value from
    /// the environment); repeatable.
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    build_args: Vec<String>,
    /// `NAME=SOURCE`: a named build context; `FROM NAME` and `COPY --from=NAME` then use it
    /// rather than an image or an undefined stage; repeatable.
    #[arg(long = "build-context", value_name = "NAME=SOURCE", value_parser = context_name)]
    build_contexts: Vec<String>,
    /// The build context, for the rules that look at files (default: the Dockerfile's directory).
    #[arg(long)]
    context: Option<PathBuf>,
    /// The stage that will be built (default: the last).
    #[arg(long)]
    target: Option<String>,
    /// `text`, `json` or `sarif`.
    #[arg(long, default_value = "text")]
    format: Format,
    /// Exit with status 1 when a finding reaches this severity: `warning` or `error`.
    #[arg(long = "error-on", default_value = "error")]
    error_on: ErrorOn,
    /// List every rule (id, severity, origin, whether it is on by default, what it wants)
    /// and exit.
    #[arg(long = "list-rules", exclusive = true)]
    list_rules: bool,
    /// Print a rule's documentation page and exit.
    #[arg(long, value_name = "RULE", exclusive = true)]
    explain: Option<String>,
    /// Check RUN scripts with ShellCheck: `auto` (the `shellcheck` on PATH; an info finding
    /// when there is none), `off`, or the path of the program.
    #[arg(long, value_name = "auto|off|PATH", default_value = "auto")]
    shellcheck: stagecraft_lint::ShellCheck,
    /// Check an image of the store instead of a Dockerfile: the ENTRYPOINT/CMD program, the
    /// USER, the shared libraries of its programs, setuid and world-writable files (the image
    /// checks every build runs).
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["path", "file", "context", "target", "build_args", "build_contexts", "shellcheck"])]
    image: Option<String>,
}

/// Runs `stagecraft lint`; returns the exit status.
pub(crate) fn run(args: &LintArgs) -> Result<u8, CommandError> {
    if args.list_rules {
        print!("{}", rule_list());
        return Ok(0);
    }
    if let Some(id) = &args.explain {
        print!("{}", explain(id)?);
        return Ok(0);
    }
    if let Some(reference) = &args.image {
        let (store, _lease) = super::runtime::open_store_leased()?;
        let findings = super::image_checks::stored(&store, reference)?;
        print!("{}", stagecraft_lint::render(args.format, &findings));
        return Ok(stagecraft_lint::exit_code(&findings, args.error_on));
    }
    let file = args
        .path
        .as_ref()
        .or(args.file.as_ref())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("Dockerfile"));
    let (name, bytes) = read_dockerfile(&file)?;
    let context = args.context.clone().or_else(|| {
        if file.as_os_str() == "-" {
            return None;
        }
        let parent = file.parent()?;
        Some(if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_owned()
        })
    });
    let options = LintOptions {
        context_dir: context,
        target: args.target.clone(),
        build_args: super::build::build_arg_map("--build-arg", &args.build_args)?,
        build_contexts: args.build_contexts.iter().cloned().collect(),
        shellcheck: args.shellcheck.clone(),
        ..LintOptions::default()
    };
    let source = stagecraft_dockerfile::SourceFile::from_bytes(name, &bytes);
    let findings = match stagecraft_dockerfile::parse(source.clone()) {
        Ok(file) => {
            let mut options = options;
            options.image_env = stored_image_env(&stagecraft_lint::base_images(&file, &options));
            stagecraft_lint::lint(&file, &options)
        }
        // The linter turns the parse error into its finding.
        Err(_) => stagecraft_lint::lint_source(source, &options),
    };
    print!("{}", stagecraft_lint::render(args.format, &findings));
    Ok(stagecraft_lint::exit_code(&findings, args.error_on))
}

/// `--list-rules`: one line per rule, in a table.
fn rule_list() -> String {
    let width = RULES.iter().map(|r| r.id.len()).max().unwrap_or(0);
    let mut out = format!(
        "{:<width$}  {:<8}  {:<13}  {:<7}  SUMMARY\n",
        "RULE", "SEVERITY", "ORIGIN", "DEFAULT"
    );
    for rule in RULES {
        // Experimental rules run only when `# check=experimental=…` asks for them.
        let default = if rule.experimental { "off" } else { "on" };
        out.push_str(&format!(
            "{:<width$}  {:<8}  {:<13}  {:<7}  {}\n",
            rule.id,
            rule.severity.as_str(),
            rule.origin.as_str(),
            default,
            rule.summary
        ));
    }
    out
}

/// `--explain RULE`: the rule's page (ids match case-insensitively, as people type them).
fn explain(id: &str) -> Result<&'static str, CommandError> {
    if let Some(rule) = RULES.iter().find(|r| r.id.eq_ignore_ascii_case(id)) {
        return Ok(rule.docs);
    }
    let ids: Vec<String> = RULES.iter().map(|r| r.id.to_owned()).collect();
    let hint = match stagecraft_dockerfile::suggest::closest(id, &ids) {
        Some(close) => format!("did you mean {close}?"),
        None => "`stagecraft lint --list-rules` lists them".to_owned(),
    };
    Err(CommandError(format!(
        "error: no lint rule is called {id:?}\n  = help: {hint}"
    )))
}

/// The name of a `--build-context NAME=SOURCE` value, normalized as buildx does
/// (`alpine:latest` is `alpine`).
fn context_name(value: &str) -> Result<String, String> {
    match value.split_once('=') {
        Some((name, source)) if !name.is_empty() && !source.is_empty() => {
            stagecraft_plan::context_name(name)
                .map_err(|e| format!("invalid context name {name:?}: {e}"))
        }
        _ => Err(format!(
            "{value:?} is not NAME=SOURCE (e.g. `--build-context assets=./web/dist`)"
        )),
    }
}

/// The environments of the base images the local store already holds, so that the checks
/// know which variables an image sets instead of guessing. Lint never pulls, and never creates
/// a store: without one (or with one this process may not open) nothing is known.
fn stored_image_env(images: &[String]) -> BTreeMap<String, Vec<(String, String)>> {
    let Ok(root) = stagecraft_store::default_root() else {
        return BTreeMap::new();
    };
    if !root.join("layout.json").is_file() || images.is_empty() {
        return BTreeMap::new();
    }
    let Ok(store) = stagecraft_store::Store::open(root) else {
        return BTreeMap::new();
    };
    images
        .iter()
        .filter_map(|reference| {
            let image = store.image(reference).ok()?;
            let env = image
                .config
                .config
                .env
                .iter()
                .map(|entry| {
                    let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
                    (key.to_owned(), value.to_owned())
                })
                .collect();
            Some((reference.clone(), env))
        })
        .collect()
}

/// Adapts the exit status to the other commands' result type.
pub(crate) fn run_command(args: &LintArgs) -> CommandResult {
    match run(args)? {
        0 => Ok(()),
        _ => Err(CommandError(String::new())),
    }
}
