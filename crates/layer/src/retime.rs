//! Clamping the file times of an existing layer to `SOURCE_DATE_EPOCH`, as BuildKit's
//! `rewrite-timestamp=true` exporter option does: every header whose modification, access or
//! change time is later than the epoch gets the epoch, and nothing else changes. The
//! rewrite works on the tar's blocks as Go's reader frames them (PAX and GNU extension
//! headers, data lengths, header-only entries), so names, owners, xattrs and data pass
//! through byte for byte; only the time fields and the checksums of rewritten headers, and
//! the PAX headers whose time records were rewritten, change.

use std::io::{self, Read, Write};

use crate::compress::decompressing_reader;
use crate::tarfmt::pax_record;
use crate::tarread::{
    BLOCK, EntryKind, malformed, numeric, parse_pax, pax_number, pax_time, verify_checksum,
};

/// The PAX records that hold times.
const PAX_TIMES: [&[u8]; 3] = [b"mtime", b"atime", b"ctime"];

/// Copies the layer `input` (plain, gzip or zstd) to `out` as a plain tar whose times are
/// clamped to `epoch`; returns whether any time was later than it (when not, `out` got the
/// same tar as `input` holds).
///
/// ```
/// use stagecraft_layer::clamp_layer_times;
///
/// let mut header = tar::Header::new_ustar();
/// header.set_path("file").unwrap();
/// header.set_size(2);
/// header.set_mtime(2_000_000_000);
/// header.set_cksum();
/// let mut builder = tar::Builder::new(Vec::new());
/// builder.append(&header, &b"hi"[..]).unwrap();
/// let layer = builder.into_inner().unwrap();
///
/// let mut clamped = Vec::new();
/// assert!(clamp_layer_times(&layer[..], &mut clamped, 1_700_000_000)?);
/// let mut archive = tar::Archive::new(&clamped[..]);
/// let entry = archive.entries()?.next().unwrap()?;
/// assert_eq!(entry.header().mtime()?, 1_700_000_000);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn clamp_layer_times(input: impl Read, out: impl Write, epoch: i64) -> io::Result<bool> {
    let (_, mut input) = decompressing_reader(input)?;
    let mut out = out;
    let mut changed = false;
    // A PAX `size` record gives the next entry's data length instead of its header.
    let mut pax_size: Option<u64> = None;
    let mut block = [0u8; BLOCK];
    loop {
        if !read_block(&mut input, &mut block)? {
            // A stream without the end marker ends here, as Go's reader allows.
            return Ok(changed);
        }
        if block.iter().all(|&b| b == 0) {
            // The end marker: what follows (the second zero block, padding) is copied.
            out.write_all(&block)?;
            io::copy(&mut input, &mut out)?;
            return Ok(changed);
        }
        verify_checksum(&block)?;
        let flag = block[156];
        let size = numeric(&block, "size", 124..136)?;
        match flag {
            b'x' | b'g' => {
                let body = read_body(&mut input, size)?;
                let records = parse_pax(&body)?;
                if flag == b'x' {
                    pax_size = records
                        .iter()
                        .rev()
                        .find(|(key, _)| key == b"size")
                        .map(|(key, value)| pax_number(key, value))
                        .transpose()?;
                }
                let mut rewritten = false;
                let mut new_body = Vec::with_capacity(body.len());
                for (key, value) in &records {
                    let late = PAX_TIMES.contains(&key.as_slice()) && pax_time(value)? > (epoch, 0);
                    let value = if late {
                        rewritten = true;
                        epoch.to_string().into_bytes()
                    } else {
                        value.clone()
                    };
                    new_body.extend(pax_record(key, &value));
                }
                if rewritten {
                    changed = true;
                    let mut header = tar::Header::from_byte_slice(&block).clone();
                    header.set_size(new_body.len() as u64);
                    header.set_cksum();
                    out.write_all(header.as_bytes())?;
                    write_padded(&mut out, &new_body)?;
                } else {
                    out.write_all(&block)?;
                    write_padded(&mut out, &body)?;
                }
            }
            b'L' | b'K' => {
                out.write_all(&block)?;
                let body = read_body(&mut input, size)?;
                write_padded(&mut out, &body)?;
            }
            _ => {
                let mtime = i64::try_from(numeric(&block, "mtime", 136..148)?).unwrap_or(i64::MAX);
                if mtime > epoch {
                    changed = true;
                    let mut header = tar::Header::from_byte_slice(&block).clone();
                    header.set_mtime(epoch.max(0).unsigned_abs());
                    header.set_cksum();
                    block.copy_from_slice(header.as_bytes());
                }
                out.write_all(&block)?;
                let data = if EntryKind::from_flag(flag).header_only() {
                    0
                } else {
                    pax_size.take().unwrap_or(size)
                };
                pax_size = None;
                copy_exact(&mut input, &mut out, padded(data))?;
            }
        }
    }
}

/// `size` rounded up to whole blocks.
fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Reads one block; `false` at a clean end of stream.
fn read_block(input: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match input.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(malformed("tar stream ends inside a header")),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads an extension header's body of `size` bytes and its padding.
fn read_body(input: &mut impl Read, size: u64) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    input.take(padded(size)).read_to_end(&mut body)?;
    if (body.len() as u64) < padded(size) {
        return Err(malformed("tar stream ends inside an extension header"));
    }
    body.truncate(size as usize);
    Ok(body)
}

/// Writes `body` and the zeros that pad it to whole blocks.
fn write_padded(out: &mut impl Write, body: &[u8]) -> io::Result<()> {
    out.write_all(body)?;
    let padding = padded(body.len() as u64) as usize - body.len();
    out.write_all(&[0u8; BLOCK][..padding])
}

/// Copies exactly `n` bytes.
fn copy_exact(input: &mut impl Read, out: &mut impl Write, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut input.take(n), out)?;
    if copied < n {
        return Err(malformed("tar stream ends inside an entry's data"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(builder: &mut tar::Builder<Vec<u8>>, path: &str, mtime: u64, data: &[u8]) {
        let mut header = tar::Header::new_ustar();
        header.set_path(path).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }

    fn times(tar: &[u8]) -> Vec<(String, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().mtime().unwrap(),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn only_later_times_are_clamped_and_the_rest_passes_through() {
        let mut builder = tar::Builder::new(Vec::new());
        entry(&mut builder, "old", 100, b"old data");
        entry(&mut builder, "new", 2_000_000_000, &[7u8; 1000]);
        // A long name goes through a PAX header with its own records.
        let long = "d/".repeat(80) + "file";
        let mut header = tar::Header::new_ustar();
        header.set_size(3);
        header.set_mtime(2_000_000_000);
        builder
            .append_data(&mut header, &long, &b"abc"[..])
            .unwrap();
        let layer = builder.into_inner().unwrap();

        let mut out = Vec::new();
        assert!(clamp_layer_times(&layer[..], &mut out, 1_000).unwrap());
        let entries = times(&out);
        assert_eq!(entries[0], ("old".to_owned(), 100, b"old data".to_vec()));
        assert_eq!(entries[1], ("new".to_owned(), 1_000, vec![7u8; 1000]));
        assert_eq!(entries[2], (long, 1_000, b"abc".to_vec()));
        assert_eq!(out.len(), layer.len());

        // Nothing later than the epoch: the same bytes.
        let mut again = Vec::new();
        assert!(!clamp_layer_times(&out[..], &mut again, 1_000).unwrap());
        assert_eq!(again, out);
    }

    #[test]
    fn pax_time_records_are_clamped() {
        let mut body = pax_record(b"mtime", b"2000000000.5");
        body.extend(pax_record(b"atime", b"10"));
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_path("PaxHeaders/f").unwrap();
        header.set_size(body.len() as u64);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &body[..]).unwrap();
        entry(&mut builder, "f", 5, b"x");
        let layer = builder.into_inner().unwrap();

        let mut out = Vec::new();
        assert!(clamp_layer_times(&layer[..], &mut out, 1_000).unwrap());
        let mut archive = tar::Archive::new(&out[..]);
        let mut entries = archive.entries().unwrap();
        let mut first = entries.next().unwrap().unwrap();
        let records: Vec<(String, String)> = first
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|r| {
                let r = r.unwrap();
                (r.key().unwrap().to_owned(), r.value().unwrap().to_owned())
            })
            .collect();
        assert_eq!(
            records,
            [
                ("mtime".to_owned(), "1000".to_owned()),
                ("atime".to_owned(), "10".to_owned())
            ]
        );
        let mut data = Vec::new();
        first.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"x");
    }
}
