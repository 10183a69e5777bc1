//! `COPY` and `ADD` from the build context or another stage, into a fresh layer directory.
//!
//! BuildKit's copy rules: sources are paths (or Go wildcards, matched component by component)
//! inside the source, a symlink named as a source is followed inside the source's root, a
//! directory source copies its *contents*, a file goes to `dest/<name>` when `dest` ends in `/`
//! or is an existing directory, and to `dest` itself otherwise; a wildcard that matches nothing
//! copies nothing; missing parent directories are created `0755` and owned by the `--chown`
//! user. Files from the build context belong to root unless `--chown` says otherwise; files
//! from a stage keep their owners. With `--parents` a source keeps its path under the
//! destination, from its `/./` pivot on when it has one (`a/./b/c` → `DEST/b/c`).

use crate::cache::key::CacheKey;
use crate::fs::context_index::ContextHashes;
use crate::fs::users::Owner;
use crate::ops::http::Download;
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
use sha2::{Digest as _, Sha256};
use stagecraft_dockerignore::{PatternMatcher, lossy_name};
use stagecraft_imagefs::{Found, MergedView, Stat, clean_components};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

mod write;

pub(crate) use write::{PreviousCopy, ensure_dir};

/// Where the files come from.
pub(crate) enum CopySource<'a> {
    /// The build context: a directory filtered by `.dockerignore`.
    Context {
        /// The context as a one-layer view (so symlinks resolve inside it).
        view: MergedView,
        /// The `.dockerignore` patterns.
        matcher: &'a PatternMatcher,
        /// The build's context index, which knows the hashes of unchanged files.
        hashes: &'a ContextHashes,
    },
    /// Another stage's (or image's) filesystem.
    Stage(MergedView),
    /// Heredoc contents (`COPY <<EOF /dest`): name and data.
    Inline(Vec<(String, String)>),
}

/// What to copy where.
pub(crate) struct CopySpec<'a> {
    /// Source paths as written, variables expanded.
    pub sources: &'a [String],
    /// The absolute destination, with its trailing `/` kept.
    pub dest: String,
    /// `--chown`, resolved.
    pub owner: Option<Owner>,
    /// `--chmod`, as permission bits.
    pub chmod: Option<u32>,
    /// `--exclude` patterns.
    pub excludes: &'a [String],
    /// `ADD`: unpack local tar archives (plain, gzip or zstd) instead of copying them.
    pub unpack_archives: bool,
    /// `COPY --parents`: a source keeps its path under the destination (from its `/./`
    /// pivot on, when it has one).
    pub parents: bool,
    /// Files `ADD` downloaded from URLs, copied after the other sources under their own names.
    pub downloads: &'a [Download],
    /// `ADD --unpack=true`: unpack downloaded archives too (never done by default).
    pub unpack_downloads: bool,
    /// `--cache-normalize-mode`: the cache key sees context files' modes without their group
    /// and other write bits, which only the umask of whoever checked the files out decides.
    pub normalize_modes: bool,
}

impl<'a> CopySpec<'a> {
    /// Copies `sources` to `/` as they are: no owner or mode change, no unpacking (for mount
    /// contents, which are not image layers).
    pub(crate) fn as_is(sources: &'a [String]) -> Self {
        CopySpec {
            sources,
            dest: "/".to_owned(),
            owner: None,
            chmod: None,
            excludes: &[],
            unpack_archives: false,
            parents: false,
            downloads: &[],
            unpack_downloads: false,
            normalize_modes: false,
        }
    }
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    /// A source path that does not exist (or is excluded by `.dockerignore`).
    #[error("{path:?}: not found{}", if *.excluded { " (it is excluded by .dockerignore)" } else { "" })]
    NotFound {
        /// The source as written.
        path: String,
        /// Whether it exists but `.dockerignore` excludes it.
        excluded: bool,
    },
    /// File system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// [`io_error`] for an entry of a copy's source, named by its real path (made only when an
/// error needs it: a `Found` keeps no path of its own).
fn found_error(found: &Found) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: found.real_path(),
        source,
    }
}

/// The error of a failed `chown`, explaining an owner that a rootless build's user namespace
/// does not map.
fn owner_failed(
    path: &Path,
    uid: u32,
    gid: u32,
) -> impl FnOnce(rustix::io::Errno) -> CopyError + '_ {
    move |errno| CopyError::Io {
        path: path.to_owned(),
        source: stagecraft_layer::owner_error(errno.into(), uid, gid),
    }
}

/// The error of a failed system call on `path`.
fn errno_at(path: &Path) -> impl FnOnce(rustix::io::Errno) -> CopyError + '_ {
    move |errno| CopyError::Io {
        path: path.to_owned(),
        source: errno.into(),
    }
}

/// One entry to create in the layer.
#[derive(Debug)]
enum Item {
    /// A file or directory or link from a source view.
    Entry { found: Found, dest: PathBuf },
    /// Inline content.
    Data { data: Vec<u8>, dest: PathBuf },
    /// A local archive `ADD` unpacks into the destination directory.
    Archive { found: Found, dest: PathBuf },
}

/// The resolved copy: every entry to write, in order (parents before children).
pub(crate) struct CopyPlan<'a> {
    items: Vec<Item>,
    /// Set when copying from the build context: its files belong to root unless `--chown`
    /// says otherwise, and their hashes come from the context index.
    context: Option<&'a ContextHashes>,
    owner: Option<Owner>,
    chmod: Option<u32>,
    dest_dirs: Vec<PathBuf>,
    unpack_archives: bool,
    parents: bool,
    normalize_modes: bool,
}

impl<'a> CopyPlan<'a> {
    /// Resolves sources against `source`, and the destination against `dest_view` (the stage
    /// being built), without touching anything.
    pub(crate) fn resolve(
        source: &CopySource<'a>,
        spec: &CopySpec<'_>,
        dest_view: &MergedView,
    ) -> Result<CopyPlan<'a>, CopyError> {
        let dest_is_dir_hint = spec.dest.ends_with('/');
        let dest = PathBuf::from("/").join(
            clean_components(Path::new(&spec.dest))
                .iter()
                .collect::<PathBuf>(),
        );
        let dest_exists_as_dir = dest_view
            .lookup_follow(&dest)
            .is_some_and(|f| f.metadata.is_dir());
        let excludes = PatternMatcher::new(spec.excludes).ok();
        let mut plan = CopyPlan {
            items: Vec::new(),
            context: match source {
                CopySource::Context { hashes, .. } => Some(*hashes),
                _ => None,
            },
            owner: spec.owner,
            chmod: spec.chmod,
            dest_dirs: Vec::new(),
            unpack_archives: spec.unpack_archives && matches!(source, CopySource::Context { .. }),
            parents: spec.parents,
            normalize_modes: spec.normalize_modes,
        };
        let file_dest = |name: &OsStr| {
            if dest_is_dir_hint || dest_exists_as_dir {
                dest.join(name)
            } else {
                dest.clone()
            }
        };
        match source {
            CopySource::Inline(docs) => {
                for (name, data) in docs {
                    plan.items.push(Item::Data {
                        data: data.clone().into_bytes(),
                        dest: file_dest(name.as_ref()),
                    });
                }
            }
            CopySource::Context { view, matcher, .. } => {
                for pattern in spec.sources {
                    let filter = |rel: &str| !matcher.matches(rel);
                    plan.add_source(
                        view,
                        pattern,
                        &dest,
                        &file_dest,
                        &filter,
                        excludes.as_ref(),
                        Some(matcher),
                    )?;
                }
            }
            CopySource::Stage(view) => {
                for pattern in spec.sources {
                    plan.add_source(
                        view,
                        pattern,
                        &dest,
                        &file_dest,
                        &|_| true,
                        excludes.as_ref(),
                        None,
                    )?;
                }
            }
        }
        for download in spec.downloads {
            // A one-layer view of the download's directory gives the file's `Found`.
            let dir = download.path.parent().unwrap_or(Path::new("/"));
            let found = MergedView::new(vec![dir.to_owned()])
                .lookup(&Path::new("/").join(&download.name))
                .ok_or_else(|| CopyError::Io {
                    path: download.path.clone(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })?;
            plan.items
                .push(if spec.unpack_downloads && is_archive(&found) {
                    Item::Archive {
                        found,
                        dest: dest.clone(),
                    }
                } else {
                    Item::Entry {
                        found,
                        dest: file_dest(download.name.as_ref()),
                    }
                });
        }
        // A large copy's list grew by doubling: up to half of it is room the plan, held until
        // the layer is written, never uses.
        plan.items.shrink_to_fit();
        Ok(plan)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_source(
        &mut self,
        view: &MergedView,
        pattern: &str,
        dest: &Path,
        file_dest: &dyn Fn(&OsStr) -> PathBuf,
        included: &dyn Fn(&str) -> bool,
        excludes: Option<&PatternMatcher>,
        ignore: Option<&PatternMatcher>,
    ) -> Result<(), CopyError> {
        let (pattern, pivot) = if self.parents {
            split_pivot(pattern)
        } else {
            (pattern.to_owned(), 0)
        };
        let pattern = pattern.as_str();
        // With `--parents`, where a match goes: the destination plus the match's path from
        // the pivot on.
        let kept = |rel: &Path| -> PathBuf { rel.iter().skip(pivot).collect() };
        let parts = clean_components(Path::new(pattern));
        let parts: Vec<String> = parts
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let matches: Vec<PathBuf> = if parts.iter().any(|p| stagecraft_gopath::has_wildcards(p)) {
            expand_wildcards(view, &parts)
                .into_iter()
                .filter(|rel| included(&lossy_name(rel.as_os_str())))
                .collect()
        } else {
            let rel = PathBuf::from(parts.join("/"));
            let exists = view.lookup_follow(&Path::new("/").join(&rel)).is_some();
            if !exists || (!rel.as_os_str().is_empty() && !included(&lossy_name(rel.as_os_str()))) {
                return Err(CopyError::NotFound {
                    path: pattern.to_owned(),
                    excluded: exists && ignore.is_some(),
                });
            }
            vec![rel]
        };
        for rel in matches {
            let source = Path::new("/").join(&rel);
            let Some(found) = view.lookup_follow(&source) else {
                continue;
            };
            if found.metadata.is_dir() {
                let dest = if self.parents {
                    dest.join(kept(&rel))
                } else {
                    dest.to_owned()
                };
                self.dest_dirs.push(dest.clone());
                let items = &mut self.items;
                view.walk_each(&source, 0, &mut |path, entry| {
                    let full_rel = lossy_name(path.strip_prefix("/").unwrap_or(&path).as_os_str());
                    let inner = path.strip_prefix(&source).unwrap_or(&path);
                    if !included(&full_rel)
                        || excludes.is_some_and(|m| m.matches(&lossy_name(inner.as_os_str())))
                    {
                        return;
                    }
                    items.push(Item::Entry {
                        found: entry,
                        dest: dest.join(inner),
                    });
                });
            } else {
                let name = rel.file_name().unwrap_or(rel.as_os_str());
                if excludes.is_some_and(|m| m.matches(&lossy_name(name))) {
                    continue;
                }
                if self.unpack_archives && found.metadata.is_file() && is_archive(&found) {
                    self.items.push(Item::Archive {
                        found,
                        dest: dest.to_owned(),
                    });
                    continue;
                }
                let dest = if self.parents {
                    dest.join(kept(&rel))
                } else {
                    file_dest(name)
                };
                self.items.push(Item::Entry { found, dest });
            }
        }
        Ok(())
    }

    /// A digest of everything that decides the result: destination paths, types, effective
    /// modes and owners, contents and link targets. Timestamps are left out on purpose, so a
    /// touched but unchanged file keeps the cache.
    pub(crate) fn content_digest(&self) -> Result<String, CopyError> {
        Ok(digest_of_entries(&self.entries()?))
    }

    /// What will be written, one `(destination path, description)` per entry: the kind, the
    /// effective mode and owner, and the content's sha256 or the link target. File contents are
    /// hashed in parallel. Cache keys and cache-miss explanations are made from these.
    pub(crate) fn entries(&self) -> Result<Vec<(String, String)>, CopyError> {
        use rayon::prelude::*;
        let dirs = self
            .dest_dirs
            .par_iter()
            .map(|dir| -> Result<(String, String), CopyError> {
                Ok((dir.display().to_string(), "dir".to_owned()))
            });
        let items = self
            .items
            .par_iter()
            .map(|item| -> Result<(String, String), CopyError> {
                Ok(match item {
                    Item::Archive { found, dest } => (
                        dest.display().to_string(),
                        format!("archive {}", self.file_sha256(found)?),
                    ),
                    Item::Data { data, dest } => (
                        dest.display().to_string(),
                        format!("data {}", hex::encode(Sha256::digest(data))),
                    ),
                    Item::Entry { found, dest } => {
                        let (uid, gid) = self.owner_of(&found.metadata);
                        let mode = self.key_mode(&found.metadata);
                        let kind = found.metadata.file_type();
                        let content = if kind.is_file() {
                            self.file_sha256(found)?
                        } else if kind.is_symlink() {
                            found
                                .read_link()
                                .map_err(found_error(found))?
                                .display()
                                .to_string()
                        } else {
                            String::new()
                        };
                        (
                            dest.display().to_string(),
                            format!("entry {mode:o} {uid}:{gid} {content}"),
                        )
                    }
                })
            });
        // Collected by index, into one vector of the final length: a parallel collect into a
        // `Result` gathers partial vectors (grown by doubling) and copies them into the result,
        // several copies of a large copy's list at once.
        let mut described = Vec::new();
        dirs.chain(items).collect_into_vec(&mut described);
        described.into_iter().collect()
    }

    /// The sha256 (hex) of a source file, by the context index for context files.
    fn file_sha256(&self, found: &Found) -> Result<String, CopyError> {
        let sha256 = match self.context {
            Some(hashes) => hashes.sha256(found),
            None => found.sha256(),
        }
        .map_err(found_error(found))?;
        Ok(hex::encode(sha256))
    }

    fn owner_of(&self, metadata: &Stat) -> (u32, u32) {
        match self.owner {
            Some(owner) => (owner.uid, owner.gid),
            None if self.context.is_some() => (0, 0),
            None => (metadata.uid, metadata.gid),
        }
    }

    /// The mode the cache key sees: the effective one, with group and other write cleared
    /// under `normalize_modes` for context files (a `--chmod` is what it says, untouched).
    fn key_mode(&self, metadata: &Stat) -> u32 {
        let mode = self.mode_of(metadata);
        if self.normalize_modes && self.context.is_some() && self.chmod.is_none() {
            mode & !0o022
        } else {
            mode
        }
    }

    fn mode_of(&self, metadata: &Stat) -> u32 {
        let kind_bits = metadata.mode & 0o170000;
        match self.chmod {
            Some(mode) if !metadata.is_symlink() => kind_bits | mode,
            _ => metadata.mode,
        }
    }

    /// Whether every entry comes from a source view (no heredoc, no archive to unpack): the
    /// plans [`write_reusing`](Self::write_reusing) can take unchanged files of an earlier
    /// result for.
    pub(crate) fn only_entries(&self) -> bool {
        self.items
            .iter()
            .all(|item| matches!(item, Item::Entry { .. }))
    }
}

/// The digest of [`CopyPlan::entries`] output: each path and description length-prefixed, so
/// no file name (a newline in it included) can make two different lists digest alike.
pub(crate) fn digest_of_entries(entries: &[(String, String)]) -> String {
    entries
        .iter()
        .fold(CacheKey::new("copy entries"), |key, (path, description)| {
            key.text("path", path).text("entry", description)
        })
        .finish()
}

/// Whether a file is a tar archive `ADD` unpacks, plain or compressed (decided from its
/// content: see [`stagecraft_layer::is_tar_stream`]).
fn is_archive(found: &Found) -> bool {
    found
        .open()
        .is_ok_and(|file| stagecraft_layer::is_tar_stream(io::BufReader::new(file)))
}

/// Relative paths in `view` matching the pattern components (Go `filepath.Match` per
/// component). Names are bytes: one that is not UTF-8 is matched as Go sees it (one U+FFFD
/// per bad byte) and kept as it is.
fn expand_wildcards(view: &MergedView, parts: &[String]) -> Vec<PathBuf> {
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    for part in parts {
        let mut next = Vec::new();
        for base in &current {
            let base_path = Path::new("/").join(base);
            if stagecraft_gopath::has_wildcards(part) {
                let Some(dir) = view.lookup_follow(&base_path) else {
                    continue;
                };
                for name in view.read_dir(&dir) {
                    if stagecraft_gopath::matches(part, &lossy_name(&name)) {
                        next.push(base.join(name));
                    }
                }
            } else if view.lookup(&base_path.join(part)).is_some() {
                next.push(base.join(part));
            }
        }
        current = next;
    }
    current
}

/// BuildKit's `--parents` pivot: `a/./b/c` is the source `a/b/c` of which `b/c` is kept.
/// Returns the path without the pivot and how many leading components are dropped.
fn split_pivot(pattern: &str) -> (String, usize) {
    let parts: Vec<&str> = pattern.split('/').collect();
    match parts.iter().skip(1).position(|p| *p == ".") {
        Some(i) => {
            let before = parts[..=i].join("/");
            let dropped = clean_components(Path::new(&before)).len();
            let after = parts[i + 2..].join("/");
            (format!("{before}/{after}"), dropped)
        }
        None => (pattern.to_owned(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage holding `files` (each holding its own path); copies `sources` from it into
    /// `/dest/` (owned by root, with `--parents` when `parents`). Returns whether the plan
    /// splits into two independent halves, the layer it wrote, and the directory holding both.
    fn copy_from_stage(
        files: &[String],
        sources: &[&str],
        parents: bool,
    ) -> (bool, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for file in files {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, file).unwrap();
        }
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        let spec = CopySpec {
            dest: "/dest/".to_owned(),
            owner: Some(Owner { uid: 0, gid: 0 }),
            parents,
            ..CopySpec::as_is(&sources)
        };
        let source = CopySource::Stage(MergedView::new(vec![root]));
        let plan = CopyPlan::resolve(&source, &spec, &MergedView::default()).unwrap();
        let split = plan.independent_halves().is_some();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        plan.write(&upper, &MergedView::default()).unwrap();
        (split, upper, dir)
    }

    /// Copies `sources` from a stage holding `x/a.txt`, `x/sub/f.txt`, `y/b/c.txt` into
    /// `/dest/`; returns the files of the layer, sorted.
    fn copied(sources: &[&str], parents: bool) -> Vec<String> {
        let files = ["x/a.txt", "x/sub/f.txt", "y/b/c.txt"].map(String::from);
        let (_, upper, _dir) = copy_from_stage(&files, sources, parents);
        let mut files: Vec<String> = walkdir(&upper)
            .into_iter()
            .map(|p| p.strip_prefix(&upper).unwrap().display().to_string())
            .collect();
        files.sort();
        files
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walkdir(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    /// A copied file gets its source's mode and owner whether or not its creation already gave
    /// them: bits the umask masks, setuid, setgid and sticky bits, the group a setgid
    /// directory hands down, and other owners (these need root).
    #[test]
    fn copied_files_keep_every_mode_bit_and_owner() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let root_user = rustix::process::geteuid().is_root();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let shared = root.join("src/shared");
        fs::create_dir_all(&shared).unwrap();
        let mut files = Vec::new();
        for (name, mode) in [
            ("plain", 0o644),
            ("group-write", 0o664),
            ("all", 0o777),
            ("private", 0o600),
            ("setuid", 0o4755),
            ("setgid", 0o2750),
            ("sticky", 0o1644),
        ] {
            for parent in [root.join("src"), shared.clone()] {
                let path = parent.join(name);
                fs::write(&path, name).unwrap();
                files.push((path, mode));
            }
        }
        if root_user {
            std::os::unix::fs::chown(&shared, Some(0), Some(1234)).unwrap();
            std::os::unix::fs::chown(&files[0].0, Some(0), Some(0)).unwrap();
            std::os::unix::fs::chown(&files[2].0, Some(4321), Some(1234)).unwrap();
            std::os::unix::fs::chown(&files[3].0, Some(0), Some(0)).unwrap();
            std::os::unix::fs::chown(&files[5].0, Some(77), Some(0)).unwrap();
        }
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o2775)).unwrap();
        for (path, mode) in &files {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
        }
        let sources = vec!["src".to_owned()];
        let spec = CopySpec {
            dest: "/dest/".to_owned(),
            ..CopySpec::as_is(&sources)
        };
        let source = CopySource::Stage(MergedView::new(vec![root.clone()]));
        let plan = CopyPlan::resolve(&source, &spec, &MergedView::default()).unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        plan.write(&upper, &MergedView::default()).unwrap();
        for (path, mode) in &files {
            let copy = upper
                .join("dest")
                .join(path.strip_prefix(root.join("src")).unwrap());
            let (from, to) = (fs::metadata(path).unwrap(), fs::metadata(&copy).unwrap());
            assert_eq!(from.mode() & 0o7777, *mode, "{}", path.display());
            assert_eq!(to.mode() & 0o7777, *mode, "{}", copy.display());
            assert_eq!(
                (to.uid(), to.gid()),
                (from.uid(), from.gid()),
                "{}",
                copy.display()
            );
        }
    }

    #[test]
    fn parents_keep_the_source_paths() {
        assert_eq!(
            copied(&["x/a.txt", "y/b"], true),
            ["dest/x/a.txt", "dest/y/b/c.txt"]
        );
        // Without --parents a file lands in the destination and a directory's contents do.
        assert_eq!(
            copied(&["x/a.txt", "y/b"], false),
            ["dest/a.txt", "dest/c.txt"]
        );
    }

    #[test]
    fn parents_keep_the_path_after_the_pivot() {
        assert_eq!(copied(&["x/./sub/f.txt"], true), ["dest/sub/f.txt"]);
        assert_eq!(copied(&["./x/a.txt"], true), ["dest/x/a.txt"]);
        assert_eq!(
            copied(&["x/./sub", "y/./b/c.txt"], true),
            ["dest/b/c.txt", "dest/sub/f.txt"]
        );
    }

    #[test]
    fn parents_with_wildcards_keep_each_match_path() {
        assert_eq!(
            copied(&["*/a.txt", "*/*/c.txt"], true),
            ["dest/x/a.txt", "dest/y/b/c.txt"]
        );
        assert_eq!(split_pivot("a/./b/c"), ("a/b/c".to_owned(), 1));
        assert_eq!(split_pivot("./a/b"), ("./a/b".to_owned(), 0));
        assert_eq!(split_pivot("a/b"), ("a/b".to_owned(), 0));
    }

    /// A stage holding `big/<top>/fNNNN` files (`per_top` under each of `tops`) and
    /// `big/0.txt`, `extra/0.txt` and `extra/z.txt`, each file holding its path; the plan of
    /// copying `sources` from it to `/dest/`, and the layer it writes.
    fn big_copy(
        sources: &[&str],
        tops: &[&str],
        per_top: usize,
    ) -> (bool, PathBuf, tempfile::TempDir) {
        let mut files: Vec<String> = vec![
            "big/0.txt".into(),
            "extra/0.txt".into(),
            "extra/z.txt".into(),
        ];
        for top in tops {
            files.extend((0..per_top).map(|i| format!("big/{top}/f{i:04}")));
        }
        copy_from_stage(&files, sources, false)
    }

    #[test]
    fn a_large_copy_is_written_in_two_halves_to_the_same_tree() {
        let tops = ["a", "b", "c", "d"];
        let (split, upper, _dir) = big_copy(&["big/", "extra/z.txt"], &tops, 300);
        assert!(split, "a copy of 1,200 files in four directories splits");
        let mut copied = walkdir(&upper);
        copied.sort();
        let mut expected: Vec<PathBuf> = vec![upper.join("dest/0.txt"), upper.join("dest/z.txt")];
        for top in tops {
            expected.extend((0..300).map(|i| upper.join(format!("dest/{top}/f{i:04}"))));
        }
        expected.sort();
        assert_eq!(copied, expected);
        assert_eq!(
            fs::read(upper.join("dest/c/f0123")).unwrap(),
            b"big/c/f0123"
        );
        assert_eq!(fs::read(upper.join("dest/z.txt")).unwrap(), b"extra/z.txt");
    }

    /// `COPY src/ ./` where everything is below `src/app/`: the halves divide `app/`, which
    /// (with `dest/`) is made before them.
    #[test]
    fn a_large_copy_below_one_directory_divides_the_first_that_branches() {
        let mut files = Vec::new();
        for module in ["m0", "m1", "m2", "m3"] {
            files.extend((0..300).map(|i| format!("src/app/{module}/f{i:04}")));
        }
        let (split, upper, _dir) = copy_from_stage(&files, &["src/"], false);
        assert!(split, "1,200 files in four directories below app/ split");
        let mut copied = walkdir(&upper);
        copied.sort();
        let mut expected: Vec<PathBuf> = files
            .iter()
            .map(|file| upper.join(file.replacen("src/", "dest/", 1)))
            .collect();
        expected.sort();
        assert_eq!(copied, expected);
        assert_eq!(
            fs::read(upper.join("dest/app/m2/f0123")).unwrap(),
            b"src/app/m2/f0123"
        );
        // One directory of files: the halves divide its names.
        let files: Vec<String> = (0..1100).map(|i| format!("src/app/m0/f{i:04}")).collect();
        let (split, upper, _dir) = copy_from_stage(&files, &["src/"], false);
        assert!(split, "1,100 files in one directory split by name");
        assert_eq!(walkdir(&upper).len(), 1100);
    }

    #[test]
    fn a_large_copy_whose_sources_meet_at_a_path_is_written_in_order() {
        // `0.txt` comes from `big/` first and from `extra/` last: the halves would share it.
        let (split, upper, _dir) = big_copy(&["big/", "extra/0.txt"], &["a"], 1100);
        assert!(!split);
        assert_eq!(fs::read(upper.join("dest/0.txt")).unwrap(), b"extra/0.txt");
        // Two directory sources: never split.
        let (split, upper, _dir) = big_copy(&["big/", "extra/"], &["a", "b"], 600);
        assert!(!split);
        assert_eq!(fs::read(upper.join("dest/0.txt")).unwrap(), b"extra/0.txt");
        assert_eq!(
            fs::read(upper.join("dest/b/f0599")).unwrap(),
            b"big/b/f0599"
        );
    }

    #[test]
    fn a_link_an_earlier_source_copied_is_replaced_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("one")).unwrap();
        fs::create_dir_all(root.join("two/a")).unwrap();
        fs::write(root.join("two/a/x"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("one/a")).unwrap();
        let sources = ["one/".to_owned(), "two/".to_owned()];
        let spec = CopySpec {
            dest: "/dest/".to_owned(),
            owner: Some(Owner { uid: 0, gid: 0 }),
            ..CopySpec::as_is(&sources)
        };
        let source = CopySource::Stage(MergedView::new(vec![root]));
        let plan = CopyPlan::resolve(&source, &spec, &MergedView::default()).unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        plan.write(&upper, &MergedView::default()).unwrap();
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert!(fs::symlink_metadata(upper.join("dest/a")).unwrap().is_dir());
        assert_eq!(fs::read(upper.join("dest/a/x")).unwrap(), b"x");
    }
}
