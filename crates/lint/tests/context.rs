//! Rules that look at the build context directory: `.dockerignore` against what the
//! Dockerfile copies.

mod common;

use common::{lint_in, lint_text, of};
use std::fs;
use std::path::Path;
use tempfile::TempDir;

/// A context directory holding `files` (`path`, content); a path ending in `/` is a directory.
fn context(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (path, content) in files {
        let full = dir.path().join(path);
        if path.ends_with('/') {
            fs::create_dir_all(&full).unwrap();
        } else {
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(&full, content).unwrap();
        }
    }
    dir
}

fn count(rule: &str, text: &str, dir: &Path) -> usize {
    of(&lint_in(text, dir), rule).len()
}

const COPY_ALL: &str = "FROM node:20-slim\nWORKDIR /app\nCOPY package*.json ./\nRUN npm ci --omit=dev\nCOPY . .\nCMD [\"node\", \"server.js\"]\n";

#[test]
fn copy_ignored_file_fires_on_excluded_sources() {
    let dir = context(&[
        (".dockerignore", "*.md\nsecrets/\n"),
        ("README.md", "x"),
        ("src/", ""),
    ]);
    let findings = lint_in("FROM alpine:3.20\nCOPY README.md /docs/\n", dir.path());
    let hits = of(&findings, "CopyIgnoredFile");
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].message,
        "Attempting to Copy file \"README.md\" that is excluded by .dockerignore"
    );
    assert_eq!(
        count(
            "CopyIgnoredFile",
            "FROM alpine:3.20\nADD ./secrets/token /t\n",
            dir.path()
        ),
        1
    );
}

#[test]
fn copy_ignored_file_quiet_when_sources_are_in_the_context() {
    let dir = context(&[
        (".dockerignore", ".git\nnode_modules\n*.md\n"),
        ("src/", ""),
    ]);
    let text = "FROM alpine:3.20\nCOPY src/ /app/src/\nCOPY . /app\nCOPY --from=nginx:1.27 /README.md /x\n";
    assert_eq!(count("CopyIgnoredFile", text, dir.path()), 0);
    // With `!` exceptions BuildKit does not judge statically, and neither do we.
    let dir = context(&[(".dockerignore", "*.md\n!README.md\n")]);
    assert_eq!(
        count(
            "CopyIgnoredFile",
            "FROM alpine:3.20\nCOPY CHANGES.md /\n",
            dir.path()
        ),
        0
    );
    // Without a context directory there is nothing to check against.
    assert!(
        of(
            &lint_text("FROM alpine:3.20\nCOPY README.md /\n"),
            "CopyIgnoredFile"
        )
        .is_empty()
    );
}

#[test]
fn missing_dockerignore_fires_on_bulky_directories() {
    let dir = context(&[
        ("package.json", "{}"),
        ("node_modules/left-pad/index.js", ""),
        (".git/HEAD", "ref: refs/heads/main"),
    ]);
    let findings = lint_in(COPY_ALL, dir.path());
    let hits = of(&findings, "MissingDockerignore");
    assert_eq!(hits.len(), 1, "{findings:#?}");
    assert_eq!(hits[0].line, 5);
    assert_eq!(
        hits[0].message,
        "`COPY . .` sends .git/, node_modules/ into the image: there is no .dockerignore"
    );
    // An ignore file that forgets some of them.
    let dir = context(&[(".dockerignore", ".git\n"), ("node_modules/x/index.js", "")]);
    let hits = lint_in(COPY_ALL, dir.path());
    assert!(
        of(&hits, "MissingDockerignore")[0]
            .message
            .contains("node_modules/")
    );
    let dir = context(&[
        ("Cargo.toml", ""),
        ("target/debug/app", ""),
        ("src/main.rs", ""),
    ]);
    assert_eq!(
        count(
            "MissingDockerignore",
            "FROM rust:1.79\nCOPY . .\n",
            dir.path()
        ),
        1
    );
}

#[test]
fn missing_dockerignore_quiet_when_excluded_or_not_copied() {
    let dir = context(&[
        (".dockerignore", ".git\nnode_modules\n**/__pycache__\n"),
        ("node_modules/x/index.js", ""),
        (".git/HEAD", ""),
        ("app/__pycache__/m.pyc", ""),
    ]);
    assert_eq!(count("MissingDockerignore", COPY_ALL, dir.path()), 0);
    let dir = context(&[("node_modules/x/index.js", ""), ("package.json", "{}")]);
    let only_manifest = "FROM node:20-slim\nCOPY package.json ./\nRUN npm install --omit=dev\n";
    assert_eq!(count("MissingDockerignore", only_manifest, dir.path()), 0);
}

#[test]
fn secret_file_in_context_fires_on_copied_secrets() {
    let dir = context(&[
        (".env", "API_TOKEN=x"),
        ("deploy/id_ed25519", "key"),
        (
            "tls/server.pem",
            "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
        ),
    ]);
    let findings = lint_in(COPY_ALL, dir.path());
    let hits = of(&findings, "SecretFileInContext");
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].message,
        "`COPY . .` copies .env, deploy/id_ed25519, tls/server.pem (secrets in the build context) into the image: there is no .dockerignore"
    );
    assert_eq!(
        count(
            "SecretFileInContext",
            "FROM nginx:1.27\nCOPY tls /etc/nginx/tls\n",
            dir.path()
        ),
        1
    );
}

#[test]
fn secret_file_in_context_quiet_when_ignored_or_harmless() {
    let dir = context(&[
        (".dockerignore", ".env\n"),
        (".env", "API_TOKEN=x"),
        (".env.example", "API_TOKEN="),
        (
            "certs/ca.pem",
            "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n",
        ),
    ]);
    assert_eq!(count("SecretFileInContext", COPY_ALL, dir.path()), 0);
    // A secret the Dockerfile never copies stays on the build machine.
    let dir = context(&[(".env", "x"), ("src/app.js", "")]);
    let text = "FROM node:20-slim\nCOPY src/ /app/src/\n";
    assert_eq!(count("SecretFileInContext", text, dir.path()), 0);
}

#[test]
fn secret_file_in_context_leaves_test_fixtures_and_build_stages_alone() {
    let key = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
    // Keys made for tests.
    let dir = context(&[
        ("internal/tls/testdata/server.key", key),
        ("tests/fixtures/client.pem", key),
        ("main.go", ""),
    ]);
    assert_eq!(count("SecretFileInContext", COPY_ALL, dir.path()), 0);
    // A real key, copied only into a build stage whose output is a binary.
    let dir = context(&[("deploy/server.key", key), ("main.go", "")]);
    let builder = "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /app .\n\
                   FROM gcr.io/distroless/static-debian12\nCOPY --from=build /app /app\nENTRYPOINT [\"/app\"]\n";
    assert_eq!(count("SecretFileInContext", builder, dir.path()), 0);
    // The same key copied into the final stage ships.
    assert_eq!(count("SecretFileInContext", COPY_ALL, dir.path()), 1);
}

#[test]
fn lockfile_in_context_counts_as_copied() {
    let dir = context(&[
        (".dockerignore", "node_modules\n"),
        ("package.json", "{}"),
        ("package-lock.json", "{}"),
    ]);
    let text = "FROM node:20-slim\nWORKDIR /app\nCOPY . .\nRUN npm install --omit=dev\n";
    assert_eq!(count("NpmInstallInsteadOfCi", text, dir.path()), 1);
    assert_eq!(of(&lint_text(text), "NpmInstallInsteadOfCi").len(), 0);
}

#[test]
fn unreadable_ignore_file_is_a_build_error() {
    let dir = context(&[(".dockerignore", "!\n")]);
    let findings = lint_in("FROM alpine:3.20\n", dir.path());
    assert_eq!(of(&findings, "BuildError").len(), 1);
}

#[test]
fn base_images_the_project_builds_need_no_tag() {
    let dir = context(&[
        (
            "Makefile",
            "base:\n\tdocker build -t acme-base -f base.Dockerfile .\ntools:\n\tdocker build --tag=$(REGISTRY)/acme-tools:latest tools\n",
        ),
        (
            "compose.yaml",
            "services:\n  db:\n    image: postgres\n  worker:\n    build: ./worker\n    image: acme-worker\n",
        ),
    ]);
    let local = "FROM acme-base\nFROM acme-tools:latest\nFROM acme-worker\nCOPY x /x\n";
    assert_eq!(count("UntaggedBaseImage", local, dir.path()), 0);
    assert_eq!(count("LatestTag", local, dir.path()), 0);
    // Pulled images stay under the rules, even when a compose file runs them.
    assert_eq!(count("UntaggedBaseImage", "FROM postgres\n", dir.path()), 1);
    assert_eq!(
        count("LatestTag", "FROM acme-base-extra:latest\n", dir.path()),
        1
    );
    // Without the context, nothing says the image is local.
    assert_eq!(
        of(&lint_text("FROM acme-base\n"), "UntaggedBaseImage").len(),
        1
    );
}

const NPM_CI: &str = "FROM node:20-alpine\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\nCOPY server.js .\nCMD [\"node\", \"server.js\"]\n";

#[test]
fn npm_dev_dependencies_read_from_the_package_json_in_the_context() {
    let without = context(&[
        (
            "package.json",
            r#"{"name":"svc","dependencies":{"express":"^4"}}"#,
        ),
        ("package-lock.json", "{}"),
    ]);
    assert_eq!(
        count("NpmDevDependenciesInRuntime", NPM_CI, without.path()),
        0
    );
    let empty = context(&[("package.json", r#"{"name":"svc","devDependencies":{}}"#)]);
    assert_eq!(
        count("NpmDevDependenciesInRuntime", NPM_CI, empty.path()),
        0
    );
    let whole =
        "FROM node:20-alpine\nWORKDIR /app\nCOPY . .\nRUN npm ci\nCMD [\"node\", \"server.js\"]\n";
    assert_eq!(
        count("NpmDevDependenciesInRuntime", whole, without.path()),
        0
    );

    let with = context(&[(
        "package.json",
        r#"{"name":"svc","devDependencies":{"typescript":"^5"}}"#,
    )]);
    assert_eq!(count("NpmDevDependenciesInRuntime", NPM_CI, with.path()), 1);
    assert_eq!(count("NpmDevDependenciesInRuntime", whole, with.path()), 1);
    // A manifest the context does not have: the rule keeps its guess.
    let elsewhere = context(&[("web/package.json", r#"{"name":"svc"}"#)]);
    assert_eq!(
        count("NpmDevDependenciesInRuntime", NPM_CI, elsewhere.path()),
        1
    );
}

#[test]
fn a_makefile_at_the_repository_root_counts_for_a_dockerfile_below_it() {
    let repo = context(&[
        (".git/", ""),
        (
            "Makefile",
            "images:\n\tdocker build -t acme-runtime docker/runtime\n",
        ),
        (
            "docker/app/Dockerfile",
            "FROM acme-runtime\nCOPY app /app\n",
        ),
        ("docker/app/app", "x"),
    ]);
    let path = repo.path().join("docker/app/Dockerfile");
    let file = stagecraft_dockerfile::parse_str(
        path.to_str().unwrap(),
        &fs::read_to_string(&path).unwrap(),
    )
    .unwrap();
    let options = stagecraft_lint::LintOptions {
        context_dir: Some(repo.path().join("docker/app")),
        ..stagecraft_lint::LintOptions::default()
    };
    let findings = stagecraft_lint::lint(&file, &options);
    assert!(
        of(&findings, "UntaggedBaseImage").is_empty(),
        "{findings:#?}"
    );
    // Outside a repository, directories above the Dockerfile's are not the project's.
    fs::remove_dir(repo.path().join(".git")).unwrap();
    let findings = stagecraft_lint::lint(&file, &options);
    assert_eq!(of(&findings, "UntaggedBaseImage").len(), 1, "{findings:#?}");
}
