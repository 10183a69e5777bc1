//! `--metadata-file`: buildx's keys for the image a build made.

use crate::output::Exported;
use crate::session::BuildResult;

impl BuildResult {
    /// Every name the image got: the tags, then the names of `type=image` outputs and pushes,
    /// each once.
    pub fn image_names(&self) -> Vec<String> {
        let named = self.exports.iter().flat_map(|e| match e {
            Exported::Named { names } => names.clone(),
            Exported::Pushed { name, .. } => vec![name.clone()],
            _ => Vec::new(),
        });
        let mut names: Vec<String> = Vec::new();
        for name in self.names.iter().cloned().chain(named) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// buildx's metadata (`containerimage.config.digest`, `containerimage.digest`,
    /// `containerimage.descriptor`, `image.name`) as JSON.
    pub fn metadata(&self) -> serde_json::Value {
        let published = self.published();
        // The config as published (`rewrite-timestamp` makes another than the stored one's).
        let config = published
            .as_ref()
            .and_then(|p| p.config_digest)
            .unwrap_or_else(|| self.image_id());
        let mut metadata = serde_json::json!({
            "containerimage.config.digest": config.to_string(),
            "containerimage.digest": self.digest(),
        });
        // A manifest others know: pushed, or in an OCI layout. The store's own manifest names
        // uncompressed layers no registry has, so it is never described here.
        if let Some(published) = published {
            metadata["containerimage.descriptor"] = serde_json::json!({
                "mediaType": published.media_type,
                "digest": published.digest,
            });
        }
        let names = self.image_names();
        if !names.is_empty() {
            metadata["image.name"] = serde_json::Value::String(names.join(","));
        }
        metadata
    }
}
