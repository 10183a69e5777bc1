//! One build, end to end: caches imported, the plan run by the engine, the image tagged and
//! exported, caches exported.

use crate::attest::{Attestations, Carrier};
use crate::base_images::StoreOrRegistry;
use crate::cache::{ImportedCaches, export_cache};
use crate::error::{Error, Result};
use crate::options::{Annotation, AttestOptions, CacheLocation, ImageKeys, Output};
use crate::output::{BuiltImage, ExportFacts, Exported, export};
use crate::runner::NamespaceRunner;
use stagecraft_dockerfile::Dockerfile;
use stagecraft_image::{Digest, Platform, Timestamp};
use stagecraft_layer::Compression;
use stagecraft_registry::Registry;
use stagecraft_solve::progress::ProgressSink;
use stagecraft_solve::remote_cache::CacheMode;
use stagecraft_solve::{BuildOptions, BuildOutcome, Engine};
use stagecraft_store::Store;

/// What to build and what to do with the result.
pub struct BuildRequest<'a> {
    /// The parsed Dockerfile.
    pub dockerfile: &'a Dockerfile,
    /// The engine's options: build arguments, target, context, secrets, network…
    pub options: BuildOptions,
    /// The platforms to build for: one image each, in one index when there are several. Empty
    /// means `options.plan.platform` (default: this machine's).
    pub platforms: Vec<Platform>,
    /// Names to tag the image with in the store (`-t`).
    pub tags: Vec<String>,
    /// Where the image goes besides the store (`--output`).
    pub outputs: Vec<Output>,
    /// Push every tag to its registry (`--push`).
    pub push: bool,
    /// Caches to import records from (`--cache-from`).
    pub cache_from: Vec<CacheLocation>,
    /// Caches to export to (`--cache-to`), with which records.
    pub cache_to: Vec<(CacheLocation, CacheMode)>,
    /// Layer compression for outputs that carry compressed layers.
    pub compression: Compression,
    /// Ask the registry for base images even when the store has them (`--pull`).
    pub always_pull: bool,
    /// The attestations to make (`--sbom`, `--provenance`, `--attest`).
    pub attest: AttestOptions,
    /// `--annotation`s: added to every output that carries an image, `--push`'s included
    /// (as buildx adds them to each output's keys).
    pub annotations: Vec<Annotation>,
}

/// What a build made.
pub struct BuildResult {
    /// The engine's outcome for each platform, in the request's order (one for a
    /// single-platform build): the stored image, its layers, the stages, the steps.
    pub outcomes: Vec<BuildOutcome>,
    /// The image the tags name: the one platform's, or the index over every platform's; with
    /// attestations asked for explicitly, an index of the image(s) and their attestation
    /// manifests.
    pub image: BuiltImage,
    /// The tags set, as full references (`-t`; names of `type=image` outputs are in
    /// [`BuildResult::exports`]).
    pub names: Vec<String>,
    /// What each output made, in request order (pushes of `--push` last).
    pub exports: Vec<Exported>,
    /// Each exported cache with how many records it holds.
    pub cache_exports: Vec<(CacheLocation, usize)>,
}

impl BuildResult {
    /// The image ID: the digest of its config, as docker names images; for a multi-platform
    /// image, which has no one config, its index's digest (what buildx's `--iidfile` writes).
    pub fn image_id(&self) -> &Digest {
        match &self.image {
            BuiltImage::Single(image) => &image.config_digest,
            BuiltImage::Multi(image) => &image.index_digest,
        }
    }

    /// What others can see the image by: the pushed manifest (or index), else an exported
    /// OCI layout's; `None` when the image is only in the store, whose own manifest names
    /// uncompressed layers no registry has.
    pub fn published(&self) -> Option<Published<'_>> {
        let pushed = self
            .exports
            .iter()
            .filter(|e| matches!(e, Exported::Pushed { .. }))
            .find_map(Published::of);
        pushed.or_else(|| self.exports.iter().find_map(Published::of))
    }

    /// The digest others can see the image by ([`BuildResult::published`]), else (only in
    /// the store, where docker names images so) the image ID. Never the store's own manifest
    /// digest.
    pub fn digest(&self) -> String {
        self.published()
            .map(|published| published.digest)
            .unwrap_or_else(|| self.image_id().to_string())
    }

    /// Every push: reference and manifest digest.
    pub fn pushed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.exports.iter().filter_map(|e| match e {
            Exported::Pushed { name, digest, .. } => Some((name.as_str(), digest.as_str())),
            _ => None,
        })
    }
}

/// The manifest (or index) others see a build's image by ([`BuildResult::published`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published<'a> {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: &'a str,
    /// The config of a single image as published (none for an index).
    pub config_digest: Option<&'a Digest>,
}

impl Published<'_> {
    /// What `export` published, if it names a manifest others can see.
    fn of(export: &Exported) -> Option<Published<'_>> {
        let (digest, media_type, config_digest) = match export {
            Exported::Pushed {
                digest,
                media_type,
                config_digest,
                ..
            } => (digest.clone(), media_type, config_digest),
            Exported::Layout {
                digest,
                media_type,
                config_digest,
            } => (digest.to_string(), media_type, config_digest),
            Exported::Files | Exported::Named { .. } => return None,
        };
        Some(Published {
            digest,
            media_type,
            config_digest: config_digest.as_ref(),
        })
    }
}

/// A store and a registry client, for builds.
pub struct Session<'a> {
    /// Where images, layers and caches live.
    pub store: &'a Store,
    /// How registries are reached.
    pub registry: &'a Registry,
}

impl Session<'_> {
    /// Builds `request`, reporting progress to `progress`.
    pub fn build(
        &self,
        request: &BuildRequest<'_>,
        progress: &dyn ProgressSink,
    ) -> Result<BuildResult> {
        let store = self.store;
        let now = || Timestamp::now().ok_or(Error::Clock);
        let started = now()?;
        let imported = ImportedCaches::import(store, self.registry, &request.cache_from, progress);
        let base_images = StoreOrRegistry {
            store,
            registry: self.registry,
            always_pull: request.always_pull,
            pulled: Default::default(),
        };
        let runner = NamespaceRunner::new(store, progress)?;
        let engine = Engine {
            store,
            base_images: &base_images,
            runner: &runner,
            progress,
            cache_blobs: Some(&imported),
        };
        let platforms = match request.platforms.as_slice() {
            [] => vec![
                request
                    .options
                    .plan
                    .platform
                    .clone()
                    .unwrap_or_else(Platform::host),
            ],
            several => several.to_vec(),
        };
        let mut outputs = request.outputs.clone();
        for output in &mut outputs {
            output.annotate(&request.annotations);
        }
        // `--push`: every tag goes to its registry, as `type=image,push=true` of the tags.
        let push = request.push.then(|| Output::Image {
            names: Vec::new(),
            push: true,
            compression: None,
            keys: ImageKeys {
                annotations: request.annotations.clone(),
                ..ImageKeys::default()
            },
        });
        // Before anything runs: an output that cannot hold the result fails now, not after.
        for output in outputs.iter().chain(&push) {
            output.check(
                &platforms,
                request.compression,
                request.options.source_date_epoch,
            )?;
        }
        let outcomes = engine.build_platforms(request.dockerfile, &request.options, &platforms)?;
        let finished = now()?;
        let built = match outcomes.as_slice() {
            [outcome] => BuiltImage::Single(outcome.image.clone()),
            several => {
                let images: Vec<_> = several.iter().map(|o| o.image.clone()).collect();
                BuiltImage::Multi(
                    store
                        .write_index(&images, request.options.manifest_format)
                        .map_err(Error::store("storing the image index"))?,
                )
            }
        };
        let mut names = Vec::new();
        for tag in &request.tags {
            let reference = stagecraft_image::Reference::parse(tag)
                .map(|r| r.with_default_tag().to_string())
                .unwrap_or_else(|_| tag.clone());
            names.push(reference);
        }
        // Every name the build gives the image, for the SBOM document's name.
        let all_names: Vec<String> = names
            .iter()
            .cloned()
            .chain(request.outputs.iter().flat_map(Output::names))
            .collect();
        let attestations = Attestations::for_build(
            store,
            request,
            &outcomes,
            &all_names,
            (started, finished),
            progress,
        )?;
        let stored = attestations.attach(store, &built, &names, Carrier::Index)?;
        names.clear();
        for tag in &request.tags {
            let reference = store
                .set_tag(tag, stored.digest())
                .map_err(Error::store(format!("tagging {tag}")))?;
            names.push(reference.to_string());
        }
        let pushes = push.filter(|_| !names.is_empty()).map(|push| match push {
            Output::Image {
                push,
                compression,
                keys,
                ..
            } => Output::Image {
                names: names.clone(),
                push,
                compression,
                keys,
            },
            other => other,
        });
        let facts = ExportFacts {
            source_date_epoch: request.options.source_date_epoch,
            // The layers no step of the build made are its base image's.
            base_layers: outcomes
                .iter()
                .map(|o| o.layers.len() - o.target_cache_keys.len())
                .collect(),
        };
        let mut exports = Vec::new();
        for output in outputs.iter().chain(&pushes) {
            exports.extend(export(
                store,
                &built,
                &attestations,
                &names,
                output,
                request.compression,
                self.registry,
                &facts,
            )?);
        }
        let mut cache_exports = Vec::new();
        for (location, mode) in &request.cache_to {
            let records = export_cache(
                store,
                self.registry,
                &outcomes,
                location,
                *mode,
                request.compression,
            )?;
            cache_exports.push((location.clone(), records));
        }
        Ok(BuildResult {
            outcomes,
            image: stored,
            names,
            exports,
            cache_exports,
        })
    }
}
