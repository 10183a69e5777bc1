//! Real runs: busybox from `/work/shared/fixtures/make-busybox-image` (or Debian's static
//! `/bin/busybox` when the fixture is absent), an overlay, and the `stagecraft-exec-helper` binary
//! as the re-exec'd helper. They need root (creating namespaces and mounting overlayfs); as
//! another user they are skipped with a note.
// Tests print what they measured or skipped, for the reader of the test log.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// The test enters namespaces of its own (unshare) to set up what it checks.
#![allow(unsafe_code)]

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use stagecraft_exec::{
    ExecError, ExecSpec, Executor, ExitStatus, HELPER_ARG, HelperCommand, HostEntry, Mount,
    MountKind, Network, NetworkSandbox, Rootfs, SecretData, Security, Stream,
};

const FIXTURE: &str = "/work/shared/fixtures/make-busybox-image";

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips the calling test (returns) unless running as root.
macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn scratch_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// The busybox image's single layer, extracted once per test process (and reused across runs).
fn busybox() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_root().join("busybox-rootfs");
        let complete = scratch_root().join("busybox-rootfs.complete");
        if complete.exists() {
            return dir;
        }
        let staging = tempfile::tempdir_in(scratch_root()).unwrap();
        let rootfs = staging.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        if Path::new(FIXTURE).exists() {
            let layout = staging.path().join("layout");
            run_ok(Command::new(FIXTURE).arg(&layout));
            let blob = |digest: &str| {
                layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:"))
            };
            let index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
            let manifest: serde_json::Value = serde_json::from_slice(
                &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
            )
            .unwrap();
            let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
            run_ok(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(&layer)
                    .arg("-C")
                    .arg(&rootfs),
            );
        } else {
            handmade_busybox(&rootfs);
        }
        // Another test process may have won the race; either copy is complete.
        let _ = std::fs::rename(&rootfs, &dir);
        std::fs::write(complete, "").unwrap();
        dir
    })
}

/// A busybox rootfs without the fixture: the static binary, its applets, passwd and group.
fn handmade_busybox(rootfs: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "home/app"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n\
         app:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n",
    )
    .unwrap();
}

fn run_ok(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn executor() -> Executor {
    Executor::new(HelperCommand::new(
        env!("CARGO_BIN_EXE_stagecraft-exec-helper"),
        [HELPER_ARG],
    ))
}

/// A fresh upper and work directory over the busybox layer.
struct Layer {
    dir: tempfile::TempDir,
}

impl Layer {
    fn new() -> Self {
        let dir = tempfile::tempdir_in(scratch_root()).unwrap();
        std::fs::create_dir(dir.path().join("upper")).unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Layer { dir }
    }

    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    fn rootfs(&self, lower_dirs: Vec<PathBuf>) -> Rootfs {
        Rootfs::Overlay {
            lower_dirs,
            upper_dir: self.upper(),
            work_dir: self.dir.path().join("work"),
        }
    }

    fn spec(&self, script: &str) -> ExecSpec {
        ExecSpec::new(
            self.rootfs(vec![busybox().to_owned()]),
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        )
    }

    /// Everything in the upper directory, relative paths, sorted.
    fn upper_entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.upper(), &self.upper(), &mut out);
        out.sort();
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(
            path.strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
        if path.symlink_metadata().unwrap().is_dir() {
            walk(base, &path, out);
        }
    }
}

/// Output of a run.
#[derive(Debug, Default)]
struct Output {
    stdout: String,
    stderr: String,
    calls: usize,
}

fn run(spec: &ExecSpec) -> (Result<ExitStatus, ExecError>, Output) {
    run_with(&executor(), spec)
}

fn run_with(executor: &Executor, spec: &ExecSpec) -> (Result<ExitStatus, ExecError>, Output) {
    let mut out = Output::default();
    let result = executor.run(spec, &mut |stream, data| {
        out.calls += 1;
        let text = String::from_utf8_lossy(data);
        match stream {
            Stream::Stdout => out.stdout.push_str(&text),
            Stream::Stderr => out.stderr.push_str(&text),
        }
    });
    (result, out)
}

/// Runs and expects exit code 0; returns stdout.
fn stdout_of(spec: &ExecSpec) -> String {
    stdout_with(&executor(), spec)
}

/// [`stdout_of`] with a given executor.
fn stdout_with(executor: &Executor, spec: &ExecSpec) -> String {
    let (result, out) = run_with(executor, spec);
    assert_eq!(
        result.unwrap(),
        ExitStatus::Code(0),
        "stderr: {}",
        out.stderr
    );
    out.stdout
}

#[test]
fn output_is_captured_line_by_line() {
    require_root!();
    let layer = Layer::new();
    let (result, out) = run(&layer.spec("echo one; echo two; echo err >&2; printf tail"));
    assert_eq!(result.unwrap(), ExitStatus::Code(0));
    assert_eq!(out.stdout, "one\ntwo\ntail");
    assert_eq!(out.stderr, "err\n");
    assert_eq!(out.calls, 4);
}

#[test]
fn exit_codes_are_propagated() {
    require_root!();
    let layer = Layer::new();
    let (result, _) = run(&layer.spec("exit 3"));
    let status = result.unwrap();
    assert_eq!(status, ExitStatus::Code(3));
    assert_eq!(status.to_string(), "exit code: 3");
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
}

#[test]
fn the_command_is_pid_1_with_buildkits_hostname() {
    require_root!();
    let layer = Layer::new();
    assert_eq!(
        stdout_of(&layer.spec("echo $$; hostname")),
        "1\nbuildkitsandbox\n"
    );
    let mut spec = layer.spec("hostname; grep myhost /etc/hosts");
    spec.hostname = "myhost".into();
    assert_eq!(stdout_of(&spec), "myhost\n127.0.0.1\tlocalhost myhost\n");
}

#[test]
fn environment_and_working_directory() {
    require_root!();
    let layer = Layer::new();
    let mut spec = layer.spec("echo $FOO; echo $PATH; echo $HOME; pwd; stat -c '%u:%g %a' .");
    spec.env = vec!["FOO=first".into(), "FOO=bar".into()];
    spec.cwd = "/work/dir".into();
    spec.user = "app".into();
    assert_eq!(
        stdout_of(&spec),
        "bar\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/home/app\n\
         /work/dir\n1000:1000 755\n"
    );
    // The created cwd is a genuine change of the step and stays in the layer.
    assert_eq!(layer.upper_entries(), ["work", "work/dir"]);
    let meta = std::fs::metadata(layer.upper().join("work/dir")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

#[test]
fn users_resolve_like_buildkit() {
    require_root!();
    let layer = Layer::new();
    let mut spec = layer.spec("id");
    spec.user = "app".into();
    assert_eq!(
        stdout_of(&spec),
        "uid=1000(app) gid=1000(app) groups=1000(app)\n"
    );
    spec.user = "1234:5678".into();
    assert_eq!(stdout_of(&spec), "uid=1234 gid=5678 groups=5678\n");
    spec.user = String::new();
    assert_eq!(stdout_of(&spec), "uid=0(root) gid=0(root) groups=0(root)\n");
    spec.user = "nosuch".into();
    match run(&spec).0 {
        Err(ExecError::User(message)) => {
            assert_eq!(
                message,
                "unable to find user nosuch: no matching entries in passwd file"
            )
        }
        other => panic!("expected a user error, got {other:?}"),
    }
    spec.user = "app:nosuch".into();
    assert!(
        matches!(run(&spec).0, Err(ExecError::User(m)) if m.contains("unable to find group nosuch"))
    );
}

#[test]
fn capabilities_are_dockers_default_set() {
    require_root!();
    let layer = Layer::new();
    let mut spec = layer.spec("grep -E '^Cap(Eff|Bnd)' /proc/self/status");
    assert_eq!(
        stdout_of(&spec),
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n"
    );
    spec.user = "app".into();
    assert_eq!(
        stdout_of(&spec),
        "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n"
    );
}

#[test]
fn dockers_default_seccomp_profile_confines_the_command() {
    require_root!();
    let layer = Layer::new();
    // unshare(CLONE_NEWUSER) needs no capability: only the filter stops it. mount would also
    // fail for want of CAP_SYS_ADMIN; personality(ADDR_NO_RANDOMIZE) is the filter's alone too
    // but busybox has no applet for it.
    let spec = layer.spec(
        "grep -E '^Seccomp' /proc/self/status; \
         unshare -U true 2>&1; echo unshare=$?; \
         mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?; \
         ls / | wc -l >/dev/null && echo ordinary=$?; \
         (sleep 0 & wait) && echo fork=$?",
    );
    assert_eq!(
        stdout_of(&spec),
        "Seccomp:\t2\nSeccomp_filters:\t2\n\
         unshare: unshare(0x10000000): Operation not permitted\nunshare=1\n\
         mount=1\nordinary=0\nfork=0\n"
    );
    // A non-root user gets the same filter.
    let mut spec =
        layer.spec("grep -E '^Seccomp:' /proc/self/status; unshare -U true 2>/dev/null; echo $?");
    spec.user = "app".into();
    assert_eq!(stdout_of(&spec), "Seccomp:\t2\n1\n");
}

#[test]
fn insecure_has_every_capability_and_no_filter() {
    require_root!();
    let layer = Layer::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .unwrap()
        .to_owned();
    let mut spec = layer.spec(
        "grep -E '^(Seccomp|CapEff|CapBnd):' /proc/self/status; \
         unshare -U true && echo unshare-ok; \
         grep -c ' /proc/kcore ' /proc/self/mountinfo; \
         grep ' /sys ' /proc/self/mountinfo | grep -c ' rw,'",
    );
    spec.security = Security::Insecure;
    let expected =
        format!("CapEff:\t{bounding}\nCapBnd:\t{bounding}\nSeccomp:\t0\nunshare-ok\n0\n1\n");
    assert_eq!(stdout_of(&spec), expected);
    // Ambient capabilities: a non-root user keeps them all, as under BuildKit's insecure mode.
    spec.args[2] = "grep -E '^CapEff:' /proc/self/status; id -u".into();
    spec.user = "app".into();
    assert_eq!(stdout_of(&spec), format!("CapEff:\t{bounding}\n1000\n"));
}

#[test]
fn secrets_are_served_from_a_tmpfs_of_the_step() {
    require_root!();
    let layer = Layer::new();
    let state = tempfile::tempdir_in(scratch_root()).unwrap();
    let mut spec = layer.spec(
        "cat /run/secrets/token; echo; stat -c '%a %u:%g %s' /run/secrets/token /deep/dir/key; \
         grep ' /run/secrets/token ' /proc/self/mountinfo | cut -d' ' -f6,9; \
         echo x > /run/secrets/token 2>/dev/null || echo readonly; \
         ls -A /run/secrets",
    );
    spec.mounts = vec![
        Mount {
            target: "/run/secrets/token".into(),
            kind: MountKind::Secret {
                data: SecretData::new(b"tmpfs-only-secret".to_vec()),
                mode: 0o440,
                uid: 1000,
                gid: 1000,
            },
        },
        Mount {
            target: "/deep/dir/key".into(),
            kind: MountKind::Secret {
                data: SecretData::new(b"k".to_vec()),
                mode: 0o4755,
                uid: 0,
                gid: 0,
            },
        },
    ];
    // The state directory is where a leftover would be: watch it while the step runs.
    let executor = executor().with_state_dir(state.path());
    let mut stdout = String::new();
    let status = executor
        .run(&spec, &mut |stream, data| {
            if stream == Stream::Stdout {
                stdout.push_str(&String::from_utf8_lossy(data));
            }
        })
        .unwrap();
    assert_eq!(status, ExitStatus::Code(0), "{stdout}");
    assert_eq!(
        stdout,
        "tmpfs-only-secret\n\
         440 1000:1000 17\n\
         755 0:0 1\n\
         ro,nosuid,nodev,noexec,relatime tmpfs\n\
         readonly\n\
         token\n"
    );
    // Debug output never shows the bytes.
    assert!(!format!("{spec:?}").contains("tmpfs-only-secret"));
    // Nothing of it in the layer (mount stubs removed) or the state directory.
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn writes_land_in_the_upper_dir_and_deletes_become_whiteouts() {
    require_root!();
    let lower_before = snapshot(busybox());
    let layer = Layer::new();
    stdout_of(
        &layer.spec(
            "mkdir /newdir && echo data > /newdir/file && rm /etc/group && chmod 700 /home/app",
        ),
    );
    assert_eq!(
        std::fs::read_to_string(layer.upper().join("newdir/file")).unwrap(),
        "data\n"
    );
    let whiteout = std::fs::symlink_metadata(layer.upper().join("etc/group")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert_eq!(
        std::fs::metadata(layer.upper().join("home/app"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    // /etc keeps the whiteout; the stubs next to it are gone.
    assert_eq!(
        layer.upper_entries(),
        [
            "etc",
            "etc/group",
            "home",
            "home/app",
            "newdir",
            "newdir/file"
        ]
    );
    assert_eq!(snapshot(busybox()), lower_before, "the lower layer changed");
}

/// Paths, modes, sizes and mtimes of a tree.
fn snapshot(dir: &Path) -> Vec<(String, u32, u64, i64)> {
    let mut paths = Vec::new();
    walk(dir, dir, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(dir.join(&p)).unwrap();
            (p, m.mode(), m.size(), m.mtime())
        })
        .collect()
}

#[test]
fn mount_points_leave_no_trace_in_the_layer() {
    require_root!();
    // A rootfs without /proc, /dev, /sys, /etc/hosts or /etc/resolv.conf, and no /mnt.
    let bare = tempfile::tempdir_in(scratch_root()).unwrap();
    std::fs::create_dir_all(bare.path().join("bin")).unwrap();
    std::fs::copy(
        busybox().join("bin/busybox"),
        bare.path().join("bin/busybox"),
    )
    .unwrap();
    for applet in ["sh", "cat", "ls", "touch"] {
        std::os::unix::fs::symlink("busybox", bare.path().join("bin").join(applet)).unwrap();
    }
    std::fs::create_dir(bare.path().join("etc")).unwrap();

    let layer = Layer::new();
    let mut spec = ExecSpec::new(
        layer.rootfs(vec![bare.path().to_owned()]),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "cat /etc/hosts /etc/resolv.conf >/dev/null && ls /proc/self/fd /sys/kernel /mnt/cache/deep >/dev/null"
                .into(),
        ],
    );
    spec.mounts = vec![Mount {
        target: "/mnt/cache/deep".into(),
        kind: MountKind::Tmpfs {
            size: Some(1 << 20),
        },
    }];
    stdout_of(&spec);
    assert_eq!(
        layer.upper_entries(),
        Vec::<String>::new(),
        "stubs left in the layer"
    );

    // A real change next to a stub stays.
    spec.args[2] = "touch /etc/new".into();
    stdout_of(&spec);
    assert_eq!(layer.upper_entries(), ["etc", "etc/new"]);
}

#[test]
fn etc_hosts_and_resolv_conf_are_generated_read_only() {
    require_root!();
    let layer = Layer::new();
    let mut spec = layer.spec(
        "cat /etc/hosts; test -s /etc/resolv.conf && echo resolv; echo x >> /etc/hosts || echo ro",
    );
    spec.extra_hosts = vec![HostEntry {
        host: "db".into(),
        ip: "10.1.2.3".parse().unwrap(),
    }];
    let out = stdout_of(&spec);
    assert_eq!(
        out,
        "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         10.1.2.3\tdb\nresolv\nro\n"
    );
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
}

#[test]
fn network_none_has_only_loopback_up() {
    require_root!();
    let layer = Layer::new();
    let mut spec = layer.spec("ls /sys/class/net; cat /sys/class/net/lo/flags");
    spec.network = Network::None;
    assert_eq!(stdout_of(&spec), "lo\n0x9\n");
    // The host network is the default.
    let host = stdout_of(&layer.spec("ls /sys/class/net"));
    assert!(host.lines().count() > 1, "host network shows {host:?}");
}

#[test]
fn sandbox_steps_share_one_private_network_with_the_stacks_dns() {
    require_root!();
    let sandbox = Arc::new(NetworkSandbox::start(executor().helper()).unwrap());
    let executor = executor().with_network_sandbox(Arc::clone(&sandbox));
    let script = "readlink /proc/self/ns/net; ls /sys/class/net; cat /sys/class/net/lo/flags; \
                  ip route | grep ^default; grep nameserver /etc/resolv.conf";
    let mut runs = Vec::new();
    for _ in 0..2 {
        let layer = Layer::new();
        let mut spec = layer.spec(script);
        spec.network = Network::Sandbox;
        runs.push(stdout_with(&executor, &spec));
    }
    let host_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let netns = runs[0].lines().next().unwrap();
    assert_ne!(netns, host_netns.to_str().unwrap(), "{}", runs[0]);
    // One namespace for both steps, with the stack's tap device and a default route through it.
    assert_eq!(runs[0], runs[1]);
    assert_eq!(
        runs[0],
        format!("{netns}\nlo\ntap0\n0x9\ndefault via 10.0.2.2 dev tap0 \nnameserver 10.0.2.3\n")
    );
    // Without a sandbox, an executor refuses the mode rather than picking another network.
    let layer = Layer::new();
    let mut spec = layer.spec("true");
    spec.network = Network::Sandbox;
    assert!(matches!(run(&spec).0, Err(ExecError::InvalidSpec(_))));
}

#[test]
fn the_host_filesystem_is_not_visible() {
    require_root!();
    let marker = tempfile::NamedTempFile::new_in("/tmp").unwrap();
    let layer = Layer::new();
    let script = format!("test -e {} && echo visible; ls /", marker.path().display());
    let out = stdout_of(&layer.spec(&script));
    assert!(!out.contains("visible"), "{out}");
    // The image's top level, not the host's (which has /work).
    assert!(out.lines().any(|l| l == "bin"), "{out}");
    assert!(!out.lines().any(|l| l == "work"), "{out}");
}

#[test]
fn the_callers_mount_table_never_changes() {
    require_root!();
    // A mount namespace of this thread's own, with private propagation: other tests running
    // at the same time (a tmpfs for a disk-full store, say) must not show up in the table.
    // SAFETY: only the mount namespace is unshared, and only this test's thread uses it.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.unwrap();
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .unwrap();
    let table = || std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    let before = table();
    for _ in 0..3 {
        let layer = Layer::new();
        stdout_of(&layer.spec("true"));
        let _ = run(&layer.spec("exit 1"));
    }
    assert_eq!(table(), before);
}

#[test]
fn extra_mounts() {
    require_root!();
    let shared = tempfile::tempdir_in(scratch_root()).unwrap();
    std::fs::write(shared.path().join("input"), "from host\n").unwrap();
    let cache = tempfile::tempdir_in(scratch_root()).unwrap();
    let layer = Layer::new();
    let mut spec = layer.spec(
        "cat /src/input; touch /src/nope 2>/dev/null || echo readonly; \
         echo cached > /cache/out; echo t > /tmp/x/file && echo tmpfs",
    );
    spec.mounts = vec![
        Mount {
            target: "/src".into(),
            kind: MountKind::Bind {
                source: shared.path().to_owned(),
                readonly: true,
            },
        },
        Mount {
            target: "/cache".into(),
            kind: MountKind::Bind {
                source: cache.path().to_owned(),
                readonly: false,
            },
        },
        Mount {
            target: "/tmp/x".into(),
            kind: MountKind::Tmpfs { size: None },
        },
    ];
    assert_eq!(stdout_of(&spec), "from host\nreadonly\ntmpfs\n");
    assert_eq!(
        std::fs::read_to_string(cache.path().join("out")).unwrap(),
        "cached\n"
    );
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
}

#[test]
fn a_missing_command_fails_like_runc() {
    require_root!();
    let layer = Layer::new();
    let mut spec = layer.spec("");
    spec.args = vec!["nosuchcommand".into()];
    match run(&spec).0 {
        Err(e @ ExecError::Start(_)) => assert_eq!(
            e.to_string(),
            "unable to start container process: exec: \"nosuchcommand\": executable file not found in $PATH"
        ),
        other => panic!("expected a start error, got {other:?}"),
    }
    spec.args = vec!["/no/such".into()];
    assert!(matches!(run(&spec).0,
        Err(ExecError::Start(m)) if m == "exec: \"/no/such\": stat /no/such: no such file or directory"));
    // The shell form reports it the shell's way: exit 127.
    assert_eq!(
        run(&layer.spec("nosuchcommand")).0.unwrap(),
        ExitStatus::Code(127)
    );
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
}

#[test]
fn stdin_is_dev_null() {
    require_root!();
    let layer = Layer::new();
    assert_eq!(stdout_of(&layer.spec("cat; echo done")), "done\n");
}

#[test]
fn cancelling_kills_the_command_and_still_cleans_up() {
    require_root!();
    let layer = Layer::new();
    let execution = executor()
        .spawn(&layer.spec("echo started; sleep 30"))
        .unwrap();
    let canceller = execution.canceller();
    let started = Instant::now();
    let result = execution.wait(&mut |_, data| {
        if data == b"started\n" {
            canceller.cancel();
        }
    });
    assert!(matches!(result, Err(ExecError::Cancelled)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
}

#[test]
fn many_and_long_lower_layers_use_the_new_mount_api() {
    require_root!();
    let layers = tempfile::tempdir_in(scratch_root()).unwrap();
    // 120 layers of ~80-byte paths: well over the 4 KiB mount(2) option limit. One path is longer
    // than fsconfig's 255-byte string limit.
    let mut lower_dirs = Vec::new();
    for i in 0..120 {
        let dir = layers
            .path()
            .join(format!("layer-{i:03}-{}", "x".repeat(40)));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}")), format!("{i}\n")).unwrap();
        lower_dirs.push(dir);
    }
    let long = layers.path().join("y".repeat(200)).join("z".repeat(100));
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(long.join("from-long"), "long\n").unwrap();
    lower_dirs.push(long);
    lower_dirs.push(busybox().to_owned());
    let layer = Layer::new();
    let mut spec = layer.spec("cat /f0 /f119 /from-long");
    spec.rootfs = layer.rootfs(lower_dirs);
    assert_eq!(stdout_of(&spec), "0\n119\nlong\n");
}

#[test]
fn a_plain_directory_rootfs_is_changed_in_place() {
    require_root!();
    let dir = tempfile::tempdir_in(scratch_root()).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", busybox().display()))
            .arg(dir.path()),
    );
    let before = snapshot(dir.path());
    let spec = ExecSpec::new(
        Rootfs::Dir(dir.path().to_owned()),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo hi > /created; cat /etc/hosts >/dev/null".into(),
        ],
    );
    stdout_of(&spec);
    let mut after = snapshot(dir.path());
    after.retain(|(p, ..)| p != "created");
    assert!(dir.path().join("created").exists());
    // Nothing else changed: the hosts stub is gone and /etc's times were restored.
    assert_eq!(after, before);
}

#[test]
fn rootless_runs_as_an_unprivileged_user() {
    require_root!();
    if !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs setpriv");
        return;
    }
    // Everything the unprivileged run touches belongs to nobody, the layer included: with the
    // single-id map, files of other owners are "nobody" inside and root there cannot write them,
    // just as a real rootless build unpacks its layers as the building user.
    let base = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["upper", "work", "state"] {
        std::fs::create_dir(base.path().join(d)).unwrap();
    }
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(busybox())
            .arg(base.path().join("lower")),
    );
    run_ok(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(base.path()),
    );
    let mut spec = ExecSpec::new(
        Rootfs::Overlay {
            lower_dirs: vec![base.path().join("lower")],
            upper_dir: base.path().join("upper"),
            work_dir: base.path().join("work"),
        },
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "id -u; echo $$; echo x > /made; rm -r /home/app; cat /etc/hosts | head -1; ls /dev/null; \
             test -d /sys/class/net/lo && echo sys"
                .into(),
        ],
    );
    spec.cwd = "/".into();
    let spec_file = base.path().join("spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_stagecraft-exec-helper"))
        .arg("--drive")
        .arg(&spec_file)
        .env("TMPDIR", base.path().join("state"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("cannot create the container namespaces") {
        eprintln!("skipped: unprivileged user namespaces unavailable: {stderr}");
        return;
    }
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        stdout,
        "0\n1\n127.0.0.1\tlocalhost buildkitsandbox\n/dev/null\nsys\n"
    );
    let upper = base.path().join("upper");
    assert_eq!(std::fs::read_to_string(upper.join("made")).unwrap(), "x\n");
    // Deleting a lower directory works rootless (userxattr) and leaves a whiteout.
    let whiteout = std::fs::symlink_metadata(upper.join("home/app")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    let mut entries = Vec::new();
    walk(&upper, &upper, &mut entries);
    entries.sort();
    assert_eq!(entries, ["home", "home/app", "made"]);
    // The state directory is cleaned up.
    assert_eq!(
        std::fs::read_dir(base.path().join("state"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_stub_over_an_upper_whiteout_puts_the_whiteout_back() {
    require_root!();
    // A layer with /etc/hosts, deleted (whited out) in the upper dir by an earlier command.
    let extra = tempfile::tempdir_in(scratch_root()).unwrap();
    std::fs::create_dir(extra.path().join("etc")).unwrap();
    std::fs::write(extra.path().join("etc/hosts"), "image hosts\n").unwrap();
    let layer = Layer::new();
    let mut spec = layer.spec("cat /etc/hosts");
    spec.rootfs = layer.rootfs(vec![extra.path().to_owned(), busybox().to_owned()]);
    // A whiteout as overlayfs writes one (a 0/0 character device), made directly: mounting an
    // overlay here would change this process's mount table under a concurrent test.
    std::fs::create_dir(layer.upper().join("etc")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        layer.upper().join("etc/hosts").as_path(),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    let is_whiteout = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
    };
    assert!(is_whiteout(&layer.upper().join("etc/hosts")));

    // The stub replaces the whiteout while the generated file is mounted on it.
    assert!(stdout_of(&spec).contains("buildkitsandbox"));
    assert!(
        is_whiteout(&layer.upper().join("etc/hosts")),
        "the whiteout was lost"
    );
}

#[test]
fn signals_sent_to_the_helper_reach_the_command() {
    require_root!();
    let layer = Layer::new();
    let spec =
        layer.spec("trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done");
    let spec_file = layer.dir.path().join("spec.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).unwrap();
    // The driver is the caller; its only child is the helper.
    let mut driver = Command::new(env!("CARGO_BIN_EXE_stagecraft-exec-helper"))
        .arg("--drive")
        .arg(&spec_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(driver.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    let children_file = format!("/proc/{0}/task/{0}/children", driver.id());
    let helper: i32 = std::fs::read_to_string(children_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let helper = rustix::process::Pid::from_raw(helper).unwrap();
    rustix::process::kill_process(helper, rustix::process::Signal::TERM).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(driver.wait().unwrap().code(), Some(7));
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
}

#[test]
fn scratch_with_a_bind_mounted_binary() {
    require_root!();
    // FROM scratch: no layers at all; the shell comes in as a single-file bind mount.
    let layer = Layer::new();
    let mut spec = ExecSpec::new(
        layer.rootfs(vec![]),
        vec![
            "/busybox".into(),
            "sh".into(),
            "-c".into(),
            "echo hi > /out; /busybox id -u".into(),
        ],
    );
    spec.mounts = vec![Mount {
        target: "/busybox".into(),
        kind: MountKind::Bind {
            source: busybox().join("bin/busybox"),
            readonly: true,
        },
    }];
    assert_eq!(stdout_of(&spec), "0\n");
    assert_eq!(layer.upper_entries(), ["out"]);
}

#[test]
fn symlinks_in_the_image_cannot_reach_the_host() {
    require_root!();
    // The image's /etc points at a directory that exists on the host but not in the image.
    let host_dir = tempfile::tempdir_in("/tmp").unwrap();
    let evil = tempfile::tempdir_in(scratch_root()).unwrap();
    std::os::unix::fs::symlink(host_dir.path(), evil.path().join("etc")).unwrap();
    let layer = Layer::new();
    let mut spec = layer.spec("true");
    spec.rootfs = layer.rootfs(vec![evil.path().to_owned(), busybox().to_owned()]);
    match run(&spec).0 {
        Err(ExecError::Setup(message)) => {
            assert!(message.contains("dangling symlink"), "{message}")
        }
        other => panic!("expected a set-up error, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(host_dir.path()).unwrap().count(), 0);
    assert_eq!(layer.upper_entries(), Vec::<String>::new());

    // /etc -> / resolves to the image's own root: the mount points land there, and go again.
    std::fs::remove_file(evil.path().join("etc")).unwrap();
    std::os::unix::fs::symlink("/", evil.path().join("etc")).unwrap();
    spec.args[2] = "cat /etc/hosts | head -1".into();
    assert_eq!(stdout_of(&spec), "127.0.0.1\tlocalhost buildkitsandbox\n");
    assert_eq!(layer.upper_entries(), Vec::<String>::new());
}

#[test]
fn ulimits_and_the_shm_size_reach_the_command() {
    require_root!();
    let layer = Layer::new();
    // Defaults: the caller's limits, BuildKit's 64 MiB /dev/shm.
    let defaults = stdout_of(&layer.spec("df -k /dev/shm | tail -n 1"));
    assert!(defaults.contains(" 65536 "), "{defaults}");
    let mut spec = layer.spec("ulimit -Sn; ulimit -Hn; ulimit -Su; df -k /dev/shm | tail -n 1");
    spec.ulimits = vec![
        "nofile=100:200".parse().unwrap(),
        "nproc=50".parse().unwrap(),
    ];
    spec.shm_size = Some(128 << 20);
    let out = stdout_of(&spec);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["100", "200", "50"], "{out}");
    assert!(lines[3].contains(" 131072 "), "{out}");
    // A hard limit above what the kernel allows is refused before anything runs.
    let mut spec = layer.spec("echo ran");
    spec.ulimits = vec!["nofile=1:99999999999".parse().unwrap()];
    let (result, out) = run(&spec);
    let error = result.unwrap_err().to_string();
    assert!(error.contains("setrlimit(nofile=1:99999999999)"), "{error}");
    assert!(!out.stdout.contains("ran"));
}
