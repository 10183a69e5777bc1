//! SIGTERM or SIGINT during a build: it stops with status 130, removes its scratch directories
//! (steps, downloads, git checkouts) and leaves no mount behind.

mod common;

use common::{LoopbackServer, busybox_layout, names_in, tree_bytes, wait_until};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn sigterm_during_a_run_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let root = dir.path().join("store");
    let stagecraft = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stagecraft"));
        command.env("STAGECRAFT_ROOT", &root).args(args);
        command
    };
    assert!(
        stagecraft(&[
            "load",
            "--tag",
            "busybox:latest",
            "-i",
            &busybox.display().to_string()
        ])
        .status()
        .unwrap()
        .success()
    );
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nRUN echo started && sleep 60\n",
    )
    .unwrap();

    let mut build = stagecraft(&["build", "--progress=plain", &context.display().to_string()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = build.id();
    let mut stderr = BufReader::new(build.stderr.take().unwrap());
    let mut seen = String::new();
    // Wait until the command inside the RUN has demonstrably started.
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("build ended before the RUN started:\n{seen}");
        }
        seen.push_str(&line);
        if line.trim_end().ends_with(" started") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = build.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");

    let leftovers = names_in(&root.join("ingest"));
    assert!(
        leftovers.is_empty(),
        "scratch directories left: {leftovers:?}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "a mount of the store is left:\n{mounts}"
    );
}

/// A server on a loopback port that answers an HTTP `GET` with the first MiB of a 100 MiB body
/// and then nothing more, and anything else (git's protocol) with nothing at all: the client
/// waits, in the middle of its transfer, until the server is dropped. Each request it has
/// answered leaves a file in `marks`.
fn stalling_server(marks: &Path) -> LoopbackServer {
    const SCRIPT: &str = r#"
import os, socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(16)
held = []
while True:
    connection, _ = listener.accept()
    request = connection.recv(65536)
    if not request:
        continue  # a probe for the port
    held.append(connection)
    if request.startswith(b"GET "):
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n" + b"x" * 1048576)
    open(os.path.join(sys.argv[2], str(len(held))), "w").close()
"#;
    std::fs::create_dir_all(marks).unwrap();
    let marks = marks.to_owned();
    LoopbackServer::start(move |port| {
        let mut command = Command::new("python3");
        command.args(["-c", SCRIPT, &port.to_string()]).arg(&marks);
        command
    })
}

/// Builds `dockerfile` (which reaches the stalling server at `{port}`) into a new store, waits
/// until `stalled` holds for the store's `ingest/`, sends SIGINT and checks that the build
/// stops with 130 and `ingest/` is empty.
fn sigint_while_stalled(dockerfile: &str, stalled: impl Fn(&Path) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = stalling_server(&dir.path().join("marks"));
    let context = dir.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    let dockerfile = dockerfile.replace("{port}", &server.port.to_string());
    std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    let root = dir.path().join("store");
    let ingest = root.join("ingest");
    let mut build = Command::new(env!("CARGO_BIN_EXE_stagecraft"))
        .env("STAGECRAFT_ROOT", &root)
        .args(["build", "--progress=plain"])
        .arg(&context)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the build to stall in the middle of its transfer", || {
        assert!(build.try_wait().unwrap().is_none(), "the build ended");
        !names_in(&dir.path().join("marks")).is_empty() && stalled(&ingest)
    });
    let pid = rustix::process::Pid::from_raw(build.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let output = build.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        names_in(&ingest).is_empty(),
        "left in ingest/: {:?}",
        names_in(&ingest)
    );
}

#[test]
fn sigint_during_an_add_download_leaves_nothing_in_the_store() {
    sigint_while_stalled(
        "FROM scratch\nADD http://127.0.0.1:{port}/big.bin /big.bin\n",
        // The download has started writing its file.
        |ingest| tree_bytes(ingest) > 0,
    );
}

#[test]
fn sigint_during_an_add_of_a_git_repository_leaves_nothing_in_the_store() {
    sigint_while_stalled(
        "FROM scratch\nADD git://127.0.0.1:{port}/repo.git /src\n",
        // git has made its repository and is fetching.
        |ingest| {
            names_in(ingest)
                .iter()
                .any(|name| ingest.join(name).join("repository/.git/config").is_file())
        },
    );
}
