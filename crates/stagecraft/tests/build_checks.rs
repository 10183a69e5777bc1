//! BuildKit's build checks run with every build: warnings by default, errors with
//! `# check=error=true`, alone with `--check`; and `sharing=locked` cache mounts serialise
//! parallel stages.

mod common;

use common::{Machine, busybox_layout};

#[test]
fn checks_warn_during_builds_fail_with_error_true_and_run_alone_with_check() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let warned = Machine::new(
        dir.path(),
        "a",
        &busybox,
        &[("Dockerfile", "FROM busybox:latest AS Build\nCMD echo hi\n")],
    );
    let (_, stderr) = warned.build(&[]);
    assert!(stderr.contains("JSONArgsRecommended"), "{stderr}");
    assert!(stderr.contains("StageNameCasing"), "{stderr}");

    warned
        .stagecraft()
        .args(["build", "--check"])
        .arg(&warned.context)
        .assert()
        .code(1)
        .stdout("");

    let strict = Machine::new(
        dir.path(),
        "b",
        &busybox,
        &[(
            "Dockerfile",
            "# check=error=true\nFROM busybox:latest\nRUN echo should-not-run\nCMD echo hi\n",
        )],
    );
    strict
        .stagecraft()
        .args(["build", "--progress=plain"])
        .arg(&strict.context)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("JSONArgsRecommended"))
        .stderr(predicates::str::contains("should-not-run").not());

    let clean = Machine::new(
        dir.path(),
        "c",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest\nCMD [\"echo\", \"hi\"]\n",
        )],
    );
    clean
        .stagecraft()
        .args(["build", "--check"])
        .arg(&clean.context)
        .assert()
        .success()
        .stderr(predicates::str::contains("no warnings found"));
}

#[test]
fn locked_cache_mounts_serialise_parallel_stages() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    // Each stage claims the cache with mkdir (which fails if the other holds it), works for a
    // moment, then releases it. Run at the same time, one of them would fail.
    let step = |name: &str| {
        format!(
            "FROM busybox:latest AS {name}\n\
             RUN --mount=type=cache,target=/cache,id=shared,sharing=locked \\\n    \
                 mkdir /cache/busy && sleep 1 && rmdir /cache/busy && echo {name} > /done\n"
        )
    };
    let dockerfile = format!(
        "{}{}FROM busybox:latest\nCOPY --from=one /done /one\nCOPY --from=two /done /two\n",
        step("one"),
        step("two")
    );
    let machine = Machine::new(dir.path(), "m", &busybox, &[("Dockerfile", &dockerfile)]);
    let (_, stderr) = machine.build(&[]);
    assert!(stderr.contains("4 steps run"), "{stderr}");
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn tmpfs_mounts_network_none_and_copy_exclude() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let dockerfile = "FROM busybox:latest\n\
        RUN --mount=type=tmpfs,target=/scratch,size=1m \\\n    \
            echo temp > /scratch/file && grep -q tmpfs /proc/mounts && echo used-tmpfs > /tmpfs.txt\n\
        RUN --network=none ls /sys/class/net > /interfaces.txt\n\
        COPY --exclude=*.log --exclude=secret/ . /ctx/\n";
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            ("Dockerfile", dockerfile),
            ("keep.txt", "k"),
            ("debug.log", "l"),
            ("secret/key", "s"),
        ],
    );
    machine.build(&["-t", "mounts:net"]);
    let rootfs = dir.path().join("rootfs");
    machine
        .stagecraft()
        .args(["save", "--format", "dir", "mounts:net", "-o"])
        .arg(&rootfs)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("tmpfs.txt")).unwrap(),
        "used-tmpfs\n"
    );
    // The tmpfs contents never reach the layer.
    assert!(!rootfs.join("scratch/file").exists());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("interfaces.txt")).unwrap(),
        "lo\n"
    );
    assert!(rootfs.join("ctx/keep.txt").is_file());
    assert!(!rootfs.join("ctx/debug.log").exists());
    assert!(!rootfs.join("ctx/secret").exists());
}

#[test]
fn cache_mounts_are_seeded_from_a_stage() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let dockerfile = "FROM busybox:latest AS seed\n\
        RUN mkdir -p /seed && echo seeded > /seed/file\n\
        FROM busybox:latest\n\
        RUN --mount=type=cache,target=/c,id=seeded,from=seed,source=/seed cat /c/file > /out\n";
    let machine = Machine::new(dir.path(), "m", &busybox, &[("Dockerfile", dockerfile)]);
    machine.build(&["-t", "seeded:1"]);
    let rootfs = dir.path().join("rootfs");
    machine
        .stagecraft()
        .args(["save", "--format", "dir", "seeded:1", "-o"])
        .arg(&rootfs)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("out")).unwrap(),
        "seeded\n"
    );
}
