//! `COPY` and `ADD`: sources resolved (context, stage, image, URL, git repository) into a
//! copy plan, keyed by content, written as a layer.

use crate::cache::key::CacheKey;
use crate::convert::config::destination;
use crate::fs::users::resolve_owner;
use crate::ops::copy::{CopyPlan, CopySource, CopySpec, PreviousCopy};
use crate::outcome::{BuildError, Material};
use crate::progress::Event;
use crate::remote_cache::CacheRecord;
use crate::state::{BuildRun, StageState, StepCtx};
use stagecraft_dockerfile::{Code, Command};
use stagecraft_imagefs::MergedView;
use stagecraft_store::{ScratchDir, ScratchFile, Store};
use std::path::PathBuf;

impl BuildRun<'_> {
    /// `ADD --checksum`, checked as BuildKit checks it: one source, and that a URL.
    pub(crate) fn add_checksum(
        &self,
        command: &Command,
        state: &StageState,
        args: &CopyArgs<'_>,
        sources: &[String],
        urls: &[String],
    ) -> Result<Option<crate::ops::http::Checksum>, BuildError> {
        let Some(raw) = args.checksum else {
            return Ok(None);
        };
        let value = self.expand(command, raw, state)?;
        if sources.len() > 1 {
            return Err(self.located(
                command,
                Code::Instruction,
                "checksum can't be specified for multiple sources: use one ADD per URL",
            ));
        }
        if urls.is_empty() {
            return Err(self.located(
                command,
                Code::Instruction,
                "checksum requires HTTP(S) or Git sources: a local file's content is already known",
            ));
        }
        crate::ops::http::Checksum::parse(&value)
            .map(Some)
            .map_err(|e| self.located(command, Code::Instruction, format!("--checksum: {e}")))
    }

    /// For `ADD <git repository> <dest>`: checks the repository out into a fresh directory of
    /// the store's ingest area and returns it (keep it alive while copying) with the checkout
    /// and the path to copy from it. `None` when no source is a repository. Like BuildKit, the
    /// repository is fetched on every build: only its content tells whether the cache holds.
    pub(crate) fn checkout_git_source(
        &self,
        command: &Command,
        state: &StageState,
        args: &CopyArgs<'_>,
        sources: &[String],
    ) -> Result<(Option<ScratchDir>, Option<GitCheckout>), BuildError> {
        let Some((index, parsed)) = sources
            .iter()
            .enumerate()
            .find_map(|(i, s)| crate::ops::git::parse(s).map(|parsed| (i, parsed)))
        else {
            return Ok((None, None));
        };
        let mut git = parsed.map_err(|e| self.located(command, Code::Source, e.to_string()))?;
        if !args.is_add {
            return Err(self.located(
                command,
                Code::Instruction,
                format!(
                    "source can't be a git ref for COPY: {} (use ADD)",
                    sources[index]
                ),
            ));
        }
        if sources.len() > 1 {
            return Err(self.located(
                command,
                Code::Instruction,
                "ADD of a git repository takes that one source: use one ADD per repository",
            ));
        }
        if let Some(raw) = args.checksum {
            let checksum = self.expand(command, raw, state)?;
            if git.checksum.as_ref().is_some_and(|c| *c != checksum) {
                return Err(self.located(
                    command,
                    Code::Source,
                    format!(
                        "checksum mismatch {:?} != {checksum:?}",
                        git.checksum.unwrap_or_default()
                    ),
                ));
            }
            git.checksum = Some(checksum);
        }
        let keep_git_dir = match (args.keep_git_dir, git.keep_git_dir) {
            (Some(flag), Some(query)) if flag != query => {
                return Err(self.located(
                    command,
                    Code::Instruction,
                    "inconsistent keep-git-dir configuration",
                ));
            }
            (flag, query) => flag.or(query).unwrap_or(false),
        };
        let (scratch, checkout, commit) = self.fetch_repository(&git, keep_git_dir, |e| {
            self.located(
                command,
                Code::Source,
                format!("ADD {}: {e}", sources[index]),
            )
        })?;
        self.add_material(Material::Git {
            url: git.remote.clone(),
            commit: commit.clone(),
        });
        let path = match &git.subdir {
            Some(subdir) => format!("/{subdir}"),
            None => "/".to_owned(),
        };
        let checkout = GitCheckout {
            dir: checkout,
            path,
            commit,
            keep_git_dir,
        };
        Ok((Some(scratch), Some(checkout)))
    }

    /// Checks the repository `git` out into a fresh directory of the store's ingest area, as
    /// `ADD` and a named context do: returns that directory (removed on drop), the checkout in
    /// it and its commit, which progress reports. `failed` makes the error of a failed
    /// checkout.
    pub(crate) fn fetch_repository(
        &self,
        git: &crate::ops::git::GitSource,
        keep_git_dir: bool,
        failed: impl FnOnce(crate::ops::git::GitError) -> BuildError,
    ) -> Result<(ScratchDir, PathBuf, String), BuildError> {
        let scratch = self
            .engine
            .store
            .scratch_dir("git")
            .map_err(|e| BuildError::Store {
                what: "creating a checkout directory".into(),
                source: e,
            })?;
        let checkout = scratch.path().join("repository");
        let commit = git.checkout(&checkout, keep_git_dir).map_err(failed)?;
        self.engine.progress.event(Event::Info {
            message: format!(
                "git: {} at {} is commit {commit}",
                git.remote,
                git.reference.as_deref().unwrap_or("HEAD")
            ),
            context_files: None,
        });
        Ok((scratch, checkout, commit))
    }

    /// Downloads `ADD`'s URL sources into a fresh directory of the store's ingest area (none
    /// for no URLs). BuildKit fetches them on every build too, since only the content tells
    /// whether the cached layer still holds.
    pub(crate) fn download_sources(
        &self,
        command: &Command,
        keyword: &str,
        urls: &[String],
        checksum: Option<&crate::ops::http::Checksum>,
    ) -> Result<(Option<ScratchDir>, Vec<crate::ops::http::Download>), BuildError> {
        if urls.is_empty() {
            return Ok((None, Vec::new()));
        }
        let root = self
            .engine
            .store
            .scratch_dir("download")
            .map_err(|e| BuildError::Store {
                what: "creating a download directory".into(),
                source: e,
            })?;
        let mut downloads = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            // One directory per URL: two URLs may end in the same file name.
            let dir = root.path().join(i.to_string());
            std::fs::create_dir(&dir).map_err(|e| BuildError::Io {
                what: dir.display().to_string(),
                source: e,
            })?;
            let download = crate::ops::http::download(url, &dir, checksum).map_err(|e| {
                let pinned = matches!(e, crate::ops::http::DownloadError::Checksum { .. });
                let error = self.diagnostic(
                    command,
                    Code::Source,
                    format!("{keyword} failed: {e}"),
                );
                BuildError::Step(if pinned {
                    error.with_hint("the server now sends other content than --checksum pins; if that is expected, put the new digest in --checksum")
                } else {
                    error
                })
            })?;
            self.add_material(Material::Http {
                url: url.clone(),
                digest: download.sha256.clone(),
            });
            downloads.push(download);
        }
        Ok((Some(root), downloads))
    }

    pub(crate) fn copy_step(
        &self,
        ctx: StepCtx,
        command: &Command,
        state: &mut StageState,
        args: CopyArgs<'_>,
    ) -> Result<bool, BuildError> {
        let keyword = if args.is_add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for source in &args.paths.sources {
            sources.push(self.expand(command, &source.value, state)?);
        }
        // The checkout must outlive the layer's writing, which copies from it.
        let (_git_dir, git) = self.checkout_git_source(command, state, &args, &sources)?;
        let (urls, locals): (Vec<String>, Vec<String>) = match &git {
            // The repository (or its subdirectory) is copied as a directory: its content.
            Some(checkout) => (Vec::new(), vec![checkout.path.clone()]),
            None => sources
                .iter()
                .cloned()
                .partition(|s| crate::ops::http::is_url(s)),
        };
        if !urls.is_empty() && !args.is_add {
            return Err(self.located(
                command,
                Code::Instruction,
                format!(
                    "source can't be a URL for COPY: {} (use ADD to download it)",
                    urls[0]
                ),
            ));
        }
        let checksum = match git {
            Some(_) => None,
            None => self.add_checksum(command, state, &args, &sources, &urls)?,
        };
        let dest_raw = self.expand(command, &args.paths.dest.value, state)?;
        let dest = destination(&state.config.config.working_dir, &dest_raw);
        let view = state.view();
        let owner = match args.chown {
            Some(chown) => {
                let chown = self.expand(command, chown, state)?;
                Some(
                    resolve_owner(&chown, &view)
                        .map_err(|e| self.located(command, Code::Instruction, e.to_string()))?,
                )
            }
            None => None,
        };
        let chmod = match args.chmod {
            Some(chmod) => {
                let chmod = self.expand(command, chmod, state)?;
                Some(u32::from_str_radix(&chmod, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
                    self.located(command, Code::Instruction, format!("invalid chmod parameter: '{chmod}'. it should be octal string and between 0 and 07777"))
                })?)
            }
            None => None,
        };
        let excludes: Vec<String> = args
            .excludes
            .iter()
            .map(|w| self.expand(command, &w.value, state))
            .collect::<Result<_, _>>()?;
        // The directory must outlive the layer's writing, which copies from it.
        let (_download_dir, downloads) =
            self.download_sources(command, keyword, &urls, checksum.as_ref())?;
        let (source, source_key) = match (args.from, &git) {
            (_, Some(checkout)) => (
                CopySource::Stage(MergedView::new(vec![checkout.dir.clone()])),
                "git".to_owned(),
            ),
            (None, None) if !args.paths.inline.is_empty() && locals.is_empty() => {
                let docs = args
                    .paths
                    .inline
                    .iter()
                    .map(|doc| {
                        let data = if doc.expand {
                            self.expand(command, &doc.data, state)?
                        } else {
                            doc.data.clone()
                        };
                        Ok((doc.path.clone(), data))
                    })
                    .collect::<Result<Vec<_>, BuildError>>()?;
                (CopySource::Inline(docs), "inline".to_owned())
            }
            (None, None) => (self.shared.context.copy_source(), "context".to_owned()),
            (Some(from), None) => self.source_view(command, from)?,
        };
        let spec = CopySpec {
            sources: &locals,
            dest: dest.clone(),
            owner,
            chmod,
            excludes: &excludes,
            unpack_archives: args.is_add && args.unpack.unwrap_or(true),
            parents: args.parents,
            // `--chmod` applies to downloads too, as in BuildKit since dockerfile 1.3 (the
            // frontend in docker 20.10 left them 0600: moby/buildkit#2114).
            downloads: &downloads,
            // BuildKit never unpacks a remote archive unless `--unpack` says so.
            unpack_downloads: args.unpack == Some(true),
            normalize_modes: self.options.cache_normalize_mode,
        };
        // `--link` copies onto scratch (BuildKit merges the result on top): the destination
        // is resolved and written without the stage below, and the key leaves it out, so a
        // changed base keeps the layer cached.
        let dest_view = if args.link {
            MergedView::default()
        } else {
            view
        };
        let plan = CopyPlan::resolve(&source, &spec, &dest_view)
            .map_err(|e| self.located(command, Code::Source, format!("{keyword} failed: {e}")))?;
        let mut entries = plan
            .entries()
            .map_err(|e| self.located(command, Code::Source, e.to_string()))?;
        if let Some(checkout) = git.as_ref().filter(|c| c.keep_git_dir) {
            // A kept `.git` holds checkout times (index, logs): it is keyed by its commit.
            entries.retain(|(path, _)| !path.contains("/.git/") && !path.ends_with("/.git"));
            entries.push(("git commit".to_owned(), checkout.commit.clone()));
        }
        let digest = crate::ops::copy::digest_of_entries(&entries);
        let source_kind = source_key.split(' ').next().unwrap_or_default().to_owned();
        let parent_key = if args.link { "" } else { state.key.as_str() };
        let key = CacheKey::new(keyword)
            .text("parent", parent_key)
            .text("dest", &dest)
            .owner("chown", owner)
            .mode("chmod", chmod)
            .text("source kind", &source_kind)
            .text("content", &digest)
            .flag("link", args.link)
            // The mtime of a download comes from `Last-Modified`, which the content digest
            // leaves out; BuildKit keys on it as well.
            .text(
                "download times",
                &downloads
                    .iter()
                    .map(|d| d.last_modified.as_deref().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .finish();
        let mut message = keyword.to_owned();
        if let Some(chown) = args.chown {
            message.push_str(&format!(" --chown={chown}"));
        }
        if let Some(chmod) = args.chmod {
            message.push_str(&format!(" --chmod={chmod}"));
        }
        for source in &sources {
            message.push_str(&format!(" {source}"));
        }
        for doc in &args.paths.inline {
            message.push_str(&format!(" <<{}", doc.path));
        }
        message.push_str(&format!(" {}", args.paths.dest.value));
        let name = match args.from {
            Some(from) => format!("{keyword} --from={from} {} {dest_raw}", sources.join(" ")),
            None => format!("{keyword} {} {dest_raw}", sources.join(" ")),
        };
        // An edit-rebuild changes a few files of a big copy: the step's earlier result (same
        // instruction, options and base: the key without the content) has the rest.
        let identity = (source_kind == "context" && downloads.is_empty() && plan.only_entries())
            .then(|| {
                let key = CacheKey::new("copy identity")
                    .text("keyword", keyword)
                    .text("parent", parent_key)
                    .text("dest", &dest)
                    .owner("chown", owner)
                    .mode("chmod", chmod)
                    .flag("link", args.link)
                    .flag("parents", args.parents)
                    .flag("unpack", spec.unpack_archives)
                    .flag("normalize modes", spec.normalize_modes);
                let key = locals.iter().fold(key, |key, s| key.text("source", s));
                excludes
                    .iter()
                    .fold(key, |key, e| key.text("exclude", e))
                    .finish()
            });
        // Kept in a scratch file of the store while the layer is made, rather than in memory:
        // the record of a large copy is as large as its list of entries. (A hint: a file that
        // cannot be written costs the next edit a full copy.)
        let files = identity
            .as_ref()
            .and_then(|_| write_files(self.engine.store, &entries).ok());
        let inputs = copy_inputs(&name, entries);
        let ran = self.layer_step_reusing(
            ctx,
            &name,
            &key,
            args.link,
            inputs,
            state,
            |upper, _work, _id| {
                // Moved in, so that its entries are freed once written, before the layer tar
                // is made (a plan of a large copy holds an entry per file).
                let plan = plan;
                let previous = match (&identity, &files) {
                    (Some(identity), Some(files)) => self.previous_copy(identity, files),
                    _ => None,
                };
                let Some((previous, blob)) = previous else {
                    return plan
                        .write(upper, &dest_view)
                        .map(|()| None)
                        .map_err(crate::BoxError::from);
                };
                let linked = plan
                    .write_reusing(upper, &dest_view, Some(&previous))
                    .map_err(crate::BoxError::from)?;
                // The linked files' bytes are in the earlier layer tar, when it was written
                // (a lazy blob has none): the new one copies them from there. Otherwise they
                // are read from the files, hard links to the earlier snapshot's: the same bytes.
                let Some(blob) = blob.filter(|_| !linked.is_empty()) else {
                    return Ok(None);
                };
                let mut reused = stagecraft_layer::LazyRootfs::new();
                if let Ok(extents) = reused.reuse_blob(&blob) {
                    for (rel, meta) in &linked {
                        if let Some(extent) = extents.get(rel) {
                            reused.reuse(meta, *extent);
                        }
                    }
                }
                Ok(Some(reused))
            },
        )?;
        if let (Some(identity), Some(files), Some(layer)) = (&identity, files, state.layers.last())
        {
            // Hints: a lost one costs the next edit a full copy. The identity holds a step
            // record as a key does: the layer the step made last.
            let store = self.engine.store;
            let _ = store.put_cache_json(
                identity,
                &CacheRecord {
                    layer: layer.clone(),
                },
            );
            let _ = store.put_cache_record_file(&files_key(identity, &layer.diff_id), files);
        }
        state.history(format!("{message} # buildkit"), true, &self.shared.created);
        Ok(ran)
    }
}

impl BuildRun<'_> {
    /// The earlier result of the copy step `identity` and the file of its layer tar (if it
    /// was ever written: see [`Store::blob_file`]), with the destination paths whose entry is
    /// unchanged since (`files`: this build's entries, as [`write_files`] wrote them). `None`
    /// when there is none, or it is no longer stored.
    fn previous_copy(
        &self,
        identity: &str,
        files: &ScratchFile,
    ) -> Option<(PreviousCopy, Option<PathBuf>)> {
        let store = self.engine.store;
        let previous: CacheRecord = store.get_cache_json(identity).ok()??;
        let layer = previous.layer;
        // Only a plain tar's bytes can be taken as they are.
        if layer.digest != layer.diff_id {
            return None;
        }
        let snapshot = store.snapshot_path(&layer.diff_id)?;
        let blob = Some(store.blob_path(&layer.digest)).filter(|blob| blob.is_file());
        let old = store
            .get_cache_record(&files_key(identity, &layer.diff_id))
            .ok()??;
        let old = decode_files(&old);
        let files = std::fs::read(files.path()).ok()?;
        let unchanged = decode_files(&files)
            .into_iter()
            .filter(|(path, description)| old.get(path) == Some(description))
            .map(|(path, _)| String::from_utf8_lossy(path).into_owned())
            .collect();
        Some((
            PreviousCopy {
                snapshot,
                unchanged,
            },
            blob,
        ))
    }
}

/// The record of the entries (destination paths and descriptions) the copy step `identity`
/// made `layer` of.
fn files_key(identity: &str, layer: &stagecraft_image::Digest) -> String {
    CacheKey::new("copy files")
        .text("identity", identity)
        .text("layer", layer.as_str())
        .finish()
}

/// A scratch file of `store` holding the entries as `path NUL description NUL`, one after the
/// other (neither holds a NUL).
fn write_files(store: &Store, entries: &[(String, String)]) -> std::io::Result<ScratchFile> {
    use std::io::Write as _;
    let scratch = store
        .scratch_file("copy-files")
        .map_err(std::io::Error::other)?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(scratch.path())?);
    for (path, description) in entries {
        out.write_all(path.as_bytes())?;
        out.write_all(b"\0")?;
        out.write_all(description.as_bytes())?;
        out.write_all(b"\0")?;
    }
    out.flush()?;
    Ok(scratch)
}

/// The entries [`write_files`] wrote, by path (a later entry of a path wins, as it does when
/// the files are written).
fn decode_files(bytes: &[u8]) -> std::collections::HashMap<&[u8], &[u8]> {
    let mut fields = bytes.split(|&b| b == 0);
    let mut files = std::collections::HashMap::new();
    while let (Some(path), Some(description)) = (fields.next(), fields.next()) {
        files.insert(path, description);
    }
    files
}

/// What `--explain` compares of a copy step named `name` between builds: the step, and each
/// entry it copies with a short digest of what the key saw of it.
pub(crate) fn copy_inputs(name: &str, entries: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut inputs = vec![("instruction".to_owned(), name.to_owned())];
    inputs.extend(entries.into_iter().map(|(path, description)| {
        (
            format!("file {path}"),
            CacheKey::new("entry")
                .text("description", &description)
                .finish()[..12]
                .to_owned(),
        )
    }));
    inputs
}

/// The parts of `COPY` and `ADD` the copy step needs.
pub(crate) struct CopyArgs<'a> {
    pub(crate) is_add: bool,
    pub(crate) paths: &'a stagecraft_dockerfile::SourcesAndDest,
    pub(crate) from: Option<&'a str>,
    pub(crate) chown: Option<&'a str>,
    pub(crate) chmod: Option<&'a str>,
    pub(crate) excludes: &'a [stagecraft_dockerfile::Word],
    pub(crate) link: bool,
    /// `COPY --parents`.
    pub(crate) parents: bool,
    /// `ADD --unpack`: `None` means unpack local archives (the default) and never remote ones.
    pub(crate) unpack: Option<bool>,
    /// `ADD --checksum`, unexpanded.
    pub(crate) checksum: Option<&'a str>,
    /// `ADD --keep-git-dir`.
    pub(crate) keep_git_dir: Option<bool>,
}

/// A repository `ADD` checked out.
pub(crate) struct GitCheckout {
    /// The checkout.
    pub(crate) dir: PathBuf,
    /// What to copy from it: `/` or `/<subdir>`.
    pub(crate) path: String,
    /// The commit checked out.
    pub(crate) commit: String,
    /// Whether `.git` is part of the copy.
    pub(crate) keep_git_dir: bool,
}
