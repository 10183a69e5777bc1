//! Build progress as a stream of events. The engine emits them; the CLI renders them (a live
//! terminal view, plain lines like `docker build --progress=plain`, or JSON lines).

use std::time::Duration;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// It ran and succeeded.
    Done,
    /// Its result came from the cache.
    Cached,
    /// It ran and failed.
    Failed,
}

/// Why a stage is not built. Distinct from a cache hit: a skipped stage's steps neither ran
/// nor came from the cache, and progress says so instead of showing them as `CACHED`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The target does not depend on it.
    NotNeeded,
    /// Another stage failed first; the build stopped this one before its next step.
    AfterFailure {
        /// The stage that failed.
        failed_stage: String,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotNeeded => f.write_str("not needed for the target"),
            SkipReason::AfterFailure { failed_stage } => {
                write!(f, "stopped: stage {failed_stage} failed")
            }
        }
    }
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step is starting. `id` numbers steps across the build, like BuildKit's `#N`.
    StepStarted {
        /// Build-wide step number.
        id: usize,
        /// Stage display name.
        stage: String,
        /// 1-based position in the stage.
        index: usize,
        /// Steps in the stage.
        total: usize,
        /// The instruction, variables expanded (`RUN make`).
        name: String,
    },
    /// A line of output from a running step.
    Log {
        /// The step.
        id: usize,
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A step ended.
    StepFinished {
        /// The step.
        id: usize,
        /// How.
        status: StepStatus,
        /// Wall time.
        #[serde(serialize_with = "seconds")]
        duration: Duration,
        /// Why the cache missed (which input changed), when it ran.
        #[serde(skip_serializing_if = "Option::is_none")]
        miss_reason: Option<String>,
    },
    /// A stage is not built (or not finished): see `reason`.
    StageSkipped {
        /// Stage display name.
        stage: String,
        /// Why.
        reason: SkipReason,
    },
    /// Informational message (pulling a base image, exporting, …).
    Info {
        /// The message.
        message: String,
    },
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Receives events; must be cheap and thread-safe (stages run in parallel).
pub trait ProgressSink: Send + Sync {
    /// Handles one event.
    fn event(&self, event: Event);
}

impl<F: Fn(Event) + Send + Sync> ProgressSink for F {
    fn event(&self, event: Event) {
        self(event)
    }
}
