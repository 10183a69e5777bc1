//! A directory a build copies files from as a build context: the main context, or a named one
//! (`--build-context NAME=DIR`, or a repository or download fetched for one). Every one is
//! read the same way: as a one-layer view resolved inside its root (a symlink never leads to
//! the host's files), filtered by its ignore file, its files' hashes through a context index.

use crate::fs::context_index::ContextHashes;
use crate::ops::copy::CopySource;
use crate::outcome::BuildError;
use crate::progress::{Event, ProgressSink};
use stagecraft_dockerignore::PatternMatcher;
use stagecraft_imagefs::MergedView;
use stagecraft_store::{ScratchDir, Store};
use std::path::{Path, PathBuf};

/// A build context directory, ready to be copied from.
pub(crate) struct LocalContext {
    /// The directory, as the views name it.
    root: PathBuf,
    /// Its ignore patterns.
    matcher: PatternMatcher,
    /// Its files' hashes, from (and for) its context index.
    hashes: ContextHashes,
    /// The checkout or download the context is, removed when the build ends; its index is
    /// never saved (the next build fetches into another directory).
    scratch: Option<ScratchDir>,
}

impl LocalContext {
    /// The main build context `dir`: `.dockerignore`, or the Dockerfile's own
    /// `NAME.dockerignore`, applies.
    pub(crate) fn main(
        store: &Store,
        dir: &Path,
        dockerfile: Option<&Path>,
    ) -> Result<LocalContext, BuildError> {
        let matcher = match stagecraft_dockerignore::find_ignore_file(dir, dockerfile) {
            None => PatternMatcher::default(),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| BuildError::Io {
                    what: format!("reading {}", path.display()),
                    source: e,
                })?;
                ignore_patterns(&text, &path)?
            }
        };
        Ok(LocalContext {
            root: dir.to_owned(),
            matcher,
            hashes: ContextHashes::load(store, dir),
            scratch: None,
        })
    }

    /// The named context directory `dir`: only the `.dockerignore` at its root applies (read
    /// inside it), as BuildKit loads a named local context; the main context's does not.
    pub(crate) fn named(store: &Store, dir: &Path) -> Result<LocalContext, BuildError> {
        let ignore = Path::new("/.dockerignore");
        let matcher = match MergedView::new(vec![dir.to_owned()]).read_file(ignore) {
            None => PatternMatcher::default(),
            Some(bytes) => ignore_patterns(&String::from_utf8_lossy(&bytes), &dir.join(ignore))?,
        };
        Ok(LocalContext {
            root: dir.to_owned(),
            matcher,
            hashes: ContextHashes::load(store, dir),
            scratch: None,
        })
    }

    /// A checkout or download at `root` inside `scratch`, which it keeps for the build: no
    /// ignore file applies (BuildKit applies none to git and http contexts).
    pub(crate) fn fetched(store: &Store, root: &Path, scratch: ScratchDir) -> LocalContext {
        LocalContext {
            root: root.to_owned(),
            matcher: PatternMatcher::default(),
            hashes: ContextHashes::load(store, root),
            scratch: Some(scratch),
        }
    }

    /// The context as a copy source: its files belong to root unless `--chown` says
    /// otherwise, and their hashes come from its index.
    pub(crate) fn copy_source(&self) -> CopySource<'_> {
        CopySource::Context {
            view: MergedView::new(vec![self.root.clone()]),
            matcher: &self.matcher,
            hashes: &self.hashes,
        }
    }

    /// Saves the context index for the next build (a fetched context keeps none); with
    /// `report`, says how the build came by the files' hashes first. The index is only a
    /// hint: failing to save it costs the next build time, not correctness, so it is reported
    /// and the build goes on.
    pub(crate) fn finish(self, store: &Store, progress: &dyn ProgressSink, report: bool) {
        if self.scratch.is_some() {
            return;
        }
        let counts = self.hashes.counts();
        if report && counts.hashed + counts.from_index > 0 {
            progress.event(counts.event());
        }
        if let Err(error) = self.hashes.save(store) {
            progress.event(Event::Info {
                message: format!(
                    "warning: the context index of {} could not be saved, the next build will hash these files again: {error}",
                    self.root.display()
                ),
                context_files: None,
            });
        }
    }
}

fn ignore_patterns(text: &str, path: &Path) -> Result<PatternMatcher, BuildError> {
    PatternMatcher::from_ignore_file(text)
        .map_err(|e| BuildError::Dockerignore(format!("{}: {e}", path.display())))
}
