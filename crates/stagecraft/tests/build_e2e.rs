//! `stagecraft build` end to end, as root, on a busybox base image made offline by the shared
//! fixture: multi-stage build, cache hits and misses, outputs, errors.

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};

fn shared_dir() -> PathBuf {
    std::env::var_os("STAGECRAFT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// A store with `busybox:latest` loaded.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("busybox");
        let status = std::process::Command::new(shared_dir().join("fixtures/make-busybox-image"))
            .arg(&layout)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "make-busybox-image failed");
        let fixture = Fixture { dir };
        fixture
            .stagecraft()
            .args(["load", "--tag", "busybox:latest", "-i"])
            .arg(&layout)
            .assert()
            .success();
        fixture
    }

    fn stagecraft(&self) -> Command {
        let mut command = Command::cargo_bin("stagecraft").unwrap();
        command.env("STAGECRAFT_ROOT", self.dir.path().join("store"));
        command
    }

    fn context(&self, files: &[(&str, &str)]) -> PathBuf {
        let context = self.dir.path().join("ctx");
        for (path, content) in files {
            let path = context.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        context
    }

    /// Builds and returns (stdout, stderr).
    fn build(&self, context: &Path, extra: &[&str]) -> (String, String) {
        let output = self
            .stagecraft()
            .args(["build", "--progress=plain"])
            .args(extra)
            .arg(context)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "build failed:\n{stderr}");
        (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
    }
}

/// The entries of a tar: (path, uid, gid, mode, content for files).
fn tar_entries(path: &Path) -> Vec<(String, u64, u64, u32, Vec<u8>)> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let name = entry.path().unwrap().display().to_string();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        out.push((
            name,
            header.uid().unwrap(),
            header.gid().unwrap(),
            header.mode().unwrap(),
            content,
        ));
    }
    out
}

const DOCKERFILE: &str = r#"
FROM busybox:latest AS build
WORKDIR /src
COPY hello.txt .
RUN echo built > out.txt && cat hello.txt >> out.txt

FROM busybox:latest AS unused
RUN exit 3

FROM busybox:latest
COPY --from=build --chown=app /src/out.txt /app/
USER app
ENV GREETING=hi
CMD ["cat", "/app/out.txt"]
"#;

#[test]
fn multi_stage_build_caches_by_content_and_exports_the_filesystem() {
    let fixture = Fixture::new();
    let context = fixture.context(&[
        ("Dockerfile", DOCKERFILE),
        ("hello.txt", "hello\n"),
        ("ignored.log", "x"),
    ]);
    let rootfs = fixture.dir.path().join("rootfs.tar");
    let output = format!("type=tar,dest={}", rootfs.display());
    let (_, first) = fixture.build(&context, &["-t", "app:1", "--output", &output]);
    assert!(first.contains("[unused] SKIPPED"), "{first}");
    assert!(!first.contains("exit 3"), "the unused stage ran:\n{first}");

    let entries = tar_entries(&rootfs);
    let out = entries
        .iter()
        .find(|e| e.0.trim_start_matches("./") == "app/out.txt")
        .expect("app/out.txt in the rootfs");
    assert_eq!(out.4, b"built\nhello\n");
    assert_eq!((out.1, out.2), (1000, 1000), "--chown=app");
    assert!(
        entries
            .iter()
            .any(|e| e.0.trim_start_matches("./") == "bin/busybox")
    );
    assert!(
        !entries.iter().any(|e| e.0.contains("src/out.txt")),
        "builder files leaked into the runtime image"
    );

    // Nothing changed: every step is a cache hit, and nothing runs.
    let (_, second) = fixture.build(&context, &[]);
    assert!(second.contains("0 steps run"), "{second}");
    assert!(second.contains("CACHED"), "{second}");

    // Touching a file or changing an unreferenced one keeps the cache.
    fs::write(context.join("hello.txt"), "hello\n").unwrap();
    fs::write(context.join("ignored.log"), "changed").unwrap();
    let (_, third) = fixture.build(&context, &[]);
    assert!(third.contains("0 steps run"), "{third}");

    // Changing the copied file re-runs what depends on it.
    fs::write(context.join("hello.txt"), "changed\n").unwrap();
    let (_, fourth) = fixture.build(&context, &[]);
    assert!(!fourth.contains("0 steps run"), "{fourth}");
    // The miss says which input changed, and the steps after it say an earlier step did.
    assert!(
        fourth.contains("cache miss: file /src/hello.txt: "),
        "{fourth}"
    );
    assert!(
        fourth.contains("cache miss: an earlier step changed"),
        "{fourth}"
    );
    assert!(
        first.contains("cache miss: first build of this step"),
        "{first}"
    );

    let inspect = fixture
        .stagecraft()
        .args(["inspect", "app:1"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["config"]["config"]["User"], "app");
    assert_eq!(
        json["config"]["config"]["Cmd"],
        serde_json::json!(["cat", "/app/out.txt"])
    );
    assert!(
        json["config"]["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hi")
    );
}

#[test]
fn steps_that_change_nothing_can_repeat() {
    let fixture = Fixture::new();
    // Identical empty layers must not be stacked twice (overlayfs refuses a repeated lower dir).
    let context = fixture.context(&[(
        "Dockerfile",
        "FROM busybox:latest\nRUN true\nRUN true\nRUN echo ok > /ok\nRUN true\n",
    )]);
    let (_, stderr) = fixture.build(&context, &["--no-cache"]);
    assert!(stderr.contains("4 steps run"), "{stderr}");
}

#[test]
fn failing_run_reports_the_step_and_its_output() {
    let fixture = Fixture::new();
    let context = fixture.context(&[(
        "Dockerfile",
        "FROM busybox:latest\nRUN echo about to fail && exit 7\n",
    )]);
    fixture
        .stagecraft()
        .args(["build", "--progress=plain"])
        .arg(&context)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("exit code: 7"))
        .stderr(predicates::str::contains("about to fail"))
        .stderr(predicates::str::contains(":2:1"));
}

#[test]
fn missing_copy_source_is_a_located_error() {
    let fixture = Fixture::new();
    let context = fixture.context(&[("Dockerfile", "FROM busybox:latest\nCOPY nope.txt /x\n")]);
    fixture
        .stagecraft()
        .args(["build", "--progress=plain"])
        .arg(&context)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("\"nope.txt\": not found"))
        .stderr(predicates::str::contains(":2:1"));
}

#[test]
fn cache_mounts_survive_a_layer_cache_miss_and_secrets_never_land_in_blobs() {
    let fixture = Fixture::new();
    let dockerfile = "FROM busybox:latest\n\
        COPY src.txt /src.txt\n\
        RUN --mount=type=cache,target=/cache \\\n    \
            if [ -f /cache/downloaded ]; then echo reused; else echo fetched > /cache/downloaded; echo download; fi; \\\n    \
            echo $(cat /cache/downloaded) > /result\n\
        RUN --mount=type=secret,id=token,target=/run/secrets/token \\\n    \
            --mount=type=secret,id=token,env=TOKEN \\\n    \
            test \"$(wc -c < /run/secrets/token)\" -eq 12 && test ${#TOKEN} -eq 12 && echo token-ok > /checked\n\
        RUN --mount=type=bind,source=src.txt,target=/mnt/src.txt cp /mnt/src.txt /bound.txt\n";
    let context = fixture.context(&[
        ("Dockerfile", dockerfile),
        ("src.txt", "one\n"),
        ("token.txt", "S3CR3T-VALUE"),
    ]);
    let secret = format!("id=token,src={}", context.join("token.txt").display());
    let (_, first) = fixture.build(&context, &["--secret", &secret, "-t", "mounts:1"]);
    assert!(first.contains("download"), "{first}");
    assert!(
        !first.contains("S3CR3T-VALUE"),
        "the secret reached the progress output:\n{first}"
    );

    // A changed source misses the layer cache, but the cache mount still holds the download.
    fs::write(context.join("src.txt"), "two\n").unwrap();
    let (_, second) = fixture.build(&context, &["--secret", &secret, "-t", "mounts:2"]);
    assert!(second.contains("reused"), "{second}");

    let rootfs = fixture.dir.path().join("mounts.tar");
    fixture
        .stagecraft()
        .args(["save", "--format", "dir", "mounts:2", "-o"])
        .arg(&rootfs)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(rootfs.join("bound.txt")).unwrap(),
        "two\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("checked")).unwrap(),
        "token-ok\n"
    );
    assert!(!rootfs.join("run/secrets/token").exists());

    // No blob of the store (layers, configs, manifests, cache records) contains the secret.
    let store = fixture.dir.path().join("store");
    for entry in walkdir(&store) {
        if let Ok(bytes) = fs::read(&entry) {
            let decompressed = gunzip(&bytes).unwrap_or_default();
            for haystack in [&bytes, &decompressed] {
                assert!(
                    !haystack.windows(12).any(|w| w == b"S3CR3T-VALUE"),
                    "secret found in {}",
                    entry.display()
                );
            }
        }
    }
}

fn walkdir(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).ok()?;
    Some(out)
}
