//! The catalog as a text table, one package a line.

use crate::package::Catalog;
use std::fmt::Write;

/// `NAME VERSION TYPE LAYER LOCATION` columns, aligned, then the notes.
pub fn table(catalog: &Catalog) -> String {
    let header = ["NAME", "VERSION", "TYPE", "LAYER", "LOCATION"].map(str::to_owned);
    let rows: Vec<[String; 5]> = std::iter::once(header)
        .chain(catalog.packages.iter().map(|package| {
            [
                package.name.clone(),
                package.version.clone(),
                package.ecosystem.to_string(),
                package
                    .layer
                    .map_or_else(|| "-".to_owned(), |layer| layer.to_string()),
                package.location.display().to_string(),
            ]
        }))
        .collect();
    let mut widths = [0usize; 5];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:width$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for note in &catalog.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::table;
    use crate::package::{Catalog, Ecosystem, Package};
    use std::path::PathBuf;

    #[test]
    fn aligned_columns_and_notes() {
        let catalog = Catalog {
            packages: vec![Package {
                ecosystem: Ecosystem::Deb,
                name: "libc6".to_owned(),
                version: "2.36-9".to_owned(),
                purl: "pkg:deb/debian/libc6@2.36-9".to_owned(),
                licenses: Vec::new(),
                location: PathBuf::from("/var/lib/dpkg/status"),
                layer: Some(0),
            }],
            notes: vec!["something was skipped".to_owned()],
        };
        assert_eq!(
            table(&catalog),
            "NAME   VERSION  TYPE  LAYER  LOCATION\n\
             libc6  2.36-9   deb   0      /var/lib/dpkg/status\n\
             note: something was skipped\n"
        );
    }
}
