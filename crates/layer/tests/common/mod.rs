//! Helpers shared by the integration tests: building trees, describing them
//! for comparison, reading tars back, and mounting overlayfs.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{FileType, Mode, XattrFlags};
use sha2::{Digest, Sha256};

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub(crate) fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

pub(crate) fn mknod(
    path: &Path,
    file_type: FileType,
    major: u32,
    minor: u32,
) -> rustix::io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        file_type,
        Mode::from_raw_mode(0o644),
        rustix::fs::makedev(major, minor),
    )
}

pub(crate) fn chmod(path: &Path, mode: u32) {
    rustix::fs::chmod(path, Mode::from_raw_mode(mode)).unwrap();
}

pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// Sets atime and mtime (no nanoseconds) without following symlinks.
pub(crate) fn set_mtime(path: &Path, secs: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub(crate) fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Xattrs worth comparing: everything but overlayfs markers and SELinux
/// labels (which the host assigns).
pub(crate) fn xattrs(path: &Path) -> Vec<(String, String)> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in buf[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name_str = String::from_utf8_lossy(name).into_owned();
        if name_str.contains(".overlay.") || name_str == "security.selinux" {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        let len = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap();
        out.push((name_str, hex::encode(&value[..len])));
    }
    out.sort();
    out
}

#[derive(Clone, Copy)]
pub(crate) struct SnapOpts {
    /// Compare mtimes (whole seconds) of non-directories.
    pub file_mtimes: bool,
    /// Compare mtimes of directories.
    pub dir_mtimes: bool,
}

pub(crate) const ALL_MTIMES: SnapOpts = SnapOpts {
    file_mtimes: true,
    dir_mtimes: true,
};
pub(crate) const NO_MTIMES: SnapOpts = SnapOpts {
    file_mtimes: false,
    dir_mtimes: false,
};

/// One line per entry below `root`: type, mode, owner, content hash or link
/// target, device, xattrs, hardlink group and (optionally) mtime.
pub(crate) fn snapshot(root: &Path, opts: SnapOpts) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    walk(root, root, opts, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    opts: SnapOpts,
    out: &mut BTreeMap<String, String>,
    inodes: &mut HashMap<(u64, u64), String>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let rel = String::from_utf8_lossy(path.strip_prefix(root).unwrap().as_os_str().as_bytes())
            .into_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let mut desc = format!(
            "mode={:o} uid={} gid={}",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        );
        if ft.is_dir() {
            desc = format!("dir {desc}");
        } else if ft.is_file() {
            desc = format!(
                "file {desc} size={} sha={}",
                meta.len(),
                sha(&fs::read(&path).unwrap())
            );
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            desc = format!(
                "symlink -> {:?} uid={} gid={}",
                target,
                meta.uid(),
                meta.gid()
            );
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() { "char" } else { "block" };
            desc = format!(
                "{kind} {desc} dev={}:{}",
                rustix::fs::major(meta.rdev()),
                rustix::fs::minor(meta.rdev())
            );
        } else if ft.is_fifo() {
            desc = format!("fifo {desc}");
        } else {
            desc = format!("other {desc}");
        }
        let x = xattrs(&path);
        if !x.is_empty() {
            desc.push_str(&format!(" xattrs={x:?}"));
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            let first = inodes
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| rel.clone());
            desc.push_str(&format!(" link-group={first}"));
        }
        if (ft.is_dir() && opts.dir_mtimes) || (!ft.is_dir() && opts.file_mtimes) {
            desc.push_str(&format!(" mtime={}", meta.mtime()));
        }
        out.insert(rel, desc);
        if ft.is_dir() {
            walk(root, &path, opts, out, inodes);
        }
    }
}

/// Asserts two snapshots are equal, printing a readable difference.
pub(crate) fn assert_same(left: &BTreeMap<String, String>, right: &BTreeMap<String, String>) {
    if left == right {
        return;
    }
    let mut report = String::new();
    for (k, v) in left {
        match right.get(k) {
            None => report.push_str(&format!("only left:  {k}: {v}\n")),
            Some(w) if w != v => report.push_str(&format!(
                "differs:    {k}\n    left:  {v}\n    right: {w}\n"
            )),
            _ => {}
        }
    }
    for (k, v) in right {
        if !left.contains_key(k) {
            report.push_str(&format!("only right: {k}: {v}\n"));
        }
    }
    panic!("trees differ:\n{report}");
}

/// An entry as read back from a tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TarEntry {
    pub name: String,
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub link: Option<String>,
    pub sha: String,
    pub pax: Vec<(String, String)>,
}

impl TarEntry {
    /// The fields that do not depend on when a change was made.
    pub(crate) fn without_mtime(&self) -> TarEntry {
        TarEntry {
            mtime: 0,
            ..self.clone()
        }
    }
}

/// Decompresses (by magic) and lists a layer, with this crate's reader.
pub(crate) fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    let (_, mut reader) = stagecraft_layer::open_layer(bytes).unwrap();
    let mut out = Vec::new();
    while let Some(entry) = reader.next_entry().unwrap() {
        let mut data = Vec::new();
        reader.read_to_end(&mut data).unwrap();
        out.push(TarEntry {
            name: String::from_utf8_lossy(&entry.path).into_owned(),
            kind: char::from(entry.type_flag),
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            mtime: u64::try_from(entry.mtime.0).unwrap(),
            size: data.len() as u64,
            link: entry.link.map(|l| String::from_utf8_lossy(&l).into_owned()),
            sha: sha(&data),
            pax: entry
                .pax
                .iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), hex::encode(v)))
                .collect(),
        });
    }
    out
}

/// Lists a tar with the `tar` crate's reader too, as an independent check
/// that our output parses elsewhere (names, types and sizes only).
pub(crate) fn read_tar_with_tar_crate(tar_bytes: &[u8]) -> Vec<(String, char, u64)> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        out.push((
            String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            char::from(entry.header().entry_type().as_byte()),
            entry.size(),
        ));
    }
    out
}

pub(crate) fn names(entries: &[TarEntry]) -> Vec<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

/// An overlayfs mount, unmounted on drop.
pub(crate) struct Overlay {
    pub merged: PathBuf,
}

impl Overlay {
    /// Mounts `lowers` (topmost first) with an optional upper/work pair at
    /// `merged`; `None` if mounting is not possible here.
    pub(crate) fn mount(
        lowers: &[&Path],
        upper: Option<(&Path, &Path)>,
        merged: &Path,
    ) -> Option<Self> {
        let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let mut options = format!("lowerdir={}", lowerdir.join(":"));
        if let Some((upper, work)) = upper {
            options.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(merged)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Overlay {
            merged: merged.to_path_buf(),
        })
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.merged)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.merged).status();
        }
    }
}

/// Recursively copies a tree preserving everything (`cp -a`).
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(OsStr::new(&format!("{}/.", from.display())))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a failed");
}
