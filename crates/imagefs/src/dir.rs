//! [`DirFs`]: a root file system unpacked in a directory.

use crate::{EntryKind, FileEntry, ImageFs, not_a_file};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A root file system unpacked in a directory (a `type=local` output, a test fixture).
#[derive(Debug, Clone)]
pub struct DirFs {
    root: PathBuf,
    /// Directories (relative to the root) the walk is limited to; empty: all of it.
    subtrees: Vec<PathBuf>,
}

impl DirFs {
    /// The whole tree below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirFs {
            root: root.into(),
            subtrees: Vec::new(),
        }
    }

    /// Only the files below `subtrees` (relative to `root`, e.g. `usr` and `var/lib/dpkg`)
    /// are listed, so that a live system's root can be cataloged without walking `/proc`.
    /// [`ImageFs::open`] still reaches any path.
    pub fn with_subtrees(root: impl Into<PathBuf>, subtrees: &[&str]) -> Self {
        DirFs {
            root: root.into(),
            subtrees: subtrees.iter().map(PathBuf::from).collect(),
        }
    }

    /// Opens `path` below the root with symlinks resolved inside it (`RESOLVE_IN_ROOT`: an
    /// absolute link or `..` stops at the root, as in a chroot).
    fn open_in_root(&self, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let root = rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let relative = path.strip_prefix("/").unwrap_or(path);
        let relative = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        loop {
            match rustix::fs::openat2(
                &root,
                relative,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                // The kernel asks to retry when a rename raced with the lookup.
                Err(Errno::AGAIN) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }
}

impl ImageFs for DirFs {
    fn entries(&self) -> io::Result<Vec<FileEntry>> {
        // Fail loudly on a root that is not there; unreadable directories inside are skipped.
        std::fs::metadata(&self.root)?;
        let starts: Vec<PathBuf> = if self.subtrees.is_empty() {
            vec![PathBuf::new()]
        } else {
            self.subtrees.clone()
        };
        let mut entries = Vec::new();
        for start in starts {
            let walk = walkdir::WalkDir::new(self.root.join(&start))
                .follow_links(false)
                .min_depth(usize::from(start.as_os_str().is_empty()));
            for entry in walk.into_iter().filter_map(Result::ok) {
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                let Ok(relative) = entry.path().strip_prefix(&self.root) else {
                    continue;
                };
                let kind = EntryKind::of(rustix::fs::FileType::from_raw_mode(metadata.mode()));
                entries.push(FileEntry {
                    path: Path::new("/").join(relative),
                    size: metadata.len(),
                    mode: metadata.mode() & 0o7777,
                    kind,
                    layer: None,
                });
            }
        }
        Ok(entries)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        // Look first through an O_PATH descriptor, which opens nothing: reading a FIFO or a
        // device node of the image could block or act on the host's device.
        let probe = File::from(self.open_in_root(path, OFlags::PATH)?);
        if !probe.metadata()?.is_file() {
            return Err(not_a_file(path));
        }
        let file = File::from(self.open_in_root(path, OFlags::RDONLY | OFlags::NONBLOCK)?);
        // The image is not expected to change under us, but check the file we got is still one.
        if !file.metadata()?.is_file() {
            return Err(not_a_file(path));
        }
        Ok(file)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let dir = self.open_in_root(path, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let name = entry?.file_name().to_bytes().to_owned();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsStr::from_bytes(&name).to_owned());
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn read(fs: &DirFs, path: &str) -> io::Result<String> {
        let mut text = String::new();
        fs.open(Path::new(path))?.read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn lists_regular_files_only_with_image_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            root.join("usr/bin/tool"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        symlink("tool", root.join("usr/bin/alias")).unwrap();
        let mut files = DirFs::new(root).files().unwrap();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            files,
            vec![FileEntry {
                path: PathBuf::from("/usr/bin/tool"),
                size: 10,
                mode: 0o755,
                kind: EntryKind::File,
                layer: None,
            }]
        );
    }

    #[test]
    fn entries_say_what_each_is_and_keep_the_special_bits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::set_permissions(
            root.join("tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        std::fs::write(root.join("tmp/su"), "").unwrap();
        std::fs::set_permissions(
            root.join("tmp/su"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        symlink("su", root.join("tmp/link")).unwrap();
        let mut entries: Vec<(String, EntryKind, u32)> = DirFs::new(root)
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| (e.path.display().to_string(), e.kind, e.mode))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(entries[0], ("/tmp".into(), EntryKind::Dir, 0o1777));
        assert_eq!(entries[1].1, EntryKind::Symlink);
        assert_eq!(entries[2], ("/tmp/su".into(), EntryKind::File, 0o4755));
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn read_dir_resolves_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/ld.so.conf.d")).unwrap();
        std::fs::write(root.join("etc/ld.so.conf.d/a.conf"), "").unwrap();
        symlink("/etc/ld.so.conf.d", root.join("conf")).unwrap();
        let fs = DirFs::new(root);
        assert_eq!(fs.read_dir(Path::new("/conf")).unwrap(), ["a.conf"]);
        assert_eq!(
            fs.read_dir(Path::new("/missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn subtrees_limit_the_walk_but_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("usr/a"), "a").unwrap();
        std::fs::write(root.join("proc/b"), "b").unwrap();
        let fs = DirFs::with_subtrees(root, &["usr"]);
        let paths: Vec<PathBuf> = fs.files().unwrap().into_iter().map(|f| f.path).collect();
        assert_eq!(paths, vec![PathBuf::from("/usr/a")]);
        assert_eq!(read(&fs, "/proc/b").unwrap(), "b");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/os-release"), "ID=inside\n").unwrap();
        // Absolute and relative links both land inside the image.
        symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
        symlink(
            "../../../../../../usr/lib/os-release",
            root.join("etc/deep"),
        )
        .unwrap();
        // A link naming a host path resolves to the same path inside the image: missing.
        symlink(outside.path().join("secret"), root.join("etc/escape")).unwrap();
        let fs = DirFs::new(root);
        assert_eq!(read(&fs, "/etc/os-release").unwrap(), "ID=inside\n");
        assert_eq!(read(&fs, "etc/deep").unwrap(), "ID=inside\n");
        assert_eq!(
            read(&fs, "/etc/escape").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let fs = DirFs::new(root);
        // A FIFO would block a plain open: it must be refused without waiting.
        assert_eq!(
            read(&fs, "/fifo").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            read(&fs, "/etc").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(DirFs::new(root.join("missing")).files().is_err());
    }
}
