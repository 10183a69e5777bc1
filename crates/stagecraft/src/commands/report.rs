//! Size tables: what each stage weighs next to the final image, like the multi-stage guides'
//! before/after tables.

use stagecraft_solve::{StageOutcome, StageReport};

/// A table of stages: outcome, layers and compressed size (the stage's whole filesystem).
pub fn stage_table(stages: &[StageReport]) -> String {
    let mut out = format!(
        "{:<20} {:<8} {:>7} {:>12} {:>12}\n",
        "STAGE", "STATUS", "LAYERS", "SIZE", "OWN LAYERS"
    );
    for stage in stages {
        let status = match stage.outcome {
            StageOutcome::Built => "built",
            StageOutcome::Cached => "cached",
            StageOutcome::Skipped => "skipped",
        };
        let total: u64 = stage.layers.iter().map(|l| l.size).sum();
        let own: u64 = stage
            .layers
            .iter()
            .skip(stage.base_layers)
            .map(|l| l.size)
            .sum();
        out.push_str(&format!(
            "{:<20} {:<8} {:>7} {:>12} {:>12}\n",
            stage.name,
            status,
            stage.layers.len(),
            super::human_bytes(total),
            super::human_bytes(own)
        ));
    }
    if let Some(last) = stages.last() {
        out.push_str("\nLAYERS OF THE FINAL IMAGE\n");
        for layer in &last.layers {
            let created_by = if layer.created_by.is_empty() {
                "(base image)"
            } else {
                &layer.created_by
            };
            out.push_str(&format!(
                "{:>12}  {}  {}\n",
                super::human_bytes(layer.size),
                layer.digest.short(),
                created_by
            ));
        }
    }
    out
}
