//! Attestations of a build, as BuildKit makes them: an SPDX SBOM ([`sbom`]) and a SLSA v1
//! provenance ([`provenance`]) of each platform's image, made once per build and wrapped in
//! in-toto statements for each output, whose subjects are the images as that output carries
//! them (its names, the manifest digest of its compressed layers).
//!
//! Which output gets which, as BuildKit's exporters decide:
//!
//! | output | attestations |
//! |---|---|
//! | push (`--push`, `type=registry`, `type=image,push=true`) | all, in an attestation manifest per image of the pushed index |
//! | the store (`-t`, `type=image`), `type=oci`, `type=docker` | all when one was asked for explicitly (buildx's default provenance alone is only attached to a multi-platform `oci` layout) |
//! | `type=local`, `type=tar` | those not `inline-only`, as files beside each platform's root (`sbom.spdx.json`, `provenance.json`) |

pub(crate) mod provenance;
pub mod sbom;
pub(crate) mod scan;

use crate::error::{Error, Result};
use crate::output::BuiltImage;
use crate::session::BuildRequest;
use stagecraft_image::intoto::{Statement, Subject};
use stagecraft_image::{Digest, Platform, Reference};
use stagecraft_solve::BuildOutcome;
use stagecraft_solve::progress::{Event, ProgressSink};
use stagecraft_store::{ManifestFormat, Store};
use std::path::Path;

/// One attestation of one platform's image, before an output gives it subjects.
#[derive(Debug, Clone)]
pub(crate) struct Attestation {
    /// The statement, without subjects.
    statement: Statement,
    /// Its file beside a `local` or `tar` output.
    file_name: String,
    /// Only for outputs that carry it inside an image.
    inline_only: bool,
}

impl Attestation {
    fn new(statement: Statement, file_name: &str, inline_only: bool) -> Self {
        Attestation {
            statement,
            file_name: file_name.to_owned(),
            inline_only,
        }
    }
}

/// How an output carries attestations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// A push: everything.
    Push,
    /// An image index in the store or a layout: everything when something was asked for
    /// explicitly (or the image is multi-platform), else nothing.
    Index,
}

/// The attestations of a build: for each platform's image (in the built image's order), its
/// statements.
#[derive(Debug, Clone, Default)]
pub struct Attestations {
    per_image: Vec<Vec<Attestation>>,
    /// The modification time of attestation files: `SOURCE_DATE_EPOCH`, else the epoch.
    file_time: Option<i64>,
}

impl Attestations {
    /// What `request.attest` asks for, of each platform's image of `outcomes` (SBOM first,
    /// then provenance, as BuildKit lists them). `names` name the SBOM documents (the first
    /// one; the image ID without one); `started`/`finished` are the build's times.
    pub(crate) fn for_build(
        store: &Store,
        request: &BuildRequest<'_>,
        outcomes: &[BuildOutcome],
        names: &[String],
        (started, finished): (stagecraft_image::Timestamp, stagecraft_image::Timestamp),
        progress: &dyn ProgressSink,
    ) -> Result<Attestations> {
        let attest = &request.attest;
        if !attest.sbom && attest.provenance.is_none() {
            return Ok(Attestations::default());
        }
        let file_time = request.options.source_date_epoch;
        let scan_targets = if attest.sbom {
            scan::targets(
                request.dockerfile,
                &request.options.plan.build_args,
                request.options.plan.target.as_deref(),
            )
        } else {
            scan::ScanTargets::default()
        };
        let facts = attest
            .provenance
            .as_ref()
            .map(|_| provenance::BuildFacts::new(request, started, finished));
        let mut per_image = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let mut list = Vec::new();
            if attest.sbom {
                let clock = std::time::Instant::now();
                let image = &outcome.image;
                let catalog = sbom::image_catalog(store, image, Some(&outcome.snapshots))?;
                let how = if catalog.cached {
                    "kept from an earlier build".to_owned()
                } else {
                    format!("cataloged in {:.2} s", clock.elapsed().as_secs_f64())
                };
                progress.event(Event::Info {
                    message: format!(
                        "sbom: {} packages in the {} image ({how})",
                        catalog.catalog.packages.len(),
                        outcome.platform
                    ),
                    context_files: None,
                });
                let dockerfile = facts
                    .as_ref()
                    .map(|f| f.dockerfile.clone())
                    .unwrap_or_else(|| "Dockerfile".to_owned());
                let layers = sbom::layer_infos(image, &outcome.steps, &dockerfile);
                let name = names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| image.config_digest.to_string());
                let document = sbom::document(
                    &catalog,
                    image,
                    &name,
                    &layers,
                    request.options.source_date_epoch,
                );
                list.push(Attestation::new(
                    document.statement(Vec::new()),
                    "sbom.spdx.json",
                    false,
                ));
                for (file_name, statement) in
                    scan::extra_sboms(store, request, outcome, &scan_targets, progress)?
                {
                    list.push(Attestation::new(statement, &file_name, false));
                }
            }
            if let (Some(options), Some(facts)) = (&attest.provenance, &facts) {
                list.push(Attestation::new(
                    provenance::statement(request, facts, outcome, options),
                    &options.filename,
                    options.inline_only,
                ));
            }
            per_image.push(list);
        }
        Ok(Attestations {
            per_image,
            file_time,
        })
    }

    /// Whether there is nothing to attest.
    pub fn is_empty(&self) -> bool {
        self.per_image.iter().all(Vec::is_empty)
    }

    /// Which statements `carrier` takes, per image.
    fn selected(&self, carrier: Carrier, multi_platform: bool) -> Vec<Vec<&Attestation>> {
        let all = match carrier {
            Carrier::Push => true,
            Carrier::Index => self.writes_files() || multi_platform,
        };
        self.per_image
            .iter()
            .map(|list| list.iter().filter(|_| all).collect())
            .collect()
    }

    /// Whether `carrier` takes any attestation of `image`.
    pub(crate) fn carries(&self, carrier: Carrier, image: &BuiltImage) -> bool {
        self.selected(carrier, matches!(image, BuiltImage::Multi(_)))
            .iter()
            .any(|list| !list.is_empty())
    }

    /// `image` with the attestations `carrier` takes attached, each statement about its
    /// platform image under every name in `names` (a `pkg:docker/…` purl each; `_` without a
    /// name): an index of the images and their attestation manifests. Returned as it is when
    /// nothing is attached.
    pub(crate) fn attach(
        &self,
        store: &Store,
        image: &BuiltImage,
        names: &[String],
        carrier: Carrier,
    ) -> Result<BuiltImage> {
        if !self.carries(carrier, image) {
            return Ok(image.clone());
        }
        let selected = self.selected(carrier, matches!(image, BuiltImage::Multi(_)));
        let what = "attaching the attestations";
        let index = match image {
            // A single image with attestations goes out as an index of one image, as buildx
            // sends it.
            BuiltImage::Single(single) => store
                .write_index(std::slice::from_ref(single), ManifestFormat::Oci)
                .map_err(Error::store(what))?,
            BuiltImage::Multi(multi) => multi.clone(),
        };
        let statements: Vec<Vec<Statement>> = index
            .platform_images()
            .zip(&selected)
            .map(|((platform, image), attestations)| {
                let subjects = image_subjects(names, &platform, &image.manifest_digest);
                attestations
                    .iter()
                    .map(|a| with_subjects(&a.statement, subjects.clone()))
                    .collect()
            })
            .collect();
        Ok(BuiltImage::Multi(
            store
                .attest(&index, &statements)
                .map_err(Error::store(what))?,
        ))
    }

    /// Whether [`Attestations::write_files`] writes any file: some statement was asked for
    /// explicitly (not only inline).
    pub(crate) fn writes_files(&self) -> bool {
        self.per_image.iter().flatten().any(|a| !a.inline_only)
    }

    /// Writes the statements that are not inline-only as files (indented JSON, mode 0600,
    /// modified at `SOURCE_DATE_EPOCH` or the epoch) into each platform's root under `dir`
    /// (`dir` itself for a single image, `dir/linux_amd64/`… for several), each about every
    /// regular file of that root by its path and sha256, as BuildKit's `local` and `tar`
    /// exporters write them.
    pub(crate) fn write_files(&self, dir: &Path, image: &BuiltImage) -> Result<()> {
        let mtime = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(self.file_time.unwrap_or(0).max(0).unsigned_abs());
        let roots: Vec<std::path::PathBuf> = match image {
            BuiltImage::Single(_) => vec![dir.to_owned()],
            BuiltImage::Multi(multi) => multi
                .platform_images()
                .map(|(platform, _)| dir.join(stagecraft_export::platform_dir_name(&platform)))
                .collect(),
        };
        for (root, attestations) in roots.iter().zip(&self.per_image) {
            let files: Vec<&Attestation> = attestations.iter().filter(|a| !a.inline_only).collect();
            if files.is_empty() {
                continue;
            }
            let failed = |message: String| Error::Output {
                path: root.clone(),
                message,
            };
            let subjects = file_subjects(root).map_err(|e| failed(e.to_string()))?;
            for attestation in files {
                let path = root.join(&attestation.file_name);
                let statement = with_subjects(&attestation.statement, subjects.clone());
                write_private_file(&path, &statement.to_json_pretty(), mtime)
                    .map_err(|e| failed(format!("{}: {e}", path.display())))?;
            }
        }
        Ok(())
    }
}

/// A statement template given its subjects.
fn with_subjects(template: &Statement, subjects: Vec<Subject>) -> Statement {
    let mut statement = template.clone();
    statement.subject = subjects;
    statement
}

/// The subjects of statements about the image whose manifest is `digest`: one per name, as
/// BuildKit names them (`pkg:docker/app@1.0?platform=linux%2Famd64`), or `_` when the output
/// names none (in-toto wants at least one subject).
fn image_subjects(names: &[String], platform: &Platform, digest: &Digest) -> Vec<Subject> {
    let mut subjects: Vec<Subject> = Vec::new();
    for name in names {
        let Ok(reference) = Reference::parse(name) else {
            continue;
        };
        let subject = Subject::new(
            &stagecraft_sbom::image_purl(&reference, Some(platform)),
            digest,
        );
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    }
    if subjects.is_empty() {
        subjects.push(Subject::new("_", digest));
    }
    subjects
}

/// Every regular file below `root` by its path relative to it and its sha256, sorted.
fn file_subjects(root: &Path) -> std::io::Result<Vec<Subject>> {
    let mut subjects = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_file() {
            continue;
        }
        let mut hasher = stagecraft_image::Digester::new();
        std::io::copy(&mut std::fs::File::open(entry.path())?, &mut hasher)?;
        let digest = hasher.finish();
        let name = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        subjects.push(Subject::new(&name, &digest));
    }
    Ok(subjects)
}

/// Writes `bytes` to a new file at `path` with mode 0600 and modification time `mtime`.
fn write_private_file(
    path: &Path,
    bytes: &[u8],
    mtime: std::time::SystemTime,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.set_times(std::fs::FileTimes::new().set_modified(mtime))
}
