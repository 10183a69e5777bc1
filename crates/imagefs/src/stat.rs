//! [`Stat`]: what `lstat` says about an entry, in the fields the build reads.

use rustix::fs::FileType;

/// A file timestamp: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileTime {
    /// Whole seconds since the epoch (negative before it).
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanoseconds: u32,
}

/// An entry's `lstat` (never a link's target), kept small: a listing of a large tree holds
/// one per entry, where `std::fs::Metadata` would be twice the size. It comes from a
/// `stat` relative to an open directory, which `Metadata` cannot be made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Last access.
    pub accessed: FileTime,
    /// Last content change.
    pub modified: FileTime,
    /// Last status change.
    pub changed: FileTime,
    /// Inode number.
    pub inode: u64,
    /// Device holding it.
    pub device: u64,
    /// The device a device node stands for (`0/0` for an overlay whiteout).
    pub rdev: u64,
}

impl Stat {
    /// What kind of entry it is.
    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == FileType::RegularFile
    }

    /// Whether it is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.file_type() == FileType::Symlink
    }
}

impl From<rustix::fs::Stat> for Stat {
    // `from`, not `as`: a conversion that could lose bits on some architecture fails to build.
    #[allow(clippy::useless_conversion)]
    fn from(st: rustix::fs::Stat) -> Stat {
        // The field types differ between architectures: every conversion is lossless on
        // the 64-bit ones, and a negative size or out-of-range nanosecond count is reported
        // by no kernel.
        let time = |seconds, nanoseconds| FileTime {
            seconds: i64::from(seconds),
            nanoseconds: u32::try_from(nanoseconds).unwrap_or(0),
        };
        Stat {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            accessed: time(st.st_atime, st.st_atime_nsec),
            modified: time(st.st_mtime, st.st_mtime_nsec),
            changed: time(st.st_ctime, st.st_ctime_nsec),
            inode: u64::from(st.st_ino),
            device: u64::from(st.st_dev),
            rdev: u64::from(st.st_rdev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_stat_says_what_std_metadata_says() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "twelve bytes").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        for name in ["f", "l", ""] {
            let path = dir.path().join(name);
            let std = std::fs::symlink_metadata(&path).unwrap();
            let ours = Stat::from(
                rustix::fs::statat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .unwrap(),
            );
            assert_eq!(ours.mode, std.mode(), "{name}");
            assert_eq!((ours.uid, ours.gid), (std.uid(), std.gid()));
            assert_eq!(ours.size, std.len());
            assert_eq!(
                (ours.modified.seconds, i64::from(ours.modified.nanoseconds)),
                (std.mtime(), std.mtime_nsec())
            );
            assert_eq!(
                (ours.changed.seconds, i64::from(ours.changed.nanoseconds)),
                (std.ctime(), std.ctime_nsec())
            );
            assert_eq!(
                (ours.accessed.seconds, i64::from(ours.accessed.nanoseconds)),
                (std.atime(), std.atime_nsec())
            );
            assert_eq!((ours.inode, ours.device), (std.ino(), std.dev()));
            assert_eq!(ours.is_dir(), std.is_dir());
            assert_eq!(ours.is_file(), std.is_file());
            assert_eq!(ours.is_symlink(), std.file_type().is_symlink());
        }
    }
}
