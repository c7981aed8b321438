//! Length-aware scheduling with an output-length [`Predictor`]:
//! - **shortest-job-first** (`sjf`): waiting requests are admitted in order of their
//!   predicted output length (ties: arrival), non-preemptive (Fu et al., "Efficient
//!   LLM Scheduling by Learning to Rank", 2024, and S³ report the gain in mean
//!   latency over FCFS when output lengths are mixed);
//! - **shortest-remaining** (`srpt`): the order is the predicted *remaining* output
//!   (predicted − generated), the preemption victim is the running request with the
//!   longest predicted remaining output, and when the running set is full a waiting
//!   request whose predicted remaining output is less than half the longest running
//!   one's preempts that one (at most one such preemption per step, the factor two
//!   keeping requests of similar length from trading places).
//!
//! Both starve long requests under sustained overload, as SJF does; the note on the
//! issue states it, and no aging is modelled.

use super::fcfs::{admit_while, schedule_running};
use super::{Predictor, Registration, ReqView, Scheduler, StepBuilder, Victim};

/// Shortest-job-first.
pub const SJF: Registration = Registration {
    name: "sjf",
    doc: "shortest predicted output first (engine.predictor), non-preemptive",
    uses_predictor: true,
    build: |c, seed| {
        Box::new(Sjf {
            predictor: c.predictor,
            seed,
            remaining: false,
            victim: c.victim,
        })
    },
};

/// Shortest-remaining.
pub const SRPT: Registration = Registration {
    name: "srpt",
    doc: "shortest predicted remaining output first; preempts the longest remaining",
    uses_predictor: true,
    build: |c, seed| {
        Box::new(Sjf {
            predictor: c.predictor,
            seed,
            remaining: true,
            victim: c.victim,
        })
    },
};

/// Shortest-job-first or shortest-remaining.
#[derive(Debug, Clone)]
pub struct Sjf {
    /// Output-length predictor.
    pub predictor: Predictor,
    /// Seed of the run (predictions are drawn from it).
    pub seed: u64,
    /// Order by predicted remaining output (SRPT) instead of predicted output (SJF).
    pub remaining: bool,
    /// Preemption victim (`None`: newest for SJF, longest remaining for SRPT).
    pub victim: Option<Victim>,
}

impl Sjf {
    /// The ordering key of `r`: predicted (remaining) output tokens.
    fn key(&self, r: &ReqView) -> u64 {
        let p = self.predictor.predict(r, self.seed);
        if self.remaining {
            p.saturating_sub(r.generated as u64).max(1)
        } else {
            p
        }
    }

    fn longest_running(&self, s: &StepBuilder<'_>) -> Option<ReqView> {
        s.running().max_by_key(|r| (self.key(r), r.admitted))
    }
}

impl Scheduler for Sjf {
    fn name(&self) -> &str {
        if self.remaining {
            "srpt"
        } else {
            "sjf"
        }
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        match (self.victim, self.remaining) {
            (Some(v), _) => schedule_running(s, |s| v.pick(s)),
            (None, false) => schedule_running(s, |s| Victim::Newest.pick(s)),
            (None, true) => schedule_running(s, |s| self.longest_running(s)),
        }
        if self.remaining && s.running_len() >= s.limits().max_seqs {
            let shortest = s.waiting().map(|r| self.key(&r)).min();
            if let (Some(w), Some(r)) = (shortest, self.longest_running(s)) {
                if 2 * w < self.key(&r) {
                    let _ = s.preempt(r.handle);
                }
            }
        }
        admit_while(s, |s| {
            s.waiting()
                .min_by_key(|r| (self.key(r), r.arrival, r.id))
                .map(|r| r.handle)
        });
    }

    fn acts_while_decoding(&self) -> bool {
        self.remaining
    }
}
