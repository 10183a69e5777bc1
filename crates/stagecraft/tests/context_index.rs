//! The context index: a rebuild reads only the context files whose stat changed, while the
//! cache stays keyed by their content.

mod common;

use common::Machine;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Waits, a clock tick at most, until the clock the kernel stamps file changes with has passed
/// the last change to `paths`. The index does not vouch for a file changed in the tick its
/// build started in (it could change again unseen), so a build started in that tick would
/// hash the file again.
fn let_changes_settle(paths: impl IntoIterator<Item = PathBuf>) {
    let newest = paths
        .into_iter()
        .map(|path| {
            let metadata = fs::metadata(path).unwrap();
            (metadata.ctime(), metadata.ctime_nsec())
        })
        .max()
        .unwrap();
    loop {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        if (now.tv_sec, now.tv_nsec) > newest {
            return;
        }
        std::thread::yield_now();
    }
}

/// The inode of the context's index file: a new one each time it is written.
fn index_inode(machine: &Machine) -> u64 {
    let dir = machine.root.join("context-index");
    let mut entries = fs::read_dir(&dir).unwrap();
    let index = entries.next().expect("a context index").unwrap();
    assert!(entries.next().is_none(), "one context, one index");
    index.metadata().unwrap().ino()
}

/// Builds with `--progress=plain`, checks what it says of the context and how many steps
/// ran, and returns what it printed.
fn build(machine: &Machine, context: &str, steps_run: usize) -> String {
    let (_, stderr) = machine.build(&[]);
    let line = stderr
        .lines()
        .find(|line| line.starts_with("#0 context: "))
        .unwrap_or_else(|| panic!("no context line in:\n{stderr}"));
    assert_eq!(line, format!("#0 context: {context}"));
    assert!(
        stderr.contains(&format!(" {steps_run} steps run")),
        "{stderr}"
    );
    stderr
}

#[test]
fn a_rebuild_hashes_only_the_context_files_whose_stat_changed() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = common::busybox_layout(dir.path());
    let names: Vec<String> = (0..20_000)
        .map(|i| format!("files/d{:02}/f{:04}", i / 1000, i % 1000))
        .collect();
    let contents: Vec<String> = (0..20_000).map(|i| format!("file {i}\n")).collect();
    let mut files: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(contents.iter().map(String::as_str))
        .collect();
    files.push(("Dockerfile", "FROM busybox:latest\nCOPY files /files\n"));
    let machine = Machine::new(dir.path(), "m", &busybox, &files);
    let in_context = |name: &str| machine.context.join(name);
    let_changes_settle(names.iter().map(|name| in_context(name)));

    build(&machine, "20,000 files hashed, 0 from the index", 1);
    let written = index_inode(&machine);

    // Nothing changed: nothing is read, nothing is written, everything is cached.
    build(&machine, "0 files hashed, 20,000 from the index", 0);
    assert_eq!(
        index_inode(&machine),
        written,
        "a cached rebuild rewrote the index"
    );

    // Touched, same bytes: read again, and still cached (keys are made of content).
    let touched = in_context("files/d07/f0123");
    fs::File::options()
        .write(true)
        .open(&touched)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let_changes_settle([touched]);
    let output = machine
        .stagecraft()
        .args(["build", "--progress=json"])
        .arg(&machine.context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let mut event: serde_json::Value = stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .find(|event: &serde_json::Value| event.get("context_files").is_some())
        .unwrap_or_else(|| panic!("no context_files event in:\n{stderr}"));
    // Every event carries the time it happened; the rest is compared whole.
    assert!(event["time"].is_string(), "{event}");
    event.as_object_mut().unwrap().remove("time");
    assert_eq!(
        event,
        serde_json::json!({
            "event": "info",
            "message": "context: 1 file hashed, 19,999 from the index",
            "context_files": {"hashed": 1, "from_index": 19_999},
        })
    );
    assert!(stderr.contains("\"steps_run\":0"), "{stderr}");

    // Other bytes: read again, and the step runs, saying which file changed.
    let changed = in_context("files/d13/f0456");
    fs::write(&changed, "other bytes\n").unwrap();
    let_changes_settle([changed]);
    let after_change = build(&machine, "1 file hashed, 19,999 from the index", 1);
    assert!(
        after_change.contains("cache miss: file /files/d13/f0456"),
        "{after_change}"
    );
}

#[test]
fn a_build_that_reads_no_context_file_says_nothing_about_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = common::busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[("Dockerfile", "FROM busybox:latest\nRUN echo hi > /hi\n")],
    );
    let (_, stderr) = machine.build(&[]);
    assert!(!stderr.contains("#0 context:"), "{stderr}");
    assert_eq!(
        fs::read_dir(machine.root.join("context-index"))
            .unwrap()
            .count(),
        0
    );
}
