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
pub enum ProgressMode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// Live view.
    Tty,
    /// One line per event, with command output.
    Plain,
    /// JSON lines.
    Json,
    /// Nothing.
    Quiet,
}

/// A progress sink writing to standard error.
pub struct Renderer {
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
    pub fn new(mode: ProgressMode) -> Renderer {
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

    /// `--explain`: every step that ran and the input that made its cache miss, one line each
    /// (JSON progress carries the same in its events' `miss_reason`).
    pub fn explanations(&self) -> String {
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
                if let Ok(line) = serde_json::to_string(&event) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
            ProgressMode::Quiet => {}
        }
    }
}
