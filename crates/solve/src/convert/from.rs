//! `FROM`: a stage's starting state from `scratch`, another stage or an image, and the
//! `ONBUILD` triggers its base declares; `--from` sources of `COPY` and mounts. Named build
//! contexts are in [`super::named`].

use crate::cache::key::CacheKey;
use crate::ops::copy::CopySource;
use crate::outcome::{BuildError, LayerRef, Material};
use crate::progress::{Event, StepStatus};
use crate::state::{BuildRun, DEFAULT_PATH, StageState, StepCtx};
use stagecraft_dockerfile::{Code, Command, Diagnostic};
use stagecraft_image::{Digest, ImageConfig, Platform};
use stagecraft_imagefs::MergedView;
use stagecraft_layer::{ApplyOptions, WhiteoutMode, apply_layer};
use stagecraft_plan::{Base, Scope};
use stagecraft_store::{Image, Store};
use std::path::{Path, PathBuf};

/// An image resolved for a platform: the image, its layers and their snapshots, bottom first.
pub(crate) type ImageLayers = (Image, Vec<LayerRef>, Vec<PathBuf>);

impl BuildRun<'_> {
    /// The state stage `index` starts from, and whether making it ran a step (a named
    /// context's files are copied into a layer). Its `FROM` step, when it has one (an image or
    /// a named context), is step `at`.
    pub(crate) fn base_state(
        &self,
        index: usize,
        at: StepCtx,
    ) -> Result<(StageState, bool), BuildError> {
        let stage = &self.plan.stages[index];
        let platform = &stage.image_platform;
        match &stage.base {
            Base::Scratch => Ok((scratch_state(platform), false)),
            Base::Stage(base) => {
                // The base stage's own ONBUILD instructions stay in `on_build`: they are this
                // stage's triggers (its base image's triggers ran in the base stage already).
                let mut state = (*self.wait_for(*base)?).clone();
                state.cmd_set = false;
                // BuildKit re-applies the image's Env at the start of every stage, so an ENV
                // wins over an ARG of the same name that the base stage set after it.
                for entry in state.config.config.env.clone() {
                    let (key, value) = entry.split_once('=').unwrap_or((&entry, ""));
                    state.scope.set(key, value);
                }
                Ok((state, false))
            }
            Base::Image(reference) => {
                let state = self.announced(at, &format!("FROM {reference}"), || {
                    let layers = self.image_layers(reference, platform)?;
                    self.check_base_platform(reference, &layers.0, platform);
                    Ok(image_state(layers))
                })?;
                Ok((state, false))
            }
            Base::Context(name) => self.named_base_state(index, name, at),
        }
    }

    /// Runs `make` as step `at` called `name`, which shows as done (or failed) without a
    /// layer of its own: resolving a base image.
    pub(crate) fn announced<T>(
        &self,
        at: StepCtx,
        name: &str,
        make: impl FnOnce() -> Result<T, BuildError>,
    ) -> Result<T, BuildError> {
        let (id, started) = self.start_step(at, name);
        let made = make();
        let status = if made.is_ok() {
            StepStatus::Done
        } else {
            StepStatus::Failed
        };
        self.finish_step(id, status, started, None, None);
        made
    }

    /// BuildKit's `InvalidBaseImagePlatform` check: a base named by a single manifest is taken
    /// whatever its platform (an index is resolved for the stage's), and a warning says when
    /// it is not the stage's. Its RUN steps then run the base's programs, emulated if foreign.
    fn check_base_platform(&self, reference: &str, image: &Image, expected: &Platform) {
        let config = &image.config;
        let actual = Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
            ..Platform::default()
        };
        // A config without a platform (hand-made images) claims none to disagree with.
        if actual.architecture.is_empty() || actual.matches(expected) {
            return;
        }
        self.engine.progress.event(Event::Info {
            message: format!(
                "warning: InvalidBaseImagePlatform: base image {reference} was pulled with platform \"{actual}\", expected \"{expected}\" for current build"
            ),
            context_files: None,
        });
    }

    /// The ONBUILD triggers the stage inherits, parsed, each with its text: the base image's
    /// `OnBuild`, or a base stage's ONBUILD instructions. They are removed from the stage's
    /// config, as BuildKit clears them once they ran. Errors point at the stage's `FROM`, where
    /// BuildKit puts every trigger.
    pub(crate) fn onbuild_triggers(
        &self,
        index: usize,
        state: &mut StageState,
    ) -> Result<Vec<(String, Command)>, BuildError> {
        let from = &self.plan.stages[index].stage.location;
        let at_from = |message: String| {
            BuildError::Step(Diagnostic::new(
                Code::Onbuild,
                &self.file.source,
                from.span,
                message,
            ))
        };
        std::mem::take(&mut state.config.config.on_build)
            .into_iter()
            .map(|expression| {
                // A trigger is one instruction; parsed after a `FROM` so it lands in a stage.
                let text = format!("FROM scratch\n{expression}\n");
                let parsed = stagecraft_dockerfile::parse_str("ONBUILD trigger", &text)
                    .and_then(|file| file.stages())
                    .map_err(|e| {
                        at_from(format!(
                            "the ONBUILD trigger {expression:?} of this stage's base is invalid: {}",
                            e.message()
                        ))
                    })?;
                let mut commands = parsed
                    .stages
                    .into_iter()
                    .flat_map(|stage| stage.commands)
                    .collect::<Vec<_>>();
                if commands.len() != 1 {
                    return Err(at_from(format!(
                        "the ONBUILD trigger {expression:?} of this stage's base should be a single expression"
                    )));
                }
                let mut command = commands.remove(0);
                command.location = from.clone();
                Ok((expression, command))
            })
            .collect()
    }

    /// Resolves an image for `platform` and makes sure every layer has a snapshot.
    pub(crate) fn image_layers(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ImageLayers, BuildError> {
        let image = self
            .engine
            .base_images
            .resolve(reference, platform)
            .map_err(|e| BuildError::BaseImage {
                reference: reference.to_owned(),
                source: Box::new(e),
            })?;
        self.add_material(Material::Image {
            reference: reference.to_owned(),
            platform: platform.clone(),
            digest: image
                .index_digest
                .clone()
                .unwrap_or_else(|| image.manifest_digest.clone()),
        });
        self.unpacked(reference, image)
    }

    /// `image` (which must be in the store) with its layers and their snapshots, each layer
    /// unpacked once; `reference` names it in errors.
    pub(crate) fn unpacked(
        &self,
        reference: &str,
        image: Image,
    ) -> Result<ImageLayers, BuildError> {
        let snapshots =
            image_snapshots(self.engine.store, &image).map_err(|e| BuildError::BaseImage {
                reference: reference.to_owned(),
                source: Box::new(e),
            })?;
        let layers = image
            .manifest
            .layers
            .iter()
            .zip(&image.config.rootfs.diff_ids)
            .map(|(descriptor, diff_id)| LayerRef {
                diff_id: diff_id.clone(),
                media_type: descriptor.media_type.clone(),
                digest: descriptor.digest.clone(),
                size: descriptor.size,
                uncompressed_size: None,
                created_by: String::new(),
                // The base image's history carries its own times.
                created: None,
            })
            .collect();
        Ok((image, layers, snapshots))
    }

    /// The files `from` names, as a copy source: a stage (by name or index), a named build
    /// context, or an image (for the build's target platform, as BuildKit resolves `--from`
    /// images); with what the cache key says of where they came from.
    pub(crate) fn source_view(
        &self,
        command: &Command,
        from: &str,
    ) -> Result<(CopySource<'_>, String), BuildError> {
        let stage = match from.parse::<usize>() {
            Ok(index) if index < self.plan.stages.len() => Some(index),
            _ => self
                .plan
                .stages
                .iter()
                .position(|s| s.stage.name.as_deref() == Some(from.to_lowercase().as_str())),
        };
        if let Some(index) = stage {
            let state = self.wait_for(index)?;
            return Ok((
                CopySource::Stage(state.view()),
                format!("stage {}", state.key),
            ));
        }
        if let Some(name) = self.plan.named_context(from) {
            return self.named_source(&name);
        }
        self.refuse_stage_typo(command, from)?;
        let (image, _, snapshots) = self.image_layers(from, &self.plan.target_platform)?;
        Ok((
            CopySource::Stage(MergedView::new(snapshots)),
            format!("image {}", image.manifest_digest),
        ))
    }

    /// A `--from` name one or two edits from a stage's that the store has no image of is a
    /// typo: said at the instruction before any registry is asked, which could only answer
    /// "not found" (or pull an image nobody meant). Full references (`a/b`, `x:1`, `@sha256`)
    /// are taken as images.
    fn refuse_stage_typo(&self, command: &Command, from: &str) -> Result<(), BuildError> {
        if from.contains(['/', ':', '@']) {
            return Ok(());
        }
        let stages: Vec<String> = self
            .plan
            .stages
            .iter()
            .filter_map(|s| s.stage.name.clone())
            .collect();
        let Some(stage) = stagecraft_dockerfile::suggest::closest(from, &stages) else {
            return Ok(());
        };
        if self
            .engine
            .store
            .image_for_platform(from, &self.plan.target_platform)
            .is_ok()
        {
            return Ok(());
        }
        Err(BuildError::Step(
            Diagnostic::new(
                Code::Stage,
                &self.file.source,
                command.location.span,
                format!("no stage or image named {from} — did you mean stage {stage}?"),
            )
            .with_hint(format!(
                "name the stage as its FROM … AS line does ({stage}); for an image of that name, write its full reference (docker.io/library/{from})"
            )),
        ))
    }
}

/// The state of an empty image for `platform`, which BuildKit gives the default PATH.
pub(crate) fn scratch_state(platform: &Platform) -> StageState {
    let mut config = ImageConfig::for_platform(platform);
    config.config.env = vec![format!("PATH={DEFAULT_PATH}")];
    StageState {
        scope: Scope::from_image_env(config.config.env.iter().map(String::as_str)),
        config,
        args: Vec::new(),
        layers: Vec::new(),
        layer_keys: Vec::new(),
        layer_sources: Vec::new(),
        snapshots: Vec::new(),
        base_layers: 0,
        key: CacheKey::new("scratch")
            .text("platform", &platform.to_string())
            .finish(),
        cmd_set: false,
    }
}

/// The state of a stage that starts from an image: its config, and its layers as the base.
pub(crate) fn image_state((image, layers, snapshots): ImageLayers) -> StageState {
    let config = image.config.clone();
    let scope = Scope::from_image_env(config.config.env.iter().map(String::as_str));
    let base_layers = layers.len();
    StageState {
        config,
        scope,
        args: Vec::new(),
        layer_keys: vec![None; base_layers],
        layer_sources: vec![None; base_layers],
        layers,
        snapshots,
        base_layers,
        key: CacheKey::new("image")
            .text("manifest", image.manifest_digest.as_str())
            .finish(),
        cmd_set: false,
    }
}

/// A layer of an image in the store that could not be unpacked into a snapshot.
#[derive(Debug, thiserror::Error)]
#[error("unpacking layer {layer}: {source}")]
pub struct UnpackError {
    /// The layer's blob.
    pub layer: Digest,
    /// What went wrong: the store's error, with the layer's when applying it failed.
    #[source]
    pub source: stagecraft_store::Error,
}

/// The snapshot of every layer of `image` (which must be in the store), bottom first, each
/// unpacked from its blob when the store has none yet: the directories a merged view of the
/// image's files reads (`stagecraft_imagefs::LayeredFs`).
pub fn image_snapshots(store: &Store, image: &Image) -> Result<Vec<PathBuf>, UnpackError> {
    image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(descriptor, diff_id)| {
            unpacked_snapshot(store, diff_id, &descriptor.digest).map_err(|source| UnpackError {
                layer: descriptor.digest.clone(),
                source,
            })
        })
        .collect()
}

/// The snapshot of layer `diff_id`, unpacked from its blob `digest` (which must be in the
/// store) when the store has none yet.
pub(crate) fn unpacked_snapshot(
    store: &Store,
    diff_id: &Digest,
    digest: &Digest,
) -> Result<PathBuf, stagecraft_store::Error> {
    if let Some(path) = store.snapshot_path(diff_id) {
        return Ok(path);
    }
    let blob = store.blob_file(digest)?;
    store.create_snapshot(
        diff_id,
        |dir: &Path| -> Result<(), stagecraft_layer::Error> {
            let file =
                std::fs::File::open(&blob).map_err(|source| stagecraft_layer::Error::Io {
                    action: "open",
                    path: blob.clone(),
                    source,
                })?;
            let options = ApplyOptions {
                whiteouts: WhiteoutMode::Overlay(store.overlay_xattr()),
                ..ApplyOptions::default()
            };
            apply_layer(std::io::BufReader::new(file), dir, &options).map(|_| ())
        },
    )
}
