//! What the image checks (`stagecraft_lint::check_image`) read, taken from a build's outcome
//! (after `build`) or from the store (`lint --image`): the layer snapshots, the config, and
//! where each layer came from.

use super::CommandError;
use stagecraft_dockerfile::Dockerfile;
use stagecraft_imagefs::LayeredFs;
use stagecraft_lint::{BuiltFrom, CheckedImage, Finding, LayerSource, LintOptions};
use stagecraft_solve::BuildOutcome;
use stagecraft_store::{Image, Store};

/// The image checks of the image a build just made, at the Dockerfile's lines. Only the
/// layers the build made are listed: the base image is taken as it is.
fn after_build(file: &Dockerfile, options: &LintOptions, outcome: &BuildOutcome) -> Vec<Finding> {
    let layers: Vec<LayerSource> = outcome
        .layers
        .iter()
        .zip(&outcome.layer_sources)
        .map(|(layer, span)| LayerSource {
            own: span.is_some(),
            created_by: layer.created_by.clone(),
            span: *span,
        })
        .collect();
    let first_own = layers
        .iter()
        .position(|layer| layer.own)
        .unwrap_or(layers.len());
    let fs = LayeredFs::new(outcome.snapshots.clone()).listing_from(first_own);
    let image = CheckedImage {
        fs: &fs,
        config: &outcome.image.config,
        layers,
        name: outcome.image.config_digest.to_string(),
    };
    stagecraft_lint::check_image(
        &image,
        Some(BuiltFrom {
            dockerfile: file,
            options,
        }),
    )
}

/// Runs the image checks on a build's final image (each platform's) and shows their findings
/// with the build's progress (as warnings: they never fail a build).
pub(crate) fn show_after_build(
    renderer: &super::progress::Renderer,
    file: &Dockerfile,
    options: &LintOptions,
    outcomes: &[BuildOutcome],
) {
    for outcome in outcomes {
        let findings = after_build(file, options, outcome);
        if findings.is_empty() {
            continue;
        }
        // A multi-platform build checks each platform's image: say which one a finding is of.
        let which = if outcomes.len() > 1 {
            format!(" for {}", outcome.platform)
        } else {
            String::new()
        };
        renderer.info(format!(
            "checks of the built image{which} (--no-image-checks turns them off):\n{}",
            stagecraft_lint::render_text(&findings).trim_end()
        ));
    }
}

/// The image checks of an image in the store (`lint --image`), named `reference`. Its layers
/// are unpacked into snapshots when the store has none yet. When this store built the image,
/// its build recorded where the base image ends, and only the layers after it are listed;
/// otherwise every layer is.
pub(crate) fn stored(store: &Store, reference: &str) -> Result<Vec<Finding>, CommandError> {
    let image = store.image(reference).map_err(|e| {
        CommandError(format!(
            "error: {reference} is not an image in the store: {e}\n  = help: `stagecraft images` lists the store's images; pull one with `stagecraft pull`"
        ))
    })?;
    let snapshots = stagecraft_solve::image_snapshots(store, &image)?;
    let base_layers = recorded_base_layers(store, &image);
    // History entries that made a layer are matched to the layers in order, as docker does.
    let mut created_by = image
        .config
        .history
        .iter()
        .filter(|entry| !entry.empty_layer)
        .map(|entry| entry.created_by.clone());
    let layers = (0..image.manifest.layers.len())
        .map(|index| LayerSource {
            own: index >= base_layers,
            created_by: created_by.next().unwrap_or_default(),
            span: None,
        })
        .collect();
    let fs = LayeredFs::new(snapshots).listing_from(base_layers);
    let checked = CheckedImage {
        fs: &fs,
        config: &image.config,
        layers,
        name: reference.to_owned(),
    };
    Ok(stagecraft_lint::check_image(&checked, None))
}

/// How many of `image`'s layers its base image brought, as the build that made it in this
/// store recorded (the stage whose layers are the image's); 0 when no build here made it.
fn recorded_base_layers(store: &Store, image: &Image) -> usize {
    let Ok(Some(stages)) = stagecraft_report::load_stage_sizes(store, &image.manifest_digest)
    else {
        return 0;
    };
    stages
        .iter()
        .rev()
        .find(|stage| {
            stage.layers.iter().map(|layer| &layer.digest).eq(image
                .manifest
                .layers
                .iter()
                .map(|layer| &layer.digest))
        })
        .map_or(0, |stage| stage.base_layers)
}
