//! Runs the image checks on a root file system and prints the findings, with the time they
//! took: `cargo run --release -p stagecraft-lint --example check_image -- ROOT [SUBTREE…]`,
//! or `-- --layers DIR…` for layer snapshot directories (bottom first), the way a build
//! reads its image. Subtrees (relative to ROOT, e.g. `usr etc`) limit what is listed, so that
//! a live system's `/` can be measured without `/proc`. The config is an amd64 Linux image
//! with the default `PATH` and no `ENTRYPOINT`.
// An example program: it prints its measurements.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use stagecraft_imagefs::{DirFs, ImageFs, LayeredFs};
use stagecraft_lint::{CheckedImage, LayerSource};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (fs, layers): (Box<dyn ImageFs>, usize) = match args.split_first() {
        Some((flag, dirs)) if flag == "--layers" && !dirs.is_empty() => {
            let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
            let count = dirs.len();
            (Box::new(LayeredFs::new(dirs)), count)
        }
        Some((root, subtrees)) => {
            let subtrees: Vec<&str> = subtrees.iter().map(String::as_str).collect();
            (Box::new(DirFs::with_subtrees(root, &subtrees)), 0)
        }
        None => {
            eprintln!("usage: check_image ROOT [SUBTREE…] | --layers DIR…");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let entries = fs.entries().map(|entries| entries.len()).unwrap_or(0);
    let listed = start.elapsed();
    let config = stagecraft_image::ImageConfig {
        architecture: "amd64".to_owned(),
        os: "linux".to_owned(),
        config: stagecraft_image::RuntimeConfig {
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let image = CheckedImage {
        fs: fs.as_ref(),
        config: &config,
        layers: vec![
            LayerSource {
                own: true,
                ..LayerSource::default()
            };
            layers
        ],
        name: args[0].clone(),
    };
    let start = Instant::now();
    let findings = stagecraft_lint::check_image(&image, None);
    let checked = start.elapsed();
    print!("{}", stagecraft_lint::render_text(&findings));
    eprintln!(
        "{entries} entries listed in {:.3} s; all checks (listing again included) {:.3} s",
        listed.as_secs_f64(),
        checked.as_secs_f64()
    );
}
