//! BuildKit's own parser test data (`../shared/conformance/buildkit-parser`): every positive
//! case must dump exactly as BuildKit's `Node.Dump()`, every negative case must fail, and the
//! line-info case must report BuildKit's instruction lines.

use std::path::{Path, PathBuf};

fn conformance_dir() -> PathBuf {
    let shared = std::env::var_os("STAGECRAFT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("conformance/buildkit-parser");
    assert!(
        dir.is_dir(),
        "BuildKit conformance data not found at {}; set STAGECRAFT_SHARED_DIR",
        dir.display()
    );
    dir
}

/// The case folders under `dir` that hold every file in `files`.
fn case_dirs(dir: &Path, files: &[&str]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| files.iter().all(|f| p.join(f).is_file()))
        .collect();
    dirs.sort();
    dirs
}

fn parse_file(
    path: &Path,
) -> Result<stagecraft_dockerfile::Dockerfile, stagecraft_dockerfile::ParseError> {
    let bytes = std::fs::read(path).unwrap();
    stagecraft_dockerfile::parse_bytes(&path.display().to_string(), &bytes)
}

#[test]
fn positive_cases_dump_like_buildkit() {
    let dirs = case_dirs(&conformance_dir(), &["Dockerfile", "result"]);
    assert!(
        dirs.len() >= 30,
        "expected BuildKit's ~33 cases, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let expected = std::fs::read_to_string(dir.join("result")).unwrap();
        match parse_file(&dir.join("Dockerfile")) {
            Ok(file) if file.dump() == expected => {}
            Ok(file) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{}",
                dir.display(),
                file.dump()
            )),
            Err(error) => failures.push(format!("{}: {}", dir.display(), error.render())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn negative_cases_are_errors() {
    let dirs = case_dirs(&conformance_dir().join("_negative"), &["Dockerfile"]);
    assert_eq!(dirs.len(), 4);
    for dir in dirs {
        let result = parse_file(&dir.join("Dockerfile"));
        assert!(
            result.is_err(),
            "{} parsed but BuildKit rejects it",
            dir.display()
        );
    }
}

#[test]
fn line_info_matches_buildkit() {
    let file = parse_file(&conformance_dir().join("_line-info/Dockerfile")).unwrap();
    let lines: Vec<(usize, usize)> = file
        .instructions
        .iter()
        .map(|i| (i.start_line, i.end_line))
        .collect();
    // The expectations BuildKit's TestLineInformation asserts for this file.
    assert_eq!(lines, [(5, 5), (11, 12), (17, 31)]);
}
