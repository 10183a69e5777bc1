//! Several runners exporting `--cache-to type=registry` to one ref at once, against the
//! Debian `docker-registry` (distribution 2.8): every runner's records stay reachable.
//!
//! The runners are threads, each with its own store; where the test needs an interleaving
//! (both read the ref before either writes, both write before either checks) it holds them
//! at barriers inside the export, never with sleeps.

use stagecraft_build::{CacheBounds, ImportedCaches, block_on, push_cache_document, registry};
use stagecraft_image::{Digest, ImageManifest, media_type};
use stagecraft_registry::merge::{MergePolicy, MergeStage};
use stagecraft_solve::LayerRef;
use stagecraft_solve::remote_cache::CacheDocument;
use stagecraft_store::Store;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Barrier;
use std::time::Duration;

fn shared_dir() -> PathBuf {
    std::env::var_os("STAGECRAFT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// A registry on a free port, stopped when dropped.
struct LocalRegistry {
    _dir: tempfile::TempDir,
    pid_file: PathBuf,
    port: u16,
}

impl LocalRegistry {
    fn start() -> LocalRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.path().join("registry");
        fs::create_dir_all(&data).unwrap();
        let started = Command::new(shared_dir().join("fixtures/start-registry"))
            .arg(port.to_string())
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "start-registry: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        LocalRegistry {
            pid_file: data.join("registry.pid"),
            _dir: dir,
            port,
        }
    }

    fn reference(&self, tag: &str) -> stagecraft_registry::Reference {
        stagecraft_registry::parse_reference(&format!("127.0.0.1:{}/team/app:{tag}", self.port))
            .unwrap()
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// A runner: its own store, and a cache document of the steps it built.
struct Runner {
    _dir: tempfile::TempDir,
    store: Store,
    document: CacheDocument,
}

impl Runner {
    /// A runner whose build made one layer per step name.
    fn new(steps: &[&str]) -> Runner {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let records = steps
            .iter()
            .map(|step| {
                let blob = store
                    .write_blob_bytes(format!("layer of {step}").as_bytes())
                    .unwrap();
                let layer = LayerRef {
                    diff_id: Digest::of(step.as_bytes()),
                    media_type: media_type::OCI_LAYER_GZIP.to_owned(),
                    digest: blob.digest,
                    size: blob.size,
                    uncompressed_size: None,
                    created_by: format!("RUN {step}"),
                    created: None,
                };
                (format!("key-{step}"), layer)
            })
            .collect();
        let document = CacheDocument {
            version: 1,
            records,
            exported: BTreeMap::new(),
        };
        Runner {
            _dir: dir,
            store,
            document,
        }
    }
}

/// The record keys a cold runner imports from the ref, after fetching every blob they name
/// (so each is reachable, not just listed).
fn reachable(registry: &LocalRegistry, tag: &str) -> Vec<String> {
    let cold = Runner::new(&[]);
    let client = stagecraft_build::registry(&[]);
    let reference = registry.reference(tag);
    let manifest = block_on(client.manifest(&reference)).unwrap().unwrap();
    let manifest = ImageManifest::from_slice(&manifest.bytes).unwrap();
    block_on(stagecraft_registry::fetch_blob(
        &client,
        &cold.store,
        &reference,
        &manifest.config.digest,
    ))
    .unwrap()
    .unwrap();
    let document =
        CacheDocument::from_json(&cold.store.read_blob(&manifest.config.digest).unwrap()).unwrap();
    for layer in document.records.values() {
        block_on(stagecraft_registry::fetch_blob(
            &client,
            &cold.store,
            &reference,
            &layer.digest,
        ))
        .unwrap()
        .unwrap();
    }
    // And through the import path a build takes.
    let location = stagecraft_build::CacheLocation::Registry(reference.whole());
    let sink = |_: stagecraft_solve::progress::Event| {};
    let imported = ImportedCaches::import(&cold.store, &client, &[location], &sink);
    drop(imported);
    for key in document.records.keys() {
        assert!(cold.store.get_cache_record(key).unwrap().is_some(), "{key}");
    }
    document.records.into_keys().collect()
}

type Observer<'a> = Box<dyn Fn(MergeStage) + Send + Sync + 'a>;

/// The runners export to one ref at once, each telling its observer where it is (the tests
/// hold them at barriers there). Returns each runner's attempt count.
fn export_together(
    local: &LocalRegistry,
    tag: &str,
    runners: &[&Runner],
    observers: Vec<Observer<'_>>,
    policy: &MergePolicy,
) -> Vec<u32> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = runners
            .iter()
            .zip(observers)
            .map(|(runner, observe)| {
                scope.spawn(move || {
                    let client = registry(&[]);
                    push_cache_document(
                        &runner.store,
                        &client,
                        &local.reference(tag),
                        &runner.document,
                        policy,
                        &CacheBounds::default(),
                        &observe,
                    )
                    .unwrap()
                    .pushed
                    .attempts
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// No settle delay, a short backoff: the barriers give the interleavings.
fn quick() -> MergePolicy {
    MergePolicy {
        settle: Duration::ZERO,
        backoff: Duration::from_millis(1),
        ..MergePolicy::default()
    }
}

#[test]
fn two_runners_overwriting_each_other_both_end_reachable() {
    let registry = LocalRegistry::start();
    let a = Runner::new(&["deps-a", "build-a"]);
    let b = Runner::new(&["deps-b", "test-b"]);
    // Both read the (missing) ref, both find it unmoved and write, and only then does either
    // check: one write is overwritten by a manifest that lacks its records, which is
    // exactly last-writer-wins. The overwritten runner must notice and merge again.
    let writing = Barrier::new(2);
    let written = Barrier::new(2);
    let hold = || -> Observer<'_> {
        Box::new(|stage| match stage {
            MergeStage::Writing(1) => drop(writing.wait()),
            MergeStage::Written(1) => drop(written.wait()),
            _ => {}
        })
    };
    let attempts = export_together(
        &registry,
        "buildcache",
        &[&a, &b],
        vec![hold(), hold()],
        &quick(),
    );
    let mut sorted = attempts.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [1, 2],
        "one runner lost the race and retried: {attempts:?}"
    );
    assert_eq!(
        reachable(&registry, "buildcache"),
        ["key-build-a", "key-deps-a", "key-deps-b", "key-test-b"]
    );
}

#[test]
fn a_runner_that_sees_the_ref_move_merges_again_before_writing() {
    let registry = LocalRegistry::start();
    let a = Runner::new(&["deps-a"]);
    let b = Runner::new(&["deps-b"]);
    // Both read the missing ref; then B writes and checks, and only then does A go on: A
    // finds the ref moved since its read, and merges B's records in instead of writing.
    let read = Barrier::new(2);
    let b_done = Barrier::new(2);
    let a_hold: Observer<'_> = Box::new(|stage| {
        if stage == MergeStage::Merged(1) {
            read.wait();
            b_done.wait();
        }
    });
    let b_hold: Observer<'_> = Box::new(|stage| {
        if stage == MergeStage::Merged(1) {
            read.wait();
        }
    });
    let attempts = std::thread::scope(|scope| {
        let b_thread = scope.spawn(|| {
            let attempts = export_together(&registry, "moved", &[&b], vec![b_hold], &quick());
            b_done.wait();
            attempts
        });
        let a_attempts = export_together(&registry, "moved", &[&a], vec![a_hold], &quick());
        (a_attempts[0], b_thread.join().unwrap()[0])
    });
    assert_eq!(attempts, (2, 1));
    assert_eq!(reachable(&registry, "moved"), ["key-deps-a", "key-deps-b"]);
}

#[test]
fn many_runners_at_once_converge() {
    let registry = LocalRegistry::start();
    let names: Vec<String> = (0..6).map(|i| format!("step-{i}")).collect();
    let runners: Vec<Runner> = names.iter().map(|n| Runner::new(&[n.as_str()])).collect();
    let refs: Vec<&Runner> = runners.iter().collect();
    // All read the missing ref before any writes; then they race with the default policy
    // (its settle delay is what covers a writer stalled between its check and its write).
    let read = Barrier::new(runners.len());
    let observers = runners
        .iter()
        .map(|_| -> Observer<'_> {
            Box::new(|stage| {
                if stage == MergeStage::Merged(1) {
                    read.wait();
                }
            })
        })
        .collect();
    export_together(&registry, "many", &refs, observers, &MergePolicy::default());
    let expected: Vec<String> = names.iter().map(|n| format!("key-{n}")).collect();
    assert_eq!(reachable(&registry, "many"), expected);
}

#[test]
fn a_cache_written_before_merging_existed_is_merged_into() {
    let registry = LocalRegistry::start();
    // What the previous release pushed: the same manifest, a config without `exported`.
    let old = Runner::new(&["old"]);
    let artifact = old.document.store_artifact(&old.store).unwrap();
    let config = old.store.read_blob(&artifact.blobs[0]).unwrap();
    assert!(!String::from_utf8_lossy(&config).contains("exported"));
    let client = registry_client();
    block_on(stagecraft_registry::push_manifest_with_blobs(
        &client,
        &old.store,
        &registry.reference("compat"),
        &artifact.blobs,
        &artifact.manifest,
        &artifact.descriptor.media_type,
    ))
    .unwrap()
    .unwrap();
    let new = Runner::new(&["new"]);
    let merged = push_cache_document(
        &new.store,
        &client,
        &registry.reference("compat"),
        &new.document,
        &MergePolicy::default(),
        &CacheBounds::default(),
        &|_| {},
    )
    .unwrap();
    assert_eq!((merged.kept, merged.evicted), (1, 0));
    assert!(merged.pushed.merged_with_existing);
    assert_eq!(reachable(&registry, "compat"), ["key-new", "key-old"]);
    // The old record has no stamp (it counts as the oldest), ours has one.
    assert!(!merged.document.exported.contains_key("key-old"));
    assert!(merged.document.exported.contains_key("key-new"));
}

fn registry_client() -> stagecraft_registry::Registry {
    registry(&[])
}

/// A runner's store with one cache mount of this id, holding one file.
fn runner_with_mount(id: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let mount = store.new_cache_mount(id).unwrap();
    fs::write(mount.path().join("content"), id).unwrap();
    mount.install().unwrap();
    (dir, store)
}

#[test]
fn two_runners_exporting_cache_mounts_to_one_ref_keep_both() {
    use stagecraft_export::cache_mounts::{MountBounds, store_cache_mounts};
    let registry = LocalRegistry::start();
    let (_a_dir, a) = runner_with_mount("/root/.cargo/registry");
    let (_b_dir, b) = runner_with_mount("/root/.npm");
    let ids = |id: &str| [id.to_owned()];
    let a_artifact = store_cache_mounts(
        &a,
        &ids("/root/.cargo/registry"),
        stagecraft_layer::Compression::gzip(),
    )
    .unwrap();
    let b_artifact = store_cache_mounts(
        &b,
        &ids("/root/.npm"),
        stagecraft_layer::Compression::gzip(),
    )
    .unwrap();
    // As for build caches: both write before either checks, so one write is overwritten.
    let writing = Barrier::new(2);
    let written = Barrier::new(2);
    let observe = |stage: MergeStage| match stage {
        MergeStage::Writing(1) => drop(writing.wait()),
        MergeStage::Written(1) => drop(written.wait()),
        _ => {}
    };
    let reference = registry.reference("mounts");
    let attempts: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = [(&a, &a_artifact), (&b, &b_artifact)]
            .into_iter()
            .map(|(store, artifact)| {
                let (reference, observe) = (&reference, &observe);
                scope.spawn(move || {
                    stagecraft_build::push_cache_mounts(
                        store,
                        &registry_client(),
                        reference,
                        artifact,
                        &quick(),
                        &MountBounds::default(),
                        observe,
                    )
                    .unwrap()
                    .pushed
                    .attempts
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = attempts.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2], "{attempts:?}");

    // A cold runner imports both mounts, with their contents.
    let (_c_dir, cold) = runner_with_mount("/unrelated");
    let client = registry_client();
    let remote = block_on(client.manifest(&reference)).unwrap().unwrap();
    let manifest =
        stagecraft_export::cache_mounts::CacheMountManifest::parse(&remote.bytes, "mounts")
            .unwrap();
    block_on(stagecraft_registry::fetch_blobs(
        &client,
        &cold,
        &reference,
        manifest.blobs(),
    ))
    .unwrap()
    .unwrap();
    manifest.restore(&cold).unwrap();
    for id in ["/root/.cargo/registry", "/root/.npm"] {
        let path = cold.cache_mount_path(id).unwrap();
        assert_eq!(fs::read_to_string(path.join("content")).unwrap(), id);
    }
}
