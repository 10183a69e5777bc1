//! Finding heredoc markers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) the way BuildKit does: split the
//! line into shell words, then read each word that looks like a marker.

use stagecraft_shell::{Env, Lexer};

/// A heredoc marker found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The terminator, quotes removed.
    pub name: String,
    /// False when any part of the marker word was quoted.
    pub expand: bool,
    /// `<<-`: strip leading tabs.
    pub chomp: bool,
    /// Digits before `<<`, 0 when absent.
    pub file_descriptor: u32,
}

/// The markers of every heredoc word in `line`, in order. Errors are lexing errors in a
/// marker word.
pub(crate) fn markers_in_line(line: &str) -> Result<Vec<Marker>, String> {
    let lexer = Lexer::new('\\')
        .with_raw_quotes(true)
        .with_raw_escapes(true)
        .with_skip_unset_env(true);
    // BuildKit ignores lexing errors of the whole line here: no words, no heredocs.
    let words = lexer.process_words(line, &Env::new()).unwrap_or_default();
    let mut markers = Vec::new();
    for word in words {
        if let Some(marker) = parse_marker(&word)? {
            markers.push(marker);
        }
    }
    Ok(markers)
}

/// Reads one word as a heredoc marker (BuildKit's `ParseHeredoc`): `None` when the word is not
/// one, an error when its quoting cannot be lexed.
pub fn parse_marker(word: &str) -> Result<Option<Marker>, String> {
    let Some((digits, chomp, rest)) = split_marker(word) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let lexer = Lexer::new('\\').with_skip_unset_env(true);
    let words = lexer
        .process_words(rest, &Env::new())
        .map_err(|e| e.to_string())?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw_words = lexer
        .with_raw_quotes(true)
        .process_words(rest, &Env::new())
        .map_err(|e| e.to_string())?;
    let [raw_name] = raw_words.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    // Quotes that the lexer removed mean part of the word was quoted: no expansion.
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Marker {
        name: name.clone(),
        expand: quotes(name) == quotes(raw_name),
        chomp,
        file_descriptor: digits.parse().unwrap_or(0),
    }))
}

/// Matches `^(\d*)<<(-?)\s*([^<]*)$`.
fn split_marker(word: &str) -> Option<(&str, bool, &str)> {
    let digits_len = word.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, after) = word.split_at(digits_len);
    let after = after.strip_prefix("<<")?;
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
    if rest.contains('<') {
        return None;
    }
    Some((digits, chomp, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(word: &str) -> Option<(String, bool, bool, u32)> {
        parse_marker(word)
            .unwrap()
            .map(|m| (m.name, m.expand, m.chomp, m.file_descriptor))
    }

    #[test]
    fn markers_follow_buildkit_quoting_rules() {
        assert_eq!(marker("<<EOF"), Some(("EOF".into(), true, false, 0)));
        assert_eq!(marker("<<-EOF"), Some(("EOF".into(), true, true, 0)));
        assert_eq!(marker("3<<EOF"), Some(("EOF".into(), true, false, 3)));
        assert_eq!(marker("<<'EOF'"), Some(("EOF".into(), false, false, 0)));
        assert_eq!(marker("<<\"EOF\""), Some(("EOF".into(), false, false, 0)));
        assert_eq!(marker("<<eo'f'"), Some(("eof".into(), false, false, 0)));
        assert_eq!(marker(r"<<eo\'f"), Some(("eo'f".into(), true, false, 0)));
        assert_eq!(marker(r"<<'e'o\'f"), Some(("eo'f".into(), false, false, 0)));
        assert_eq!(
            marker("<<'one two'"),
            Some(("one two".into(), false, false, 0))
        );
        assert_eq!(marker("<<$EOF"), Some(("$EOF".into(), true, false, 0)));
        assert_eq!(marker("<<"), None);
        assert_eq!(marker("<<<EOF"), None);
        assert_eq!(marker("x<<EOF"), None);
    }

    #[test]
    fn markers_in_line_skips_quoted_markers() {
        let names = |line: &str| -> Vec<String> {
            markers_in_line(line)
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(names("COPY <<FILE1 <<FILE2 /dest"), ["FILE1", "FILE2"]);
        assert_eq!(names("RUN \"<<NOHEREDOC\""), Vec::<String>::new());
        // The lexer keeps `<<` and the blanks after it with the word that follows.
        assert_eq!(names("RUN <<  EOF"), ["EOF"]);
        assert_eq!(names("RUN <<  EOF  /foo"), ["EOF"]);
        assert_eq!(names("RUN <<COMPLEX python3"), ["COMPLEX"]);
    }
}
