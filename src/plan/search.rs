//! The search for one candidate's highest rate meeting the SLOs: timed runs (with
//! the workload's warm-up excluded from the statistics), each rate judged over
//! `replications` seeds (it passes when every one meets every SLO). From the first
//! rate (the target, or `start_rate`) the rate doubles while it passes, or halves while
//! it fails, until a pass and a fail bracket the answer (never above the roofline
//! bound); then bisection until the bracket is narrower than `rate_tolerance` or the
//! steps run out. Every run's seed depends only on the plan's seed and the
//! replication, so a candidate's result depends on nothing but itself.

use super::candidate::{at_rate, Built};
use super::space::PlanSettings;
use crate::error::Result;
use crate::metrics::Summary;
use crate::sim::{run, RunOptions};

/// What one rate point gave.
#[derive(Debug, Clone, PartialEq)]
pub struct PointResult {
    /// Rate tried, requests per second.
    pub rate: f64,
    /// Replications that met every SLO.
    pub met: u32,
    /// Replications run.
    pub runs: u32,
    /// Mean output tokens per second over the replications.
    pub output_throughput: f64,
    /// Mean prompt + output tokens per second.
    pub total_token_throughput: f64,
    /// Mean of the first SLO's metric (e.g. p99 TTFT, ms).
    pub latency_ms: f64,
}

impl PointResult {
    /// Whether every replication met the SLOs.
    pub fn passed(&self) -> bool {
        self.met == self.runs
    }
}

/// One run of `b` at `rate` with `seed`.
pub fn run_at(b: &Built, rate: f64, seed: u64) -> Result<Summary> {
    Ok(run(&at_rate(&b.scenario, rate), seed, RunOptions::default())?.summary)
}

/// Whether `s` met every SLO, and the first SLO's metric value.
pub fn judged(s: &Summary) -> (bool, f64) {
    match &s.slo {
        Some(slo) => {
            let lat = slo
                .rows
                .first()
                .and_then(|r| s.metric(&r.name))
                .unwrap_or(f64::NAN);
            (slo.slo_met, lat)
        }
        None => (false, f64::NAN),
    }
}

/// `b` at `rate` over `reps` seeds from `seed`.
pub fn point(b: &Built, rate: f64, seed: u64, reps: u32) -> Result<PointResult> {
    let mut p = PointResult {
        rate,
        met: 0,
        runs: reps,
        output_throughput: 0.0,
        total_token_throughput: 0.0,
        latency_ms: 0.0,
    };
    for r in 0..reps {
        let s = run_at(b, rate, seed.wrapping_add(r as u64))?;
        let (ok, lat) = judged(&s);
        p.met += ok as u32;
        p.output_throughput += s.output_throughput / reps as f64;
        p.total_token_throughput += s.total_token_throughput / reps as f64;
        p.latency_ms += lat / reps as f64;
    }
    Ok(p)
}

/// The search's outcome for one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// Highest rate that passed (None: none did).
    pub best: Option<PointResult>,
    /// The point at the target rate, when there is a target.
    pub at_target: Option<PointResult>,
    /// Simulations run.
    pub runs: u32,
    /// Whether a failing rate above the best was found (else the best is only a
    /// lower bound: the steps ran out, or the roofline bound passed).
    pub bracketed: bool,
}

/// Searches `b`'s highest passing rate, at most `bound` requests per second.
pub fn search(b: &Built, s: &PlanSettings, seed: u64, bound: f64) -> Result<Search> {
    let reps = s.replications;
    let first = s.target_rate.unwrap_or(s.start_rate).min(bound);
    let mut steps = 0u32;
    let mut pass: Option<PointResult> = None;
    let mut fail: Option<f64> = None;
    let mut at_target = None;
    let mut rate = first;
    // Bracket: double while passing, halve while failing.
    while steps < s.max_steps {
        let p = point(b, rate, seed, reps)?;
        steps += 1;
        if s.target_rate == Some(rate) {
            at_target = Some(p.clone());
        }
        if p.passed() {
            pass = Some(p);
            if fail.is_some() || rate >= bound {
                break;
            }
            rate = (rate * 2.0).min(bound);
        } else {
            fail = Some(rate);
            if pass.is_some() {
                break;
            }
            rate /= 2.0;
        }
    }
    // Bisect between the highest pass and the lowest fail above it.
    while steps < s.max_steps {
        let (Some(lo), Some(hi)) = (pass.as_ref().map(|p| p.rate), fail) else {
            break;
        };
        if (hi - lo) / hi < s.rate_tolerance {
            break;
        }
        let mid = 0.5 * (lo + hi);
        let p = point(b, mid, seed, reps)?;
        steps += 1;
        if p.passed() {
            pass = Some(p);
        } else {
            fail = Some(mid);
        }
    }
    Ok(Search {
        bracketed: fail.is_some_and(|f| pass.as_ref().is_none_or(|p| f > p.rate)),
        best: pass,
        at_target,
        runs: steps * reps,
    })
}
