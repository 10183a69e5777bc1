//! Character classes with the exact meaning Go's `unicode` package gives them,
//! because BuildKit uses those to decide where a variable name ends.

use crate::unicode_tables::{DECIMAL_DIGIT, LETTER_OR_DIGIT};

/// Go's `unicode.IsDigit`: general category `Nd`, not just ASCII digits.
pub(crate) fn is_decimal_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_ranges(c, DECIMAL_DIGIT)
}

/// Go's `unicode.IsLetter(c) || unicode.IsDigit(c)`.
///
/// Rust's `char::is_alphanumeric` is close but not equal: it also accepts
/// letter numbers, other numbers and combining marks, which BuildKit treats as
/// the end of a name.
pub(crate) fn is_letter_or_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    in_ranges(c, LETTER_OR_DIGIT)
}

fn in_ranges(c: char, table: &[(u32, u32)]) -> bool {
    let c = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii() {
        assert!(is_letter_or_digit('a') && is_letter_or_digit('Z') && is_letter_or_digit('7'));
        assert!(!is_letter_or_digit('_') && !is_letter_or_digit('-') && !is_letter_or_digit(' '));
        assert!(is_decimal_digit('0') && is_decimal_digit('9') && !is_decimal_digit('a'));
    }

    #[test]
    fn non_ascii_follows_general_category() {
        // Letters (Lo, Ll) and decimal digits (Nd) belong to names.
        for c in ['한', 'é', 'ß', 'Ω', '٣', '७'] {
            assert!(is_letter_or_digit(c), "{c:?}");
        }
        assert!(is_decimal_digit('٣') && is_decimal_digit('७'));
        // Other numbers (No), letter numbers (Nl), marks (Mn/Mc) and spaces do not,
        // even though Rust's is_alphanumeric accepts some of them.
        for c in ['²', '½', 'Ⅻ', '\u{0301}', '\u{093F}', '\u{00A0}'] {
            assert!(!is_letter_or_digit(c), "{c:?}");
        }
        assert!(!is_decimal_digit('²') && !is_decimal_digit('Ⅻ'));
        // First and last entries of the tables are reachable by the search.
        assert!(is_letter_or_digit('\u{323AF}') && !is_letter_or_digit('\u{10FFFF}'));
    }
}
