//! The image checks on small images written by the tests: layer directories stacked into a
//! `LayeredFs`, as a build leaves them, with a config.

use stagecraft_image::{ImageConfig, RuntimeConfig};
use stagecraft_imagefs::LayeredFs;
use stagecraft_imagefs::elf::testing::{Entry, elf64};
use stagecraft_lint::{BuiltFrom, CheckedImage, Finding, LayerSource, LintOptions, check_image};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// An image under construction: layer directories in a temporary directory.
struct TestImage {
    dir: tempfile::TempDir,
    layers: usize,
    config: ImageConfig,
    /// Which layers are the build's own (the rest are the base image's).
    own_from: usize,
}

impl TestImage {
    fn new() -> Self {
        let config = ImageConfig {
            architecture: "amd64".to_owned(),
            os: "linux".to_owned(),
            config: RuntimeConfig {
                env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_owned()],
                ..RuntimeConfig::default()
            },
            ..ImageConfig::default()
        };
        TestImage {
            dir: tempfile::tempdir().unwrap(),
            layers: 0,
            config,
            own_from: 0,
        }
    }

    /// Starts a new layer on top; what is written next goes into it.
    fn layer(&mut self) -> &mut Self {
        self.layers += 1;
        fs::create_dir_all(self.top()).unwrap();
        self
    }

    fn top(&self) -> PathBuf {
        self.dir.path().join(self.layers.to_string())
    }

    fn full(&self, path: &str) -> PathBuf {
        let full = self.top().join(path.trim_start_matches('/'));
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        full
    }

    fn file(&mut self, path: &str, content: impl AsRef<[u8]>, mode: u32) -> &mut Self {
        let full = self.full(path);
        fs::write(&full, content).unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let full = self.full(path);
        fs::create_dir_all(&full).unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn link(&mut self, path: &str, target: &str) -> &mut Self {
        symlink(target, self.full(path)).unwrap();
        self
    }

    /// A copy of a file of the host (following its symlinks), as a context `COPY` would make.
    fn host_file(&mut self, path: &str, host: &str) -> &mut Self {
        let bytes = fs::read(host).unwrap();
        self.file(path, bytes, 0o755)
    }

    /// A BusyBox-like base: `/bin/sh` and `/usr/bin/env` (scripts standing in for the
    /// applets: only their presence and modes matter), users root, nobody and app.
    fn busybox_base(&mut self) -> &mut Self {
        self.layer()
            .file("/bin/sh", "#!/bin/sh\n", 0o755)
            .file("/usr/bin/env", "#!/bin/sh\n", 0o755)
            .file(
                "/etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
                0o644,
            )
            .file("/etc/group", "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n", 0o644)
            .file("/bin/passwd", "#!/bin/sh\n", 0o4755);
        self.own_from = self.layers;
        self
    }

    fn entrypoint(&mut self, argv: &[&str]) -> &mut Self {
        self.config.config.entrypoint = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    fn cmd(&mut self, argv: &[&str]) -> &mut Self {
        self.config.config.cmd = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    fn user(&mut self, user: &str) -> &mut Self {
        self.config.config.user = user.to_owned();
        self
    }

    fn sources(&self, spans: &[Option<stagecraft_dockerfile::Span>]) -> Vec<LayerSource> {
        (0..self.layers)
            .map(|index| LayerSource {
                own: index >= self.own_from,
                created_by: format!("RUN step {index} # buildkit"),
                span: spans.get(index).copied().flatten(),
            })
            .collect()
    }

    /// The findings for the image without its Dockerfile (`lint --image`).
    fn check(&self) -> Vec<Finding> {
        let fs = LayeredFs::new(self.layer_dirs());
        let image = CheckedImage {
            fs: &fs,
            config: &self.config,
            layers: self.sources(&[]),
            name: "test-image".to_owned(),
        };
        check_image(&image, None)
    }

    /// The findings after building it from `dockerfile`, whose instructions made the own
    /// layers in order (`made` lists, per own layer, the instruction's line).
    fn check_built(&self, dockerfile: &str, made: &[usize]) -> Vec<Finding> {
        let file = stagecraft_dockerfile::parse_str("Dockerfile", dockerfile).unwrap();
        let mut spans = vec![None; self.own_from];
        for line in made {
            let instruction = file
                .instructions
                .iter()
                .find(|i| file.source.position(i.span.start).line == *line)
                .unwrap();
            spans.push(Some(instruction.span));
        }
        let fs = LayeredFs::new(self.layer_dirs()).listing_from(self.own_from);
        let image = CheckedImage {
            fs: &fs,
            config: &self.config,
            layers: self.sources(&spans),
            name: "test-image".to_owned(),
        };
        let options = LintOptions::default();
        check_image(
            &image,
            Some(BuiltFrom {
                dockerfile: &file,
                options: &options,
            }),
        )
    }

    fn layer_dirs(&self) -> Vec<PathBuf> {
        (1..=self.layers)
            .map(|i| self.dir.path().join(i.to_string()))
            .collect()
    }
}

fn of<'a>(findings: &'a [Finding], rule: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.rule == rule).collect()
}

#[track_caller]
fn one<'a>(findings: &'a [Finding], rule: &str) -> &'a Finding {
    let found = of(findings, rule);
    assert_eq!(found.len(), 1, "{findings:#?}");
    found[0]
}

// ---- EntrypointNotFound ----

#[test]
fn an_entrypoint_that_is_not_in_the_image() {
    let mut image = TestImage::new();
    image.busybox_base().entrypoint(&["/app"]);
    let findings = image.check();
    let finding = one(&findings, "EntrypointNotFound");
    assert!(
        finding
            .message
            .starts_with("ENTRYPOINT runs /app, which is not in the image"),
        "{}",
        finding.message
    );
    assert_eq!((finding.line, finding.file.as_str()), (0, "test-image"));

    image.layer().file("/app", "#!/bin/sh\necho hi\n", 0o755);
    assert!(of(&image.check(), "EntrypointNotFound").is_empty());
}

#[test]
fn a_bare_name_is_looked_up_along_path() {
    let mut image = TestImage::new();
    image.busybox_base().cmd(&["server", "--port", "80"]);
    let message = one(&image.check(), "EntrypointNotFound").message.clone();
    assert!(
        message.contains(
            "CMD runs server, which is in no directory of PATH (/usr/local/bin:/usr/bin:/bin)"
        ),
        "{message}"
    );
    // A non-executable file earlier on PATH does not hide an executable one later.
    image
        .layer()
        .file("/usr/local/bin/server", "data", 0o644)
        .file("/bin/server", "#!/bin/sh\n", 0o755);
    assert!(of(&image.check(), "EntrypointNotFound").is_empty());
}

#[test]
fn a_program_without_its_execute_bit() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .layer()
        .file("/start.sh", "#!/bin/sh\nexec app\n", 0o644)
        .entrypoint(&["/start.sh"]);
    let finding = one(&image.check(), "EntrypointNotFound").clone();
    assert!(
        finding
            .message
            .contains("/start.sh is not executable (mode 0644)"),
        "{}",
        finding.message
    );
    assert!(finding.hint.contains("--chmod=755"));
    // The file's layer is named, with its history entry.
    assert_eq!(finding.layer, Some(1));
    assert!(
        finding.message.contains("layer 1: RUN step 1"),
        "{}",
        finding.message
    );
}

#[test]
fn a_bash_script_on_a_busybox_image() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .layer()
        .file("/entrypoint.sh", "#!/bin/bash\nset -euo pipefail\n", 0o755)
        .entrypoint(&["/entrypoint.sh"]);
    let finding = one(&image.check(), "EntrypointNotFound").clone();
    assert!(
        finding
            .message
            .contains("/entrypoint.sh starts with #!/bin/bash, which is not in the image"),
        "{}",
        finding.message
    );
    assert!(
        finding.hint.contains("apk add --no-cache bash"),
        "{}",
        finding.hint
    );

    // `#!/usr/bin/env bash` looks bash up along PATH, as env does.
    image.file("/entrypoint.sh", "#!/usr/bin/env bash\n", 0o755);
    let message = one(&image.check(), "EntrypointNotFound").message.clone();
    assert!(
        message.contains("starts with #!/usr/bin/env bash, and bash is in no directory of PATH"),
        "{message}"
    );

    // With bash installed, both are fine; so is a POSIX script.
    image.layer().file("/bin/bash", "\x7fELF-ish", 0o755);
    assert!(of(&image.check(), "EntrypointNotFound").is_empty());
}

#[test]
fn scripts_with_windows_line_endings_and_without_a_shebang() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .layer()
        .file("/run.sh", "#!/bin/sh\r\necho hi\r\n", 0o755)
        .entrypoint(&["/run.sh"]);
    let finding = one(&image.check(), "EntrypointNotFound").clone();
    assert!(
        finding.message.contains("carriage return"),
        "{}",
        finding.message
    );
    assert!(finding.hint.contains("dos2unix"));

    image.file("/run.sh", "echo hi\n", 0o755);
    let message = one(&image.check(), "EntrypointNotFound").message.clone();
    assert!(message.contains("exec format error"), "{message}");
}

#[test]
fn the_shell_form_needs_the_shell() {
    let mut image = TestImage::new();
    image
        .layer()
        .host_file("/app", "/bin/true")
        .cmd(&["/bin/sh", "-c", "/app --serve"]);
    let finding = one(&image.check(), "EntrypointNotFound").clone();
    assert!(
        finding
            .message
            .starts_with("the shell form of CMD runs /bin/sh -c, and /bin/sh is not in the image"),
        "{}",
        finding.message
    );
    assert!(finding.hint.contains("exec form"), "{}", finding.hint);
}

#[test]
fn symlinks_to_the_program_resolve_inside_the_image() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .layer()
        .file("/opt/app/bin/app", "#!/bin/sh\n", 0o755)
        .link("/usr/local/bin/app", "/opt/app/bin/app")
        // A link out of the image names a path inside it, where nothing is.
        .link("/usr/local/bin/escape", "/etc/hostname-of-the-host")
        .entrypoint(&["app"]);
    assert!(of(&image.check(), "EntrypointNotFound").is_empty());
    image.entrypoint(&["escape"]);
    assert_eq!(of(&image.check(), "EntrypointNotFound").len(), 1);
}

#[test]
fn after_a_build_the_finding_points_at_the_entrypoint_line() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .layer()
        .file("/entrypoint.sh", "#!/bin/bash\n", 0o755)
        .entrypoint(&["/entrypoint.sh"]);
    let dockerfile =
        "FROM busybox\nCOPY entrypoint.sh /\nUSER app\nENTRYPOINT [\"/entrypoint.sh\"]\n";
    let findings = image.check_built(dockerfile, &[2]);
    let finding = one(&findings, "EntrypointNotFound");
    assert_eq!((finding.file.as_str(), finding.line), ("Dockerfile", 4));
    assert!(
        finding.message.ends_with("(added at line 2)"),
        "{}",
        finding.message
    );

    // `# check=skip=` in the Dockerfile turns it off.
    let skipped = format!("# check=skip=EntrypointNotFound\n{dockerfile}");
    assert!(of(&image.check_built(&skipped, &[3]), "EntrypointNotFound").is_empty());
}

// ---- UserNotInImage ----

#[test]
fn users_must_be_in_passwd_and_groups_in_group() {
    let mut image = TestImage::new();
    image.busybox_base();
    for fine in [
        "nobody",
        "app:app",
        "1000",
        "4242:4242",
        "nobody:65534",
        "root",
    ] {
        image.user(fine);
        assert!(of(&image.check(), "UserNotInImage").is_empty(), "{fine}");
    }
    image.user("ghost");
    let message = one(&image.check(), "UserNotInImage").message.clone();
    assert!(
        message.starts_with("USER ghost: user ghost is not in the image's /etc/passwd"),
        "{message}"
    );
    image.user("app:staff");
    let message = one(&image.check(), "UserNotInImage").message.clone();
    assert!(
        message.contains("group staff is not in the image's /etc/group"),
        "{message}"
    );
}

#[test]
fn a_user_on_scratch_needs_a_passwd_file() {
    let mut image = TestImage::new();
    image.layer().host_file("/app", "/bin/true").user("app");
    let dockerfile = "FROM scratch\nCOPY app /app\nUSER app\n";
    let findings = image.check_built(dockerfile, &[2]);
    let finding = one(&findings, "UserNotInImage");
    assert_eq!(finding.line, 3);
    assert!(
        finding.hint.contains("USER 10001:10001"),
        "{}",
        finding.hint
    );
}

// ---- MissingSharedLibrary ----

#[test]
fn a_glibc_program_on_an_image_without_libc() {
    let mut image = TestImage::new();
    image.busybox_base().layer().host_file("/app", "/bin/true");
    let finding = one(&image.check(), "MissingSharedLibrary").clone();
    assert!(
        finding.message.starts_with(
            "/app needs the program interpreter /lib64/ld-linux-x86-64.so.2 and libc.so.6, which are not in the image"
        ),
        "{}",
        finding.message
    );
    assert!(
        finding.hint.contains("the image has no C library"),
        "{}",
        finding.hint
    );
    assert!(finding.hint.contains("CGO_ENABLED=0"));
    assert_eq!(finding.layer, Some(1));

    // With the loader and libc copied where Debian keeps them (the loader through a
    // symlink, as Debian has it), the program starts.
    image
        .layer()
        .host_file(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "/lib64/ld-linux-x86-64.so.2",
        )
        .host_file(
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
        )
        .link(
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        );
    let findings = image.check();
    assert!(
        of(&findings, "MissingSharedLibrary").is_empty(),
        "{findings:#?}"
    );
}

#[test]
fn a_glibc_program_on_a_musl_image_is_told_so() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .file("/lib/ld-musl-x86_64.so.1", elf64(None, &[]), 0o755)
        .layer()
        .host_file("/usr/local/bin/app", "/bin/true");
    let finding = one(&image.check(), "MissingSharedLibrary").clone();
    assert!(finding.hint.contains("musl (Alpine)"), "{}", finding.hint);
}

#[test]
fn libraries_are_found_along_runpath_ld_so_conf_and_the_loaders_rpath() {
    let interpreter = "/lib/ld-test.so";
    let mut image = TestImage::new();
    image
        .layer()
        .file(interpreter, elf64(None, &[]), 0o755)
        // ld.so.conf including a directory of .conf files, as Debian's.
        .file(
            "/etc/ld.so.conf",
            "include /etc/ld.so.conf.d/*.conf\n",
            0o644,
        )
        .file(
            "/etc/ld.so.conf.d/vendor.conf",
            "# vendor\n/opt/vendor/lib\n",
            0o644,
        )
        .file("/opt/vendor/lib/libvendor.so.1", elf64(None, &[]), 0o644)
        // $ORIGIN-relative RUNPATH.
        .file(
            "/opt/app/lib/libapp.so",
            elf64(None, &[Entry::Needed("libhelper.so")]),
            0o644,
        )
        .file("/opt/app/lib/libhelper.so", elf64(None, &[]), 0o644)
        .file(
            "/opt/app/bin/app",
            elf64(
                Some(interpreter),
                &[
                    Entry::Needed("libapp.so"),
                    Entry::Needed("libvendor.so.1"),
                    Entry::Runpath("$ORIGIN/../lib"),
                ],
            ),
            0o755,
        )
        // An RPATH of a program serves the libraries it loads too.
        .file(
            "/srv/tool",
            elf64(
                Some(interpreter),
                &[Entry::Needed("libplugin.so"), Entry::Rpath("/srv/lib")],
            ),
            0o755,
        )
        .file(
            "/srv/lib/libplugin.so",
            elf64(None, &[Entry::Needed("libdep.so")]),
            0o644,
        )
        .file("/srv/deps/libdep.so", elf64(None, &[]), 0o644)
        .link("/srv/lib/libdep.so", "../deps/libdep.so")
        // A needed path with $ORIGIN, as relocatable Python builds name libpython.
        .file(
            "/opt/py/bin/python3",
            elf64(
                Some(interpreter),
                &[Entry::Needed("$ORIGIN/../lib/libpython3.12.so.1.0")],
            ),
            0o755,
        )
        .file("/opt/py/lib/libpython3.12.so.1.0", elf64(None, &[]), 0o644);
    let findings = image.check();
    assert!(
        of(&findings, "MissingSharedLibrary").is_empty(),
        "{findings:#?}"
    );

    // Without the RUNPATH, libapp.so is nowhere the loader looks (its directory is not on
    // the program's search path, only a library's own needs may come from there).
    image.file(
        "/opt/app/bin/app",
        elf64(Some(interpreter), &[Entry::Needed("libapp.so")]),
        0o755,
    );
    let finding = one(&image.check(), "MissingSharedLibrary").clone();
    assert!(
        finding
            .message
            .starts_with("/opt/app/bin/app needs libapp.so, which is not in the image"),
        "{}",
        finding.message
    );
    assert!(finding.hint.contains("COPY --from"), "{}", finding.hint);
}

#[test]
fn files_missing_the_same_library_in_one_layer_make_one_finding() {
    let mut image = TestImage::new();
    image.layer();
    for i in 0..5 {
        image.file(
            &format!("/usr/lib/python3/ext{i}.cpython-312-x86_64-linux-gnu.so"),
            elf64(None, &[Entry::Needed("libc.musl-x86_64.so.1")]),
            0o644,
        );
    }
    let finding = one(&image.check(), "MissingSharedLibrary").clone();
    assert!(
        finding
            .message
            .contains("and 2 more need libc.musl-x86_64.so.1"),
        "{}",
        finding.message
    );
}

#[test]
fn what_the_base_image_brought_and_what_the_runtime_injects_is_not_reported() {
    let mut image = TestImage::new();
    image.layer().host_file("/usr/bin/base-tool", "/bin/true");
    image.own_from = 1;
    image.layer().file(
        "/usr/lib/libgpu.so",
        elf64(
            None,
            &[
                Entry::Needed("libcuda.so.1"),
                Entry::Needed("libnvidia-ml.so.1"),
            ],
        ),
        0o644,
    );
    assert!(of(&image.check(), "MissingSharedLibrary").is_empty());
    // Nor programs for another CPU (test data, cross toolchains).
    image.config.architecture = "arm64".to_owned();
    image
        .layer()
        .host_file("/usr/share/testdata/amd64-program", "/bin/true");
    assert!(of(&image.check(), "MissingSharedLibrary").is_empty());
}

#[test]
fn after_a_build_the_finding_points_at_the_copy_that_added_the_program() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .layer()
        .host_file("/app", "/bin/true")
        .entrypoint(&["/app"]);
    let dockerfile = "FROM golang AS build\nRUN go build -o /out/app .\n\nFROM busybox\nCOPY --from=build /out/app /app\nENTRYPOINT [\"/app\"]\n";
    let findings = image.check_built(dockerfile, &[5]);
    let finding = one(&findings, "MissingSharedLibrary");
    assert_eq!((finding.line, finding.layer), (5, Some(1)));
    // The entrypoint itself is there: the loader's absence is this rule's to report.
    assert!(
        of(&findings, "EntrypointNotFound").is_empty(),
        "{findings:#?}"
    );

    // A later `RUN chmod` copies the file up: the COPY still added it; the chmod set the bit.
    image.layer().host_file("/app", "/bin/true");
    fs::set_permissions(image.full("/app"), fs::Permissions::from_mode(0o4755)).unwrap();
    let dockerfile = "FROM golang AS build\nRUN go build -o /out/app .\n\nFROM busybox\nCOPY --from=build /out/app /app\nRUN chmod 4755 /app\nENTRYPOINT [\"/app\"]\n";
    let findings = image.check_built(dockerfile, &[5, 6]);
    assert_eq!(one(&findings, "MissingSharedLibrary").line, 5);
    assert_eq!(one(&findings, "WorldWritableOrSetuid").line, 6);
}

// ---- WorldWritableOrSetuid ----

#[test]
fn setuid_and_world_writable_entries_of_the_builds_own_layers() {
    let mut image = TestImage::new();
    image
        .busybox_base()
        .layer()
        .file("/usr/local/bin/tool", "#!/bin/sh\n", 0o4755)
        .dir("/data", 0o777)
        .dir("/shared", 0o1777)
        .dir("/srv/group", 0o2775)
        .file("/srv/config", "x", 0o666)
        .link("/srv/link", "config");
    let dockerfile = "FROM busybox\nRUN chmod 4755 /usr/local/bin/tool && mkdir -m 777 /data\n";
    let findings = image.check_built(dockerfile, &[2]);
    let found = of(&findings, "WorldWritableOrSetuid");
    let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "adds setuid or setgid files: /usr/local/bin/tool (4755)",
            "adds world-writable files: /srv/config (0666)",
            "adds world-writable directories without the sticky bit: /data (0777)",
        ]
    );
    assert!(
        found
            .iter()
            .all(|f| f.line == 2 && f.severity == stagecraft_lint::Severity::Info)
    );
    // The base image's setuid /bin/passwd is not the build's doing.
    assert!(!messages.iter().any(|m| m.contains("/bin/passwd")));
}

#[test]
fn windows_images_are_not_checked() {
    let mut image = TestImage::new();
    image
        .layer()
        .file("/x", "", 0o777)
        .entrypoint(&["C:\\app.exe"]);
    image.config.os = "windows".to_owned();
    assert!(image.check().is_empty());
}

/// The layers are read through the image root only: a library symlinked to a host path is
/// not found on the host.
#[test]
fn library_lookups_never_leave_the_image() {
    let host = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
    assert!(host.exists());
    let mut image = TestImage::new();
    image
        .layer()
        .link(
            "/lib64/ld-linux-x86-64.so.2",
            "/lib64/ld-linux-x86-64.so.2.real",
        )
        .link(
            "/usr/lib/libc.so.6",
            &format!("/../../../..{}", host.display()),
        )
        .host_file("/app", "/bin/true");
    let message = one(&image.check(), "MissingSharedLibrary").message.clone();
    assert!(message.contains("libc.so.6"), "{message}");
}
