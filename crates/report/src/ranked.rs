//! Keeping the N heaviest of a stream of items without holding the whole stream.

use std::cmp::Reverse;

/// The `limit` items with the largest weight seen so far. Ties are broken by the items' own
/// order, so the result does not depend on the order items arrive in.
#[derive(Debug)]
pub(crate) struct Ranked<T> {
    items: Vec<(Reverse<u64>, T)>,
    limit: usize,
    seen: u64,
}

impl<T: Ord> Ranked<T> {
    /// Keeps the `limit` heaviest items.
    pub(crate) fn new(limit: usize) -> Ranked<T> {
        Ranked {
            items: Vec::new(),
            limit,
            seen: 0,
        }
    }

    /// Offers an item.
    pub(crate) fn push(&mut self, weight: u64, item: T) {
        self.seen += 1;
        if self.limit == 0 {
            return;
        }
        self.items.push((Reverse(weight), item));
        // Trimming only once the buffer is well over the limit keeps the sorting cost per push small
        // while memory stays bounded by a few times the limit.
        if self.items.len() >= self.limit.saturating_mul(2).max(1024) {
            self.trim();
        }
    }

    /// How many items were offered in all.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept items, heaviest first.
    pub(crate) fn into_vec(mut self) -> Vec<T> {
        self.trim();
        self.items.into_iter().map(|(_, item)| item).collect()
    }

    fn trim(&mut self) {
        self.items.sort_unstable();
        self.items.truncate(self.limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_heaviest_whatever_the_order() {
        let mut ranked = Ranked::new(3);
        for i in 0..5000u64 {
            // A scrambled order: multiplication by an odd number permutes 0..8192.
            let w = (i * 4099) % 8192;
            ranked.push(w, w.to_string());
        }
        assert_eq!(ranked.seen(), 5000);
        let top = ranked.into_vec();
        let expected: Vec<u64> = {
            let mut all: Vec<u64> = (0..5000u64).map(|i| (i * 4099) % 8192).collect();
            all.sort_unstable_by(|a, b| b.cmp(a));
            all.truncate(3);
            all
        };
        assert_eq!(top, expected.iter().map(u64::to_string).collect::<Vec<_>>());

        let mut ties = Ranked::new(2);
        for name in ["c", "a", "b"] {
            ties.push(7, name);
        }
        assert_eq!(ties.into_vec(), ["a", "b"]);
        let mut none = Ranked::new(0);
        none.push(1, "x");
        assert_eq!((none.seen(), none.into_vec()), (1, Vec::<&str>::new()));
    }
}
