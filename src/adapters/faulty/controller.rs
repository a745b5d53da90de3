//! The switchboard of a [`FaultyRepository`](super::FaultyRepository): which faults are active,
//! and how many calls it has seen.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::fault::{counter, Effect, Failure, Fault, Operation, Trigger, COUNTED};

/// A cloneable handle that changes what a [`FaultyRepository`](super::FaultyRepository) does,
/// at any time, including while a store using it is serving requests.
///
/// Faults apply to calls that start after [`inject`](Self::inject); a call already waiting out
/// a latency keeps waiting, and a hung call waits until [`clear`](Self::clear).
#[derive(Debug, Clone)]
pub struct FaultController {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    // Bumped by `clear`; hung calls wait for the next bump.
    released: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<ActiveFault>,
    calls: [u64; COUNTED.len()],
}

#[derive(Debug)]
struct ActiveFault {
    fault: Fault,
    matched_calls: u64,
    injected_at: Instant,
}

impl ActiveFault {
    /// Counts a matching call and says whether the fault strikes it.
    fn strikes(&mut self, now: Instant) -> bool {
        self.matched_calls += 1;
        match self.fault.trigger {
            Trigger::EveryCall => true,
            Trigger::NthCall(n) => self.matched_calls == n,
            Trigger::During(duration) => now < self.injected_at + duration,
        }
    }

    fn is_spent(&self, now: Instant) -> bool {
        match self.fault.trigger {
            Trigger::EveryCall => false,
            Trigger::NthCall(n) => self.matched_calls >= n,
            Trigger::During(duration) => now >= self.injected_at + duration,
        }
    }
}

/// What one call must go through before it may reach the inner repository.
#[derive(Debug, Default)]
pub(super) struct CallPlan {
    delay: Duration,
    hang_until_released: Option<watch::Receiver<u64>>,
    failure: Option<Failure>,
}

impl CallPlan {
    /// Waits out the latency and any hang, then says how the call fails, if it does.
    pub(super) async fn run(self) -> Option<Failure> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(mut released) = self.hang_until_released {
            // An error means the controller is gone, and with it any reason to keep hanging.
            let _ = released.changed().await;
        }
        self.failure
    }
}

impl Default for FaultController {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultController {
    /// A controller with no fault: the repository passes every call through.
    pub fn new() -> Self {
        let (released, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                released,
            }),
        }
    }

    /// Makes `fault` active from the next call on. Faults add up: two failures on the same call
    /// fail it once (the first injected wins), latencies are summed.
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(ActiveFault {
            fault,
            matched_calls: 0,
            injected_at: Instant::now(),
        });
    }

    /// Removes every fault and releases every hung call: the database is healthy again.
    /// Call counts are kept.
    pub fn clear(&self) {
        let mut state = self.state();
        state.faults.clear();
        // Under the lock, so a call cannot subscribe between the clear and the release.
        self.shared
            .released
            .send_modify(|generation| *generation += 1);
    }

    /// How many calls of `operation` the repository has seen, failed ones included.
    pub fn calls(&self, operation: Operation) -> u64 {
        counter(operation).map_or(0, |counter| self.state().calls[counter])
    }

    /// How many calls of any operation the repository has seen, failed ones included.
    pub fn total_calls(&self) -> u64 {
        self.state().calls.iter().sum()
    }

    /// Counts a call of `operation` and decides what it goes through.
    pub(super) fn plan(&self, operation: Operation) -> CallPlan {
        let mut state = self.state();
        if let Some(counter) = counter(operation) {
            state.calls[counter] += 1;
        }
        let now = Instant::now();
        let mut plan = CallPlan::default();
        for active in state.faults.iter_mut() {
            if !active.fault.applies_to(operation) || !active.strikes(now) {
                continue;
            }
            match active.fault.effect {
                Effect::Fail(failure) => {
                    plan.failure.get_or_insert(failure);
                }
                Effect::Delay(delay) => plan.delay += delay,
                Effect::Hang => {
                    plan.hang_until_released = Some(self.shared.released.subscribe());
                }
            }
        }
        state.faults.retain(|active| !active.is_spent(now));
        plan
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; the counters and fault list stay usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
