//! The catalog run: one listing of the image's files shared by every cataloger.

use crate::fs::{FileEntry, ImageFs};
use crate::package::{Catalog, Package};
pub(crate) use stagecraft_imagefs::read_limited;
use std::io;
use std::path::Path;

/// Metadata files (package databases, manifests, lock files) larger than this are not read:
/// no real one comes close, and a hostile image must not make the catalog eat the memory.
const METADATA_LIMIT: u64 = 256 << 20;

/// Failure to catalog an image at all (what goes wrong with one file becomes a note).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system could not be listed.
    #[error("cannot list the image's files: {0}")]
    List(#[source] io::Error),
}

/// The distribution named by `os-release`, which namespaces OS package URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Distro {
    /// `ID` (`debian`, `ubuntu`, `alpine`).
    pub(crate) id: Option<String>,
    /// `VERSION_ID` (`12`, `3.20.1`).
    pub(crate) version_id: Option<String>,
}

impl Distro {
    /// The purl `distro` qualifier as syft writes it: `ID-VERSION_ID`.
    pub(crate) fn qualifier(&self) -> String {
        match (&self.id, &self.version_id) {
            (Some(id), Some(version)) => format!("{id}-{version}"),
            _ => String::new(),
        }
    }
}

/// What every cataloger reads from: the files, sorted by path, and the distribution.
pub(crate) struct Scan<'a> {
    fs: &'a dyn ImageFs,
    files: Vec<FileEntry>,
    pub(crate) distro: Distro,
}

impl<'a> Scan<'a> {
    pub(crate) fn new(fs: &'a dyn ImageFs) -> Result<Self, Error> {
        let mut files = fs.files().map_err(Error::List)?;
        // Component-wise order keeps every directory's descendants contiguous (see `under`).
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut scan = Scan {
            fs,
            files,
            distro: Distro::default(),
        };
        scan.distro = ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|path| scan.read_text(Path::new(path)).ok())
            .map(|text| parse_os_release(&text))
            .unwrap_or_default();
        Ok(scan)
    }

    /// Every regular file, sorted by path.
    pub(crate) fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The files below directory `dir`.
    pub(crate) fn under(&self, dir: &Path) -> &[FileEntry] {
        let start = self
            .files
            .partition_point(|file| file.path.as_path() <= dir);
        let len = self.files[start..]
            .iter()
            .take_while(|file| file.path.starts_with(dir))
            .count();
        &self.files[start..start + len]
    }

    /// The listed file at `path` (not through symlinks).
    pub(crate) fn entry(&self, path: &Path) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|file| file.path.as_path().cmp(path))
            .ok()
            .map(|index| &self.files[index])
    }

    /// The layer that added the file at `path`.
    pub(crate) fn layer_of(&self, path: &Path) -> Option<usize> {
        self.entry(path).and_then(|file| file.layer)
    }

    /// Opens a file of the image (symlinks resolved inside it).
    pub(crate) fn open(&self, path: &Path) -> io::Result<std::fs::File> {
        self.fs.open(path)
    }

    /// Reads a metadata file whole, refusing one over the size limit.
    pub(crate) fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        read_limited(self.open(path)?, METADATA_LIMIT)
    }

    /// Reads a metadata file as text (invalid UTF-8 replaced, as metadata is meant to be text).
    pub(crate) fn read_text(&self, path: &Path) -> io::Result<String> {
        Ok(String::from_utf8_lossy(&self.read(path)?).into_owned())
    }
}

/// `KEY=value` lines with shell quoting, as os-release(5) defines them.
fn parse_os_release(text: &str) -> Distro {
    let mut distro = Distro::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        let slot = match key {
            "ID" => &mut distro.id,
            "VERSION_ID" => &mut distro.version_id,
            _ => continue,
        };
        if !value.is_empty() {
            *slot = Some(value);
        }
    }
    distro
}

fn unquote(value: &str) -> String {
    let quoted = |quote: char| {
        value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
    };
    if let Some(inner) = quoted('\'') {
        return inner.to_owned();
    }
    let Some(inner) = quoted('"') else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// Sorts, and merges packages found twice in the same place (a `Cargo.lock` may list a crate
/// from two sources; they are one package of the image).
pub(crate) fn finish(catalog: &mut Catalog) {
    catalog.packages.sort();
    catalog.packages.dedup_by(|later, kept| {
        let same = same_package(later, kept);
        if same {
            for license in later.licenses.drain(..) {
                if !kept.licenses.contains(&license) {
                    kept.licenses.push(license);
                }
            }
        }
        same
    });
    catalog.notes.sort();
    catalog.notes.dedup();
}

fn same_package(a: &Package, b: &Package) -> bool {
    a.purl == b.purl && a.location == b.location
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_values_are_unquoted() {
        let distro = parse_os_release(
            "NAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID=\"12\"\n# comment\nBAD LINE\n",
        );
        assert_eq!(distro.id.as_deref(), Some("debian"));
        assert_eq!(distro.qualifier(), "debian-12");
        let distro = parse_os_release("ID='alpine'\nVERSION_ID=\"3.\\\"20\"\n");
        assert_eq!(distro.qualifier(), "alpine-3.\"20");
        assert_eq!(parse_os_release("ID=x\n").qualifier(), "");
    }

    #[test]
    fn under_returns_exactly_the_descendants() {
        let dir = tempfile::tempdir().unwrap();
        for path in ["a/b/c", "a/b/d/e", "a/b-x", "a/bb", "a/a"] {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, "").unwrap();
        }
        let fs = crate::DirFs::new(dir.path());
        let scan = Scan::new(&fs).unwrap();
        let under: Vec<_> = scan
            .under(Path::new("/a/b"))
            .iter()
            .map(|f| f.path.to_str().unwrap())
            .collect();
        assert_eq!(under, ["/a/b/c", "/a/b/d/e"]);
        assert!(scan.entry(Path::new("/a/bb")).is_some());
        assert!(scan.entry(Path::new("/a/b")).is_none());
    }
}
