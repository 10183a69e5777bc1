//! The catalogers against the tools that own the formats, on real data of this machine:
//! the host's dpkg database against `dpkg-query`, a Go binary built here by Debian's Go
//! toolchain against `go version -m`, Python installations against `pip list` and Node.js
//! module trees against `npm ls`. The tools come with `scripts/setup.sh`; none of the tests
//! uses the network.

use serde_json::Value;
use stagecraft_sbom::{Catalog, DirFs, Ecosystem};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn output(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|err| {
        panic!("cannot run {command:?} ({err}): run scripts/setup.sh to install it")
    })
}

fn run(command: &mut Command) -> String {
    let output = output(command);
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Catalogs the live system's files below `dir` (absolute).
fn catalog_host(dir: &Path) -> Catalog {
    let relative = dir.strip_prefix("/").unwrap().to_str().unwrap();
    stagecraft_sbom::catalog(&DirFs::with_subtrees("/", &[relative])).unwrap()
}

fn packages(catalog: &Catalog, ecosystem: Ecosystem) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = catalog
        .packages
        .iter()
        .filter(|p| p.ecosystem == ecosystem)
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    found.sort();
    found
}

#[test]
fn host_dpkg_database_matches_dpkg_query() {
    let listed = run(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${db:Status-Status}\t${Package}\t${Version}\n",
    ]));
    let mut expected: Vec<(String, String)> = listed
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let status = fields.next()?;
            let (name, version) = (fields.next()?, fields.next()?);
            (status == "installed").then(|| (name.to_owned(), version.to_owned()))
        })
        .collect();
    expected.sort();
    assert!(expected.len() > 10, "dpkg-query listed {expected:?}");
    let catalog = stagecraft_sbom::catalog(&DirFs::with_subtrees("/", &["var/lib/dpkg"])).unwrap();
    assert_eq!(packages(&catalog, Ecosystem::Deb), expected);
}

/// `go version -m`'s Go version and module paths (`mod` and `dep` lines) for a binary.
fn go_version_m(binary: &Path) -> (String, BTreeSet<String>) {
    let text = run(Command::new("go").arg("version").arg("-m").arg(binary));
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|first| first.rsplit(": ").next())
        .unwrap()
        .to_owned();
    let modules = lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim_start().split('\t').collect();
            matches!(fields.first(), Some(&"mod" | &"dep")).then(|| fields[1].to_owned())
        })
        .collect();
    (version, modules)
}

#[test]
fn go_binary_matches_go_version_m() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("src");
    let files = [
        (
            "go.mod",
            "module example.com/hello\n\ngo 1.19\n\nrequire example.com/greeting v0.0.0\n\n\
             replace example.com/greeting => ./greeting\n",
        ),
        (
            "main.go",
            "package main\n\nimport \"example.com/greeting\"\n\nfunc main() { println(greeting.Text()) }\n",
        ),
        (
            "greeting/go.mod",
            "module example.com/greeting\n\ngo 1.19\n",
        ),
        (
            "greeting/greeting.go",
            "package greeting\n\nfunc Text() string { return \"hello\" }\n",
        ),
    ];
    for (path, content) in files {
        let full = source.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let rootfs = work.path().join("rootfs");
    let binary = rootfs.join("usr/local/bin/hello");
    // The build cache outlives the test (the standard library compiles once); nothing is
    // fetched from the network.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sbom-gocache");
    run(Command::new("go")
        .args(["build", "-trimpath", "-buildvcs=false", "-o"])
        .arg(&binary)
        .current_dir(&source)
        .env("GOCACHE", &cache)
        .env("GOPATH", work.path().join("gopath"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0"));
    let (go_version, modules) = go_version_m(&binary);
    assert_eq!(
        modules,
        BTreeSet::from([
            "example.com/hello".to_owned(),
            "example.com/greeting".to_owned()
        ])
    );

    let catalog = stagecraft_sbom::catalog(&DirFs::new(&rootfs)).unwrap();
    let found = packages(&catalog, Ecosystem::Go);
    let stdlib: Vec<&str> = found
        .iter()
        .filter(|(name, _)| name == "stdlib")
        .map(|(_, version)| version.as_str())
        .collect();
    assert_eq!(stdlib, [go_version.as_str()]);
    let found_modules: BTreeSet<String> = found
        .iter()
        .filter(|(name, _)| name != "stdlib")
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(found_modules, modules);
    let purls: BTreeSet<&str> = catalog.packages.iter().map(|p| p.purl.as_str()).collect();
    let stdlib_purl = format!(
        "pkg:golang/stdlib@{}",
        go_version.strip_prefix("go").unwrap()
    );
    assert!(purls.contains(stdlib_purl.as_str()), "{purls:?}");
    assert!(
        purls.contains("pkg:golang/example.com/hello@%28devel%29"),
        "{purls:?}"
    );
}

/// PEP 503's normalised form of a distribution name (how `pip` compares them).
fn pep503(name: &str) -> String {
    name.split(['-', '_', '.'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase()
}

/// `pip list --path DIR`: the (normalised name, version) of every distribution installed in
/// `dir`, as importlib.metadata (pip's backend) resolves them.
fn pip_list(dir: &Path) -> Vec<(String, String)> {
    let listed = run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "list",
            "--disable-pip-version-check",
            "--format",
            "json",
            "--path",
        ])
        .arg(dir));
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    let mut found: Vec<(String, String)> = listed
        .iter()
        .map(|dist| {
            (
                pep503(dist["name"].as_str().unwrap()),
                dist["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

/// The Python cataloger's packages whose metadata lives directly in `dir`. `pip list --path`
/// looks at that directory only; the cataloger also reports distributions vendored deeper
/// (`setuptools/_vendor/*.dist-info`), deliberately: their code is in the image too.
fn python_packages(catalog: &Catalog, dir: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = catalog
        .packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Python)
        .filter(|p| {
            let parent = p.location.parent().unwrap();
            // `NAME.dist-info/METADATA`, `NAME.egg-info/PKG-INFO` or a single-file `NAME.egg-info`.
            parent == dir || parent.parent() == Some(dir)
        })
        .map(|p| (pep503(&p.name), p.version.clone()))
        .collect();
    found.sort();
    found
}

/// The interpreter's own site-packages (pyenv's on the project's machines, where `setup.sh`
/// installs spdx-tools and its dependencies) and Debian's dist-packages (egg-info
/// directories, and `python3-cryptography`'s dist-info shadowing its egg-info).
#[test]
fn python_site_packages_match_pip_list() {
    let purelib = run(Command::new("python3").args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]));
    let dirs = [
        PathBuf::from(purelib.trim()),
        PathBuf::from("/usr/lib/python3/dist-packages"),
    ];
    for dir in dirs.iter().filter(|dir| dir.is_dir()) {
        let dir = dir.canonicalize().unwrap();
        let expected = pip_list(&dir);
        assert!(
            !expected.is_empty(),
            "pip lists nothing in {}",
            dir.display()
        );
        let catalog = catalog_host(&dir);
        assert_eq!(
            python_packages(&catalog, &dir),
            expected,
            "in {}",
            dir.display()
        );
    }
}

/// `npm ls --all --json --long` run in `project` (`-g`: the global tree): the (name, version,
/// directory) of every package it found on disk. The long form gives each node's `path`, so
/// a deduped reference (the same node printed again under another dependent) collapses into
/// its one physical package; extraneous packages (on disk, required by nothing) count, as
/// they are in the image; missing ones (required, not on disk) have no path and do not.
/// `name` is the manifest's, not the folder's: an aliased dependency (`"c": "npm:real-c@2"`)
/// is installed as `node_modules/c` but is the package `real-c`, and so is its purl.
fn npm_ls(project: &Path, global: bool) -> Vec<(String, String, PathBuf)> {
    let mut command = Command::new("npm");
    command
        .args(["ls", "--all", "--json", "--long", "--offline"])
        .current_dir(project);
    if global {
        command.arg("--global");
    }
    // npm exits 1 when the tree has problems (a missing dependency) and still prints it.
    let output = output(&mut command);
    let tree: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("npm ls: {err}: {}", String::from_utf8_lossy(&output.stderr)));
    let mut found = BTreeSet::new();
    let mut pending = vec![&tree];
    while let Some(node) = pending.pop() {
        let Some(dependencies) = node.get("dependencies").and_then(Value::as_object) else {
            continue;
        };
        for child in dependencies.values() {
            if let (Some(name), Some(version), Some(path)) = (
                child.get("name").and_then(Value::as_str),
                child.get("version").and_then(Value::as_str),
                child.get("path").and_then(Value::as_str),
            ) && !child
                .get("missing")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                found.insert((name.to_owned(), version.to_owned(), PathBuf::from(path)));
            }
            pending.push(child);
        }
    }
    found.into_iter().collect()
}

/// The Node.js cataloger's packages below `dir`, with the directory each was read from.
fn npm_packages(catalog: &Catalog, dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut found: Vec<(String, String, PathBuf)> = catalog
        .packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Npm && p.location.starts_with(dir))
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.location.parent().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

/// The global module tree of the machine's npm (npm itself and its ~140 bundled packages,
/// nested copies of different versions included).
#[test]
fn npm_global_tree_matches_npm_ls() {
    let root = run(Command::new("npm").args(["root", "--global"]));
    let root = Path::new(root.trim()).canonicalize().unwrap();
    let work = tempfile::tempdir().unwrap();
    let expected = npm_ls(work.path(), true);
    assert!(
        expected.len() > 50,
        "npm ls -g found {expected:?} in {}: npm's own packages should be there",
        root.display()
    );
    assert_eq!(npm_packages(&catalog_host(&root), &root), expected);
}

/// A project tree with what a real install leaves: a package two dependents share (npm ls
/// prints it again, `deduped`), two versions of one package (one nested), an alias, an
/// extraneous package, a dependency that is missing, and a manifest inside a package that
/// is not a package.
#[test]
fn npm_project_tree_matches_npm_ls() {
    let work = tempfile::tempdir().unwrap();
    let project = work.path().canonicalize().unwrap();
    let manifests = [
        (
            "package.json",
            r#"{"name":"app","version":"1.0.0","dependencies":{"a":"^1.0.0","b":"^1.0.0",
               "shared":"^1.0.0","c":"npm:real-c@^2.0.0","gone":"^1.0.0"}}"#,
        ),
        (
            "node_modules/a/package.json",
            r#"{"name":"a","version":"1.0.1","dependencies":{"shared":"^1.0.0"}}"#,
        ),
        (
            "node_modules/a/test/fixture/package.json",
            r#"{"name":"fixture","version":"0.0.1"}"#,
        ),
        (
            "node_modules/b/package.json",
            r#"{"name":"b","version":"1.2.0","dependencies":{"shared":"^2.0.0"}}"#,
        ),
        (
            "node_modules/b/node_modules/shared/package.json",
            r#"{"name":"shared","version":"2.0.0"}"#,
        ),
        (
            "node_modules/shared/package.json",
            r#"{"name":"shared","version":"1.4.0"}"#,
        ),
        (
            "node_modules/c/package.json",
            r#"{"name":"real-c","version":"2.1.0"}"#,
        ),
        (
            "node_modules/@scope/stray/package.json",
            r#"{"name":"@scope/stray","version":"0.3.0"}"#,
        ),
    ];
    for (path, content) in manifests {
        let full = project.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let expected = npm_ls(&project, false);
    assert_eq!(expected.len(), 6, "npm ls listed {expected:?}");
    let catalog = stagecraft_sbom::catalog(&DirFs::new(&project)).unwrap();
    let found: Vec<_> = npm_packages(&catalog, Path::new("/"))
        .into_iter()
        .map(|(name, version, dir)| (name, version, project.join(dir.strip_prefix("/").unwrap())))
        .collect();
    assert_eq!(found, expected);
}
