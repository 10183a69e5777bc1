//! Compression and hashing throughput on a given tar file, for `bench/layer-throughput.sh`:
//! prints `name seconds` lines for sha256, gzip (level 6) and zstd (level 3, multithreaded).
// An example program: it prints its measurements.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use stagecraft_layer::{Compression, LayerWriter};
use std::io::{Read, Write};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput FILE.tar");
    let data = std::fs::read(&path).expect("read the input");
    let started = Instant::now();
    let mut hasher = sha2::Sha256::default();
    sha2::Digest::update(&mut hasher, &data);
    let _ = sha2::Digest::finalize(hasher);
    println!("sha256 {:.3}", started.elapsed().as_secs_f64());
    for (name, compression) in [("gzip", Compression::gzip()), ("zstd", Compression::zstd())] {
        let started = Instant::now();
        let mut writer = LayerWriter::new(std::io::sink(), compression).expect("writer");
        let mut reader = &data[..];
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = reader.read(&mut buffer).expect("read");
            if read == 0 {
                break;
            }
            writer.write_all(&buffer[..read]).expect("write");
        }
        let (info, _) = writer.finish().expect("finish");
        println!(
            "{name} {:.3} {}",
            started.elapsed().as_secs_f64(),
            info.size
        );
    }
}
