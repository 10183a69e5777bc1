//! Helpers shared by the end-to-end build tests: machines (a store and a context each), the
//! busybox base, a registry.
#![allow(dead_code)] // each test binary uses its own subset

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the shared fixtures live.
pub(crate) fn shared_dir() -> PathBuf {
    std::env::var_os("STAGECRAFT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// One machine: its own store (with busybox loaded) and its own copy of the context.
pub(crate) struct Machine {
    /// `STAGECRAFT_ROOT`.
    pub root: PathBuf,
    /// The build context.
    pub context: PathBuf,
}

impl Machine {
    /// A machine at `dir/name` whose context holds `files` (path, content).
    pub(crate) fn new(dir: &Path, name: &str, busybox: &Path, files: &[(&str, &str)]) -> Machine {
        let machine = Machine {
            root: dir.join(name).join("store"),
            context: dir.join(name).join("context"),
        };
        for (path, content) in files {
            let path = machine.context.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        machine
            .stagecraft()
            .args(["load", "--tag", "busybox:latest", "-i"])
            .arg(busybox)
            .assert()
            .success();
        machine
    }

    pub(crate) fn stagecraft(&self) -> Command {
        let mut command = Command::cargo_bin("stagecraft").unwrap();
        command
            .env("STAGECRAFT_ROOT", &self.root)
            .env("SOURCE_DATE_EPOCH", "1700000000");
        command
    }

    /// Builds (`extra` flags before the context); returns (image digest, stderr).
    pub(crate) fn build(&self, extra: &[&str]) -> (String, String) {
        let output = self
            .stagecraft()
            .args(["build", "--progress=plain"])
            .args(extra)
            .arg(&self.context)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "build failed:\n{stderr}");
        (
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            stderr,
        )
    }
}

/// A registry on a loopback port, stopped on drop.
pub(crate) struct RegistryProcess {
    pid: u32,
}

impl RegistryProcess {
    pub(crate) fn start(data: &Path, port: u16) -> RegistryProcess {
        Self::start_with(data, port, &[])
    }

    /// A registry that demands basic authentication as `user_password` (`USER:PASS`).
    pub(crate) fn start_with_htpasswd(
        data: &Path,
        port: u16,
        user_password: &str,
    ) -> RegistryProcess {
        Self::start_with(data, port, &["--htpasswd", user_password])
    }

    fn start_with(data: &Path, port: u16, extra: &[&str]) -> RegistryProcess {
        let output = std::process::Command::new(shared_dir().join("fixtures/start-registry"))
            .arg(port.to_string())
            .arg(data)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "start-registry: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pid = fs::read_to_string(data.join("registry.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        RegistryProcess { pid }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.pid.to_string())
            .status();
    }
}

/// The entries of a (plain) tar as (path, header).
pub(crate) fn tar_headers(path: &Path) -> Vec<(String, tar::Header)> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            (path, entry.header().clone())
        })
        .collect()
}

/// Makes the offline busybox image layout at `dir/busybox` and returns its path.
pub(crate) fn busybox_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("busybox");
    let status = std::process::Command::new(shared_dir().join("fixtures/make-busybox-image"))
        .arg(&layout)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "make-busybox-image failed");
    layout
}

/// Makes the offline busybox image as an index of `platforms` (`linux/amd64,linux/arm64`) at
/// `dir/busybox-multi` and returns its path.
pub(crate) fn multi_platform_busybox_layout(dir: &Path, platforms: &str) -> PathBuf {
    let layout = dir.join("busybox-multi");
    let status = std::process::Command::new(shared_dir().join("fixtures/make-busybox-image"))
        .arg(&layout)
        .args(["latest", "--platform", platforms])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "make-busybox-image --platform {platforms} failed"
    );
    layout
}

/// A store at `dir/store` with the busybox base loaded as `busybox:latest`; returns its root.
pub(crate) fn store_with_busybox(dir: &Path) -> PathBuf {
    let root = dir.join("store");
    Command::cargo_bin("stagecraft")
        .unwrap()
        .env("STAGECRAFT_ROOT", &root)
        .args(["load", "--tag", "busybox:latest", "-i"])
        .arg(busybox_layout(dir))
        .assert()
        .success();
    root
}

/// Writes `megabytes` MiB of incompressible (xorshift) bytes to `path`: layers of it cost real
/// hashing, compression and disk space.
pub(crate) fn write_random_file(path: &Path, megabytes: usize, seed: u64) {
    use std::io::Write;
    let mut file = fs::File::create(path).unwrap();
    let mut state = seed | 1;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..megabytes {
        for byte in chunk.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        file.write_all(&chunk).unwrap();
    }
}

/// A server process on a free loopback port, killed on drop.
pub(crate) struct LoopbackServer {
    child: std::process::Child,
    /// The port it listens on.
    pub port: u16,
}

impl LoopbackServer {
    /// Starts `command(port)` on a port the kernel says is free, and waits until the port
    /// accepts connections.
    pub(crate) fn start(command: impl FnOnce(u16) -> std::process::Command) -> LoopbackServer {
        use std::net::{TcpListener, TcpStream};
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = command(port)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut server = LoopbackServer { child, port };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server on port {port} exited: {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the server did not start on port {port}");
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python3 -m http.server` serving a directory on a free loopback port, killed on drop.
pub(crate) struct HttpServer(LoopbackServer);

impl HttpServer {
    pub(crate) fn start(dir: &Path) -> HttpServer {
        HttpServer(LoopbackServer::start(|port| {
            let mut command = std::process::Command::new("python3");
            command
                .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(dir)
                .arg(port.to_string());
            command
        }))
    }

    /// The URL of `path` on the server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.0.port)
    }
}

/// Runs `git ARGS` in `dir` (as user `t`); returns its standard output, trimmed.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Serves the repository `work` (a bare clone of it under `dir/served`) with `git daemon`:
/// returns the server and the repository's `git://127.0.0.1:PORT/repo.git` URL.
pub(crate) fn serve_git(dir: &Path, work: &Path) -> (LoopbackServer, String) {
    let served = dir.join("served");
    fs::create_dir(&served).unwrap();
    let bare = served.join("repo.git");
    git(
        dir,
        &[
            "clone",
            "--quiet",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let server = LoopbackServer::start(|port| {
        let mut command = std::process::Command::new("git");
        command
            .arg("daemon")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", served.display()))
            .arg(&served);
        command
    });
    let url = format!("git://127.0.0.1:{}/repo.git", server.port);
    (server, url)
}

/// The manifest an OCI layout tar (`save --format oci`, `--output type=oci`) names in its
/// `index.json`, with its digest, read from the store `root` that wrote it.
pub(crate) fn exported_manifest(layout_tar: &Path, root: &Path) -> serde_json::Value {
    let digest = exported_manifest_digest(layout_tar);
    let bytes = fs::read(root.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    manifest["digest"] = serde_json::Value::String(digest);
    manifest
}

/// The manifest digest in an OCI layout tar's `index.json`.
pub(crate) fn exported_manifest_digest(layout_tar: &Path) -> String {
    let mut archive = tar::Archive::new(fs::File::open(layout_tar).unwrap());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("index.json") {
            let index: serde_json::Value = serde_json::from_reader(entry).unwrap();
            return index["manifests"][0]["digest"].as_str().unwrap().to_owned();
        }
    }
    panic!("no index.json in {}", layout_tar.display());
}

/// Polls `condition` (every few milliseconds) until it holds; panics naming `what` after a
/// minute. For waiting on another process's progress, which has no event to wait on.
pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The apparent size of the regular files under `path` (a file or a directory tree).
pub(crate) fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// The names of the entries in `dir` (none when it cannot be listed), sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
