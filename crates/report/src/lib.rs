//! Size reports: what each stage and layer of an image weighs, and what bloats the final image.
//!
//! [`analyze`] reads a stored image's layers bottom first and reports, per layer, its
//! compressed (blob) and uncompressed (tar) size, the instruction that made it (the image
//! history's `created_by`, matched in order to the non-empty history entries, as docker
//! matches them), its file count and biggest files, and its **wasted bytes** in dive's sense:
//! content a later layer deletes (whiteouts, opaque directories), overwrites, or re-adds
//! unchanged only to change its mode, owner or mtime — the "metadata-only re-add" a
//! `RUN chown -R` causes, reported separately. The **efficiency** is
//! `1 − wasted / file bytes`, where file bytes are the regular-file content all layers add
//! (the measure wasted bytes are counted in, so a score of 1 means nothing was hidden).
//!
//! With the build's stages ([`ImageReport::attach_stages`]) the report also shows every stage's
//! size and the final image next to its builder stages. [`render_text`] and [`render_html`] (a
//! self-contained page with a treemap of the final filesystem) present a report; it also
//! serializes to JSON.
//!
//! The numbers add up: the layers' compressed sizes are the blobs a push sends, whose sum is
//! [`Totals::compressed_bytes`], and `file_bytes − wasted_bytes` is exactly the content of the
//! final filesystem ([`Totals::final_bytes`]).
#![forbid(unsafe_code)]

mod error;
mod html;
mod ranked;
mod scan;
mod stages;
mod text;
mod treemap;

use serde::Serialize;
use stagecraft_image::Digest;
use stagecraft_store::{Image, Store};

pub use error::{Error, Result};
pub use html::render_html;
pub use scan::{FileSize, FinalFile, WasteKind, WastedEntry, waste_fixes};
pub use stages::{
    BeforeAfter, StageComparison, StageLayer, StageRow, StageSizes, StageStatus, compare_stages,
    load_stage_sizes, save_stage_sizes, stage_record_key, weigh_stages,
};
pub use text::{human_bytes, render_final_layers, render_stages, render_text};

/// What to collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How many of each layer's biggest files, and of the biggest waste entries, to keep.
    pub top: usize,
}

impl Default for Options {
    /// Ten, like dive's default list.
    fn default() -> Self {
        Options { top: 10 }
    }
}

/// The size report of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageReport {
    /// The name the image was asked for by.
    pub image: String,
    /// Its manifest digest.
    pub manifest_digest: Digest,
    /// Its layers, bottom first.
    pub layers: Vec<LayerReport>,
    /// Sums over all layers.
    pub totals: Totals,
    /// The biggest waste entries, biggest first ([`Options::top`] of them).
    pub wasted: Vec<WastedEntry>,
    /// Every build stage, when the build's stages are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<StageComparison>,
    /// The regular files of the final filesystem with the layer each comes from, sorted by
    /// path; the treemap's input. Left out of JSON, where it would dwarf everything else.
    #[serde(skip)]
    pub final_files: Vec<FinalFile>,
}

/// One layer of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    /// Position, 0 = bottom.
    pub index: usize,
    /// The compressed blob's digest.
    pub digest: Digest,
    /// The uncompressed tar's digest, from the config's `rootfs.diff_ids`.
    pub diff_id: Option<Digest>,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in the store.
    pub compressed_size: u64,
    /// The uncompressed tar's size.
    pub uncompressed_size: u64,
    /// The instruction that made it (empty when the history does not say).
    pub created_by: String,
    /// Entries other than directories and whiteouts.
    pub files: u64,
    /// Content bytes of its regular files.
    pub file_bytes: u64,
    /// Whiteouts and opaque markers: what it deletes.
    pub deletions: u64,
    /// Bytes it added that later layers hide.
    pub wasted_bytes: u64,
    /// Bytes of earlier layers it deletes, overwrites or re-adds.
    pub hidden_bytes: u64,
    /// The part of `hidden_bytes` it re-added with unchanged content (metadata-only re-adds).
    pub metadata_only_bytes: u64,
    /// Its biggest regular files, biggest first.
    pub biggest: Vec<FileSize>,
}

/// Sums over the whole image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    /// Number of layers.
    pub layers: usize,
    /// Compressed bytes: the sum of the layer blob sizes.
    pub compressed_bytes: u64,
    /// Uncompressed bytes: the sum of the layer tar sizes.
    pub uncompressed_bytes: u64,
    /// Regular-file content added by all layers.
    pub file_bytes: u64,
    /// Regular-file content of the final filesystem.
    pub final_bytes: u64,
    /// Regular files in the final filesystem.
    pub final_files: u64,
    /// `file_bytes − final_bytes`: content that is shipped but hidden.
    pub wasted_bytes: u64,
    /// The part of `wasted_bytes` hidden by metadata-only re-adds.
    pub metadata_only_bytes: u64,
    /// How many waste entries there are (the report lists the biggest).
    pub wasted_entries: u64,
    /// `1 − wasted_bytes / file_bytes` (1 for an image without content).
    pub efficiency: f64,
}

/// Reads every layer of `image` from `store` and reports on it; `name` is how the user named
/// the image. Reads each layer once, decompressing and hashing its files. A layer the store
/// holds as a plain tar (what builds make) is weighed as it would travel: gzip-compressed,
/// through [`Store::compressed_image`], so the work is done once and a later push or OCI
/// export reuses it.
pub fn analyze(store: &Store, image: &Image, name: &str, options: &Options) -> Result<ImageReport> {
    let travelling = store.compressed_image(image, stagecraft_layer::Compression::gzip())?;
    let mut created_by = image
        .config
        .history
        .iter()
        .filter(|entry| !entry.empty_layer)
        .map(|entry| entry.created_by.clone());
    let mut scanner = scan::Scanner::new(options.top);
    let mut layers = Vec::with_capacity(image.manifest.layers.len());
    for (index, descriptor) in image.manifest.layers.iter().enumerate() {
        let blob = std::io::BufReader::new(store.open_blob(&descriptor.digest)?);
        let contents = scanner.scan_layer(blob).map_err(|source| Error::Layer {
            digest: descriptor.digest.clone(),
            source,
        })?;
        layers.push(LayerReport {
            index,
            digest: descriptor.digest.clone(),
            diff_id: image.config.rootfs.diff_ids.get(index).cloned(),
            media_type: descriptor.media_type.clone(),
            compressed_size: travelling.manifest.layers[index].size,
            uncompressed_size: contents.uncompressed_size,
            created_by: created_by.next().unwrap_or_default(),
            files: contents.files,
            file_bytes: contents.file_bytes,
            deletions: contents.deletions,
            wasted_bytes: 0,
            hidden_bytes: 0,
            metadata_only_bytes: 0,
            biggest: contents.biggest,
        });
    }
    let accounting = scanner.finish();
    for (layer, waste) in layers.iter_mut().zip(&accounting.per_layer) {
        layer.wasted_bytes = waste.wasted;
        layer.hidden_bytes = waste.hidden;
        layer.metadata_only_bytes = waste.metadata_only;
    }
    let sum = |field: fn(&LayerReport) -> u64| layers.iter().map(field).sum::<u64>();
    let file_bytes = sum(|l| l.file_bytes);
    let wasted_bytes = sum(|l| l.wasted_bytes);
    let totals = Totals {
        layers: layers.len(),
        compressed_bytes: sum(|l| l.compressed_size),
        uncompressed_bytes: sum(|l| l.uncompressed_size),
        file_bytes,
        final_bytes: accounting.final_files.iter().map(|f| f.size).sum(),
        final_files: accounting.final_files.len() as u64,
        wasted_bytes,
        metadata_only_bytes: sum(|l| l.metadata_only_bytes),
        wasted_entries: accounting.wasted_entries,
        efficiency: if file_bytes == 0 {
            1.0
        } else {
            1.0 - wasted_bytes as f64 / file_bytes as f64
        },
    };
    Ok(ImageReport {
        image: name.to_owned(),
        manifest_digest: image.manifest_digest.clone(),
        layers,
        totals,
        wasted: accounting.wasted,
        stages: None,
        final_files: accounting.final_files,
    })
}

impl ImageReport {
    /// Adds the build's stages, the final one recognised by this image's layers.
    pub fn attach_stages(&mut self, stages: &[StageSizes]) {
        let digests: Vec<Digest> = self.layers.iter().map(|l| l.digest.clone()).collect();
        self.stages = Some(compare_stages(stages, Some(&digests)));
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}
