//! The plain-text report: aligned tables for a terminal.

use std::fmt::Write as _;

use crate::{ImageReport, StageComparison};

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
        "IMAGE {} ({})\n{} layers, {} compressed, {} uncompressed; {} files, {}; wasted {} ({} in metadata-only re-adds); efficiency {:.1}%",
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

    if report.wasted.is_empty() {
        out.push_str("\nWASTED SPACE: none\n");
    } else {
        let _ = writeln!(
            out,
            "\nWASTED SPACE (the biggest {} of {})\n{:>10} {:>6} {:>5} {:>5}  {:<22}  PATH",
            report.wasted.len(),
            totals.wasted_entries,
            "BYTES",
            "FILES",
            "ADDED",
            "BY",
            "WHY"
        );
        for entry in &report.wasted {
            let why = if entry.changed.is_empty() {
                entry.kind.label().to_owned()
            } else {
                format!("{} ({})", entry.kind.label(), entry.changed.join(","))
            };
            let _ = writeln!(
                out,
                "{:>10} {:>6} {:>5} {:>5}  {:<22}  {}",
                human_bytes(entry.bytes),
                entry.files,
                entry.added_in,
                entry.hidden_by,
                why,
                entry.path
            );
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
            "\n{:<20} {:>12} {:>12} {:>12} {:>8}",
            "BEFORE → AFTER", "STAGE", "FINAL", "SAVED", "SAVED %"
        );
        for row in &comparison.before_after {
            let saved = if row.saved_bytes < 0 {
                format!("-{}", human_bytes(row.saved_bytes.unsigned_abs()))
            } else {
                human_bytes(row.saved_bytes.unsigned_abs())
            };
            let _ = writeln!(
                out,
                "{:<20} {:>12} {:>12} {:>12} {:>7.1}%",
                row.stage,
                human_bytes(row.stage_bytes),
                human_bytes(row.final_bytes),
                saved,
                row.saved_percent
            );
        }
    }
    out
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
    fn long_instructions_are_shortened() {
        assert_eq!(shorten("RUN true", 70), "RUN true");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("ééééé", 5), "ééééé");
        assert_eq!(shorten("éééééé", 5), "éééé…");
    }
}
