//! Tar headers written by hand, the way Go's `archive/tar` writes them for
//! docker and BuildKit: USTAR when every field fits, otherwise a PAX `x`
//! header carrying the fields that do not (long or non-ASCII names and link
//! targets, huge ids and sizes, negative times) plus `SCHILY.xattr.*` records.
//!
//! The `tar` crate's `Builder` is not used for writing: it emits GNU long-name
//! entries, no xattrs, and pads short reads silently (which corrupts the
//! archive if a file shrinks while being read). Its `Header` type is still
//! used for field encoding and the checksum.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// Largest value the 8-byte octal fields (mode, uid, gid) hold.
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value the 12-byte octal fields (size, mtime) hold.
const MAX_OCTAL_12: u64 = 0o77777777777;

/// What a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Hardlink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
}

impl Kind {
    fn entry_type(self) -> tar::EntryType {
        match self {
            Self::Regular => tar::EntryType::Regular,
            Self::Hardlink => tar::EntryType::Link,
            Self::Symlink => tar::EntryType::Symlink,
            Self::Char => tar::EntryType::Char,
            Self::Block => tar::EntryType::Block,
            Self::Directory => tar::EntryType::Directory,
            Self::Fifo => tar::EntryType::Fifo,
        }
    }
}

/// Everything a tar header carries, before encoding.
pub(crate) struct EntryHeader<'a> {
    /// The entry name, relative, with a trailing `/` for directories.
    pub name: &'a [u8],
    pub kind: Kind,
    /// Permission bits plus setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch (already clamped by the caller).
    pub mtime: i64,
    /// Data size; zero for everything but regular files.
    pub size: u64,
    /// Symlink target or hardlink target.
    pub link: Option<&'a [u8]>,
    /// Major and minor numbers of a device node.
    pub device: Option<(u32, u32)>,
    /// Extended attributes, sorted by name.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Why [`TarStream::data`] failed: the source and the output are different
/// files, and errors must say which.
pub(crate) enum DataError {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the archive failed.
    Write(io::Error),
    /// The source ended after this many bytes, before the size in the header.
    Short(u64),
}

/// A tar stream being written: headers, data and padding, and the end marker.
pub(crate) struct TarStream<W> {
    out: W,
    /// Entries written so far (PAX headers not counted).
    pub entries: u64,
}

impl<W: Write> TarStream<W> {
    pub(crate) fn new(out: W) -> Self {
        Self { out, entries: 0 }
    }

    /// Writes a header (preceded by a PAX header when needed).
    pub(crate) fn header(&mut self, h: &EntryHeader<'_>) -> io::Result<()> {
        let mut pax: Vec<(&[u8], Vec<u8>)> = Vec::new();
        let name_fits = fits_ustar(h.name, 100);
        if !name_fits {
            pax.push((b"path", h.name.to_vec()));
        }
        if let Some(link) = h.link
            && !fits_ustar(link, 100)
        {
            pax.push((b"linkpath", link.to_vec()));
        }
        if h.uid > MAX_OCTAL_8 {
            pax.push((b"uid", h.uid.to_string().into_bytes()));
        }
        if h.gid > MAX_OCTAL_8 {
            pax.push((b"gid", h.gid.to_string().into_bytes()));
        }
        if h.size > MAX_OCTAL_12 {
            pax.push((b"size", h.size.to_string().into_bytes()));
        }
        if h.mtime < 0 || h.mtime as u64 > MAX_OCTAL_12 {
            pax.push((b"mtime", h.mtime.to_string().into_bytes()));
        }
        let xattr_keys: Vec<Vec<u8>> = h
            .xattrs
            .iter()
            .map(|(name, _)| [b"SCHILY.xattr.".as_slice(), name].concat())
            .collect();
        for (key, (_, value)) in xattr_keys.iter().zip(h.xattrs) {
            pax.push((key, value.clone()));
        }
        if !pax.is_empty() {
            // Go sorts the records by key; do the same so output is canonical.
            pax.sort_by(|a, b| a.0.cmp(b.0));
            self.pax_header(h.name, &pax)?;
        }

        let mut header = tar::Header::new_ustar();
        header.set_entry_type(h.kind.entry_type());
        header.set_mode(h.mode & 0o7777);
        header.set_uid(if h.uid > MAX_OCTAL_8 { 0 } else { h.uid });
        header.set_gid(if h.gid > MAX_OCTAL_8 { 0 } else { h.gid });
        header.set_size(if h.size > MAX_OCTAL_12 { 0 } else { h.size });
        header
            .set_mtime(u64::try_from(h.mtime).map_or(0, |t| if t > MAX_OCTAL_12 { 0 } else { t }));
        let ustar = header
            .as_ustar_mut()
            .expect("new_ustar builds a ustar header");
        put_truncated(&mut ustar.name, h.name);
        if let Some(link) = h.link {
            put_truncated(&mut ustar.linkname, link);
        }
        if let Some((major, minor)) = h.device {
            // Linux majors (12 bits) and minors (20 bits) always fit the
            // fields' 7 octal digits.
            header.set_device_major(major)?;
            header.set_device_minor(minor)?;
        }
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        self.entries += 1;
        Ok(())
    }

    /// Writes exactly `size` bytes of `data` followed by the block padding.
    pub(crate) fn data(
        &mut self,
        data: &mut dyn Read,
        size: u64,
        buf: &mut [u8],
    ) -> Result<(), DataError> {
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => return Err(DataError::Short(size - left)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DataError::Read(e)),
            };
            self.out.write_all(&buf[..n]).map_err(DataError::Write)?;
            left -= n as u64;
        }
        self.pad(size).map_err(DataError::Write)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn pax_header(&mut self, name: &[u8], records: &[(&[u8], Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (key, value) in records {
            body.extend_from_slice(&pax_record(key, value));
        }
        // Go names the PAX header `<dir>/PaxHeaders.0/<base>`; readers ignore
        // it, but copying the convention keeps `tar tv` listings familiar.
        let trimmed = name.strip_suffix(b"/").unwrap_or(name);
        let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
            Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
            None => (&b""[..], trimmed),
        };
        let pax_name = [dir, b"PaxHeaders.0/", base].concat();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(body.len() as u64);
        let ustar = header
            .as_ustar_mut()
            .expect("new_ustar builds a ustar header");
        put_truncated(&mut ustar.name, &pax_name);
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(&body)?;
        self.pad(body.len() as u64)
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }
}

/// Whether a name can live in a USTAR field without PAX: short enough, and
/// ASCII without NUL (PAX is UTF-8; Go moves every non-ASCII name to PAX).
fn fits_ustar(value: &[u8], len: usize) -> bool {
    value.len() <= len && value.iter().all(|&b| b != 0 && b.is_ascii())
}

/// Copies the ASCII bytes of `value` into a fixed field, truncating: the
/// placeholder Go writes when the real value is in a PAX record.
fn put_truncated(field: &mut [u8], value: &[u8]) {
    for (slot, byte) in field
        .iter_mut()
        .zip(value.iter().copied().filter(|&b| b != 0 && b.is_ascii()))
    {
        *slot = byte;
    }
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts itself.
pub(crate) fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    // Adding the digits of the length may add a digit; iterate to the fixpoint.
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = Vec::with_capacity(len);
    record.extend_from_slice(len.to_string().as_bytes());
    record.push(b' ');
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record(b"path", b"a"), b"9 path=a\n");
        // 11 bytes without the length, which then takes two digits.
        assert_eq!(pax_record(b"path", b"abcd"), b"13 path=abcd\n");
        // Crossing a digit boundary: 96 + 3 = 99 bytes of payload needs 3 digits.
        let value = vec![b'x'; 92];
        let record = pax_record(b"path", &value);
        let len: usize = std::str::from_utf8(record.split(|&b| b == b' ').next().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, record.len());
    }

    #[test]
    fn ustar_fit_rules() {
        assert!(fits_ustar(&[b'a'; 100], 100));
        assert!(!fits_ustar(&[b'a'; 101], 100));
        assert!(!fits_ustar("é".as_bytes(), 100));
    }
}
