//! Outputs written outside the store (`save -o FILE`, `--output type=oci,dest=FILE`, a local
//! cache export) so that a reader, or a killed write, finds the old content or the complete
//! new one, never half of it: the new content goes to a hidden `.<name>.<random>.partial`
//! beside the destination (same directory, so the final rename is atomic), is flushed to disk
//! and renamed over the destination. While it is written, a link in `ingest/` named after this
//! process points at it, so that if the process dies, the next lease removes it with the
//! process's other scratch entries (see the `scratch` module).

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

use crate::error::{Error, IoContext, Result};
use crate::scratch::{PARTIAL_SUFFIX, scratch_prefix};
use crate::store::{Lease, Store, remove_tree, sync_filesystem, sync_parent};

/// A file being written for [`Store::output_file`]: write through [`Write`], then
/// [`OutputFile::commit`]. Dropped without a commit (an error on the way), it removes its
/// partial file and the destination keeps its old content.
#[derive(Debug)]
pub struct OutputFile {
    file: BufWriter<File>,
    partial: TempPath,
    dest: PathBuf,
    registration: TempPath,
    _lease: Lease,
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl OutputFile {
    /// Flushes the file to disk and renames it over the destination.
    pub fn commit(self) -> Result<()> {
        let OutputFile {
            file,
            partial,
            dest,
            registration,
            _lease,
        } = self;
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .at("write", &partial)?;
        file.sync_all().at("flush", &partial)?;
        partial
            .persist(&dest)
            .map_err(|e| e.error)
            .at("move the finished output to", &dest)?;
        sync_parent(&dest)?;
        drop(registration);
        Ok(())
    }
}

/// A directory being filled for [`Store::output_dir`]: fill [`OutputDir::path`], then
/// [`OutputDir::commit`].
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    /// For a destination that did not exist: where the filled directory goes, and the
    /// registration of the partial one. Dropped without a commit, the partial one is removed.
    pending: Option<(PathBuf, TempPath)>,
    _lease: Lease,
}

impl OutputDir {
    /// The directory to fill.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the content durable and, if the destination did not exist, renames the filled
    /// directory to it. Fails if a directory with content appeared there meanwhile.
    pub fn commit(mut self) -> Result<()> {
        let Some((dest, registration)) = self.pending.take() else {
            return Ok(());
        };
        sync_filesystem(&self.path)?;
        if let Err(source) = fs::rename(&self.path, &dest) {
            self.pending = Some((dest.clone(), registration));
            return Err(Error::Io {
                action: "move the finished output to",
                path: dest,
                source,
            });
        }
        sync_parent(&dest)?;
        drop(registration);
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if self.pending.is_some() {
            // Best effort: if it fails, the registration (dropped next) is gone and the
            // partial directory stays, named as such.
            let _ = remove_tree(&self.path);
        }
    }
}

impl Store {
    /// A file to write that replaces `dest` only once complete (see [`OutputFile`]). A `dest`
    /// that is a symbolic link keeps it: its target is replaced. Holds a lease while alive.
    pub fn output_file(&self, dest: &Path) -> Result<OutputFile> {
        let lease = self.lease()?;
        let dest = match fs::canonicalize(dest) {
            Ok(real) => real,
            // Absolute, so that the directory synced on commit is never the empty parent of a
            // bare file name (`-o type=tar,dest=out.tar`).
            Err(_) => std::path::absolute(dest).at("resolve", dest)?,
        };
        let (dir, name) = split_destination(&dest)?;
        let mut registration = None;
        let partial = make_partial(&dir, &name, |path| {
            let link = self.register_output(path)?;
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .open(path)?;
            registration = Some(link);
            Ok(file)
        })?;
        let (file, partial) = partial.into_parts();
        Ok(OutputFile {
            file: BufWriter::with_capacity(1 << 20, file),
            partial,
            dest,
            registration: registration.expect("set when the file was made"),
            _lease: lease,
        })
    }

    /// A directory to fill for the output directory `dest`. If `dest` does not exist, it is
    /// filled beside it and renamed on [`OutputDir::commit`], so that `dest` appears complete
    /// or not at all. If it exists, it is filled in place, as BuildKit does: files of the same
    /// name are replaced, others stay, and an interrupted fill leaves it partly written.
    /// Holds a lease while alive.
    pub fn output_dir(&self, dest: &Path) -> Result<OutputDir> {
        let lease = self.lease()?;
        // Absolute, so that the directory synced on commit is never the empty parent of a
        // bare name (`-o type=local,dest=out`).
        let dest = &std::path::absolute(dest).at("resolve", dest)?;
        if fs::metadata(dest).is_ok() {
            return Ok(OutputDir {
                path: dest.to_owned(),
                pending: None,
                _lease: lease,
            });
        }
        let (dir, name) = split_destination(dest)?;
        fs::create_dir_all(&dir).at("create directory", &dir)?;
        let mut registration = None;
        let partial = make_partial(&dir, &name, |path| {
            let link = self.register_output(path)?;
            DirBuilder::new().mode(0o777).create(path)?;
            registration = Some(link);
            Ok(())
        })?;
        // The directory's own removal on drop is OutputDir's, not TempPath's (a file's).
        let path = partial
            .into_temp_path()
            .keep()
            .map_err(|e| e.error)
            .at("keep", &dir)?;
        Ok(OutputDir {
            path,
            pending: Some((
                dest.to_owned(),
                registration.expect("set when the directory was made"),
            )),
            _lease: lease,
        })
    }

    /// Links `ingest/output-<owner>-<random>` to `partial`: removing the link unregisters.
    fn register_output(&self, partial: &Path) -> io::Result<TempPath> {
        let link = tempfile::Builder::new()
            .prefix(&scratch_prefix("output"))
            .make_in(self.ingest_dir(), |link| {
                std::os::unix::fs::symlink(partial, link)
            })?;
        Ok(link.into_temp_path())
    }
}

/// The absolute directory and the file name of an output destination.
fn split_destination(dest: &Path) -> Result<(PathBuf, OsString)> {
    let absolute = std::path::absolute(dest).at("resolve", dest)?;
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_owned(), name.to_owned())),
        _ => Err(Error::Io {
            action: "write to",
            path: dest.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name (give the path of a file to create)",
            ),
        }),
    }
}

/// Makes a new partial output in `dir` with `make`, named `.<name>.<random>.partial`: hidden,
/// and telling what it will become.
fn make_partial<R>(
    dir: &Path,
    name: &OsStr,
    make: impl FnMut(&Path) -> io::Result<R>,
) -> Result<NamedTempFile<R>> {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(PARTIAL_SUFFIX)
        .make_in(dir, make)
        .at("create a partial output in", dir)
}
