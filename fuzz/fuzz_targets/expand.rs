//! Word expansion must never panic, whatever the word, options and variables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stagecraft_shell::{Env, Lexer};

fuzz_target!(|data: &[u8]| {
    let Some((&options, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let lexer = Lexer::new(if options & 1 == 0 { '\\' } else { '`' })
        .with_raw_quotes(options & 2 != 0)
        .with_raw_escapes(options & 4 != 0)
        .with_skip_unset_env(options & 8 != 0)
        .with_skip_process_quotes(options & 16 != 0);
    let env: Env = [("A", "value"), ("EMPTY", ""), ("SPACES", "a b  c"), ("PAT", "*.x")]
        .into_iter()
        .collect();
    let word = lexer.process_word(&text, &env);
    let words = lexer.process_words(&text, &env);
    let matches = lexer.process_word_with_matches(&text, &env);
    // The three entry points agree on whether the word is valid.
    assert_eq!(word.is_ok(), matches.is_ok());
    if let (Ok(word), Ok(matches)) = (&word, &matches) {
        assert_eq!(word, &matches.result);
    }
    let _ = words;
});
