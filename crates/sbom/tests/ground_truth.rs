//! The catalogers against the tools that own the formats, on real data of this machine:
//! the host's dpkg database against `dpkg-query`, and a Go binary built here by Debian's Go
//! toolchain against `go version -m`. Both tools come with `scripts/setup.sh`.

use stagecraft_sbom::{Catalog, DirFs, Ecosystem};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|err| {
        panic!("cannot run {command:?} ({err}): run scripts/setup.sh to install it")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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
