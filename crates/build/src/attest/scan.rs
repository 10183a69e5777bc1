//! BuildKit's `BUILDKIT_SBOM_SCAN_STAGE` and `BUILDKIT_SBOM_SCAN_CONTEXT`: with `--sbom`, SBOMs
//! of builder stages and of the build context besides the final image's.
//!
//! As BuildKit's Dockerfile frontend decides it: an argument counts only where the Dockerfile
//! declares it (`ARG BUILDKIT_SBOM_SCAN_STAGE[=…]` before the first `FROM`, which applies to
//! every stage, or in a stage); `--build-arg` overrides a declared one's default. Its value is
//! `true`, `false`, or a comma-separated list of stage names the stage must be in. Stages
//! scanned are the ones the target builds on (never a stage that is not built), the target
//! itself excluded (its image has the main SBOM); the context is scanned when the target says
//! so. Each scan is an SPDX statement of its own, `sbom-NAME.spdx.json` (`sbom-context…` for
//! the context), attached beside the image's `sbom.spdx.json`, as BuildKit's scanner
//! protocol names them.

use stagecraft_dockerfile::Dockerfile;
use stagecraft_dockerfile::{Command, CommandKind, Stage};
use std::collections::BTreeMap;

/// The argument that asks for stage scans.
pub(crate) const SCAN_STAGE: &str = "BUILDKIT_SBOM_SCAN_STAGE";
/// The argument that asks for a scan of the build context.
pub(crate) const SCAN_CONTEXT: &str = "BUILDKIT_SBOM_SCAN_CONTEXT";

/// Which extra SBOMs a build asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScanTargets {
    /// Stage names (`stage-N` for unnamed ones) whose file systems are scanned, if built.
    pub(crate) stages: Vec<String>,
    /// Whether the build context is scanned.
    pub(crate) context: bool,
}

/// What `dockerfile` and `build_args` ask for when `target` (a stage name; the last stage
/// when `None`) is built. A Dockerfile that does not parse into stages asks for nothing (the
/// build reports it).
pub(crate) fn targets(
    dockerfile: &Dockerfile,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
) -> ScanTargets {
    let Ok(stages) = dockerfile.stages() else {
        return ScanTargets::default();
    };
    let declared = |commands: &[Command], name: &str| {
        commands
            .iter()
            .rev()
            .find_map(|command| match &command.kind {
                CommandKind::Arg(declarations) => declarations
                    .iter()
                    .rev()
                    .find(|d| d.name == name)
                    .map(|d| build_args.get(name).cloned().or(d.default.clone())),
                _ => None,
            })
    };
    let value = |stage: &Stage, name: &str| -> Option<String> {
        declared(&stage.commands, name)
            .or_else(|| declared(&stages.meta_args, name))
            .flatten()
    };
    let display = |stage: &Stage| {
        stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", stage.index))
    };
    let target = match target {
        Some(target) => target.to_lowercase(),
        None => stages.stages.last().map(display).unwrap_or_default(),
    };
    let mut targets = ScanTargets::default();
    for stage in &stages.stages {
        let name = display(stage);
        if name == target {
            targets.context = value(stage, SCAN_CONTEXT).is_some_and(|v| enabled(&v, &name));
        } else if value(stage, SCAN_STAGE).is_some_and(|v| enabled(&v, &name)) {
            targets.stages.push(name);
        }
    }
    targets
}

/// Whether an argument's value enables the scan for the stage `name`.
fn enabled(value: &str, name: &str) -> bool {
    match crate::inputs::parse_go_bool(value) {
        Some(flag) => flag,
        None => value.split(',').any(|listed| listed.trim() == name),
    }
}

/// The SBOM statements of the stages and context `targets` names, for one platform's build
/// (`outcome`): `(file name, statement)` each, `sbom-NAME.spdx.json`. A stage that was not
/// built, or whose layers this store has not unpacked (a cache hit imported lazily), is left
/// out with a note on `progress`.
pub(crate) fn extra_sboms(
    store: &stagecraft_store::Store,
    request: &crate::session::BuildRequest<'_>,
    outcome: &stagecraft_solve::BuildOutcome,
    targets: &ScanTargets,
    progress: &dyn stagecraft_solve::progress::ProgressSink,
) -> crate::error::Result<Vec<(String, stagecraft_image::intoto::Statement)>> {
    use stagecraft_sbom::spdx::{Document, DocumentInfo, LayerInfo};
    let note = |message: String| {
        progress.event(stagecraft_solve::progress::Event::Info {
            message,
            context_files: None,
        });
    };
    let failed = |what: &str, message: String| crate::error::Error::Attestation {
        what: format!("the SBOM of {what}"),
        message,
    };
    let created = match request.options.source_date_epoch {
        Some(secs) => stagecraft_image::Timestamp::from_unix(secs, 0),
        None => stagecraft_image::Timestamp::now(),
    }
    .ok_or_else(|| failed("the build", "the clock is before 1970".into()))?;
    let document = |catalog: &stagecraft_sbom::Catalog, name: &str, layers: &[LayerInfo]| {
        Document::new(
            catalog,
            &DocumentInfo {
                name,
                digest: None,
                created,
                tool_version: env!("CARGO_PKG_VERSION"),
                layers,
            },
        )
        .statement(Vec::new())
    };
    let mut statements = Vec::new();
    for stage in &targets.stages {
        let Some(report) = outcome
            .stages
            .iter()
            .find(|r| &r.name == stage && r.outcome != stagecraft_solve::StageOutcome::Skipped)
        else {
            note(format!(
                "sbom: {SCAN_STAGE} names stage {stage}, which this build does not build: not scanned"
            ));
            continue;
        };
        let snapshots: Option<Vec<_>> = report
            .layers
            .iter()
            .map(|layer| store.snapshot_path(&layer.diff_id))
            .collect();
        let Some(snapshots) = snapshots else {
            note(format!(
                "sbom: stage {stage} came from a cache whose layers are not unpacked here: not scanned"
            ));
            continue;
        };
        let fs = stagecraft_imagefs::LayeredFs::new(snapshots);
        let catalog = stagecraft_sbom::catalog(&fs)
            .map_err(|e| failed(&format!("stage {stage}"), e.to_string()))?;
        let layers: Vec<LayerInfo> = report
            .layers
            .iter()
            .map(|layer| LayerInfo {
                diff_id: Some(layer.diff_id.clone()),
                created_by: Some(layer.created_by.clone()).filter(|c| !c.is_empty()),
            })
            .collect();
        note(format!(
            "sbom: {} packages in stage {stage} ({}, {})",
            catalog.packages.len(),
            outcome.platform,
            SCAN_STAGE
        ));
        statements.push((
            format!("sbom-{stage}.spdx.json"),
            document(&catalog, &format!("stage {stage}"), &layers),
        ));
    }
    if targets.context {
        let fs = stagecraft_imagefs::DirFs::new(&request.options.context_dir);
        let catalog = stagecraft_sbom::catalog(&fs)
            .map_err(|e| failed("the build context", e.to_string()))?;
        note(format!(
            "sbom: {} packages in the build context ({SCAN_CONTEXT})",
            catalog.packages.len()
        ));
        statements.push((
            "sbom-context.spdx.json".to_owned(),
            document(&catalog, "context", &[]),
        ));
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Dockerfile {
        stagecraft_dockerfile::parse_str("Dockerfile", text).unwrap()
    }

    #[test]
    fn declared_arguments_choose_the_stages_and_the_context() {
        let file = parse(
            "FROM busybox AS deps\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nRUN true\n\
             FROM busybox AS build\nRUN true\n\
             FROM busybox AS final\nARG BUILDKIT_SBOM_SCAN_CONTEXT=true\nCOPY --from=build / /\n",
        );
        let none = BTreeMap::new();
        assert_eq!(
            targets(&file, &none, None),
            ScanTargets {
                stages: vec!["deps".into()],
                context: true
            }
        );
        // --build-arg overrides a declared default, and never declares one.
        let mut args = BTreeMap::new();
        args.insert(SCAN_STAGE.to_owned(), "false".to_owned());
        args.insert(SCAN_CONTEXT.to_owned(), "false".to_owned());
        assert_eq!(targets(&file, &args, Some("final")), ScanTargets::default());
    }

    #[test]
    fn a_global_argument_applies_to_every_stage_and_a_list_names_them() {
        let file = parse(
            "ARG BUILDKIT_SBOM_SCAN_STAGE\nFROM busybox AS a\nFROM busybox AS b\nFROM busybox\n",
        );
        let mut args = BTreeMap::new();
        args.insert(SCAN_STAGE.to_owned(), "b".to_owned());
        assert_eq!(targets(&file, &args, None).stages, ["b"]);
        args.insert(SCAN_STAGE.to_owned(), "true".to_owned());
        assert_eq!(targets(&file, &args, None).stages, ["a", "b"]);
        assert!(targets(&file, &BTreeMap::new(), None).stages.is_empty());
    }
}
