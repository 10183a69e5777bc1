//! Reading an image's layers bottom first and accounting for every byte: what each layer adds,
//! and which of those bytes a later layer hides again (dive's "wasted space").
//!
//! The scanner keeps the filesystem as it looks after the layers read so far (path → who wrote
//! it, size, content hash, metadata). Each entry of the next layer is applied to that view the
//! way a runtime applies it, and whatever it hides is charged as waste to the layer that had
//! added it. So at the end `wasted = bytes added by all layers − bytes still visible`, exactly.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use stagecraft_layer::{
    EntryKind, TarEntry, TarReader, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX,
    open_layer,
};

use crate::ranked::Ranked;

/// A file and how many bytes of content it has.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FileSize {
    /// Absolute path in the image (`/usr/bin/app`).
    pub path: String,
    /// Content bytes.
    pub size: u64,
}

/// A regular file of the final filesystem and the layer it comes from (the treemap's input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinalFile {
    /// Absolute path in the image.
    pub path: String,
    /// Content bytes.
    pub size: u64,
    /// Index of the layer that wrote it last (0 = bottom).
    pub layer: usize,
}

/// Why bytes a layer added do not reach the final filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WasteKind {
    /// A later layer deleted it: a `.wh.` whiteout, or an opaque directory marker.
    Deleted,
    /// A later layer put different content, or another kind of entry, at the same path.
    Overwritten,
    /// A later layer wrote the very same content again to change only its mode, owner or mtime
    /// (`RUN chown -R`, `chmod -R`, `touch`): the image carries the file twice.
    MetadataOnlyReadd,
}

impl WasteKind {
    /// The word the text and HTML reports use.
    pub fn label(self) -> &'static str {
        match self {
            WasteKind::Deleted => "deleted",
            WasteKind::Overwritten => "overwritten",
            WasteKind::MetadataOnlyReadd => "metadata-only re-add",
        }
    }
}

impl WastedEntry {
    /// What to change in the Dockerfile so these bytes are not shipped.
    pub fn fix(&self) -> &'static str {
        match self.kind {
            WasteKind::Deleted => {
                "delete it in the same RUN that creates it, or keep it out of the layers with a \
                 cache or tmpfs mount (`RUN --mount=type=cache,…`) or a build stage whose \
                 result alone is copied: a later layer's deletion hides it, but every pull still \
                 downloads it"
            }
            WasteKind::Overwritten => {
                "write it once: change it in the RUN that creates it, or COPY only its final \
                 version; the replaced copy still ships in the layer below"
            }
            WasteKind::MetadataOnlyReadd
                if self.changed.iter().any(|c| *c == "owner" || *c == "mode") =>
            {
                "set owner and mode while copying (`COPY --chown=user:group --chmod=…`) instead \
                 of `RUN chown -R`/`chmod -R` afterwards, which copies every file into a new \
                 layer"
            }
            WasteKind::MetadataOnlyReadd => {
                "drop the step that writes the same file again (a `touch`, a second COPY or \
                 extraction of the same content): only its timestamp changed"
            }
        }
    }

    /// The WHY column: the kind, and for a metadata-only re-add what changed.
    pub fn why(&self) -> String {
        if self.changed.is_empty() {
            self.kind.label().to_owned()
        } else {
            format!("{} ({})", self.kind.label(), self.changed.join(","))
        }
    }
}

/// The fixes for a list of wasted entries, each once, in the order of the first entry that
/// needs it, with the kinds (`why`) it applies to.
pub fn waste_fixes(wasted: &[WastedEntry]) -> Vec<(&'static str, &'static str)> {
    let mut fixes: Vec<(&'static str, &'static str)> = Vec::new();
    for entry in wasted {
        let fix = entry.fix();
        if !fixes.iter().any(|(_, f)| *f == fix) {
            fixes.push((entry.kind.label(), fix));
        }
    }
    fixes
}

/// Bytes one layer added that a later layer hid, in one go (fields in sorting order: equal
/// sizes list by path, then chronologically). A deleted or replaced directory is
/// one entry (its path, all the files under it that came from `added_in`), as dive lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct WastedEntry {
    /// Content bytes hidden.
    pub bytes: u64,
    /// The hidden path: a file, or the directory whose contents were hidden.
    pub path: String,
    /// The layer whose bytes are wasted.
    pub added_in: usize,
    /// The layer that hid them.
    pub hidden_by: usize,
    /// How many regular files those bytes belong to.
    pub files: u64,
    /// How they were hidden.
    pub kind: WasteKind,
    /// For a metadata-only re-add: which of `mode`, `owner`, `mtime` changed (empty when the
    /// entry was rewritten identically).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<&'static str>,
}

/// What one layer's tar contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerContents {
    /// Length of the uncompressed tar stream, end-of-archive blocks included.
    pub uncompressed_size: u64,
    /// Entries other than directories and whiteouts.
    pub files: u64,
    /// Content bytes of the regular files.
    pub file_bytes: u64,
    /// Whiteouts and opaque markers.
    pub deletions: u64,
    /// Its biggest regular files, biggest first.
    pub biggest: Vec<FileSize>,
}

/// Per layer: bytes it lost to later layers, bytes it hid of earlier ones, and how much of the
/// latter were metadata-only re-adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LayerWaste {
    /// Bytes this layer added that a later layer hid.
    pub wasted: u64,
    /// Bytes of earlier layers this layer deleted, overwrote or re-added.
    pub hidden: u64,
    /// The part of `hidden` this layer re-added with unchanged content.
    pub metadata_only: u64,
}

/// The outcome of scanning every layer.
#[derive(Debug)]
pub(crate) struct Accounting {
    /// Indexed like the layers.
    pub per_layer: Vec<LayerWaste>,
    /// The biggest waste entries, biggest first.
    pub wasted: Vec<WastedEntry>,
    /// How many waste entries there are in all.
    pub wasted_entries: u64,
    /// Regular files visible at the end, sorted by path.
    pub final_files: Vec<FinalFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Directory,
    Regular,
    /// Symlinks, hardlinks, devices, FIFOs: no content bytes of their own (a hardlink's bytes
    /// are counted once, at its target).
    Other,
}

/// One visible path.
#[derive(Debug, Clone)]
struct Node {
    layer: usize,
    kind: NodeKind,
    size: u64,
    hash: Option<[u8; 32]>,
    mode: u32,
    owner: (u64, u64),
    mtime: (i64, u32),
}

/// Applies layers one after the other and charges hidden bytes (see the module docs).
pub(crate) struct Scanner {
    /// The filesystem so far, by normalized path (no leading `/`, no trailing `/`). Ordered,
    /// so a directory's descendants are one contiguous range.
    visible: BTreeMap<Vec<u8>, Node>,
    per_layer: Vec<LayerWaste>,
    wasted: Ranked<WastedEntry>,
    top: usize,
    buf: Vec<u8>,
}

impl Scanner {
    /// A scanner that keeps the `top` biggest files per layer and waste entries.
    pub(crate) fn new(top: usize) -> Scanner {
        Scanner {
            visible: BTreeMap::new(),
            per_layer: Vec::new(),
            wasted: Ranked::new(top),
            top,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Reads the next layer (plain, gzip or zstd) and applies it.
    pub(crate) fn scan_layer(&mut self, blob: impl Read) -> io::Result<LayerContents> {
        let layer = self.per_layer.len();
        self.per_layer.push(LayerWaste::default());
        let (_, tar) = open_layer(blob)?;
        // Re-wrapped to count the decompressed stream: open_layer has only sniffed its magic
        // bytes so far, and hands them back through the inner reader.
        let mut tar = TarReader::new(Counting {
            inner: tar.into_inner(),
            count: 0,
        });
        let mut biggest = Ranked::new(self.top);
        let mut contents = LayerContents {
            uncompressed_size: 0,
            files: 0,
            file_bytes: 0,
            deletions: 0,
            biggest: Vec::new(),
        };
        while let Some(entry) = tar.next_entry()? {
            if entry.kind == EntryKind::GlobalHeader {
                continue;
            }
            let Some(path) = normalize(&entry.path) else {
                continue;
            };
            let (parent, name) = split_name(&path);
            if name.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
                // Other `.wh..wh.` names are AUFS bookkeeping that runtimes ignore.
                if name == WHITEOUT_OPAQUE.as_bytes() {
                    contents.deletions += 1;
                    self.hide_below(parent, layer, false, WasteKind::Deleted);
                }
                continue;
            }
            if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                contents.deletions += 1;
                let target = join(parent, target);
                self.hide_below(&target, layer, true, WasteKind::Deleted);
                continue;
            }
            let node = self.read_node(&entry, &mut tar, layer)?;
            if node.kind != NodeKind::Directory {
                contents.files += 1;
            }
            if node.kind == NodeKind::Regular {
                contents.file_bytes += node.size;
                biggest.push(
                    node.size,
                    FileSize {
                        path: display(&path),
                        size: node.size,
                    },
                );
            }
            self.put(path, node, layer);
        }
        // The end-of-archive blocks and the record padding are part of the layer too.
        let mut rest = tar.into_inner();
        io::copy(&mut rest, &mut io::sink())?;
        contents.uncompressed_size = rest.count;
        contents.biggest = biggest.into_vec();
        Ok(contents)
    }

    /// Everything scanned so far, summed up.
    pub(crate) fn finish(self) -> Accounting {
        let final_files = self
            .visible
            .iter()
            .filter(|(_, node)| node.kind == NodeKind::Regular)
            .map(|(path, node)| FinalFile {
                path: display(path),
                size: node.size,
                layer: node.layer,
            })
            .collect();
        Accounting {
            per_layer: self.per_layer,
            wasted_entries: self.wasted.seen(),
            wasted: self.wasted.into_vec(),
            final_files,
        }
    }

    /// The entry's metadata, and the hash of its content for regular files (which is what
    /// tells a metadata-only re-add from a real change).
    fn read_node<R: Read>(
        &mut self,
        entry: &TarEntry,
        data: &mut TarReader<R>,
        layer: usize,
    ) -> io::Result<Node> {
        let (kind, hash) = match entry.kind {
            EntryKind::Directory => (NodeKind::Directory, None),
            EntryKind::Regular => {
                let mut hasher = Sha256::new();
                loop {
                    let n = data.read(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&self.buf[..n]);
                }
                (NodeKind::Regular, Some(hasher.finalize().into()))
            }
            _ => (NodeKind::Other, None),
        };
        Ok(Node {
            layer,
            kind,
            size: if kind == NodeKind::Regular {
                entry.size
            } else {
                0
            },
            hash,
            mode: entry.mode,
            owner: (entry.uid, entry.gid),
            mtime: entry.mtime,
        })
    }

    /// Puts `node` at `path` as extracting the entry would.
    fn put(&mut self, path: Vec<u8>, node: Node, layer: usize) {
        if node.kind != NodeKind::Directory {
            // A non-directory replaces a directory with everything in it, whether or not the
            // directory had an entry of its own.
            self.hide_below(&path, layer, false, WasteKind::Overwritten);
        }
        if let Some(old) = self.visible.remove(&path) {
            // Directories have no bytes to charge: a directory over a directory only changes
            // metadata and keeps the contents.
            let same_content = old.kind == NodeKind::Regular && old.hash == node.hash;
            let (kind, changed) = if same_content {
                (WasteKind::MetadataOnlyReadd, changed_metadata(&old, &node))
            } else {
                (WasteKind::Overwritten, Vec::new())
            };
            self.charge(&path, kind, changed, layer, vec![(old.layer, old.size, 1)]);
        }
        self.visible.insert(path, node);
    }

    /// Removes what `layer` hides at `root`: the descendants of `root`, and `root` itself when
    /// `include_root`. Whiteouts and opaque markers only hide lower layers (OCI image spec), so
    /// those pass `Deleted` and leave entries of `layer` itself alone; a replacement hides
    /// whatever is there.
    fn hide_below(&mut self, root: &[u8], layer: usize, include_root: bool, kind: WasteKind) {
        let prefix = if root.is_empty() {
            Vec::new()
        } else {
            join(root, b"")
        };
        let lower_only = kind == WasteKind::Deleted;
        let hidden: Vec<Vec<u8>> = self
            .visible
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .chain(self.visible.get_key_value(root))
            .filter(|(path, node)| {
                (include_root || path.as_slice() != root) && (!lower_only || node.layer < layer)
            })
            .map(|(path, _)| path.clone())
            .collect();
        // Grouped by the layer that added them: one waste entry per (path, origin layer).
        let mut by_layer: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        for path in hidden {
            if let Some(node) = self.visible.remove(&path) {
                let group = by_layer.entry(node.layer).or_default();
                group.0 += node.size;
                group.1 += u64::from(node.kind == NodeKind::Regular);
            }
        }
        let groups = by_layer
            .into_iter()
            .map(|(origin, (bytes, files))| (origin, bytes, files))
            .collect();
        self.charge(root, kind, Vec::new(), layer, groups);
    }

    /// Records that `hidden_by` hid `groups` of (origin layer, bytes, files) at `path`.
    fn charge(
        &mut self,
        path: &[u8],
        kind: WasteKind,
        changed: Vec<&'static str>,
        hidden_by: usize,
        groups: Vec<(usize, u64, u64)>,
    ) {
        for (added_in, bytes, files) in groups {
            if bytes == 0 {
                // Directories, symlinks and empty files cost a tar header, not content bytes.
                continue;
            }
            self.per_layer[added_in].wasted += bytes;
            let hider = &mut self.per_layer[hidden_by];
            hider.hidden += bytes;
            if kind == WasteKind::MetadataOnlyReadd {
                hider.metadata_only += bytes;
            }
            self.wasted.push(
                bytes,
                WastedEntry {
                    bytes,
                    path: display(path),
                    files,
                    kind,
                    changed: changed.clone(),
                    added_in,
                    hidden_by,
                },
            );
        }
    }
}

/// Which metadata a re-added file changed.
fn changed_metadata(old: &Node, new: &Node) -> Vec<&'static str> {
    [
        (old.mode != new.mode, "mode"),
        (old.owner != new.owner, "owner"),
        (old.mtime != new.mtime, "mtime"),
    ]
    .into_iter()
    .filter_map(|(differs, what)| differs.then_some(what))
    .collect()
}

/// A tar name as a key: no leading `/` or `./`, no trailing `/`, `.` components dropped and
/// `..` resolved (never above the root, as appliers clamp it). `None` for the root itself.
fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join(&b'/'))
}

/// Splits a normalized path into its parent (empty at the top) and its last component.
fn split_name(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (&[], path),
    }
}

/// `parent/name` (just `name` at the top).
fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    [parent, b"/", name].concat()
}

/// A normalized path as users see it: absolute, lossily decoded.
fn display(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry of a hand-written layer: path, type, size, uid, content seed.
    struct E(&'static str, tar::EntryType, usize, u64, u8);

    fn layer(entries: &[E]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for E(path, kind, size, uid, seed) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(*kind);
            header.set_size(*size as u64);
            header.set_mode(0o644);
            header.set_uid(*uid);
            if *kind == tar::EntryType::Link {
                header.set_link_name("a/file").unwrap();
            }
            builder
                .append_data(&mut header, path, &vec![*seed; *size][..])
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn scan(layers: &[Vec<u8>]) -> (Vec<LayerContents>, Accounting) {
        let mut scanner = Scanner::new(10);
        let contents = layers
            .iter()
            .map(|bytes| scanner.scan_layer(&bytes[..]).unwrap())
            .collect();
        (contents, scanner.finish())
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F};

    #[test]
    fn opaque_directories_hide_lower_layers_only() {
        let (contents, accounting) = scan(&[
            layer(&[
                E("a/", D, 0, 0, 0),
                E("a/file", F, 100, 0, 1),
                E("a/sub/deep", F, 40, 0, 2),
                E("link", L, 0, 0, 0),
            ]),
            layer(&[
                E("a/", D, 0, 0, 0),
                E("a/.wh..wh..opq", F, 0, 0, 0),
                E("a/new", F, 7, 0, 3),
            ]),
        ]);
        assert_eq!(contents[0].files, 3, "the hardlink counts as a file");
        assert_eq!(
            contents[0].file_bytes, 140,
            "a hardlink adds no bytes of its own"
        );
        assert_eq!(contents[1].deletions, 1);
        assert_eq!(contents[1].uncompressed_size % 512, 0);
        let paths: Vec<&str> = accounting
            .final_files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(
            paths,
            ["/a/new"],
            "the new file survives its own layer's marker"
        );
        assert_eq!(accounting.wasted.len(), 1);
        let entry = &accounting.wasted[0];
        assert_eq!(
            (entry.path.as_str(), entry.bytes, entry.files, entry.kind),
            ("/a", 140, 2, WasteKind::Deleted)
        );
        assert_eq!(accounting.per_layer[1].hidden, 140);
    }

    #[test]
    fn a_file_over_a_directory_replaces_its_contents() {
        let (_, accounting) = scan(&[
            layer(&[E("x/one", F, 10, 0, 1), E("x/two", F, 20, 0, 2)]),
            layer(&[E("x", F, 5, 0, 3)]),
        ]);
        assert_eq!(accounting.per_layer[0].wasted, 30);
        assert_eq!(accounting.wasted[0].kind, WasteKind::Overwritten);
        assert_eq!(accounting.wasted[0].path, "/x");
        assert_eq!(accounting.final_files.len(), 1);
    }

    #[test]
    fn chown_re_adds_are_flagged_with_what_changed() {
        let (_, accounting) = scan(&[
            layer(&[E("app/bin", F, 64, 0, 9), E("app/cfg", F, 8, 0, 1)]),
            layer(&[E("app/bin", F, 64, 1000, 9), E("app/cfg", F, 8, 1000, 2)]),
            layer(&[E("app/bin", F, 64, 1000, 9)]),
        ]);
        let kinds: Vec<(&str, WasteKind, &[&str], usize)> = accounting
            .wasted
            .iter()
            .map(|w| (w.path.as_str(), w.kind, &w.changed[..], w.hidden_by))
            .collect();
        assert_eq!(
            kinds,
            [
                ("/app/bin", WasteKind::MetadataOnlyReadd, &["owner"][..], 1),
                ("/app/bin", WasteKind::MetadataOnlyReadd, &[][..], 2),
                ("/app/cfg", WasteKind::Overwritten, &[][..], 1),
            ]
        );
        assert_eq!(accounting.per_layer[1].metadata_only, 64);
        assert_eq!(accounting.per_layer[1].hidden, 72);
    }

    #[test]
    fn names_normalize_like_an_applier_sees_them() {
        assert_eq!(normalize(b"./usr/bin/"), Some(b"usr/bin".to_vec()));
        assert_eq!(normalize(b"/a//b/./c"), Some(b"a/b/c".to_vec()));
        assert_eq!(normalize(b"../../etc/passwd"), Some(b"etc/passwd".to_vec()));
        assert_eq!(normalize(b"./"), None);
        assert_eq!(split_name(b"a/b/.wh.c"), (&b"a/b"[..], &b".wh.c"[..]));
        assert_eq!(split_name(b"top"), (&b""[..], &b"top"[..]));
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a", b""), b"a/");
    }
}
