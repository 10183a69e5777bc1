//! Runs BuildKit's own test data for its shell lexer, read at run time from
//! the shared folder (`$STAGECRAFT_SHARED_DIR`, or `shared/` beside the
//! workspace), the way BuildKit's `lex_test.go` runs it.

use std::fmt::Write as _;
use std::path::PathBuf;

use stagecraft_shell::{Env, Lexer};

fn read_data(name: &str) -> String {
    let shared = std::env::var_os("STAGECRAFT_SHARED_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
        PathBuf::from,
    );
    let path = shared.join("conformance/buildkit-shell").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read BuildKit conformance data {}: {err}\n\
             (set STAGECRAFT_SHARED_DIR to the folder that holds conformance/)",
            path.display()
        )
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Platform {
    Unix,
    Windows,
}

/// `envVarTest`: `PLATFORM|input|expected` lines, where the platform is `A`
/// (all), `U` (Unix) or `W` (Windows) and `error` means expansion must fail.
/// BuildKit runs the `A` and `U` lines on Unix and the `A` and `W` lines on
/// Windows, whose variable names are case-insensitive.
fn run_env_var_test(platform: Platform) {
    let data = read_data("envVarTest");
    let vars = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ];
    let mut env = match platform {
        Platform::Unix => Env::new(),
        Platform::Windows => Env::new_case_insensitive(),
    };
    env.extend(vars);
    let lexer = Lexer::new('\\');

    let mut ran = 0;
    let mut failures = String::new();
    for (index, line) in data.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        let [tag, input, expected] = fields[..] else {
            panic!("envVarTest:{line_no}: expected 3 fields in {line:?}");
        };
        let runs_here = match tag {
            "A" => true,
            "U" => platform == Platform::Unix,
            "W" => platform == Platform::Windows,
            _ => panic!("envVarTest:{line_no}: invalid platform tag {tag:?}"),
        };
        if !runs_here {
            continue;
        }
        ran += 1;
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), expected) => word == expected && expected != "error",
            (Err(_), _) => false,
        };
        if !ok {
            let _ = writeln!(
                failures,
                "envVarTest:{line_no}: {input:?} expected {expected:?}, got {got:?}"
            );
        }
    }
    assert!(ran > 100, "only {ran} envVarTest cases ran");
    assert!(failures.is_empty(), "envVarTest failures:\n{failures}");
}

#[test]
fn env_var_test_unix() {
    run_env_var_test(Platform::Unix);
}

#[test]
fn env_var_test_windows() {
    run_env_var_test(Platform::Windows);
}

/// `wordsTest`: `ENV name=value` lines add a variable for the lines after
/// them; other lines are `input | word,word,...` as split by
/// `process_words`, or `error`.
///
/// BuildKit's test loops over a second lexer mode (raw quotes and skipping
/// unset variables), but it reuses the already exhausted file reader, so
/// only the default mode ever checks this data; its expectations only hold
/// for that mode.
#[test]
fn words_test() {
    let data = read_data("wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();

    let mut ran = 0;
    let mut failures = String::new();
    for (index, line) in data.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let assignment = assignment.trim_start_matches(' ');
            let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
            env.push((name.to_owned(), value.to_owned()));
            continue;
        }
        let [input, expected] = line.split('|').collect::<Vec<_>>()[..] else {
            panic!("wordsTest:{line_no}: expected exactly one '|' in {line:?}");
        };
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        ran += 1;
        let got = lexer
            .process_words(input, &env)
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        if got != expected {
            let _ = writeln!(
                failures,
                "wordsTest:{line_no}: {input:?} expected {expected:?}, got {got:?}"
            );
        }
    }
    assert!(ran > 20, "only {ran} wordsTest cases ran");
    assert!(failures.is_empty(), "wordsTest failures:\n{failures}");
}
