//! Columns as Go's `text/tabwriter` aligns them (flags 0, space padding), which docker and
//! buildx print their tables with: every cell but a line's last is padded to its column's
//! widest cell plus `padding`, and at least `min_width`; a line's last cell is not aligned.

/// Aligns `rows` (cells of one line each) into lines, each ending in a newline.
pub fn align(rows: &[Vec<String>], min_width: usize, padding: usize) -> String {
    let columns = rows
        .iter()
        .map(|r| r.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let mut widths = vec![min_width; columns];
    for row in rows {
        for (column, cell) in row.iter().take(row.len().saturating_sub(1)).enumerate() {
            widths[column] = widths[column].max(cell.chars().count() + padding);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if column + 1 < row.len() {
                let width = cell.chars().count();
                out.extend(std::iter::repeat_n(
                    ' ',
                    widths[column].saturating_sub(width),
                ));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lines: &[&[&str]]) -> Vec<Vec<String>> {
        lines
            .iter()
            .map(|l| l.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    #[test]
    fn cells_are_padded_to_the_widest_and_the_last_is_not() {
        let table = align(
            &rows(&[
                &["TARGET", "DESCRIPTION"],
                &["build", ""],
                &["release (default)", "ships"],
            ]),
            0,
            1,
        );
        assert_eq!(
            table,
            "TARGET            DESCRIPTION\nbuild             \nrelease (default) ships\n"
        );
        // docker's tables: at least 10 wide, 3 apart.
        assert_eq!(
            align(&rows(&[&["ID", "SIZE"], &["abc", "1MB"]]), 10, 3),
            "ID        SIZE\nabc       1MB\n"
        );
        // Widths count characters, not bytes.
        assert_eq!(
            align(&rows(&[&["é", "x"], &["ab", "y"]]), 0, 1),
            "é  x\nab y\n"
        );
    }
}
