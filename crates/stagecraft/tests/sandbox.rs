//! The RUN sandbox end to end, as root: Docker's default seccomp profile on every step,
//! `RUN --security=insecure` behind `--allow security.insecure`, and secrets that never touch a
//! disk, even when the build is killed in the middle of the step that reads them.

mod common;

use common::{Machine, busybox_layout};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn machine(dir: &Path, dockerfile: &str) -> Machine {
    let busybox = busybox_layout(dir);
    Machine::new(dir, "m", &busybox, &[("Dockerfile", dockerfile)])
}

#[test]
fn run_steps_get_dockers_seccomp_profile() {
    let dir = tempfile::tempdir().unwrap();
    // Each line says what happened; `unshare -U` needs no capability, so only the filter stops
    // it (it worked before the profile).
    let m = machine(
        dir.path(),
        "FROM busybox:latest\n\
         RUN grep -E '^Seccomp:' /proc/self/status; \
             unshare -U true 2>/dev/null && echo nested-userns=yes || echo nested-userns=no; \
             mount -t tmpfs none /mnt 2>/dev/null && echo mount=yes || echo mount=no; \
             echo files=$(ls / | wc -l)\n",
    );
    let (_, log) = m.build(&["--no-cache"]);
    for line in ["Seccomp:\t2", "nested-userns=no", "mount=no"] {
        assert!(log.contains(line), "{line:?} missing:\n{log}");
    }
    // sh, ls and wc ran: busybox's root has a dozen entries.
    let files: usize = log
        .rsplit("files=")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no file count:\n{log}"));
    assert!(files > 5, "{log}");
}

#[test]
fn insecure_steps_need_the_entitlement_and_then_run_unconfined() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        "FROM busybox:latest\n\
         RUN echo first-step-ran\n\
         RUN --security=insecure grep -E '^(Seccomp|CapEff):' /proc/self/status\n",
    );
    // Refused before anything runs, at the instruction, naming the flag.
    let output = m
        .stagecraft()
        .args(["build", "--progress=plain"])
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("security.insecure is not allowed")
            && stderr.contains("--allow security.insecure")
            && stderr.contains("Dockerfile:3:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("first-step-ran"), "{stderr}");

    // Granted: no filter, and every capability this process may hand down.
    let bounding = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t").map(str::to_owned))
        .unwrap();
    let (_, log) = m.build(&["--allow", "security.insecure"]);
    assert!(log.contains("Seccomp:\t0"), "{log}");
    assert!(log.contains(&format!("CapEff:\t{bounding}")), "{log}");

    // Both of buildx's values are accepted (comma-separated too); others are listed.
    m.build(&["--allow", "network.host,security.insecure"]);
    let output = m
        .stagecraft()
        .args(["build", "--allow", "security.unsafe"])
        .arg(&m.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("\"security.unsafe\"")
            && stderr.contains("network.host, security.insecure"),
        "{stderr}"
    );
}

/// Every regular file under `root` (not following symlinks, skipping what vanishes meanwhile).
fn files_under(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

/// Processes whose environment names `store` (the build and its helper).
fn processes_of(store: &Path) -> Vec<String> {
    let needle = format!("STAGECRAFT_ROOT={}", store.display());
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(environ) = fs::read(entry.path().join("environ"))
            && environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
        {
            pids.push(name);
        }
    }
    pids
}

#[test]
fn a_build_killed_during_a_secret_step_leaves_the_secret_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(
        dir.path(),
        "FROM busybox:latest\n\
         RUN --mount=type=secret,id=token \
             test -s /run/secrets/token && touch /secret-step-started && exec sleep 600\n",
    );
    // Made now, so it is in no file: not the test binary, not the context. It reaches
    // stagecraft through its environment only.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secret = format!("tmpfs-only-{nanos:x}-{}", std::process::id());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .env("STAGECRAFT_ROOT", &m.root)
        .env("TOKEN_VALUE", &secret)
        .args([
            "build",
            "--progress=plain",
            "--secret",
            "id=token,env=TOKEN_VALUE",
        ])
        .arg(&m.context)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // The step writes its marker into its layer (under the store) once it has read the secret.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut files = Vec::new();
        files_under(&m.root, &mut files);
        if files.iter().any(|f| f.ends_with("secret-step-started")) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the build ended before the step started: {status}");
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The helper notices its parent is gone and kills the step; wait for every process of this
    // store to be gone, so that whatever they would leave behind is there to find.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_of(&m.root).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running: {:?}",
            processes_of(&m.root)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The store (it is under /tmp too, but say so), all of /tmp, and /dev/shm (where the
    // executor keeps its per-run state): no file holds the secret.
    let mut files = Vec::new();
    for root in [m.root.as_path(), Path::new("/tmp"), Path::new("/dev/shm")] {
        files_under(root, &mut files);
    }
    assert!(files.len() > 10, "searched only {files:?}");
    for file in files {
        let Ok(meta) = fs::metadata(&file) else {
            continue;
        };
        if meta.len() > 512 << 20 {
            continue;
        }
        if let Ok(bytes) = fs::read(&file) {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "the secret is in {}",
                file.display()
            );
        }
    }
}

/// Whether `needle` (not empty) occurs in `haystack`; much quicker than comparing every window
/// in a debug build, which matters for the hundreds of MB searched here.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let mut rest = haystack;
    while let Some(at) = rest.iter().position(|b| *b == needle[0]) {
        if rest[at..].starts_with(needle) {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}
