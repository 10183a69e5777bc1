//! Random small trees: rootfs layers round-trip, and a two-directory diff
//! applied on top of the lower tree reproduces the upper tree.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use proptest::prelude::*;
use rustix::fs::FileType;
use stagecraft_layer::{
    ApplyOptions, Compression, DiffSource, LazyRootfs, TarOptions, apply_layer, write_layer,
    write_tar,
};

/// Names worth mixing: short, dotted, non-ASCII, with a space, and one long
/// enough to need a PAX path record.
const NAMES: &[&str] = &["a", "b", "c.txt", "dir", "é", " sp", "z", LONG];
const LONG: &str = "long-name-long-name-long-name-long-name-long-name-long-name-long-name-long-name-long-name-long-name-xyz";

#[derive(Debug, Clone)]
enum Op {
    File {
        path: Vec<usize>,
        content: Vec<u8>,
        mode: u32,
        mtime: i64,
    },
    Dir {
        path: Vec<usize>,
        mode: u32,
    },
    Symlink {
        path: Vec<usize>,
        target: String,
    },
    Hardlink {
        path: Vec<usize>,
        to: usize,
    },
    Fifo {
        path: Vec<usize>,
    },
    Xattr {
        path: Vec<usize>,
        value: Vec<u8>,
    },
    Remove {
        path: Vec<usize>,
    },
}

fn path_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..NAMES.len(), 1..=3)
}

fn op_strategy(removals: bool) -> impl Strategy<Value = Op> {
    let file = (
        path_strategy(),
        prop::collection::vec(any::<u8>(), 0..1500),
        prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o4755, 0o2755, 0o444]),
        0i64..2_000_000_000,
    )
        .prop_map(|(path, content, mode, mtime)| Op::File {
            path,
            content,
            mode,
            mtime,
        });
    let dir = (
        path_strategy(),
        prop::sample::select(vec![0o755u32, 0o700, 0o1777, 0o2755]),
    )
        .prop_map(|(path, mode)| Op::Dir { path, mode });
    let link =
        (path_strategy(), "[a-z./]{1,12}").prop_map(|(path, target)| Op::Symlink { path, target });
    let hard = (path_strategy(), 0usize..8).prop_map(|(path, to)| Op::Hardlink { path, to });
    let fifo = path_strategy().prop_map(|path| Op::Fifo { path });
    let xattr = (path_strategy(), prop::collection::vec(any::<u8>(), 0..40))
        .prop_map(|(path, value)| Op::Xattr { path, value });
    let remove = path_strategy().prop_map(|path| Op::Remove { path });
    if removals {
        prop_oneof![4 => file, 2 => dir, 1 => link, 1 => hard, 1 => fifo, 1 => xattr, 3 => remove]
            .boxed()
    } else {
        prop_oneof![4 => file, 2 => dir, 1 => link, 1 => hard, 1 => fifo, 1 => xattr].boxed()
    }
}

fn resolve(root: &Path, path: &[usize]) -> PathBuf {
    path.iter()
        .fold(root.to_path_buf(), |p, &i| p.join(NAMES[i]))
}

/// Creates the parents of `path` as directories; false if something that
/// is not a directory is in the way.
fn make_parents(root: &Path, path: &Path) -> bool {
    let mut current = root.to_path_buf();
    let rel = path.strip_prefix(root).unwrap();
    let components: Vec<_> = rel.components().collect();
    for component in &components[..components.len() - 1] {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return false,
            Err(_) => fs::create_dir(&current).unwrap(),
        }
    }
    true
}

/// Applies `ops` to the tree at `root`, skipping those that do not fit.
fn build(root: &Path, ops: &[Op]) {
    let mut files: Vec<PathBuf> = Vec::new();
    for op in ops {
        let (Op::File { path, .. }
        | Op::Dir { path, .. }
        | Op::Symlink { path, .. }
        | Op::Hardlink { path, .. }
        | Op::Fifo { path }
        | Op::Xattr { path, .. }
        | Op::Remove { path }) = op;
        let target = resolve(root, path);
        let exists = fs::symlink_metadata(&target).ok();
        match op {
            Op::Remove { .. } => match exists {
                Some(meta) if meta.is_dir() => fs::remove_dir_all(&target).unwrap(),
                Some(_) => fs::remove_file(&target).unwrap(),
                None => {}
            },
            Op::Xattr { value, .. } => {
                // User xattrs live on files and directories only.
                if exists.is_some_and(|m| m.is_file() || m.is_dir()) {
                    set_xattr(&target, "user.prop", value);
                }
            }
            Op::File {
                content,
                mode,
                mtime,
                ..
            } => {
                if let Some(meta) = exists {
                    // Rewrite an existing file in place (a modification).
                    if meta.is_file() {
                        fs::write(&target, content).unwrap();
                        chmod(&target, *mode);
                        set_mtime(&target, *mtime);
                    }
                    continue;
                }
                if make_parents(root, &target) {
                    fs::write(&target, content).unwrap();
                    chmod(&target, *mode);
                    set_mtime(&target, *mtime);
                    files.push(target);
                }
            }
            _ if exists.is_some() => {}
            Op::Dir { mode, .. } => {
                if make_parents(root, &target) {
                    fs::create_dir(&target).unwrap();
                    chmod(&target, *mode);
                }
            }
            Op::Symlink { target: to, .. } => {
                if make_parents(root, &target) {
                    symlink(to, &target).unwrap();
                }
            }
            Op::Hardlink { to, .. } => {
                let live: Vec<&PathBuf> = files.iter().filter(|f| f.is_file()).collect();
                if !live.is_empty() && make_parents(root, &target) {
                    fs::hard_link(live[to % live.len()], &target).unwrap();
                }
            }
            Op::Fifo { .. } => {
                if make_parents(root, &target) {
                    mknod(&target, FileType::Fifo, 0, 0).unwrap();
                }
            }
        }
    }
}

fn compression(choice: u8) -> Compression {
    match choice % 3 {
        0 => Compression::None,
        1 => Compression::Gzip { level: 1 },
        _ => Compression::Zstd { level: 1 },
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        // Integration tests have no lib.rs for proptest to put regressions beside.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_trees_round_trip(ops in prop::collection::vec(op_strategy(false), 1..24), choice in any::<u8>()) {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir(&src).unwrap();
        fs::create_dir(&dst).unwrap();
        build(&src, &ops);
        let expected = snapshot(&src, ALL_MTIMES);
        let (info, bytes) = write_layer(
            &DiffSource::Rootfs { root: &src },
            &TarOptions::default(),
            compression(choice),
            Vec::new(),
        )
        .unwrap();
        let stats = apply_layer(bytes.as_slice(), &dst, &ApplyOptions::default()).unwrap();
        prop_assert_eq!(stats.diff_id, info.diff_id);
        assert_same(&expected, &snapshot(&dst, ALL_MTIMES));
    }

    #[test]
    fn random_diffs_rebuild_the_upper_tree(
        base in prop::collection::vec(op_strategy(false), 1..20),
        change in prop::collection::vec(op_strategy(true), 1..12),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper, flat) = (tmp.path().join("lower"), tmp.path().join("upper"), tmp.path().join("flat"));
        for dir in [&lower, &upper, &flat] {
            fs::create_dir(dir).unwrap();
        }
        build(&lower, &base);
        copy_tree(&lower, &upper);
        build(&upper, &change);
        let expected = snapshot(&upper, SnapOpts { file_mtimes: true, dir_mtimes: false });

        let options = TarOptions::default();
        let (_, layer1) = write_layer(&DiffSource::Rootfs { root: &lower }, &options, Compression::None, Vec::new()).unwrap();
        let diff = DiffSource::Directories { lower: &lower, upper: &upper };
        let (_, layer2) = write_layer(&diff, &options, Compression::None, Vec::new()).unwrap();
        apply_layer(layer1.as_slice(), &flat, &ApplyOptions::default()).unwrap();
        apply_layer(layer2.as_slice(), &flat, &ApplyOptions::default()).unwrap();
        assert_same(&expected, &snapshot(&flat, SnapOpts { file_mtimes: true, dir_mtimes: false }));
    }

    /// A stack of random layers (plain, gzip or zstd, each deleting and replacing what the
    /// ones below made, so inode numbers get reused) flattens to the same tar bytes through
    /// [`LazyRootfs`] as through applying it to a directory and archiving that.
    #[test]
    fn lazy_flattening_writes_the_same_tar(
        base in prop::collection::vec(op_strategy(false), 1..20),
        change1 in prop::collection::vec(op_strategy(true), 1..12),
        change2 in prop::collection::vec(op_strategy(true), 1..12),
        choices in prop::collection::vec(any::<u8>(), 3),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let trees: Vec<PathBuf> = ["t0", "t1", "t2"].iter().map(|n| tmp.path().join(n)).collect();
        fs::create_dir(&trees[0]).unwrap();
        build(&trees[0], &base);
        for (i, change) in [&change1, &change2].into_iter().enumerate() {
            fs::create_dir(&trees[i + 1]).unwrap();
            copy_tree(&trees[i], &trees[i + 1]);
            build(&trees[i + 1], change);
        }
        let options = TarOptions::default();
        let sources = [
            DiffSource::Rootfs { root: &trees[0] },
            DiffSource::Directories { lower: &trees[0], upper: &trees[1] },
            DiffSource::Directories { lower: &trees[1], upper: &trees[2] },
        ];
        let blobs: Vec<PathBuf> = sources.iter().zip(&choices).enumerate().map(|(i, (source, &choice))| {
            let path = tmp.path().join(format!("layer{i}"));
            write_layer(source, &options, compression(choice), fs::File::create(&path).unwrap()).unwrap();
            path
        }).collect();

        let (applied, lazy_root) = (tmp.path().join("applied"), tmp.path().join("lazy"));
        fs::create_dir(&applied).unwrap();
        fs::create_dir(&lazy_root).unwrap();
        let apply = ApplyOptions::default();
        let mut lazy = LazyRootfs::new();
        for blob in &blobs {
            apply_layer(fs::File::open(blob).unwrap(), &applied, &apply).unwrap();
            lazy.apply_layer(blob, &lazy_root, &apply).unwrap();
        }
        let expected = write_tar(&DiffSource::Rootfs { root: &applied }, &options, Vec::new()).unwrap();
        let flattened = lazy.write_tar(&lazy_root, &options, Vec::new()).unwrap();
        prop_assert!(expected == flattened, "the lazy tar differs");
    }
}
