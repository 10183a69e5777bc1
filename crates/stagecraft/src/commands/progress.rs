//! Renders build progress: `plain` lines like `docker build --progress=plain`, `json` events
//! (one object per line), and `tty`, a live view with a spinner per running step.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use stagecraft_solve::progress::{Event, ProgressSink, StepStatus};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

/// `--progress` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// Live view.
    Tty,
    /// One line per event, with command output.
    Plain,
    /// JSON lines.
    Json,
    /// Nothing (buildx's `none` too).
    #[value(alias = "none")]
    Quiet,
}

/// What the end of a build reports: one line in the `plain` and `tty` views, the final event
/// of `json` progress, nothing when `quiet`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct BuildSummary {
    /// The image ID (config digest).
    pub image_id: String,
    /// The digest others know the image by (pushed, or in an OCI layout; else the image ID).
    pub digest: String,
    /// The tags set.
    pub tags: Vec<String>,
    /// What each output made.
    pub outputs: Vec<String>,
    /// Wall time of the build, in seconds.
    pub seconds: f64,
    /// Steps that ran.
    pub steps_run: usize,
    /// Steps that came from the cache.
    pub steps_cached: usize,
    /// Stages built, cached and skipped.
    pub stages_built: usize,
    /// See `stages_built`.
    pub stages_cached: usize,
    /// See `stages_built`.
    pub stages_skipped: usize,
    /// Layers of the image.
    pub layers: usize,
    /// Their size in bytes (uncompressed tar).
    pub size: u64,
}

/// A progress sink writing to standard error.
pub(crate) struct Renderer {
    mode: ProgressMode,
    state: Mutex<RenderState>,
}

#[derive(Default)]
struct RenderState {
    names: HashMap<usize, String>,
    bars: HashMap<usize, ProgressBar>,
    multi: Option<MultiProgress>,
    /// Every step that ran, with why the cache missed, in the order they finished.
    misses: Vec<(String, String)>,
}

impl Renderer {
    /// A renderer for `mode` (`auto` resolved against standard error).
    pub(crate) fn new(mode: ProgressMode) -> Renderer {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        };
        let state = RenderState {
            multi: (mode == ProgressMode::Tty).then(MultiProgress::new),
            ..RenderState::default()
        };
        Renderer {
            mode,
            state: Mutex::new(state),
        }
    }

    /// A message of the command itself (an exported cache, a push), shown like the engine's.
    pub(crate) fn info(&self, message: String) {
        self.event(Event::Info {
            message,
            context_files: None,
        });
    }

    /// The end of a build: its summary line, or in `json` mode a last event with everything
    /// in it (every line of that stream stays JSON).
    pub(crate) fn finish(&self, summary: &BuildSummary) {
        let mut err = std::io::stderr().lock();
        let _ = match self.mode {
            ProgressMode::Quiet => Ok(()),
            ProgressMode::Json => {
                let mut event = serde_json::json!({ "event": "build_finished" });
                if let (Some(fields), Ok(serde_json::Value::Object(more))) =
                    (event.as_object_mut(), serde_json::to_value(summary))
                {
                    fields.extend(more);
                }
                writeln!(err, "{}", with_time(event))
            }
            _ => writeln!(
                err,
                "built {} in {:.2}s: {} steps run, {} cached; stages: {} built, {} cached, {} skipped; {} layers, {}",
                summary
                    .image_id
                    .trim_start_matches("sha256:")
                    .get(..12)
                    .unwrap_or_default(),
                summary.seconds,
                summary.steps_run,
                summary.steps_cached,
                summary.stages_built,
                summary.stages_cached,
                summary.stages_skipped,
                summary.layers,
                super::human_bytes(summary.size),
            ),
        };
    }

    /// `--explain`: every step that ran and the input that made its cache miss, one line each
    /// (JSON progress carries the same in its events' `miss_reason`).
    pub(crate) fn explanations(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.misses.is_empty() {
            return "cache: every step came from the cache\n".to_owned();
        }
        let count = state.misses.len();
        let mut out = format!(
            "cache: {count} step{} ran\n",
            if count == 1 { "" } else { "s" }
        );
        for (label, reason) in &state.misses {
            out.push_str(&format!("  {label}\n    because: {reason}\n"));
        }
        out
    }

    /// The `[stage i/n] instruction` label of step `id` ([`ProgressSink::event`] records it
    /// when the step starts).
    fn label(state: &RenderState, id: usize) -> String {
        state.names.get(&id).cloned().unwrap_or_default()
    }

    fn plain(&self, state: &RenderState, event: &Event) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::StepStarted { id, .. } => writeln!(err, "#{id} {}", Self::label(state, *id)),
            Event::Log { id, line, .. } => writeln!(err, "#{id} {line}"),
            Event::StepFinished {
                id,
                status,
                duration,
                miss_reason,
            } => match status {
                StepStatus::Cached => writeln!(err, "#{id} CACHED"),
                ran => {
                    if let Some(reason) = miss_reason {
                        let _ = writeln!(err, "#{id} cache miss: {reason}");
                    }
                    let seconds = duration.as_secs_f64();
                    if *ran == StepStatus::Failed {
                        writeln!(err, "#{id} ERROR after {seconds:.1}s")
                    } else {
                        writeln!(err, "#{id} DONE {seconds:.1}s")
                    }
                }
            },
            Event::StageSkipped { stage, reason } => {
                writeln!(err, "#0 [{stage}] SKIPPED ({reason})")
            }
            Event::Info { message, .. } => writeln!(err, "#0 {message}"),
        };
    }

    fn tty(&self, state: &mut RenderState, event: &Event) {
        let Some(multi) = state.multi.clone() else {
            return;
        };
        match event {
            Event::StepStarted { id, .. } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(Self::label(state, *id));
                bar.enable_steady_tick(Duration::from_millis(100));
                state.bars.insert(*id, bar);
            }
            Event::Log { id, line, .. } => {
                if let Some(bar) = state.bars.get(id) {
                    let label = Self::label(state, *id);
                    bar.set_message(format!("{label}  {}", truncate(line, 60)));
                }
            }
            Event::StepFinished {
                id,
                status,
                duration,
                ..
            } => {
                let label = Self::label(state, *id);
                if let Some(bar) = state.bars.remove(id) {
                    let mark = match status {
                        StepStatus::Cached => "CACHED".to_owned(),
                        StepStatus::Done => format!("{:.1}s", duration.as_secs_f64()),
                        StepStatus::Failed => "ERROR".to_owned(),
                    };
                    let sign = if *status == StepStatus::Failed {
                        "✘"
                    } else {
                        "✔"
                    };
                    bar.set_style(
                        ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.finish_with_message(format!("{sign} {label}  {mark}"));
                }
            }
            Event::StageSkipped { stage, reason } => {
                let _ = multi.println(format!("- [{stage}] skipped ({reason})"));
            }
            // The context counts are a debug aid: the live view leaves them out.
            Event::Info {
                context_files: Some(_),
                ..
            } => {}
            Event::Info { message, .. } => {
                let _ = multi.println(message);
            }
        }
    }
}

/// A JSON progress event with the time it happened (RFC 3339, UTC), as its first field.
fn with_time(event: serde_json::Value) -> serde_json::Value {
    let time = stagecraft_image::Timestamp::now()
        .map(|t| t.to_string())
        .unwrap_or_default();
    match event {
        serde_json::Value::Object(fields) => {
            let mut timed = serde_json::Map::new();
            timed.insert("time".to_owned(), serde_json::Value::String(time));
            timed.extend(fields);
            serde_json::Value::Object(timed)
        }
        other => other,
    }
}

fn truncate(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        line.chars().take(max).collect::<String>() + "…"
    }
}

impl ProgressSink for Renderer {
    fn event(&self, event: Event) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Event::StepStarted {
            id,
            stage,
            index,
            total,
            name,
        } = &event
        {
            let label = format!("[{stage} {index}/{total}] {name}");
            state.names.insert(*id, label);
        }
        if let Event::StepFinished {
            id,
            status: StepStatus::Done,
            miss_reason: Some(reason),
            ..
        } = &event
        {
            let label = Self::label(&state, *id);
            state.misses.push((label, reason.clone()));
        }
        match self.mode {
            ProgressMode::Plain | ProgressMode::Auto => self.plain(&state, &event),
            ProgressMode::Tty => self.tty(&mut state, &event),
            ProgressMode::Json => {
                if let Ok(value) = serde_json::to_value(&event) {
                    let _ = writeln!(std::io::stderr().lock(), "{}", with_time(value));
                }
            }
            ProgressMode::Quiet => {}
        }
    }
}
