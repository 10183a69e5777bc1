//! One module per package ecosystem; each reads what it knows from the [`Scan`] and adds
//! packages and notes to the catalog.

mod apk;
mod binary;
mod dpkg;
mod golang;
mod java;
mod node;
mod python;
mod rpm;
mod rust;

use crate::package::Catalog;
use crate::scan::Scan;

/// Runs every cataloger over the image, the executables' (which open every executable file)
/// beside the others on the rayon pool. The order the packages are found in does not matter:
/// [`crate::scan::finish`] sorts them.
pub(crate) fn run_all(scan: &Scan, out: &mut Catalog) {
    let mut executables = Catalog::default();
    rayon::join(
        || binary::catalog(scan, &mut executables),
        || {
            dpkg::catalog(scan, out);
            apk::catalog(scan, out);
            rpm::catalog(scan, out);
            python::catalog(scan, out);
            node::catalog(scan, out);
            rust::catalog_lockfiles(scan, out);
            java::catalog(scan, out);
        },
    );
    out.packages.append(&mut executables.packages);
    out.notes.append(&mut executables.notes);
}

/// The last component of a path as text (`None` when it is not UTF-8: no package metadata
/// file a cataloger looks for has such a name).
pub(crate) fn file_name(path: &std::path::Path) -> Option<&str> {
    path.file_name()?.to_str()
}

/// Catalogs every package the image's files describe.
pub fn catalog(fs: &dyn crate::fs::ImageFs) -> Result<Catalog, crate::scan::Error> {
    let scan = crate::scan::Scan::new(fs)?;
    let mut catalog = Catalog::default();
    run_all(&scan, &mut catalog);
    crate::scan::finish(&mut catalog);
    Ok(catalog)
}

#[cfg(test)]
pub(crate) mod fixture {
    //! Image file systems written by the tests, optionally split into layers.

    use crate::fs::{DirFs, FileEntry, ImageFs};
    use crate::package::{Catalog, Ecosystem, Package};
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// A root file system in a temporary directory; files below a registered prefix belong
    /// to that prefix's layer.
    pub(crate) struct Fixture {
        dir: tempfile::TempDir,
        layers: Vec<(PathBuf, usize)>,
    }

    impl Fixture {
        pub(crate) fn new() -> Self {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
                layers: Vec::new(),
            }
        }

        /// Writes a file (mode 0644) at `path` (relative to the root).
        pub(crate) fn file(&self, path: &str, content: impl AsRef<[u8]>) -> &Self {
            let full = self.dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
            self
        }

        /// Writes a file with mode 0755.
        pub(crate) fn executable(&self, path: &str, content: impl AsRef<[u8]>) -> &Self {
            self.file(path, content);
            let full = self.dir.path().join(path);
            std::fs::set_permissions(full, std::fs::Permissions::from_mode(0o755)).unwrap();
            self
        }

        /// Files below `prefix` (absolute in the image) come from layer `index`.
        pub(crate) fn layer(&mut self, prefix: &str, index: usize) -> &mut Self {
            self.layers.push((PathBuf::from(prefix), index));
            self
        }

        pub(crate) fn catalog(&self) -> Catalog {
            crate::catalog(self).unwrap()
        }

        /// `(name, version, purl)` of the packages of one ecosystem.
        pub(crate) fn found(&self, ecosystem: Ecosystem) -> Vec<(String, String, String)> {
            summary(&self.catalog().packages, ecosystem)
        }
    }

    pub(crate) fn summary(
        packages: &[Package],
        ecosystem: Ecosystem,
    ) -> Vec<(String, String, String)> {
        packages
            .iter()
            .filter(|p| p.ecosystem == ecosystem)
            .map(|p| (p.name.clone(), p.version.clone(), p.purl.clone()))
            .collect()
    }

    /// `("name", "version", "purl")` as owned strings, to compare with [`Fixture::found`].
    pub(crate) fn row(name: &str, version: &str, purl: &str) -> (String, String, String) {
        (name.to_owned(), version.to_owned(), purl.to_owned())
    }

    impl ImageFs for Fixture {
        fn entries(&self) -> io::Result<Vec<FileEntry>> {
            let mut files = DirFs::new(self.dir.path()).entries()?;
            for file in &mut files {
                file.layer = self
                    .layers
                    .iter()
                    .filter(|(prefix, _)| file.path.starts_with(prefix))
                    .max_by_key(|(prefix, _)| prefix.components().count())
                    .map(|(_, index)| *index);
            }
            Ok(files)
        }

        fn open(&self, path: &Path) -> io::Result<File> {
            DirFs::new(self.dir.path()).open(path)
        }

        fn read_dir(&self, path: &Path) -> io::Result<Vec<std::ffi::OsString>> {
            DirFs::new(self.dir.path()).read_dir(path)
        }
    }
}
