//! Hostile layers, built header by header: every attempt to reach outside
//! the target root must fail or be confined to the root, and nothing beside
//! the root may change.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use stagecraft_layer::{ApplyOptions, Error, TarReader, apply_layer};

/// A tar assembled from raw headers: names go in byte for byte (the `tar`
/// crate's path setters refuse `..`, which is the point here).
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn header(&mut self, name: &[u8], kind: u8, size: u64, link: &[u8]) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        let bytes = h.as_mut_bytes();
        bytes[..name.len()].copy_from_slice(name);
        bytes[156] = kind;
        bytes[157..157 + link.len()].copy_from_slice(link);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self
    }

    fn data(&mut self, data: &[u8]) -> &mut Self {
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.header(name.as_bytes(), b'0', data.len() as u64, b"")
            .data(data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.header(name.as_bytes(), b'5', 0, b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), b'2', 0, target.as_bytes())
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.header(name.as_bytes(), b'1', 0, target.as_bytes())
    }

    /// A PAX header with the given records, for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        self.header(b"PaxHeaders.0/x", b'x', body.len() as u64, b"")
            .data(&body)
    }

    /// A GNU long-name header for the next entry.
    fn gnu_long_name(&mut self, name: &str) -> &mut Self {
        let mut body = name.as_bytes().to_vec();
        body.push(0);
        self.header(b"././@LongLink", b'L', body.len() as u64, b"")
            .data(&body)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

/// A target root beside a sentinel file and an `outside` directory.
struct Arena {
    tmp: tempfile::TempDir,
}

impl Arena {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("sentinel"), "original").unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/keep"), "keep").unwrap();
        fs::create_dir(tmp.path().join("root")).unwrap();
        Arena { tmp }
    }

    fn root(&self) -> std::path::PathBuf {
        self.tmp.path().join("root")
    }

    fn outside(&self) -> String {
        self.tmp.path().join("outside").display().to_string()
    }

    /// Everything beside the root, plus the host files a layer might aim at.
    fn world(&self) -> BTreeMap<String, String> {
        let mut world: BTreeMap<String, String> = snapshot(self.tmp.path(), ALL_MTIMES)
            .into_iter()
            .filter(|(k, _)| !(k == "root" || k.starts_with("root/")))
            .collect();
        let passwd = fs::symlink_metadata("/etc/passwd").unwrap();
        world.insert(
            "/etc/passwd".into(),
            format!(
                "nlink={} mtime={} size={}",
                passwd.nlink(),
                passwd.mtime(),
                passwd.len()
            ),
        );
        for probe in ["/etc/x", "/pwned", "/x"] {
            world.insert(probe.into(), Path::new(probe).exists().to_string());
        }
        world
    }

    /// Applies `layer` and checks that nothing outside the root changed.
    fn apply(&self, layer: &[u8]) -> Result<stagecraft_layer::ApplyStats, Error> {
        let before = self.world();
        let result = apply_layer(layer, &self.root(), &ApplyOptions::default());
        assert_same(&before, &self.world());
        result
    }
}

fn assert_refused(result: Result<stagecraft_layer::ApplyStats, Error>, entry: &str) {
    match result {
        Err(err @ Error::UnsafeEntry { .. }) => {
            assert!(
                err.to_string().contains(entry),
                "error {err} does not name {entry}"
            );
        }
        other => panic!("expected the entry {entry:?} to be refused, got {other:?}"),
    }
}

#[test]
fn dotdot_names_are_refused() {
    let arena = Arena::new();
    assert_refused(
        arena.apply(&RawTar::default().file("../sentinel", b"pwned").finish()),
        "../sentinel",
    );
    assert_refused(
        arena.apply(
            &RawTar::default()
                .file("/abs/../../sentinel", b"pwned")
                .finish(),
        ),
        "/abs/../../sentinel",
    );
    assert_refused(
        arena.apply(&RawTar::default().dir("a/../../outside/").finish()),
        "a/../../outside/",
    );
    // Through the extension headers too.
    let pax = RawTar::default()
        .pax(&[("path", b"../outside/pwned")])
        .file("innocent", b"pwned")
        .finish();
    assert_refused(arena.apply(&pax), "../outside/pwned");
    let gnu = RawTar::default()
        .gnu_long_name("../outside/pwned")
        .file("innocent", b"pwned")
        .finish();
    assert_refused(arena.apply(&gnu), "../outside/pwned");
    let nul = RawTar::default()
        .pax(&[("path", b"ok\0../x")])
        .file("innocent", b"x")
        .finish();
    assert_refused(arena.apply(&nul), "ok");
    // A link target with `..` is refused the same way.
    assert_refused(
        arena.apply(
            &RawTar::default()
                .symlink("ok", "x")
                .hardlink("h", "../sentinel")
                .finish(),
        ),
        "h",
    );
}

#[test]
fn absolute_names_mean_the_root() {
    let arena = Arena::new();
    arena
        .apply(&RawTar::default().file("/etc/x", b"inside").finish())
        .unwrap();
    assert_eq!(fs::read(arena.root().join("etc/x")).unwrap(), b"inside");
}

#[test]
fn symlink_to_host_root_is_followed_inside_the_root() {
    let arena = Arena::new();
    let layer = RawTar::default()
        .symlink("evil", "/")
        .file("evil/etc/x", b"pwned")
        .finish();
    arena.apply(&layer).unwrap();
    assert_eq!(fs::read(arena.root().join("etc/x")).unwrap(), b"pwned");

    // An absolute target is looked up inside the root: where it does not
    // exist there, creating through it fails like docker's MkdirAll does...
    let arena = Arena::new();
    let layer = RawTar::default()
        .symlink("evil", &arena.outside())
        .file("evil/pwned", b"pwned")
        .finish();
    assert!(matches!(arena.apply(&layer), Err(Error::Apply { .. })));
    // ...and where it does, the write lands there.
    let arena = Arena::new();
    let mut tar = RawTar::default();
    let mut prefix = String::new();
    for component in arena.outside().trim_start_matches('/').split('/') {
        prefix.push_str(component);
        prefix.push('/');
        tar.dir(&prefix);
    }
    let layer = tar
        .symlink("evil", &arena.outside())
        .file("evil/keep", b"pwned")
        .finish();
    arena.apply(&layer).unwrap();
    assert_eq!(
        fs::read(arena.root().join(&prefix).join("keep")).unwrap(),
        b"pwned"
    );
}

#[test]
fn relative_symlink_escapes_are_confined() {
    let arena = Arena::new();
    let layer = RawTar::default()
        .symlink("up", "../../..")
        .file("up/pwned", b"pwned")
        .finish();
    arena.apply(&layer).unwrap();
    assert_eq!(fs::read(arena.root().join("pwned")).unwrap(), b"pwned");

    // A nested chain of symlinks climbing out.
    let arena = Arena::new();
    let layer = RawTar::default()
        .dir("a/")
        .dir("outside/")
        .symlink("a/b", "../../outside")
        .symlink("c", "a/b")
        .file("c/keep", b"pwned")
        .finish();
    arena.apply(&layer).unwrap();
    assert_eq!(
        fs::read(arena.root().join("outside/keep")).unwrap(),
        b"pwned"
    );
}

#[test]
fn entries_replace_symlinks_instead_of_writing_through_them() {
    let arena = Arena::new();
    let sentinel = format!("{}/sentinel", arena.tmp.path().display());
    let layer = RawTar::default()
        .symlink("rel", "../sentinel")
        .file("rel", b"pwned")
        .symlink("abs", &sentinel)
        .file("abs", b"pwned")
        .symlink("dir", &arena.outside())
        .dir("dir/")
        .file("dir/keep", b"pwned")
        .finish();
    arena.apply(&layer).unwrap();
    let root = arena.root();
    assert!(fs::symlink_metadata(root.join("rel")).unwrap().is_file());
    assert!(fs::symlink_metadata(root.join("abs")).unwrap().is_file());
    assert!(fs::symlink_metadata(root.join("dir")).unwrap().is_dir());
    assert_eq!(fs::read(root.join("dir/keep")).unwrap(), b"pwned");
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let arena = Arena::new();
    let err = arena
        .apply(&RawTar::default().hardlink("h", "/etc/passwd").finish())
        .unwrap_err();
    assert!(matches!(err, Error::Apply { .. }), "{err}");
    assert!(err.to_string().contains("\"h\""), "{err}");

    let layer = RawTar::default()
        .symlink("evil", "/")
        .hardlink("h", "evil/etc/passwd")
        .finish();
    assert!(arena.apply(&layer).is_err());
    let layer = RawTar::default()
        .symlink("evil", &arena.outside())
        .hardlink("h", "evil/keep")
        .finish();
    assert!(arena.apply(&layer).is_err());
    // A hardlink to a symlink links the symlink, not what it points at.
    let layer = RawTar::default()
        .symlink("s", "/etc/passwd")
        .hardlink("h2", "s")
        .finish();
    arena.apply(&layer).unwrap();
    assert!(
        fs::symlink_metadata(arena.root().join("h2"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn whiteouts_cannot_delete_outside() {
    let arena = Arena::new();
    assert_refused(
        arena.apply(&RawTar::default().file(".wh...", b"").finish()),
        ".wh...",
    );
    assert_refused(
        arena.apply(&RawTar::default().file("x/.wh..", b"").finish()),
        "x/.wh..",
    );
    assert_refused(
        arena.apply(&RawTar::default().file("../.wh.sentinel", b"").finish()),
        "../.wh.sentinel",
    );

    let tmp_abs = arena.tmp.path().display().to_string();
    let layer = RawTar::default()
        .symlink("parent", "..")
        .file("parent/.wh.sentinel", b"")
        .symlink("tmp", &tmp_abs)
        .file("tmp/.wh.sentinel", b"")
        .symlink("out", &arena.outside())
        .file("out/.wh.keep", b"")
        .file("out/.wh..wh..opq", b"")
        .finish();
    arena.apply(&layer).unwrap();
}

#[test]
fn out_of_range_owners_are_refused_without_panicking() {
    let arena = Arena::new();
    // uid u32::MAX is chown's "leave unchanged", never a real owner; the
    // header holds it in base-256.
    let mut header = tar::Header::new_ustar();
    header.set_path("f").unwrap();
    header.set_mode(0o644);
    header.set_size(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_uid(u64::from(u32::MAX));
    header.set_cksum();
    let mut layer = header.as_bytes().to_vec();
    layer.extend_from_slice(&[0u8; 1024]);
    assert_refused(arena.apply(&layer), "f");
    let layer = RawTar::default()
        .pax(&[("uid", b"4294967295")])
        .file("f", b"")
        .finish();
    assert_refused(arena.apply(&layer), "f");
    let layer = RawTar::default()
        .pax(&[("gid", b"99999999999")])
        .file("g", b"")
        .finish();
    assert_refused(arena.apply(&layer), "g");
    // Malformed PAX records are input errors, not panics.
    let layer = RawTar::default()
        .pax(&[("uid", b"-1")])
        .file("f", b"")
        .finish();
    assert!(matches!(arena.apply(&layer), Err(Error::Input { .. })));
}

#[test]
fn header_only_entries_carry_no_data_like_go() {
    // A symlink header claiming 512 bytes of data, followed by a real file.
    // Go (and thus docker and BuildKit) ignores the size of header-only
    // types; a reader that skipped 512 bytes here would see other files.
    let mut tar = RawTar::default();
    tar.header(b"link", b'2', 512, b"target");
    tar.file("file", b"content");
    let bytes = tar.finish();
    let mut reader = TarReader::new(bytes.as_slice());
    let mut seen = Vec::new();
    while let Some(entry) = reader.next_entry().unwrap() {
        seen.push(String::from_utf8(entry.path).unwrap());
    }
    assert_eq!(seen, ["link", "file"]);
}

#[test]
fn truncated_and_garbage_streams_are_errors() {
    let arena = Arena::new();
    let layer = RawTar::default().file("f", &[7u8; 2000]).finish();
    assert!(matches!(
        arena.apply(&layer[..1500]),
        Err(Error::Input { .. })
    ));
    assert!(matches!(
        arena.apply(&[0x55u8; 1024][..]),
        Err(Error::Input { .. })
    ));
    let mut gz = vec![0x1f, 0x8b];
    gz.extend_from_slice(&[0u8; 100]);
    assert!(matches!(arena.apply(&gz), Err(Error::Input { .. })));
    let stats = arena.apply(b"").unwrap();
    assert_eq!(stats.entries, 0);
}

/// A layer full of traps, to be corrupted at random below.
fn trap_layer(outside: &str) -> Vec<u8> {
    RawTar::default()
        .dir("a/")
        .symlink("a/up", "../..")
        .symlink("root", "/")
        .symlink("out", outside)
        .file("a/up/x", b"x")
        .file("root/etc/y", b"y")
        .hardlink("h", "a/up/x")
        .file("a/.wh.up", b"")
        .file(".wh..wh..opq", b"")
        .pax(&[("path", b"p/long"), ("SCHILY.xattr.user.k", b"v\nw")])
        .file("ignored", b"data")
        .gnu_long_name("g/long")
        .file("ignored2", b"data")
        .finish()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Corrupting bytes (names, types, sizes, link targets, PAX records) may
    /// make the layer fail, but never panic or touch anything outside.
    #[test]
    fn corrupted_layers_never_escape(
        edits in proptest::collection::vec((0usize..8192, proptest::prelude::any::<u8>()), 1..12)
    ) {
        let arena = Arena::new();
        let mut layer = trap_layer(&arena.outside());
        for (at, byte) in edits {
            let at = at % layer.len();
            layer[at] = byte;
            // Keep headers checksummed now and then so the corruption
            // reaches the applier instead of stopping at the checksum.
            let start = at - at % 512;
            if byte % 2 == 0 && layer[start + 257..start + 262] == *b"ustar" {
                let mut header = tar::Header::from_byte_slice(&layer[start..start + 512]).clone();
                header.set_cksum();
                layer[start..start + 512].copy_from_slice(header.as_bytes());
            }
        }
        let _ = arena.apply(&layer);
    }
}
