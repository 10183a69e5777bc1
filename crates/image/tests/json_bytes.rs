//! Exact-bytes tests: what we write must be what BuildKit (Go) writes.

use std::collections::BTreeMap;

use stagecraft_image::media_type::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
};
use stagecraft_image::{
    Descriptor, Digest, Healthcheck, History, ImageConfig, ImageIndex, ImageManifest, Platform,
    RootFs, RuntimeConfig, Timestamp,
};

const BUILDKIT_CONFIG: &[u8] = include_bytes!("data/buildkit-config.json");
const LEGACY_CONFIG: &[u8] = include_bytes!("data/docker-legacy-config.json");

fn every_field_config() -> ImageConfig {
    let created = Timestamp::from_unix(1_714_566_896, 123_456_789).map(|t| t.to_string());
    ImageConfig {
        architecture: "arm".into(),
        author: "Jane <jane@example.com>".into(),
        config: RuntimeConfig {
            user: "1000:1000".into(),
            exposed_ports: ["8080/tcp".to_owned(), "53/udp".to_owned()].into(),
            env: vec![
                "PATH=/usr/bin:/bin".into(),
                "Z=last".into(),
                "A=first".into(),
            ],
            entrypoint: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "exec app > /dev/null 2>&1".into(),
            ]),
            cmd: Some(vec!["--flag".into(), "a&b".into()]),
            volumes: ["/var/lib/app".to_owned(), "/data".to_owned()].into(),
            working_dir: "/srv".into(),
            labels: BTreeMap::from([
                (
                    "org.opencontainers.image.title".to_owned(),
                    "demo".to_owned(),
                ),
                ("com.example.<odd>".to_owned(), "x\u{2028}y".to_owned()),
            ]),
            stop_signal: "SIGQUIT".into(),
            args_escaped: true,
            healthcheck: Some(Healthcheck {
                test: vec!["CMD".into(), "/bin/check".into()],
                interval: 30_000_000_000,
                timeout: 3_000_000_000,
                start_period: 5_000_000_000,
                start_interval: 1_000_000_000,
                retries: 4,
            }),
            on_build: vec!["RUN echo onbuild".into()],
            shell: vec!["/bin/bash".into(), "-c".into()],
        },
        created: created.clone(),
        history: vec![
            History {
                created: created.clone(),
                created_by: "RUN /bin/sh -c make # buildkit".into(),
                author: "Jane".into(),
                comment: "buildkit.dockerfile.v0".into(),
                empty_layer: false,
            },
            History {
                created,
                created_by: "ENV A=first".into(),
                comment: "buildkit.dockerfile.v0".into(),
                empty_layer: true,
                ..History::default()
            },
        ],
        os: "linux".into(),
        os_features: vec!["feature".into()],
        os_version: "1.0".into(),
        rootfs: RootFs {
            fs_type: "layers".into(),
            diff_ids: vec![Digest::of(b"layer one"), Digest::of(b"layer two")],
        },
        variant: "v7".into(),
    }
}

#[test]
fn config_with_every_field_snapshot() {
    let bytes = every_field_config().to_json().unwrap();
    insta::assert_snapshot!(String::from_utf8(bytes).unwrap());
}

#[test]
fn config_with_every_field_parses_back_identically() {
    let config = every_field_config();
    let bytes = config.to_json().unwrap();
    let parsed = ImageConfig::from_slice(&bytes).unwrap();
    assert_eq!(parsed, config);
    assert_eq!(parsed.to_json().unwrap(), bytes);
}

#[test]
fn html_characters_and_separators_are_escaped_like_go() {
    let mut config = ImageConfig::for_platform(&Platform::parse("linux/amd64").unwrap());
    config.config.cmd = Some(vec![
        "sh".into(),
        "-c".into(),
        "a && b > c < d \u{2029}".into(),
    ]);
    let text = String::from_utf8(config.to_json().unwrap()).unwrap();
    assert!(
        text.contains(r#""Cmd":["sh","-c","a \u0026\u0026 b \u003e c \u003c d \u2029"]"#),
        "{text}"
    );
    assert!(!text.contains(['<', '>', '&']));
}

#[test]
fn buildkit_config_round_trips_byte_for_byte() {
    let config = ImageConfig::from_slice(BUILDKIT_CONFIG).unwrap();
    assert_eq!(config.config.user, "app");
    assert_eq!(config.config.env[1], "GREETING=a <b> & c");
    assert_eq!(
        config.config.healthcheck.as_ref().map(|h| h.retries),
        Some(3)
    );
    assert_eq!(config.history.iter().filter(|h| h.empty_layer).count(), 2);
    assert_eq!(config.rootfs.diff_ids.len(), 2);
    let written = config.to_json().unwrap();
    assert_eq!(
        String::from_utf8(written.clone()).unwrap(),
        String::from_utf8(BUILDKIT_CONFIG.to_vec()).unwrap()
    );
    assert_eq!(Digest::of(&written), Digest::of(BUILDKIT_CONFIG));
}

#[test]
fn legacy_docker_config_parses_and_rewrites_in_buildkit_form() {
    let config = ImageConfig::from_slice(LEGACY_CONFIG).unwrap();
    assert_eq!(config.config.cmd, Some(vec!["sh".to_owned()]));
    assert_eq!(
        config.config.entrypoint, None,
        "\"Entrypoint\":null is unset"
    );
    assert!(config.config.labels.is_empty() && config.config.volumes.is_empty());
    assert_eq!(config.history.len(), 2);
    let written = String::from_utf8(config.to_json().unwrap()).unwrap();
    // What BuildKit keeps of this base image: the legacy-only fields go.
    for gone in [
        "container_config",
        "docker_version",
        "Hostname",
        "\"container\"",
        "null,",
    ] {
        assert!(!written.contains(gone), "{gone} in {written}");
    }
    assert!(
        written.starts_with(r#"{"architecture":"amd64","config":{"Env":["#),
        "{written}"
    );
}

#[test]
fn lenient_parsing_accepts_go_nulls_everywhere() {
    let json = br#"{"architecture":null,"os":"linux","config":null,"history":null,"rootfs":{"type":"layers","diff_ids":null},
        "created":null,"author":null,"variant":null}"#;
    let config = ImageConfig::from_slice(json).unwrap();
    assert_eq!(config.os, "linux");
    assert_eq!(config.config, RuntimeConfig::default());
    assert!(config.created.is_none() && config.rootfs.diff_ids.is_empty());
}

#[test]
fn manifest_and_index_snapshot() {
    let config = br#"{"architecture":"amd64","config":{},"os":"linux","rootfs":{"type":"layers","diff_ids":null}}"#;
    let mut layer = Descriptor::of_bytes(DOCKER_LAYER_GZIP, b"layer");
    layer.annotations.insert("b".into(), "2".into());
    layer.annotations.insert("a".into(), "1 & 2".into());
    let manifest = ImageManifest::new(
        DOCKER_MANIFEST,
        Descriptor::of_bytes(DOCKER_CONFIG, config),
        vec![layer],
    );
    let manifest_bytes = manifest.to_json().unwrap();
    let mut entry = Descriptor::of_bytes(DOCKER_MANIFEST, &manifest_bytes);
    entry.platform = Some(Platform::parse("linux/amd64").unwrap());
    let mut index = ImageIndex::new(DOCKER_MANIFEST_LIST, vec![entry]);
    index.annotations.insert(
        "org.opencontainers.image.created".into(),
        "2024-05-01T00:00:00Z".into(),
    );
    let index_bytes = index.to_json().unwrap();
    insta::assert_snapshot!(format!(
        "{}\n---\n{}",
        String::from_utf8(manifest_bytes).unwrap(),
        String::from_utf8(index_bytes).unwrap()
    ));
}
