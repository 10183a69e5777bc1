//! The HTML report: one self-contained page (inline CSS, SVG and a few lines of JavaScript, no
//! network access) with a treemap of the final filesystem coloured by layer, and the tables of
//! the text report.

use std::fmt::Write as _;

use crate::text::human_bytes;
use crate::treemap::{Cell, Rect, layout};
use crate::{ImageReport, StageComparison};

/// The treemap's coordinate space; the SVG scales to the page width.
const MAP: Rect = Rect {
    x: 0.0,
    y: 0.0,
    w: 1160.0,
    h: 560.0,
};

/// Fixed-width characters per unit of width, to decide whether a label fits its cell.
const CHAR_WIDTH: f64 = 6.5;

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #222; background: #fafafa; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.summary { color: #444; margin: 0; }
.digest, td.mono { font-family: ui-monospace, monospace; font-size: 12px; }
svg { width: 100%; height: auto; background: #fff; border: 1px solid #ccc; }
svg text { font: 11px ui-monospace, monospace; pointer-events: none; }
rect.d { fill: #e8e8e8; stroke: #999; stroke-width: 0.6; }
rect.f { stroke: #fff; stroke-width: 0.5; }
svg.focus rect.f:not(.on) { opacity: 0.15; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 8px 0; }
.legend span, tr[data-layer] { cursor: default; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
table { border-collapse: collapse; background: #fff; max-width: 100%; }
td.mono { word-break: break-all; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; white-space: nowrap; }
tr:hover td { background: #f0f4ff; }
"#;

/// Hovering a layer (legend entry or table row) dims every file of the treemap from other layers.
const SCRIPT: &str = r#"
const map = document.querySelector('svg');
for (const item of document.querySelectorAll('[data-layer]')) {
  item.addEventListener('mouseenter', () => {
    map.classList.add('focus');
    for (const cell of map.querySelectorAll('rect.f')) {
      cell.classList.toggle('on', cell.dataset.layer === item.dataset.layer);
    }
  });
  item.addEventListener('mouseleave', () => map.classList.remove('focus'));
}
"#;

/// The whole page.
pub fn render_html(report: &ImageReport) -> String {
    let totals = &report.totals;
    let mut out = String::new();
    // Writing to a String cannot fail, hence the ignored results throughout.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>stagecraft size: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p class=\"digest\">{}</p>\n",
        escape(&report.image),
        escape(&report.image),
        report.manifest_digest,
    );
    let _ = writeln!(
        out,
        "<p class=\"summary\">{} layers, {} compressed, {} uncompressed; {} files, {} in the final filesystem; wasted {} ({} in metadata-only re-adds); efficiency {:.1}%</p>",
        totals.layers,
        human_bytes(totals.compressed_bytes),
        human_bytes(totals.uncompressed_bytes),
        totals.final_files,
        human_bytes(totals.final_bytes),
        human_bytes(totals.wasted_bytes),
        human_bytes(totals.metadata_only_bytes),
        totals.efficiency * 100.0,
    );
    out.push_str("<h2>Final filesystem</h2>\n");
    treemap(report, &mut out);
    layer_table(report, &mut out);
    wasted_table(report, &mut out);
    if let Some(stages) = &report.stages {
        stage_tables(stages, &mut out);
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

/// The layer's colour: hues a golden angle apart, so neighbouring layers always differ.
fn colour(layer: usize) -> String {
    let hue = (layer as f64 * 137.508) % 360.0;
    format!("hsl({hue:.0},62%,55%)")
}

fn treemap(report: &ImageReport, out: &mut String) {
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"treemap of the final filesystem\">",
        MAP.w, MAP.h
    );
    let instruction = |layer: usize| {
        report
            .layers
            .get(layer)
            .map_or("", |l| l.created_by.as_str())
    };
    for placed in layout(&report.final_files, MAP) {
        let Rect { x, y, w, h } = placed.rect;
        let (class, fill, path, tooltip) = match &placed.cell {
            Cell::Directory { path, size } => {
                ("d", None, path, format!("{path}/ — {}", human_bytes(*size)))
            }
            Cell::File { path, size, layer } => (
                "f",
                Some(*layer),
                path,
                format!(
                    "{path} — {} — layer {layer}: {}",
                    human_bytes(*size),
                    instruction(*layer)
                ),
            ),
        };
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\""
        );
        if let Some(layer) = fill {
            let _ = write!(
                out,
                " data-layer=\"{layer}\" style=\"fill:{}\"",
                colour(layer)
            );
        }
        let _ = writeln!(out, "><title>{}</title></rect>", escape(&tooltip));
        let name = path.rsplit('/').next().unwrap_or(path);
        let fits = (name.chars().count() as f64 + 1.0) * CHAR_WIDTH < w && h > 13.0;
        if fits {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 3.0,
                y + 11.0,
                escape(name)
            );
        }
    }
    out.push_str("</svg>\n<div class=\"legend\">\n");
    for layer in &report.layers {
        let _ = writeln!(
            out,
            "<span data-layer=\"{}\"><i class=\"swatch\" style=\"background:{}\"></i>layer {} · {} added</span>",
            layer.index,
            colour(layer.index),
            layer.index,
            human_bytes(layer.file_bytes)
        );
    }
    out.push_str("</div>\n");
}

fn layer_table(report: &ImageReport, out: &mut String) {
    out.push_str(
        "<h2>Layers</h2>\n<table>\n<tr><th class=\"n\">#</th><th class=\"n\">compressed</th><th class=\"n\">uncompressed</th><th class=\"n\">files</th><th class=\"n\">wasted</th><th class=\"n\">metadata-only re-add</th><th>digest</th><th>created by</th><th>biggest files</th></tr>\n",
    );
    for layer in &report.layers {
        let biggest: Vec<String> = layer
            .biggest
            .iter()
            .take(3)
            .map(|f| format!("{} {}", escape(&f.path), human_bytes(f.size)))
            .collect();
        let _ = writeln!(
            out,
            "<tr data-layer=\"{}\"><td class=\"n\"><i class=\"swatch\" style=\"background:{}\"></i>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            layer.index,
            colour(layer.index),
            layer.index,
            human_bytes(layer.compressed_size),
            human_bytes(layer.uncompressed_size),
            layer.files,
            human_bytes(layer.wasted_bytes),
            human_bytes(layer.metadata_only_bytes),
            layer.digest,
            escape(&layer.created_by),
            biggest.join("<br>"),
        );
    }
    let totals = &report.totals;
    let _ = writeln!(
        out,
        "<tr><th class=\"n\">total</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th colspan=\"3\"></th></tr>\n</table>",
        human_bytes(totals.compressed_bytes),
        human_bytes(totals.uncompressed_bytes),
        report.layers.iter().map(|l| l.files).sum::<u64>(),
        human_bytes(totals.wasted_bytes),
        human_bytes(totals.metadata_only_bytes),
    );
    if report.layers.iter().map(|l| l.files).sum::<u64>() != totals.final_files {
        let _ = writeln!(
            out,
            "<p>The files column counts every entry other than a directory that each layer adds: links, and files a later layer deletes or replaces, too. The {} files of the summary are the regular files left in the final filesystem.</p>",
            totals.final_files
        );
    }
}

fn wasted_table(report: &ImageReport, out: &mut String) {
    if report.wasted.is_empty() {
        out.push_str("<h2>Wasted space</h2>\n<p>None: every byte the layers add is in the final filesystem.</p>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<h2>Wasted space</h2>\n<p>The biggest {} of {} entries.</p>\n<table>\n<tr><th class=\"n\">bytes</th><th class=\"n\">files</th><th>why</th><th class=\"n\">added in</th><th class=\"n\">hidden by</th><th>path</th></tr>",
        report.wasted.len(),
        report.totals.wasted_entries
    );
    for entry in &report.wasted {
        let why = entry.why();
        let _ = writeln!(
            out,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"mono\">{}</td></tr>",
            human_bytes(entry.bytes),
            entry.files,
            why,
            entry.added_in,
            entry.hidden_by,
            escape(&entry.path)
        );
    }
    out.push_str("</table>\n<h3>How to fix it</h3>\n<ul>\n");
    for (kind, fix) in crate::waste_fixes(&report.wasted) {
        let _ = writeln!(out, "<li><b>{kind}</b>: {}</li>", code_spans(&escape(fix)));
    }
    out.push_str("</ul>\n");
}

/// `text` with its backquoted spans set as code.
fn code_spans(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn stage_tables(stages: &StageComparison, out: &mut String) {
    out.push_str("<h2>Stages</h2>\n<table>\n<tr><th>stage</th><th>status</th><th class=\"n\">layers</th><th class=\"n\">size</th><th class=\"n\">own layers</th><th class=\"n\">uncompressed</th></tr>\n");
    for row in &stages.stages {
        let _ = writeln!(
            out,
            "<tr><td>{}{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&row.name),
            if row.is_final { " (final)" } else { "" },
            row.status.label(),
            row.layers,
            human_bytes(row.compressed_bytes),
            human_bytes(row.own_compressed_bytes),
            row.uncompressed_bytes.map_or("-".to_owned(), human_bytes),
        );
    }
    out.push_str("</table>\n");
    if stages.before_after.is_empty() {
        return;
    }
    out.push_str("<h2>The final image next to each builder stage</h2>\n<p>What shipping that stage instead would weigh. The final stage is built on its own base, not shrunk from the builder, so it may be the larger one.</p>\n<table>\n<tr><th>builder stage</th><th class=\"n\">stage size</th><th class=\"n\">final image</th><th class=\"n\">the final image is</th></tr>\n");
    for row in &stages.before_after {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&row.stage),
            human_bytes(row.stage_bytes),
            human_bytes(row.final_bytes),
            crate::text::final_compared(row),
        );
    }
    out.push_str("</table>\n");
}

/// Text made safe for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(
            escape(r#"<b a="1">&'"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
        assert_ne!(colour(0), colour(1));
    }
}
