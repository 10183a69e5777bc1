//! Moving whole images between a registry and the store: manifests kept byte for byte, blobs
//! verified, layers transferred in parallel, existing blobs skipped.

use crate::{Reference, Registry, RegistryError};
use stagecraft_image::{AnyManifest, Digest, Platform};
use stagecraft_store::{Image, MultiPlatformImage, Store};

/// What a transfer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The registry side.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store side.
    #[error(transparent)]
    Store(#[from] stagecraft_store::Error),
    /// A document that is not what it should be.
    #[error("{0}")]
    Invalid(String),
}

fn digest(text: &str) -> Result<Digest, TransferError> {
    Digest::parse(text).map_err(|e| TransferError::Invalid(format!("bad digest {text:?}: {e}")))
}

/// Downloads a blob of `reference`'s repository into the store unless it is there already.
pub async fn fetch_blob(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    wanted: &Digest,
) -> Result<(), TransferError> {
    if store.has_blob(wanted) {
        return Ok(());
    }
    let temp = store.scratch_file("pull")?;
    registry
        .blob_to_file(reference, wanted.as_str(), temp.path())
        .await?;
    let file =
        std::fs::File::open(temp.path()).map_err(|e| TransferError::Invalid(e.to_string()))?;
    store.write_blob_expecting(std::io::BufReader::new(file), wanted)?;
    Ok(())
}

/// [`fetch_blob`] for many blobs, in parallel.
pub async fn fetch_blobs(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    wanted: impl IntoIterator<Item = &Digest>,
) -> Result<(), TransferError> {
    let downloads = wanted
        .into_iter()
        .map(|digest| fetch_blob(registry, store, reference, digest));
    for result in futures_util::future::join_all(downloads).await {
        result?;
    }
    Ok(())
}

/// Pulls `reference` (for `platform` when it names an index) into the store and tags it.
pub async fn pull(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    platform: &Platform,
) -> Result<Image, TransferError> {
    let top = registry.manifest(reference).await?;
    let top_digest = digest(&top.digest)?;
    store.write_blob_expecting(&top.bytes[..], &top_digest)?;
    let manifest_digest = match AnyManifest::from_slice(&top.bytes, top.media_type.as_deref())
        .map_err(|e| TransferError::Invalid(format!("manifest of {}: {e}", reference.whole())))?
    {
        AnyManifest::Image(_) => top_digest.clone(),
        AnyManifest::Index(index) => {
            let entry = index.find(platform).ok_or_else(|| {
                TransferError::Invalid(format!(
                    "{} has no image for {platform}; it has: {}",
                    reference.whole(),
                    index.platforms().join(", ")
                ))
            })?;
            let by_digest = reference.clone_with_digest(entry.digest.to_string());
            let child = registry.manifest(&by_digest).await?;
            store.write_blob_expecting(&child.bytes[..], &entry.digest)?;
            // The attestation manifests about that image (BuildKit's SBOM and provenance),
            // so `inspect` and `sbom` read them after the pull as after a build.
            for attestation in &index.manifests {
                if stagecraft_image::intoto::attestation_subject(attestation).as_ref()
                    != Some(&entry.digest)
                {
                    continue;
                }
                let by_digest = reference.clone_with_digest(attestation.digest.to_string());
                let fetched = registry.manifest(&by_digest).await?;
                let manifest = stagecraft_image::ImageManifest::from_slice(&fetched.bytes)
                    .map_err(|e| {
                        TransferError::Invalid(format!(
                            "attestation manifest {} of {}: {e}",
                            attestation.digest,
                            reference.whole()
                        ))
                    })?;
                // Its blobs first: a manifest in the store means the whole of it is.
                fetch_blobs(
                    registry,
                    store,
                    reference,
                    std::iter::once(&manifest.config.digest)
                        .chain(manifest.layers.iter().map(|l| &l.digest)),
                )
                .await?;
                store.write_blob_expecting(&fetched.bytes[..], &attestation.digest)?;
            }
            entry.digest.clone()
        }
    };
    let manifest = store.read_manifest(&manifest_digest)?;
    fetch_blob(registry, store, reference, &manifest.config.digest).await?;
    fetch_blobs(
        registry,
        store,
        reference,
        manifest.layers.iter().map(|l| &l.digest),
    )
    .await?;
    let name = reference.whole();
    store.set_tag(&name, &top_digest)?;
    Ok(store.image_for_platform(&name, platform)?)
}

/// Pushes a stored image under `reference`: blobs the registry lacks are uploaded, then the
/// manifest bytes as stored.
pub async fn push(
    registry: &Registry,
    store: &Store,
    image: &Image,
    reference: &Reference,
) -> Result<String, TransferError> {
    let mut blobs: Vec<Digest> = image
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.clone())
        .collect();
    blobs.push(image.config_digest.clone());
    let bytes = store.read_blob(&image.manifest_digest)?;
    push_manifest_with_blobs(
        registry,
        store,
        reference,
        &blobs,
        &bytes,
        &image.manifest.media_type,
    )
    .await
}

/// Pushes a stored multi-platform image under `reference`: every platform's image by its
/// manifest digest ([`push`]: blobs the registry lacks, then the manifest), one after the
/// other so blobs the platforms share go up once, then its attestation manifests the same
/// way, then the index bytes as stored under the reference's tag. Returns the index's digest.
pub async fn push_index(
    registry: &Registry,
    store: &Store,
    image: &MultiPlatformImage,
    reference: &Reference,
) -> Result<String, TransferError> {
    for platform_image in &image.images {
        let by_digest = reference.clone_with_digest(platform_image.manifest_digest.to_string());
        push(registry, store, platform_image, &by_digest).await?;
    }
    for attestation in &image.attestations {
        let digest = &attestation.descriptor.digest;
        let by_digest = reference.clone_with_digest(digest.to_string());
        push_manifest_with_blobs(
            registry,
            store,
            &by_digest,
            &attestation.blobs(),
            &store.read_blob(digest)?,
            &attestation.manifest.media_type,
        )
        .await?;
    }
    let bytes = store.read_blob(&image.index_digest)?;
    push_manifest_with_blobs(
        registry,
        store,
        reference,
        &[],
        &bytes,
        &image.index.media_type,
    )
    .await
}

/// Pushes any manifest (an image, a build cache) under `reference`: first the stored `blobs`
/// it names that the registry lacks, in parallel, then its exact bytes. Returns its digest.
pub async fn push_manifest_with_blobs(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    blobs: &[Digest],
    manifest: &[u8],
    media_type: &str,
) -> Result<String, TransferError> {
    upload_blobs(registry, store, reference, blobs).await?;
    Ok(registry
        .push_manifest(reference, manifest, media_type)
        .await?)
}

/// Uploads the stored `blobs` that `reference`'s repository lacks, in parallel.
pub async fn upload_blobs(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    blobs: &[Digest],
) -> Result<(), TransferError> {
    let uploads = blobs.iter().map(|blob| async move {
        if registry.has_blob(reference, blob.as_str()).await? {
            return Ok::<(), TransferError>(());
        }
        let path = store.blob_file(blob)?;
        registry
            .push_blob_file(reference, blob.as_str(), &path)
            .await?;
        Ok(())
    });
    for result in futures_util::future::join_all(uploads).await {
        result?;
    }
    Ok(())
}
