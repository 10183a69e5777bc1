//! Named build contexts (`--build-context NAME=VALUE`), as BuildKit's frontend loads them
//! (`dockerui`'s named contexts): the plan decides where one is used (a stage of its name is
//! replaced, `FROM NAME` and `--from=NAME` take it when no stage has the name); here it
//! becomes a stage's start or a copy source.
//!
//! An image (`docker-image://`, `oci-layout://`) is a base like any image: its config and
//! layers, resolved for the stage's platform (for `--from`, the target platform). Files (a
//! directory, a repository checkout, a download) are read as the main context is — resolved
//! inside their root, files owned by root, hashed through a context index — and a stage that
//! starts from them gets them as one layer, keyed by their content, as BuildKit's local source
//! makes a layer of its own.

use crate::cache::key::CacheKey;
use crate::convert::copy::copy_inputs;
use crate::convert::from::{ImageLayers, image_state, scratch_state};
use crate::convert::named_slots::{Fetched, NamedContexts, Slot};
use crate::fs::local_context::LocalContext;
use crate::ops::copy::{CopyError, CopyPlan, CopySource, CopySpec, digest_of_entries};
use crate::options::NamedContext;
use crate::outcome::{BuildError, Material};
use crate::state::{BuildRun, StageState, StepCtx};
use stagecraft_image::Platform;
use stagecraft_imagefs::MergedView;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The comment BuildKit's exporter gives history entries of layers no instruction made.
const EXPORTER_HISTORY_COMMENT: &str = "buildkit.exporter.image.v0";

impl NamedContexts {
    /// The contexts of `options.named_contexts`. A directory that is not one is an error now,
    /// before anything runs, as buildx checks them before it sends the build.
    pub(crate) fn new(
        contexts: &BTreeMap<String, NamedContext>,
    ) -> Result<NamedContexts, BuildError> {
        for (name, source) in contexts {
            if let NamedContext::Dir(dir) = source
                && !dir.is_dir()
            {
                return Err(BuildError::NamedContext(format!(
                    "failed to get build context {name}: {} {}\n  = help: --build-context {name}=DIR takes a directory; an image is docker-image://REF",
                    dir.display(),
                    if dir.exists() {
                        "is not a directory"
                    } else {
                        "does not exist"
                    }
                )));
            }
        }
        Ok(NamedContexts {
            slots: contexts
                .iter()
                .map(|(name, source)| {
                    let slot = Slot {
                        source: source.clone(),
                        files: OnceLock::new(),
                    };
                    (name.clone(), slot)
                })
                .collect(),
        })
    }

    /// The contexts whose files the build read, to save their indexes.
    pub(crate) fn into_loaded(self) -> impl Iterator<Item = LocalContext> {
        self.slots
            .into_values()
            .filter_map(|slot| slot.files.into_inner()?.ok())
            .map(|fetched| fetched.context)
    }
}

impl BuildRun<'_> {
    /// The state stage `index` starts from when the named context `name` is its base (`FROM
    /// NAME`, or the stage NAME replaced), with whether a step ran; its `FROM` step is `at`.
    pub(crate) fn named_base_state(
        &self,
        index: usize,
        name: &str,
        at: StepCtx,
    ) -> Result<(StageState, bool), BuildError> {
        let platform = &self.plan.stages[index].image_platform;
        let slot = self.named_slot(name)?;
        if let Some(fetched) = self.named_files(name, slot)? {
            return self.files_base_state(name, fetched, platform, at);
        }
        let title = match &slot.source {
            NamedContext::Image(reference) => format!("[context {name}] FROM {reference}"),
            NamedContext::OciLayout(layout) => format!("[context {name}] FROM {layout}"),
            _ => format!("[context {name}] FROM scratch"),
        };
        let state = self.announced(at, &title, || {
            Ok(match self.named_image(&slot.source, platform)? {
                Some(layers) => image_state(layers),
                None => scratch_state(platform),
            })
        })?;
        Ok((state, false))
    }

    /// The files of the named context `name` as a copy source (`COPY --from=NAME`,
    /// `RUN --mount=from=NAME`), an image's for the target platform; with what the cache key
    /// says of where they came from (files are keyed by content, as the main context's).
    pub(crate) fn named_source(&self, name: &str) -> Result<(CopySource<'_>, String), BuildError> {
        let slot = self.named_slot(name)?;
        if let Some(fetched) = self.named_files(name, slot)? {
            return Ok((fetched.context.copy_source(), "context".to_owned()));
        }
        Ok(
            match self.named_image(&slot.source, &self.plan.target_platform)? {
                Some((image, _, snapshots)) => (
                    CopySource::Stage(MergedView::new(snapshots)),
                    format!("image {}", image.manifest_digest),
                ),
                None => (
                    CopySource::Stage(MergedView::default()),
                    "scratch".to_owned(),
                ),
            },
        )
    }

    fn named_slot(&self, name: &str) -> Result<&Slot, BuildError> {
        // The plan only names contexts the options have: this is a caller's mistake.
        self.shared.named.slots.get(name).ok_or_else(|| {
            BuildError::Engine(format!(
                "no named context {name} (the plan's named contexts are not the build's)"
            ))
        })
    }

    /// The image a named context is, resolved for `platform`: `None` for files and scratch.
    fn named_image(
        &self,
        source: &NamedContext,
        platform: &Platform,
    ) -> Result<Option<ImageLayers>, BuildError> {
        match source {
            NamedContext::Image(reference) => self.image_layers(reference, platform).map(Some),
            NamedContext::OciLayout(layout) => {
                let what = layout.to_string();
                let image = self
                    .engine
                    .base_images
                    .resolve_layout(layout, platform)
                    .map_err(|e| BuildError::NamedContext(format!("{what}: {e}")))?;
                self.add_material(Material::Image {
                    reference: what.clone(),
                    platform: platform.clone(),
                    digest: image
                        .index_digest
                        .clone()
                        .unwrap_or_else(|| image.manifest_digest.clone()),
                });
                self.unpacked(&what, image).map(Some)
            }
            NamedContext::Scratch
            | NamedContext::Dir(_)
            | NamedContext::Git(_)
            | NamedContext::Url(_) => Ok(None),
        }
    }

    /// The files of a named context that has files (read or fetched on first use); `None` for
    /// an image.
    fn named_files<'s>(
        &self,
        name: &str,
        slot: &'s Slot,
    ) -> Result<Option<&'s Fetched>, BuildError> {
        if !matches!(
            slot.source,
            NamedContext::Dir(_) | NamedContext::Git(_) | NamedContext::Url(_)
        ) {
            return Ok(None);
        }
        let fetched = slot
            .files
            .get_or_init(|| self.fetch_files(name, &slot.source).map_err(Arc::new))
            .as_ref()
            .map_err(|source| BuildError::NamedContextFiles {
                name: name.to_owned(),
                source: Arc::clone(source),
            })?;
        // Every graph that uses it took it from outside.
        if let Some(material) = &fetched.material {
            self.add_material(material.clone());
        }
        Ok(Some(fetched))
    }

    /// Reads a directory context, checks a repository out or downloads a file.
    fn fetch_files(&self, name: &str, source: &NamedContext) -> Result<Fetched, BuildError> {
        let store = self.engine.store;
        match source {
            NamedContext::Git(url) => {
                let git = match crate::ops::git::parse(url) {
                    Some(Ok(git)) => git,
                    Some(Err(reason)) => return Err(BuildError::NamedContext(reason.to_string())),
                    None => {
                        return Err(BuildError::NamedContext(format!(
                            "{url} is not a git repository"
                        )));
                    }
                };
                let keep_git_dir = git.keep_git_dir.unwrap_or(false);
                let (scratch, checkout, commit) =
                    self.fetch_repository(&git, keep_git_dir, |e| {
                        BuildError::NamedContext(e.to_string())
                    })?;
                let root = match &git.subdir {
                    None => checkout,
                    // Resolved inside the checkout: a link there cannot lead out of it.
                    Some(subdir) => MergedView::new(vec![checkout])
                        .lookup_follow(&Path::new("/").join(subdir))
                        .filter(|found| found.metadata.is_dir())
                        .map(|found| found.real_path())
                        .ok_or_else(|| {
                            BuildError::NamedContext(format!(
                                "{url}: the repository has no directory {subdir}"
                            ))
                        })?,
                };
                let reference = git.reference.as_deref().unwrap_or("HEAD");
                Ok(Fetched {
                    context: LocalContext::fetched(store, &root, scratch),
                    title: url.clone(),
                    description: format!("git snapshot for {}#{reference}", git.remote),
                    material: Some(Material::Git {
                        url: git.remote.clone(),
                        commit,
                    }),
                })
            }
            NamedContext::Url(url) => {
                let scratch = store
                    .scratch_dir("download")
                    .map_err(|e| BuildError::Store {
                        what: "creating a download directory".into(),
                        source: e,
                    })?;
                let download = crate::ops::http::download(url, scratch.path(), None)
                    .map_err(|e| BuildError::NamedContext(e.to_string()))?;
                // BuildKit names the file of an http context `context`, whatever the URL.
                let file = scratch.path().join("context");
                std::fs::rename(&download.path, &file).map_err(|e| BuildError::Io {
                    what: file.display().to_string(),
                    source: e,
                })?;
                let root = scratch.path().to_owned();
                Ok(Fetched {
                    context: LocalContext::fetched(store, &root, scratch),
                    title: url.clone(),
                    description: format!("http url {url}"),
                    material: Some(Material::Http {
                        url: url.clone(),
                        digest: download.sha256,
                    }),
                })
            }
            NamedContext::Dir(dir) => Ok(Fetched {
                context: LocalContext::named(store, dir)?,
                title: "load from client".to_owned(),
                description: format!("local source for {name}"),
                material: None,
            }),
            // Never asked: `named_files` fetches only files.
            NamedContext::Image(_) | NamedContext::OciLayout(_) | NamedContext::Scratch => Err(
                BuildError::NamedContext(format!("named context {name} is an image, not files")),
            ),
        }
    }

    /// A stage that starts from a named context's files: an empty image (for `platform`) with
    /// the files as one layer, keyed by their content, as step `at`.
    fn files_base_state(
        &self,
        name: &str,
        fetched: &Fetched,
        platform: &Platform,
        at: StepCtx,
    ) -> Result<(StageState, bool), BuildError> {
        let failed = |e: CopyError| BuildError::NamedContext(format!("named context {name}: {e}"));
        let mut state = scratch_state(platform);
        let sources = ["/".to_owned()];
        let spec = CopySpec::as_is(&sources);
        let source = fetched.context.copy_source();
        let plan = CopyPlan::resolve(&source, &spec, &MergedView::default()).map_err(failed)?;
        let entries = plan.entries().map_err(failed)?;
        // The files alone decide the layer, whatever the context is called or where it is.
        let key = CacheKey::new("named context files")
            .text("content", &digest_of_entries(&entries))
            .finish();
        let step = format!("[context {name}] {}", fetched.title);
        let ran = self.layer_step(
            at,
            &step,
            &key,
            false,
            copy_inputs(&step, entries),
            &mut state,
            |upper| {
                plan.write(upper, &MergedView::default())
                    .map_err(Into::into)
            },
        )?;
        state.history(fetched.description.clone(), true, &self.shared.created);
        if let Some(entry) = state.config.history.last_mut() {
            entry.comment = EXPORTER_HISTORY_COMMENT.to_owned();
        }
        Ok((state, ran))
    }
}
