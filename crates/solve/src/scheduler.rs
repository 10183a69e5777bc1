//! Stage scheduling: one thread per needed stage, each waiting for the stages it needs, every
//! stage stopping at its next step once another one failed.

use crate::convert::dispatch::changes_filesystem;
use crate::outcome::{BuildError, StageOutcome};
use crate::progress::{Event, SkipReason};
use crate::state::{BuildRun, StageState, StepCtx};
use stagecraft_plan::Base;
use std::sync::{Arc, Mutex};

impl BuildRun<'_> {
    /// Waits for a stage this one needs.
    pub(crate) fn wait_for(&self, index: usize) -> Result<Arc<StageState>, BuildError> {
        // The plan schedules the stages the Dockerfile's own instructions need; an ONBUILD
        // trigger of a base image may name one nothing else needs, and nobody would run it.
        if !self.plan.stages[index].needed {
            return Err(BuildError::OnbuildOnlyStage(
                self.plan.stages[index].display_name.clone(),
            ));
        }
        let slot = &self.results[index];
        let mut result = slot.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*result {
                Some(Ok(state)) => return Ok(state.clone()),
                Some(Err(())) => return Err(BuildError::Cancelled),
                None => {
                    result = slot
                        .finished
                        .wait(result)
                        .unwrap_or_else(|e| e.into_inner())
                }
            }
        }
    }

    /// A stage thread's whole life: runs stage `index`, reports a failure (the first one stops
    /// every other stage, of every platform) and puts the result where waiting stages find it.
    pub(crate) fn run_stage_to_slot(&self, index: usize, errors: &Mutex<Vec<BuildError>>) {
        let result = self.run_stage(index);
        let stage = self.stage_label(index);
        match &result {
            Err(BuildError::Cancelled) => {
                self.engine.progress.event(Event::StageSkipped {
                    stage,
                    reason: SkipReason::AfterFailure {
                        failed_stage: self.failed_stage().unwrap_or_default(),
                    },
                });
            }
            Err(_) => {
                let mut failed = self.shared.failed.lock().unwrap_or_else(|e| e.into_inner());
                failed.get_or_insert(stage);
            }
            Ok(_) => {}
        }
        let slot = &self.results[index];
        *slot.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(match result {
            Ok(state) => Ok(Arc::new(state)),
            Err(error) => {
                errors.lock().unwrap_or_else(|e| e.into_inner()).push(error);
                Err(())
            }
        });
        slot.finished.notify_all();
    }

    pub(crate) fn failed_stage(&self) -> Option<String> {
        self.shared
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn run_stage(&self, index: usize) -> Result<StageState, BuildError> {
        let stage = &self.plan.stages[index];
        // A stage a named context replaces runs none of its instructions.
        let commands: &[_] = if stage.replaced {
            &[]
        } else {
            &stage.stage.commands
        };
        // Steps are numbered as BuildKit numbers them: the base image (or named context),
        // then every instruction that changes the filesystem.
        let fs_steps = commands
            .iter()
            .filter(|c| changes_filesystem(&c.kind))
            .count();
        let from_step = matches!(stage.base, Base::Image(_) | Base::Context(_));
        // The `FROM` step is announced before the image, and so its ONBUILD triggers, is
        // known: its total leaves the triggers out.
        let mut total = fs_steps + usize::from(from_step);
        let mut position = usize::from(from_step);
        let no_cache = self.options.no_cache
            || self
                .options
                .no_cache_filter
                .iter()
                .any(|name| stage.stage.name.as_deref() == Some(name.to_lowercase().as_str()));
        let at = StepCtx {
            stage: index,
            position: 1,
            total,
            line: stage.stage.location.start_line,
            no_cache,
        };
        let (mut state, ran_base) = self.base_state(index, at)?;
        let triggers = if stage.replaced {
            // BuildKit clears the triggers of the image that replaces a stage: they never run.
            state.config.config.on_build.clear();
            Vec::new()
        } else {
            self.onbuild_triggers(index, &mut state)?
        };
        total += triggers
            .iter()
            .filter(|(_, c)| changes_filesystem(&c.kind))
            .count();
        let mut ran_any = ran_base;
        let own = commands.iter().map(|command| (None, command));
        let triggered = triggers
            .iter()
            .map(|(expression, command)| (Some(expression.as_str()), command));
        for (trigger, command) in triggered.chain(own) {
            if self.failed_stage().is_some() {
                return Err(BuildError::Cancelled);
            }
            if changes_filesystem(&command.kind) {
                position += 1;
            }
            let ctx = StepCtx {
                stage: index,
                position,
                total,
                line: command.location.start_line,
                no_cache,
            };
            let ran = self
                .dispatch(ctx, command, &mut state)
                .map_err(|error| match (trigger, error) {
                    // The error points at `FROM`; say which trigger it came from.
                    (Some(expression), BuildError::Step(e)) => BuildError::Step(
                        e.with_hint(format!("the ONBUILD trigger {expression:?} of this stage's base failed: the base declares it to run in every build FROM it")),
                    ),
                    (_, error) => error,
                })?;
            // Whatever layers the instruction made are its own (an ONBUILD trigger's point at
            // the stage's FROM, as its errors do).
            let made = state.layers.len() - state.layer_sources.len();
            state
                .layer_sources
                .extend(std::iter::repeat_n(Some(command.location.span), made));
            ran_any |= ran;
        }
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner())[index] = if ran_any {
            StageOutcome::Built
        } else {
            StageOutcome::Cached
        };
        Ok(state)
    }
}
