//! A build context with links to the root (`up -> /` and its spellings): every way a build reads
//! the context resolves them inside the context, as BuildKit does, and nothing of the host
//! reaches an image, the store or a log. As root: builds need namespaces.

mod common;

use common::store_with_busybox;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Every spelling of "the root" a link can have; the relative one climbs above the context.
const ROOT_LINKS: [&str; 7] = [
    "/",
    "/.",
    "//",
    "../../../../../..",
    "/etc/..",
    "/tmp/..",
    "up/..",
];

fn stagecraft(root: &Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("stagecraft").unwrap();
    command.env("STAGECRAFT_ROOT", root);
    command
}

/// A canary under the host's `/tmp`: a directory whose name and file content appear nowhere
/// else. A context with a `tmp/` of its own reaches it if `up/tmp` is ever resolved on the host.
struct Canary {
    dir: tempfile::TempDir,
    secret: String,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::Builder::new()
            .prefix("canary-")
            .tempdir_in("/tmp")
            .unwrap();
        let secret = format!("CANARY-{}", std::process::id());
        fs::write(dir.path().join("secret.txt"), &secret).unwrap();
        Canary { dir, secret }
    }

    fn name(&self) -> String {
        self.dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// Panics if `haystack` shows the canary's name or content.
    fn assert_absent(&self, what: &str, haystack: &[u8]) {
        for needle in [self.secret.as_bytes(), self.name().as_bytes()] {
            assert!(
                !haystack.windows(needle.len()).any(|w| w == needle),
                "{what} shows the host canary {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// Every regular file below `dir` (links not followed).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// Builds `context` with the final file system written to the tar `out`.
fn build_to_tar(root: &Path, context: &Path, out: &Path) {
    stagecraft(root)
        .args(["build", "--progress=plain", "--output"])
        .arg(format!("type=tar,dest={}", out.display()))
        .arg(context)
        .assert()
        .success();
}

/// The entries (path, link target) of a tar file.
fn tar_entries(path: &Path) -> Vec<(String, Option<String>)> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            (name, link)
        })
        .collect()
}

#[test]
fn links_to_the_root_read_the_context_never_the_host() {
    let canary = Canary::new();
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_busybox(dir.path());
    for link in ROOT_LINKS {
        let context = dir.path().join("ctx");
        let _ = fs::remove_dir_all(&context);
        fs::create_dir_all(context.join("tmp")).unwrap();
        fs::write(context.join("tmp/own"), "context tmp\n").unwrap();
        std::os::unix::fs::symlink(link, context.join("up")).unwrap();
        fs::write(
            context.join("Dockerfile"),
            "FROM busybox:latest\n\
             COPY up/ /w1/\n\
             COPY up /w2/\n\
             COPY up/. /w3/\n\
             COPY u*/ /w4/\n\
             ADD up/ /w5/\n\
             RUN --mount=type=bind,source=up,target=/m ls -laR /m && cp /m/tmp/own /from-mount\n",
        )
        .unwrap();
        let out = dir.path().join("rootfs.tar");
        let output = stagecraft(&root)
            .args(["build", "--progress=plain", "--output"])
            .arg(format!("type=tar,dest={}", out.display()))
            .arg(&context)
            .output()
            .unwrap();
        let log = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
        assert!(
            output.status.success(),
            "{link}: {}",
            String::from_utf8_lossy(&log)
        );
        canary.assert_absent(&format!("the log of {link}"), &log);
        // The in-context result BuildKit gives: each form copies the context itself.
        let entries = tar_entries(&out);
        for copy in ["w1", "w2", "w3", "w4", "w5"] {
            for path in [format!("{copy}/tmp/own"), format!("{copy}/Dockerfile")] {
                assert!(
                    entries.iter().any(|(name, _)| *name == path),
                    "{link}: no {path} in {entries:?}"
                );
            }
            let up = entries
                .iter()
                .find(|(name, _)| *name == format!("{copy}/up"))
                .unwrap_or_else(|| panic!("{link}: no {copy}/up"));
            assert_eq!(up.1.as_deref(), Some(link), "{copy}/up keeps its target");
        }
        assert!(entries.iter().any(|(name, _)| name == "from-mount"));
        canary.assert_absent(&format!("the image of {link}"), &fs::read(&out).unwrap());
        // The context listing shows the link as a link.
        let listing = stagecraft(&root)
            .arg("context")
            .arg(&context)
            .output()
            .unwrap();
        assert!(listing.status.success());
        canary.assert_absent("stagecraft context", &listing.stdout);
    }

    // A path through the link names the context's own files: the host's do not exist there.
    let context = dir.path().join("ctx");
    for source in [
        "up/etc/hostname",
        &format!("up/tmp/{}/secret.txt", canary.name()),
    ] {
        fs::write(
            context.join("Dockerfile"),
            format!("FROM busybox:latest\nCOPY {source} /stolen\n"),
        )
        .unwrap();
        let output = stagecraft(&root)
            .args(["build", "--progress=plain"])
            .arg(&context)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{source}: {stderr}");
        assert!(stderr.contains("not found"), "{source}: {stderr}");
    }

    // A stage's links resolve inside the stage: `COPY --from` walks the stage's `/tmp`.
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest AS stage\n\
         RUN mkdir -p /x /tmp/stage-own && ln -s / /x/up\n\
         FROM busybox:latest\n\
         COPY --from=stage /x/up/tmp/ /w/\n",
    )
    .unwrap();
    let out = dir.path().join("stage.tar");
    build_to_tar(&root, &context, &out);
    let entries = tar_entries(&out);
    assert!(entries.iter().any(|(name, _)| name == "w/stage-own/"));
    canary.assert_absent("a COPY --from image", &fs::read(&out).unwrap());

    // Nothing of the canary in any file of the store.
    for file in files_below(&root) {
        let mut bytes = Vec::new();
        fs::File::open(&file)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        canary.assert_absent(&file.display().to_string(), &bytes);
    }
}

#[test]
fn a_link_loop_in_the_context_is_not_found_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_busybox(dir.path());
    let context = dir.path().join("ctx");
    fs::create_dir(&context).unwrap();
    std::os::unix::fs::symlink("b", context.join("a")).unwrap();
    std::os::unix::fs::symlink("a", context.join("b")).unwrap();
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nCOPY a/ /w/\n",
    )
    .unwrap();
    let output = stagecraft(&root)
        .args(["build", "--progress=plain"])
        .arg(&context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not found") && stderr.contains("Dockerfile:2"),
        "{stderr}"
    );
    // The loop itself is copied as the two links it is.
    fs::write(
        context.join("Dockerfile"),
        "FROM busybox:latest\nCOPY . /w/\n",
    )
    .unwrap();
    let out = dir.path().join("rootfs.tar");
    build_to_tar(&root, &context, &out);
    let entries = tar_entries(&out);
    assert!(entries.contains(&("w/a".to_owned(), Some("b".to_owned()))));
    assert!(entries.contains(&("w/b".to_owned(), Some("a".to_owned()))));
}
