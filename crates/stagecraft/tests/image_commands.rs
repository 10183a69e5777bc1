//! docker's image commands as scripts type them: `images` (`-q`, `--format`, `--filter`,
//! `--digests`, `--no-trunc`), `inspect` (several, by ID prefix, `--format`), `history`,
//! `save` to standard output and `load` from standard input, `rmi` by ID, `version`,
//! `login`/`logout`, `system df`, `cache prune`/`builder prune`, `prune --keep-storage` with
//! units and `--dry-run`, `tag` validation. As root: one build per test makes the images.

mod common;

use common::{Machine, busybox_layout};
use serde_json::Value;
use std::fs;

/// A machine whose store holds busybox (loaded: compressed layers, created 1970) and `app:1`
/// (built: uncompressed layers, created at SOURCE_DATE_EPOCH 1700000000, label team=core).
/// Returns the machine and app's image ID.
fn machine(dir: &std::path::Path) -> (Machine, String) {
    let busybox = busybox_layout(dir);
    let m = Machine::new(
        dir,
        "m",
        &busybox,
        &[(
            "Dockerfile",
            "FROM busybox:latest\nENV GREETING=hello\nRUN echo built > /built\n",
        )],
    );
    let (id, _) = m.build(&["-t", "app:1", "--label", "team=core"]);
    (m, id)
}

fn run(m: &Machine, args: &[&str]) -> String {
    let output = m.stagecraft().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "stagecraft {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn fails(m: &Machine, args: &[&str]) -> String {
    let output = m.stagecraft().args(args).output().unwrap();
    assert!(!output.status.success(), "stagecraft {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn images_lists_and_filters_as_docker_images() {
    let dir = tempfile::tempdir().unwrap();
    let (m, id) = machine(dir.path());
    let short = &id["sha256:".len().."sha256:".len() + 12];

    // The table: docker's columns (newest first), the platforms last.
    let table = run(&m, &["images"]);
    let rows = lines(&table);
    assert!(
        rows[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED")
            && rows[0].ends_with("PLATFORMS"),
        "{table}"
    );
    assert!(
        rows[1].starts_with("app          1         ") && rows[1].contains(short),
        "{table}"
    );
    assert!(rows[2].starts_with("busybox      latest    "), "{table}");
    assert!(rows[2].contains("years ago"), "{table}");

    // -q: the image IDs; --no-trunc: whole.
    assert_eq!(lines(&run(&m, &["images", "-q"]))[0], short);
    assert_eq!(lines(&run(&m, &["images", "-q", "--no-trunc"]))[0], id);
    assert_eq!(run(&m, &["images", "-aq", "app"]), format!("{short}\n"));

    // Templates and JSON lines.
    assert_eq!(
        run(&m, &["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "app:1\nbusybox:latest\n"
    );
    let json: Vec<Value> = run(&m, &["images", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json[0]["Repository"], "app");
    assert_eq!(json[0]["ID"], short);
    assert_eq!(json[0]["CreatedAt"], "2023-11-14 22:13:20 +0000 UTC");
    // A build's own manifest is not what a registry would have: no digest.
    assert_eq!(json[0]["Digest"], "<none>");
    assert!(json[1]["Digest"].as_str().unwrap().starts_with("sha256:"));
    let digests = run(&m, &["images", "--digests"]);
    assert!(lines(&digests)[0].contains("DIGEST"), "{digests}");
    assert!(lines(&digests)[1].contains("<none>"), "{digests}");

    // Filters.
    let names = |filters: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}"];
        for filter in filters {
            args.extend(["--filter", filter]);
        }
        run(&m, &args)
    };
    assert_eq!(names(&["reference=bus*"]), "busybox\n");
    assert_eq!(names(&["label=team=core"]), "app\n");
    assert_eq!(names(&["label=team=other"]), "");
    assert_eq!(names(&["dangling=true"]), "");
    assert_eq!(names(&["before=app:1"]), "busybox\n");
    assert_eq!(names(&["since=busybox"]), "app\n");
    assert_eq!(names(&[&format!("since={short}")]), "");
    assert!(fails(&m, &["images", "--filter", "color=red"]).contains("the image filters are"));
    assert!(fails(&m, &["images", "--format", "{{.Nope}}"]).contains("can't evaluate field Nope"));
}

#[test]
fn inspect_takes_ids_several_images_and_templates() {
    let dir = tempfile::tempdir().unwrap();
    let (m, id) = machine(dir.path());
    let prefix = &id["sha256:".len().."sha256:".len() + 7];
    assert_eq!(
        run(&m, &["inspect", "--format", "{{.Id}}", prefix, "app:1"]),
        format!("{id}\n{id}\n")
    );
    assert_eq!(
        run(
            &m,
            &["inspect", "-f", "{{.Config.Env}} {{.RepoTags}}", "app:1"]
        ),
        "[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GREETING=hello] [app:1]\n"
    );
    let json: Value =
        serde_json::from_str(&run(&m, &["inspect", "--format", "json", "app:1"])).unwrap();
    assert_eq!(json["Config"]["Labels"]["team"], "core");
    assert_eq!(json["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    // Without --format: stagecraft's own documents, one per image.
    let own = run(&m, &["inspect", prefix, "busybox"]);
    let documents: Vec<Value> = serde_json::Deserializer::from_str(&own)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(documents.len(), 2);
    assert_eq!(documents[0]["config_digest"], id);
    assert!(fails(&m, &["inspect", "nosuch:1"]).contains("no image named"));
}

#[test]
fn history_shows_the_steps_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (m, id) = machine(dir.path());
    let table = run(&m, &["history", "app:1"]);
    let rows = lines(&table);
    assert!(rows[0].starts_with("IMAGE          CREATED"), "{table}");
    assert!(
        rows[0].contains("CREATED BY") && rows[0].contains("COMMENT"),
        "{table}"
    );
    assert!(
        rows[1].starts_with(&id["sha256:".len().."sha256:".len() + 12]),
        "{table}"
    );
    assert!(
        rows[1].contains("RUN /bin/sh -c echo built > /built"),
        "{table}"
    );
    assert!(
        rows[2].starts_with("<missing>") && rows[2].contains("ENV GREETING=hello"),
        "{table}"
    );
    assert_eq!(
        rows.len(),
        4,
        "the header, RUN, ENV and the base's step: {table}"
    );
    let quiet = run(&m, &["history", "-q", "--no-trunc", "app:1"]);
    assert_eq!(lines(&quiet)[0], id);
    assert_eq!(lines(&quiet)[1], "<missing>");
    assert_eq!(
        run(
            &m,
            &[
                "history",
                "--human=false",
                "--format",
                "{{.Size}}|{{.CreatedAt}}",
                "app:1"
            ]
        )
        .lines()
        .nth(1)
        .unwrap(),
        "0|2023-11-14T22:13:20Z"
    );
}

#[test]
fn save_streams_to_stdout_and_load_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let (m, id) = machine(dir.path());
    let output = m.stagecraft().args(["save", "app:1"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.len() > 100_000);
    let other = common::store_with_busybox(&dir.path().join("other"));
    let load = assert_cmd::Command::cargo_bin("stagecraft")
        .unwrap()
        .env("STAGECRAFT_ROOT", &other)
        .arg("load")
        .write_stdin(output.stdout)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(String::from_utf8_lossy(&load.stdout).contains("docker.io/library/app:1"));
    let ids = assert_cmd::Command::cargo_bin("stagecraft")
        .unwrap()
        .env("STAGECRAFT_ROOT", &other)
        .args(["images", "-q", "--no-trunc", "app:1"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ids.stdout).trim(), id);
}

#[test]
fn rmi_and_tag_take_docker_s_names_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (m, id) = machine(dir.path());
    let error = fails(&m, &["tag", "app:1", "my app:2"]);
    assert!(error.contains("cannot contain spaces"), "{error}");
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert_eq!(
        run(&m, &["tag", short, "app:2"]),
        "docker.io/library/app:2\n"
    );
    // Two names: docker asks for -f.
    assert!(fails(&m, &["rmi", short]).contains("pass -f"));
    assert_eq!(
        run(&m, &["rmi", "-f", short]),
        "Untagged: app:1\nUntagged: app:2\n"
    );
    assert_eq!(run(&m, &["images", "-q", "app"]), "");
}

#[test]
fn version_system_df_and_the_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = machine(dir.path());
    assert_eq!(
        run(&m, &["version", "--format", "{{.Client.Version}}"]),
        format!("{}\n", env!("CARGO_PKG_VERSION"))
    );
    let df = run(&m, &["system", "df"]);
    let rows = lines(&df);
    assert!(
        rows[0].starts_with("TYPE") && rows[0].ends_with("RECLAIMABLE"),
        "{df}"
    );
    assert!(rows[1].starts_with("Images            2 "), "{df}");
    assert!(rows[2].starts_with("Build Cache"), "{df}");
    let records = |m: &Machine| common::names_in(&m.root.join("cache")).len();
    let before = records(&m);
    assert!(before > 0);

    // Sizes in docker's units; a wrong one is refused.
    assert!(fails(&m, &["prune", "--keep-storage", "10XB"]).contains("500MB, 10GB, 1.5GiB"));
    run(&m, &["prune", "--keep-storage", "1.5GiB"]);
    let dry = run(&m, &["builder", "prune", "-a", "--dry-run"]);
    assert!(dry.starts_with("would remove"), "{dry}");
    assert_eq!(records(&m), before, "a dry run removes nothing");
    // Everything is younger than a day.
    assert!(
        run(&m, &["cache", "prune", "-a", "--filter", "until=24h"]).contains(" 0 cache records")
    );
    assert!(fails(&m, &["cache", "prune", "--filter", "type=regular"]).contains("until="));
    run(&m, &["builder", "prune", "-af"]);
    assert!(records(&m) < before);
    // The images are still there, and build again.
    assert_eq!(run(&m, &["images", "-q"]).lines().count(), 2);
    m.build(&["-t", "app:1"]);
}

#[test]
fn login_checks_with_the_registry_and_logout_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let m = Machine::new(dir.path(), "m", &busybox_layout(dir.path()), &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _registry = common::RegistryProcess::start_with_htpasswd(
        &dir.path().join("registry"),
        port,
        "builder:s3cret",
    );
    let host = format!("127.0.0.1:{port}");
    let config = dir.path().join("docker-config");
    let login = |password: &str| {
        m.stagecraft()
            .env("DOCKER_CONFIG", &config)
            .args(["login", &host, "-u", "builder", "--password-stdin"])
            .write_stdin(format!("{password}\n"))
            .output()
            .unwrap()
    };
    let refused = login("wrong");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused the username and password"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!config.join("config.json").exists(), "nothing kept");
    let accepted = login("s3cret");
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&accepted.stdout),
        "Login Succeeded\n"
    );
    let written: Value =
        serde_json::from_slice(&fs::read(config.join("config.json")).unwrap()).unwrap();
    assert_eq!(written["auths"][&host]["auth"], "YnVpbGRlcjpzM2NyZXQ=");
    // Pushes use them.
    run(
        &m,
        &["tag", "busybox:latest", &format!("{host}/team/base:1")],
    );
    m.stagecraft()
        .env("DOCKER_CONFIG", &config)
        .args(["push", &format!("{host}/team/base:1")])
        .assert()
        .success();
    let logout = m
        .stagecraft()
        .env("DOCKER_CONFIG", &config)
        .args(["logout", &host])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&logout.stdout),
        format!("Removing login credentials for {host}\n")
    );
    let written: Value =
        serde_json::from_slice(&fs::read(config.join("config.json")).unwrap()).unwrap();
    assert!(written["auths"].get(&host).is_none(), "{written}");
}
