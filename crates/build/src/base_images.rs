//! Where base images come from: the store when it has them (no network for a cached build),
//! else their registry.

use crate::network::block_on;
use stagecraft_image::Platform;
use stagecraft_registry::Registry;
use stagecraft_solve::{BaseImageError, BaseImages, InStore, OciLayoutRef};
use stagecraft_store::{Image, Store};

/// Base images: from the store when present, else pulled.
pub struct StoreOrRegistry<'a> {
    /// The store.
    pub store: &'a Store,
    /// The registry client.
    pub registry: &'a Registry,
    /// Ask the registry even when the store has the tag (`--pull`).
    pub always_pull: bool,
    /// References already pulled in this build, with the platform pulled for, so stages
    /// sharing a base pull it once (and each platform of a multi-platform build once).
    pub pulled: std::sync::Mutex<Vec<(String, Platform)>>,
}

impl BaseImages for StoreOrRegistry<'_> {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<Image, BaseImageError> {
        // Stages resolve their bases in parallel; one at a time here keeps a shared base from
        // being fetched twice.
        let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
        let fresh_enough =
            !self.always_pull || pulled.iter().any(|(r, p)| r == reference && p == platform);
        let in_store = self.store.image_for_platform(reference, platform);
        if fresh_enough && let Ok(image) = in_store {
            return Ok(image);
        }
        pulled.push((reference.to_owned(), platform.clone()));
        let parsed = stagecraft_registry::parse_reference(reference)
            .map_err(|e| BaseImageError::Reference(e.into()))?;
        let result = block_on(stagecraft_registry::pull(
            self.registry,
            self.store,
            &parsed,
            platform,
        ))
        .map_err(|e| BaseImageError::Runtime(e.into()))?;
        result.map_err(|e| BaseImageError::Pull {
            in_store: match in_store {
                // The store has the name, for other platforms: say which.
                Err(stagecraft_store::Error::PlatformNotFound {
                    platform,
                    available,
                    ..
                }) => InStore::OtherPlatforms {
                    available: available.to_string(),
                    platform: platform.to_string(),
                },
                _ => InStore::Nothing,
            },
            source: e.into(),
        })
    }

    fn resolve_layout(
        &self,
        layout: &OciLayoutRef,
        platform: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>> {
        Ok(stagecraft_export::load_layout_image(
            self.store,
            &layout.path,
            layout.tag.as_deref(),
            layout.digest.as_ref(),
            platform,
        )?)
    }
}
