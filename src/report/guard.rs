//! The guard of `infersim run`: the work and memory of an experiment estimated
//! before it runs, and why a run that would take too long or too much memory is
//! refused without `--no-guard`.

use crate::config::{Experiment, Point};
use crate::cost::StepShape;
use crate::workload::{Arrival, Stop};

/// Simulated tokens per second and thread assumed by the guard: a conservative
/// figure (one token per step, the slowest case, runs at 10 to 15 million per second
/// on a laptop core).
pub const GUARD_TOKENS_PER_S: f64 = 5e6;
/// Longest estimated run the guard lets through without `--no-guard`, seconds.
pub const GUARD_MAX_SECONDS: f64 = 3600.0;
/// Most runs (points × replications) the guard lets through.
pub const GUARD_MAX_RUNS: u64 = 100_000;
/// Memory assumed per request that may be in the system at once, bytes (request,
/// queue entry, sequence state, metrics).
pub const GUARD_BYTES_PER_REQUEST: f64 = 512.0;

/// What running an experiment would take, estimated before it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Runs (points × replications).
    pub runs: u64,
    /// Requests simulated, all runs.
    pub requests: f64,
    /// Tokens generated, all runs (the work: one step per token at worst).
    pub tokens: f64,
    /// Tokens of the largest run.
    pub largest_run_tokens: f64,
    /// Worker threads.
    pub threads: usize,
    /// Estimated wall time at [`GUARD_TOKENS_PER_S`] per thread, seconds.
    pub seconds: f64,
    /// Peak memory of the runs in flight at once, bytes.
    pub peak_bytes: f64,
    /// Memory available, bytes (`MemAvailable` on Linux, else 8 GiB assumed).
    pub available_bytes: f64,
}

/// Requests, tokens and requests in the system at once of one run of `p`.
fn point_work(p: &Point) -> (f64, f64, f64) {
    let w = &p.scenario.workload;
    let ctx = w.max_context.max(2) as f64;
    let trace_rows = |limit: Option<crate::time::Dur>| match &w.arrival {
        Arrival::Trace(t) => t
            .rows
            .iter()
            .filter(|r| limit.is_none_or(|d| r.0 < d))
            .count() as f64,
        _ => 0.0,
    };
    // A workload of classes: the classes' rates add up and its outputs are their
    // rate-weighted mixture (its own arrival and lengths stand for class 0 only).
    let rate_of = |a: &Arrival| match a {
        Arrival::Poisson { rate } | Arrival::Constant { rate } | Arrival::Gamma { rate, .. } => {
            *rate
        }
        _ => 0.0,
    };
    let class_rate: f64 = w.classes.iter().map(|c| rate_of(&c.arrival)).sum();
    let out_mean = match &w.arrival {
        Arrival::Trace(t) if !t.rows.is_empty() => {
            t.rows.iter().map(|r| (r.2 as f64).min(ctx)).sum::<f64>() / t.rows.len() as f64
        }
        _ if class_rate > 0.0 => {
            w.classes
                .iter()
                .map(|c| rate_of(&c.arrival) * c.output.mean().clamp(1.0, ctx - 1.0))
                .sum::<f64>()
                / class_rate
        }
        _ => w.output.mean().clamp(1.0, ctx - 1.0),
    };
    // No request completes faster than its output tokens at one batch-1 decode step
    // each: bounds how many requests a closed loop or offline batches can issue.
    let step_s = p
        .scenario
        .instances
        .first()
        .map(|i| {
            i.cost
                .price(&StepShape::decode_only(1, 1, p.model.sliding_window))
                .times
                .wall_s()
        })
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1e-3);
    let cycle_s = (out_mean * step_s).max(1e-6);
    let (requests, in_flight) = match w.stop {
        Stop::Requests(n) => {
            let n = match &w.arrival {
                Arrival::Trace(_) => trace_rows(None).min(n as f64),
                _ => n as f64,
            };
            let inflight = match w.arrival {
                Arrival::ClosedLoop { users, .. } => n.min(users as f64),
                Arrival::Offline { batch_size } => n.min(batch_size as f64),
                _ => n,
            };
            (n, inflight)
        }
        Stop::Timed { duration, .. } => {
            let d = duration.as_secs_f64();
            match &w.arrival {
                a
                @ (Arrival::Poisson { .. } | Arrival::Constant { .. } | Arrival::Gamma { .. }) => {
                    // A session arrival sends all its turns.
                    let turns = match &w.shared {
                        crate::workload::SharedContext::Sessions(s) => s.turns.mean().max(1.0),
                        _ => 1.0,
                    };
                    let rate = turns
                        * if class_rate > 0.0 {
                            class_rate
                        } else {
                            rate_of(a)
                        };
                    (rate * d + 1.0, rate * d + 1.0)
                }
                Arrival::Trace(_) => {
                    let n = trace_rows(Some(duration));
                    (n, n)
                }
                Arrival::ClosedLoop { users, think, .. } => {
                    let think_s = match *think {
                        crate::workload::Think::Constant(t)
                        | crate::workload::Think::Exponential(t) => t.as_secs_f64(),
                        crate::workload::Think::Between(a, b) => {
                            (a.as_secs_f64() + b.as_secs_f64()) / 2.0
                        }
                    };
                    let u = *users as f64;
                    (u * (d / (think_s + cycle_s) + 1.0), u)
                }
                Arrival::Offline { batch_size } => {
                    let b = *batch_size as f64;
                    (b * (d / cycle_s + 1.0), b)
                }
            }
        }
    };
    (requests, requests * out_mean, in_flight)
}

/// Memory available to this process, bytes.
fn available_memory() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map(|kib| kib * 1024.0)
        .unwrap_or(8.0 * crate::specs::GIB)
}

/// Estimates the work and memory of running `exp` on `threads` threads.
pub fn estimate(exp: &Experiment, threads: usize) -> Estimate {
    let threads = threads.max(1);
    let reps = exp.replications as f64;
    let mut requests = 0.0;
    let mut tokens = 0.0;
    let mut largest: f64 = 0.0;
    let mut peaks: Vec<f64> = Vec::new();
    for p in &exp.points {
        let (r, t, inflight) = point_work(p);
        requests += r * reps;
        tokens += t * reps;
        largest = largest.max(t);
        peaks.extend(std::iter::repeat_n(
            inflight * GUARD_BYTES_PER_REQUEST,
            exp.replications.min(threads as u32) as usize,
        ));
    }
    peaks.sort_by(|a, b| b.total_cmp(a));
    let peak_bytes = peaks.iter().take(threads).sum();
    Estimate {
        runs: exp.points.len() as u64 * exp.replications as u64,
        requests,
        tokens,
        largest_run_tokens: largest,
        threads,
        seconds: (tokens / threads as f64).max(largest) / GUARD_TOKENS_PER_S,
        peak_bytes,
        available_bytes: available_memory(),
    }
}

/// A duration in words: "40 s", "12 minutes", "3.5 hours".
pub fn human_seconds(s: f64) -> String {
    if !s.is_finite() {
        "forever".into()
    } else if s < 1.0 {
        "under a second".into()
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} minutes", s / 60.0)
    } else if s < 86400.0 * 3.0 {
        format!("{:.1} hours", s / 3600.0)
    } else {
        format!("{:.0} days", s / 86400.0)
    }
}

/// Why `run` would refuse this estimate (without `--no-guard`), if it would.
pub fn guard_problem(est: &Estimate) -> Option<String> {
    let fix = "lower num_requests or duration_s, sweep fewer points or replications";
    if est.runs > GUARD_MAX_RUNS {
        return Some(format!(
            "{} runs (points × replications) are more than the limit of {GUARD_MAX_RUNS}; {fix}, or pass --no-guard to run it anyway",
            est.runs
        ));
    }
    if est.seconds.is_nan() || est.seconds > GUARD_MAX_SECONDS {
        return Some(format!(
            "this would simulate about {:.2e} requests and {:.2e} tokens in {} run{}, estimated at {} on {} thread{} (at {:.0} million tokens per second per thread), more than the limit of {}; {fix}, or pass --no-guard to run it anyway",
            est.requests,
            est.tokens,
            est.runs,
            if est.runs == 1 { "" } else { "s" },
            human_seconds(est.seconds),
            est.threads,
            if est.threads == 1 { "" } else { "s" },
            GUARD_TOKENS_PER_S / 1e6,
            human_seconds(GUARD_MAX_SECONDS)
        ));
    }
    if est.peak_bytes.is_nan() || est.peak_bytes > 0.8 * est.available_bytes {
        return Some(format!(
            "the runs in flight at once could hold up to {:.1} GiB ({:.0} bytes per request that may be waiting at once), more than 80 % of the {:.1} GiB of memory available; {fix}, use fewer --jobs, or pass --no-guard to run it anyway",
            est.peak_bytes / crate::specs::GIB,
            GUARD_BYTES_PER_REQUEST,
            est.available_bytes / crate::specs::GIB
        ));
    }
    None
}
