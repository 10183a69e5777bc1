//! A tar reader with Go `archive/tar` semantics, the reader docker,
//! containerd and BuildKit use.
//!
//! The `tar` crate's reader is not used for layers because it disagrees with
//! Go in ways a hostile layer can exploit to make two tools see different
//! files: it splits PAX records at every newline instead of trusting their
//! length prefix (so binary xattr values such as `security.capability` can
//! hide or forge `path`/`size` records), and it skips the declared data of
//! header-only entries (symlinks, directories, devices) where Go skips none.
//! This reader frames entries exactly as Go does. The `tar` crate's `Header`
//! is still used to decode the fixed fields (octal and base-256 numbers).

use std::io::{self, Read, Seek, SeekFrom};

use crate::compress::{Compression, decompressing_reader};

pub(crate) const BLOCK: usize = 512;
/// Go's cap on PAX and GNU long-name bodies (`maxSpecialFileSize`).
const MAX_SPECIAL_SIZE: u64 = 1 << 20;

/// The kind of a tar entry, by its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// `0`, NUL or `7` (contiguous file).
    Regular,
    /// `1`: a hardlink to [`TarEntry::link`].
    Hardlink,
    /// `2`: a symlink to [`TarEntry::link`].
    Symlink,
    /// `3`.
    CharDevice,
    /// `4`.
    BlockDevice,
    /// `5`.
    Directory,
    /// `6`.
    Fifo,
    /// `g`: a PAX global header (its records are in [`TarEntry::pax`]).
    GlobalHeader,
    /// Anything else (GNU sparse files, volume labels, vendor types).
    Other(u8),
}

impl EntryKind {
    pub(crate) fn from_flag(flag: u8) -> Self {
        match flag {
            b'0' | 0 | b'7' => Self::Regular,
            b'1' => Self::Hardlink,
            b'2' => Self::Symlink,
            b'3' => Self::CharDevice,
            b'4' => Self::BlockDevice,
            b'5' => Self::Directory,
            b'6' => Self::Fifo,
            b'g' => Self::GlobalHeader,
            other => Self::Other(other),
        }
    }

    /// Entries whose data Go ignores whatever the size field says.
    pub(crate) fn header_only(self) -> bool {
        matches!(
            self,
            Self::Hardlink
                | Self::Symlink
                | Self::CharDevice
                | Self::BlockDevice
                | Self::Directory
                | Self::Fifo
        )
    }
}

/// One entry's header, with PAX and GNU long-name extensions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The name as stored (GNU long name, else PAX `path`, else the USTAR
    /// prefix and name), not cleaned in any way.
    pub path: Vec<u8>,
    /// What the entry is.
    pub kind: EntryKind,
    /// The raw type flag.
    pub type_flag: u8,
    /// Permission bits plus setuid/setgid/sticky.
    pub mode: u32,
    /// Numeric owner (PAX `uid` wins).
    pub uid: u64,
    /// Numeric group (PAX `gid` wins).
    pub gid: u64,
    /// Modification time: seconds (PAX `mtime` wins, may be negative) and nanoseconds.
    pub mtime: (i64, u32),
    /// Bytes of data that follow (0 for header-only kinds).
    pub size: u64,
    /// Symlink or hardlink target (GNU long link, else PAX `linkpath`, else the header).
    pub link: Option<Vec<u8>>,
    /// Major and minor number (devices only; 0 otherwise).
    pub device: (u32, u32),
    /// `SCHILY.xattr.*` records, in archive order, names without the prefix.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Every PAX record that applied to this entry, in archive order.
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads tar entries one by one; between calls to
/// [`next_entry`](Self::next_entry), [`Read`] yields the current entry's data
/// (unread data is skipped automatically).
pub struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// Bytes consumed from `inner` so far.
    position: u64,
    done: bool,
}

pub(crate) fn malformed(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Opens a layer stream: recognises plain, gzip or zstd by magic bytes and
/// returns the compression and a reader of its entries.
pub fn open_layer<'r, R: Read + 'r>(
    reader: R,
) -> io::Result<(Compression, TarReader<Box<dyn Read + 'r>>)> {
    let (compression, decoded) = decompressing_reader(reader)?;
    Ok((compression, TarReader::new(decoded)))
}

impl<R: Read> TarReader<R> {
    /// A reader of the uncompressed tar stream `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            padding: 0,
            position: 0,
            done: false,
        }
    }

    /// Where the current entry's unread data starts in the stream: right after
    /// [`next_entry`](Self::next_entry), the offset of its first data byte.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// The underlying reader, positioned after the last block read.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry, or `None` at the end-of-archive marker (or at a clean
    /// end of stream). Malformed archives give `InvalidData` errors.
    pub fn next_entry(&mut self) -> io::Result<Option<TarEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;

        let mut pax: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block)? {
                if pax.is_some() || long_name.is_some() || long_link.is_some() {
                    return Err(malformed("archive ends after an extension header"));
                }
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            verify_checksum(&block)?;
            let header = tar::Header::from_byte_slice(&block);
            let flag = block[156];
            let kind = EntryKind::from_flag(flag);
            let header_size = numeric(&block, "size", 124..136)?;
            match flag {
                b'x' | b'g' | b'L' | b'K' => {
                    let body = self.read_special(header_size)?;
                    match flag {
                        b'x' => pax = Some(parse_pax(&body)?),
                        b'L' => long_name = Some(trim_nul(body)),
                        b'K' => long_link = Some(trim_nul(body)),
                        _ => {
                            // A global header is surfaced as an entry, as Go does;
                            // its records are not merged into later entries.
                            return Ok(Some(TarEntry {
                                path: header.path_bytes().into_owned(),
                                kind,
                                type_flag: flag,
                                mode: 0,
                                uid: 0,
                                gid: 0,
                                mtime: (0, 0),
                                size: 0,
                                link: None,
                                device: (0, 0),
                                xattrs: Vec::new(),
                                pax: parse_pax(&body)?,
                            }));
                        }
                    }
                    continue;
                }
                _ => {}
            }
            let records = pax.unwrap_or_default();
            let entry = build_entry(
                &block,
                header,
                flag,
                kind,
                header_size,
                records,
                long_name,
                long_link,
            )?;
            self.remaining = entry.size;
            self.padding = (BLOCK as u64 - entry.size % BLOCK as u64) % BLOCK as u64;
            return Ok(Some(entry));
        }
    }

    /// Reads a whole block; `false` at a clean end of stream.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    filled += n;
                    self.position += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads the body of an extension header and its padding.
    fn read_special(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_SPECIAL_SIZE {
            return Err(malformed(format!(
                "extension header of {size} bytes exceeds the 1 MiB limit"
            )));
        }
        let mut body = Vec::with_capacity(size as usize);
        (&mut self.inner).take(size).read_to_end(&mut body)?;
        self.position += body.len() as u64;
        if body.len() as u64 != size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.skip((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64)?;
        Ok(body)
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.position += skipped;
        if skipped != n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

impl<R: Read + Seek> TarReader<R> {
    /// [`next_entry`](Self::next_entry), seeking over the current entry's unread data and
    /// padding instead of reading them: walking a plain tar file's headers reads the headers
    /// alone. (Past the end, the next read finds nothing: a clean end, as for a stream.)
    pub(crate) fn next_entry_seeking(&mut self) -> io::Result<Option<TarEntry>> {
        let unread = self.remaining + self.padding;
        if unread > 0 && !self.done {
            let offset = i64::try_from(unread).map_err(|_| malformed("entry size out of range"))?;
            self.inner.seek(SeekFrom::Current(offset))?;
            self.position += unread;
            self.remaining = 0;
            self.padding = 0;
        }
        self.next_entry()
    }
}

impl<R: Read> Read for TarReader<R> {
    /// Reads the current entry's data.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.remaining -= n as u64;
        self.position += n as u64;
        Ok(n)
    }
}

/// Decodes a numeric header field as Go does: octal, with spaces and NULs
/// around it ignored and an empty field meaning 0, or big-endian base-256
/// when the top bit of the first byte is set (negative values are refused).
pub(crate) fn numeric(
    block: &[u8; BLOCK],
    what: &str,
    range: std::ops::Range<usize>,
) -> io::Result<u64> {
    let field = &block[range];
    let bad = || malformed(format!("malformed {what} field in tar header"));
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err(bad());
        }
        let mut value: u64 = u64::from(field[0] & 0x3f);
        for &byte in &field[1..] {
            value = value.checked_mul(256).ok_or_else(bad)? | u64::from(byte);
        }
        return Ok(value);
    }
    let trimmed = field
        .iter()
        .position(|&b| b != b' ' && b != 0)
        .map_or(&[][..], |start| {
            let end = field
                .iter()
                .rposition(|&b| b != b' ' && b != 0)
                .unwrap_or(start);
            &field[start..=end]
        });
    trimmed.iter().try_fold(0u64, |acc, &b| {
        if !(b'0'..=b'7').contains(&b) {
            return Err(bad());
        }
        acc.checked_mul(8)
            .map(|v| v | u64::from(b - b'0'))
            .ok_or_else(bad)
    })
}

pub(crate) fn verify_checksum(block: &[u8; BLOCK]) -> io::Result<()> {
    let stored = numeric(block, "checksum", 148..156)?;
    // The checksum field counts as eight spaces. Go, like GNU tar, also
    // accepts the historical signed-byte sum.
    let rest = block[..148].iter().chain(&block[156..]);
    let unsigned: u32 = rest.clone().map(|&b| u32::from(b)).sum::<u32>() + 8 * 32;
    let signed: i64 = rest.map(|&b| i64::from(b as i8)).sum::<i64>() + 8 * 32;
    if stored == u64::from(unsigned) || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(malformed(
            "header checksum mismatch (not a tar stream, or corrupt)",
        ))
    }
}

fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    // GNU writes the name NUL-terminated; Go cuts at the first NUL.
    if let Some(end) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(end);
    }
    bytes
}

/// Parses PAX records (`"<len> <key>=<value>\n"`), trusting the length so
/// values may hold any byte.
pub(crate) fn parse_pax(mut body: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut records = Vec::new();
    // Go stops at trailing NUL padding some writers leave.
    while !body.is_empty() && body[0] != 0 {
        let space = body
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("PAX record without a length"))?;
        let len: usize = std::str::from_utf8(&body[..space])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("PAX record with a malformed length"))?;
        if len <= space + 1 || len > body.len() || body[len - 1] != b'\n' {
            return Err(malformed("PAX record length does not match its content"));
        }
        let record = &body[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| malformed("PAX record without `=`"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        if key.is_empty() || key.contains(&0) {
            return Err(malformed("PAX record with an invalid key"));
        }
        records.push((key.to_vec(), value.to_vec()));
        body = &body[len..];
    }
    Ok(records)
}

pub(crate) fn pax_number(key: &[u8], value: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            malformed(format!(
                "PAX `{}` record is not a number",
                String::from_utf8_lossy(key)
            ))
        })
}

/// Parses a PAX time (`"1700000000.123456789"`, possibly negative) into
/// seconds and nanoseconds.
pub(crate) fn pax_time(value: &[u8]) -> io::Result<(i64, u32)> {
    let bad = || malformed("PAX `mtime` record is not a time");
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if secs < 0 || frac.is_empty() {
        // Sub-second parts of negative times count towards zero; whole
        // seconds are plenty for times before 1970.
        return Ok((secs, 0));
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    Ok((secs, digits.parse().map_err(|_| bad())?))
}

#[allow(clippy::too_many_arguments)] // The parts of an entry gathered by the loop.
fn build_entry(
    block: &[u8; BLOCK],
    header: &tar::Header,
    flag: u8,
    kind: EntryKind,
    header_size: u64,
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
) -> io::Result<TarEntry> {
    let mut entry = TarEntry {
        path: header.path_bytes().into_owned(),
        kind,
        type_flag: flag,
        mode: (numeric(block, "mode", 100..108)? & 0o7777) as u32,
        uid: numeric(block, "uid", 108..116)?,
        gid: numeric(block, "gid", 116..124)?,
        mtime: (
            i64::try_from(numeric(block, "mtime", 136..148)?).unwrap_or(i64::MAX),
            0,
        ),
        size: header_size,
        link: header.link_name_bytes().map(|l| l.into_owned()),
        device: (0, 0),
        xattrs: Vec::new(),
        pax: Vec::new(),
    };
    if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
        let device = |what, range| {
            u32::try_from(numeric(block, what, range)?)
                .map_err(|_| malformed(format!("{what} out of range")))
        };
        entry.device = (
            device("device major", 329..337)?,
            device("device minor", 337..345)?,
        );
    }
    for (key, value) in &pax {
        match key.as_slice() {
            b"path" => entry.path = value.clone(),
            b"linkpath" => entry.link = Some(value.clone()),
            b"size" => entry.size = pax_number(key, value)?,
            b"uid" => entry.uid = pax_number(key, value)?,
            b"gid" => entry.gid = pax_number(key, value)?,
            b"mtime" => entry.mtime = pax_time(value)?,
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    entry.xattrs.push((name.to_vec(), value.clone()));
                }
            }
        }
    }
    entry.pax = pax;
    // GNU long names override PAX, as in Go.
    if let Some(name) = long_name {
        entry.path = name;
    }
    if let Some(link) = long_link {
        entry.link = Some(link);
    }
    // Old V7 archives mark directories with a NUL type and a trailing slash.
    if flag == 0 && entry.path.ends_with(b"/") {
        entry.kind = EntryKind::Directory;
    }
    if entry.kind.header_only() {
        entry.size = 0;
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeking over entries' data finds the same entries at the same data offsets as reading
    /// through it.
    #[test]
    fn seeking_walk_matches_a_reading_walk() {
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("dir/{}", "n".repeat(150));
        for (path, data) in [
            ("a", &b"hello"[..]),
            (&long[..], &[7u8; 1000][..]),
            ("empty", &[][..]),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, data).unwrap();
        }
        let archive = builder.into_inner().unwrap();
        let walk = |seeking: bool| {
            let mut tar = TarReader::new(io::Cursor::new(&archive));
            let mut seen = Vec::new();
            loop {
                let next = if seeking {
                    tar.next_entry_seeking()
                } else {
                    tar.next_entry()
                };
                let Some(entry) = next.unwrap() else { break };
                seen.push((entry.path, entry.size, tar.position()));
            }
            seen
        };
        let read = walk(false);
        assert_eq!(read.len(), 3);
        assert_eq!(read[1].0, long.as_bytes());
        assert_eq!(&archive[read[1].2 as usize..][..1000], &[7u8; 1000][..]);
        assert_eq!(walk(true), read);
    }

    #[test]
    fn pax_values_may_contain_newlines() {
        let body = [
            crate::tarfmt::pax_record(b"SCHILY.xattr.user.x", b"a\nb=c"),
            crate::tarfmt::pax_record(b"path", b"abc"),
        ]
        .concat();
        let records = parse_pax(&body).unwrap();
        assert_eq!(
            records[0],
            (b"SCHILY.xattr.user.x".to_vec(), b"a\nb=c".to_vec())
        );
        assert_eq!(records[1], (b"path".to_vec(), b"abc".to_vec()));
    }

    #[test]
    fn pax_lengths_are_checked() {
        assert!(parse_pax(b"11 path=abc\n").is_err());
        assert!(parse_pax(b"99 path=abc\n").is_err());
        assert!(parse_pax(b"x path=abc\n").is_err());
        assert!(parse_pax(b"9 path\nab\n").is_err());
    }

    #[test]
    fn numeric_fields_decode_like_go() {
        let mut block = [0u8; BLOCK];
        assert_eq!(numeric(&block, "uid", 108..116).unwrap(), 0);
        block[108..116].copy_from_slice(b" 0755 \0\0");
        assert_eq!(numeric(&block, "uid", 108..116).unwrap(), 0o755);
        block[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            numeric(&block, "uid", 108..116).unwrap(),
            u64::from(u32::MAX)
        );
        block[108..116].copy_from_slice(&[0xff; 8]);
        assert!(numeric(&block, "uid", 108..116).is_err());
        block[108..116].copy_from_slice(b"0009\0\0\0\0");
        assert!(numeric(&block, "uid", 108..116).is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"12").unwrap(), (12, 0));
        assert_eq!(pax_time(b"12.5").unwrap(), (12, 500_000_000));
        assert_eq!(pax_time(b"12.123456789123").unwrap(), (12, 123_456_789));
        assert_eq!(pax_time(b"-3.5").unwrap(), (-3, 0));
        assert!(pax_time(b"x").is_err());
    }
}
