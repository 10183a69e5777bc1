//! "Did you mean …?" suggestions, with BuildKit's thresholds.

/// The option closest to `value` by edit distance (case-insensitive), if it is within two
/// edits, spelled in `value`'s case style. An exact match yields nothing: then the value was
/// not the problem.
pub fn closest(value: &str, options: &[String]) -> Option<String> {
    search(value, options, false)
}

/// Like [`closest`], but case-sensitive (BuildKit compares flag names that way).
pub fn closest_case_sensitive(value: &str, options: &[String]) -> Option<String> {
    search(value, options, true)
}

/// BuildKit's `suggest.Search`: the first option at the smallest distance below 3.
fn search(value: &str, options: &[String], case_sensitive: bool) -> Option<String> {
    let normalize = |s: &str| {
        if case_sensitive {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    let value_normalized = normalize(value);
    let mut best: Option<(&String, usize)> = None;
    for option in options {
        let option_normalized = normalize(option);
        if option_normalized == value_normalized {
            return None;
        }
        let distance = levenshtein(&value_normalized, &option_normalized);
        if distance < best.map_or(3, |(_, d)| d) {
            best = Some((option, distance));
        }
    }
    best.map(|(option, _)| {
        if case_sensitive {
            option.clone()
        } else {
            match_case(option, value)
        }
    })
}

fn match_case(option: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        option.to_lowercase()
    } else if original == original.to_uppercase() {
        option.to_uppercase()
    } else {
        option.to_owned()
    }
}

/// Edit distance between two strings, counted in characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_within_two_edits_in_the_callers_case() {
        let options: Vec<String> = ["FROM", "RUN", "COPY"].map(String::from).to_vec();
        assert_eq!(closest("FORM", &options).as_deref(), Some("FROM"));
        assert_eq!(closest("cpy", &options).as_deref(), Some("copy"));
        assert_eq!(closest("RUN", &options), None);
        assert_eq!(closest("WORKDIRS", &options), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
