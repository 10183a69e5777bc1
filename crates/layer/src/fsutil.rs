//! Small filesystem helpers shared by the writer and the applier.

use std::io;
use std::path::Path;

use rustix::io::Errno;

/// Extended attributes as (name, value) pairs, sorted by name.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads every extended attribute of `path` without following a final
/// symlink. A filesystem without xattr support yields an empty list.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Xattrs> {
    let names = loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(0) => return Ok(Vec::new()),
            Ok(size) => size,
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
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
        if let Some(value) = read_xattr(path, name)? {
            xattrs.push((name.to_vec(), value));
        }
    }
    xattrs.sort();
    Ok(xattrs)
}

/// Whether `path` (a final symlink not followed) has any extended attribute: one system call.
pub(crate) fn has_xattrs(path: &Path) -> io::Result<bool> {
    match rustix::fs::llistxattr_query(path) {
        Ok(size) => Ok(size > 0),
        Err(Errno::NOTSUP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Reads one extended attribute without following a final symlink; `None`
/// when it does not exist.
pub(crate) fn read_xattr(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(size) => size,
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut value = vec![0u8; size];
        match rustix::fs::lgetxattr(path, name, &mut value[..]) {
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
