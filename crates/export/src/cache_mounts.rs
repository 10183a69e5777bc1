//! Cache mounts (`RUN --mount=type=cache`) out of one store and into another, so that a CI
//! runner can start with the caches of the last run: `stagecraft cache export` and `import`.
//!
//! # Format
//!
//! One OCI image manifest (`artifactType` [`ARTIFACT_TYPE`]) whose config is the empty JSON
//! document (`application/vnd.oci.empty.v1+json`, `{}`) and whose layers are the mounts, one
//! each: a gzip or zstd tar of the mount's contents (the mount directory itself is not an
//! entry; owners, modes, mtimes and xattrs are kept), annotated with
//!
//! * [`ID_ANNOTATION`]: the mount's id (`id=`, else its target);
//! * [`MODE_ANNOTATION`], [`UID_ANNOTATION`], [`GID_ANNOTATION`]: the mount directory's own
//!   mode (octal) and owner, which `mode=`, `uid=` and `gid=` gave it;
//! * [`EXPORTED_ANNOTATION`] (optional; exports before it lack it): when it was exported,
//!   in Unix seconds.
//!
//! In a registry, several runners may push to one reference: [`merge_cache_mounts`] makes
//! the pushed manifest the union of theirs and ours by mount id (ours win an id both have),
//! bounded by [`MountBounds`], so that a runner exporting its mounts keeps the others'.
//!
//! In a registry the manifest is pushed under a reference, with its blobs. In a file it is an
//! OCI image layout tar (`oci-layout`, `index.json` naming the manifest, `blobs/sha256/…`),
//! which OCI tools can copy to a registry as well.
//!
//! # Import
//!
//! Every layer is unpacked by the hardened applier ([`apply_layer`]: no entry can reach outside
//! the directory) into a new directory in the store's `ingest/`. Only when all of them are
//! unpacked does each replace the contents of the mount of its id, in one atomic swap under the
//! mount's lock ([`stagecraft_store::NewCacheMount::replace`]). So a refused or corrupt archive
//! leaves the store's mounts as they were, and a kill leaves each mount old or new, never
//! half-written. Contents are replaced, not merged: an imported mount holds exactly what was
//! exported, as a cache restored in CI should.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use stagecraft_image::{Descriptor, Digest, ImageManifest, media_type};
use stagecraft_layer::{ApplyOptions, Compression, apply_layer};
use stagecraft_store::{Artifact, CacheMountAccess, NewCacheMount, Store};

#[cfg(doc)]
use crate::write_artifact_archive;
use crate::{ExportError, io_at, read_artifact_archive, store_tree_layer};

/// The `artifactType` of a cache-mount export.
pub const ARTIFACT_TYPE: &str = "application/vnd.stagecraft.cachemount.v1";
/// The layer annotation with the mount's id.
pub const ID_ANNOTATION: &str = "vnd.stagecraft.cachemount.id";
/// The layer annotation with the mode of the mount directory, in octal (`755`).
pub const MODE_ANNOTATION: &str = "vnd.stagecraft.cachemount.mode";
/// The layer annotation with the numeric owner of the mount directory.
pub const UID_ANNOTATION: &str = "vnd.stagecraft.cachemount.uid";
/// The layer annotation with the numeric group of the mount directory.
pub const GID_ANNOTATION: &str = "vnd.stagecraft.cachemount.gid";
/// The layer annotation with when the mount was exported, in Unix seconds.
pub const EXPORTED_ANNOTATION: &str = "vnd.stagecraft.cachemount.exported";

/// What a mount directory is made with when an export does not say: a new mount's defaults.
const DEFAULT_MODE: u32 = 0o755;

/// Stores the cache mounts `ids` as the layers of an artifact, in that order, each read
/// under the mount's exclusive lock: a step using it finishes first, and the next waits.
pub fn store_cache_mounts(
    store: &Store,
    ids: &[String],
    compression: Compression,
) -> Result<Artifact, ExportError> {
    let now = stagecraft_image::Timestamp::now().map_or(0, |t| t.unix_secs());
    let mut layers = Vec::new();
    for id in ids {
        // Mounts are never removed, so the directory found stays once the lock is taken.
        let dir = store
            .cache_mount_path(id)
            .ok_or_else(|| ExportError::NoCacheMount { id: id.clone() })?;
        let _lock = store.lock_cache_mount(id, CacheMountAccess::Exclusive)?;
        let meta = std::fs::metadata(&dir).map_err(io_at(&dir))?;
        let (info, blob) =
            store_tree_layer(store, &dir, compression).map_err(|e| in_mount(id, e))?;
        let mut layer = blob.descriptor(info.media_type());
        layer.annotations.extend([
            (ID_ANNOTATION.to_owned(), id.clone()),
            (
                MODE_ANNOTATION.to_owned(),
                format!("{:o}", meta.mode() & 0o7777),
            ),
            (UID_ANNOTATION.to_owned(), meta.uid().to_string()),
            (GID_ANNOTATION.to_owned(), meta.gid().to_string()),
            (EXPORTED_ANNOTATION.to_owned(), now.to_string()),
        ]);
        layers.push(layer);
    }
    Ok(store.write_artifact(ARTIFACT_TYPE, media_type::OCI_EMPTY_JSON, b"{}", layers)?)
}

/// Reads cache mounts that [`store_cache_mounts`] stored and [`write_artifact_archive`] wrote
/// as an OCI layout tar: the archive's blobs go into the store,
/// checked against their digests, ready for [`CacheMountManifest::restore`].
pub fn read_cache_mount_archive(
    store: &Store,
    path: &Path,
) -> Result<CacheMountManifest, ExportError> {
    let digest = read_artifact_archive(store, path)?;
    CacheMountManifest::parse(&store.read_blob(&digest)?, &path.display().to_string())
}

/// The mounts a cache-mount export carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMountManifest {
    mounts: Vec<MountLayer>,
}

/// One mount of an export: its layer and what its directory is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountLayer {
    id: String,
    layer: Descriptor,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl CacheMountManifest {
    /// Reads a manifest from `origin` (a file or a reference, for messages), refusing anything
    /// that is not a cache-mount export.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<CacheMountManifest, ExportError> {
        let not_ours = |reason: String| ExportError::NotCacheMounts {
            origin: origin.to_owned(),
            reason,
        };
        let manifest = ImageManifest::from_slice(bytes).map_err(|e| not_ours(e.to_string()))?;
        if manifest.artifact_type != ARTIFACT_TYPE {
            let found = match manifest.artifact_type.as_str() {
                "" => "an image, or an artifact without artifactType".to_owned(),
                other => format!("an artifact of type {other}"),
            };
            return Err(not_ours(format!("it is {found}")));
        }
        let mut seen = BTreeSet::new();
        let mut mounts = Vec::new();
        for layer in manifest.layers {
            let annotation = |name: &str| layer.annotations.get(name).map(String::as_str);
            let Some(id) = annotation(ID_ANNOTATION).map(str::to_owned) else {
                return Err(not_ours(format!(
                    "layer {} has no {ID_ANNOTATION} annotation",
                    layer.digest
                )));
            };
            if !seen.insert(id.clone()) {
                return Err(not_ours(format!("it holds cache mount {id:?} twice")));
            }
            let number = |name: &str, radix: u32, default: u32| match annotation(name) {
                None => Ok(default),
                Some(text) => u32::from_str_radix(text, radix)
                    .map_err(|_| not_ours(format!("mount {id:?}: {name} is {text:?}"))),
            };
            let mode = number(MODE_ANNOTATION, 8, DEFAULT_MODE)?;
            let uid = number(UID_ANNOTATION, 10, 0)?;
            let gid = number(GID_ANNOTATION, 10, 0)?;
            mounts.push(MountLayer {
                id,
                layer,
                mode,
                uid,
                gid,
            });
        }
        Ok(CacheMountManifest { mounts })
    }

    /// The ids of the mounts, in the export's order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.mounts.iter().map(|mount| mount.id.as_str())
    }

    /// The layer blobs, which [`CacheMountManifest::restore`] reads from the store.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        self.mounts.iter().map(|mount| &mount.layer.digest)
    }

    /// Replaces the store's cache mounts of these ids with the exported contents (see the
    /// module documentation: all are unpacked first, then each swapped in atomically). The
    /// layer blobs must be in the store.
    pub fn restore(&self, store: &Store) -> Result<(), ExportError> {
        let mut unpacked = Vec::new();
        for mount in &self.mounts {
            let fresh = unpack(store, mount).map_err(|e| ExportError::Unpack {
                id: mount.id.clone(),
                source: Box::new(e),
            })?;
            unpacked.push(fresh);
        }
        for (mount, fresh) in self.mounts.iter().zip(unpacked) {
            fresh.replace().map_err(|e| in_mount(&mount.id, e.into()))?;
        }
        Ok(())
    }
}

/// How many mounts a reference that several runners merge into may hold: past either bound
/// the mounts of others exported longest ago are dropped (ours never are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountBounds {
    /// At most this many mounts.
    pub max_mounts: usize,
    /// At most this many bytes of (compressed) mount layers.
    pub max_bytes: u64,
}

impl Default for MountBounds {
    /// 64 mounts, 10 GiB: every package manager's cache of a few projects, and the size of
    /// a GitHub Actions cache.
    fn default() -> MountBounds {
        MountBounds {
            max_mounts: 64,
            max_bytes: 10 << 30,
        }
    }
}

/// A merge of cache-mount exports: the manifest to push, and what happened to theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedMounts {
    /// The merged manifest's bytes.
    pub manifest: Vec<u8>,
    /// Mounts of the other export kept.
    pub kept: Vec<String>,
    /// Mounts of the other export dropped by the bounds.
    pub evicted: Vec<String>,
}

/// Merges our cache-mount export (`ours`, a manifest [`store_cache_mounts`] made) with
/// `theirs` (what the reference holds, if anything): our mounts, then theirs of other ids,
/// most recently exported first (an export without [`EXPORTED_ANNOTATION`] counts as the
/// oldest), while they fit the bounds. `theirs` that is not a cache-mount export is
/// replaced, as a plain push would.
pub fn merge_cache_mounts(
    ours: &[u8],
    theirs: Option<&[u8]>,
    bounds: &MountBounds,
) -> Result<MergedMounts, ExportError> {
    let parsed = CacheMountManifest::parse(ours, "this export")?;
    let mut manifest =
        ImageManifest::from_slice(ours).map_err(|e| ExportError::NotCacheMounts {
            origin: "this export".to_owned(),
            reason: e.to_string(),
        })?;
    let ours_ids: BTreeSet<&str> = parsed.ids().collect();
    let mut bytes: u64 = manifest.layers.iter().map(|l| l.size).sum();
    let mut merged = MergedMounts {
        manifest: Vec::new(),
        kept: Vec::new(),
        evicted: Vec::new(),
    };
    let theirs = theirs.and_then(|bytes| CacheMountManifest::parse(bytes, "the reference").ok());
    let mut candidates: Vec<MountLayer> = theirs
        .map(|t| t.mounts)
        .unwrap_or_default()
        .into_iter()
        .filter(|mount| !ours_ids.contains(mount.id.as_str()))
        .collect();
    let stamp = |mount: &MountLayer| {
        mount
            .layer
            .annotations
            .get(EXPORTED_ANNOTATION)
            .and_then(|text| text.parse::<i64>().ok())
            .unwrap_or(0)
    };
    candidates.sort_by(|a, b| stamp(b).cmp(&stamp(a)).then_with(|| a.id.cmp(&b.id)));
    for mount in candidates {
        if manifest.layers.len() >= bounds.max_mounts
            || bytes.saturating_add(mount.layer.size) > bounds.max_bytes
        {
            merged.evicted.push(mount.id);
            continue;
        }
        bytes += mount.layer.size;
        merged.kept.push(mount.id);
        manifest.layers.push(mount.layer);
    }
    merged.manifest = manifest
        .to_json()
        .map_err(|e| ExportError::NotCacheMounts {
            origin: "the merged export".to_owned(),
            reason: e.to_string(),
        })?;
    Ok(merged)
}

/// Unpacks a mount's layer into a new directory, made with the mount's mode and owner.
fn unpack(store: &Store, mount: &MountLayer) -> Result<NewCacheMount, ExportError> {
    let fresh = store.new_cache_mount(&mount.id)?;
    let blob = store.blob_file(&mount.layer.digest)?;
    let file = std::fs::File::open(&blob).map_err(io_at(&blob))?;
    let options = ApplyOptions::default();
    let stats = apply_layer(io::BufReader::new(file), fresh.path(), &options)?;
    if stats.digest != mount.layer.digest.as_str() {
        return Err(ExportError::Format {
            path: blob,
            reason: format!(
                "the layer hashes to {}, not {}: the store's copy is corrupt (run `stagecraft verify`)",
                stats.digest, mount.layer.digest
            ),
        });
    }
    // Last, so that a read-only mode does not stand in the way of unpacking.
    if options.chown {
        std::os::unix::fs::chown(fresh.path(), Some(mount.uid), Some(mount.gid))
            .map_err(io_at(fresh.path()))?;
    }
    std::fs::set_permissions(fresh.path(), std::fs::Permissions::from_mode(mount.mode))
        .map_err(io_at(fresh.path()))?;
    Ok(fresh)
}

/// Says which mount an error is about.
fn in_mount(id: &str, error: ExportError) -> ExportError {
    ExportError::CacheMount {
        id: id.to_owned(),
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn mounts_round_trip_through_an_archive_and_replace_whole() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path().join("a")).unwrap();
        let b = Store::open(dir.path().join("b")).unwrap();
        let mount = a.new_cache_mount("/root/.npm").unwrap();
        fs::create_dir(mount.path().join("pkgs")).unwrap();
        fs::write(mount.path().join("pkgs/left-pad.tgz"), "tarball").unwrap();
        fs::set_permissions(mount.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        mount.install().unwrap();

        let ids = ["/root/.npm".to_owned()];
        let artifact = store_cache_mounts(&a, &ids, Compression::zstd()).unwrap();
        let archive = dir.path().join("mounts.tar");
        crate::write_artifact_archive(&a, &artifact, fs::File::create(&archive).unwrap()).unwrap();

        // B has the mount already, with other contents: they are replaced, not merged.
        let stale = b.new_cache_mount("/root/.npm").unwrap();
        fs::write(stale.path().join("stale"), "old").unwrap();
        stale.install().unwrap();
        let manifest = read_cache_mount_archive(&b, &archive).unwrap();
        assert_eq!(manifest.ids().collect::<Vec<_>>(), ["/root/.npm"]);
        manifest.restore(&b).unwrap();
        let restored = b.cache_mount_path("/root/.npm").unwrap();
        assert_eq!(
            fs::read_to_string(restored.join("pkgs/left-pad.tgz")).unwrap(),
            "tarball"
        );
        assert!(!restored.join("stale").exists());
        assert_eq!(fs::metadata(&restored).unwrap().mode() & 0o7777, 0o1777);
    }

    #[test]
    fn only_cache_mount_exports_are_read() {
        let refusal = |manifest: &ImageManifest| {
            let bytes = manifest.to_json().unwrap();
            CacheMountManifest::parse(&bytes, "r/app:1")
                .unwrap_err()
                .to_string()
        };
        let mut manifest = ImageManifest::new(
            media_type::OCI_MANIFEST,
            Descriptor::of_bytes(media_type::OCI_CONFIG, b"{}"),
            Vec::new(),
        );
        let error = refusal(&manifest);
        assert!(
            error.contains("r/app:1 is not a stagecraft cache-mount export: it is an image"),
            "{error}"
        );
        manifest.artifact_type = ARTIFACT_TYPE.to_owned();
        manifest
            .layers
            .push(Descriptor::of_bytes(media_type::OCI_LAYER_GZIP, b"layer"));
        let error = refusal(&manifest);
        assert!(error.contains("no vnd.stagecraft.cachemount.id"), "{error}");
    }

    #[test]
    fn exporting_an_unknown_id_says_how_to_find_the_right_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let error = store_cache_mounts(&store, &["nope".to_owned()], Compression::gzip())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`stagecraft cache ls` lists them"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn export(mounts: &[(&str, u64, Option<i64>)]) -> Vec<u8> {
        let layers = mounts
            .iter()
            .map(|(id, size, stamp)| {
                let mut layer =
                    Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(id.as_bytes()), *size);
                layer
                    .annotations
                    .insert(ID_ANNOTATION.to_owned(), (*id).to_owned());
                if let Some(stamp) = stamp {
                    layer
                        .annotations
                        .insert(EXPORTED_ANNOTATION.to_owned(), stamp.to_string());
                }
                layer
            })
            .collect();
        let mut manifest = ImageManifest::new(
            media_type::OCI_MANIFEST,
            Descriptor::of_bytes(media_type::OCI_EMPTY_JSON, b"{}"),
            layers,
        );
        manifest.artifact_type = ARTIFACT_TYPE.to_owned();
        manifest.to_json().unwrap()
    }

    fn ids(manifest: &[u8]) -> Vec<String> {
        CacheMountManifest::parse(manifest, "merged")
            .unwrap()
            .ids()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_merge_keeps_other_ids_newest_first_within_the_bounds() {
        let ours = export(&[("npm", 10, Some(100))]);
        // "legacy" comes from an export before stamps: the oldest.
        let theirs = export(&[
            ("npm", 99, Some(1)),
            ("legacy", 10, None),
            ("cargo", 10, Some(50)),
            ("pip", 10, Some(70)),
        ]);
        let merged = merge_cache_mounts(&ours, Some(&theirs), &MountBounds::default()).unwrap();
        assert_eq!(ids(&merged.manifest), ["npm", "pip", "cargo", "legacy"]);
        // Ours replaces their mount of the same id.
        let parsed = CacheMountManifest::parse(&merged.manifest, "m").unwrap();
        assert_eq!(parsed.mounts[0].layer.size, 10);

        let bounds = MountBounds {
            max_mounts: 2,
            max_bytes: u64::MAX,
        };
        let merged = merge_cache_mounts(&ours, Some(&theirs), &bounds).unwrap();
        assert_eq!(ids(&merged.manifest), ["npm", "pip"]);
        assert_eq!(merged.evicted, ["cargo", "legacy"]);
        let bounds = MountBounds {
            max_mounts: 64,
            max_bytes: 25,
        };
        let merged = merge_cache_mounts(&ours, Some(&theirs), &bounds).unwrap();
        assert_eq!(ids(&merged.manifest), ["npm", "pip"]);
    }

    #[test]
    fn something_else_under_the_ref_is_replaced() {
        let ours = export(&[("npm", 10, Some(100))]);
        let image = ImageManifest::new(
            media_type::OCI_MANIFEST,
            Descriptor::of_bytes(media_type::OCI_CONFIG, b"{}"),
            Vec::new(),
        )
        .to_json()
        .unwrap();
        let merged = merge_cache_mounts(&ours, Some(&image), &MountBounds::default()).unwrap();
        assert_eq!(merged.manifest, ours);
        let alone = merge_cache_mounts(&ours, None, &MountBounds::default()).unwrap();
        assert_eq!(alone.manifest, ours);
    }
}
