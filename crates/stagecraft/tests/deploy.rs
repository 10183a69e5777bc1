//! The deployment recipes in `deploy/` parse, and the Kubernetes Job runs stagecraft with the
//! container settings `scripts/fleet.sh` proves sufficient (its `FLEET_SECURITY` default), no
//! more: no privileged pod, no added capability, a non-root user.

use serde_json::Value;
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A YAML file as JSON, read by PyYAML (`python3-yaml`, installed by `scripts/setup.sh`).
fn yaml(path: &str) -> Value {
    let output = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repository().join(path))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{path} does not parse: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The docker flags fleet.sh gives its runners, one per element.
fn fleet_security_flags() -> Vec<String> {
    let script = std::fs::read_to_string(repository().join("scripts/fleet.sh")).unwrap();
    let line = script
        .lines()
        .find(|l| l.contains("FLEET_SECURITY:-"))
        .expect("fleet.sh names its container settings in FLEET_SECURITY's default");
    let default = line
        .split("FLEET_SECURITY:-")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap();
    default.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn every_recipe_parses() {
    for path in [
        "deploy/kubernetes/build-job.yaml",
        "deploy/ci/github-actions.yml",
        "deploy/ci/gitlab-ci.yml",
    ] {
        assert!(yaml(path).is_object(), "{path}");
    }
}

#[test]
fn the_job_uses_exactly_the_settings_fleet_proves() {
    let flags = fleet_security_flags();
    let has = |flag: &str, value: &str| flags.windows(2).any(|w| w[0] == flag && w[1] == value);
    let job = yaml("deploy/kubernetes/build-job.yaml");
    let pod = &job["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let context = &containers[0]["securityContext"];
    // Not privileged, not root.
    assert_eq!(context["privileged"], false);
    assert_eq!(context["runAsNonRoot"], true);
    assert_eq!(context["runAsUser"], 1000);
    // docker's seccomp=unconfined and systempaths=unconfined.
    assert!(has("--security-opt", "seccomp=unconfined"));
    assert_eq!(context["seccompProfile"]["type"], "Unconfined");
    assert!(has("--security-opt", "systempaths=unconfined"));
    assert_eq!(context["procMount"], "Unmasked");
    assert_eq!(
        pod["hostUsers"], false,
        "procMount Unmasked needs a user-namespaced pod"
    );
    // Every capability dropped but the two the id mappers' file capabilities need, and
    // privilege escalation left on (no-new-privileges switches file capabilities off).
    assert!(has("--cap-drop", "ALL"));
    let added: Vec<&str> = flags
        .windows(2)
        .filter(|w| w[0] == "--cap-add")
        .map(|w| w[1].as_str())
        .collect();
    assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(context["capabilities"]["add"], serde_json::json!(added));
    assert_ne!(context["allowPrivilegeEscalation"], false);
    assert!(!flags.iter().any(|f| f.contains("no-new-privileges")));
    // fleet's runners get /dev/net/tun for RUN's network sandbox; a pod cannot without
    // privileges, so the Job's RUN steps use the pod's own network instead.
    assert!(has("--device", "/dev/net/tun"));
    let args: Vec<&str> = containers[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--network=host"), "{args:?}");
    assert!(!flags.iter().any(|f| f == "--privileged"));
}
