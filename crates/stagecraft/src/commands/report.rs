//! The build's stages as size reports see them: the stage table `build --report` prints, and
//! the stage sizes `build` records in the store so that `size --stage` can show them later.

use stagecraft_report::{StageLayer, StageSizes, StageStatus};
use stagecraft_solve::{StageOutcome, StageReport};

/// A table of stages (outcome, layers, compressed size of the whole stage and of its own
/// layers), the final image next to its builder stages, and the final image's layers. Layers
/// are weighed compressed ([`stagecraft_report::weigh_stages`]).
pub(crate) fn stage_table(
    store: &stagecraft_store::Store,
    stages: &[StageReport],
) -> Result<String, stagecraft_report::Error> {
    let mut sizes = stage_sizes(stages);
    stagecraft_report::weigh_stages(store, &mut sizes)?;
    let comparison = stagecraft_report::compare_stages(&sizes, None);
    Ok(format!(
        "{}\n{}",
        stagecraft_report::render_stages(&comparison),
        stagecraft_report::render_final_layers(&comparison)
    ))
}

/// The engine's stage reports in the report crate's terms (what
/// `stagecraft_report::save_stage_sizes` records for `stagecraft size --stage`).
pub(crate) fn stage_sizes(stages: &[StageReport]) -> Vec<StageSizes> {
    stages
        .iter()
        .map(|stage| StageSizes {
            name: stage.name.clone(),
            status: match stage.outcome {
                StageOutcome::Built => StageStatus::Built,
                StageOutcome::Cached => StageStatus::Cached,
                StageOutcome::Skipped => StageStatus::Skipped,
            },
            layers: stage
                .layers
                .iter()
                .map(|layer| StageLayer {
                    digest: layer.digest.clone(),
                    size: layer.size,
                    uncompressed_size: layer.uncompressed_size,
                    created_by: layer.created_by.clone(),
                })
                .collect(),
            base_layers: stage.base_layers,
        })
        .collect()
}
