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

    fn plain(&self, state: &mut RenderState, event: &Event) {
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Event::StepStarted {
                id,
                stage,
                index,
                total,
                name,
            } => {
                let label = format!("[{stage} {index}/{total}] {name}");
                state.names.insert(*id, label.clone());
                writeln!(err, "#{id} {label}")
            }
            Event::Log { id, line, .. } => writeln!(err, "#{id} {line}"),
            Event::StepFinished {
                id,
                status,
                duration,
                miss_reason,
            } => match status {
                StepStatus::Cached => writeln!(err, "#{id} CACHED"),
                StepStatus::Done => {
                    if let Some(reason) = miss_reason {
                        let _ = writeln!(err, "#{id} cache miss: {reason}");
                    }
                    writeln!(err, "#{id} DONE {:.1}s", duration.as_secs_f64())
                }
                StepStatus::Failed => {
                    writeln!(err, "#{id} ERROR after {:.1}s", duration.as_secs_f64())
                }
            },
            Event::StageSkipped { stage } => {
                writeln!(err, "#0 [{stage}] SKIPPED (not needed for the target)")
            }
            Event::Info { message, .. } => writeln!(err, "#0 {message}"),
        };
    }

    fn tty(&self, state: &mut RenderState, event: &Event) {
        let Some(multi) = state.multi.clone() else {
            return;
        };
        match event {
            Event::StepStarted {
                id,
                stage,
                index,
                total,
                name,
            } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let label = format!("[{stage} {index}/{total}] {name}");
                bar.set_message(label.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                state.names.insert(*id, label);
                state.bars.insert(*id, bar);
            }
            Event::Log { id, line, .. } => {
                if let Some(bar) = state.bars.get(id) {
                    let label = state.names.get(id).cloned().unwrap_or_default();
                    bar.set_message(format!("{label}  {}", truncate(line, 60)));
                }
            }
            Event::StepFinished {
                id,
                status,
                duration,
                ..
            } => {
                let label = state.names.get(id).cloned().unwrap_or_default();
                if let Some(bar) = state.bars.remove(id) {
                    let mark = match status {
                        StepStatus::Cached => "CACHED".to_owned(),
                        StepStatus::Done => format!("{:.1}s", duration.as_secs_f64()),
                        StepStatus::Failed => "ERROR".to_owned(),
                    };
                    bar.set_style(
                        ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.finish_with_message(format!("✔ {label}  {mark}"));
                }
            }
            Event::StageSkipped { stage } => {
                let _ = multi.println(format!("- [{stage}] skipped (not needed for the target)"));
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
        match self.mode {
            ProgressMode::Plain | ProgressMode::Auto => self.plain(&mut state, &event),
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
