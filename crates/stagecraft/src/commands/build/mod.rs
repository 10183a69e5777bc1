//! `stagecraft build`: docker-buildx-shaped flags over the build engine. The flags become a
//! [`BuildRequest`] here; the session itself (secrets, epoch, outputs, attestations,
//! metadata) is `stagecraft_build`'s.

mod flags;
mod sources;

pub(crate) use flags::build_arg_map;
use flags::{
    Call, CallMethod, NetworkMode, build_context_flag, call_flag, entitlement_flag,
    host_entry_flag, platform_flag, progress_flag, ulimit_flag,
};
use sources::Sources;

use super::progress::{BuildSummary, ProgressMode, Renderer};
use super::runtime::{open_store_leased, registry};
use super::{CommandError, CommandResult};
use stagecraft_build::Annotation;
use stagecraft_build::{BuildRequest, BuildResult, CacheLocation, Exported, Output, Session};
use stagecraft_exec::Network;
use stagecraft_layer::Compression;
use stagecraft_plan::{Plan, PlanOptions, Platform};
use stagecraft_solve::{BuildOptions, Entitlement, NamedContext, StageOutcome};
use stagecraft_store::ManifestFormat;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `stagecraft build`.
#[derive(clap::Args)]
pub(crate) struct BuildArgs {
    /// The build context directory; `-` reads standard input, as `docker build -`: a tar
    /// archive (plain or compressed) is the context, anything else the Dockerfile (built with
    /// an empty context).
    #[arg(default_value = ".")]
    pub(super) context: PathBuf,
    /// The Dockerfile (default: CONTEXT/Dockerfile); `-` reads it from standard input. With a
    /// context archive on standard input, a path inside the archive.
    #[arg(short = 'f', long = "file")]
    pub(super) file: Option<PathBuf>,
    /// Name and tag the result (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// The stage to build (default: the last).
    #[arg(long)]
    target: Option<String>,
    /// The platforms to build for, comma-separated or repeated (`linux/amd64,linux/arm64`,
    /// `linux/arm/v7`): one image each, in one image index when there are several. RUN steps
    /// of a foreign platform run under emulation (binfmt_misc). Default: this machine's.
    #[arg(long = "platform", value_name = "PLATFORMS", value_delimiter = ',', value_parser = platform_flag)]
    platforms: Vec<Platform>,
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
    /// A named build context, as buildx: `NAME=DIR`, `NAME=docker-image://REF`,
    /// `NAME=oci-layout://PATH[:TAG|@DIGEST]`, or a git repository or http(s) URL. It replaces
    /// the stage called NAME, and `FROM NAME`, `COPY --from=NAME` and `RUN --mount=from=NAME`
    /// take it when no stage has that name (`--build-context alpine=docker-image://…`
    /// overrides `FROM alpine`); repeatable.
    #[arg(long = "build-context", value_name = "NAME=VALUE", value_parser = build_context_flag)]
    build_contexts: Vec<(String, NamedContext)>,
    /// Outputs, as buildx: `type=oci|docker|tar|local|registry,dest=…|name=…`, or a directory.
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// An annotation of the image outputs (`-o type=oci|docker|image|registry`, `--push`), as
    /// buildx: `KEY=VALUE` on the manifest, or `TYPE[,TYPE…]:KEY=VALUE` with the types
    /// `manifest`, `manifest-descriptor`, `index`, `index-descriptor`, each optionally for one
    /// platform (`manifest[linux/arm64]:KEY=VALUE`); repeatable.
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    annotations: Vec<String>,
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
    #[arg(long, value_parser = progress_flag, default_value = "auto",
          value_name = "auto|tty|plain|json|quiet")]
    progress: ProgressMode,
    /// An extra `/etc/hosts` entry for RUN steps: `HOST:IP` (or `HOST=IP`); repeatable.
    #[arg(long = "add-host", value_name = "HOST:IP", value_parser = host_entry_flag)]
    add_hosts: Vec<stagecraft_exec::HostEntry>,
    /// A resource limit for RUN steps, as docker's `--ulimit`: `NAME=SOFT[:HARD]`
    /// (`nofile=1024:2048`, `-1` unlimited); repeatable. Part of the steps' cache keys.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = ulimit_flag)]
    ulimits: Vec<stagecraft_exec::Ulimit>,
    /// The size of RUN steps' `/dev/shm` (`128m`, `1g`; default 64 MiB). Part of the steps'
    /// cache keys.
    #[arg(long, value_name = "SIZE", value_parser = super::images::size_flag)]
    shm_size: Option<u64>,
    /// Accepted for buildx scripts: the image is always in stagecraft's store, so there is
    /// nothing to load (a note says so).
    #[arg(long)]
    load: bool,
    /// Print nothing but the result (the image ID, or the pushed digest), as `docker build -q`.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Write the image ID (its config digest) to this file, as `docker build --iidfile`.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write buildx's build metadata (`containerimage.digest`, `containerimage.config.digest`,
    /// `containerimage.descriptor`, `image.name`) to this file as JSON.
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// An SPDX SBOM of each platform's image, cataloged natively (buildx's `--attest
    /// type=sbom`): `true`/`false`.
    #[arg(long, value_name = "true|false")]
    sbom: Option<String>,
    /// SLSA provenance of each platform's image: `mode=min|max` (and `builder-id=`,
    /// `reproducible=`, `filename=`), `true` (`mode=max`) or `false`. Default, as buildx:
    /// `mode=min` attached to pushed images only (`BUILDX_NO_DEFAULT_ATTESTATIONS=1` turns
    /// it off).
    #[arg(long, value_name = "mode=min|max|true|false")]
    provenance: Option<String>,
    /// Attestations as buildx takes them: `type=sbom[,disabled=true]`,
    /// `type=provenance[,mode=min|max,…]`; repeatable (`--provenance`/`--sbom` win).
    #[arg(long = "attest", value_name = "type=sbom|provenance,…")]
    attests: Vec<String>,
    /// Print the plan (stages, dependencies, what is skipped) and stop.
    #[arg(long)]
    dry_run: bool,
    /// Run the build checks only (BuildKit's `--check`, short for `--call=check`): print the
    /// findings, build nothing; exit 1 when there are any.
    #[arg(long, conflicts_with = "call")]
    check: bool,
    /// What to evaluate instead of building, as buildx's `--call`: `build` (the default),
    /// `check` (the build checks), `outline` (the build arguments with their values and
    /// descriptions, the secrets and SSH agents the target uses) or `targets` (the stages with
    /// their descriptions). `,format=json` prints BuildKit's JSON; `,ignorestatus=true` makes
    /// `check` exit 0 with findings.
    #[arg(long, value_name = "METHOD[,format=json]", value_parser = call_flag)]
    call: Option<Call>,
    /// Layer compression for outputs that carry compressed layers (`type=oci`, `type=registry`,
    /// `--push`, `--cache-to`): gzip (compatible), zstd (faster, smaller) or uncompressed.
    /// Layers are stored uncompressed and compressed once, when first exported.
    #[arg(long, default_value = "gzip", value_parser = super::compression_flag)]
    compression: Compression,
    /// Skip the checks of the built image (its ENTRYPOINT program, USER and shared libraries
    /// are there; no setuid or world-writable files added), whose findings are otherwise
    /// shown after the build; they never fail it.
    #[arg(long)]
    no_image_checks: bool,
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
    /// The network of RUN steps without a --network of their own: `default` (a private network
    /// namespace per build, with outbound access and DNS but not the host's interfaces or
    /// loopback services), `none`, or `host` (which grants `network.host`, as buildx does).
    #[arg(long, value_enum, default_value = "default")]
    network: NetworkMode,
    /// Grant a privilege the Dockerfile may ask for, as buildx: `security.insecure`
    /// (`RUN --security=insecure`: all capabilities, no seccomp filter) or `network.host`;
    /// repeatable, or comma-separated.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',', value_parser = entitlement_flag)]
    allow: Vec<Entitlement>,
    /// The builder instance, as buildx's `--builder` (or `BUILDX_BUILDER`): stagecraft is its
    /// own, daemonless builder, so `default` and `stagecraft` are accepted and any other name
    /// (a `docker buildx create` instance) is an error.
    #[arg(long, value_name = "NAME")]
    builder: Option<String>,
    /// Debug logging, as buildx's `-D`: the resolved request (platforms, outputs, caches,
    /// attestations, network, entitlements) and timings on standard error (also
    /// `BUILDX_DEBUG=1`).
    #[arg(short = 'D', long)]
    debug: bool,
    /// buildx's `--cgroup-parent`: refused, RUN steps are not placed in cgroups (see the
    /// message for why).
    #[arg(long, value_name = "CGROUP", hide = true)]
    cgroup_parent: Option<String>,
    /// buildx's `--resource` (`memory=`, `cpu-quota=`): refused, RUN steps are not placed in
    /// cgroups, which are what would enforce them.
    #[arg(long = "resource", value_name = "KEY=VALUE", hide = true)]
    resources: Vec<String>,
    /// buildx's `--policy` (Rego source policies): refused, stagecraft has no policy engine.
    #[arg(long = "policy", value_name = "filename=PATH,…", hide = true)]
    policies: Vec<String>,
    /// docker build's hidden legacy flags, taken as buildx takes them (see
    /// [`LegacyArgs`]). Boxed with the session flags' reason.
    #[command(flatten)]
    legacy: Box<LegacyArgs>,
    /// Secrets, SSH agents and caches. Boxed: they would make `BuildArgs` by far the largest
    /// variant of the command enum.
    #[command(flatten)]
    session: Box<SessionArgs>,
}

/// `docker build` flags that buildx keeps hidden for old scripts: the ones with nothing to
/// do here are accepted with a note saying so (buildx accepts them too, some with a
/// warning), the resource limits are refused as `--resource` is.
#[derive(clap::Args)]
struct LegacyArgs {
    /// `--rm[=BOOL]`: no intermediate containers to remove.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    rm: Option<bool>,
    /// `--force-rm[=BOOL]`: likewise.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    force_rm: Option<bool>,
    /// `--compress`: the context is read in place, never sent anywhere.
    #[arg(long, hide = true)]
    compress: bool,
    /// `--isolation`: deprecated with BuildKit.
    #[arg(long, hide = true)]
    isolation: Option<String>,
    /// `--security-opt`: deprecated with BuildKit (`RUN --security=insecure`).
    #[arg(long = "security-opt", hide = true)]
    security_opt: Vec<String>,
    /// `--squash`: removed with BuildKit.
    #[arg(long, hide = true)]
    squash: bool,
    /// The legacy resource limits (`-m`, `--memory-swap`, `-c`, `--cpu-period`,
    /// `--cpu-quota`, `--cpuset-cpus`, `--cpuset-mems`), as `--resource KEY=VALUE`.
    #[arg(short = 'm', long, hide = true)]
    memory: Option<String>,
    #[arg(long, hide = true)]
    memory_swap: Option<String>,
    #[arg(short = 'c', long, hide = true)]
    cpu_shares: Option<String>,
    #[arg(long, hide = true)]
    cpu_period: Option<String>,
    #[arg(long, hide = true)]
    cpu_quota: Option<String>,
    #[arg(long, hide = true)]
    cpuset_cpus: Option<String>,
    #[arg(long, hide = true)]
    cpuset_mems: Option<String>,
}

impl LegacyArgs {
    /// The legacy resource flags given, as `--resource` values (`memory=2g`).
    fn resources(&self) -> Vec<String> {
        [
            ("memory", &self.memory),
            ("memory-swap", &self.memory_swap),
            ("cpu-shares", &self.cpu_shares),
            ("cpu-period", &self.cpu_period),
            ("cpu-quota", &self.cpu_quota),
            ("cpuset-cpus", &self.cpuset_cpus),
            ("cpuset-mems", &self.cpuset_mems),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={v}")))
        .collect()
    }

    /// A note for each flag given that has nothing to do here.
    fn notes(&self) -> Vec<&'static str> {
        let mut notes = Vec::new();
        if self.rm.is_some() || self.force_rm.is_some() {
            notes.push("--rm/--force-rm: stagecraft makes no intermediate containers, there is nothing to remove");
        }
        if self.compress {
            notes.push("--compress: the context is read in place, never sent to a daemon");
        }
        if self.isolation.is_some() {
            notes.push("--isolation: deprecated with BuildKit, and has no effect (as in buildx)");
        }
        if !self.security_opt.is_empty() {
            notes.push("--security-opt: deprecated with BuildKit, and has no effect: use RUN --security=insecure with --allow security.insecure");
        }
        if self.squash {
            notes.push("--squash: removed with BuildKit, and has no effect: squash inside the build with a multi-stage Dockerfile");
        }
        notes
    }
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

/// Runs `stagecraft build`.
pub(crate) fn run(args: &BuildArgs) -> CommandResult {
    refuse_unsupported(args)?;
    let Sources {
        context,
        dockerfile_path,
        file,
        stdin: _stdin,
        store: opened,
    } = Sources::read(args)?;
    let secret_args = build_arg_map("--secret-build-arg", &args.secret_build_args)?;
    let mut build_args = build_arg_map("--build-arg", &args.build_args)?;
    build_args.extend(secret_args.clone());
    let mut platforms: Vec<Platform> = Vec::new();
    for platform in &args.platforms {
        if !platforms.contains(platform) {
            platforms.push(platform.clone());
        }
    }
    // The last value of a name wins, as in buildx's map.
    let named_contexts: BTreeMap<String, NamedContext> =
        args.build_contexts.iter().cloned().collect();
    let plan_options = PlanOptions {
        target: args.target.clone(),
        build_args,
        platform: Some(platforms.first().cloned().unwrap_or_else(Platform::host)),
        build_platform: Some(Platform::host()),
        named_contexts: named_contexts.keys().cloned().collect(),
    };
    let call = match (args.call, args.check) {
        (_, true) => Call {
            method: CallMethod::Check,
            ..Call::default()
        },
        (call, false) => call.unwrap_or_default(),
    };
    match call.method {
        CallMethod::Outline => {
            let plan = Plan::new(&file, &plan_options).map_err(|e| CommandError(e.render()))?;
            let outline = stagecraft_plan::subrequests::outline(&file, &plan, &plan_options);
            print_answer(&outline, call.json, stagecraft_view::render_outline)?;
            return Ok(());
        }
        CallMethod::Targets => {
            // Every stage is listed: which one is the target does not matter here.
            let options = PlanOptions {
                target: None,
                ..plan_options
            };
            let plan = Plan::new(&file, &options).map_err(|e| CommandError(e.render()))?;
            let targets = stagecraft_plan::subrequests::list_targets(&file, &plan);
            print_answer(&targets, call.json, stagecraft_view::render_targets)?;
            return Ok(());
        }
        CallMethod::Build | CallMethod::Check => {}
    }
    if args.dry_run {
        let plan = Plan::new(&file, &plan_options).map_err(|e| CommandError(e.render()))?;
        print!("{}", plan.describe());
        return Ok(());
    }
    // BuildKit's build checks run with every build: findings are warnings, unless the
    // Dockerfile says `# check=error=true`; `--check` runs them alone.
    let lint_options = stagecraft_lint::LintOptions {
        context_dir: Some(context.clone()),
        target: args.target.clone(),
        build_args: plan_options.build_args.clone(),
        build_contexts: plan_options.named_contexts.clone(),
        rules: stagecraft_lint::RuleSelection::BuildKit,
        ..Default::default()
    };
    let findings: Vec<stagecraft_lint::Finding> = stagecraft_lint::lint(&file, &lint_options)
        .into_iter()
        // `BuildError` findings are the build's own errors, which it reports itself.
        .filter(|f| {
            stagecraft_lint::find_rule(&f.rule)
                .is_some_and(|rule| rule.origin == stagecraft_lint::Origin::BuildKit)
        })
        .collect();
    if call.method == CallMethod::Check && call.json {
        print!(
            "{}",
            stagecraft_lint::render(stagecraft_lint::Format::Json, &findings)
        );
    } else if !findings.is_empty() {
        eprint!(
            "{}",
            stagecraft_lint::render(stagecraft_lint::Format::Text, &findings)
        );
    }
    if call.method == CallMethod::Check {
        return if findings.is_empty() || call.ignore_status {
            if findings.is_empty() && !call.json {
                eprintln!("Check complete, no warnings found.");
            }
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
    let outputs: Vec<Output> = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<_, _>>()?;
    let mut annotations = Vec::new();
    for text in &args.annotations {
        annotations.extend(Annotation::parse_flag(text)?);
    }
    if !annotations.is_empty() && !args.push && outputs.iter().all(|o| o.image_keys().is_none()) {
        return Err(CommandError(
            "error: --annotation: no output carries an image manifest to annotate\n  = help: add -o type=oci|docker|image|registry,… or --push (the store's own image, -t, is not annotated, as buildx leaves its default output alone)".to_owned(),
        ));
    }
    let streams_to_stdout = outputs.iter().any(Output::to_stdout);
    if streams_to_stdout && (args.report || outputs.len() > 1) {
        return Err(CommandError(
            "error: an output on standard output (-o -, dest=-) must be the only output, without --report".to_owned(),
        ));
    }
    let cache_to = args
        .session
        .cache_to
        .iter()
        .map(|c| CacheLocation::parse(c, true))
        .collect::<Result<_, _>>()?;
    let cache_from = args
        .session
        .cache_from
        .iter()
        .map(|c| CacheLocation::parse(c, false).map(|(location, _)| location))
        .collect::<Result<_, _>>()?;
    let source_date_epoch = stagecraft_build::source_date_epoch(&plan_options.build_args)
        .map_err(|e| CommandError(e.render()))?;
    let attest = stagecraft_build::AttestOptions::parse(
        &args.attests,
        args.provenance.as_deref(),
        args.sbom.as_deref(),
        stagecraft_build::default_attestations(),
    )?;
    let (store, _lease) = match opened {
        Some(opened) => opened,
        None => open_store_leased()?,
    };
    let registry = registry(&args.insecure);
    let renderer = Renderer::new(if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    });
    let request = BuildRequest {
        dockerfile: &file,
        options: BuildOptions {
            plan: plan_options,
            context_dir: context,
            dockerfile_path,
            no_cache: args.no_cache,
            no_cache_filter: args.no_cache_filter.clone(),
            source_date_epoch,
            manifest_format: ManifestFormat::Oci,
            labels: build_arg_map("--label", &args.labels)?,
            secrets: stagecraft_build::read_secrets(&args.session.secrets)
                .map_err(|e| CommandError(e.render()))?,
            ssh: stagecraft_build::read_ssh(&args.session.ssh)
                .map_err(|e| CommandError(e.render()))?,
            secret_args: secret_args.into_keys().collect(),
            cache_normalize_mode: args.cache_normalize_mode,
            extra_hosts: args.add_hosts.clone(),
            ulimits: args.ulimits.clone(),
            shm_size: args.shm_size,
            network: match args.network {
                NetworkMode::Default => Network::Sandbox,
                NetworkMode::None => Network::None,
                NetworkMode::Host => Network::Host,
            },
            entitlements: args
                .allow
                .iter()
                .copied()
                // buildx's `--network=host` asks for the entitlement itself: the flag is the
                // grant.
                .chain((args.network == NetworkMode::Host).then_some(Entitlement::NetworkHost))
                .collect(),
            named_contexts,
        },
        platforms,
        tags: args.tags.clone(),
        outputs,
        push: args.push,
        cache_from,
        cache_to,
        compression: args.compression,
        always_pull: args.pull,
        attest,
        annotations,
    };
    let debug = args.debug
        || std::env::var("BUILDX_DEBUG")
            .ok()
            .and_then(|v| stagecraft_build::parse_go_bool(&v))
            .unwrap_or(false);
    if debug {
        debug_request(&renderer, &request, &store);
    }
    for note in args.legacy.notes() {
        renderer.info(note.to_owned());
    }
    if args.load {
        renderer.info(
            "--load: the image is in stagecraft's store already (stagecraft images, save, push)"
                .to_owned(),
        );
    }
    let started = std::time::Instant::now();
    let session = Session {
        store: &store,
        registry: &registry,
    };
    let result = session.build(&request, &renderer);
    if debug {
        renderer.info(format!(
            "debug: session finished in {:.3}s: {}",
            started.elapsed().as_secs_f64(),
            match &result {
                Ok(result) => format!("image {}", result.image_id()),
                Err(error) => format!("{error:?}"),
            }
        ));
    }
    if args.explain {
        eprint!("{}", renderer.explanations());
    }
    let result = result.map_err(|e| CommandError(e.render()))?;
    if !args.no_image_checks {
        super::image_checks::show_after_build(&renderer, &file, &lint_options, &result.outcomes);
    }
    // What each stage weighs, for `stagecraft size --stage` later: recorded by the build that
    // made the image (a cached rebuild of the same image writes nothing).
    for outcome in &result.outcomes {
        if stagecraft_report::load_stage_sizes(&store, &outcome.image.manifest_digest)?.is_none() {
            stagecraft_report::save_stage_sizes(
                &store,
                &outcome.image.manifest_digest,
                &super::report::stage_sizes(&outcome.stages),
            )?;
        }
    }
    for (location, records) in &result.cache_exports {
        renderer.info(format!("exported cache to {location}: {records} records"));
    }
    for (name, digest) in result.pushed() {
        renderer.info(format!("pushed {name}@{digest}"));
    }
    renderer.finish(&summary(&result, started.elapsed()));
    if let Some(path) = &args.iidfile {
        std::fs::write(path, result.image_id().to_string()).map_err(|e| {
            CommandError(format!("error: writing --iidfile {}: {e}", path.display()))
        })?;
    }
    if let Some(path) = &args.metadata_file {
        let metadata = result.metadata();
        let bytes = serde_json::to_vec_pretty(&metadata)?;
        std::fs::write(path, bytes).map_err(|e| {
            CommandError(format!(
                "error: writing --metadata-file {}: {e}",
                path.display()
            ))
        })?;
    }
    if args.report {
        for outcome in &result.outcomes {
            if result.outcomes.len() > 1 {
                println!("{}:", outcome.platform);
            }
            print!("{}", super::report::stage_table(&store, &outcome.stages)?);
        }
    }
    // What scripts read, as `docker build -q` and buildx print it: the pushed manifest's
    // digest after a push, the image ID otherwise; nothing when an output streams there.
    if !streams_to_stdout {
        match result.pushed().next() {
            Some((_, digest)) => println!("{digest}"),
            None => println!("{}", result.image_id()),
        }
    }
    Ok(())
}

/// `-D/--debug`: what the flags resolved to, as buildx's debug log shows its request.
fn debug_request(renderer: &Renderer, request: &BuildRequest<'_>, store: &stagecraft_store::Store) {
    let options = &request.options;
    let lines = [
        format!("store {}", store.root().display()),
        format!("context {}", options.context_dir.display()),
        format!(
            "target {:?}, platforms {:?}",
            options.plan.target,
            request
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
        format!(
            "build args {:?}",
            options.plan.build_args.keys().collect::<Vec<_>>()
        ),
        format!("outputs {:?}, push {}", request.outputs, request.push),
        format!(
            "cache from {:?}, to {:?}",
            request.cache_from, request.cache_to
        ),
        format!("attestations {:?}", request.attest),
        format!(
            "network {:?}, entitlements {:?}, named contexts {:?}",
            options.network,
            options.entitlements,
            options.named_contexts.keys().collect::<Vec<_>>()
        ),
    ];
    for line in lines {
        renderer.info(format!("debug: {line}"));
    }
}

/// buildx flags a daemonless builder has no meaning for, or that stagecraft cannot honour
/// here: each an error naming the flag and why, before anything is read.
fn refuse_unsupported(args: &BuildArgs) -> CommandResult {
    let env_builder = std::env::var("BUILDX_BUILDER")
        .ok()
        .filter(|b| !b.is_empty());
    if let Some((source, name)) = args
        .builder
        .as_deref()
        .map(|name| ("--builder", name.to_owned()))
        .or(env_builder.map(|name| ("BUILDX_BUILDER", name)))
    {
        flags::builder_name(source, &name)?;
    }
    if let Some(parent) = &args.cgroup_parent {
        return Err(CommandError(format!(
            "error: --cgroup-parent {parent:?} is not supported: stagecraft runs RUN steps in its own namespaces, without a container runtime or cgroups of their own, so there is no cgroup to place under a parent\n  = help: run stagecraft itself in the cgroup (systemd-run --scope -p Slice=…, or write its PID to the cgroup's cgroup.procs): RUN steps are its children and stay in it"
        )));
    }
    let legacy = args.legacy.resources();
    if let Some(resource) = args.resources.first().or(legacy.first()) {
        // The legacy flags (`-m 2g`) are buildx's `--resource` keys: say which was typed.
        let typed = if args.resources.is_empty() {
            let key = resource.split('=').next().unwrap_or_default();
            format!("--{key} (buildx's --resource {resource:?})")
        } else {
            format!("--resource {resource:?}")
        };
        return Err(CommandError(format!(
            "error: {typed} is not supported: limits such as memory= and cpu-quota= are enforced by cgroups, and stagecraft's RUN steps get none of their own\n  = help: limit stagecraft itself (systemd-run -p MemoryMax=2G -p CPUQuota=50% stagecraft build …): RUN steps are its children; --ulimit sets per-process limits"
        )));
    }
    if let Some(policy) = args.policies.first() {
        return Err(CommandError(format!(
            "error: --policy {policy:?} is not supported: stagecraft has no source-policy engine to evaluate buildx's policy files\n  = help: pin sources instead: FROM image@sha256:…, ADD --checksum=sha256:…"
        )));
    }
    Ok(())
}

/// Prints a `--call` answer: BuildKit's JSON (Go's indented encoding), or the text buildx
/// prints.
fn print_answer<T: serde::Serialize>(
    answer: &T,
    json: bool,
    text: fn(&T) -> String,
) -> CommandResult {
    if json {
        let bytes = stagecraft_image::to_go_json_indented(answer)?;
        println!("{}", String::from_utf8_lossy(&bytes));
    } else {
        print!("{}", text(answer));
    }
    Ok(())
}

/// The counts and names the end of a build reports.
fn summary(result: &BuildResult, elapsed: std::time::Duration) -> BuildSummary {
    // A multi-platform build reports every platform's graph together.
    let outcomes = &result.outcomes;
    let count = |which: StageOutcome| {
        outcomes
            .iter()
            .flat_map(|o| &o.stages)
            .filter(|s| s.outcome == which)
            .count()
    };
    let sum = |field: fn(&stagecraft_solve::BuildOutcome) -> usize| -> usize {
        outcomes.iter().map(field).sum()
    };
    BuildSummary {
        image_id: result.image_id().to_string(),
        digest: result.digest(),
        tags: result.names.clone(),
        outputs: result
            .exports
            .iter()
            .map(|e| match e {
                Exported::Files => "files".to_owned(),
                Exported::Named { names } => names.join(","),
                Exported::Layout { digest, .. } => format!("oci-layout {digest}"),
                Exported::Pushed { name, digest, .. } => format!("{name}@{digest}"),
            })
            .collect(),
        seconds: elapsed.as_secs_f64(),
        steps_run: sum(|o| o.steps_run),
        steps_cached: sum(|o| o.steps_cached),
        stages_built: count(StageOutcome::Built),
        stages_cached: count(StageOutcome::Cached),
        stages_skipped: count(StageOutcome::Skipped),
        layers: sum(|o| o.layers.len()),
        size: outcomes
            .iter()
            .flat_map(|o| &o.layers)
            .map(|l| l.size)
            .sum(),
    }
}
