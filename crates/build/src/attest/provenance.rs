//! SLSA provenance v1 (`https://slsa.dev/provenance/v1`) of a platform's image, with the
//! field names and build type BuildKit uses (its `slsa-definitions.md`), so that tools that
//! read BuildKit's provenance read stagecraft's.

use crate::options::{ProvenanceMode, ProvenanceOptions};
use crate::session::BuildRequest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use stagecraft_image::intoto::Statement;
use stagecraft_image::{Digest, Platform, Reference, Timestamp};
use stagecraft_solve::{BuildOutcome, Material};
use std::collections::BTreeMap;
use std::path::Path;

/// The predicate type of SLSA provenance v1.
pub(crate) const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// BuildKit's build type for SLSA v1: the document that says how each field is filled.
const BUILD_TYPE: &str =
    "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate {
    build_definition: BuildDefinition,
    run_details: RunDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition {
    build_type: &'static str,
    external_parameters: ExternalParameters,
    internal_parameters: InternalParameters,
    resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalParameters {
    config_source: ConfigSource,
    request: Request,
}

#[derive(Serialize)]
struct ConfigSource {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    digest: BTreeMap<String, String>,
    path: String,
}

#[derive(Serialize)]
struct Request {
    frontend: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    args: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<Id>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ssh: Vec<Id>,
    locals: Vec<Name>,
}

#[derive(Serialize)]
struct Id {
    id: String,
}

#[derive(Serialize)]
struct Name {
    name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InternalParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    build_config: Option<BuildConfig>,
    builder_platform: String,
}

/// `mode=max`: every step of the platform's graph.
#[derive(Serialize)]
struct BuildConfig {
    steps: Vec<Step>,
}

#[derive(Serialize)]
struct Step {
    id: String,
    stage: String,
    line: usize,
    instruction: String,
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<String>,
}

#[derive(Serialize)]
struct ResourceDescriptor {
    #[serde(skip_serializing_if = "String::is_empty")]
    uri: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    digest: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RunDetails {
    builder: Builder,
    metadata: Metadata,
}

#[derive(Serialize)]
struct Builder {
    id: String,
    version: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    invocation_id: String,
    started_on: String,
    finished_on: String,
    #[serde(
        rename = "buildkit_reproducible",
        skip_serializing_if = "std::ops::Not::not"
    )]
    buildkit_reproducible: bool,
    #[serde(rename = "buildkit_completeness")]
    buildkit_completeness: Completeness,
    #[serde(
        rename = "buildkit_metadata",
        skip_serializing_if = "BuildKitMetadata::is_empty"
    )]
    buildkit_metadata: BuildKitMetadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Completeness {
    request: bool,
    resolved_dependencies: bool,
}

#[derive(Serialize)]
struct BuildKitMetadata {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    vcs: BTreeMap<&'static str, String>,
}

impl BuildKitMetadata {
    fn is_empty(&self) -> bool {
        self.vcs.is_empty()
    }
}

/// The git checkout a build context is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitContext {
    /// The commit checked out (`HEAD`).
    commit: String,
    /// The `origin` remote's URL, credentials removed.
    source: Option<String>,
    /// The context's directory relative to the work tree's root (`.` for the root).
    local_dir: String,
}

impl GitContext {
    /// The checkout `dir` is in, as `git` reports it (as buildx asks git), or `None` when it
    /// is in none or git is not installed.
    pub(crate) fn of(dir: &Path) -> Option<GitContext> {
        let git = |args: &[&str]| -> Option<String> {
            let output = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
            (output.status.success() && !text.is_empty()).then_some(text)
        };
        let root = git(&["rev-parse", "--show-toplevel"])?;
        let commit = git(&["rev-parse", "HEAD"])?;
        let source = git(&["remote", "get-url", "origin"]).map(|url| without_credentials(&url));
        let here = std::fs::canonicalize(dir).ok()?;
        let local_dir = here
            .strip_prefix(std::fs::canonicalize(root).ok()?)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".to_owned());
        Some(GitContext {
            commit,
            source,
            local_dir,
        })
    }
}

/// `url` without the user and password it may carry (`https://user:token@host/…`).
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// A git digest set: `sha1`, or `sha256` for a SHA-256 repository.
fn commit_digest(commit: &str) -> BTreeMap<String, String> {
    let algorithm = if commit.len() == 64 { "sha256" } else { "sha1" };
    BTreeMap::from([(algorithm.to_owned(), commit.to_owned())])
}

fn digest_set(digest: &Digest) -> BTreeMap<String, String> {
    BTreeMap::from([(digest.algorithm().to_owned(), digest.hex().to_owned())])
}

/// What every platform's provenance of one build shares.
pub(crate) struct BuildFacts {
    /// When the build started and finished (clamped to `SOURCE_DATE_EPOCH` when set).
    pub(crate) started: Timestamp,
    pub(crate) finished: Timestamp,
    /// The build's invocation ID.
    pub(crate) invocation_id: String,
    /// The Dockerfile as the provenance names it, and its digest.
    pub(crate) dockerfile: String,
    pub(crate) dockerfile_digest: Digest,
    /// The context's git checkout.
    pub(crate) git: Option<GitContext>,
}

impl BuildFacts {
    /// The facts of `request`, which started at `started` and finished at `finished`.
    pub(crate) fn new(
        request: &BuildRequest<'_>,
        started: Timestamp,
        finished: Timestamp,
    ) -> BuildFacts {
        let options = &request.options;
        let epoch = options
            .source_date_epoch
            .and_then(|secs| Timestamp::from_unix(secs, 0));
        let clamp = |time: Timestamp| match epoch {
            Some(epoch) if epoch.unix_secs() < time.unix_secs() => epoch,
            _ => time,
        };
        let text = request.dockerfile.source.text();
        let dockerfile_digest = Digest::of(text.as_bytes());
        let dockerfile = match &options.dockerfile_path {
            Some(path) => path
                .strip_prefix(&options.context_dir)
                .ok()
                .or_else(|| path.file_name().map(Path::new))
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned(),
            None => "Dockerfile".to_owned(),
        };
        // Unique per build, unless SOURCE_DATE_EPOCH asks for reproducible output: then the
        // same inputs give the same ID.
        let mut hasher = Sha256::new();
        hasher.update(dockerfile_digest.as_str());
        for (key, value) in &options.plan.build_args {
            if !options.secret_args.contains(key) {
                hasher.update(format!("\0{key}={value}"));
            }
        }
        match epoch {
            Some(epoch) => hasher.update(epoch.to_string()),
            None => hasher.update(format!("{started}\0{}", std::process::id())),
        }
        let invocation_id = hex::encode(hasher.finalize())[..25].to_owned();
        BuildFacts {
            started: clamp(started),
            finished: clamp(finished),
            invocation_id,
            dockerfile,
            dockerfile_digest,
            git: GitContext::of(&options.context_dir),
        }
    }
}

/// The provenance of `outcome` (one platform's image) as an in-toto statement without
/// subjects.
pub(crate) fn statement(
    request: &BuildRequest<'_>,
    facts: &BuildFacts,
    outcome: &BuildOutcome,
    provenance: &ProvenanceOptions,
) -> Statement {
    let options = &request.options;
    let max = provenance.mode == ProvenanceMode::Max;
    let mut args = BTreeMap::new();
    if let Some(target) = &options.plan.target {
        args.insert("target".to_owned(), target.clone());
    }
    args.insert("platform".to_owned(), outcome.platform.to_string());
    let mut secrets: Vec<Id> = Vec::new();
    // `min` leaves out build arguments and labels (the request is then incomplete); a
    // secret build argument's value is never written, its name is listed as a secret.
    let has_args = !options.plan.build_args.is_empty() || !options.labels.is_empty();
    if max {
        for (key, value) in &options.plan.build_args {
            if options.secret_args.contains(key) {
                secrets.push(Id {
                    id: format!("build-arg:{key}"),
                });
            } else {
                args.insert(format!("build-arg:{key}"), value.clone());
            }
        }
        for (key, value) in &options.labels {
            args.insert(format!("label:{key}"), value.clone());
        }
        secrets.extend(options.secrets.keys().map(|id| Id { id: id.clone() }));
    }
    let ssh = if max {
        options.ssh.keys().map(|id| Id { id: id.clone() }).collect()
    } else {
        Vec::new()
    };
    let mut dependencies = Vec::new();
    for material in &outcome.materials {
        if let Material::Image {
            reference,
            platform,
            digest,
        } = material
        {
            dependencies.push(ResourceDescriptor {
                uri: image_uri(reference, platform),
                name: String::new(),
                digest: digest_set(digest),
            });
        }
    }
    dependencies.push(ResourceDescriptor {
        uri: String::new(),
        name: facts.dockerfile.clone(),
        digest: digest_set(&facts.dockerfile_digest),
    });
    if let Some(git) = &facts.git {
        dependencies.push(ResourceDescriptor {
            uri: git.source.clone().unwrap_or_default(),
            name: "context".to_owned(),
            digest: commit_digest(&git.commit),
        });
    }
    for material in &outcome.materials {
        match material {
            Material::Git { url, commit } => dependencies.push(ResourceDescriptor {
                uri: without_credentials(url),
                name: String::new(),
                digest: commit_digest(commit),
            }),
            Material::Http { url, digest } => dependencies.push(ResourceDescriptor {
                uri: without_credentials(url),
                name: String::new(),
                digest: digest_set(digest),
            }),
            Material::Image { .. } => {}
        }
    }
    let mut vcs = BTreeMap::new();
    if let Some(git) = &facts.git {
        vcs.insert("revision", git.commit.clone());
        if let Some(source) = &git.source {
            vcs.insert("source", source.clone());
        }
        vcs.insert("localdir:context", git.local_dir.clone());
    }
    let build_config = max.then(|| BuildConfig {
        steps: outcome
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| Step {
                id: format!("step{i}"),
                stage: step.stage.clone(),
                line: step.line,
                instruction: step.name.clone(),
                cached: step.cached,
                layer: step.layer.as_ref().map(Digest::to_string),
            })
            .collect(),
    });
    let predicate = Predicate {
        build_definition: BuildDefinition {
            build_type: BUILD_TYPE,
            external_parameters: ExternalParameters {
                config_source: ConfigSource {
                    digest: digest_set(&facts.dockerfile_digest),
                    path: facts.dockerfile.clone(),
                },
                request: Request {
                    frontend: "dockerfile.v0",
                    args,
                    secrets,
                    ssh,
                    locals: vec![Name { name: "context" }, Name { name: "dockerfile" }],
                },
            },
            internal_parameters: InternalParameters {
                build_config,
                builder_platform: Platform::host().to_string(),
            },
            resolved_dependencies: dependencies,
        },
        run_details: RunDetails {
            builder: Builder {
                id: provenance.builder_id.clone(),
                version: BTreeMap::from([("stagecraft", env!("CARGO_PKG_VERSION"))]),
            },
            metadata: Metadata {
                invocation_id: facts.invocation_id.clone(),
                started_on: facts.started.to_string(),
                finished_on: facts.finished.to_string(),
                buildkit_reproducible: provenance.reproducible,
                buildkit_completeness: Completeness {
                    request: max || !has_args,
                    // A local context is not a resolved dependency, as in BuildKit.
                    resolved_dependencies: false,
                },
                buildkit_metadata: BuildKitMetadata { vcs },
            },
        },
    };
    Statement::new(PREDICATE_TYPE, Vec::new(), &predicate).expect("plain data serialises")
}

/// A base image as a purl with its platform; a name that is not a reference (which the
/// build would have refused) as it is.
fn image_uri(reference: &str, platform: &Platform) -> String {
    match Reference::parse(reference) {
        Ok(parsed) => stagecraft_sbom::image_purl(&parsed, Some(platform)),
        Err(_) => reference.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_the_provenance() {
        assert_eq!(
            without_credentials("https://user:token@git.example/team/app.git"),
            "https://git.example/team/app.git"
        );
        assert_eq!(
            without_credentials("git@github.example:team/app.git"),
            "git@github.example:team/app.git"
        );
        assert_eq!(
            commit_digest(&"a".repeat(40)).keys().next().unwrap(),
            "sha1"
        );
    }
}
