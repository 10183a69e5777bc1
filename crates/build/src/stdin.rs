//! `build -`: what standard input holds, as `docker build -` reads it. A tar archive (plain or
//! compressed) is the build context, unpacked into a scratch directory of the store with the
//! hardened layer applier; anything else is the Dockerfile, built with an empty context.

use crate::error::{Error, Result};
use stagecraft_layer::{ApplyOptions, WhiteoutMode, apply_layer, is_tar_stream};
use stagecraft_store::{ScratchDir, Store};
use std::io::Read;
use std::path::{Component, Path};

/// At least this much of standard input is read before deciding: a compressed archive's first
/// tar header (512 bytes) is in it, however the compressor framed it.
const SNIFF_BYTES: u64 = 64 << 10;

/// A build context read from standard input. The directory is removed when this is dropped.
#[derive(Debug)]
pub struct StdinContext {
    /// The context directory: the archive's files, or empty.
    pub dir: ScratchDir,
    /// The Dockerfile's bytes when standard input held one rather than an archive.
    pub dockerfile: Option<Vec<u8>>,
}

impl StdinContext {
    /// Reads `input` to its end. A Dockerfile longer than `max_dockerfile_bytes` is refused
    /// (an archive may be of any size: it streams into the directory).
    pub fn read(
        store: &Store,
        mut input: impl Read,
        max_dockerfile_bytes: u64,
    ) -> Result<StdinContext> {
        let failed = |message: String| Error::Input {
            what: "reading the build context from standard input".to_owned(),
            message,
        };
        let dir = store
            .scratch_dir("stdin-context")
            .map_err(Error::store("creating a directory for the context"))?;
        // Enough of the stream to tell an archive from a Dockerfile, and the whole Dockerfile
        // when it is one; an archive's remainder streams on from `input`.
        let mut head = Vec::new();
        input
            .by_ref()
            .take((max_dockerfile_bytes + 1).max(SNIFF_BYTES))
            .read_to_end(&mut head)
            .map_err(|e| failed(e.to_string()))?;
        if is_tar_stream(head.as_slice()) {
            let options = ApplyOptions {
                whiteouts: WhiteoutMode::Delete,
                ..ApplyOptions::default()
            };
            apply_layer(head.as_slice().chain(input), dir.path(), &options)
                .map_err(|e| failed(format!("the archive cannot be unpacked: {e}")))?;
            return Ok(StdinContext {
                dir,
                dockerfile: None,
            });
        }
        if head.len() as u64 > max_dockerfile_bytes {
            return Err(failed(format!(
                "it is not a tar archive, and longer than a Dockerfile may be ({max_dockerfile_bytes} bytes)"
            )));
        }
        Ok(StdinContext {
            dir,
            dockerfile: Some(head),
        })
    }

    /// The bytes of the Dockerfile `name` inside an archive's context (`-f`, default
    /// `Dockerfile`). The archive came from anywhere: the name must stay inside the context
    /// and name a regular file reached without a symbolic link, so a link in the archive
    /// cannot make the build read a file of this machine.
    pub fn dockerfile_in_archive(&self, name: &Path) -> Result<Vec<u8>> {
        let refused = |reason: &str| Error::Input {
            what: format!("reading the Dockerfile {} from the context", name.display()),
            message: reason.to_owned(),
        };
        let mut path = self.dir.path().to_owned();
        for component in name.components() {
            match component {
                Component::Normal(part) => path.push(part),
                Component::CurDir => {}
                _ => return Err(refused("the path must be relative, without `..`")),
            }
            let metadata = std::fs::symlink_metadata(&path)
                .map_err(|_| refused("the archive has no such file"))?;
            if metadata.file_type().is_symlink() {
                return Err(refused(
                    "it is reached through a symbolic link, which could point anywhere",
                ));
            }
        }
        if !path.is_file() {
            return Err(refused("it is not a regular file"));
        }
        std::fs::read(&path).map_err(|e| refused(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Store {
        Store::open(dir.join("store")).unwrap()
    }

    fn archive(entries: &[(&str, &[u8])], link: Option<(&str, &str)>) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        if let Some((path, target)) = link {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, path, target).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn text_is_the_dockerfile_and_the_context_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let read = StdinContext::read(&store, &b"FROM scratch\n"[..], 1 << 20).unwrap();
        assert_eq!(read.dockerfile.as_deref(), Some(&b"FROM scratch\n"[..]));
        assert_eq!(std::fs::read_dir(read.dir.path()).unwrap().count(), 0);
        // Longer than a Dockerfile may be, and no archive: refused, not cut.
        let error = StdinContext::read(&store, &[b'#'; 64][..], 32).unwrap_err();
        assert!(error.to_string().contains("not a tar archive"), "{error}");
    }

    #[test]
    fn an_archive_plain_or_compressed_is_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let tar = archive(
            &[
                ("Dockerfile", b"FROM scratch\nCOPY a /\n"),
                ("sub/custom", b"FROM x\n"),
                ("a", b"data"),
            ],
            None,
        );
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, &tar).unwrap();
        // A limit smaller than the archive: only a Dockerfile is bounded.
        for bytes in [tar.clone(), gzip.finish().unwrap()] {
            let read = StdinContext::read(&store, bytes.as_slice(), 16).unwrap();
            assert!(read.dockerfile.is_none());
            assert_eq!(std::fs::read(read.dir.path().join("a")).unwrap(), b"data");
            assert_eq!(
                read.dockerfile_in_archive(Path::new("Dockerfile")).unwrap(),
                b"FROM scratch\nCOPY a /\n"
            );
            assert_eq!(
                read.dockerfile_in_archive(Path::new("./sub/custom"))
                    .unwrap(),
                b"FROM x\n"
            );
        }
    }

    #[test]
    fn a_dockerfile_outside_the_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("secret");
        std::fs::write(&outside, "FROM secret\n").unwrap();
        let store = store(dir.path());
        let tar = archive(
            &[("a", b"data")],
            Some(("Dockerfile", outside.to_str().unwrap())),
        );
        let read = StdinContext::read(&store, tar.as_slice(), 1 << 20).unwrap();
        for name in ["Dockerfile", "../secret", "/etc/passwd", "missing"] {
            let error = read.dockerfile_in_archive(Path::new(name)).unwrap_err();
            assert!(
                !error.to_string().contains("FROM secret"),
                "{name}: {error}"
            );
        }
        let error = read
            .dockerfile_in_archive(Path::new("Dockerfile"))
            .unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
}
