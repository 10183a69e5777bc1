//! The plain-text report: aligned tables for a terminal.

use std::fmt::Write as _;

use crate::{ImageReport, StageComparison, WastedEntry, waste_fixes};

/// Longest `created_by` shown in a table row; the JSON and HTML reports keep it whole.
const CREATED_BY_WIDTH: usize = 70;

/// Sizes the way docker prints them (`units.HumanSize`): decimal units, four significant digits.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = match value {
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let digits = format!("{value:.decimals$}");
    let digits = if digits.contains('.') {
        digits.trim_end_matches('0').trim_end_matches('.')
    } else {
        &digits
    };
    format!("{digits}{}", UNITS[unit])
}

/// The whole report: summary, layer table, biggest files per layer, wasted space, and the
/// stage tables when the report has stages.
pub fn render_text(report: &ImageReport) -> String {
    let totals = &report.totals;
    let mut out = String::new();
    // Writing to a String cannot fail, hence the ignored results throughout.
    let _ = writeln!(
        out,
        "IMAGE {} ({})\n{} layers, {} compressed, {} uncompressed; {} files, {} in the final filesystem; wasted {} ({} in metadata-only re-adds); efficiency {:.1}%",
        report.image,
        report.manifest_digest,
        totals.layers,
        human_bytes(totals.compressed_bytes),
        human_bytes(totals.uncompressed_bytes),
        totals.final_files,
        human_bytes(totals.final_bytes),
        human_bytes(totals.wasted_bytes),
        human_bytes(totals.metadata_only_bytes),
        totals.efficiency * 100.0,
    );

    let _ = writeln!(
        out,
        "\n{:>5} {:>12} {:>12} {:>7} {:>10} {:>12}  {:<12}  CREATED BY",
        "LAYER", "COMPRESSED", "UNCOMPRESSED", "FILES", "WASTED", "META RE-ADD", "DIGEST"
    );
    for layer in &report.layers {
        let _ = writeln!(
            out,
            "{:>5} {:>12} {:>12} {:>7} {:>10} {:>12}  {:<12}  {}",
            layer.index,
            human_bytes(layer.compressed_size),
            human_bytes(layer.uncompressed_size),
            layer.files,
            human_bytes(layer.wasted_bytes),
            human_bytes(layer.metadata_only_bytes),
            layer.digest.short(),
            shorten(created_by_or_unknown(&layer.created_by), CREATED_BY_WIDTH),
        );
    }
    let _ = writeln!(
        out,
        "{:>5} {:>12} {:>12} {:>7} {:>10} {:>12}",
        "TOTAL",
        human_bytes(totals.compressed_bytes),
        human_bytes(totals.uncompressed_bytes),
        report.layers.iter().map(|l| l.files).sum::<u64>(),
        human_bytes(totals.wasted_bytes),
        human_bytes(totals.metadata_only_bytes),
    );

    if report.layers.iter().any(|l| !l.biggest.is_empty()) {
        out.push_str("\nBIGGEST FILES PER LAYER\n");
        for layer in report.layers.iter().filter(|l| !l.biggest.is_empty()) {
            let _ = writeln!(
                out,
                "layer {}: {}",
                layer.index,
                shorten(created_by_or_unknown(&layer.created_by), CREATED_BY_WIDTH)
            );
            for file in &layer.biggest {
                let _ = writeln!(out, "  {:>10}  {}", human_bytes(file.size), file.path);
            }
        }
    }

    let entries: u64 = report.layers.iter().map(|l| l.files).sum();
    if entries != totals.final_files {
        let _ = writeln!(
            out,
            "(FILES counts every non-directory entry each layer adds: links, and files a later \
             layer deletes or replaces, too; the {} files above are the regular files left in \
             the final filesystem)",
            totals.final_files
        );
    }

    if report.wasted.is_empty() {
        out.push_str("\nWASTED SPACE: none\n");
    } else {
        let whys: Vec<String> = report.wasted.iter().map(WastedEntry::why).collect();
        let why_width = whys
            .iter()
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0)
            .max(3);
        let _ = writeln!(
            out,
            "\nWASTED SPACE (the biggest {} of {})",
            report.wasted.len(),
            totals.wasted_entries,
        );
        let _ = writeln!(
            out,
            "{:>10} {:>6} {:>8} {:>9}  {:<why_width$}  PATH",
            "BYTES", "FILES", "ADDED IN", "HIDDEN BY", "WHY"
        );
        for (entry, why) in report.wasted.iter().zip(&whys) {
            let _ = writeln!(
                out,
                "{:>10} {:>6} {:>8} {:>9}  {:<why_width$}  {}",
                human_bytes(entry.bytes),
                entry.files,
                entry.added_in,
                entry.hidden_by,
                why,
                entry.path
            );
        }
        out.push_str("\nTO FIX\n");
        for (kind, fix) in waste_fixes(&report.wasted) {
            let _ = writeln!(out, "  {kind}: {fix}");
        }
    }

    if let Some(stages) = &report.stages {
        out.push('\n');
        out.push_str(&render_stages(stages));
    }
    out
}

/// The stage table and, when there are builder stages, the before/after table.
pub fn render_stages(comparison: &StageComparison) -> String {
    let mut out = format!(
        "{:<20} {:<8} {:>7} {:>12} {:>12} {:>12}\n",
        "STAGE", "STATUS", "LAYERS", "SIZE", "OWN LAYERS", "UNCOMPRESSED"
    );
    for row in &comparison.stages {
        let name = if row.is_final {
            format!("{} (final)", row.name)
        } else {
            row.name.clone()
        };
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:>7} {:>12} {:>12} {:>12}",
            name,
            row.status.label(),
            row.layers,
            human_bytes(row.compressed_bytes),
            human_bytes(row.own_compressed_bytes),
            row.uncompressed_bytes.map_or("-".to_owned(), human_bytes),
        );
    }
    if !comparison.before_after.is_empty() {
        let _ = writeln!(
            out,
            "\nTHE FINAL IMAGE NEXT TO EACH BUILDER STAGE (what shipping that stage instead would weigh;\n\
             the final stage is built on its own base, not shrunk from the builder, so it may be larger)"
        );
        let _ = writeln!(
            out,
            "{:<20} {:>12} {:>12}  THE FINAL IMAGE IS",
            "STAGE", "STAGE SIZE", "FINAL SIZE"
        );
        for row in &comparison.before_after {
            let _ = writeln!(
                out,
                "{:<20} {:>12} {:>12}  {}",
                row.stage,
                human_bytes(row.stage_bytes),
                human_bytes(row.final_bytes),
                final_compared(row),
            );
        }
    }
    out
}

/// How the final image compares with a builder stage, in words: `280MB (93.3%) smaller`,
/// `15MB larger`, `the same size`.
pub(crate) fn final_compared(row: &crate::BeforeAfter) -> String {
    let difference = human_bytes(row.saved_bytes.unsigned_abs());
    match row.saved_bytes {
        0 => "the same size".to_owned(),
        saved if saved > 0 => format!("{difference} ({:.1}%) smaller", row.saved_percent),
        _ => format!("{difference} larger"),
    }
}

/// The final stage's layers, one line each: compressed size, short digest, instruction.
pub fn render_final_layers(comparison: &StageComparison) -> String {
    let mut out = String::from("LAYERS OF THE FINAL IMAGE\n");
    for layer in &comparison.final_layers {
        let _ = writeln!(
            out,
            "{:>12}  {}  {}",
            human_bytes(layer.size),
            layer.digest.short(),
            created_by_or_base(&layer.created_by)
        );
    }
    out
}

/// Layers without a recorded instruction are, in practice, the base image's.
fn created_by_or_base(created_by: &str) -> &str {
    if created_by.is_empty() {
        "(base image)"
    } else {
        created_by
    }
}

/// An image's history may not cover every layer (or be missing altogether).
fn created_by_or_unknown(created_by: &str) -> &str {
    if created_by.is_empty() {
        "(no history)"
    } else {
        created_by
    }
}

/// `text` cut to `width` characters, with an ellipsis when cut.
fn shorten(text: &str, width: usize) -> String {
    match text.char_indices().nth(width.saturating_sub(1)) {
        Some((cut, _)) if text.chars().count() > width => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_decimal_units() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(1_500), "1.5kB");
        assert_eq!(human_bytes(12_345_678), "12.35MB");
        assert_eq!(human_bytes(123_456_789), "123.5MB");
    }

    #[test]
    fn the_final_image_is_compared_in_words() {
        let row = |stage_bytes: u64, final_bytes: u64| {
            let saved = stage_bytes as i64 - final_bytes as i64;
            crate::BeforeAfter {
                stage: "build".into(),
                stage_bytes,
                final_bytes,
                saved_bytes: saved,
                saved_percent: saved as f64 * 100.0 / stage_bytes as f64,
            }
        };
        assert_eq!(
            final_compared(&row(300_000_000, 20_000_000)),
            "280MB (93.3%) smaller"
        );
        assert_eq!(final_compared(&row(5_000_000, 20_000_000)), "15MB larger");
        assert_eq!(final_compared(&row(1_000, 1_000)), "the same size");
        let table = render_stages(&crate::StageComparison {
            stages: Vec::new(),
            before_after: vec![row(5_000_000, 20_000_000)],
            final_layers: Vec::new(),
        });
        assert!(
            !table.contains("SAVED") && !table.contains("-15MB"),
            "{table}"
        );
    }

    #[test]
    fn long_instructions_are_shortened() {
        assert_eq!(shorten("RUN true", 70), "RUN true");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("ééééé", 5), "ééééé");
        assert_eq!(shorten("éééééé", 5), "éééé…");
    }
}
