//! Priority scheduling, as vLLM V1's `--scheduling-policy priority`: waiting requests
//! are admitted in order of `(priority, arrival, id)` (lower priority values first),
//! and when KV runs short the victim is the running request with the largest
//! `(priority, arrival)` (`vllm/v1/core/sched/scheduler.py` and `request_queue.py`,
//! 0.9–0.11). Admission does not preempt running requests: a high-priority arrival
//! waits for a free slot like any other, but takes it first.

use super::fcfs::{admit_while, schedule_running};
use super::{Registration, Scheduler, StepBuilder, Victim};

/// The registration.
pub const REGISTRATION: Registration = Registration {
    name: "priority",
    doc: "lowest priority value first, then arrival; victim: lowest priority (vLLM's `priority`)",
    uses_predictor: false,
    build: |c, _| {
        Box::new(Priority {
            victim: c.victim.unwrap_or(Victim::LowestPriority),
        })
    },
};

/// Priority scheduling.
#[derive(Debug, Clone)]
pub struct Priority {
    /// Preemption victim.
    pub victim: Victim,
}

impl Scheduler for Priority {
    fn name(&self) -> &str {
        "priority"
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        let v = self.victim;
        schedule_running(s, |s| v.pick(s));
        admit_while(s, |s| {
            s.waiting()
                .min_by_key(|r| (r.priority, r.arrival, r.id))
                .map(|r| r.handle)
        });
    }
}
