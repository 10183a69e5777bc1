//! Filesystem changes to and from OCI layer tars.
//!
//! Writing ([`write_tar`], [`write_layer`]) turns a [`DiffSource`] — an
//! overlayfs upper directory, two plain directories, or a whole root
//! filesystem — into a deterministic tar: entries in a fixed order, every
//! header built from `lstat` (mode with setuid/setgid/sticky, numeric
//! owner, mtime optionally clamped to `SOURCE_DATE_EPOCH`), xattrs as PAX
//! `SCHILY.xattr.*` records, hardlinks detected by inode, long names as PAX
//! `path`/`linkpath` records, deletions as `.wh.` whiteouts. The same tree
//! always gives the same bytes. [`LayerWriter`] computes the diff-id, the
//! compressed digest and the size in the same pass as the compression.
//!
//! Applying ([`apply_layer`]) reads a plain, gzip or zstd layer and applies
//! it under a root directory that a hostile layer cannot escape, either
//! deleting whited-out paths or recording whiteouts overlayfs-style
//! ([`WhiteoutMode`]) so that each layer can be its own `lowerdir`.
//!
//! ```no_run
//! use std::path::Path;
//! use stagecraft_layer::{
//!     ApplyOptions, Compression, DiffSource, TarOptions, apply_layer, write_layer,
//! };
//!
//! let source = DiffSource::Rootfs { root: Path::new("/tmp/rootfs") };
//! let options = TarOptions { source_date_epoch: Some(1_700_000_000) };
//! let blob = std::fs::File::create("/tmp/layer.tar.gz")?;
//! let (info, _) = write_layer(&source, &options, Compression::gzip(), blob)?;
//! println!("{} {} {} bytes", info.media_type(), info.digest, info.size);
//!
//! let stats = apply_layer(
//!     std::fs::File::open("/tmp/layer.tar.gz")?,
//!     Path::new("/tmp/copy"),
//!     &ApplyOptions::default(),
//! )?;
//! assert_eq!(stats.diff_id, info.diff_id);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`clamp_layer_times`] rewrites an existing layer with its file times clamped to
//! `SOURCE_DATE_EPOCH` (BuildKit's `rewrite-timestamp`).
//!
//! [`LazyRootfs`] flattens layers into one root file system tar without
//! writing the files' bytes in between: a plain layer's files are created
//! sparse and the tar writer reads their bytes from the layer blob.
//!
//! [`TarReader`] / [`open_layer`] list a layer's entries with Go
//! `archive/tar` semantics (what docker and BuildKit see), for tools that
//! inspect layers without applying them.
//!
//! Conventions and limits:
//!
//! * Entry order is a depth-first walk with siblings sorted by name bytes
//!   (Go's `filepath.Walk`), directories named with a trailing `/`, the root
//!   itself never an entry. Headers are USTAR with PAX records only where
//!   needed; uname/gname are empty. Mtimes are whole seconds.
//! * Whiteout and opaque entries are empty regular files with mode 0, owner
//!   0:0 and mtime `SOURCE_DATE_EPOCH` (or 0).
//! * Sockets are skipped. xattrs other than overlayfs's own are all kept,
//!   `security.selinux` included if the source has it.
//! * overlayfs upper directories written with `metacopy=on` or
//!   `redirect_dir=on` are refused rather than silently mis-read.
//! * Paths are handled as whole strings when walking a source tree and as
//!   `openat2` lookups when applying, so trees deeper than `PATH_MAX`
//!   (4096 bytes) are not supported.
//!
//! Linux only (5.6 or later for `openat2`; xattrs; overlayfs conventions).
#![forbid(unsafe_code)]

mod apply;
mod compress;
mod error;
mod extents;
mod fsutil;
mod lazy;
mod pgzip;
mod pipe;
mod retime;
mod tarfmt;
mod tarread;
#[cfg(test)]
mod testdata;
mod whiteout;
mod write;

pub use apply::{ApplyOptions, ApplyStats, ApplyWarning, WhiteoutMode, apply_diff, apply_layer};
pub use compress::{
    Compression, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL, DOCKER_MEDIA_TYPE_TAR,
    DOCKER_MEDIA_TYPE_TAR_GZIP, LayerInfo, LayerWriter, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP,
    MEDIA_TYPE_TAR_ZSTD, is_tar_stream,
};
pub use error::{Error, Result, owner_error};
pub use lazy::{BlobExtent, LazyRootfs};
pub use retime::clamp_layer_times;
pub use tarread::{EntryKind, TarEntry, TarReader, open_layer};
pub use whiteout::{OverlayXattr, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
pub use write::{DiffSource, TarOptions, write_layer, write_tar};
