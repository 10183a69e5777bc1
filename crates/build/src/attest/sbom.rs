//! SBOMs of images: cataloged from an image's layer snapshots, so that each package names the
//! layer (and the Dockerfile line) that added it, and kept in the store by image ID, so that
//! the SBOM of a cached image costs nothing on a rebuild, nor for `stagecraft sbom`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use stagecraft_image::Timestamp;
use stagecraft_imagefs::LayeredFs;
use stagecraft_sbom::Catalog;
use stagecraft_sbom::spdx::{Document, DocumentInfo, LayerInfo};
use stagecraft_solve::StepRecord;
use stagecraft_store::{Image, Store};
use std::path::PathBuf;

/// What the store keeps of an image's catalog (`cache/sbom-catalog-<image ID hex>`).
#[derive(Serialize, Deserialize)]
struct CatalogRecord {
    /// When it was made (RFC 3339): the SPDX document's creation time, unless
    /// `SOURCE_DATE_EPOCH` sets one.
    created: String,
    catalog: Catalog,
}

/// An image's catalog.
#[derive(Debug, Clone)]
pub struct ImageCatalog {
    /// The packages found.
    pub catalog: Catalog,
    /// When the catalog was made.
    pub created: Timestamp,
    /// Whether it came from the store rather than a look at the image's files.
    pub cached: bool,
}

fn record_key(image: &Image) -> String {
    format!("sbom-catalog-{}", image.config_digest.hex())
}

/// The catalog of `image`: from the store when an earlier build or `stagecraft sbom` made it
/// (the image ID names the layers and so the files), else read from its layer snapshots
/// (`snapshots`, bottom first, when the caller has them; unpacked from the layer blobs
/// otherwise) and kept.
pub fn image_catalog(
    store: &Store,
    image: &Image,
    snapshots: Option<&[PathBuf]>,
) -> Result<ImageCatalog> {
    let key = record_key(image);
    if let Ok(Some(record)) = store.get_cache_json::<CatalogRecord>(&key)
        && let Some(created) = Timestamp::parse(&record.created)
    {
        return Ok(ImageCatalog {
            catalog: record.catalog,
            created,
            cached: true,
        });
    }
    let failed = |message: String| Error::Attestation {
        what: format!("the SBOM of {}", image.config_digest),
        message,
    };
    let fs = LayeredFs::new(match snapshots {
        Some(snapshots) => snapshots.to_vec(),
        None => {
            stagecraft_solve::image_snapshots(store, image).map_err(|e| failed(e.to_string()))?
        }
    });
    let catalog = stagecraft_sbom::catalog(&fs).map_err(|e| failed(e.to_string()))?;
    let created = Timestamp::now().ok_or_else(|| failed("the clock is before 1970".into()))?;
    let record = CatalogRecord {
        created: created.to_string(),
        catalog,
    };
    store
        .put_cache_json(&key, &record)
        .map_err(Error::store("keeping the SBOM catalog"))?;
    Ok(ImageCatalog {
        catalog: record.catalog,
        created,
        cached: false,
    })
}

/// The image's layers as its SBOM names them: each one's diff ID and what made it —
/// `Dockerfile:LINE INSTRUCTION` for a layer one of `steps` made (`dockerfile` names the
/// file), else the image history's `created_by` (a base image's layers).
pub fn layer_infos(image: &Image, steps: &[StepRecord], dockerfile: &str) -> Vec<LayerInfo> {
    let mut history = image
        .config
        .history
        .iter()
        .filter(|entry| !entry.empty_layer);
    image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|diff_id| {
            let from_history = history
                .next()
                .map(|entry| entry.created_by.clone())
                .filter(|text| !text.is_empty());
            let from_step = steps
                .iter()
                .find(|step| step.layer.as_ref() == Some(diff_id))
                .map(|step| format!("{dockerfile}:{} {}", step.line, step.name));
            LayerInfo {
                diff_id: Some(diff_id.clone()),
                created_by: from_step.or(from_history),
            }
        })
        .collect()
}

/// The SPDX document of an image's catalog, named `name`, created at `SOURCE_DATE_EPOCH`
/// when set, else when the catalog was made.
pub fn document(
    catalog: &ImageCatalog,
    image: &Image,
    name: &str,
    layers: &[LayerInfo],
    source_date_epoch: Option<i64>,
) -> Document {
    let created = source_date_epoch
        .and_then(|secs| Timestamp::from_unix(secs, 0))
        .unwrap_or(catalog.created);
    Document::new(
        &catalog.catalog,
        &DocumentInfo {
            name,
            digest: Some(&image.config_digest),
            created,
            tool_version: env!("CARGO_PKG_VERSION"),
            layers,
        },
    )
}
