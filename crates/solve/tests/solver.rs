//! The solver without namespaces: a fake runner that records what it is asked to run and writes
//! one file per command into the step's layer, a base-image source that has none (every stage
//! starts `FROM scratch`). Scheduling, cancellation, cache hits and misses, and the sharing of a
//! step between the platforms of one build are checked on what the engine asks and reports.

use stagecraft_exec::{ExecError, ExecSpec, ExitStatus, Rootfs, Run, Stream};
use stagecraft_image::Platform;
use stagecraft_solve::progress::{Event, SkipReason, StepStatus};
use stagecraft_solve::{
    BaseImageError, BaseImages, BuildError, BuildOptions, BuildOutcome, Engine, OciLayoutRef,
};
use stagecraft_store::{Image, Store};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Base images: none (these builds start from scratch).
struct NoImages;

impl BaseImages for NoImages {
    fn resolve(&self, reference: &str, _: &Platform) -> Result<Image, BaseImageError> {
        Err(BaseImageError::Reference(
            format!("{reference}: this test has no images").into(),
        ))
    }

    fn resolve_layout(
        &self,
        layout: &OciLayoutRef,
        _: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("{layout:?}: this test has no images").into())
    }
}

/// Runs nothing: records each command (the script of `sh -c`, variables expanded) and writes it
/// into the file `/out-<first word>` of the step's layer. A script `fail` exits 1; a script
/// `meet N` waits until N of them run at once, so a test can tell parallel stages from serial
/// ones.
#[derive(Default)]
struct FakeRunner {
    calls: Mutex<Vec<String>>,
    meeting: Mutex<usize>,
    met: Condvar,
}

impl FakeRunner {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until `count` callers are here; false if they never all arrive (a serial
    /// schedule), bounded so that such a schedule fails the test instead of hanging it.
    fn meet(&self, count: usize) -> bool {
        let mut here = self.meeting.lock().unwrap();
        *here += 1;
        self.met.notify_all();
        let (_here, waited) = self
            .met
            .wait_timeout_while(here, Duration::from_secs(20), |here| *here < count)
            .unwrap();
        !waited.timed_out()
    }
}

impl Run for FakeRunner {
    fn run(
        &self,
        spec: &ExecSpec,
        _: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<ExitStatus, ExecError> {
        // `$NAME` of the step's environment, as the shell would expand it.
        let mut script = spec.args.last().cloned().unwrap_or_default();
        for entry in &spec.env {
            if let Some((name, value)) = entry.split_once('=') {
                script = script.replace(&format!("${name}"), value);
            }
        }
        self.calls.lock().unwrap().push(script.clone());
        if script == "fail" {
            return Ok(ExitStatus::Code(1));
        }
        if let Some(count) = script
            .split_whitespace()
            .nth(1)
            .filter(|_| script.starts_with("meet "))
            && !self.meet(count.parse().unwrap())
        {
            return Ok(ExitStatus::Code(2));
        }
        let Rootfs::Overlay { upper_dir, .. } = &spec.rootfs else {
            return Err(ExecError::InvalidSpec("the engine runs on overlays".into()));
        };
        let name = script.split_whitespace().next().unwrap_or("empty");
        std::fs::write(upper_dir.join(format!("out-{name}")), &script)
            .map_err(|e| ExecError::Setup(e.to_string()))?;
        Ok(ExitStatus::Code(0))
    }
}

/// A store, a context directory and the fakes, with the events of the last build.
struct Bench {
    dir: tempfile::TempDir,
    store: Store,
    runner: FakeRunner,
    events: Mutex<Vec<Event>>,
}

impl Bench {
    fn new(context: &[(&str, &str)]) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("context")).unwrap();
        for (path, content) in context {
            std::fs::write(dir.path().join("context").join(path), content).unwrap();
        }
        let store = Store::open(dir.path().join("store")).unwrap();
        Bench {
            dir,
            store,
            runner: FakeRunner::default(),
            events: Mutex::new(Vec::new()),
        }
    }

    fn build_platforms(
        &self,
        dockerfile: &str,
        platforms: &[Platform],
    ) -> Result<Vec<BuildOutcome>, BuildError> {
        self.events.lock().unwrap().clear();
        let file = stagecraft_dockerfile::parse_str("Dockerfile", dockerfile).unwrap();
        let progress = |event: Event| self.events.lock().unwrap().push(event);
        let engine = Engine {
            store: &self.store,
            base_images: &NoImages,
            runner: &self.runner,
            progress: &progress,
            cache_blobs: None,
        };
        let options = BuildOptions {
            context_dir: self.dir.path().join("context"),
            ..BuildOptions::default()
        };
        engine.build_platforms(&file, &options, platforms)
    }

    fn build(&self, dockerfile: &str) -> Result<BuildOutcome, BuildError> {
        self.build_platforms(dockerfile, &[Platform::host()])
            .map(|mut outcomes| outcomes.remove(0))
    }

    fn write(&self, path: &str, content: &str) {
        std::fs::write(self.dir.path().join("context").join(path), content).unwrap();
    }

    /// The status of every finished step, with the name it started with.
    fn statuses(&self) -> Vec<(String, StepStatus)> {
        let events = self.events.lock().unwrap();
        let name_of = |id: usize| {
            events.iter().find_map(|e| match e {
                Event::StepStarted { id: i, name, .. } if *i == id => Some(name.clone()),
                _ => None,
            })
        };
        events
            .iter()
            .filter_map(|e| match e {
                Event::StepFinished { id, status, .. } => Some((name_of(*id)?, *status)),
                _ => None,
            })
            .collect()
    }
}

/// The content of `name` at the root of the image's top-most layer that has it.
fn file_in(outcome: &BuildOutcome, name: &str) -> Option<String> {
    outcome
        .snapshots
        .iter()
        .rev()
        .find_map(|layer| std::fs::read_to_string(layer.join(name)).ok())
}

const SIMPLE: &str = "FROM scratch\nCOPY a.txt /a.txt\nRUN make-b\n";

#[test]
fn a_rebuild_is_answered_from_the_cache_and_an_edit_reruns_what_depends_on_it() {
    let bench = Bench::new(&[("a.txt", "one")]);
    let first = bench.build(SIMPLE).unwrap();
    assert_eq!((first.steps_run, first.steps_cached), (2, 0));
    assert_eq!(bench.runner.calls(), ["make-b"]);
    assert_eq!(file_in(&first, "out-make-b").as_deref(), Some("make-b"));

    let again = bench.build(SIMPLE).unwrap();
    assert_eq!((again.steps_run, again.steps_cached), (0, 2));
    assert_eq!(bench.runner.calls().len(), 1, "a cached RUN ran again");
    assert_eq!(again.image.manifest_digest, first.image.manifest_digest);

    // The COPY's input changed: it and the RUN on top of it miss.
    bench.write("a.txt", "two");
    let edited = bench.build(SIMPLE).unwrap();
    assert_eq!((edited.steps_run, edited.steps_cached), (2, 0));
    assert_eq!(bench.runner.calls(), ["make-b", "make-b"]);
    assert_ne!(edited.image.manifest_digest, first.image.manifest_digest);
}

#[test]
fn independent_stages_run_at_once_and_the_target_waits_for_both() {
    let bench = Bench::new(&[]);
    let outcome = bench
        .build(
            "FROM scratch AS left\nRUN meet 2\nFROM scratch AS right\nRUN meet 2 right\n\
             FROM scratch\nCOPY --from=left /out-meet /left\nCOPY --from=right /out-meet /right\n",
        )
        .unwrap();
    assert_eq!(file_in(&outcome, "left").as_deref(), Some("meet 2"));
    assert_eq!(file_in(&outcome, "right").as_deref(), Some("meet 2 right"));
}

#[test]
fn a_failed_stage_fails_the_build_and_the_stages_that_need_it_never_run() {
    let bench = Bench::new(&[]);
    let Err(error) = bench.build(
        "FROM scratch AS broken\nRUN fail\nFROM scratch\nCOPY --from=broken /x /x\nRUN after\n",
    ) else {
        panic!("a failing RUN built");
    };
    assert!(
        error.to_string().contains("did not complete successfully"),
        "{error}"
    );
    assert_eq!(
        bench.runner.calls(),
        ["fail"],
        "a stage ran after its input failed"
    );
    let events = bench.events.lock().unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::StageSkipped { stage, reason: SkipReason::AfterFailure { failed_stage } }
                if stage == "stage-1" && failed_stage == "broken"
        )),
        "{events:?}"
    );
}

#[test]
fn a_step_two_platforms_share_runs_once() {
    let bench = Bench::new(&[]);
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let arm64 = Platform::parse("linux/arm64").unwrap();
    let outcomes = bench
        .build_platforms(
            "FROM --platform=$BUILDPLATFORM scratch AS tools\nRUN shared-step\nARG TARGETARCH\nRUN per-target $TARGETARCH\n\
             FROM scratch\nCOPY --from=tools /out-shared-step /out-per-target /\n",
            &[amd64.clone(), arm64.clone()],
        )
        .unwrap();
    let mut calls = bench.runner.calls();
    calls.sort();
    assert_eq!(
        calls,
        ["per-target amd64", "per-target arm64", "shared-step"],
        "the shared step must run once, the per-target one once per platform"
    );
    assert_eq!(outcomes[0].platform, amd64);
    assert_eq!(outcomes[1].platform, arm64);
    assert_eq!(
        file_in(&outcomes[1], "out-per-target").as_deref(),
        Some("per-target arm64")
    );
    assert_eq!(outcomes[1].image.config.architecture, "arm64");
    // The graph that did not run the shared step took its result.
    let shared: Vec<StepStatus> = bench
        .statuses()
        .into_iter()
        .filter(|(name, _)| name == "RUN shared-step")
        .map(|(_, status)| status)
        .collect();
    assert_eq!(shared.len(), 2);
    assert!(shared.contains(&StepStatus::Done) && shared.contains(&StepStatus::Cached));
}
