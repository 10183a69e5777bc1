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

impl From<stagecraft_exec::Stream> for Stream {
    fn from(stream: stagecraft_exec::Stream) -> Stream {
        match stream {
            stagecraft_exec::Stream::Stdout => Stream::Stdout,
            stagecraft_exec::Stream::Stderr => Stream::Stderr,
        }
    }
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
        /// The numbers behind the message that ends a build which read context files.
        #[serde(skip_serializing_if = "Option::is_none")]
        context_files: Option<ContextFiles>,
    },
}

/// How a build came by the content hashes of the context files it copied or mounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ContextFiles {
    /// Files read and hashed: new, changed, or changed too recently for the index to vouch for.
    pub hashed: usize,
    /// Files whose hash came from the context index: their stat had not changed.
    pub from_index: usize,
}

impl ContextFiles {
    /// The `Info` event that reports these numbers.
    pub fn event(self) -> Event {
        Event::Info {
            message: format!("context: {self}"),
            context_files: Some(self),
        }
    }
}

/// `1 file hashed, 19,999 from the index`.
impl std::fmt::Display for ContextFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files = if self.hashed == 1 { "file" } else { "files" };
        write!(
            f,
            "{} {files} hashed, {} from the index",
            grouped(self.hashed),
            grouped(self.from_index)
        )
    }
}

/// A count with its thousands separated by commas.
fn grouped(count: usize) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_files_read_as_a_sentence_and_as_json_fields() {
        let counts = ContextFiles {
            hashed: 1,
            from_index: 19_999,
        };
        let event = counts.event();
        let Event::Info { message, .. } = &event else {
            panic!("{event:?}");
        };
        assert_eq!(message, "context: 1 file hashed, 19,999 from the index");
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "event": "info",
                "message": "context: 1 file hashed, 19,999 from the index",
                "context_files": {"hashed": 1, "from_index": 19_999},
            })
        );
        assert_eq!(
            ContextFiles {
                hashed: 1_234_567,
                from_index: 0
            }
            .to_string(),
            "1,234,567 files hashed, 0 from the index"
        );
    }
}
