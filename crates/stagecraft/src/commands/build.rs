//! `stagecraft build`: docker-buildx-shaped flags over the build engine.

use super::progress::{ProgressMode, Renderer};
use super::runtime::{NamespaceRunner, StoreOrRegistry, block_on, open_store, registry};
use super::{CommandError, CommandResult, parse_dockerfile};
use stagecraft_export::NamedImage;
use stagecraft_layer::Compression;
use stagecraft_plan::{Plan, PlanOptions, Platform};
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
    /// Layer compression: gzip (compatible) or zstd (faster, smaller).
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd"])]
    compression: String,
    /// Print a size report of the stages and the final image's layers.
    #[arg(long)]
    report: bool,
    /// A secret for `RUN --mount=type=secret`: `id=NAME,src=FILE` or `id=NAME,env=VAR`.
    #[arg(long = "secret")]
    secrets: Vec<String>,
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

/// One `--output`.
#[derive(Debug, PartialEq, Eq)]
enum Output {
    Oci(PathBuf),
    Docker(PathBuf),
    Tar(PathBuf),
    Local(PathBuf),
    Registry(String),
}

fn parse_output(text: &str) -> Result<Output, CommandError> {
    if !text.contains('=') {
        return Ok(Output::Local(PathBuf::from(text)));
    }
    let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
    for field in text.split(',') {
        let (key, value) = field.split_once('=').ok_or_else(|| {
            CommandError(format!(
                "error: invalid --output field {field:?}: expected key=value"
            ))
        })?;
        fields.insert(key.trim(), value.trim());
    }
    let dest = || -> Result<PathBuf, CommandError> {
        fields
            .get("dest")
            .map(PathBuf::from)
            .ok_or_else(|| CommandError(format!("error: --output {text:?} needs dest=PATH")))
    };
    match fields.get("type").copied() {
        Some("oci") => Ok(Output::Oci(dest()?)),
        Some("docker") => Ok(Output::Docker(dest()?)),
        Some("tar") => Ok(Output::Tar(dest()?)),
        Some("local") => Ok(Output::Local(dest()?)),
        Some("registry" | "image") => fields
            .get("name")
            .map(|n| Output::Registry((*n).to_owned()))
            .ok_or_else(|| CommandError(format!("error: --output {text:?} needs name=REFERENCE"))),
        Some(other) => Err(CommandError(format!(
            "error: unknown output type {other:?}\n  = help: use oci, docker, tar, local or registry"
        ))),
        None => Err(CommandError(format!(
            "error: --output {text:?} needs type=…"
        ))),
    }
}

fn build_arg_map(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .filter_map(|entry| match entry.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), v.to_owned())),
            None => std::env::var(entry).ok().map(|v| (entry.clone(), v)),
        })
        .collect()
}

/// Runs `stagecraft build`.
pub fn run(args: &BuildArgs) -> CommandResult {
    let dockerfile_path = args
        .file
        .clone()
        .unwrap_or_else(|| args.context.join("Dockerfile"));
    let file = parse_dockerfile(&dockerfile_path)?;
    let plan_options = PlanOptions {
        target: args.target.clone(),
        build_args: build_arg_map(&args.build_args),
        platform: Some(Platform::host()),
    };
    if args.dry_run {
        let plan = Plan::new(&file, &plan_options).map_err(|e| CommandError(e.render()))?;
        print!("{}", plan.describe());
        return Ok(());
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
    let store = open_store()?;
    let registry = registry(&args.insecure);
    let base_images = StoreOrRegistry {
        store: &store,
        registry: &registry,
        always_pull: args.pull,
        pulled: Default::default(),
    };
    let runner = NamespaceRunner::new();
    let renderer = Renderer::new(args.progress);
    let engine = Engine {
        store: &store,
        base_images: &base_images,
        runner: &runner,
        progress: &renderer,
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
        compression: Some(if args.compression == "zstd" {
            Compression::zstd()
        } else {
            Compression::gzip()
        }),
        manifest_format: ManifestFormat::Oci,
        labels: build_arg_map(&args.labels),
        secrets: read_secrets(&args.secrets)?,
    };
    let started = std::time::Instant::now();
    let outcome = engine
        .build(&file, &options)
        .map_err(|e| CommandError(e.render()))?;
    let mut names = Vec::new();
    for tag in &args.tags {
        let reference = store
            .set_tag(tag, &outcome.image.manifest_digest)
            .map_err(|e| CommandError(format!("error: tagging {tag}: {e}")))?;
        names.push(reference.to_string());
    }
    for output in &outputs {
        export(&store, &outcome.image, &names, output, &registry)?;
    }
    if args.push {
        for name in &names {
            export(
                &store,
                &outcome.image,
                &names,
                &Output::Registry(name.clone()),
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
        print!("{}", super::report::stage_table(&outcome.stages));
    }
    println!("{}", outcome.image.manifest_digest);
    Ok(())
}

fn export(
    store: &stagecraft_store::Store,
    image: &stagecraft_store::Image,
    names: &[String],
    output: &Output,
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
        Output::Oci(path) => stagecraft_export::write_archive(store, &named, false, create(path)?)?,
        Output::Docker(path) => {
            stagecraft_export::write_archive(store, &named, true, create(path)?)?
        }
        Output::Tar(path) => stagecraft_export::write_rootfs_tar(store, image, create(path)?)?,
        Output::Local(path) => stagecraft_export::unpack_rootfs(store, image, path)?,
        Output::Registry(name) => {
            let reference = stagecraft_registry::parse_reference(name)?;
            block_on(stagecraft_registry::push(
                registry, store, image, &reference,
            ))??;
            eprintln!("pushed {}", reference.whole());
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
            Output::Oci("out.tar".into())
        );
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
            Output::Registry("localhost:5000/a:b".into())
        );
        assert!(parse_output("type=oci").is_err());
        assert!(parse_output("type=zip,dest=x").is_err());
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
