//! `stagecraft build`: docker-buildx-shaped flags over the build engine.

use super::progress::{ProgressMode, Renderer};
use super::runtime::{
    CacheLocation, ImportedCaches, NamespaceRunner, StoreOrRegistry, block_on, export_cache,
    open_store_leased, registry,
};
use super::{CommandError, CommandResult, parse_dockerfile};
use stagecraft_export::NamedImage;
use stagecraft_layer::Compression;
use stagecraft_plan::{Plan, PlanOptions, Platform};
use stagecraft_solve::remote_cache::CacheMode;
use stagecraft_solve::{BuildOptions, Engine, StageOutcome};
use stagecraft_store::ManifestFormat;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `stagecraft build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(default_value = ".")]
    context: PathBuf,
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Name and tag the result (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// The stage to build (default: the last).
    #[arg(long)]
    target: Option<String>,
    /// `NAME=VALUE` for an ARG; `NAME` alone takes the value from the environment.
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Like --build-arg, for a secret (a token, a password): RUN sees the variable, but the
    /// value never reaches the image config, its history, the cache records or the output
    /// (masked as `****`); expanding it in any other instruction is an error.
    #[arg(long = "secret-build-arg", value_name = "NAME[=VALUE]")]
    secret_build_args: Vec<String>,
    /// `KEY=VALUE` label added to the image.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Outputs, as buildx: `type=oci|docker|tar|local|registry,dest=…|name=…`, or a directory.
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Push the tagged image to its registry (`--output type=registry`).
    #[arg(long)]
    push: bool,
    /// Run every step, ignoring the cache.
    #[arg(long)]
    no_cache: bool,
    /// Ignore the cache for these stages.
    #[arg(long = "no-cache-filter")]
    no_cache_filter: Vec<String>,
    /// Look base images up in their registry even when the store has them.
    #[arg(long)]
    pull: bool,
    /// Registries to reach over plain HTTP (localhost and 127.0.0.0/8 always are).
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
    /// How to show progress.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Print the plan (stages, dependencies, what is skipped) and stop.
    #[arg(long)]
    dry_run: bool,
    /// Run the build checks only (BuildKit's `--check`): print the findings, build nothing;
    /// exit 1 when there are any.
    #[arg(long)]
    check: bool,
    /// Layer compression for outputs that carry compressed layers (`type=oci`, `type=registry`,
    /// `--push`, `--cache-to`): gzip (compatible), zstd (faster, smaller) or uncompressed.
    /// Layers are stored uncompressed and compressed once, when first exported.
    #[arg(long, default_value = "gzip", value_parser = super::compression_flag)]
    compression: Compression,
    /// Print a size report of the stages and the final image's layers (weighed compressed:
    /// layers are gzipped once for it, and a later push or OCI export reuses that).
    #[arg(long)]
    report: bool,
    /// After the build, list every step that ran and the input that made its cache miss
    /// (which file with its old and new digest, which variable, the instruction, the base).
    #[arg(long)]
    explain: bool,
    /// Key COPY/ADD steps on context files' modes without group and other write bits, so CI
    /// machines whose umasks differ (022, 002) share a remote cache. A hit reuses the layer as
    /// the machine that made it wrote it, modes included.
    #[arg(long)]
    cache_normalize_mode: bool,
    /// Secrets, SSH agents and caches. Boxed: they would make `BuildArgs` by far the largest
    /// variant of the command enum.
    #[command(flatten)]
    session: Box<SessionArgs>,
}

/// What a build takes from or gives to the world besides the context and the image.
#[derive(clap::Args)]
struct SessionArgs {
    /// A secret for `RUN --mount=type=secret`: `id=NAME,src=FILE` or `id=NAME,env=VAR`.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// An SSH agent for `RUN --mount=type=ssh`: `default` (the agent of $SSH_AUTH_SOCK),
    /// `ID=SOCKET`; repeatable.
    #[arg(long = "ssh")]
    ssh: Vec<String>,
    /// Export the build cache: `type=local,dest=DIR` or `type=registry,ref=REF`, with
    /// `mode=min` (the final image's layers, default) or `mode=max` (every stage); repeatable.
    #[arg(long = "cache-to")]
    cache_to: Vec<String>,
    /// Import a build cache: `type=local,src=DIR` or `type=registry,ref=REF` (or just `REF`);
    /// repeatable. Layers are downloaded only when a step hits them.
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
}

/// `key=value,…` fields of a buildx option; `what` names the flag in errors.
fn option_fields<'a>(
    text: &'a str,
    what: &str,
) -> Result<BTreeMap<&'a str, &'a str>, CommandError> {
    text.split(',')
        .map(|field| {
            field
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| {
                    CommandError(format!(
                        "error: invalid {what} field {field:?}: expected key=value"
                    ))
                })
        })
        .collect()
}

/// Parses `--cache-to` (`export`) or `--cache-from` the way buildx does: `type=local` takes
/// `dest=` to export and `src=` to import, `type=registry` takes `ref=`; a value without `=`
/// is a registry reference.
fn parse_cache_option(
    text: &str,
    export: bool,
) -> Result<(CacheLocation, CacheMode), CommandError> {
    let flag = if export { "--cache-to" } else { "--cache-from" };
    if !text.contains('=') {
        return Ok((CacheLocation::Registry(text.to_owned()), CacheMode::Min));
    }
    let fields = option_fields(text, flag)?;
    let mode = match fields.get("mode").copied() {
        None | Some("min") => CacheMode::Min,
        Some("max") => CacheMode::Max,
        Some(other) => {
            return Err(CommandError(format!(
                "error: {flag}: invalid mode {other:?}\n  = help: use mode=min or mode=max"
            )));
        }
    };
    let field = |name: &str| {
        fields
            .get(name)
            .copied()
            .ok_or_else(|| CommandError(format!("error: {flag} {text:?} needs {name}=…")))
    };
    let location = match fields.get("type").copied() {
        Some("local") => {
            CacheLocation::Local(PathBuf::from(field(if export { "dest" } else { "src" })?))
        }
        Some("registry") => CacheLocation::Registry(field("ref")?.to_owned()),
        Some(other) => {
            return Err(CommandError(format!(
                "error: {flag}: unsupported cache type {other:?}\n  = help: use type=local or type=registry"
            )));
        }
        None => return Err(CommandError(format!("error: {flag} {text:?} needs type=…"))),
    };
    Ok((location, mode))
}

/// Reads `--secret` values: never logged, never stored.
fn read_secrets(values: &[String]) -> Result<BTreeMap<String, Vec<u8>>, CommandError> {
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
                    return Err(CommandError(format!(
                        "error: invalid --secret field {field:?}\n  = help: use id=NAME,src=FILE or id=NAME,env=VAR"
                    )));
                }
            }
        }
        let id = id
            .or_else(|| env.clone())
            .ok_or_else(|| CommandError("error: --secret needs id=NAME".into()))?;
        let bytes = match (source, env) {
            (Some(path), _) => std::fs::read(&path).map_err(|e| {
                CommandError(format!(
                    "error: reading secret {id} from {}: {e}",
                    path.display()
                ))
            })?,
            (None, Some(var)) => std::env::var(&var)
                .map_err(|_| {
                    CommandError(format!(
                        "error: secret {id}: environment variable {var} is not set"
                    ))
                })?
                .into_bytes(),
            (None, None) => std::env::var(&id)
                .map_err(|_| {
                    CommandError(format!(
                        "error: secret {id} has no src= and no variable {id} is set"
                    ))
                })?
                .into_bytes(),
        };
        secrets.insert(id, bytes);
    }
    Ok(secrets)
}

/// Reads `--ssh` values: agent sockets by id (buildx's key files are not supported).
fn read_ssh(values: &[String]) -> Result<BTreeMap<String, PathBuf>, CommandError> {
    use std::os::unix::fs::FileTypeExt;
    let mut agents = BTreeMap::new();
    for value in values {
        let (id, path) = match value.split_once('=') {
            Some((id, path)) => (id, PathBuf::from(path)),
            None => match std::env::var_os("SSH_AUTH_SOCK") {
                Some(path) => (value.as_str(), PathBuf::from(path)),
                None => {
                    return Err(CommandError(format!(
                        "error: --ssh {value}: SSH_AUTH_SOCK is not set\n  = help: start an agent (`eval $(ssh-agent)`) or pass --ssh {value}=SOCKET"
                    )));
                }
            },
        };
        let is_socket = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_socket());
        if !is_socket {
            return Err(CommandError(format!(
                "error: --ssh {id}: {} is not an SSH agent socket\n  = help: pass the agent's socket ($SSH_AUTH_SOCK); key files are not supported, add them to an agent with ssh-add",
                path.display()
            )));
        }
        let path = std::path::absolute(&path)?;
        agents.insert(id.to_owned(), path);
    }
    Ok(agents)
}

/// One `--output`.
#[derive(Debug, PartialEq, Eq)]
enum Output {
    /// An OCI layout tar; its layers compressed (`compression=` or `--compression`).
    Oci(PathBuf, Option<Compression>),
    Docker(PathBuf),
    Tar(PathBuf),
    Local(PathBuf),
    /// A push; its layers compressed like `Oci`'s.
    Registry(String, Option<Compression>),
}

fn parse_output(text: &str) -> Result<Output, CommandError> {
    if !text.contains('=') {
        return Ok(Output::Local(PathBuf::from(text)));
    }
    let fields = option_fields(text, "--output")?;
    let dest = || -> Result<PathBuf, CommandError> {
        fields
            .get("dest")
            .map(PathBuf::from)
            .ok_or_else(|| CommandError(format!("error: --output {text:?} needs dest=PATH")))
    };
    let compression = match fields.get("compression") {
        Some(name) => Some(super::parse_compression(
            name,
            fields.get("compression-level").copied(),
        )?),
        None => None,
    };
    match fields.get("type").copied() {
        Some("oci") => Ok(Output::Oci(dest()?, compression)),
        Some("docker") => Ok(Output::Docker(dest()?)),
        Some("tar") => Ok(Output::Tar(dest()?)),
        Some("local") => Ok(Output::Local(dest()?)),
        Some("registry" | "image") => fields
            .get("name")
            .map(|n| Output::Registry((*n).to_owned(), compression))
            .ok_or_else(|| CommandError(format!("error: --output {text:?} needs name=REFERENCE"))),
        Some(other) => Err(CommandError(format!(
            "error: unknown output type {other:?}\n  = help: use oci, docker, tar, local or registry"
        ))),
        None => Err(CommandError(format!(
            "error: --output {text:?} needs type=…"
        ))),
    }
}

/// `NAME=VALUE` flags as a map; `NAME` alone takes the value from the environment (also used
/// by `lint --build-arg`).
pub(crate) fn build_arg_map(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .filter_map(|entry| match entry.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            None => std::env::var(entry).ok().map(|v| (entry.clone(), v)),
        })
        .collect()
}

/// On SIGINT or SIGTERM: remove this build's scratch directories and exit with 130. Running
/// `RUN` steps stop by themselves: their helpers cancel when this process goes away, and every
/// mount lives in their private namespaces.
fn stop_cleanly_on_signals(ingest: PathBuf) -> CommandResult {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| CommandError(format!("error: installing signal handlers: {e}")))?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("interrupted (signal {signal}): cleaning up");
            stagecraft_solve::remove_scratch_dirs(&ingest);
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Runs `stagecraft build`.
pub fn run(args: &BuildArgs) -> CommandResult {
    let dockerfile_path = args
        .file
        .clone()
        .unwrap_or_else(|| args.context.join("Dockerfile"));
    let file = parse_dockerfile(&dockerfile_path)?;
    let secret_args = build_arg_map(&args.secret_build_args);
    let mut build_args = build_arg_map(&args.build_args);
    build_args.extend(secret_args.clone());
    let plan_options = PlanOptions {
        target: args.target.clone(),
        build_args,
        platform: Some(Platform::host()),
    };
    if args.dry_run {
        let plan = Plan::new(&file, &plan_options).map_err(|e| CommandError(e.render()))?;
        print!("{}", plan.describe());
        return Ok(());
    }
    // BuildKit's build checks run with every build: findings are warnings, unless the
    // Dockerfile says `# check=error=true`; `--check` runs them alone.
    let findings: Vec<stagecraft_lint::Finding> = stagecraft_lint::lint(
        &file,
        &stagecraft_lint::LintOptions {
            context_dir: Some(args.context.clone()),
            target: args.target.clone(),
            build_args: plan_options.build_args.clone(),
            rules: stagecraft_lint::RuleSelection::BuildKit,
            ..Default::default()
        },
    )
    .into_iter()
    // `BuildError` findings are the build's own errors, which it reports itself.
    .filter(|f| {
        stagecraft_lint::find_rule(f.rule)
            .is_some_and(|rule| rule.origin == stagecraft_lint::Origin::BuildKit)
    })
    .collect();
    if !findings.is_empty() {
        eprint!(
            "{}",
            stagecraft_lint::render(stagecraft_lint::Format::Text, &findings)
        );
    }
    if args.check {
        return if findings.is_empty() {
            eprintln!("Check complete, no warnings found.");
            Ok(())
        } else {
            Err(CommandError(format!(
                "error: {} build check finding(s)",
                findings.len()
            )))
        };
    }
    if let Some(error) = findings
        .iter()
        .find(|f| f.severity == stagecraft_lint::Severity::Error)
    {
        return Err(CommandError(format!(
            "error: build check {} failed (the Dockerfile sets `# check=error=true`): {}",
            error.rule, error.message
        )));
    }
    if !args.context.is_dir() {
        return Err(CommandError(format!(
            "error: build context {} is not a directory",
            args.context.display()
        )));
    }
    let outputs: Vec<Output> = args
        .outputs
        .iter()
        .map(|o| parse_output(o))
        .collect::<Result<_, _>>()?;
    let cache_to: Vec<(CacheLocation, CacheMode)> = args
        .session
        .cache_to
        .iter()
        .map(|c| parse_cache_option(c, true))
        .collect::<Result<_, _>>()?;
    let cache_from: Vec<CacheLocation> = args
        .session
        .cache_from
        .iter()
        .map(|c| parse_cache_option(c, false).map(|(location, _)| location))
        .collect::<Result<_, _>>()?;
    let (store, _lease) = open_store_leased()?;
    stop_cleanly_on_signals(store.root().join("ingest"))?;
    let registry = registry(&args.insecure);
    let imported = ImportedCaches::import(&store, &registry, &cache_from);
    let base_images = StoreOrRegistry {
        store: &store,
        registry: &registry,
        always_pull: args.pull,
        pulled: Default::default(),
    };
    let runner = NamespaceRunner::new(&store);
    let renderer = Renderer::new(args.progress);
    let engine = Engine {
        store: &store,
        base_images: &base_images,
        runner: &runner,
        progress: &renderer,
        cache_blobs: Some(&imported),
    };
    let options = BuildOptions {
        plan: plan_options,
        context_dir: args.context.clone(),
        dockerfile_path: Some(dockerfile_path),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok()),
        manifest_format: ManifestFormat::Oci,
        labels: build_arg_map(&args.labels),
        secrets: read_secrets(&args.session.secrets)?,
        ssh: read_ssh(&args.session.ssh)?,
        secret_args: secret_args.into_keys().collect(),
        cache_normalize_mode: args.cache_normalize_mode,
    };
    let started = std::time::Instant::now();
    let outcome = engine.build(&file, &options);
    if args.explain {
        eprint!("{}", renderer.explanations());
    }
    let outcome = outcome.map_err(|e| CommandError(e.render()))?;
    // What each stage weighs, for `stagecraft size --stage` later: recorded by the build that
    // made the image (a cached rebuild of the same image writes nothing).
    if stagecraft_report::load_stage_sizes(&store, &outcome.image.manifest_digest)?.is_none() {
        stagecraft_report::save_stage_sizes(
            &store,
            &outcome.image.manifest_digest,
            &super::report::stage_sizes(&outcome.stages),
        )?;
    }
    let mut names = Vec::new();
    for tag in &args.tags {
        let reference = store
            .set_tag(tag, &outcome.image.manifest_digest)
            .map_err(|e| CommandError(format!("error: tagging {tag}: {e}")))?;
        names.push(reference.to_string());
    }
    let compression = args.compression;
    for output in &outputs {
        export(
            &store,
            &outcome.image,
            &names,
            output,
            compression,
            &registry,
        )?;
    }
    for (location, mode) in &cache_to {
        let records = export_cache(&store, &registry, &outcome, location, *mode, compression)?;
        eprintln!("exported cache to {location}: {records} records");
    }
    if args.push {
        for name in &names {
            export(
                &store,
                &outcome.image,
                &names,
                &Output::Registry(name.clone(), None),
                compression,
                &registry,
            )?;
        }
    }
    let built = outcome
        .stages
        .iter()
        .filter(|s| s.outcome == StageOutcome::Built)
        .count();
    let cached = outcome
        .stages
        .iter()
        .filter(|s| s.outcome == StageOutcome::Cached)
        .count();
    let skipped = outcome
        .stages
        .iter()
        .filter(|s| s.outcome == StageOutcome::Skipped)
        .count();
    let size: u64 = outcome.layers.iter().map(|l| l.size).sum();
    eprintln!(
        "built {} in {:.2}s: {} steps run, {} cached; stages: {built} built, {cached} cached, {skipped} skipped; {} layers, {}",
        outcome.image.manifest_digest.short(),
        started.elapsed().as_secs_f64(),
        outcome.steps_run,
        outcome.steps_cached,
        outcome.layers.len(),
        super::human_bytes(size),
    );
    if args.report {
        print!("{}", super::report::stage_table(&store, &outcome.stages)?);
    }
    println!("{}", outcome.image.manifest_digest);
    Ok(())
}

fn export(
    store: &stagecraft_store::Store,
    image: &stagecraft_store::Image,
    names: &[String],
    output: &Output,
    compression: Compression,
    registry: &stagecraft_registry::Registry,
) -> CommandResult {
    let create = |path: &PathBuf| {
        std::fs::File::create(path)
            .map(std::io::BufWriter::new)
            .map_err(|e| CommandError(format!("error: creating {}: {e}", path.display())))
    };
    let named = [NamedImage {
        image: image.clone(),
        names: names.to_vec(),
    }];
    match output {
        Output::Oci(path, own) => {
            let named = [NamedImage {
                image: store.compressed_image(image, own.unwrap_or(compression))?,
                names: names.to_vec(),
            }];
            stagecraft_export::write_archive(store, &named, false, create(path)?)?
        }
        Output::Docker(path) => {
            stagecraft_export::write_archive(store, &named, true, create(path)?)?
        }
        Output::Tar(path) => stagecraft_export::write_rootfs_tar(store, image, create(path)?)?,
        Output::Local(path) => stagecraft_export::unpack_rootfs(store, image, path)?,
        Output::Registry(name, own) => {
            let reference = stagecraft_registry::parse_reference(name)?;
            let image = store.compressed_image(image, own.unwrap_or(compression))?;
            let digest = block_on(stagecraft_registry::push(
                registry, store, &image, &reference,
            ))??;
            eprintln!("pushed {}@{digest}", reference.whole());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_like_buildx() {
        assert_eq!(
            parse_output("type=oci,dest=out.tar").unwrap(),
            Output::Oci("out.tar".into(), None)
        );
        assert_eq!(
            parse_output("type=oci,dest=o.tar,compression=zstd,compression-level=9").unwrap(),
            Output::Oci("o.tar".into(), Some(Compression::Zstd { level: 9 }))
        );
        let error = parse_output("type=oci,dest=o.tar,compression=gzip,compression-level=12");
        assert!(error.unwrap_err().0.contains("use 0 to 9"));
        assert_eq!(
            parse_output("type=docker,dest=a.tar").unwrap(),
            Output::Docker("a.tar".into())
        );
        assert_eq!(
            parse_output("type=tar, dest=fs.tar").unwrap(),
            Output::Tar("fs.tar".into())
        );
        assert_eq!(
            parse_output("./dir").unwrap(),
            Output::Local("./dir".into())
        );
        assert_eq!(
            parse_output("type=registry,name=localhost:5000/a:b").unwrap(),
            Output::Registry("localhost:5000/a:b".into(), None)
        );
        assert!(parse_output("type=oci").is_err());
        assert!(parse_output("type=zip,dest=x").is_err());
    }

    #[test]
    fn cache_options_parse_like_buildx() {
        assert_eq!(
            parse_cache_option("type=local,dest=/c,mode=max", true).unwrap(),
            (CacheLocation::Local("/c".into()), CacheMode::Max)
        );
        assert_eq!(
            parse_cache_option("type=local,src=/c", false).unwrap(),
            (CacheLocation::Local("/c".into()), CacheMode::Min)
        );
        assert_eq!(
            parse_cache_option("type=registry,ref=r:5000/c:main", true).unwrap(),
            (
                CacheLocation::Registry("r:5000/c:main".into()),
                CacheMode::Min
            )
        );
        assert_eq!(
            parse_cache_option("r:5000/c:main", false).unwrap().0,
            CacheLocation::Registry("r:5000/c:main".into())
        );
        for (bad, help) in [
            ("type=local,src=/c", "dest="),
            ("type=gha", "unsupported cache type"),
            ("type=registry,ref=r/c,mode=all", "mode=min or mode=max"),
        ] {
            let error = parse_cache_option(bad, true).unwrap_err().0;
            assert!(error.contains(help), "{bad}: {error}");
        }
    }

    #[test]
    fn build_args_from_flags_and_environment() {
        // SAFETY-free: the variable name is unique to this test.
        let map = build_arg_map(&[
            "A=1".into(),
            "B=x=y".into(),
            "STAGECRAFT_SURELY_UNSET_VAR".into(),
        ]);
        assert_eq!(map.get("A").map(String::as_str), Some("1"));
        assert_eq!(map.get("B").map(String::as_str), Some("x=y"));
        assert!(!map.contains_key("STAGECRAFT_SURELY_UNSET_VAR"));
    }
}
