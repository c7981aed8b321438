//! Workloads made of classes: several open-loop streams, each with its own arrival
//! process, lengths, priority and tenant, superposed in time (a latency-sensitive
//! chat class beside a batch class, a light tenant beside a heavy one).
//!
//! Each class draws its arrivals and lengths from streams of its own, so adding a
//! class does not change the others' requests. A run that stops after N requests
//! counts them over all classes, in order of arrival.

use super::{rng, Arrival, LengthDist, LengthSampler, OpenLoop, Stop, Workload};
use crate::time::SimTime;

/// One class of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadClass {
    /// Name, for results.
    pub name: String,
    /// Arrival process (open loop: Poisson, gamma or constant).
    pub arrival: Arrival,
    /// Prompt lengths.
    pub input: LengthDist,
    /// Output lengths.
    pub output: LengthDist,
    /// Scheduling priority of its requests (lower first).
    pub priority: i32,
    /// Tenant of its requests.
    pub tenant: u32,
}

/// First RNG stream of class `c` (arrivals; then prompt and output lengths).
fn class_stream(c: usize) -> u64 {
    1000 + 10 * c as u64
}

/// The superposed arrivals of a workload's classes.
#[derive(Debug, Clone)]
pub struct ClassMix {
    gens: Vec<OpenLoop>,
    samplers: Vec<LengthSampler>,
    limit: Option<u64>,
    issued: u64,
}

impl ClassMix {
    /// The generator of `w`'s classes (at least one) for a run with `seed`.
    pub fn new(w: &Workload, seed: u64) -> Self {
        let limit = match w.stop {
            Stop::Requests(n) => Some(n),
            Stop::Timed { .. } => None,
        };
        let mut gens = Vec::new();
        let mut samplers = Vec::new();
        for (c, class) in w.classes.iter().enumerate() {
            let sub = Workload {
                arrival: class.arrival.clone(),
                input: class.input.clone(),
                output: class.output.clone(),
                // The mix counts requests over all classes.
                stop: match w.stop {
                    Stop::Requests(_) => Stop::Requests(u64::MAX),
                    s => s,
                },
                prompt_pool: None,
                classes: Vec::new(),
                ..w.clone()
            };
            let s = class_stream(c);
            let mut g = OpenLoop::new(&sub, seed);
            g.set_rng(rng(seed, s));
            gens.push(g);
            samplers.push(LengthSampler::with_streams(
                &sub,
                rng(seed, s + 1),
                rng(seed, s + 2),
                rng(seed, s + 3),
            ));
        }
        ClassMix {
            gens,
            samplers,
            limit,
            issued: 0,
        }
    }

    /// The class whose next arrival comes first (ties: the lower class) and its time.
    fn next_class(&self) -> Option<(usize, SimTime)> {
        if self.limit.is_some_and(|l| self.issued >= l) {
            return None;
        }
        let mut best: Option<(usize, SimTime)> = None;
        for (c, g) in self.gens.iter().enumerate() {
            if let Some(t) = g.peek_time() {
                if best.is_none_or(|(_, b)| t < b) {
                    best = Some((c, t));
                }
            }
        }
        best
    }

    /// When the next request arrives.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.next_class().map(|(_, t)| t)
    }

    /// The next request: its time, class and (prompt, output) tokens.
    pub fn next_arrival(&mut self) -> Option<(SimTime, usize, (u32, u32))> {
        let (c, _) = self.next_class()?;
        let (t, _, _) = self.gens[c].next_arrival()?;
        let (i, o, _) = self.samplers[c].draw();
        self.issued += 1;
        Some((t, c, (i, o)))
    }
}
