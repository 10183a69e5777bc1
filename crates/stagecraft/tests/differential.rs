//! Differential tests against BuildKit: every case under `tests/differential/` is built by
//! BuildKit (Debian's dockerd 20.10, started by the shared fixture) and by stagecraft, and the
//! image configs and final file trees must be identical. Needs root (dockerd, overlayfs).

use std::path::{Path, PathBuf};
use std::process::Command;

fn shared_dir() -> PathBuf {
    std::env::var_os("STAGECRAFT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

#[test]
fn every_case_matches_buildkit() {
    let cases_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/differential");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&cases_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 7,
        "differential cases missing in {}",
        cases_dir.display()
    );
    let script = shared_dir().join("fixtures/diff-vs-buildkit");
    let mut failures = Vec::new();
    // One case at a time: each run starts its own dockerd and registry on a fixed port.
    for case in &cases {
        let flags: Vec<String> = std::fs::read_to_string(case.join("flags"))
            .map(|text| text.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let run = || {
            Command::new(&script)
                .arg(env!("CARGO_BIN_EXE_stagecraft"))
                .arg(case)
                .args(&flags)
                .env("PORT", "5391")
                .output()
                .unwrap()
        };
        let mut output = run();
        // The reference is not always the same under load: dockerd 20.10's BuildKit has failed
        // a fresh daemon's first RUN ("stat /bin/sh: no such file or directory"), twice in a
        // row once. A case gets up to two more runs, each on a fresh daemon; a difference that
        // stagecraft makes shows in all three.
        for _ in 0..2 {
            if output.status.success() {
                break;
            }
            output = run();
        }
        if !output.status.success() && !only_leaked_mount_stubs(&output.stdout) {
            failures.push(format!(
                "{}:\n{}\n{}",
                case.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "differences from BuildKit:\n{}",
        failures.join("\n\n")
    );
}

/// Whether a failed comparison differs only by the empty `/etc/hosts` and `/etc/resolv.conf`
/// that BuildKit v0.8 (dockerd 20.10) sometimes leaves in a RUN's layer: runc creates them as
/// mount points where the image has none, and that BuildKit does not always remove them.
/// BuildKit since v0.10 removes them (its mount stub cleaner), so today's reference has
/// neither, as stagecraft's images do.
fn only_leaked_mount_stubs(stdout: &[u8]) -> bool {
    const STUBS: [&str; 2] = [
        "-etc/hosts f 755 0:0 0 e3b0c44298fc1c14",
        "-etc/resolv.conf f 755 0:0 0 e3b0c44298fc1c14",
    ];
    let text = String::from_utf8_lossy(stdout);
    let changes: Vec<&str> = text
        .lines()
        .filter(|line| {
            (line.starts_with('-') || line.starts_with('+'))
                && !line.starts_with("---")
                && !line.starts_with("+++")
        })
        .collect();
    !changes.is_empty() && changes.iter().all(|line| STUBS.contains(line))
}
