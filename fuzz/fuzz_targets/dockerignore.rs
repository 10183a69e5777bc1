//! The .dockerignore reader and matcher must never panic: the first line of the input is
//! matched as a path against the rest read as an ignore file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stagecraft_dockerignore::PatternMatcher;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, patterns) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(matcher) = PatternMatcher::from_ignore_file(patterns) {
        let excluded = matcher.matches(path);
        // A path that matches is excluded together with everything below it, unless an
        // exclusion pattern exists that could re-include children.
        let clean = !path.is_empty()
            && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if excluded && clean && !matcher.exclusions() {
            assert!(matcher.matches(&format!("{path}/child")));
        }
    }
});
