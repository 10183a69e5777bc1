//! The store's error type.

use std::io;
use std::path::{Path, PathBuf};

use stagecraft_image::{Digest, ManifestError, ReferenceError};

/// Everything that can go wrong in the store. Messages name the path or
/// digest involved and, where there is one, the way out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase (`create directory`).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Reading the content to store failed (the source, not the store).
    #[error("could not read the content to store: {0}")]
    Source(#[source] io::Error),
    /// The blob is not in the store.
    #[error("blob {digest} is not in the store (no file {path})")]
    BlobNotFound {
        /// The missing digest.
        digest: Digest,
        /// Where it would be.
        path: PathBuf,
    },
    /// Content written with an expected digest hashed to something else.
    #[error(
        "content does not match its expected digest: expected {expected}, got {actual} ({size} bytes); nothing was stored (truncated download or wrong descriptor?)"
    )]
    DigestMismatch {
        /// The digest the caller announced.
        expected: Digest,
        /// The digest of what was actually read.
        actual: Digest,
        /// How many bytes were read.
        size: u64,
    },
    /// A stored blob no longer matches its name.
    #[error(
        "blob {digest} is corrupt: {path} hashes to {actual}; run `Store::verify` with remove_corrupt to drop it, then pull or build again"
    )]
    CorruptBlob {
        /// The blob's name.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// What its content hashes to now.
        actual: Digest,
    },
    /// The image reference could not be parsed.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A tag was asked for that does not exist.
    #[error("no image is tagged {reference} in this store")]
    TagNotFound {
        /// The normalized reference.
        reference: String,
    },
    /// `set_tag` was given a reference that pins a digest.
    #[error(
        "cannot tag {reference}: a tag name must not contain a digest (drop the @sha256:… part)"
    )]
    TagWithDigest {
        /// The reference as given.
        reference: String,
    },
    /// A tag's target is not a manifest or index.
    #[error(
        "cannot tag {reference} with {digest}: that blob is not an image manifest or index ({source})"
    )]
    NotAManifest {
        /// The normalized reference.
        reference: String,
        /// The target digest.
        digest: Digest,
        /// Why it was not accepted.
        #[source]
        source: ManifestError,
    },
    /// `tags.json` cannot be read.
    #[error(
        "the tag file {path} is damaged ({reason}); blobs are unaffected: fix or delete the file and tag the images again"
    )]
    TagFile {
        /// The tag file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored manifest or index is not valid.
    #[error("stored manifest {digest} is invalid: {source}")]
    Manifest {
        /// The manifest's digest.
        digest: Digest,
        /// The parse error.
        #[source]
        source: ManifestError,
    },
    /// A stored config or cache record is not valid JSON for its type.
    #[error("stored {what} {name} is invalid: {source}")]
    Json {
        /// What kind of document (`image config`, `cache record`).
        what: &'static str,
        /// Its digest or key.
        name: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest was found where an index was expected, or the reverse.
    #[error("stored document {digest} is {found}, not {expected}")]
    WrongDocumentKind {
        /// The document's digest.
        digest: Digest,
        /// What was wanted (`an image manifest`).
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// Nothing in the store has this name or image ID.
    #[error(
        "no image named {text:?} or with that image ID in this store\n  = help: `stagecraft images` lists the images, with their IDs"
    )]
    ImageNotFound {
        /// What was looked for.
        text: String,
    },
    /// An image ID prefix matches several images.
    #[error("image ID prefix {prefix:?} is ambiguous: it matches {}; give more of it", .ids.join(", "))]
    AmbiguousImageId {
        /// The prefix given.
        prefix: String,
        /// The IDs it matches.
        ids: Vec<String>,
    },
    /// An index has no manifest for the platform asked for.
    #[error("image {reference} has no manifest for platform {platform}; it has: {available}")]
    PlatformNotFound {
        /// The normalized reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// An index names a platform's manifest that is not in the store (a
    /// pull fetches only the platform it was asked for).
    #[error(
        "image {reference} is a multi-platform index whose {platform} manifest {digest} is not in the store (a pull fetches only one platform's); build it, or load it with every platform"
    )]
    PlatformManifestMissing {
        /// The reference as given.
        reference: String,
        /// The platform whose manifest is missing.
        platform: String,
        /// The missing manifest's digest.
        digest: Digest,
    },
    /// A layer whose compression Docker schema 2 has no media type for (zstd), in an image
    /// asked for with Docker media types.
    #[error(
        "layer {digest} is {media_type}, which Docker media types cannot describe\n  = help: use compression=gzip (or uncompressed) with oci-mediatypes=false, or keep OCI media types"
    )]
    NoDockerMediaType {
        /// The layer's blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// `write_index` was given no images.
    #[error("a multi-platform index needs at least one image; none was given")]
    EmptyIndex,
    /// `write_index` was given two images of one platform, which no client
    /// could tell apart.
    #[error(
        "two images for platform {platform} were given for one index; an index holds one image per platform"
    )]
    DuplicatePlatform {
        /// The platform given twice.
        platform: String,
    },
    /// `write_image` was given a config and layer list that disagree.
    #[error(
        "image config lists {diff_ids} layer diff IDs but {layers} layer descriptors were given; they must correspond one to one"
    )]
    LayerCountMismatch {
        /// `rootfs.diff_ids` length.
        diff_ids: usize,
        /// Layer descriptors given.
        layers: usize,
    },
    /// Serializing an image document failed.
    #[error("could not serialize the {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A cache key is not usable as a file name.
    #[error(
        "invalid cache key {key:?}: {reason} (use 1 to 200 characters from A-Z a-z 0-9 . _ - :, not starting with '.')"
    )]
    CacheKey {
        /// The rejected key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The closure filling a snapshot failed; nothing was kept.
    #[error("could not create snapshot {diff_id}; its partial content was discarded: {source}")]
    SnapshotFill {
        /// The snapshot's diff ID.
        diff_id: Digest,
        /// The closure's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A layer tar could not be written from its snapshots.
    #[error("could not write the layer tar of {}: {source}", upper.display())]
    LayerTar {
        /// The layer's upper directory.
        upper: PathBuf,
        /// The tar writer's error.
        #[source]
        source: stagecraft_layer::Error,
    },
    /// A snapshot that a lazy blob is made of is not installed.
    #[error("snapshot {diff_id} is not in the store")]
    SnapshotMissing {
        /// The snapshot's diff ID.
        diff_id: Digest,
    },
    /// A lazy blob regenerated from its snapshots hashed to something else: a snapshot was
    /// changed or damaged on disk. Nothing was written.
    #[error(
        "layer {digest} regenerated from its snapshots hashes to {actual}: the store is damaged \
         (a snapshot changed on disk); run `stagecraft verify --remove-corrupt` and rebuild"
    )]
    LazyBlobDamaged {
        /// The layer's digest.
        digest: Digest,
        /// What the regenerated bytes hash to.
        actual: Digest,
    },
    /// The store directory was written by an incompatible version.
    #[error(
        "{path} describes store layout {found:?}; this stagecraft uses layout {expected}. Use a matching stagecraft or another STAGECRAFT_ROOT"
    )]
    Layout {
        /// The layout file.
        path: PathBuf,
        /// What it says.
        found: String,
        /// What we understand.
        expected: u32,
    },
    /// The store's snapshots were made for the other kind of overlay: a
    /// rootful store (`trusted.overlay.*` markers) opened rootless, or the
    /// other way round. Neither can read the other's markers.
    #[error(
        "{path} says this store's snapshots are for {store} builds (overlay markers in \
         {store_prefix}* xattrs), but this stagecraft runs {process}: it could neither read nor \
         write them. Give each its own store: set STAGECRAFT_ROOT to another directory, or unset \
         it to use the default (/var/lib/stagecraft for root, $XDG_DATA_HOME/stagecraft for \
         other users)"
    )]
    OverlayXattr {
        /// The layout file.
        path: PathBuf,
        /// `rootful` or `rootless`: what the store's snapshots are for.
        store: &'static str,
        /// The xattr prefix of the store's snapshots.
        store_prefix: &'static str,
        /// `as root` or `rootless`: how this process runs.
        process: &'static str,
    },
    /// No store location could be derived from the environment.
    #[error(
        "cannot choose a store location: set STAGECRAFT_ROOT, or XDG_DATA_HOME or HOME (non-root users store under $XDG_DATA_HOME/stagecraft)"
    )]
    NoDefaultRoot,
}

/// Convenient `Result` alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches "what and where" to `io::Error`s.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.to_owned(),
            source,
        })
    }
}
