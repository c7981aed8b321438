//! Preemption victims: which running request gives its KV back when the pool runs
//! short.
//!
//! vLLM V1 preempts the most recently admitted request under FCFS and the one with
//! the lowest priority (largest `(priority, arrival)`) under priority scheduling
//! (`vllm/v1/core/sched/scheduler.py`, `schedule()`, 0.9–0.11). The others are choices
//! for research: the oldest, or the one that holds the fewest blocks (the cheapest to
//! recompute), or the longest predicted remaining output.

use super::{ReqView, StepBuilder};

/// A rule for choosing the preemption victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// The most recently admitted (vLLM FCFS).
    Newest,
    /// The earliest admitted.
    Oldest,
    /// The one holding the fewest KV blocks of its own (ties: the newest).
    FewestBlocks,
    /// The lowest priority: the largest (priority, arrival), ties the newest (vLLM
    /// priority scheduling).
    LowestPriority,
}

impl Victim {
    /// Every rule, in the order of [`Victim::NAMES`].
    pub const ALL: [Victim; 4] = [
        Victim::Newest,
        Victim::Oldest,
        Victim::FewestBlocks,
        Victim::LowestPriority,
    ];

    /// Config names, in order.
    pub const NAMES: &'static [&'static str] = &{
        let mut names = [""; Victim::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = Victim::ALL[i].name();
            i += 1;
        }
        names
    };

    /// The rule named `name` in configs.
    pub fn from_name(name: &str) -> Option<Victim> {
        Victim::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Config name.
    pub const fn name(&self) -> &'static str {
        match self {
            Victim::Newest => "newest",
            Victim::Oldest => "oldest",
            Victim::FewestBlocks => "fewest-blocks",
            Victim::LowestPriority => "lowest-priority",
        }
    }

    /// The victim among the running requests, if any runs.
    pub fn pick(&self, s: &mut StepBuilder<'_>) -> Option<ReqView> {
        match self {
            Victim::Newest => s.newest_running(),
            Victim::Oldest => s.running().next(),
            // `max_by_key` keeps the last maximum and `min_by_key` the first minimum:
            // key on the admission number to make ties go to the newest explicitly.
            Victim::FewestBlocks => s
                .running()
                .min_by_key(|r| (r.blocks_held, std::cmp::Reverse(r.admitted))),
            Victim::LowestPriority => s
                .running()
                .max_by_key(|r| (r.priority, r.arrival, r.admitted)),
        }
    }
}
