//! Compression, digests and media types: the one-pass pipeline that turns an
//! uncompressed tar stream into a registry blob, and its inverse (sniffing).

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::pgzip::ParallelGzEncoder;

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip-compressed layer.
pub const MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd-compressed layer.
pub const MEDIA_TYPE_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 media type of a gzip-compressed layer (read-only interop).
pub const DOCKER_MEDIA_TYPE_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker schema 2 media type of an uncompressed layer (read-only interop).
pub const DOCKER_MEDIA_TYPE_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Default gzip level, the one docker, BuildKit and `gzip` use.
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Default zstd level, the one BuildKit uses.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How a layer blob is compressed.
///
/// The level is part of the identity of the output: the same tar compressed
/// at another level (or by another backend) has another digest, so callers
/// caching compressed blobs must key them by the whole value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar; the blob digest equals the diff-id.
    None,
    /// gzip through flate2's zlib-rs backend, block-parallel as pigz does it
    /// (one gzip member, see [`LayerWriter`]), with an empty gzip header (no
    /// file name, mtime 0) so the output depends only on the input and level.
    /// Blocks that look incompressible are stored rather than deflated.
    Gzip {
        /// 0 (store) to 9 (best); values above 9 are treated as 9.
        level: u32,
    },
    /// zstd through libzstd, always in multithreaded mode (see [`LayerWriter`]).
    Zstd {
        /// 1 to 22 (negative levels are libzstd's fast modes).
        level: i32,
    },
}

impl Default for Compression {
    /// gzip at level 6: what every registry and runtime accepts.
    fn default() -> Self {
        Self::gzip()
    }
}

impl Compression {
    /// gzip at [`DEFAULT_GZIP_LEVEL`].
    pub const fn gzip() -> Self {
        Self::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }

    /// zstd at [`DEFAULT_ZSTD_LEVEL`].
    pub const fn zstd() -> Self {
        Self::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }

    /// The OCI media type of a layer compressed this way.
    pub const fn media_type(self) -> &'static str {
        match self {
            Self::None => MEDIA_TYPE_TAR,
            Self::Gzip { .. } => MEDIA_TYPE_TAR_GZIP,
            Self::Zstd { .. } => MEDIA_TYPE_TAR_ZSTD,
        }
    }

    /// The compression a layer media type announces (OCI or Docker schema 2),
    /// with the default level; `None` for media types that are not layers.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            MEDIA_TYPE_TAR | DOCKER_MEDIA_TYPE_TAR => Some(Self::None),
            MEDIA_TYPE_TAR_GZIP | DOCKER_MEDIA_TYPE_TAR_GZIP => Some(Self::gzip()),
            MEDIA_TYPE_TAR_ZSTD => Some(Self::zstd()),
            _ => None,
        }
    }

    /// Recognises a stream's compression from its first bytes (gzip `1f 8b`,
    /// zstd frame `28 b5 2f fd`); anything else is taken as a plain tar.
    pub fn sniff(prefix: &[u8]) -> Self {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Self::gzip()
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::zstd()
        } else {
            Self::None
        }
    }
}

/// Digests and sizes of a written layer: what goes into the image config
/// (`diff_id`) and into the manifest descriptor (`digest`, `size`, media type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The compression of the blob.
    pub compression: Compression,
    /// `sha256:<hex>` of the uncompressed tar.
    pub diff_id: String,
    /// `sha256:<hex>` of the blob as written (compressed).
    pub digest: String,
    /// Size of the blob as written, in bytes.
    pub size: u64,
    /// Size of the uncompressed tar, in bytes.
    pub uncompressed_size: u64,
}

impl LayerInfo {
    /// The OCI media type of the blob.
    pub fn media_type(&self) -> &'static str {
        self.compression.media_type()
    }
}

/// Formats a finished SHA-256 as an OCI digest string.
pub(crate) fn digest_string(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder<W: Write> {
    Plain(W),
    Gzip(ParallelGzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// The one-pass layer pipeline: accepts the uncompressed tar stream through
/// [`Write`], hashes it (diff-id), compresses it, hashes and counts the
/// compressed bytes (digest, size) and writes them to the destination.
///
/// It is `Send` when `W` is, so callers can compress several layers on a
/// rayon pool. Both compressors use every core for one layer: gzip deflates
/// 128 KiB blocks on the rayon pool (each with the 32 KiB before it as its
/// dictionary) into one standard gzip member, with the same bytes whatever the
/// thread count; a block that looks incompressible is written as stored deflate
/// blocks, at the cost of a copy instead of a full deflate. zstd always runs libzstd's multithreaded mode with at least one
/// worker, because its output differs between 0 workers and ≥ 1 workers but is
/// identical for any count ≥ 1; the worker count is thus only a speed knob.
pub struct LayerWriter<W: Write> {
    compression: Compression,
    hasher: Sha256,
    uncompressed_size: u64,
    encoder: Encoder<HashingWriter<W>>,
}

impl<W: Write> LayerWriter<W> {
    /// A pipeline writing to `dest`, using one zstd worker per available CPU.
    pub fn new(dest: W, compression: Compression) -> io::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_zstd_workers(dest, compression, u32::try_from(workers).unwrap_or(1))
    }

    /// A pipeline writing to `dest` with an explicit zstd worker count
    /// (clamped to at least 1; it does not change the output bytes).
    pub fn with_zstd_workers(dest: W, compression: Compression, workers: u32) -> io::Result<Self> {
        let sink = HashingWriter {
            inner: dest,
            hasher: Sha256::new(),
            count: 0,
        };
        let encoder = match compression {
            Compression::None => Encoder::Plain(sink),
            Compression::Gzip { level } => Encoder::Gzip(ParallelGzEncoder::new(
                sink,
                flate2::Compression::new(level.min(9)),
            )?),
            Compression::Zstd { level } => {
                let mut encoder = zstd::stream::write::Encoder::new(sink, level)?;
                encoder.multithread(workers.max(1))?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
        };
        Ok(Self {
            compression,
            hasher: Sha256::new(),
            uncompressed_size: 0,
            encoder,
        })
    }

    /// Flushes the compressor and returns the digests and the destination.
    pub fn finish(self) -> io::Result<(LayerInfo, W)> {
        let mut sink = match self.encoder {
            Encoder::Plain(sink) => sink,
            Encoder::Gzip(encoder) => encoder.finish()?,
            Encoder::Zstd(encoder) => encoder.finish()?,
        };
        sink.flush()?;
        let info = LayerInfo {
            compression: self.compression,
            diff_id: digest_string(self.hasher),
            digest: digest_string(sink.hasher),
            size: sink.count,
            uncompressed_size: self.uncompressed_size,
        };
        Ok((info, sink.inner))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::Plain(w) => w.write(buf)?,
            Encoder::Gzip(w) => w.write(buf)?,
            Encoder::Zstd(w) => w.write(buf)?,
        };
        self.hasher.update(&buf[..n]);
        self.uncompressed_size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// A reader that hashes (or only counts) what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes and counts.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Some(Sha256::new()),
            count: 0,
        }
    }

    /// Only counts: for a stream whose digest another reader already takes.
    pub(crate) fn counting(inner: R) -> Self {
        Self {
            inner,
            hasher: None,
            count: 0,
        }
    }

    /// Reads the rest of the stream (so the digest covers all of it) and
    /// returns the digest (`None` when only counting) and the byte count.
    pub(crate) fn drain_and_finish(mut self) -> io::Result<(Option<String>, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.map(digest_string), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads up to four bytes to recognise the compression, then returns a
/// decompressing reader over the whole stream (the peeked bytes included).
pub(crate) fn decompressing_reader<'r, R: Read + 'r>(
    mut reader: R,
) -> io::Result<(Compression, Box<dyn Read + 'r>)> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    // A pipe may hand out fewer bytes per read than asked; loop until EOF.
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::sniff(&prefix[..filled]);
    let whole = io::Cursor::new(prefix).take(filled as u64).chain(reader);
    let decoded: Box<dyn Read + 'r> = match compression {
        Compression::None => Box::new(whole),
        // Multi-member gzip (as pigz-style writers produce) is still one blob.
        Compression::Gzip { .. } => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd { .. } => Box::new(zstd::stream::read::Decoder::new(whole)?),
    };
    Ok((compression, decoded))
}

/// Whether a stream is a tar archive, plain or gzip/zstd compressed: its first 512 bytes,
/// decompressed, are a tar header with a correct checksum. `ADD` decides from the content, as
/// BuildKit does: a `.gz` that holds no tar is copied as it is, and a tar is unpacked whatever
/// its name.
pub fn is_tar_stream<R: Read>(reader: R) -> bool {
    let Ok((_, mut decoded)) = decompressing_reader(reader) else {
        return false;
    };
    let mut block = [0u8; 512];
    decoded.read_exact(&mut block).is_ok() && tar_header_checksum_matches(&block)
}

/// A tar header's checksum field (octal, at 148..156) against the sum of the block's bytes
/// with that field counted as spaces (unsigned, or signed as some old tars wrote it).
fn tar_header_checksum_matches(block: &[u8; 512]) -> bool {
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_digit(8))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let in_field = |i: usize| (148..156).contains(&i);
    let unsigned: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if in_field(i) { 32 } else { u32::from(b) })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if in_field(i) { 32 } else { i64::from(b as i8) })
        .sum();
    stored == unsigned || i64::from(stored) == signed
}

#[cfg(test)]
mod tar_detection_tests {
    use super::*;
    use std::io::Write;

    fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
        builder.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn tars_are_recognised_by_content_compressed_or_not() {
        let tar = tar_of("hello.txt", b"hello");
        assert!(is_tar_stream(tar.as_slice()));
        assert!(is_tar_stream(gzip(&tar).as_slice()));
        assert!(is_tar_stream(
            zstd::encode_all(tar.as_slice(), 3).unwrap().as_slice()
        ));
        let text = b"just some text, not an archive\n".repeat(40);
        assert!(!is_tar_stream(text.as_slice()));
        assert!(!is_tar_stream(gzip(&text).as_slice()));
        assert!(!is_tar_stream(&b""[..]));
        assert!(!is_tar_stream([0u8; 1024].as_slice()));
        // A broken checksum is no tar.
        let mut broken = tar.clone();
        broken[0] ^= 1;
        assert!(!is_tar_stream(broken.as_slice()));
    }
}

#[cfg(test)]
mod mixed_input_tests {
    use super::*;
    use crate::testdata::mixed;

    /// Text and noise, longer than two zstd jobs (8 MiB each at level 3) and than many gzip
    /// blocks: each compressor writes the same bytes with one thread as with two, the bytes
    /// decode to the input, and the text parts shrink while the noise costs next to nothing.
    #[test]
    fn mixed_input_gives_the_same_bytes_with_any_thread_count() {
        let data = mixed(18 << 20, 5);
        for compression in [Compression::gzip(), Compression::zstd()] {
            let outputs: Vec<(LayerInfo, Vec<u8>)> = [1u32, 2]
                .into_iter()
                .map(|threads| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads as usize)
                        .build()
                        .unwrap();
                    pool.install(|| {
                        let mut writer =
                            LayerWriter::with_zstd_workers(Vec::new(), compression, threads)
                                .unwrap();
                        writer.write_all(&data).unwrap();
                        writer.finish().unwrap()
                    })
                })
                .collect();
            assert!(outputs[0] == outputs[1], "{compression:?}: output differs");
            let (info, bytes) = &outputs[0];
            let (found, mut decoded) = decompressing_reader(bytes.as_slice()).unwrap();
            assert_eq!(found.media_type(), compression.media_type());
            let mut plain = Vec::new();
            decoded.read_to_end(&mut plain).unwrap();
            assert!(plain == data, "{compression:?}: does not round-trip");
            let ratio = info.size as f64 / data.len() as f64;
            assert!((0.4..0.9).contains(&ratio), "{compression:?}: {ratio}");
        }
    }
}
