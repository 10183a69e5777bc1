//! Write a rich tree as a layer, apply it to an empty directory, compare.
//! Also: determinism of the bytes and digests, and SOURCE_DATE_EPOCH.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;
use rustix::fs::FileType;
use stagecraft_layer::{
    ApplyOptions, Compression, DiffSource, LayerWriter, TarOptions, WhiteoutMode, apply_layer,
    write_layer, write_tar,
};

/// A `security.capability` value (VFS_CAP_REVISION_2) granting
/// `cap_net_raw` (bit 13) permitted + effective, as `setcap cap_net_raw+ep`.
fn capability_net_raw() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes()); // revision 2, effective
    v.extend_from_slice(&(1u32 << 13).to_le_bytes()); // permitted, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted, high word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high word
    v
}

/// Builds a tree exercising every entry type and header feature.
fn build_rich_tree(root: &Path) {
    let root_user = is_root();
    fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    fs::write(root.join("etc/hostname"), "box\n").unwrap();
    fs::write(root.join("etc/conf.d/empty"), "").unwrap();
    // Content over several buffer sizes, not a multiple of 512.
    let big: Vec<u8> = (0..1_300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::create_dir(root.join("bin")).unwrap();
    fs::write(root.join("bin/big"), &big).unwrap();

    // Special mode bits.
    fs::write(root.join("bin/su"), "#!/bin/sh\n").unwrap();
    chmod(&root.join("bin/su"), 0o4755);
    fs::write(root.join("bin/wall"), "x").unwrap();
    chmod(&root.join("bin/wall"), 0o2711);
    fs::create_dir(root.join("tmp")).unwrap();
    chmod(&root.join("tmp"), 0o1777);
    fs::create_dir(root.join("shared")).unwrap();
    chmod(&root.join("shared"), 0o2775);
    // A read-only directory with children: its mode must be set after them.
    fs::create_dir(root.join("ro")).unwrap();
    fs::write(root.join("ro/inside"), "in").unwrap();
    chmod(&root.join("ro"), 0o555);
    fs::write(root.join("private"), "secret").unwrap();
    chmod(&root.join("private"), 0o600);

    // Symlinks: relative, absolute, dangling, to a directory.
    symlink("hostname", root.join("etc/hostname.link")).unwrap();
    symlink("/etc/hostname", root.join("abs.link")).unwrap();
    symlink("nowhere/at/all", root.join("dangling")).unwrap();
    symlink("etc", root.join("etc.link")).unwrap();

    // Hardlinks: three names for one file, one in another directory.
    fs::write(root.join("bin/busybox"), "multi-call").unwrap();
    fs::hard_link(root.join("bin/busybox"), root.join("bin/sh")).unwrap();
    fs::hard_link(root.join("bin/busybox"), root.join("etc/ls")).unwrap();

    // A fifo.
    mknod(&root.join("fifo"), FileType::Fifo, 0, 0).unwrap();

    // Long names: a 150-byte component, a >255-byte path, a long link target.
    let long = "l".repeat(150);
    fs::write(root.join(&long), "long name").unwrap();
    let deep = root
        .join("d".repeat(90))
        .join("e".repeat(90))
        .join("f".repeat(90));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("g".repeat(60)), "deep").unwrap();
    let deep_rel = deep.strip_prefix(root).unwrap().join("g".repeat(60));
    assert!(deep_rel.as_os_str().len() > 255);
    symlink(&deep_rel, root.join("deep.link")).unwrap();
    fs::hard_link(root.join(&long), root.join("bin").join("m".repeat(120))).unwrap();

    // A name that is not UTF-8, and one with non-ASCII UTF-8.
    fs::write(root.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")), "bytes").unwrap();
    fs::write(root.join("ünïcødé"), "utf8").unwrap();

    // Xattrs in the user namespace, on a file and a directory.
    set_xattr(&root.join("etc/hostname"), "user.foo", b"bar");
    set_xattr(
        &root.join("etc/hostname"),
        "user.binary",
        &[0, 1, 2, 255, b'\n', b'='],
    );
    set_xattr(&root.join("etc"), "user.dir", b"attr");

    if root_user {
        // Ownership, devices, capabilities and trusted xattrs need root.
        lchown(&root.join("etc/hostname"), 1234, 5678);
        lchown(&root.join("shared"), 33, 33);
        lchown(&root.join("abs.link"), 7, 8);
        fs::write(root.join("bin/ping"), "ping").unwrap();
        chmod(&root.join("bin/ping"), 0o755);
        set_xattr(
            &root.join("bin/ping"),
            "security.capability",
            &capability_net_raw(),
        );
        set_xattr(&root.join("bin/ping"), "trusted.note", b"t");
        fs::create_dir(root.join("dev")).unwrap();
        mknod(&root.join("dev/null"), FileType::CharacterDevice, 1, 3).unwrap();
        mknod(&root.join("dev/loop9"), FileType::BlockDevice, 7, 9).unwrap();
        lchown(&root.join("dev/null"), 0, 5);
    }
    // Fixed, varied mtimes (with nanoseconds from creation elsewhere).
    set_mtime(&root.join("etc/conf.d/empty"), 1_000_000_000);
    set_mtime(&root.join("dangling"), 1_100_000_000);
}

fn write_bytes(
    source: &DiffSource<'_>,
    options: &TarOptions,
    compression: Compression,
) -> (Vec<u8>, stagecraft_layer::LayerInfo) {
    let (info, bytes) = write_layer(source, options, compression, Vec::new()).unwrap();
    (bytes, info)
}

#[test]
fn rich_tree_round_trips_through_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_rich_tree(&src);
    let expected = snapshot(&src, ALL_MTIMES);
    // The comparison below is only as good as the snapshot: make sure it
    // sees the interesting parts.
    assert!(expected.len() >= 30, "{expected:#?}");
    assert!(expected["bin/sh"].contains("link-group=bin/busybox"));
    assert!(expected["etc/hostname"].contains("user.binary"));
    assert!(expected["bin/su"].contains("mode=4755"));
    if is_root() {
        assert!(expected["bin/ping"].contains("security.capability"));
        assert!(expected["dev/null"].starts_with("char mode=644 uid=0 gid=5 dev=1:3"));
    }

    for compression in [Compression::None, Compression::gzip(), Compression::zstd()] {
        let (bytes, info) = write_bytes(
            &DiffSource::Rootfs { root: &src },
            &TarOptions::default(),
            compression,
        );
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.media_type(), compression.media_type());
        if compression == Compression::None {
            assert_eq!(info.digest, info.diff_id);
            assert_eq!(info.uncompressed_size, info.size);
        }

        let dst = tmp.path().join(format!(
            "dst-{}",
            info.media_type().rsplit('.').next().unwrap()
        ));
        fs::create_dir(&dst).unwrap();
        let stats = apply_layer(bytes.as_slice(), &dst, &ApplyOptions::default()).unwrap();
        assert_eq!(stats.diff_id, info.diff_id);
        assert_eq!(stats.digest, info.digest);
        assert_eq!(stats.size, info.size);
        assert_eq!(stats.uncompressed_size, info.uncompressed_size);
        assert_eq!(stats.compression.media_type(), compression.media_type());
        assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
        assert_same(&expected, &snapshot(&dst, ALL_MTIMES));
    }
}

#[test]
fn tar_headers_follow_the_docker_conventions() {
    let tmp = tempfile::tempdir().unwrap();
    build_rich_tree(tmp.path());
    let tar = write_tar(
        &DiffSource::Rootfs { root: tmp.path() },
        &TarOptions::default(),
        Vec::new(),
    )
    .unwrap();
    let entries = read_tar(&tar);
    let by_name = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };

    // Directories end with '/', and come before their contents.
    assert_eq!(by_name("etc/").kind, '5');
    let pos = |name: &str| entries.iter().position(|e| e.name == name).unwrap();
    assert!(pos("etc/") < pos("etc/hostname"));
    // Depth-first, siblings bytewise: "etc/" subtree before "etc.link".
    assert!(pos("etc/ls") < pos("etc.link"));

    // Hardlinks: the first name is the file, later names link to it.
    assert_eq!(by_name("bin/busybox").kind, '0');
    assert_eq!(by_name("bin/sh").kind, '1');
    assert_eq!(by_name("bin/sh").link.as_deref(), Some("bin/busybox"));
    assert_eq!(by_name("etc/ls").link.as_deref(), Some("bin/busybox"));

    // Long names: PAX `path` / `linkpath`, no GNU long-name entries.
    let long = "l".repeat(150);
    assert!(by_name(&long).pax.iter().any(|(k, _)| k == "path"));
    let deep_link = by_name("deep.link");
    assert!(deep_link.pax.iter().any(|(k, _)| k == "linkpath"));
    assert!(!tar.windows(13).any(|w| w == b"././@LongLink"));

    // Xattrs as SCHILY.xattr records; setuid kept; numeric ids, no names.
    let host = by_name("etc/hostname");
    assert!(
        host.pax
            .contains(&("SCHILY.xattr.user.foo".into(), hex::encode("bar")))
    );
    assert_eq!(by_name("bin/su").mode, 0o4755);
    assert_eq!(by_name("tmp/").mode, 0o1777);
    if is_root() {
        assert_eq!((host.uid, host.gid), (1234, 5678));
        assert!(
            by_name("bin/ping")
                .pax
                .iter()
                .any(|(k, _)| k == "SCHILY.xattr.security.capability")
        );
        assert_eq!(by_name("dev/null").kind, '3');
        assert_eq!(by_name("dev/loop9").kind, '4');
    }
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.header().username_bytes(), Some(&b""[..]));
        assert_eq!(&entry.header().as_bytes()[257..265], b"ustar\x0000");
    }
    // Another reader agrees on names, types and sizes (the tar crate cannot
    // parse PAX values with newlines, so compare on a tree without them).
    let plain = tempfile::tempdir().unwrap();
    fs::write(plain.path().join("x".repeat(120)), "long").unwrap();
    symlink("y".repeat(130), plain.path().join("l")).unwrap();
    fs::create_dir(plain.path().join("d")).unwrap();
    let tar = write_tar(
        &DiffSource::Rootfs { root: plain.path() },
        &TarOptions::default(),
        Vec::new(),
    )
    .unwrap();
    let ours: Vec<_> = read_tar(&tar)
        .into_iter()
        .map(|e| (e.name, e.kind, e.size))
        .collect();
    assert_eq!(ours, read_tar_with_tar_crate(&tar));
    // The archive ends with exactly two zero blocks.
    assert!(tar.len() % 512 == 0 && tar[tar.len() - 1024..].iter().all(|&b| b == 0));
}

#[test]
fn same_tree_gives_identical_bytes_and_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    build_rich_tree(&src);
    let source = DiffSource::Rootfs { root: &src };
    let options = TarOptions {
        source_date_epoch: None,
    };

    // A copy made by applying the layer has other inodes, whole-second
    // mtimes and another creation order, and must still give the same bytes.
    let (first, _) = write_bytes(&source, &options, Compression::None);
    let copy = tmp.path().join("copy");
    fs::create_dir(&copy).unwrap();
    apply_layer(first.as_slice(), &copy, &ApplyOptions::default()).unwrap();

    for compression in [
        Compression::None,
        Compression::gzip(),
        Compression::zstd(),
        Compression::Gzip { level: 1 },
    ] {
        let (a, info_a) = write_bytes(&source, &options, compression);
        let (b, info_b) = write_bytes(&source, &options, compression);
        let (c, info_c) = write_bytes(&DiffSource::Rootfs { root: &copy }, &options, compression);
        assert!(a == b && a == c, "{compression:?}: output differs");
        assert_eq!(info_a, info_b);
        assert_eq!(info_a, info_c);
    }

    // zstd output does not depend on the worker count.
    let tar = write_tar(&source, &options, Vec::new()).unwrap();
    let mut outputs = Vec::new();
    for workers in [1, 2, 4] {
        let mut writer =
            LayerWriter::with_zstd_workers(Vec::new(), Compression::zstd(), workers).unwrap();
        std::io::Write::write_all(&mut writer, &tar).unwrap();
        outputs.push(writer.finish().unwrap());
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
    // The gzip header is fixed: no mtime, no file name, OS "unknown".
    let (gz, _) = write_bytes(&source, &options, Compression::gzip());
    assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
}

#[test]
fn source_date_epoch_clamps_only_newer_mtimes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::write(root.join("old"), "o").unwrap();
    fs::write(root.join("new"), "n").unwrap();
    fs::create_dir(root.join("dir")).unwrap();
    symlink("old", root.join("link")).unwrap();
    set_mtime(&root.join("old"), 1_000);
    set_mtime(&root.join("new"), 5_000_000_000 - 1); // in 2128
    set_mtime(&root.join("link"), 9_000);
    let epoch = 2_000;
    let tar = write_tar(
        &DiffSource::Rootfs { root },
        &TarOptions {
            source_date_epoch: Some(epoch),
        },
        Vec::new(),
    )
    .unwrap();
    let entries = read_tar(&tar);
    let mtime = |n: &str| entries.iter().find(|e| e.name == n).unwrap().mtime;
    assert_eq!(mtime("old"), 1_000);
    assert_eq!(mtime("new"), 2_000);
    assert_eq!(mtime("link"), 2_000);
    assert_eq!(mtime("dir/"), 2_000); // created now, so newer than the epoch
}

#[test]
fn layer_writer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<LayerWriter<Vec<u8>>>();
    assert_send::<LayerWriter<fs::File>>();
}

#[test]
fn applying_without_chown_keeps_the_applier_as_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    if is_root() {
        lchown(&src.join("f"), 4321, 4321);
    }
    let tar = write_tar(
        &DiffSource::Rootfs { root: &src },
        &TarOptions::default(),
        Vec::new(),
    )
    .unwrap();
    let dst = tmp.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let options = ApplyOptions {
        chown: false,
        whiteouts: WhiteoutMode::Delete,
    };
    apply_layer(tar.as_slice(), &dst, &options).unwrap();
    let meta = fs::metadata(dst.join("f")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        rustix::process::geteuid().as_raw()
    );
}

/// A file a compressed layer writes may take the inode number of one a plain layer left its
/// bytes in (here: the file it replaces, deleted just before); its own bytes are what the
/// flattened tar must hold. Also: a deferred file's bytes are never written to the directory.
#[test]
fn lazy_flattening_never_takes_bytes_from_a_replaced_file() {
    use stagecraft_layer::LazyRootfs;
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
    fs::create_dir(&lower).unwrap();
    fs::write(lower.join("a"), vec![b'A'; 1 << 20]).unwrap();
    fs::create_dir(&upper).unwrap();
    fs::write(upper.join("a"), vec![b'B'; 1 << 20]).unwrap();
    // Same size, and the two writes may share a timestamp tick: a distinct mtime is what
    // makes the diff see the change.
    set_mtime(&upper.join("a"), 1_000_000_000);
    let options = TarOptions::default();
    let blob = |name: &str, source: &DiffSource<'_>, compression| {
        let path = tmp.path().join(name);
        write_layer(
            source,
            &options,
            compression,
            fs::File::create(&path).unwrap(),
        )
        .unwrap();
        path
    };
    let plain = blob(
        "plain",
        &DiffSource::Rootfs { root: &lower },
        Compression::None,
    );
    let gzip = blob(
        "gzip",
        &DiffSource::Directories {
            lower: &lower,
            upper: &upper,
        },
        Compression::Gzip { level: 1 },
    );
    let root = tmp.path().join("flat");
    fs::create_dir(&root).unwrap();
    let mut lazy = LazyRootfs::new();
    lazy.apply_layer(&plain, &root, &ApplyOptions::default())
        .unwrap();
    assert_eq!(
        fs::metadata(root.join("a")).unwrap().blocks(),
        0,
        "bytes written"
    );
    lazy.apply_layer(&gzip, &root, &ApplyOptions::default())
        .unwrap();
    let flattened = lazy.write_tar(&root, &options, Vec::new()).unwrap();
    let expected = write_tar(&DiffSource::Rootfs { root: &upper }, &options, Vec::new()).unwrap();
    assert!(
        flattened == expected,
        "the flattened tar holds the replaced bytes"
    );
}
