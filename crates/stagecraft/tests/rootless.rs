//! Rootless builds, end to end. The tests run as root (as CI does) and drop privileges themselves:
//! the stagecraft binary runs through `setpriv` as an unprivileged user whose home, and so whose
//! default store, is in the test's temporary directory.
//!
//! Two users: `nobody`, who has no `/etc/subuid` range (a single-id map), and a dedicated test
//! user with ranges, created for the tests and removed afterwards (see [`SubidUser`]). Nothing is
//! skipped: a machine that cannot run them fails them, saying why.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The dedicated test user, and its subordinate ids (well away from the usual 100000).
const SUBID_USER: &str = "stagecraft-rootless-test";
const SUBID_START: u32 = 2_000_000;
const SUBID_COUNT: u32 = 65536;

/// Multi-stage: a RUN deleting a base file (a whiteout) and replacing a base directory (an opaque
/// directory), one without network (a network namespace of its own: only `lo` in its sysfs), one
/// in the build's network sandbox (`lo` and the stack's `tap0`, not the host's interfaces: a
/// rootless build that fell back to the host's network would differ from root's), a COPY --from
/// of their results, and the same deletions again in the final stage.
const DOCKERFILE: &str = "\
FROM busybox:latest AS build
RUN echo built > /out.txt && rm /bin/vi && rm -rf /home && mkdir -p /home/fresh && echo new > /home/fresh/file
RUN --network=none ls /sys/class/net > /home/fresh/net
RUN ls /sys/class/net > /home/fresh/sandbox-net && grep nameserver /etc/resolv.conf >> /home/fresh/sandbox-net
FROM busybox:latest
COPY --from=build /out.txt /home /srv/
RUN rm /bin/vi && rm -rf /usr && mkdir -p /usr/bin && echo replaced > /usr/bin/only
";

/// [`DOCKERFILE`] with files of owners other than root: only a subordinate id range can map them.
const DOCKERFILE_OWNERS: &str = "\
FROM busybox:latest AS build
RUN echo built > /out.txt && rm /bin/vi && rm -rf /home && mkdir -p /home/fresh && echo new > /home/fresh/file
FROM busybox:latest
COPY --from=build /out.txt /home /srv/
COPY --chown=1000:1000 owned.txt /srv/owned.txt
USER app
RUN id -u > /tmp/uid && cp /srv/owned.txt /tmp/copied
";

/// A temporary directory with the stagecraft binary, the busybox layout and a context, all
/// readable by anyone, and a home directory for the unprivileged user.
struct Sandbox {
    dir: tempfile::TempDir,
    stagecraft: PathBuf,
    busybox: PathBuf,
}

/// Who runs stagecraft: root, or a user by name.
#[derive(Clone, Copy)]
enum As<'a> {
    Root,
    User(&'a str),
}

impl Sandbox {
    fn new() -> Sandbox {
        assert!(
            is_root(),
            "the rootless tests run as root and drop privileges themselves (CI runs as root)"
        );
        let dir = tempfile::Builder::new()
            .prefix("stagecraft-rootless-")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for ancestor in dir.path().ancestors().skip(1) {
            let mode = fs::metadata(ancestor).unwrap().mode();
            assert!(
                mode & 0o001 != 0,
                "{} (mode {mode:o}) is not traversable by other users: point TMPDIR elsewhere",
                ancestor.display()
            );
        }
        // A copy, so the user can run it whatever the permissions of the target directory.
        let stagecraft = dir.path().join("stagecraft");
        fs::copy(env!("CARGO_BIN_EXE_stagecraft"), &stagecraft).unwrap();
        let busybox = common::busybox_layout(dir.path());
        Sandbox {
            dir,
            stagecraft,
            busybox,
        }
    }

    /// A context directory `name` holding a Dockerfile and `owned.txt`.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let context = self.dir.path().join(name);
        fs::create_dir_all(&context).unwrap();
        fs::write(context.join("Dockerfile"), dockerfile).unwrap();
        fs::write(context.join("owned.txt"), "owned by 1000\n").unwrap();
        context
    }

    /// The home directory of `who` (owned by it), created on first use.
    fn home(&self, who: As<'_>) -> PathBuf {
        let name = match who {
            As::Root => "root",
            As::User(user) => user,
        };
        let home = self.dir.path().join("home").join(name);
        if !home.exists() {
            fs::create_dir_all(&home).unwrap();
            fs::set_permissions(home.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
            if let As::User(user) = who {
                run_ok(Command::new("chown").arg(format!("{user}:")).arg(&home));
            }
        }
        home
    }

    /// Where the store of `who` is: `$XDG_DATA_HOME/stagecraft`, the default for a user.
    fn store(&self, who: As<'_>) -> PathBuf {
        self.home(who).join(".local/share/stagecraft")
    }

    /// stagecraft as `who`, with a clean environment: a user gets no STAGECRAFT_ROOT and so its
    /// default store; root gets one in its home here.
    fn stagecraft(&self, who: As<'_>, args: &[&str]) -> Output {
        let home = self.home(who);
        let mut command = match who {
            As::Root => {
                let mut command = Command::new(&self.stagecraft);
                command.env("STAGECRAFT_ROOT", self.store(who));
                command
            }
            As::User(user) => {
                let gid = run_ok(Command::new("id").args(["-g", user])).stdout;
                let mut command = Command::new("setpriv");
                command
                    .args(["--reuid", user, "--regid"])
                    .arg(String::from_utf8_lossy(&gid).trim())
                    .args(["--clear-groups", "--"])
                    .arg(&self.stagecraft);
                command
            }
        };
        command
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .current_dir(&home);
        command.output().unwrap()
    }

    /// Loads busybox into the store of `who`.
    fn load_busybox(&self, who: As<'_>) {
        let busybox = self.busybox.to_str().unwrap();
        succeeds(&self.stagecraft(who, &["load", "--tag", "busybox:latest", "-i", busybox]));
    }

    /// Builds `context` as `who`, tagged `tag`.
    fn build(&self, who: As<'_>, context: &Path, tag: &str) -> Output {
        self.stagecraft(
            who,
            &[
                "build",
                "--progress=plain",
                "-t",
                tag,
                context.to_str().unwrap(),
            ],
        )
    }

    /// `stagecraft inspect` as `who`: (config digest, diff IDs).
    fn inspect(&self, who: As<'_>, tag: &str) -> (String, Vec<String>) {
        let output = self.stagecraft(who, &["inspect", tag]);
        succeeds(&output);
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let diff_ids = json["config"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect();
        (json["config_digest"].as_str().unwrap().to_owned(), diff_ids)
    }

    /// The entries of the layer `diff_id` of `tag` in the store of `who`: (path, uid, gid).
    fn layer_entries(&self, who: As<'_>, tag: &str, diff_id: &str) -> Vec<(String, u64, u64)> {
        common::tar_headers(&self.layer_tar(who, tag, diff_id))
            .into_iter()
            .map(|(path, header)| (path, header.uid().unwrap(), header.gid().unwrap()))
            .collect()
    }

    /// The layer `diff_id` of `tag` as `who` saves it (a docker archive keeps a layer as it is
    /// stored: a built layer is a plain tar, its digest its diff ID), in a file: the way to a
    /// layer's bytes whether or not the store holds them as a file (a rootful store records a
    /// built layer as a lazy blob, written only when something needs its bytes).
    fn layer_tar(&self, who: As<'_>, tag: &str, diff_id: &str) -> PathBuf {
        let hex = diff_id.strip_prefix("sha256:").unwrap();
        let saved = self.home(who).join(format!("saved-{hex}.tar"));
        let path = saved.to_str().unwrap();
        succeeds(&self.stagecraft(who, &["save", tag, "--format", "docker", "-o", path]));
        let layer = self.dir.path().join(format!("layer-{hex}.tar"));
        let mut archive = tar::Archive::new(fs::File::open(&saved).unwrap());
        let mut entry = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap() == Path::new(&format!("blobs/sha256/{hex}")))
            .expect("the layer in the saved archive");
        std::io::copy(&mut entry, &mut fs::File::create(&layer).unwrap()).unwrap();
        layer
    }
}

/// The test user with subordinate id ranges, for the duration of one test: created (or reused,
/// when a killed run left it behind) under an exclusive lock, held until the test ends and removes
/// it. The tests that use it run one at a time, so none sees another's files as its own leaks.
struct SubidUser {
    _lock: fs::File,
}

/// Serialises the tests that use [`SUBID_USER`] (they run in separate processes).
const SUBID_LOCK: &str = "/run/lock/stagecraft-rootless-test.lock";

impl SubidUser {
    fn get() -> SubidUser {
        fs::create_dir_all(Path::new(SUBID_LOCK).parent().unwrap()).unwrap();
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(SUBID_LOCK)
            .unwrap();
        lock.lock().unwrap();
        let exists = Command::new("id")
            .arg(SUBID_USER)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            run_ok(Command::new("useradd").args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SUBID_USER,
            ]));
        }
        let line = format!("{SUBID_USER}:{SUBID_START}:{SUBID_COUNT}");
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = fs::read_to_string(file).unwrap_or_default();
            if !text.lines().any(|l| l == line) {
                let separator = if text.is_empty() || text.ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                fs::write(file, format!("{text}{separator}{line}\n")).unwrap();
            }
        }
        SubidUser { _lock: lock }
    }

    fn uid(&self) -> u32 {
        let output = run_ok(Command::new("id").args(["-u", SUBID_USER]));
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SubidUser {
    fn drop(&mut self) {
        let prefix = format!("{SUBID_USER}:");
        for file in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = fs::read_to_string(file) {
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&prefix))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = fs::write(file, kept);
            }
        }
        let _ = Command::new("userdel").arg(SUBID_USER).status();
    }
}

fn is_root() -> bool {
    let output = run_ok(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn succeeds(output: &Output) {
    assert!(
        output.status.success(),
        "stagecraft failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Builds `dockerfile` as root and as `user`, each in its own store, and checks that both give
/// the same image config and layers; returns the diff IDs.
fn same_image_as_root(sandbox: &Sandbox, user: &str, dockerfile: &str) -> Vec<String> {
    let context = sandbox.context(&format!("context-{user}"), dockerfile);
    let tag = format!("rootless-test-{user}:latest");
    for who in [As::Root, As::User(user)] {
        sandbox.load_busybox(who);
        let output = sandbox.build(who, &context, &tag);
        succeeds(&output);
        // Both in a network sandbox (the build's user namespace owns a rootless one).
        assert!(
            !stderr(&output).contains("network sandbox could not start"),
            "{}",
            stderr(&output)
        );
    }
    let (root_config, root_layers) = sandbox.inspect(As::Root, &tag);
    let (user_config, user_layers) = sandbox.inspect(As::User(user), &tag);
    assert_eq!(
        user_layers, root_layers,
        "layers built rootless and as root"
    );
    assert_eq!(
        user_config, root_config,
        "configs built rootless and as root"
    );
    let layout = fs::read_to_string(sandbox.store(As::User(user)).join("layout.json")).unwrap();
    assert!(
        layout.contains(r#""overlay_xattr":"user""#),
        "the user's default store is its own, and rootless: {layout}"
    );
    user_layers
}

/// The whiteout and the opaque directory of the last RUN are in its layer.
fn assert_deletions_recorded(entries: &[(String, u64, u64)]) {
    let names: Vec<&str> = entries.iter().map(|(path, ..)| path.as_str()).collect();
    assert!(names.contains(&"bin/.wh.vi"), "whiteout missing: {names:?}");
    assert!(
        names.contains(&"usr/.wh..wh..opq"),
        "opaque marker missing: {names:?}"
    );
}

#[test]
fn rootless_with_subordinate_ids_builds_what_root_builds() {
    let user = SubidUser::get();
    let sandbox = Sandbox::new();
    let layers = same_image_as_root(&sandbox, SUBID_USER, DOCKERFILE);
    let tag = format!("rootless-test-{SUBID_USER}:latest");
    assert_deletions_recorded(&sandbox.layer_entries(As::User(SUBID_USER), &tag, &layers[2]));

    // Owners other than root: `COPY --chown` and a RUN as `app`.
    let context = sandbox.context("context-owners", DOCKERFILE_OWNERS);
    for who in [As::Root, As::User(SUBID_USER)] {
        succeeds(&sandbox.build(who, &context, "owners:latest"));
    }
    let (root_config, root_layers) = sandbox.inspect(As::Root, "owners:latest");
    let (user_config, user_layers) = sandbox.inspect(As::User(SUBID_USER), "owners:latest");
    assert_eq!(user_layers, root_layers);
    assert_eq!(user_config, root_config);
    let copied = sandbox.layer_entries(As::User(SUBID_USER), "owners:latest", &user_layers[2]);
    assert!(
        copied.contains(&("srv/owned.txt".to_owned(), 1000, 1000)),
        "COPY --chown=1000:1000 gives a file owned by 1000: {copied:?}"
    );
    let ran = sandbox.layer_entries(As::User(SUBID_USER), "owners:latest", &user_layers[3]);
    assert!(
        ran.contains(&("tmp/copied".to_owned(), 1000, 1000)),
        "a RUN as app (1000) writes files owned by 1000: {ran:?}"
    );

    // Prune and verify run rootless too: they remove and re-hash files of subordinate owners.
    succeeds(&sandbox.stagecraft(As::User(SUBID_USER), &["rmi", "owners:latest"]));
    succeeds(&sandbox.stagecraft(As::User(SUBID_USER), &["verify"]));
    succeeds(&sandbox.stagecraft(As::User(SUBID_USER), &["prune", "--all"]));
    drop(user);
}

#[test]
fn rootless_with_a_single_id_builds_what_root_builds_and_refuses_other_owners() {
    let sandbox = Sandbox::new();
    let layers = same_image_as_root(&sandbox, "nobody", DOCKERFILE);
    let tag = "rootless-test-nobody:latest";
    assert_deletions_recorded(&sandbox.layer_entries(As::User("nobody"), tag, &layers[2]));

    // Only root is mapped: another owner is an error that says how to map more, never a file
    // quietly given to root.
    for (name, dockerfile, what) in [
        (
            "chown",
            "FROM busybox:latest\nCOPY --chown=1000:1000 owned.txt /owned.txt\n",
            "uid 1000 or gid 1000 is not mapped in this user namespace",
        ),
        (
            "user",
            "FROM busybox:latest\nUSER app\nRUN true\n",
            "resolves to uid 1000 gid 1000, which this rootless build's user namespace does not map",
        ),
    ] {
        let context = sandbox.context(&format!("context-{name}"), dockerfile);
        let output = sandbox.build(As::User("nobody"), &context, "refused:latest");
        let message = stderr(&output);
        assert!(!output.status.success(), "{name}: built anyway:\n{message}");
        assert!(
            message.contains(what) && message.contains("usermod --add-subuids"),
            "{name}: the error explains and teaches:\n{message}"
        );
    }
}

#[test]
fn rootless_steps_cannot_reach_the_host_and_builds_write_only_their_store() {
    let user = SubidUser::get();
    let uid = user.uid();
    let sandbox = Sandbox::new();
    let marker = sandbox.dir.path().join("escaped");
    // Each attempt prints a word when it succeeds (`printf`, so that the word is not in the
    // command line, which the log shows). The marker's directory exists on the host
    // only: inside, creating it makes a directory in the layer.
    let dockerfile = format!(
        "FROM busybox:latest\n\
         RUN echo x > /proc/sysrq-trigger && printf WROTE-%s SYSRQ; \
             echo x > /proc/1/root{marker} && printf WROTE-%s MARKER; \
             mkdir -p /mnt && mount -t tmpfs none /mnt && printf MOUN%s TED; \
             mkdir -p {dir} && touch {marker}; \
             ls /proc | grep -c '^[0-9]' > /tmp/pids\n",
        marker = marker.display(),
        dir = sandbox.dir.path().display(),
    );
    let context = sandbox.context("context-escape", &dockerfile);
    sandbox.load_busybox(As::User(SUBID_USER));
    let before = owned_outside(uid, sandbox.dir.path());
    let output = sandbox.build(As::User(SUBID_USER), &context, "escape:latest");
    succeeds(&output);
    let log = stderr(&output);
    for forbidden in ["WROTE-SYSRQ", "WROTE-MARKER", "MOUNTED"] {
        assert!(!log.contains(forbidden), "{forbidden}:\n{log}");
    }
    assert!(
        !marker.exists(),
        "a host path written from a RUN step: {}",
        marker.display()
    );
    let after = owned_outside(uid, sandbox.dir.path());
    assert_eq!(
        after, before,
        "files of the user or its subordinate ids outside its store"
    );
    // The step's own view: its /tmp/pids went into the layer, and it saw only its own processes.
    let (_, layers) = sandbox.inspect(As::User(SUBID_USER), "escape:latest");
    let layer = sandbox.layer_tar(As::User(SUBID_USER), "escape:latest", &layers[1]);
    let mut archive = tar::Archive::new(fs::File::open(layer).unwrap());
    let pids = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap() == Path::new("tmp/pids"))
        .map(|mut e| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            text.trim().parse::<u32>().unwrap()
        })
        .expect("tmp/pids in the layer");
    assert!(pids <= 5, "the step saw {pids} processes: the host's?");
    drop(user);
}

#[test]
fn rootless_steps_are_filtered_and_read_secrets_from_a_tmpfs() {
    let sandbox = Sandbox::new();
    // Each check prints a word when it holds (`printf`, so the word is not in the command line).
    let context = sandbox.context(
        "context-sandbox",
        "FROM busybox:latest\n\
         RUN --mount=type=secret,id=tok \
             grep -q '^Seccomp:.2' /proc/self/status && printf FILT%s ERED; \
             unshare -U true 2>/dev/null && printf NESTED-%s USERNS; \
             test \"$(wc -c < /run/secrets/tok)\" -eq 21 && printf SECRET-%s READ; \
             grep ' /run/secrets/tok ' /proc/self/mountinfo | grep -q ' - tmpfs ' && printf ON-%s TMPFS; \
             true\n",
    );
    let secret = sandbox.dir.path().join("secret.txt");
    fs::write(&secret, "rootless-secret-value").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    sandbox.load_busybox(As::User("nobody"));
    let output = sandbox.stagecraft(
        As::User("nobody"),
        &[
            "build",
            "--progress=plain",
            "--secret",
            &format!("id=tok,src={}", secret.display()),
            context.to_str().unwrap(),
        ],
    );
    succeeds(&output);
    let log = stderr(&output);
    for word in ["FILTERED", "SECRET-READ", "ON-TMPFS"] {
        assert!(log.contains(word), "{word} missing:\n{log}");
    }
    assert!(!log.contains("NESTED-USERNS"), "{log}");
    // The store never held the secret.
    let found = Command::new("grep")
        .args(["-rl", "rootless-secret-value"])
        .arg(sandbox.store(As::User("nobody")))
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
}

/// Files outside `sandbox` in the places a process could write to (temporary directories,
/// `/var`, `/run`, the user's would-be home) owned by `uid` or one of its subordinate ids.
fn owned_outside(uid: u32, sandbox: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for place in ["/tmp", "/var/tmp", "/dev/shm", "/run", "/var/lib", "/home"] {
        if !Path::new(place).exists() {
            continue;
        }
        let output = Command::new("find")
            .arg(place)
            .args(["-path", sandbox.to_str().unwrap(), "-prune", "-o", "("])
            .args(["-uid", &uid.to_string(), "-o"])
            .args(["-uid", &format!("+{}", SUBID_START - 1)])
            .args([")", "-print"])
            .output()
            .unwrap();
        found.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(PathBuf::from),
        );
    }
    found.sort();
    found
}
