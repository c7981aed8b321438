//! Longest prefix match, as SGLang's `--schedule-policy lpm`: waiting requests are
//! admitted in order of the prompt prefix the instance's cache already holds (most
//! cached blocks first, then queue order), so requests that share a cached prefix
//! run while it is still cached (python/sglang/srt/managers/schedule_policy.py,
//! `CacheAwarePolicy.LPM`). As in SGLang, a waiting queue longer than 128 falls back
//! to FCFS (sorting it would cost more than it saves). The signal is the instance's
//! prefix cache (`Instance::cached_prefix_blocks`): with the cache off, or prompts
//! without a shared prefix, it is FCFS. Running requests are handled as FCFS does.

use super::fcfs::{admit_while, schedule_running};
use super::{Registration, Scheduler, StepBuilder, Victim};
use std::cmp::Reverse;

/// SGLang's threshold: above this many waiting requests, FCFS.
pub const LPM_MAX_QUEUE: usize = 128;

/// The registration.
pub const REGISTRATION: Registration = Registration {
    name: "lpm",
    doc: "longest cached prefix first, then queue order; FCFS above 128 waiting (SGLang's `lpm`)",
    uses_predictor: false,
    build: |c, _| {
        Box::new(Lpm {
            victim: c.victim.unwrap_or(Victim::Newest),
        })
    },
};

/// Longest-prefix-match scheduling.
#[derive(Debug, Clone)]
pub struct Lpm {
    /// Preemption victim.
    pub victim: Victim,
}

impl Scheduler for Lpm {
    fn name(&self) -> &str {
        "lpm"
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        let v = self.victim;
        schedule_running(s, |s| v.pick(s));
        admit_while(s, |s| {
            if s.waiting_len() > LPM_MAX_QUEUE {
                return s.front_handle();
            }
            s.waiting()
                .enumerate()
                .min_by_key(|(i, r)| (Reverse(s.cached_prefix_blocks(r.handle)), *i))
                .map(|(_, r)| r.handle)
        });
    }
}
