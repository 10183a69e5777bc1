//! Compression and hashing throughput on a given tar file, for `bench/layer-throughput.sh`:
//! prints `name seconds size` lines for sha256, gzip (level 6) and zstd (level 3), each through
//! the real layer pipeline ([`LayerWriter`]: diff-id hash, compression, digest), using every
//! core this process may run on (run it under `taskset -c 0` for the one-core figure).
//! Further arguments pick operations: `throughput FILE gzip` times gzip only.
// An example program: it prints its measurements.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use stagecraft_layer::{Compression, LayerWriter};
use std::io::Write;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: throughput FILE.tar [sha256|gzip|zstd ...]");
    let picked: Vec<String> = args.collect();
    let wanted = |name: &str| picked.is_empty() || picked.iter().any(|p| p == name);
    let data = std::fs::read(&path).expect("read the input");
    if wanted("sha256") {
        let started = Instant::now();
        let mut hasher = sha2::Sha256::default();
        sha2::Digest::update(&mut hasher, &data);
        let _ = sha2::Digest::finalize(hasher);
        println!("sha256 {:.3} 32", started.elapsed().as_secs_f64());
    }
    for (name, compression) in [("gzip", Compression::gzip()), ("zstd", Compression::zstd())] {
        if !wanted(name) {
            continue;
        }
        let started = Instant::now();
        let mut writer = LayerWriter::new(std::io::sink(), compression).expect("writer");
        // 1 MiB writes, as the store's compression reads the plain layer.
        for chunk in data.chunks(1 << 20) {
            writer.write_all(chunk).expect("write");
        }
        let (info, _) = writer.finish().expect("finish");
        println!(
            "{name} {:.3} {}",
            started.elapsed().as_secs_f64(),
            info.size
        );
    }
}
