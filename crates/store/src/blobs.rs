//! Content-addressed blobs: `blobs/sha256/<hex>`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use stagecraft_image::{Descriptor, Digest, Digester};
use tempfile::TempPath;

use crate::error::{Error, IoContext, Result};
use crate::store::{Lease, Store};

/// What a blob write produced: its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The sha256 of the content.
    pub digest: Digest,
    /// The content's length in bytes.
    pub size: u64,
}

impl BlobInfo {
    /// A descriptor for this blob with the given media type.
    pub fn descriptor(&self, media_type: &str) -> Descriptor {
        Descriptor::new(media_type, self.digest.clone(), self.size)
    }
}

/// A fully written, fsynced temporary file and what it hashed to.
pub(crate) struct Staged {
    temp: TempPath,
    pub(crate) info: BlobInfo,
}

/// A blob being written through [`Write`], for producers that push bytes (a tar writer, a
/// compressor) rather than offer a reader. The bytes go to a temporary file in `ingest/` and
/// are hashed on the way, so nothing is written twice; [`BlobWriter::commit`] fsyncs the file
/// and moves it to its content address (see [`Store::write_blob`] for what is synced).
/// Dropped without a commit, it deletes its file. It holds a [`Lease`] while alive, like every
/// write into the store.
///
/// Past its first MiB, a blob is hashed on a thread of its own while the writer goes on: the
/// sha256 of a layer (about 1.5 GB/s) would otherwise take as long as everything else its
/// writer does with the bytes.
pub struct BlobWriter<'a> {
    store: &'a Store,
    file: File,
    temp: TempPath,
    hash: ChunkedHash,
    _lease: Lease,
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.hash.buffer(buf);
        if self.hash.is_full() {
            self.write_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_chunk()?;
        self.file.flush()
    }
}

impl BlobWriter<'_> {
    /// Makes the blob durable and gives it its name; returns its digest and size.
    pub fn commit(self) -> Result<BlobInfo> {
        let store = self.store;
        let staged = self.finish()?;
        store.commit(staged)
    }

    /// Writes the buffered bytes to the file and hands them to the hash.
    fn write_chunk(&mut self) -> io::Result<()> {
        let file = &mut self.file;
        self.hash.hand_over(|chunk| file.write_all(chunk))
    }

    /// Flushes and fsyncs the temporary file (read-only from now on).
    pub(crate) fn finish(mut self) -> Result<Staged> {
        self.write_chunk().at("write", &self.temp)?;
        let BlobWriter {
            file, temp, hash, ..
        } = self;
        // Read-only, so nothing edits a blob in place by accident.
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .at("make read-only", &temp)?;
        file.sync_all().at("flush", &temp)?;
        let info = hash.finish().at("hash", &temp)?;
        Ok(Staged { temp, info })
    }
}

/// A sink that only hashes and counts what is written: the digest and size a blob of those
/// bytes would have, without the blob (a layer recorded as a [lazy blob](crate::LazyBlob)).
/// Hashes on a thread of its own past the first MiB, as [`BlobWriter`] does.
pub struct DigestWriter {
    hash: ChunkedHash,
}

impl Default for DigestWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestWriter {
    /// Nothing hashed yet.
    pub fn new() -> Self {
        Self {
            hash: ChunkedHash::new(),
        }
    }

    /// The digest and size of everything written.
    pub fn finish(mut self) -> io::Result<BlobInfo> {
        self.hash.hand_over(|_| Ok(()))?;
        self.hash.finish()
    }
}

impl Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.hash.buffer(buf);
        if self.hash.is_full() {
            self.hash.hand_over(|_| Ok(()))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes gathered into chunks of [`COPY_BUFFER`]: each whole chunk goes wherever its writer
/// stores it, then to the hash.
struct ChunkedHash {
    /// Bytes not yet handed over, up to [`COPY_BUFFER`].
    chunk: Vec<u8>,
    digest: ChunkDigester,
}

impl ChunkedHash {
    fn new() -> Self {
        Self {
            chunk: Vec::with_capacity(COPY_BUFFER),
            digest: ChunkDigester::Inline(Digester::new()),
        }
    }

    /// Takes as much of `buf` as the chunk has room for; returns how much.
    fn buffer(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(COPY_BUFFER - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        n
    }

    fn is_full(&self) -> bool {
        self.chunk.len() == COPY_BUFFER
    }

    /// Gives the buffered bytes to `store`, then to the hash.
    fn hand_over(&mut self, store: impl FnOnce(&[u8]) -> io::Result<()>) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let spare = self.digest.spare_chunk();
        let chunk = std::mem::replace(&mut self.chunk, spare);
        store(&chunk)?;
        self.digest.update(chunk);
        Ok(())
    }

    /// The digest and size of everything handed over.
    fn finish(self) -> io::Result<BlobInfo> {
        let digester = self.digest.finish()?;
        let size = digester.len();
        Ok(BlobInfo {
            digest: digester.finish(),
            size,
        })
    }
}

/// A sha256 fed in chunks: the first on the caller's thread, the rest on a hashing thread, so
/// that small blobs (configs, manifests) never start one.
///
/// The hashing thread hands every hashed chunk back for the writer to fill again: a fresh
/// MiB per chunk costs a page fault per page when it is first written (about a tenth of the
/// time a big layer's bytes take to reach the file), a reused one none.
enum ChunkDigester {
    Inline(Digester),
    Background {
        chunks: mpsc::SyncSender<Vec<u8>>,
        /// Hashed chunks, back for reuse.
        spent: mpsc::Receiver<Vec<u8>>,
        hasher: JoinHandle<Digester>,
    },
}

impl ChunkDigester {
    fn update(&mut self, chunk: Vec<u8>) {
        match self {
            Self::Inline(digester) if digester.is_empty() => digester.update(&chunk),
            Self::Inline(digester) => {
                let mut digester = std::mem::take(digester);
                // A few chunks in flight: the writer may run ahead of the hash, not far.
                let (chunks, received) = mpsc::sync_channel::<Vec<u8>>(4);
                // Unbounded, yet never more than the few chunks in flight: each was sent first.
                let (give_back, spent) = mpsc::channel::<Vec<u8>>();
                let hasher = std::thread::spawn(move || {
                    for chunk in received {
                        digester.update(&chunk);
                        // The writer may be done and gone: the chunk is then just freed.
                        let _ = give_back.send(chunk);
                    }
                    digester
                });
                Self::send(&chunks, chunk);
                *self = Self::Background {
                    chunks,
                    spent,
                    hasher,
                };
            }
            Self::Background { chunks, .. } => Self::send(chunks, chunk),
        }
    }

    /// An empty buffer of [`COPY_BUFFER`] bytes for the next chunk: a hashed one when the
    /// hashing thread has one back, a new one otherwise.
    fn spare_chunk(&self) -> Vec<u8> {
        match self {
            Self::Background { spent, .. } => spent.try_recv().ok(),
            Self::Inline(_) => None,
        }
        .map(|mut chunk| {
            chunk.clear();
            chunk
        })
        .unwrap_or_else(|| Vec::with_capacity(COPY_BUFFER))
    }

    fn send(chunks: &mpsc::SyncSender<Vec<u8>>, chunk: Vec<u8>) {
        // The hashing thread only ends when `chunks` is dropped (or if it panicked, which
        // `finish` reports): nothing to do about a failed send here.
        let _ = chunks.send(chunk);
    }

    /// The digester with every chunk fed.
    fn finish(self) -> io::Result<Digester> {
        match self {
            Self::Inline(digester) => Ok(digester),
            Self::Background { chunks, hasher, .. } => {
                drop(chunks);
                hasher
                    .join()
                    .map_err(|_| io::Error::other("the blob hashing thread panicked"))
            }
        }
    }
}

const COPY_BUFFER: usize = 1 << 20;

impl Store {
    /// Stores everything `reader` yields and returns its digest and size.
    ///
    /// The bytes go to a temporary file in `ingest/`, which is fsynced and
    /// then renamed to `blobs/sha256/<hex>`: a crash leaves at worst a stray
    /// temporary file or a missing blob, never a blob whose content does not
    /// match its name. The rename itself is made durable by the next tag
    /// update (or any sync of the file system), not here. Concurrent writers of the same
    /// content are harmless (each rename installs identical bytes).
    pub fn write_blob(&self, reader: impl Read) -> Result<BlobInfo> {
        let _lease = self.lease()?;
        let staged = self.stage(reader)?;
        self.commit(staged)
    }

    /// Stores `reader`'s content only if it hashes to `expected`; on a
    /// mismatch nothing is kept and [`Error::DigestMismatch`] says what was
    /// read instead. If the blob is already present the reader is not read
    /// at all (callers downloading it can skip the download).
    pub fn write_blob_expecting(&self, reader: impl Read, expected: &Digest) -> Result<BlobInfo> {
        if let Some(size) = self.present_size(expected)? {
            return Ok(BlobInfo {
                digest: expected.clone(),
                size,
            });
        }
        let _lease = self.lease()?;
        let staged = self.stage(reader)?;
        if staged.info.digest != *expected {
            // Dropping `staged` deletes the temporary file.
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual: staged.info.digest,
                size: staged.info.size,
            });
        }
        self.commit(staged)
    }

    /// A writer for a new blob; see [`BlobWriter`].
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let lease = self.lease()?;
        let (file, temp) = self.scratch_file("blob")?.into_parts();
        Ok(BlobWriter {
            store: self,
            file,
            temp,
            hash: ChunkedHash::new(),
            _lease: lease,
        })
    }

    /// Stores `bytes`. A blob already present is not written again (manifests and configs
    /// of a cached rebuild), so the common case costs a hash and a `stat`.
    pub fn write_blob_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let digest = Digest::of(bytes);
        if self.present_size(&digest)? == Some(bytes.len() as u64) {
            return Ok(BlobInfo {
                digest,
                size: bytes.len() as u64,
            });
        }
        self.write_blob(bytes)
    }

    /// Whether the blob is present (its content is not re-checked; see
    /// [`Store::verify`]).
    /// A [lazy blob](crate::LazyBlob) whose snapshots are in the store is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file() || self.lazy_blob(digest).is_some()
    }

    /// Where the blob's file lives (whether or not it exists; a lazy blob has none until
    /// [`Store::blob_file`] writes it). Blobs are read-only files; never write to this path.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Opens the blob for reading (a lazy blob is written first: [`Store::blob_file`]).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_file(digest)?;
        File::open(&path).map_err(|source| self.not_found_or(digest, path, "open blob", source))
    }

    /// The blob's size in bytes.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(source) => match self.lazy_blob(digest) {
                Some(lazy) if source.kind() == io::ErrorKind::NotFound => Ok(lazy.size),
                _ => Err(self.not_found_or(digest, path, "inspect blob", source)),
            },
        }
    }

    /// Reads a whole blob into memory and checks it still matches its
    /// digest. Meant for small documents (manifests, configs); stream layers
    /// with [`Store::open_blob`] instead.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_file(digest)?;
        let bytes = fs::read(&path)
            .map_err(|source| self.not_found_or(digest, path.clone(), "read blob", source))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::CorruptBlob {
                digest: digest.clone(),
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    fn present_size(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.blob_size(digest) {
            Ok(size) => Ok(Some(size)),
            Err(Error::BlobNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn not_found_or(
        &self,
        digest: &Digest,
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    ) -> Error {
        if source.kind() == io::ErrorKind::NotFound {
            Error::BlobNotFound {
                digest: digest.clone(),
                path,
            }
        } else {
            Error::Io {
                action,
                path,
                source,
            }
        }
    }

    /// Copies `reader` into a temporary file, hashing on the way, and
    /// fsyncs it.
    fn stage(&self, mut reader: impl Read) -> Result<Staged> {
        let mut writer = self.blob_writer()?;
        let mut buffer = vec![0u8; COPY_BUFFER];
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Source(e)),
            };
            writer
                .write_all(&buffer[..read])
                .at("write", &writer.temp)?;
        }
        writer.finish()
    }

    /// Moves a staged file to its content address.
    pub(crate) fn commit(&self, staged: Staged) -> Result<BlobInfo> {
        let Staged { temp, info } = staged;
        let dest = self.blob_path(&info.digest);
        // Same name and same size: the blob is already here (a wrong-content
        // file of the right size is verify's business). Skipping the rename
        // keeps repeated writes cheap.
        if fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == info.size) {
            return Ok(info);
        }
        // The name is not synced here, one fsync per blob less: a blob whose rename a crash
        // undoes is simply absent, and every reader checks presence. Tags, the one durable
        // thing that names blobs, sync the directory before they are written.
        temp.persist(&dest)
            .map_err(|e| e.error)
            .at("move a new blob into", &dest)?;
        Ok(info)
    }
}
