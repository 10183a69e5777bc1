//! A squarified treemap (Bruls, Huizing, van Wijk, 2000) of a file tree: directories nest,
//! every file is a rectangle whose area is proportional to its size.

use std::collections::BTreeMap;

use crate::FinalFile;

/// An axis-aligned rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    fn area(self) -> f64 {
        self.w * self.h
    }
}

/// What a treemap cell stands for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// A directory: a frame around its children, with its name in a header strip.
    Directory { path: String, size: u64 },
    /// A file, coloured by the layer it comes from.
    File {
        path: String,
        size: u64,
        layer: usize,
    },
}

/// A laid-out cell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Placed {
    pub rect: Rect,
    pub cell: Cell,
}

/// Height of a directory's name strip, when it has room for one.
const HEADER: f64 = 13.0;
/// Cells smaller than this (in square units) are not drawn: their area stays part of the
/// parent's frame, so the page stays light for images with many thousands of files.
const MIN_AREA: f64 = 4.0;
/// Inner margin of a directory frame.
const PAD: f64 = 1.0;

#[derive(Default)]
struct Dir {
    size: u64,
    dirs: BTreeMap<String, Dir>,
    files: Vec<(String, u64, usize)>,
}

enum Child<'a> {
    Dir(&'a str, &'a Dir),
    File(&'a str, u64, usize),
}

impl Child<'_> {
    fn size(&self) -> u64 {
        match self {
            Child::Dir(_, dir) => dir.size,
            Child::File(_, size, _) => *size,
        }
    }
}

/// Lays out `files` in `bounds`, parents before children (so drawing in order nests them).
/// Empty files take no area and are left out.
pub(crate) fn layout(files: &[FinalFile], bounds: Rect) -> Vec<Placed> {
    let mut root = Dir::default();
    for file in files.iter().filter(|f| f.size > 0) {
        let mut dir = &mut root;
        dir.size += file.size;
        let mut parts: Vec<&str> = file.path.split('/').filter(|p| !p.is_empty()).collect();
        let Some(name) = parts.pop() else { continue };
        for part in parts {
            dir = dir.dirs.entry(part.to_owned()).or_default();
            dir.size += file.size;
        }
        dir.files.push((name.to_owned(), file.size, file.layer));
    }
    let mut out = Vec::new();
    place_children(&root, "", bounds, &mut out);
    out
}

fn place_children(dir: &Dir, path: &str, bounds: Rect, out: &mut Vec<Placed>) {
    let mut children: Vec<Child> = dir
        .dirs
        .iter()
        .map(|(name, sub)| Child::Dir(name, sub))
        .chain(
            dir.files
                .iter()
                .map(|(name, size, layer)| Child::File(name, *size, *layer)),
        )
        .collect();
    // Squarify wants decreasing sizes; a stable sort keeps equal sizes in a fixed order.
    children.sort_by_key(|child| std::cmp::Reverse(child.size()));
    let weights: Vec<f64> = children.iter().map(|c| c.size() as f64).collect();
    for (child, rect) in children.iter().zip(squarify(&weights, bounds)) {
        if rect.area() < MIN_AREA {
            continue;
        }
        match child {
            Child::File(name, size, layer) => out.push(Placed {
                rect,
                cell: Cell::File {
                    path: format!("{path}/{name}"),
                    size: *size,
                    layer: *layer,
                },
            }),
            Child::Dir(name, sub) => {
                let sub_path = format!("{path}/{name}");
                out.push(Placed {
                    rect,
                    cell: Cell::Directory {
                        path: sub_path.clone(),
                        size: sub.size,
                    },
                });
                let header = if rect.h > 3.0 * HEADER && rect.w > 40.0 {
                    HEADER
                } else {
                    0.0
                };
                let inner = Rect {
                    x: rect.x + PAD,
                    y: rect.y + PAD + header,
                    w: (rect.w - 2.0 * PAD).max(0.0),
                    h: (rect.h - 2.0 * PAD - header).max(0.0),
                };
                place_children(sub, &sub_path, inner, out);
            }
        }
    }
}

/// Splits `bounds` into one rectangle per weight (weights sorted decreasing, non-negative),
/// areas proportional to the weights, rows chosen to keep aspect ratios near 1.
pub(crate) fn squarify(weights: &[f64], bounds: Rect) -> Vec<Rect> {
    let total: f64 = weights.iter().sum();
    let empty = Rect {
        x: bounds.x,
        y: bounds.y,
        w: 0.0,
        h: 0.0,
    };
    if total <= 0.0 || bounds.area() <= 0.0 {
        return vec![empty; weights.len()];
    }
    let scale = bounds.area() / total;
    let areas: Vec<f64> = weights.iter().map(|w| w * scale).collect();
    let mut out = Vec::with_capacity(areas.len());
    let mut free = bounds;
    let mut start = 0;
    while start < areas.len() {
        let side = free.w.min(free.h);
        let mut end = start + 1;
        while end < areas.len()
            && worst(&areas[start..=end], side) <= worst(&areas[start..end], side)
        {
            end += 1;
        }
        let row = &areas[start..end];
        let row_area: f64 = row.iter().sum();
        if row_area <= 0.0 || side <= 0.0 {
            // Only zero weights (or no room) left: they get empty rectangles.
            out.extend(std::iter::repeat_n(empty, areas.len() - start));
            break;
        }
        // The row runs along the shorter side of the free space; its thickness is fixed by
        // its area.
        let thickness = row_area / side;
        let mut offset = 0.0;
        for area in row {
            let length = area / thickness;
            out.push(if free.w >= free.h {
                Rect {
                    x: free.x,
                    y: free.y + offset,
                    w: thickness,
                    h: length,
                }
            } else {
                Rect {
                    x: free.x + offset,
                    y: free.y,
                    w: length,
                    h: thickness,
                }
            });
            offset += length;
        }
        if free.w >= free.h {
            free.x += thickness;
            free.w = (free.w - thickness).max(0.0);
        } else {
            free.y += thickness;
            free.h = (free.h - thickness).max(0.0);
        }
        start = end;
    }
    out
}

/// The worst aspect ratio in a row of `areas` laid along a side of length `side`.
fn worst(areas: &[f64], side: f64) -> f64 {
    let sum: f64 = areas.iter().sum();
    let (min, max) = areas.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &a| {
        (lo.min(a), hi.max(a))
    });
    if sum <= 0.0 || min <= 0.0 {
        return f64::INFINITY;
    }
    let side2 = side * side;
    let sum2 = sum * sum;
    (side2 * max / sum2).max(sum2 / (side2 * min))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Rect = Rect {
        x: 0.0,
        y: 0.0,
        w: 600.0,
        h: 400.0,
    };

    #[test]
    fn squarify_tiles_the_area_proportionally() {
        // The paper's example: 6, 6, 4, 3, 2, 2, 1 in a 6 × 4 rectangle.
        let weights = [6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0];
        let rects = squarify(&weights, BOUNDS);
        assert_eq!(rects.len(), weights.len());
        let total: f64 = weights.iter().sum();
        for (rect, weight) in rects.iter().zip(weights) {
            let expected = weight / total * BOUNDS.area();
            assert!((rect.area() - expected).abs() < 1e-6, "{rect:?}");
            assert!(rect.x >= -1e-9 && rect.y >= -1e-9);
            assert!(rect.x + rect.w <= BOUNDS.w + 1e-6 && rect.y + rect.h <= BOUNDS.h + 1e-6);
        }
        // No two rectangles overlap.
        for (i, a) in rects.iter().enumerate() {
            for b in &rects[i + 1..] {
                let overlap_w = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
                let overlap_h = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
                assert!(
                    overlap_w <= 1e-6 || overlap_h <= 1e-6,
                    "{a:?} overlaps {b:?}"
                );
            }
        }
        // The first row of the paper's layout: the two 6s side by side in the left column.
        assert!((rects[0].w - 300.0).abs() < 1e-6 && (rects[1].x - 0.0).abs() < 1e-6);
        assert!(
            squarify(&[0.0, 0.0], BOUNDS)
                .iter()
                .all(|r| r.area() == 0.0)
        );
        assert!(squarify(&[], BOUNDS).is_empty());
    }

    #[test]
    fn directories_frame_their_files() {
        let file = |path: &str, size, layer| FinalFile {
            path: path.to_owned(),
            size,
            layer,
        };
        let files = [
            file("/bin/busybox", 1_000_000, 0),
            file("/app/big", 500_000, 2),
            file("/app/small", 100_000, 1),
            file("/empty", 0, 1),
        ];
        let placed = layout(&files, BOUNDS);
        let find = |wanted: &str| {
            placed
                .iter()
                .find(|p| match &p.cell {
                    Cell::Directory { path, .. } | Cell::File { path, .. } => path == wanted,
                })
                .map(|p| p.rect)
        };
        let app = find("/app").expect("the /app frame");
        let big = find("/app/big").expect("/app/big");
        assert!(big.x >= app.x && big.x + big.w <= app.x + app.w + 1e-6);
        assert!(big.y >= app.y && big.y + big.h <= app.y + app.h + 1e-6);
        assert!(find("/empty").is_none(), "empty files take no area");
        let bin = find("/bin").expect("the /bin frame");
        assert!((bin.area() / BOUNDS.area() - 1.0 / 1.6).abs() < 1e-6);
        assert!(placed.iter().any(|p| matches!(
            p.cell,
            Cell::File {
                layer: 2,
                size: 500_000,
                ..
            }
        )));
    }
}
