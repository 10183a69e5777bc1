//! `build --sbom --provenance --attest`: attestations as BuildKit attaches them, read back by
//! the tools that read BuildKit's — a real registry and skopeo, the SPDX validator — and as
//! files beside a `local` output; reproducible with `SOURCE_DATE_EPOCH`; the SBOM of a cached
//! image reused.

mod common;

use common::Machine;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;

const SECRET: &str = "supersecret-token-value";

/// A Dockerfile whose image has one Python package, added by line 3.
const DOCKERFILE: &str = "FROM busybox\nARG TOKEN\nRUN mkdir -p /usr/lib/python3/dist-packages/demo-1.0.dist-info && printf 'Metadata-Version: 2.1\\nName: demo\\nVersion: 1.0\\nLicense: MIT\\n' > /usr/lib/python3/dist-packages/demo-1.0.dist-info/METADATA && test -n \"$TOKEN\"\nCOPY a.txt /a.txt\n";

fn machine(dir: &Path, name: &str) -> Machine {
    let busybox = dir.join("busybox");
    if !busybox.exists() {
        common::busybox_layout(dir);
    }
    Machine::new(
        dir,
        name,
        &busybox,
        &[("Dockerfile", DOCKERFILE), ("a.txt", "hello\n")],
    )
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Checks an SPDX document with the SPDX project's validator.
fn assert_valid_spdx(dir: &Path, predicate: &Value) {
    let path = dir.join("sbom-predicate.spdx.json");
    fs::write(&path, serde_json::to_vec(predicate).unwrap()).unwrap();
    let output = Command::new("pyspdxtools")
        .arg("-i")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyspdxtools: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The package `demo` names the layer and Dockerfile line that added it.
fn assert_sbom(predicate: &Value) {
    let demo = predicate["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "demo")
        .unwrap_or_else(|| panic!("{predicate}"));
    assert_eq!(demo["versionInfo"], "1.0");
    let source = demo["sourceInfo"].as_str().unwrap();
    assert!(source.contains("added by layer 1"), "{source}");
    assert!(source.contains("Dockerfile:3 RUN mkdir"), "{source}");
}

/// The SLSA v1 fields, and no secret anywhere.
fn assert_provenance(statement: &[u8], max: bool) -> Value {
    let text = String::from_utf8_lossy(statement);
    assert!(!text.contains(SECRET), "the secret leaked: {text}");
    let statement = json(statement);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let predicate = &statement["predicate"];
    let definition = &predicate["buildDefinition"];
    assert_eq!(
        definition["buildType"],
        "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
    );
    let request = &definition["externalParameters"]["request"];
    assert_eq!(request["frontend"], "dockerfile.v0");
    assert_eq!(request["args"]["platform"], "linux/amd64");
    assert_eq!(
        definition["externalParameters"]["configSource"]["path"],
        "Dockerfile"
    );
    let dependencies = definition["resolvedDependencies"].as_array().unwrap();
    assert!(
        dependencies.iter().any(
            |d| d["uri"] == "pkg:docker/busybox@latest?platform=linux%2Famd64"
                && d["digest"]["sha256"].is_string()
        ),
        "{dependencies:?}"
    );
    assert!(dependencies.iter().any(|d| d["name"] == "Dockerfile"));
    let metadata = &predicate["runDetails"]["metadata"];
    for field in ["invocationId", "startedOn", "finishedOn"] {
        assert!(metadata[field].is_string(), "{field}: {metadata}");
    }
    // SOURCE_DATE_EPOCH (1700000000, set by the test machines) clamps the times.
    assert_eq!(metadata["startedOn"], "2023-11-14T22:13:20Z");
    assert!(predicate["runDetails"]["builder"]["id"].is_string());
    let steps = &definition["internalParameters"]["buildConfig"]["steps"];
    if max {
        // The secret build argument is listed by name, its value nowhere.
        assert_eq!(request["secrets"][0]["id"], "build-arg:TOKEN");
        assert_eq!(metadata["buildkit_completeness"]["request"], true);
        let instructions: Vec<&str> = steps
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["instruction"].as_str().unwrap())
            .collect();
        assert_eq!(instructions.len(), 3, "{steps}");
        assert_eq!(instructions[2], "COPY a.txt /a.txt");
    } else {
        assert!(steps.is_null(), "{steps}");
        assert!(request.get("secrets").is_none());
    }
    statement
}

#[test]
fn a_pushed_attested_image_carries_its_sbom_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), "m");
    let _registry = common::RegistryProcess::start(&dir.path().join("registry"), 5390);
    let name = "127.0.0.1:5390/app:attested";
    let (stdout, _) = m.build(&[
        "--sbom=true",
        "--provenance=mode=max",
        "--secret-build-arg",
        &format!("TOKEN={SECRET}"),
        "-t",
        name,
        "--push",
    ]);
    let inspect = |reference: &str| {
        let output = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let raw = inspect(name);
    assert_eq!(stdout, stagecraft_image::Digest::of(&raw).to_string());
    let index = json(&raw);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let image_digest = manifests[0]["digest"].as_str().unwrap();
    let attestation = &manifests[1];
    assert_eq!(attestation["platform"]["os"], "unknown");
    assert_eq!(attestation["platform"]["architecture"], "unknown");
    assert_eq!(
        attestation["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        attestation["annotations"]["vnd.docker.reference.digest"],
        image_digest
    );
    let attestation_manifest = json(&inspect(&format!(
        "127.0.0.1:5390/app@{}",
        attestation["digest"].as_str().unwrap()
    )));
    let layers = attestation_manifest["layers"].as_array().unwrap();
    let types: Vec<&str> = layers
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], "application/vnd.in-toto+json");
            l["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );

    // Tools that know nothing of attestations still copy the image; the copy has every blob.
    let layout = dir.path().join("copy");
    let copy = Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{name}"))
        .arg(format!("oci:{}:copy", layout.display()))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let blob = |digest: &str| {
        fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let sbom = json(&blob(layers[0]["digest"].as_str().unwrap()));
    assert_eq!(sbom["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        sbom["subject"][0]["name"],
        "pkg:docker/127.0.0.1%3A5390/app@attested?platform=linux%2Famd64"
    );
    assert_eq!(
        sbom["subject"][0]["digest"]["sha256"],
        image_digest.trim_start_matches("sha256:")
    );
    assert_sbom(&sbom["predicate"]);
    assert_valid_spdx(dir.path(), &sbom["predicate"]);
    let provenance = assert_provenance(&blob(layers[1]["digest"].as_str().unwrap()), true);
    assert_eq!(provenance["subject"], sbom["subject"]);

    // The store keeps the attested image: inspect lists its attestation, `sbom` prints it.
    let inspected = m.stagecraft().args(["inspect", name]).output().unwrap();
    let inspected = json(&inspected.stdout);
    assert!(
        inspected["manifests"][1]["attestation_for"].is_string(),
        "{inspected}"
    );
    let printed = m.stagecraft().args(["sbom", name]).output().unwrap();
    assert!(printed.status.success());
    assert_sbom(&json(&printed.stdout));

    // Without flags, a push carries buildx's default: minimal provenance only.
    let (_, _) = m.build(&[
        "--build-arg",
        "TOKEN=plain",
        "-t",
        "127.0.0.1:5390/app:default",
        "--push",
    ]);
    let index = json(&inspect("127.0.0.1:5390/app:default"));
    let attestation = &index["manifests"][1];
    let manifest = json(&inspect(&format!(
        "127.0.0.1:5390/app@{}",
        attestation["digest"].as_str().unwrap()
    )));
    assert_eq!(
        manifest["layers"][0]["annotations"]["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
}

/// Builds on a fresh machine into an OCI layout and a local directory; returns the bytes of
/// the layout's statements and the local statement files, and the build's stderr.
fn attested_outputs(dir: &Path, name: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, String) {
    let m = machine(dir, name);
    let layout = dir.join(format!("{name}.tar"));
    let local = dir.join(format!("{name}-rootfs"));
    let (_, stderr) = m.build(&[
        "--attest",
        "type=sbom",
        "--attest",
        "type=provenance,mode=min",
        "--build-arg",
        "TOKEN=x",
        "-o",
        &format!("type=oci,dest={}", layout.display()),
        "-o",
        &format!("type=local,dest={}", local.display()),
    ]);
    let unpacked = dir.join(format!("{name}-layout"));
    fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(fs::File::open(&layout).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let blob = |digest: &str| {
        fs::read(
            unpacked
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let top = json(&fs::read(unpacked.join("index.json")).unwrap());
    let index = json(&blob(top["manifests"][0]["digest"].as_str().unwrap()));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let attestation = json(&blob(index["manifests"][1]["digest"].as_str().unwrap()));
    let statements: Vec<Vec<u8>> = attestation["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect();
    let files: Vec<Vec<u8>> = ["sbom.spdx.json", "provenance.json"]
        .iter()
        .map(|file| {
            let path = local.join(file);
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::read(path).unwrap()
        })
        .collect();
    (statements, files, stderr)
}

#[test]
fn layouts_and_local_outputs_carry_reproducible_attestations() {
    let dir = tempfile::tempdir().unwrap();
    let (statements, files, _) = attested_outputs(dir.path(), "a");
    let (again, files_again, _) = attested_outputs(dir.path(), "b");
    // Two clean machines, SOURCE_DATE_EPOCH set: the same bytes.
    assert_eq!(statements, again);
    assert_eq!(files, files_again);
    assert_sbom(&json(&statements[0])["predicate"]);
    assert_provenance(&statements[1], false);
    // Beside the root file system, each statement is about every file of it.
    let sbom = json(&files[0]);
    assert_valid_spdx(dir.path(), &sbom["predicate"]);
    let subjects: Vec<&str> = sbom["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"a.txt") && subjects.contains(&"bin/busybox"),
        "{subjects:?}"
    );
    assert_provenance(&files[1], false);
}

#[test]
fn a_cached_rebuild_reuses_the_sbom_and_the_default_leaves_local_outputs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), "m");
    let (_, first) = m.build(&["--sbom=true", "--build-arg", "TOKEN=x", "-t", "app:1"]);
    assert!(first.contains("cataloged in"), "{first}");
    let (_, again) = m.build(&["--sbom=true", "--build-arg", "TOKEN=x", "-t", "app:1"]);
    assert!(again.contains("(kept from an earlier build)"), "{again}");
    assert!(!again.contains("cataloged in"), "{again}");
    // `stagecraft sbom` of an image without attestation reads the kept catalog too.
    let table = m
        .stagecraft()
        .args(["sbom", "busybox:latest", "--format", "table"])
        .output()
        .unwrap();
    assert!(table.status.success());
    // buildx's default provenance is for images only: no file beside a local output, no
    // attestation in a single-platform layout.
    let local = dir.path().join("rootfs");
    let layout = dir.path().join("plain.tar");
    m.build(&[
        "--build-arg",
        "TOKEN=x",
        "-o",
        &format!("type=local,dest={}", local.display()),
        "-o",
        &format!("type=oci,dest={}", layout.display()),
    ]);
    assert!(local.join("a.txt").exists());
    assert!(!local.join("provenance.json").exists());
    let names: Vec<String> = common::tar_headers(&layout)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // index.json names a manifest: three blobs (manifest, config, layers) and no index.
    let unpacked = dir.path().join("plain");
    fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(fs::File::open(&layout).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let top = json(&fs::read(unpacked.join("index.json")).unwrap());
    assert_eq!(
        top["manifests"][0]["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{names:?}"
    );
}

/// `pull` keeps an image's attestation manifests: after a pull into another store, `inspect`
/// lists them and `sbom` prints the attached SBOM (not one computed again).
#[test]
fn a_pulled_image_keeps_its_attestations() {
    let dir = tempfile::tempdir().unwrap();
    let m = machine(dir.path(), "m");
    let _registry = common::RegistryProcess::start(&dir.path().join("registry"), 5391);
    let name = "127.0.0.1:5391/app:pulled";
    let (pushed, _) = m.build(&[
        "--sbom=true",
        "--provenance=mode=max",
        "--build-arg",
        "TOKEN=x",
        "-t",
        name,
        "--push",
    ]);
    let attached = m.stagecraft().args(["sbom", name]).output().unwrap();
    assert!(attached.status.success());

    let other = machine(dir.path(), "other");
    let pull = other.stagecraft().args(["pull", name]).output().unwrap();
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    assert!(String::from_utf8_lossy(&pull.stdout).contains(&pushed));
    let inspected = other.stagecraft().args(["inspect", name]).output().unwrap();
    assert!(inspected.status.success());
    let inspected = json(&inspected.stdout);
    assert!(
        inspected["manifests"][1]["attestation_for"].is_string(),
        "{inspected}"
    );
    let printed = other.stagecraft().args(["sbom", name]).output().unwrap();
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert_sbom(&json(&printed.stdout));
    assert_eq!(json(&printed.stdout), json(&attached.stdout));
    // The one-platform inspect names the attestation with its predicate types.
    let platform = other
        .stagecraft()
        .args(["inspect", "--platform", "linux/amd64", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&platform.stdout);
    assert!(text.contains("https://slsa.dev/provenance/v1"), "{text}");
}

/// `BUILDKIT_SBOM_SCAN_STAGE` / `BUILDKIT_SBOM_SCAN_CONTEXT`, as BuildKit reads them: SBOMs of
/// the builder stages that declare the argument and of the build context, attached beside the
/// image's as `sbom-NAME.spdx.json`; a stage that does not declare it is not scanned.
#[test]
fn builder_stages_and_the_context_get_sboms_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = common::busybox_layout(dir.path());
    let dockerfile = "FROM busybox AS deps\n\
        ARG BUILDKIT_SBOM_SCAN_STAGE=true\n\
        RUN test -z \"$BUILDKIT_SBOM_SCAN_STAGE\" && mkdir -p /usr/lib/python3/dist-packages/builddep-2.0.dist-info && printf 'Metadata-Version: 2.1\\nName: builddep\\nVersion: 2.0\\n' > /usr/lib/python3/dist-packages/builddep-2.0.dist-info/METADATA\n\
        FROM busybox AS other\n\
        RUN mkdir -p /usr/lib/python3/dist-packages/unscanned-1.0.dist-info && printf 'Metadata-Version: 2.1\\nName: unscanned\\nVersion: 1.0\\n' > /usr/lib/python3/dist-packages/unscanned-1.0.dist-info/METADATA\n\
        FROM busybox\n\
        ARG BUILDKIT_SBOM_SCAN_CONTEXT\n\
        COPY --from=deps /usr/lib/python3 /deps\n\
        COPY --from=other /usr/lib/python3 /other\n";
    let m = Machine::new(
        dir.path(),
        "scan",
        &busybox,
        &[
            ("Dockerfile", dockerfile),
            (
                "node_modules/left-pad/package.json",
                "{\"name\": \"left-pad\", \"version\": \"1.3.0\"}",
            ),
        ],
    );
    let local = dir.path().join("out");
    let (_, stderr) = m.build(&[
        "--sbom=true",
        "--provenance=false",
        "--build-arg",
        "BUILDKIT_SBOM_SCAN_CONTEXT=true",
        "-o",
        &format!("type=local,dest={}", local.display()),
    ]);
    assert!(stderr.contains("packages in stage deps"), "{stderr}");
    let names = |file: &str| -> Vec<String> {
        let statement = json(&fs::read(local.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")));
        assert_eq!(statement["predicateType"], "https://spdx.dev/Document");
        statement["predicate"]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(names("sbom-deps.spdx.json").contains(&"builddep".to_owned()));
    assert!(names("sbom-context.spdx.json").contains(&"left-pad".to_owned()));
    assert!(!local.join("sbom-other.spdx.json").exists());
    assert_valid_spdx(
        dir.path(),
        &json(&fs::read(local.join("sbom-deps.spdx.json")).unwrap())["predicate"],
    );

    // Without --sbom nothing is scanned, whatever the arguments say.
    let plain = dir.path().join("plain");
    m.build(&[
        "--provenance=false",
        "-o",
        &format!("type=local,dest={}", plain.display()),
    ]);
    assert!(!plain.join("sbom-deps.spdx.json").exists());
}
