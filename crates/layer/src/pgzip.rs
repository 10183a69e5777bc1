//! Block-parallel gzip, as pigz does it: the input is cut into fixed-size blocks, each block is
//! deflated on its own (on the rayon pool) with the 32 KiB of input before it as the preset
//! dictionary and ended by a sync flush, and the raw deflate outputs are concatenated, in input
//! order, into ONE standard gzip member whose trailer carries the CRC-32 combined from the
//! blocks' CRCs. Any gzip reader accepts it; single-member readers too.
//!
//! A block that looks incompressible (media, archives, already compressed files: see
//! [`looks_incompressible`]) is written as stored deflate blocks (BTYPE 00, zlib's level 0)
//! instead: deflate spends its full effort on such bytes (random input deflates at about a
//! third of the speed of text) to end up storing them anyway, while storing costs a copy.
//!
//! The output is a function of the input bytes and the level only: block boundaries sit at fixed
//! input offsets (not where `write` calls happened to split the data), every block's dictionary
//! is the input before it, whether a block is stored depends on its bytes alone, and blocks are
//! written in order whatever order the pool finishes them in. So the thread count, the
//! scheduling and the caller's buffer sizes never change a byte, which matters because a
//! compressed layer's digest is a cache key. A compressible input shorter than one block gives
//! exactly what a single-stream deflate of it gives.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;

use flate2::{Compress, Crc, FlushCompress, Status};

/// Input bytes per block. pigz's default; large enough that the per-block costs (the 32 KiB
/// dictionary, the sync marker, a job) stay small, small enough that two cores share even a
/// small layer.
pub(crate) const BLOCK_SIZE: usize = 128 * 1024;

/// deflate's window: the most a block can refer back into the input before it.
const WINDOW: usize = 32 * 1024;

/// The stretch of a block whose byte histogram [`looks_incompressible`] judges at a time: long
/// enough that a random stretch's histogram is flat beyond doubt (its squared counts sit eight
/// standard deviations below the bound), short enough that a compressible stretch at a block's
/// start settles the question after a few microseconds.
const HISTOGRAM_SPAN: usize = 16 * 1024;

/// The bytes at a block's start that [`looks_incompressible`] trial-deflates to look for repeats.
const TRIAL_SAMPLE: usize = 4 * 1024;

/// Blocks handed to the pool and not yet written, per pool thread: enough that a thread never
/// waits for the writer, few enough that memory stays a few MiB per layer.
const IN_FLIGHT_PER_THREAD: usize = 4;

/// A deflated block and the CRC-32 of its input.
struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
    /// The input's buffer, given back to be filled again.
    input: Vec<u8>,
}

/// A block-parallel gzip encoder (see the module docs). Dropping it without
/// [`ParallelGzEncoder::finish`] leaves a truncated stream.
pub(crate) struct ParallelGzEncoder<W: Write> {
    sink: W,
    level: flate2::Compression,
    block_size: usize,
    /// Input of the block being filled.
    block: Vec<u8>,
    /// The last (up to) [`WINDOW`] input bytes before `block`: its dictionary.
    dictionary: Vec<u8>,
    /// Blocks being deflated, oldest first; each answers once on its channel.
    in_flight: VecDeque<mpsc::Receiver<io::Result<Deflated>>>,
    max_in_flight: usize,
    /// CRC-32 and length of everything written to the sink so far.
    crc: Crc,
    /// Buffers of written blocks (their input and their deflated bytes), to fill again: a fresh
    /// one per block would be fresh pages to fault in, each time, for every 128 KiB.
    spare: Vec<Vec<u8>>,
}

impl<W: Write> ParallelGzEncoder<W> {
    /// An encoder at `level` (0 to 9, as flate2), writing the gzip header to `sink` now.
    pub(crate) fn new(sink: W, level: flate2::Compression) -> io::Result<Self> {
        Self::with_block_size(sink, level, BLOCK_SIZE)
    }

    /// [`ParallelGzEncoder::new`] with another block size, so that tests reach block
    /// boundaries (and dictionaries spanning several blocks) with small inputs.
    pub(crate) fn with_block_size(
        mut sink: W,
        level: flate2::Compression,
        block_size: usize,
    ) -> io::Result<Self> {
        sink.write_all(&header(level))?;
        Ok(Self {
            sink,
            level,
            block_size: block_size.max(1),
            block: Vec::with_capacity(block_size),
            dictionary: Vec::new(),
            in_flight: VecDeque::new(),
            max_in_flight: IN_FLIGHT_PER_THREAD * rayon::current_num_threads(),
            crc: Crc::new(),
            spare: Vec::new(),
        })
    }

    /// Deflates the last block (ending the deflate stream), writes everything and the gzip
    /// trailer, and returns the sink.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let last = std::mem::take(&mut self.block);
        // The final block is small or empty and the others must be waited for anyway: deflate
        // it here rather than queue it.
        let tail = deflate_block(
            self.level,
            &self.dictionary,
            last,
            FlushCompress::Finish,
            Vec::new(),
        )?;
        self.write_all_in_flight()?;
        self.write_deflated(tail)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the input length modulo 2^32 (RFC 1952); `amount` is exactly that.
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.sink.write_all(&trailer)?;
        Ok(self.sink)
    }

    /// Hands the full block to the pool, after taking the next block's dictionary from it.
    fn dispatch_block(&mut self) -> io::Result<()> {
        let next_block = self.spare_buffer();
        let block = std::mem::replace(&mut self.block, next_block);
        let next = next_dictionary(&self.dictionary, &block);
        let dictionary = std::mem::replace(&mut self.dictionary, next);
        let level = self.level;
        let output = self.spare_buffer();
        let (sender, receiver) = mpsc::sync_channel(1);
        rayon::spawn(move || {
            // The receiver is gone only if the encoder was dropped: nobody wants the result.
            let _ = sender.send(deflate_block(
                level,
                &dictionary,
                block,
                FlushCompress::Sync,
                output,
            ));
        });
        self.in_flight.push_back(receiver);
        while self.in_flight.len() > self.max_in_flight {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_all_in_flight(&mut self) -> io::Result<()> {
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(receiver) = self.in_flight.pop_front() {
            let deflated = wait(&receiver)??;
            self.write_deflated(deflated)?;
        }
        Ok(())
    }

    fn write_deflated(&mut self, deflated: Deflated) -> io::Result<()> {
        self.sink.write_all(&deflated.bytes)?;
        self.crc.combine(&deflated.crc);
        self.spare.push(deflated.bytes);
        self.spare.push(deflated.input);
        Ok(())
    }

    /// An empty buffer of a written block, or a new one of a block's size.
    fn spare_buffer(&mut self) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut buffer) => {
                buffer.clear();
                buffer
            }
            None => Vec::with_capacity(self.block_size),
        }
    }
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.block_size - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == self.block_size {
            self.dispatch_block()?;
        }
        Ok(n)
    }

    /// Writes out every block already handed to the pool. The block being filled stays: cutting
    /// it short would make the output depend on when callers flush.
    fn flush(&mut self) -> io::Result<()> {
        self.write_all_in_flight()?;
        self.sink.flush()
    }
}

/// The 10-byte gzip header flate2's `GzBuilder` writes by default: no name, no comment, mtime 0,
/// OS 255 (unknown), and the XFL byte from the level. Nothing in it depends on the input, the
/// time or the machine.
fn header(level: flate2::Compression) -> [u8; 10] {
    let xfl = if level.level() >= flate2::Compression::best().level() {
        2
    } else if level.level() <= flate2::Compression::fast().level() {
        4
    } else {
        0
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// The last [`WINDOW`] bytes of `dictionary` followed by `block`.
fn next_dictionary(dictionary: &[u8], block: &[u8]) -> Vec<u8> {
    let from_block = block.len().min(WINDOW);
    let from_dictionary = (WINDOW - from_block).min(dictionary.len());
    let mut next = Vec::with_capacity(from_dictionary + from_block);
    next.extend_from_slice(&dictionary[dictionary.len() - from_dictionary..]);
    next.extend_from_slice(&block[block.len() - from_block..]);
    next
}

/// Whether `block` is not worth deflating: every [`HISTOGRAM_SPAN`] of it has a nearly flat byte
/// histogram, so Huffman coding has (almost) nothing to gain, and a fast trial deflate of its
/// first [`TRIAL_SAMPLE`] bytes finds too few repeats to come out smaller than the sample, so
/// LZ77 has nothing to gain either (a flat histogram can still hide repeats: a counter, the same
/// random kilobyte again and again).
///
/// "Nearly flat" is a collision entropy (-log2 of the sum of squared byte frequencies) of at
/// least 7.8 bits a byte; Shannon entropy is never below it, so such a span would shrink by at
/// most 2.5 % under any order-0 code. Random bytes sit at 7.98. A span shorter than about 2 KiB
/// (a block's short tail) never qualifies: its estimate is biased low. Repeats further apart
/// than the sample or reaching into the dictionary are not looked for: such a block is stored
/// although deflate would have shortened it, which costs size, never correctness.
fn looks_incompressible(block: &[u8]) -> bool {
    let flat = |span: &[u8]| {
        let mut counts = [0u32; 256];
        for &byte in span {
            counts[usize::from(byte)] += 1;
        }
        let squares: u64 = counts.iter().map(|&c| u64::from(c) * u64::from(c)).sum();
        let len = span.len() as u64;
        // sum(p^2) <= 2^-7.8 = 1.15 / 256, in integers: 256 * 20 * sum(c^2) <= 23 * len^2.
        squares * 256 * 20 <= 23 * len * len
    };
    let sample = &block[..block.len().min(TRIAL_SAMPLE)];
    !block.is_empty()
        && block.chunks(HISTOGRAM_SPAN).all(flat)
        // The fastest level codes literals with the fixed Huffman table, 8 or 9 bits a byte:
        // on flat bytes it beats storing only through repeats.
        && deflate(flate2::Compression::fast(), &[], sample, FlushCompress::Finish, Vec::new())
            .is_ok_and(|trial| trial.len() >= sample.len())
}

/// Raw-deflates `block` with `dictionary` preset at `level`, or as stored blocks when it
/// [`looks_incompressible`] (see [`deflate`] for `flush` and `output`).
fn deflate_block(
    level: flate2::Compression,
    dictionary: &[u8],
    block: Vec<u8>,
    flush: FlushCompress,
    output: Vec<u8>,
) -> io::Result<Deflated> {
    let bytes = if level.level() > 0 && looks_incompressible(&block) {
        // Stored blocks refer to nothing before them: no dictionary to load.
        deflate(flate2::Compression::none(), &[], &block, flush, output)?
    } else {
        deflate(level, dictionary, &block, flush, output)?
    };
    let mut crc = Crc::new();
    crc.update(&block);
    Ok(Deflated {
        bytes,
        crc,
        input: block,
    })
}

/// Raw-deflates `block` with `dictionary` preset, ending it with `flush` (`Sync` for a block
/// that more follow, which leaves the stream byte-aligned so the next block's bytes can simply
/// follow; `Finish` for the last one), into `output` (emptied first; a buffer to fill again).
fn deflate(
    level: flate2::Compression,
    dictionary: &[u8],
    block: &[u8],
    flush: FlushCompress,
    mut bytes: Vec<u8>,
) -> io::Result<Vec<u8>> {
    let mut stream = Compress::new(level, false);
    if !dictionary.is_empty() {
        stream
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    // Stored blocks cost 5 bytes per 64 KiB at worst; the sync or final marker a few more.
    bytes.clear();
    bytes.reserve(block.len() + block.len() / 64 + 64);
    loop {
        let consumed = usize::try_from(stream.total_in()).map_err(io::Error::other)?;
        let status = stream
            .compress_vec(&block[consumed..], &mut bytes, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(stream.total_in()).map_err(io::Error::other)? == block.len();
        // Room left over after a sync flush means zlib had nothing more to say.
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            _ => all_in && bytes.len() < bytes.capacity(),
        };
        if done {
            break;
        }
        bytes.reserve(bytes.capacity().max(4096));
    }
    Ok(bytes)
}

/// Waits for a block. A rayon worker thread (several layers compress on the pool at once) must
/// not simply block: the job it waits for may sit in the pool's queue with every worker waiting
/// like it. So it runs queued pool work while there is any, and blocks only once the queue is
/// empty, which means its job is already running on another thread.
fn wait<T>(receiver: &mpsc::Receiver<T>) -> io::Result<T> {
    let died = |_| io::Error::other("a gzip compression job ended without a result");
    loop {
        match receiver.try_recv() {
            Ok(value) => return Ok(value),
            Err(mpsc::TryRecvError::Disconnected) => return Err(died(())),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            return receiver.recv().map_err(|_| died(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{mixed, noise, text};
    use proptest::prelude::*;
    use std::io::Read;

    fn compress(data: &[u8], level: u32, block_size: usize, chunk: usize) -> Vec<u8> {
        let mut encoder = ParallelGzEncoder::with_block_size(
            Vec::new(),
            flate2::Compression::new(level),
            block_size,
        )
        .unwrap();
        for piece in data.chunks(chunk.max(1)) {
            encoder.write_all(piece).unwrap();
        }
        encoder.finish().unwrap()
    }

    /// Decodes with flate2's single-member reader and checks nothing follows the member.
    fn decode_one_member(gz: &[u8]) -> Vec<u8> {
        let mut decoder = flate2::bufread::GzDecoder::new(gz);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert!(
            decoder.into_inner().is_empty(),
            "bytes after the gzip member"
        );
        out
    }

    /// The payloads of a raw deflate stream made of stored blocks only, the last one final;
    /// `None` when any block is not a stored block or bytes follow the final one.
    fn stored_payloads(mut deflate: &[u8]) -> Option<Vec<&[u8]>> {
        let mut payloads = Vec::new();
        loop {
            // BFINAL, then BTYPE 00, then padding to the byte: a header byte of 0 or 1.
            let (&[header, l0, l1, n0, n1], rest) = deflate.split_first_chunk::<5>()?;
            let len = u16::from_le_bytes([l0, l1]);
            if header > 1 || !len != u16::from_le_bytes([n0, n1]) || rest.len() < len.into() {
                return None;
            }
            let (payload, rest) = rest.split_at(len.into());
            payloads.push(payload);
            deflate = rest;
            if header == 1 {
                return deflate.is_empty().then_some(payloads);
            }
        }
    }

    #[test]
    fn incompressible_blocks_are_stored() {
        let data = noise(3 * BLOCK_SIZE + 20_000, 13);
        let gz = compress(&data, 6, BLOCK_SIZE, 65_536);
        assert_eq!(decode_one_member(&gz), data);
        // Between the 10-byte header and the 8-byte trailer: stored blocks holding the input,
        // as long as deflate allows (64 KiB - 1), each of our blocks ended by an empty one (a
        // sync marker). zlib's level 6 would also end up storing noise, but in blocks of 16 KiB,
        // after looking for matches in every byte.
        let payloads = stored_payloads(&gz[10..gz.len() - 8]).expect("only stored blocks");
        assert_eq!(payloads.concat(), data);
        let lengths: Vec<usize> = payloads.iter().map(|p| p.len()).collect();
        let whole_block = [65_535, 65_535, 2, 0];
        let tail = [20_000];
        assert_eq!(
            lengths,
            [&whole_block[..]; 3]
                .concat()
                .into_iter()
                .chain(tail)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn flat_histograms_with_repeats_are_deflated() {
        // Every byte value equally often, so the histogram alone would call it noise; but it is
        // the same 256 bytes (or the same 1 KiB of noise) over and over.
        let counter: Vec<u8> = (0..=255u8).cycle().take(3 * BLOCK_SIZE).collect();
        let repeated = noise(1024, 17).repeat(3 * BLOCK_SIZE / 1024);
        for data in [counter, repeated] {
            let gz = compress(&data, 6, BLOCK_SIZE, 65_536);
            assert!(gz.len() < data.len() / 20, "{} bytes", gz.len());
            assert_eq!(decode_one_member(&gz), data);
        }
    }

    #[test]
    fn short_compressible_input_is_exactly_a_single_stream_gzip() {
        let data = text(50_000, 7);
        let mut reference = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
        reference.write_all(&data).unwrap();
        assert_eq!(
            compress(&data, 6, BLOCK_SIZE, 4096),
            reference.finish().unwrap()
        );
        // The empty stream too.
        let empty = flate2::GzBuilder::new()
            .write(Vec::new(), flate2::Compression::new(6))
            .finish()
            .unwrap();
        assert_eq!(compress(&[], 6, BLOCK_SIZE, 1), empty);
    }

    #[test]
    fn thread_count_does_not_change_the_bytes() {
        for data in [
            text(3 * BLOCK_SIZE + 12_345, 3),
            mixed(9 * BLOCK_SIZE + 777, 3),
        ] {
            same_bytes_with_any_thread_count(&data);
        }
    }

    fn same_bytes_with_any_thread_count(data: &[u8]) {
        let outputs: Vec<Vec<u8>> = [1, 2, 5]
            .into_iter()
            .map(|threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| compress(data, 6, BLOCK_SIZE, 65_536))
            })
            .collect();
        assert_eq!(outputs[0], outputs[1]);
        assert_eq!(outputs[0], outputs[2]);
        // Outside any pool as well.
        assert_eq!(outputs[0], compress(data, 6, BLOCK_SIZE, 1 << 20));
        assert_eq!(decode_one_member(&outputs[0]), data);
    }

    #[test]
    fn mixed_input_stores_only_the_noise() {
        let data = mixed(9 * BLOCK_SIZE + 777, 21);
        let gz = compress(&data, 6, BLOCK_SIZE, 65_536);
        let noise_blocks = data
            .chunks(BLOCK_SIZE)
            .filter(|block| looks_incompressible(block))
            .count();
        let blocks = data.len().div_ceil(BLOCK_SIZE);
        assert!(
            (1..blocks).contains(&noise_blocks),
            "{noise_blocks} of {blocks} blocks are noise"
        );
        // Stored noise blocks weigh what they hold, the text blocks shrink: in between.
        assert!(gz.len() < data.len() * 9 / 10, "{} bytes", gz.len());
        assert!(
            gz.len() > noise_blocks * BLOCK_SIZE,
            "{} bytes for {noise_blocks} stored blocks",
            gz.len()
        );
        assert_eq!(decode_one_member(&gz), data);
    }

    #[test]
    fn gzip_tool_accepts_the_stream() {
        for data in [
            text(5 * BLOCK_SIZE + 99, 11),
            mixed(7 * BLOCK_SIZE + 99, 11),
        ] {
            gzip_tool_decodes(&data);
        }
    }

    fn gzip_tool_decodes(data: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar.gz");
        std::fs::write(&path, compress(data, 6, BLOCK_SIZE, 10_000)).unwrap();
        let test = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&path)
            .status()
            .expect("run gzip -t");
        assert!(test.success(), "gzip -t rejected the stream");
        let decoded = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .expect("run gzip -dc");
        assert!(decoded.status.success());
        assert_eq!(decoded.stdout, data);
    }

    #[test]
    fn one_byte_blocks_take_their_dictionary_from_many_blocks() {
        let data = text(600, 9);
        let gz = compress(&data, 6, 1, 7);
        assert_eq!(decode_one_member(&gz), data);
        assert_eq!(gz, compress(&data, 6, 1, 600));
    }

    #[test]
    fn flush_does_not_change_the_bytes() {
        let data = text(4 * 1000 + 17, 5);
        let mut encoder =
            ParallelGzEncoder::with_block_size(Vec::new(), flate2::Compression::new(6), 1000)
                .unwrap();
        for piece in data.chunks(333) {
            encoder.write_all(piece).unwrap();
            encoder.flush().unwrap();
        }
        assert_eq!(encoder.finish().unwrap(), compress(&data, 6, 1000, 4096));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any input, block size (ones below 32 KiB make dictionaries span blocks), level and write
        /// chunking, with random bytes long enough to be stored: one gzip member that decodes to the input, and the same bytes as with any
        /// other chunking.
        #[test]
        fn round_trips_and_ignores_write_sizes(
            random in proptest::collection::vec(any::<u8>(), 0..40_000),
            text_len in 0usize..24_000,
            seed in any::<u64>(),
            block_size in prop_oneof![
                500usize..5000,
                Just(HISTOGRAM_SPAN - 1),
                Just(WINDOW),
                Just(WINDOW + 1),
            ],
            level in 0u32..=9,
            chunk in 1usize..70_000,
        ) {
            let mut data = text(text_len, seed);
            data.extend_from_slice(&random);
            data.extend_from_slice(&text(text_len / 2, seed ^ 1));
            let gz = compress(&data, level, block_size, chunk);
            prop_assert_eq!(decode_one_member(&gz), data.clone());
            prop_assert_eq!(&gz, &compress(&data, level, block_size, data.len() + 1));
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(gz.as_slice()).read_to_end(&mut multi).unwrap();
            prop_assert_eq!(multi, data);
        }

        /// Inputs ending on, just before and just after a block boundary.
        #[test]
        fn block_boundaries(blocks in 0usize..4, delta in -2isize..=2, seed in any::<u64>()) {
            let block_size = 4096;
            let len = (blocks * block_size).saturating_add_signed(delta);
            let data = text(len, seed);
            prop_assert_eq!(decode_one_member(&compress(&data, 6, block_size, 1000)), data);
        }
    }
}
