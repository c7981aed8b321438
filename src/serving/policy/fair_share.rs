//! Fair share across tenants with virtual token counters, after VTC (Sheng et al.,
//! "Fairness in Serving Large Language Models", OSDI 2024).
//!
//! Each tenant has a counter of the service it received: `input_weight` per prompt
//! token, charged when a request is admitted (again if it is preempted and resumes:
//! the recompute is service too), and `output_weight` per output token, charged as
//! tokens are emitted (VTC's defaults are 1 and 2). Each admission takes the oldest
//! waiting request of the backlogged tenant with the smallest counter. A tenant that
//! comes back after having nothing queued or running has its counter lifted to the
//! smallest counter of the tenants that are, so it cannot bank credit while away
//! (VTC's counter lift; applied at the next step boundary rather than at arrival).
//! Within the running set, preemption follows the victim rule (newest by default).

use super::fcfs::schedule_running;
use super::{Admission, Registration, Scheduler, StepBuilder, Victim};

/// The registration.
pub const REGISTRATION: Registration = Registration {
    name: "fair-share",
    doc: "virtual token counters per tenant (VTC): the least-served backlogged tenant first",
    uses_predictor: false,
    build: |c, _| {
        Box::new(FairShare {
            victim: c.victim.unwrap_or(Victim::Newest),
            input_weight: c.input_weight,
            output_weight: c.output_weight,
            counters: Vec::new(),
            seen_out: Vec::new(),
            was_active: Vec::new(),
        })
    },
};

/// VTC fair share.
#[derive(Debug, Clone)]
pub struct FairShare {
    /// Preemption victim.
    pub victim: Victim,
    /// Counter charge per prompt token.
    pub input_weight: f64,
    /// Counter charge per output token.
    pub output_weight: f64,
    counters: Vec<f64>,
    seen_out: Vec<u64>,
    was_active: Vec<bool>,
}

impl FairShare {
    fn grow(&mut self, t: usize) {
        if self.counters.len() <= t {
            self.counters.resize(t + 1, 0.0);
            self.seen_out.resize(t + 1, 0);
            self.was_active.resize(t + 1, false);
        }
    }

    /// A tenant's counter.
    pub fn counter(&self, tenant: u32) -> f64 {
        self.counters.get(tenant as usize).copied().unwrap_or(0.0)
    }
}

impl Scheduler for FairShare {
    fn name(&self) -> &str {
        "fair-share"
    }

    fn tracks_tenants(&self) -> bool {
        true
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        // Output tokens served since the last step boundary.
        let mut active: Vec<bool> = vec![false; self.counters.len()];
        let tenants: Vec<u32> = s.waiting().chain(s.running()).map(|r| r.tenant).collect();
        for &t in &tenants {
            self.grow(t as usize);
            if active.len() <= t as usize {
                active.resize(t as usize + 1, false);
            }
            active[t as usize] = true;
        }
        for t in 0..self.counters.len() {
            let out = s.tenant_output_tokens(t as u32);
            self.counters[t] += self.output_weight * (out - self.seen_out[t]) as f64;
            self.seen_out[t] = out;
        }
        // Counter lift for tenants that return.
        let floor = (0..self.counters.len())
            .filter(|&t| active[t] && self.was_active[t])
            .map(|t| self.counters[t])
            .fold(f64::INFINITY, f64::min);
        if floor.is_finite() {
            for ((c, &now), &before) in self.counters.iter_mut().zip(&active).zip(&self.was_active)
            {
                if now && !before {
                    *c = c.max(floor);
                }
            }
        }
        self.was_active = active;

        let v = self.victim;
        schedule_running(s, |s| v.pick(s));
        let Admission::Admit {
            max_new,
            token_budget,
            chunk,
        } = s.admission()
        else {
            return;
        };
        let (mut n, mut budget) = (0, token_budget);
        while n < max_new && budget > 0 {
            // The first waiting request (in queue order) of the least-served tenant.
            let pick = s
                .waiting()
                .map(|r| (self.counter(r.tenant), r))
                .reduce(|a, b| if b.0 < a.0 { b } else { a });
            let Some((_, r)) = pick else { break };
            match s.admit(r.handle, budget, chunk) {
                Ok(t) => {
                    budget -= t;
                    n += 1;
                    self.grow(r.tenant as usize);
                    self.counters[r.tenant as usize] += self.input_weight * r.prompt_tokens as f64;
                }
                Err(_) => break,
            }
        }
    }
}
