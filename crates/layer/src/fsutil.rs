//! Small filesystem helpers shared by the writer and the applier.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::io::Errno;

/// Extended attributes as (name, value) pairs, sorted by name.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What extended attributes are read from: a path (a final symlink not followed) or an open
/// file (no path walked again).
pub(crate) trait XattrSubject: Copy {
    /// The size of the list of attribute names (`*listxattr` with no buffer).
    fn list_size(self) -> rustix::io::Result<usize>;
    /// The list of attribute names into `buf`; its length.
    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize>;
    /// The size of attribute `name`'s value (`*getxattr` with no buffer).
    fn value_size(self, name: &[u8]) -> rustix::io::Result<usize>;
    /// Attribute `name`'s value into `buf`; its length.
    fn value(self, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize>;
}

impl XattrSubject for &Path {
    fn list_size(self) -> rustix::io::Result<usize> {
        rustix::fs::llistxattr_query(self)
    }
    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::llistxattr(self, buf)
    }
    fn value_size(self, name: &[u8]) -> rustix::io::Result<usize> {
        rustix::fs::lgetxattr_query(self, name)
    }
    fn value(self, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::lgetxattr(self, name, buf)
    }
}

impl XattrSubject for BorrowedFd<'_> {
    fn list_size(self) -> rustix::io::Result<usize> {
        rustix::fs::flistxattr_query(self)
    }
    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::flistxattr(self, buf)
    }
    fn value_size(self, name: &[u8]) -> rustix::io::Result<usize> {
        rustix::fs::fgetxattr_query(self, name)
    }
    fn value(self, name: &[u8], buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::fs::fgetxattr(self, name, buf)
    }
}

/// Reads every extended attribute of `subject`. A filesystem without xattr support yields an
/// empty list.
pub(crate) fn read_xattrs<S: XattrSubject>(subject: S) -> io::Result<Xattrs> {
    let names = loop {
        let size = match subject.list_size() {
            Ok(0) => return Ok(Vec::new()),
            Ok(size) => size,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        match subject.list(&mut buf[..]) {
            Ok(len) => {
                buf.truncate(len);
                break buf;
            }
            // The list grew between the two calls; ask again.
            Err(Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    };
    let mut xattrs = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if let Some(value) = read_xattr(subject, name)? {
            xattrs.push((name.to_vec(), value));
        }
    }
    xattrs.sort();
    Ok(xattrs)
}

/// Whether `subject` has any extended attribute: one system call.
pub(crate) fn has_xattrs<S: XattrSubject>(subject: S) -> io::Result<bool> {
    match subject.list_size() {
        Ok(size) => Ok(size > 0),
        Err(Errno::NOTSUP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Reads one extended attribute of `subject`; `None` when it does not exist.
pub(crate) fn read_xattr<S: XattrSubject>(subject: S, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match subject.value_size(name) {
            Ok(size) => size,
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut value = vec![0u8; size];
        match subject.value(name, &mut value[..]) {
            Ok(len) => {
                value.truncate(len);
                return Ok(Some(value));
            }
            Err(Errno::RANGE) => {}
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}
