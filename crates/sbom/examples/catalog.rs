//! Catalogs a root file system and prints the packages, with the time it took:
//! `cargo run --release -p stagecraft-sbom --example catalog -- ROOT [SUBTREE…] [--spdx]`.
//! Subtrees (relative to ROOT, e.g. `usr var/lib/dpkg`) limit the walk, so that a live
//! system's `/` can be measured without `/proc`.
// An example program: it prints its measurements.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let spdx = args.iter().any(|arg| arg == "--spdx");
    args.retain(|arg| arg != "--spdx");
    let Some((root, subtrees)) = args.split_first() else {
        eprintln!("usage: catalog ROOT [SUBTREE…] [--spdx]");
        std::process::exit(2);
    };
    let subtrees: Vec<&str> = subtrees.iter().map(String::as_str).collect();
    let fs = stagecraft_sbom::DirFs::with_subtrees(root, &subtrees);
    let start = Instant::now();
    let catalog = match stagecraft_sbom::catalog(&fs) {
        Ok(catalog) => catalog,
        Err(err) => {
            eprintln!("catalog: {err}");
            std::process::exit(1);
        }
    };
    let cataloged = start.elapsed();
    let info = stagecraft_sbom::spdx::DocumentInfo {
        name: root,
        digest: None,
        created: stagecraft_image::Timestamp::from_unix(0, 0).expect("the epoch is a time"),
        tool_version: env!("CARGO_PKG_VERSION"),
        layers: &[],
    };
    let document = stagecraft_sbom::spdx::Document::new(&catalog, &info).to_json();
    let total = start.elapsed();
    if spdx {
        print!("{}", String::from_utf8_lossy(&document));
    } else {
        print!("{}", stagecraft_sbom::table(&catalog));
    }
    eprintln!(
        "{} packages; catalog {:.3} s, with the SPDX document ({} bytes) {:.3} s",
        catalog.packages.len(),
        cataloged.as_secs_f64(),
        document.len(),
        total.as_secs_f64()
    );
}
