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

use crate::context_index::ContextHashes;
use crate::glob;
use crate::remote::Download;
use crate::rootfs::{Found, MergedView, clean_components};
use crate::users::Owner;
use sha2::{Digest as _, Sha256};
use stagecraft_dockerignore::PatternMatcher;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the files come from.
pub enum CopySource<'a> {
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
pub struct CopySpec<'a> {
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
    pub fn as_is(sources: &'a [String]) -> Self {
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
pub enum CopyError {
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

/// `lchown`, explaining an owner that a rootless build's user namespace does not map.
fn set_owner(path: &Path, uid: u32, gid: u32) -> Result<(), CopyError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|source| CopyError::Io {
        path: path.to_owned(),
        source: stagecraft_layer::owner_error(source, uid, gid),
    })
}

/// Creates `target` (which must not exist) with the content of `source`, owned by
/// `uid:gid`, with `mode` and the source's access and modification times. The owner comes
/// before the mode: changing owners clears setuid and setgid bits.
fn copy_file(
    source: &Path,
    target: &Path,
    metadata: &fs::Metadata,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<(), CopyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut from = fs::File::open(source).map_err(io_error(source))?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(io_error(target))?;
    // `io::copy` between files uses copy_file_range: the data stays in the kernel.
    io::copy(&mut from, &mut to).map_err(io_error(target))?;
    rustix::fs::fchown(
        &to,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| CopyError::Io {
        path: target.to_owned(),
        source: stagecraft_layer::owner_error(e.into(), uid, gid),
    })?;
    rustix::fs::fchmod(&to, rustix::fs::Mode::from_raw_mode(mode)).map_err(|e| CopyError::Io {
        path: target.to_owned(),
        source: e.into(),
    })?;
    rustix::fs::futimens(&to, &source_times(metadata)).map_err(|e| CopyError::Io {
        path: target.to_owned(),
        source: e.into(),
    })
}

/// The access and modification times of `metadata`, to give a copy.
fn source_times(metadata: &fs::Metadata) -> rustix::fs::Timestamps {
    rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: metadata.atime(),
            tv_nsec: metadata.atime_nsec(),
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: metadata.mtime(),
            tv_nsec: metadata.mtime_nsec(),
        },
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
pub struct CopyPlan<'a> {
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
    pub fn resolve(
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
        let file_dest = |name: &str| {
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
                        dest: file_dest(name),
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
                .push(if spec.unpack_downloads && is_archive(&download.path) {
                    Item::Archive {
                        found,
                        dest: dest.clone(),
                    }
                } else {
                    Item::Entry {
                        found,
                        dest: file_dest(&download.name),
                    }
                });
        }
        Ok(plan)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_source(
        &mut self,
        view: &MergedView,
        pattern: &str,
        dest: &Path,
        file_dest: &dyn Fn(&str) -> PathBuf,
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
        let kept = |rel: &str| -> PathBuf { rel.split('/').skip(pivot).collect() };
        let parts = clean_components(Path::new(pattern));
        let parts: Vec<String> = parts
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let matches: Vec<String> = if parts.iter().any(|p| glob::has_wildcards(p)) {
            expand_wildcards(view, &parts)
                .into_iter()
                .filter(|rel| included(rel))
                .collect()
        } else {
            let rel = parts.join("/");
            let exists = view.lookup_follow(&Path::new("/").join(&rel)).is_some();
            if !exists || (!rel.is_empty() && !included(&rel)) {
                return Err(CopyError::NotFound {
                    path: pattern.to_owned(),
                    excluded: exists && ignore.is_some(),
                });
            }
            vec![rel]
        };
        for rel in matches {
            let Some(found) = view.lookup_follow(&Path::new("/").join(&rel)) else {
                continue;
            };
            if found.metadata.is_dir() {
                let dest = if self.parents {
                    dest.join(kept(&rel))
                } else {
                    dest.to_owned()
                };
                self.dest_dirs.push(dest.clone());
                for (path, entry) in view.walk(&Path::new("/").join(&rel)) {
                    let full_rel = path
                        .strip_prefix("/")
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned();
                    let inner = Path::new(&path)
                        .strip_prefix(Path::new("/").join(&rel))
                        .unwrap_or(&path)
                        .to_owned();
                    if !included(&full_rel)
                        || excludes.is_some_and(|m| m.matches(&inner.to_string_lossy()))
                    {
                        continue;
                    }
                    self.items.push(Item::Entry {
                        found: entry,
                        dest: dest.join(inner),
                    });
                }
            } else {
                let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
                if excludes.is_some_and(|m| m.matches(&name)) {
                    continue;
                }
                if self.unpack_archives && found.metadata.is_file() && is_archive(&found.real_path)
                {
                    self.items.push(Item::Archive {
                        found,
                        dest: dest.to_owned(),
                    });
                    continue;
                }
                let dest = if self.parents {
                    dest.join(kept(&rel))
                } else {
                    file_dest(&name)
                };
                self.items.push(Item::Entry { found, dest });
            }
        }
        Ok(())
    }

    /// A digest of everything that decides the result: destination paths, types, effective
    /// modes and owners, contents and link targets. Timestamps are left out on purpose, so a
    /// touched but unchanged file keeps the cache.
    pub fn content_digest(&self) -> Result<String, CopyError> {
        Ok(digest_of_entries(&self.entries()?))
    }

    /// What will be written, one `(destination path, description)` per entry: the kind, the
    /// effective mode and owner, and the content's sha256 or the link target. File contents are
    /// hashed in parallel. Cache keys and cache-miss explanations are made from these.
    pub fn entries(&self) -> Result<Vec<(String, String)>, CopyError> {
        use rayon::prelude::*;
        let mut out: Vec<(String, String)> = self
            .dest_dirs
            .iter()
            .map(|dir| (dir.display().to_string(), "dir".to_owned()))
            .collect();
        let items: Vec<(String, String)> = self
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
                            fs::read_link(&found.real_path)
                                .map_err(io_error(&found.real_path))?
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
            })
            .collect::<Result<_, _>>()?;
        out.extend(items);
        Ok(out)
    }

    /// The sha256 (hex) of a source file, by the context index for context files.
    fn file_sha256(&self, found: &Found) -> Result<String, CopyError> {
        let sha256 = match self.context {
            Some(hashes) => hashes.sha256(found)?,
            None => hash_file(&found.real_path)?,
        };
        Ok(hex::encode(sha256))
    }

    fn owner_of(&self, metadata: &fs::Metadata) -> (u32, u32) {
        match self.owner {
            Some(owner) => (owner.uid, owner.gid),
            None if self.context.is_some() => (0, 0),
            None => (metadata.uid(), metadata.gid()),
        }
    }

    /// The mode the cache key sees: the effective one, with group and other write cleared
    /// under `normalize_modes` for context files (a `--chmod` is what it says, untouched).
    fn key_mode(&self, metadata: &fs::Metadata) -> u32 {
        let mode = self.mode_of(metadata);
        if self.normalize_modes && self.context.is_some() && self.chmod.is_none() {
            mode & !0o022
        } else {
            mode
        }
    }

    fn mode_of(&self, metadata: &fs::Metadata) -> u32 {
        let kind_bits = metadata.mode() & 0o170000;
        match self.chmod {
            Some(mode) if !metadata.file_type().is_symlink() => kind_bits | mode,
            _ => metadata.mode(),
        }
    }

    /// Writes the entries into `upper` (an empty layer directory). Parent directories that
    /// exist in `dest_view` are recreated with their attributes; missing ones are made `0755`
    /// and owned by the `--chown` user (root otherwise).
    pub fn write(&self, upper: &Path, dest_view: &MergedView) -> Result<(), CopyError> {
        let parent_owner = self.owner.unwrap_or(Owner { uid: 0, gid: 0 });
        for dir in &self.dest_dirs {
            ensure_dir(upper, dir, dest_view, parent_owner)?;
        }
        let mut ensured: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        for item in &self.items {
            if let Item::Archive { found, dest } = item {
                ensure_dir(upper, dest, dest_view, parent_owner)?;
                let target = upper.join(dest.strip_prefix("/").unwrap_or(dest));
                let file = fs::File::open(&found.real_path).map_err(io_error(&found.real_path))?;
                stagecraft_layer::apply_layer(
                    io::BufReader::new(file),
                    &target,
                    &stagecraft_layer::ApplyOptions::default(),
                )
                .map_err(|e| CopyError::Io {
                    path: found.real_path.clone(),
                    source: io::Error::other(e.to_string()),
                })?;
                continue;
            }
            let dest = match item {
                Item::Entry { dest, .. } | Item::Data { dest, .. } | Item::Archive { dest, .. } => {
                    dest
                }
            };
            // Files of one directory come together: its parent is checked (a few `stat`s
            // per path component) once, not once per file.
            if let Some(parent) = dest.parent()
                && !ensured.contains(parent)
            {
                ensure_dir(upper, parent, dest_view, parent_owner)?;
                ensured.insert(parent.to_owned());
            }
            let target = upper.join(dest.strip_prefix("/").unwrap_or(dest));
            remove_existing(&target)?;
            match item {
                Item::Archive { .. } => {}
                Item::Data { data, .. } => {
                    fs::write(&target, data).map_err(io_error(&target))?;
                    let mode = self.chmod.unwrap_or(0o644);
                    fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                        .map_err(io_error(&target))?;
                    set_owner(&target, parent_owner.uid, parent_owner.gid)?;
                }
                Item::Entry { found, .. } => {
                    let kind = found.metadata.file_type();
                    let (uid, gid) = self.owner_of(&found.metadata);
                    let mode = self.mode_of(&found.metadata) & 0o7777;
                    if kind.is_dir() {
                        fs::create_dir(&target).map_err(io_error(&target))?;
                    } else if kind.is_symlink() {
                        let link =
                            fs::read_link(&found.real_path).map_err(io_error(&found.real_path))?;
                        std::os::unix::fs::symlink(link, &target).map_err(io_error(&target))?;
                    } else if kind.is_file() {
                        // Owner, mode and times are set on the open file: no path lookups.
                        copy_file(&found.real_path, &target, &found.metadata, uid, gid, mode)?;
                        continue;
                    } else {
                        // Devices, fifos and sockets are not copied by BuildKit either.
                        continue;
                    }
                    set_owner(&target, uid, gid)?;
                    if !kind.is_symlink() {
                        fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                            .map_err(io_error(&target))?;
                    }
                    let _ = rustix::fs::utimensat(
                        rustix::fs::CWD,
                        &target,
                        &source_times(&found.metadata),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    );
                }
            }
        }
        Ok(())
    }

    /// Whether nothing will be copied.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.dest_dirs.is_empty()
    }
}

/// The digest of [`CopyPlan::entries`] output.
pub fn digest_of_entries(entries: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (path, description) in entries {
        hasher.update(format!("{path} {description}\n"));
    }
    hex::encode(hasher.finalize())
}

/// Creates `dir` (an absolute image path) inside `upper`, with its parents: parents that exist
/// in `dest_view` keep their attributes, missing ones are `0755` and belong to `owner`.
pub fn ensure_dir(
    upper: &Path,
    dir: &Path,
    dest_view: &MergedView,
    owner: Owner,
) -> Result<(), CopyError> {
    let mut image_path = PathBuf::from("/");
    for component in clean_components(dir) {
        image_path.push(&component);
        let target = upper.join(image_path.strip_prefix("/").unwrap_or(&image_path));
        if target.is_dir() {
            continue;
        }
        remove_existing(&target)?;
        fs::create_dir(&target).map_err(io_error(&target))?;
        let (mode, uid, gid) = match dest_view.lookup_follow(&image_path) {
            Some(existing) if existing.metadata.is_dir() => (
                existing.metadata.mode() & 0o7777,
                existing.metadata.uid(),
                existing.metadata.gid(),
            ),
            _ => (0o755, owner.uid, owner.gid),
        };
        set_owner(&target, uid, gid)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))
            .map_err(io_error(&target))?;
    }
    Ok(())
}

fn remove_existing(path: &Path) -> Result<(), CopyError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => fs::remove_file(path).map_err(io_error(path)),
        Err(_) => Ok(()),
    }
}

/// Whether a file is a tar archive `ADD` unpacks: gzip or zstd compressed (their payload is
/// checked when unpacking), or a plain tar (the `ustar` magic at offset 257).
fn is_archive(path: &Path) -> bool {
    let mut header = [0u8; 263];
    let Ok(mut file) = fs::File::open(path) else {
        return false;
    };
    let read = io::Read::read(&mut file, &mut header).unwrap_or(0);
    let header = &header[..read];
    header.starts_with(&[0x1f, 0x8b])
        || header.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || header.get(257..262) == Some(b"ustar")
}

/// Relative paths in `view` matching the pattern components (Go `filepath.Match` per component).
fn expand_wildcards(view: &MergedView, parts: &[String]) -> Vec<String> {
    let mut current: Vec<String> = vec![String::new()];
    for part in parts {
        let mut next = Vec::new();
        for base in &current {
            let base_path = Path::new("/").join(base);
            if glob::has_wildcards(part) {
                let Some(dir) = view.lookup_follow(&base_path) else {
                    continue;
                };
                for name in view.read_dir(&dir) {
                    let name = name.to_string_lossy();
                    if glob::matches(part, &name) {
                        next.push(join_rel(base, &name));
                    }
                }
            } else if view.lookup(&base_path.join(part)).is_some() {
                next.push(join_rel(base, part));
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

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// The sha256 of a file's bytes.
pub fn hash_file(path: &Path) -> Result<[u8; 32], CopyError> {
    let mut file = fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = io::Read::read(&mut file, &mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copies `sources` from a stage holding `x/a.txt`, `x/sub/f.txt`, `y/b/c.txt` into
    /// `/dest/`; returns the files of the layer, sorted.
    fn copied(sources: &[&str], parents: bool) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for file in ["x/a.txt", "x/sub/f.txt", "y/b/c.txt"] {
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
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        plan.write(&upper, &MergedView::default()).unwrap();
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
}
