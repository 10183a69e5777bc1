//! Scratch entries in `ingest/` and partial outputs: removed on drop, by their owner when it is
//! interrupted, and by the next lease once their owner is gone, never while it lives.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{entries, store};
use stagecraft_store::{PruneOptions, Store};

/// Set in the child process: the store root to make scratch entries in.
const OWNER_ENV: &str = "STAGECRAFT_TEST_SCRATCH_OWNER_ROOT";
/// Set in the child process: the output file it leaves half-written.
const OUTPUT_ENV: &str = "STAGECRAFT_TEST_SCRATCH_OWNER_OUTPUT";
/// What the child prints once its entries exist (searched for: the harness may print on the
/// same line).
const READY_TOKEN: &str = "STAGECRAFT-SCRATCH-READY";

fn ingest(store: &Store) -> PathBuf {
    store.root().join("ingest")
}

/// The fields of an owned scratch entry's name: kind, pid, start time, pid namespace, random.
fn name_fields(name: &str) -> Vec<String> {
    let mut fields: Vec<String> = name.rsplitn(5, '-').map(str::to_owned).collect();
    fields.reverse();
    fields
}

/// Makes an entry `kind-pid-start-ns-random` in `ingest/` (a directory holding a file).
fn forge(store: &Store, kind: &str, pid: &str, start: &str, ns: &str) -> String {
    let name = format!("{kind}-{pid}-{start}-{ns}-Forged");
    let dir = ingest(store).join(&name);
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("data"), b"left behind").unwrap();
    name
}

#[test]
fn scratch_entries_carry_their_owner_and_go_when_dropped() {
    let (_dir, store) = store();
    let dir = store.scratch_dir("step").unwrap();
    fs::create_dir(dir.path().join("upper")).unwrap();
    fs::write(dir.path().join("upper/file"), b"x").unwrap();
    let file = store.scratch_file("pull").unwrap();
    fs::write(file.path(), b"downloaded").unwrap();

    let names = entries(&ingest(&store));
    assert_eq!(names.len(), 2, "{names:?}");
    for name in &names {
        let fields = name_fields(name);
        assert!(["step", "pull"].contains(&fields[0].as_str()), "{name}");
        assert_eq!(fields[1], std::process::id().to_string(), "{name}");
        assert!(fields[2].parse::<u64>().unwrap() > 0, "{name}");
        assert!(fields[3].parse::<u64>().unwrap() > 0, "{name}");
    }
    drop(dir);
    drop(file);
    assert!(entries(&ingest(&store)).is_empty());
}

#[test]
fn the_next_lease_removes_dead_owners_entries_and_keeps_live_ones() {
    let (_dir, store) = store();
    // This process's real identity, as its own entries record it.
    let own = store.scratch_dir("probe").unwrap();
    let own_name = own.path().file_name().unwrap().to_str().unwrap().to_owned();
    let fields = name_fields(&own_name);
    let (pid, start, ns) = (&fields[1], &fields[2], &fields[3]);
    let later: u64 = start.parse::<u64>().unwrap() + 1;

    // A process that has exited and been reaped: its id names no process (or, reused, one
    // that started later).
    let mut exited = Command::new("true").spawn().unwrap();
    let exited_pid = exited.id().to_string();
    exited.wait().unwrap();

    let live = forge(&store, "step", pid, start, ns);
    let reused = forge(&store, "step", pid, &later.to_string(), ns);
    let dead = forge(&store, "blob", &exited_pid, start, ns);
    let dashed_kind = forge(&store, "cache-mount", &exited_pid, start, ns);
    // Another pid namespace: its ids cannot be checked here.
    let foreign_ns = (ns.parse::<u64>().unwrap() + 1).to_string();
    let elsewhere = forge(&store, "step", &exited_pid, start, &foreign_ns);
    // Untagged (older versions): prune's to remove.
    let untagged = "blob-Legacy1";
    fs::write(ingest(&store).join(untagged), b"old").unwrap();

    // A new handle: its first lease sweeps.
    let next = Store::open(store.root()).unwrap();
    let _lease = next.lease().unwrap();
    let mut expected = vec![own_name, live, elsewhere, untagged.to_owned()];
    expected.sort();
    let left = entries(&ingest(&store));
    assert_eq!(left, expected);
    for gone in [reused, dead, dashed_kind] {
        assert!(!left.contains(&gone), "{gone} was kept");
    }
    drop(own);
}

/// Run as a child by the next test: makes scratch entries and a half-written output, then
/// waits (for a SIGKILL, or for its stdin to close).
#[test]
fn scratch_owner_child_process() {
    let (Some(root), Some(output)) = (std::env::var_os(OWNER_ENV), std::env::var_os(OUTPUT_ENV))
    else {
        return; // Not the child: nothing to do.
    };
    let store = Store::open(PathBuf::from(root)).unwrap();
    let dir = store.scratch_dir("load").unwrap();
    fs::write(dir.path().join("layer"), vec![7u8; 1 << 16]).unwrap();
    let file = store.scratch_file("blob").unwrap();
    fs::write(file.path(), b"half a blob").unwrap();
    let mut out = store.output_file(Path::new(&output)).unwrap();
    out.write_all(&[1u8; 1 << 16]).unwrap();
    out.flush().unwrap();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{READY_TOKEN}").unwrap();
    stdout.flush().unwrap();
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    drop((dir, file, out));
}

#[test]
fn a_killed_owners_entries_and_partial_output_go_with_the_next_lease() {
    let (dir, store) = store();
    let output = dir.path().join("image.tar");
    fs::write(&output, b"the good archive").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "scratch_owner_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OWNER_ENV, store.root())
        .env(OUTPUT_ENV, &output)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("child exited before its entries existed");
        if line.unwrap().contains(READY_TOKEN) {
            break;
        }
    }
    let child_pid = child.id().to_string();
    let owned_by_child = |store: &Store| -> Vec<String> {
        entries(&ingest(store))
            .into_iter()
            .filter(|name| name_fields(name).get(1) == Some(&child_pid))
            .collect()
    };
    let partials = || -> Vec<String> {
        entries(dir.path())
            .into_iter()
            .filter(|name| name.ends_with(".partial"))
            .collect()
    };
    // Scratch directory, scratch file, output registration; one partial output.
    assert_eq!(
        owned_by_child(&store).len(),
        3,
        "{:?}",
        entries(&ingest(&store))
    );
    assert_eq!(partials().len(), 1);

    // While the owner lives, a sweep keeps everything.
    let _ = Store::open(store.root()).unwrap().lease().unwrap();
    assert_eq!(owned_by_child(&store).len(), 3);
    assert_eq!(partials().len(), 1);

    child.kill().unwrap();
    child.wait().unwrap();
    let _ = Store::open(store.root()).unwrap().lease().unwrap();
    assert!(
        entries(&ingest(&store)).is_empty(),
        "{:?}",
        entries(&ingest(&store))
    );
    assert!(partials().is_empty(), "{:?}", partials());
    assert_eq!(fs::read(&output).unwrap(), b"the good archive");
}

#[test]
fn an_interrupted_owner_removes_its_own_entries_only() {
    let (dir, store) = store();
    let own_dir = store.scratch_dir("git").unwrap();
    fs::create_dir(own_dir.path().join("repository")).unwrap();
    let own_file = store.scratch_file("pull").unwrap();
    let mut out = store.output_file(&dir.path().join("out.tar")).unwrap();
    out.write_all(b"partial").unwrap();
    out.flush().unwrap();
    let fields = name_fields(own_dir.path().file_name().unwrap().to_str().unwrap());
    let foreign_ns = (fields[3].parse::<u64>().unwrap() + 1).to_string();
    let other = forge(&store, "step", "1", &fields[2], &foreign_ns);

    store.remove_own_scratch();
    assert_eq!(entries(&ingest(&store)), vec![other]);
    assert_eq!(entries(dir.path()), vec!["root"]);
    // The owners' guards find nothing left to remove.
    drop((own_dir, own_file, out));
}

#[test]
fn an_output_file_replaces_its_destination_only_once_complete() {
    let (dir, store) = store();
    let dest = dir.path().join("image.tar");
    fs::write(&dest, b"old").unwrap();

    let mut out = store.output_file(&dest).unwrap();
    out.write_all(b"new, in progress").unwrap();
    out.flush().unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"old");
    drop(out);
    assert_eq!(
        fs::read(&dest).unwrap(),
        b"old",
        "an abandoned write changes nothing"
    );
    assert_eq!(entries(dir.path()), vec!["image.tar", "root"]);

    let mut out = store.output_file(&dest).unwrap();
    out.write_all(b"new").unwrap();
    out.commit().unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"new");
    assert_eq!(entries(dir.path()), vec!["image.tar", "root"]);
    assert!(entries(&ingest(&store)).is_empty());

    // Through a symbolic link, the link stays and its target is replaced.
    let link = dir.path().join("link.tar");
    symlink(&dest, &link).unwrap();
    let mut out = store.output_file(&link).unwrap();
    out.write_all(b"newer").unwrap();
    out.commit().unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&dest).unwrap(), b"newer");

    let error = store.output_file(Path::new("/")).unwrap_err().to_string();
    assert!(error.contains("not a file name"), "{error}");
}

#[test]
fn a_new_output_directory_appears_complete_and_an_existing_one_is_written_into() {
    let (dir, store) = store();
    let dest = dir.path().join("rootfs");
    let out = store.output_dir(&dest).unwrap();
    assert_ne!(out.path(), dest);
    fs::write(out.path().join("file"), b"content").unwrap();
    assert!(!dest.exists(), "not there before the commit");
    out.commit().unwrap();
    assert_eq!(fs::read(dest.join("file")).unwrap(), b"content");

    let abandoned = dir.path().join("abandoned");
    let out = store.output_dir(&abandoned).unwrap();
    fs::write(out.path().join("file"), b"content").unwrap();
    drop(out);
    assert_eq!(entries(dir.path()), vec!["root", "rootfs"]);
    assert!(entries(&ingest(&store)).is_empty());

    let out = store.output_dir(&dest).unwrap();
    assert_eq!(out.path(), dest);
    fs::write(out.path().join("second"), b"more").unwrap();
    out.commit().unwrap();
    assert_eq!(entries(&dest), vec!["file", "second"]);
}

#[test]
fn prune_removes_partial_outputs_with_their_registration() {
    let (dir, store) = store();
    // What a writer killed before its guard ran leaves: a partial output and its registration.
    let partial = dir.path().join(".rootfs.Abc123.partial");
    fs::create_dir(&partial).unwrap();
    fs::write(partial.join("file"), b"content").unwrap();
    symlink(&partial, ingest(&store).join("output-Abc123")).unwrap();
    let report = store.prune(&PruneOptions::default()).unwrap();
    assert_eq!(report.removed_temp_entries, 1);
    assert!(entries(&ingest(&store)).is_empty());
    assert_eq!(entries(dir.path()), vec!["root"]);
}

#[test]
fn a_link_in_ingest_to_anything_but_a_partial_output_removes_only_the_link() {
    let (dir, store) = store();
    let precious = dir.path().join("precious.tar");
    fs::write(&precious, b"keep").unwrap();
    let fields = name_fields(
        store
            .scratch_dir("probe")
            .unwrap()
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap(),
    );
    let mut exited = Command::new("true").spawn().unwrap();
    let exited_pid = exited.id().to_string();
    exited.wait().unwrap();
    let name = format!("output-{exited_pid}-{}-{}-Forged", fields[2], fields[3]);
    symlink(&precious, ingest(&store).join(name)).unwrap();
    let _lease = Store::open(store.root()).unwrap().lease().unwrap();
    assert!(entries(&ingest(&store)).is_empty());
    assert_eq!(fs::read(&precious).unwrap(), b"keep");
}
