//! One run per step key at a time: when two graphs of a build reach the same step (a
//! `FROM --platform=$BUILDPLATFORM` stage every target platform needs, or two stages with the
//! same instructions), one runs it and the others take its result, as BuildKit's solver merges
//! vertices with equal digests.

use crate::outcome::LayerRef;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

/// A step's result as the runs waiting for it take it: the layer and its snapshot.
pub(crate) type StepResult = (LayerRef, PathBuf);

/// The step keys being run now, with the runs waiting on each.
#[derive(Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<String, Arc<Flight>>>,
}

/// One step key being run.
#[derive(Default)]
struct Flight {
    /// `None` while it runs; then the result, or `Some(None)` when it failed.
    outcome: Mutex<Option<Option<StepResult>>>,
    landed: Condvar,
}

/// What [`Flights::join`] gives: the duty to run the step, or the result of the run that had it.
pub(crate) enum Joined<'a> {
    /// Nobody runs this key: run it and [`Leader::land`] the result.
    Leader(Leader<'a>),
    /// Another run made this result while this one waited.
    Follower(StepResult),
}

/// The duty to run a step; dropping it without landing tells the waiting runs it failed, and
/// they then try it themselves (and usually fail alike, or stop because the build failed).
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    flight: Arc<Flight>,
    result: Option<StepResult>,
}

impl Flights {
    /// Joins the runs of `key`: leads it when nobody runs it, else waits for the one that does.
    pub(crate) fn join(&self, key: &str) -> Joined<'_> {
        loop {
            let flight = {
                let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                match running.get(key) {
                    Some(flight) => flight.clone(),
                    None => {
                        let flight = Arc::new(Flight::default());
                        running.insert(key.to_owned(), flight.clone());
                        return Joined::Leader(Leader {
                            flights: self,
                            key: key.to_owned(),
                            flight,
                            result: None,
                        });
                    }
                }
            };
            let mut outcome = flight.outcome.lock().unwrap_or_else(|e| e.into_inner());
            while outcome.is_none() {
                outcome = flight
                    .landed
                    .wait(outcome)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if let Some(Some(result)) = &*outcome {
                return Joined::Follower(result.clone());
            }
            // The leader failed: try again, leading this time unless another run already does.
        }
    }
}

impl Leader<'_> {
    /// Records the step's result for the runs waiting on it (handed over on drop).
    pub(crate) fn land(&mut self, result: StepResult) {
        self.result = Some(result);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Out of the table first, so that a run arriving from now on looks in the cache (or
        // leads again after a failure) instead of waiting on a flight that has ended.
        self.flights
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        *self
            .flight
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(self.result.take());
        self.flight.landed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagecraft_image::Digest;

    /// Returns once `followers` runs hold the flight (the table and the leader hold the
    /// others): they then wait for it or see its outcome, whatever happens next.
    fn wait_until_joined(flight: &Arc<Flight>, followers: usize) {
        while Arc::strong_count(flight) < 2 + followers {
            std::thread::yield_now();
        }
    }

    fn result(name: &str) -> StepResult {
        let digest = Digest::of(name.as_bytes());
        (
            LayerRef {
                diff_id: digest.clone(),
                media_type: String::new(),
                digest,
                size: 0,
                uncompressed_size: None,
                created_by: name.to_owned(),
                created: None,
            },
            PathBuf::from(name),
        )
    }

    #[test]
    fn a_waiting_run_takes_the_leaders_result() {
        let flights = Flights::default();
        let Joined::Leader(mut leader) = flights.join("k") else {
            panic!("the first run must lead");
        };
        std::thread::scope(|scope| {
            let follower = scope.spawn(|| match flights.join("k") {
                Joined::Follower(result) => result,
                Joined::Leader(_) => panic!("a second run must wait for the first"),
            });
            wait_until_joined(&leader.flight, 1);
            leader.land(result("made once"));
            drop(leader);
            assert_eq!(follower.join().unwrap(), result("made once"));
        });
        // The flight is over: the next run leads (and will find the cache record).
        assert!(matches!(flights.join("k"), Joined::Leader(_)));
    }

    #[test]
    fn after_a_failed_leader_a_waiting_run_leads() {
        let flights = Flights::default();
        let Joined::Leader(leader) = flights.join("k") else {
            panic!("the first run must lead");
        };
        std::thread::scope(|scope| {
            let follower = scope.spawn(|| matches!(flights.join("k"), Joined::Leader(_)));
            wait_until_joined(&leader.flight, 1);
            drop(leader);
            assert!(follower.join().unwrap());
        });
    }

    #[test]
    fn different_keys_do_not_wait_for_each_other() {
        let flights = Flights::default();
        let _a = flights.join("a");
        assert!(matches!(flights.join("b"), Joined::Leader(_)));
    }
}
