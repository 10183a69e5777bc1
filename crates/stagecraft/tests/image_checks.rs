//! The image checks on real builds: after every build (warnings that never fail it,
//! `--no-image-checks` to keep quiet) and with `lint --image` on a stored image.

mod common;

use common::{Machine, busybox_layout};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Puts a copy of a host file (following its links) into the machine's context, executable.
fn host_file(machine: &Machine, name: &str, host: &str) {
    let path = machine.context.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(host, &path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The stderr of a successful build, with `extra` flags.
fn build(machine: &Machine, extra: &[&str]) -> String {
    machine.build(extra).1
}

/// `stagecraft lint --image IMAGE --format FORMAT`: (exit code, stdout).
fn lint_image(machine: &Machine, image: &str, format: &str) -> (i32, String) {
    let output = machine
        .stagecraft()
        .args(["lint", "--image", image, "--format", format])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn a_glibc_program_on_busybox_misses_its_loader_until_the_libraries_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
        )],
    );
    // Debian's /bin/true: dynamically linked against glibc.
    host_file(&machine, "app", "/bin/true");
    let stderr = build(&machine, &["-t", "app:broken"]);
    assert!(
        stderr.contains(
            "Dockerfile:2:1: warning[MissingSharedLibrary]: /app needs the program interpreter /lib64/ld-linux-x86-64.so.2 and libc.so.6, which are not in the image"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("CGO_ENABLED=0"), "{stderr}");

    // The same program with glibc's loader and C library copied where Debian keeps them.
    fs::write(
        machine.context.join("Dockerfile"),
        "FROM busybox:latest\n\
         COPY lib/ /lib/x86_64-linux-gnu/\n\
         RUN mkdir /lib64 && ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2\n\
         COPY app /app\n\
         ENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    host_file(
        &machine,
        "lib/ld-linux-x86-64.so.2",
        "/lib64/ld-linux-x86-64.so.2",
    );
    host_file(&machine, "lib/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6");
    let stderr = build(&machine, &["-t", "app:fixed"]);
    assert!(!stderr.contains("MissingSharedLibrary"), "{stderr}");
    assert!(!stderr.contains("checks of the built image"), "{stderr}");

    // `lint --image` finds the same without the Dockerfile: the layer and its history entry.
    let (code, json) = lint_image(&machine, "app:broken", "json");
    assert_eq!(code, 0, "warnings do not fail lint by default: {json}");
    let findings: serde_json::Value = serde_json::from_str(&json).unwrap();
    let finding = &findings[0];
    assert_eq!(finding["rule"], "MissingSharedLibrary", "{json}");
    assert_eq!(finding["file"], "app:broken");
    assert_eq!(finding["line"], 0);
    assert_eq!(finding["layer"], 1);
    let message = finding["message"].as_str().unwrap();
    assert!(message.contains("(layer 1: COPY app /app"), "{message}");
    assert_eq!(lint_image(&machine, "app:fixed", "json").1.trim(), "[]");
}

#[test]
fn entrypoint_user_and_permissions_after_a_build_and_with_lint_image() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(
        dir.path(),
        "m",
        &busybox,
        &[
            (
                "Dockerfile",
                "FROM busybox:latest\n\
                 COPY start.sh /start.sh\n\
                 RUN chmod 4755 /bin/busybox && mkdir -m 777 /data && chmod +x /start.sh\n\
                 USER ghost\n\
                 ENTRYPOINT [\"/start.sh\"]\n",
            ),
            ("start.sh", "#!/bin/bash\nexec sleep infinity\n"),
        ],
    );
    let stderr = build(&machine, &["-t", "checked"]);
    for expected in [
        "Dockerfile:3:1: info[WorldWritableOrSetuid]: adds setuid or setgid files: /bin/busybox (4755)",
        "Dockerfile:3:1: info[WorldWritableOrSetuid]: adds world-writable directories without the sticky bit: /data (0777)",
        "Dockerfile:4:1: warning[UserNotInImage]: USER ghost: user ghost is not in the image's /etc/passwd",
        "Dockerfile:5:1: warning[EntrypointNotFound]: ENTRYPOINT runs /start.sh: /start.sh starts with #!/bin/bash, which is not in the image (added at line 2)",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    // Never a failure, and quiet on request.
    let quiet = build(&machine, &["--no-image-checks"]);
    assert!(!quiet.contains("EntrypointNotFound"), "{quiet}");

    // The image, built FROM the first one, adds nothing of its own: the setuid busybox and
    // world-writable /data are its base image's (which this store's build recorded).
    fs::write(
        machine.context.join("Dockerfile"),
        "FROM checked\nUSER nobody\nENTRYPOINT [\"/bin/sh\"]\n",
    )
    .unwrap();
    let stderr = build(&machine, &["-t", "derived"]);
    assert!(!stderr.contains("checks of the built image"), "{stderr}");
    let (_, text) = lint_image(&machine, "derived", "text");
    assert_eq!(text, "No problems found.\n");

    // `lint --image` of the first image: the same findings, named by the layer's history.
    let (code, text) = lint_image(&machine, "checked", "text");
    assert_eq!(code, 0);
    assert!(
        text.contains("checked: warning[UserNotInImage]: USER ghost: user ghost is not in the image's /etc/passwd; containers will fail to start (set by USER ghost)"),
        "{text}"
    );
    assert!(
        text.contains("checked: info[WorldWritableOrSetuid]: adds setuid or setgid files: /bin/busybox (4755) (layer 2: RUN /bin/sh -c chmod 4755"),
        "{text}"
    );
    let (code, _) = machine
        .stagecraft()
        .args(["lint", "--image", "checked", "--error-on", "warning"])
        .output()
        .map(|o| (o.status.code(), o.stdout))
        .unwrap();
    assert_eq!(code, Some(1));

    // SARIF: the image alone as the location (no line), the rules' pages as help.
    let (_, sarif) = lint_image(&machine, "checked", "sarif");
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let entrypoint = rules
        .iter()
        .find(|r| r["id"] == "EntrypointNotFound")
        .unwrap();
    assert!(
        entrypoint["help"]["markdown"]
            .as_str()
            .unwrap()
            .starts_with("# EntrypointNotFound\n")
    );
    let location = &run["results"][0]["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "checked");
    assert!(location.get("region").is_none(), "{location}");
}

#[test]
fn lint_image_needs_an_image_of_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = busybox_layout(dir.path());
    let machine = Machine::new(dir.path(), "m", &busybox, &[]);
    machine
        .stagecraft()
        .args(["lint", "--image", "nowhere:1"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "nowhere:1 is not an image in the store",
        ));
    // The base image alone is fine.
    let (code, text) = lint_image(&machine, "busybox:latest", "text");
    assert_eq!((code, text.as_str()), (0, "No problems found.\n"));
    assert!(Path::new(&machine.root).exists());
}

#[test]
fn the_rule_list_and_pages_include_the_image_checks() {
    let output = assert_cmd::Command::cargo_bin("stagecraft")
        .unwrap()
        .args(["lint", "--list-rules"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&output.stdout);
    for rule in [
        "MissingSharedLibrary",
        "EntrypointNotFound",
        "UserNotInImage",
        "WorldWritableOrSetuid",
    ] {
        let line = list.lines().find(|l| l.starts_with(rule)).unwrap();
        assert!(line.contains(" image "), "{line}");
    }
    assert_cmd::Command::cargo_bin("stagecraft")
        .unwrap()
        .args(["lint", "--explain", "missingsharedlibrary"])
        .assert()
        .success()
        .stdout(predicates::str::starts_with("# MissingSharedLibrary\n"));
}
