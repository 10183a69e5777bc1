//! An in-process pipe of byte chunks between a thread that writes a tar and one that reads
//! it: a chunk changes hands whole, with no copy through a kernel pipe's small buffer.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use crate::apply::ApplyStats;
use crate::error::{Error, Result};

/// Runs `write` (on a thread of its own) into `apply`: a tar applied as it is written, never
/// stored.
pub(crate) fn apply_piped(
    write: impl FnOnce(ChunkWriter) -> Result<ChunkWriter> + Send,
    apply: impl FnOnce(ChunkReader) -> Result<ApplyStats>,
) -> Result<ApplyStats> {
    let (writer, reader) = chunk_pipe();
    std::thread::scope(|scope| {
        let written = scope.spawn(|| {
            write(writer)?
                .finish()
                .map_err(|source| Error::Output { source })
        });
        let applied = apply(reader);
        let written = written.join().map_err(|_| Error::Output {
            source: io::Error::other("the layer's tar writer panicked"),
        })?;
        match (applied, written) {
            (Ok(stats), Ok(())) => Ok(stats),
            // The writer's own error first: the apply then only saw a stream cut short.
            (_, Err(error)) if !matches!(error, Error::Output { .. }) => Err(error),
            (Ok(_), Err(error)) => Err(error),
            // The writer only failed because the apply stopped reading.
            (Err(error), _) => Err(error),
        }
    })
}

/// Bytes per chunk.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: the writer may run ahead of the reader, not far.
const IN_FLIGHT: usize = 4;

/// A connected writer and reader.
pub(crate) fn chunk_pipe() -> (ChunkWriter, ChunkReader) {
    let (chunks, received) = mpsc::sync_channel(IN_FLIGHT);
    (
        ChunkWriter {
            chunk: Vec::with_capacity(CHUNK),
            chunks,
        },
        ChunkReader {
            chunk: Vec::new(),
            at: 0,
            received,
        },
    )
}

/// The writing end; [`ChunkWriter::finish`] sends what is buffered. Dropped without it, the
/// reader sees the stream end early (a truncated tar, which its reader reports).
pub(crate) struct ChunkWriter {
    chunk: Vec<u8>,
    chunks: mpsc::SyncSender<Vec<u8>>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.chunks
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the tar's reader is gone"))
    }

    /// Sends the buffered bytes: the reader sees them, then the end.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.send()
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end: reads the chunks in order, then the end once the writer is gone.
pub(crate) struct ChunkReader {
    chunk: Vec<u8>,
    at: usize,
    received: mpsc::Receiver<Vec<u8>>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.received.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk, 0),
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_whole_and_in_order() {
        let (mut writer, mut reader) = chunk_pipe();
        let bytes: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let sent = bytes.clone();
        let sender = std::thread::spawn(move || {
            for piece in sent.chunks(1000) {
                writer.write_all(piece).unwrap();
            }
            writer.finish().unwrap();
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).unwrap();
        sender.join().unwrap();
        assert_eq!(received, bytes);
    }

    #[test]
    fn a_gone_reader_fails_the_writer() {
        let (mut writer, reader) = chunk_pipe();
        drop(reader);
        let err = writer.write_all(&vec![0; 2 * CHUNK]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
