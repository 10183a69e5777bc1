//! Overlay upper directories → layers, the two-directory fallback, and
//! overlay-style snapshots (whiteout mode) mounted back as lower layers.
// Tests print what they measured or skipped, for the reader of the test log.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use rustix::fs::FileType;
use stagecraft_layer::{
    ApplyOptions, DiffSource, OverlayXattr, TarOptions, WhiteoutMode, apply_layer, write_tar,
};

const FILES_ONLY: SnapOpts = SnapOpts {
    file_mtimes: true,
    dir_mtimes: false,
};

/// The namespace overlayfs uses here: `trusted.` needs root.
fn namespace() -> OverlayXattr {
    if is_root() {
        OverlayXattr::Trusted
    } else {
        OverlayXattr::User
    }
}

fn dirs(base: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = base.join(n);
            fs::create_dir_all(&p).unwrap();
            p
        })
        .collect()
}

fn build_lower(lower: &Path) {
    fs::create_dir_all(lower.join("a")).unwrap();
    fs::write(lower.join("a/file1"), "one").unwrap();
    fs::write(lower.join("a/file2"), "two").unwrap();
    fs::create_dir_all(lower.join("dir_del/sub")).unwrap();
    fs::write(lower.join("dir_del/x"), "x").unwrap();
    fs::write(lower.join("dir_del/sub/y"), "y").unwrap();
    fs::create_dir(lower.join("dir_replace")).unwrap();
    fs::write(lower.join("dir_replace/old1"), "old").unwrap();
    fs::write(lower.join("dir_replace/old2"), "old").unwrap();
    fs::create_dir(lower.join("keep")).unwrap();
    fs::write(lower.join("keep/unchanged"), "same").unwrap();
    fs::write(lower.join("mod.txt"), "before").unwrap();
    fs::create_dir_all(lower.join("deep/p/q")).unwrap();
    fs::write(lower.join("deep/p/q/r.txt"), "r").unwrap();
}

/// The change made on top of [`build_lower`], through any view of it.
fn change(root: &Path) {
    fs::remove_file(root.join("a/file1")).unwrap();
    fs::remove_dir_all(root.join("dir_del")).unwrap();
    fs::remove_dir_all(root.join("dir_replace")).unwrap();
    fs::create_dir(root.join("dir_replace")).unwrap();
    fs::write(root.join("dir_replace/new"), "new").unwrap();
    fs::write(root.join("mod.txt"), "after, longer").unwrap();
    fs::create_dir(root.join("newdir")).unwrap();
    fs::write(root.join("newdir/f"), "f").unwrap();
    fs::write(root.join("deep/p/q/new.txt"), "deep").unwrap();
}

/// What overlayfs leaves in the upper directory for [`change`], made by hand
/// for machines where overlayfs cannot be mounted.
fn fake_upper(upper: &Path, ns: OverlayXattr) {
    fs::create_dir(upper.join("a")).unwrap();
    mknod(&upper.join("a/file1"), FileType::CharacterDevice, 0, 0).unwrap();
    mknod(&upper.join("dir_del"), FileType::CharacterDevice, 0, 0).unwrap();
    fs::create_dir(upper.join("dir_replace")).unwrap();
    set_xattr(&upper.join("dir_replace"), ns.opaque(), b"y");
    fs::write(upper.join("dir_replace/new"), "new").unwrap();
    fs::write(upper.join("mod.txt"), "after, longer").unwrap();
    fs::create_dir(upper.join("newdir")).unwrap();
    fs::write(upper.join("newdir/f"), "f").unwrap();
    fs::create_dir_all(upper.join("deep/p/q")).unwrap();
    fs::write(upper.join("deep/p/q/new.txt"), "deep").unwrap();
}

fn tar_of(source: &DiffSource<'_>) -> Vec<u8> {
    write_tar(source, &TarOptions::default(), Vec::new()).unwrap()
}

#[test]
fn overlay_upper_becomes_whiteouts_and_opaque_markers() {
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged] =
        <[PathBuf; 4]>::try_from(dirs(tmp.path(), &["lower", "upper", "work", "merged"])).unwrap();
    build_lower(&lower);
    let ns = namespace();

    let mut merged_view = None;
    match Overlay::mount(&[&lower], Some((&upper, &work)), &merged) {
        Some(mount) => {
            change(&mount.merged);
            merged_view = Some(snapshot(&mount.merged, FILES_ONLY));
            drop(mount);
            // overlayfs shares one inode between whiteouts: the link count
            // is no way to recognise them.
            let meta = fs::symlink_metadata(upper.join("dir_del")).unwrap();
            assert!(std::os::unix::fs::MetadataExt::nlink(&meta) >= 1);
        }
        None => {
            eprintln!("overlayfs cannot be mounted here; building the upper directory by hand");
            if mknod(&tmp.path().join("probe"), FileType::CharacterDevice, 0, 0).is_err() {
                eprintln!("cannot create whiteout devices either; skipping");
                return;
            }
            fake_upper(&upper, ns);
        }
    }

    let layer = tar_of(&DiffSource::OverlayUpper {
        upper: &upper,
        lower_dirs: &[],
        xattr: ns,
    });
    let entries = read_tar(&layer);
    assert_eq!(
        names(&entries),
        [
            "a/",
            "a/.wh.file1",
            "deep/",
            "deep/p/",
            "deep/p/q/",
            "deep/p/q/new.txt",
            ".wh.dir_del",
            "dir_replace/",
            "dir_replace/.wh..wh..opq",
            "dir_replace/new",
            "mod.txt",
            "newdir/",
            "newdir/f",
        ]
    );
    // Whiteouts are empty regular files; overlay's own xattrs stay out.
    let whiteout = entries.iter().find(|e| e.name == ".wh.dir_del").unwrap();
    assert_eq!((whiteout.kind, whiteout.size), ('0', 0));
    assert!(
        entries
            .iter()
            .all(|e| e.pax.iter().all(|(k, _)| !k.contains("overlay")))
    );

    // Applying the lower tree then this layer gives what the mount showed.
    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).unwrap();
    let base = tar_of(&DiffSource::Rootfs { root: &lower });
    apply_layer(base.as_slice(), &flat, &ApplyOptions::default()).unwrap();
    let stats = apply_layer(layer.as_slice(), &flat, &ApplyOptions::default()).unwrap();
    assert_eq!((stats.whiteouts, stats.opaque_dirs), (2, 1));
    assert!(!flat.join("dir_del").exists() && !flat.join("a/file1").exists());
    assert!(!flat.join("dir_replace/old1").exists() && flat.join("dir_replace/new").exists());
    if let Some(expected) = merged_view {
        assert_same(&expected, &snapshot(&flat, FILES_ONLY));
    }
}

#[test]
fn two_directory_diff_matches_overlay_with_lower_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged, copy] = <[PathBuf; 5]>::try_from(dirs(
        tmp.path(),
        &["lower", "upper", "work", "merged", "copy"],
    ))
    .unwrap();
    build_lower(&lower);
    symlink("mod.txt", lower.join("link")).unwrap();
    fs::write(lower.join("keep/chmod-me"), "c").unwrap();
    copy_tree(&lower, &copy);

    // Changes without an opaque directory (a plain diff cannot tell a
    // replaced directory from an emptied one), plus a few metadata-only ones.
    let same_change = |root: &Path| {
        fs::remove_file(root.join("a/file1")).unwrap();
        fs::remove_dir_all(root.join("dir_del")).unwrap();
        fs::write(root.join("mod.txt"), "after, longer").unwrap();
        fs::create_dir(root.join("newdir")).unwrap();
        fs::write(root.join("newdir/f"), "f").unwrap();
        fs::write(root.join("deep/p/q/new.txt"), "deep").unwrap();
        chmod(&root.join("keep/chmod-me"), 0o600);
        fs::remove_file(root.join("link")).unwrap();
        symlink("a/file2", root.join("link")).unwrap();
        // Created and deleted again: overlay copies `dir_replace` up, but
        // nothing changed in it, so it must not appear.
        fs::write(root.join("dir_replace/tmp"), "t").unwrap();
        fs::remove_file(root.join("dir_replace/tmp")).unwrap();
        if is_root() {
            lchown(&root.join("a/file2"), 1000, 1000);
        }
    };

    let Some(mount) = Overlay::mount(&[&lower], Some((&upper, &work)), &merged) else {
        eprintln!("overlayfs cannot be mounted here; skipping");
        return;
    };
    same_change(&mount.merged);
    drop(mount);
    same_change(&copy);

    let ns = namespace();
    let lowers = [lower.clone()];
    let from_overlay = read_tar(&tar_of(&DiffSource::OverlayUpper {
        upper: &upper,
        lower_dirs: &lowers,
        xattr: ns,
    }));
    let from_dirs = read_tar(&tar_of(&DiffSource::Directories {
        lower: &lower,
        upper: &copy,
    }));
    let strip = |entries: Vec<TarEntry>| {
        entries
            .iter()
            .map(TarEntry::without_mtime)
            .collect::<Vec<_>>()
    };
    let expected_names = [
        "a/",
        "a/.wh.file1",
        "a/file2",
        "deep/",
        "deep/p/",
        "deep/p/q/",
        "deep/p/q/new.txt",
        ".wh.dir_del",
        "keep/",
        "keep/chmod-me",
        "link",
        "mod.txt",
        "newdir/",
        "newdir/f",
    ];
    let expected_names: Vec<&str> = expected_names
        .into_iter()
        .filter(|n| is_root() || *n != "a/file2")
        .collect();
    assert_eq!(names(&from_dirs), expected_names);
    assert_eq!(strip(from_overlay), strip(from_dirs));

    // Without lower dirs the overlay layer also lists the copied-up
    // directory, and is still correct to apply.
    let loose = read_tar(&tar_of(&DiffSource::OverlayUpper {
        upper: &upper,
        lower_dirs: &[],
        xattr: ns,
    }));
    assert!(names(&loose).contains(&"dir_replace/".to_string()));
}

#[test]
fn overlay_snapshots_mount_to_the_flattened_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, flat, s1, s2, merged] = <[PathBuf; 6]>::try_from(dirs(
        tmp.path(),
        &["lower", "upper", "flat", "s1", "s2", "merged"],
    ))
    .unwrap();
    build_lower(&lower);
    let ns = namespace();
    if mknod(&tmp.path().join("probe"), FileType::CharacterDevice, 0, 0).is_err() {
        eprintln!("cannot create whiteout devices here; skipping");
        return;
    }
    fake_upper(&upper, ns);
    let layer1 = tar_of(&DiffSource::Rootfs { root: &lower });
    let layer2 = tar_of(&DiffSource::OverlayUpper {
        upper: &upper,
        lower_dirs: &[],
        xattr: ns,
    });

    // Flattened: whiteouts applied as deletions.
    apply_layer(layer1.as_slice(), &flat, &ApplyOptions::default()).unwrap();
    apply_layer(layer2.as_slice(), &flat, &ApplyOptions::default()).unwrap();

    // One directory per layer, whiteouts recorded overlay-style.
    let overlay_mode = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay(ns),
        ..ApplyOptions::default()
    };
    apply_layer(layer1.as_slice(), &s1, &overlay_mode).unwrap();
    apply_layer(layer2.as_slice(), &s2, &overlay_mode).unwrap();
    let whiteout = fs::symlink_metadata(s2.join("dir_del")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &whiteout.file_type()
    ));
    assert_eq!(std::os::unix::fs::MetadataExt::rdev(&whiteout), 0);
    let opaque =
        rustix::fs::lgetxattr(s2.join("dir_replace"), ns.opaque(), &mut [0u8; 8][..]).unwrap();
    assert_eq!(opaque, 1);

    // The snapshot directory reads back as the same layer.
    let again = tar_of(&DiffSource::OverlayUpper {
        upper: &s2,
        lower_dirs: &[],
        xattr: ns,
    });
    let strip = |t: &[u8]| {
        read_tar(t)
            .iter()
            .map(TarEntry::without_mtime)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&again), strip(&layer2));

    // Stacked as overlay lower layers, they show the flattened tree.
    let Some(mount) = Overlay::mount(&[&s2, &s1], None, &merged) else {
        eprintln!("overlayfs cannot be mounted here; skipping the mount check");
        return;
    };
    assert_same(
        &snapshot(&flat, FILES_ONLY),
        &snapshot(&mount.merged, FILES_ONLY),
    );
}

#[test]
fn directory_replacing_a_whiteout_in_one_layer_is_opaque_in_overlay_mode() {
    if mknod(
        &tempfile::tempdir().unwrap().path().join("probe"),
        FileType::CharacterDevice,
        0,
        0,
    )
    .is_err()
    {
        eprintln!("cannot create whiteout devices here; skipping");
        return;
    }
    // `.wh.d` then `d/`: lower `d` is deleted and a new, empty `d` made.
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind) in [
        (".wh.d", tar::EntryType::Regular),
        ("d/", tar::EntryType::Directory),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_data(&mut header, name, std::io::empty())
            .unwrap();
    }
    let layer = builder.into_inner().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace();
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay(ns),
        ..ApplyOptions::default()
    };
    apply_layer(layer.as_slice(), tmp.path(), &options).unwrap();
    assert!(tmp.path().join("d").is_dir());
    let mut value = [0u8; 4];
    let len = rustix::fs::lgetxattr(tmp.path().join("d"), ns.opaque(), &mut value[..]).unwrap();
    assert_eq!(&value[..len], b"y");
}

/// A regular file of an upper directory, whose xattrs the writer reads through the open file,
/// keeps every one of them but overlayfs's own; a file overlayfs only copied the metadata of
/// (its data still in a lower layer) is refused rather than written empty.
#[test]
fn upper_files_keep_their_xattrs_and_metacopy_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("d")).unwrap();
    fs::write(upper.join("d/plain"), "plain").unwrap();
    fs::write(upper.join("d/noted"), "noted").unwrap();
    set_xattr(&upper.join("d/noted"), "user.b", &[0, 255, b'=']);
    set_xattr(&upper.join("d/noted"), "user.a", b"first");
    set_xattr(&upper.join("d/noted"), ns.opaque(), b"y");
    let source = DiffSource::OverlayUpper {
        upper: &upper,
        lower_dirs: &[],
        xattr: ns,
    };
    let entries = read_tar(&tar_of(&source));
    let pax_of = |name: &str| {
        let entry = entries.iter().find(|e| e.name == name).unwrap();
        entry.pax.clone()
    };
    assert_eq!(
        pax_of("d/noted"),
        [
            ("SCHILY.xattr.user.a".to_owned(), hex::encode("first")),
            (
                "SCHILY.xattr.user.b".to_owned(),
                hex::encode([0, 255, b'='])
            ),
        ]
    );
    assert!(pax_of("d/plain").is_empty());

    set_xattr(
        &upper.join("d/plain"),
        &format!("{}metacopy", ns.prefix()),
        b"",
    );
    let refused = write_tar(&source, &TarOptions::default(), Vec::new()).unwrap_err();
    assert!(
        matches!(
            &refused,
            stagecraft_layer::Error::UnsupportedOverlayFeature { path, .. }
                if path.ends_with("d/plain")
        ),
        "{refused:?}"
    );
}
