//! Compression and hashing throughput on a given tar file, for `bench/layer-throughput.sh`:
//! prints `name seconds size cpu-seconds` lines for sha256, gzip (level 6) and zstd (level 3)
//! (cpu-seconds: user + system time of the whole process, all threads), each through
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
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let mut hasher = sha2::Sha256::default();
        sha2::Digest::update(&mut hasher, &data);
        let _ = sha2::Digest::finalize(hasher);
        println!(
            "sha256 {:.3} 32 {:.2}",
            started.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
    }
    for (name, compression) in [("gzip", Compression::gzip()), ("zstd", Compression::zstd())] {
        if !wanted(name) {
            continue;
        }
        let (started, cpu) = (Instant::now(), cpu_seconds());
        let mut writer = LayerWriter::new(std::io::sink(), compression).expect("writer");
        // 1 MiB writes, as the store's compression reads the plain layer.
        for chunk in data.chunks(1 << 20) {
            writer.write_all(chunk).expect("write");
        }
        let (info, _) = writer.finish().expect("finish");
        println!(
            "{name} {:.3} {} {:.2}",
            started.elapsed().as_secs_f64(),
            info.size,
            cpu_seconds() - cpu
        );
    }
}

/// User + system CPU time of this process so far (all its threads), from `/proc/self/stat`,
/// in seconds (clock ticks of 1/100 s, the kernel's USER_HZ on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which may hold spaces) start at its closing parenthesis;
    // utime and stime are the 14th and 15th fields of the line.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("a tick count");
    (ticks(11) + ticks(12)) / 100.0
}
