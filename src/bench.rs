//! `infersim bench`: how fast the simulator runs on standard scenarios.
//!
//! Each scenario reports simulated requests per wall-second, simulated seconds per
//! wall-second, events per second and the process's peak resident memory.

use crate::config::{parse_experiment, Point};
use crate::sim::{run, RunOptions};
use crate::workload::{Arrival, Stop};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// One benchmark figure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Scenario name.
    pub scenario: String,
    /// Simulation mode.
    pub mode: String,
    /// Requests simulated.
    pub requests: u64,
    /// Wall seconds.
    pub wall_s: f64,
    /// Requests simulated per wall-second.
    pub sim_requests_per_s: f64,
    /// Simulated seconds per wall-second.
    pub sim_seconds_per_s: f64,
    /// Events processed per wall-second.
    pub events_per_s: f64,
    /// Peak resident memory of the process so far, MB.
    pub peak_rss_mb: f64,
}

/// Peak resident set size of this process in MB (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn point(toml: &str) -> Point {
    let exp = parse_experiment(toml, Path::new("<bench>"))
        .unwrap_or_else(|e| panic!("bench scenario is invalid: {e:?}"));
    exp.points.into_iter().next().expect("one point")
}

/// Llama-3.1-8B on an A100-80GB, 512 in / 128 out, continuous batching.
pub fn llama_a100(arrival: &str) -> String {
    format!(
        r#"name = "bench"
[hardware]
gpu = "a100-80gb"
[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 4096
[workload]
{arrival}
input_tokens = {{ dist = "fixed", value = 512 }}
output_tokens = {{ dist = "fixed", value = 128 }}
"#
    )
}

/// Saturated throughput (req/s) of the Llama/A100 scenario: an offline run of
/// `n` requests all at once.
pub fn capacity(n: u64) -> f64 {
    let p = point(&llama_a100(&format!(
        "arrival = \"offline\"\nbatch_size = {n}\nnum_requests = {n}"
    )));
    let r = run(&p.scenario, 1, RunOptions::default()).expect("capacity run");
    r.summary["request_throughput"].as_f64().unwrap_or(0.0)
}

/// Times one run of `p` and reports it.
pub fn time_run(name: &str, mode: &str, p: &Point) -> BenchRow {
    let t = Instant::now();
    let r = run(&p.scenario, 1, RunOptions::default()).expect("bench run");
    let wall = t.elapsed().as_secs_f64();
    BenchRow {
        scenario: name.into(),
        mode: mode.into(),
        requests: r.issued,
        wall_s: wall,
        sim_requests_per_s: r.issued as f64 / wall,
        sim_seconds_per_s: r.end.as_secs_f64() / wall,
        events_per_s: r.events as f64 / wall,
        peak_rss_mb: peak_rss_mb(),
    }
}

/// The standard scenarios, at `scale` (1.0: 100,000 requests for the main one).
pub fn scenarios(scale: f64) -> Vec<(String, Point)> {
    let n = |base: f64| ((base * scale).round() as u64).max(10);
    let cap = capacity(n(20_000.0).min(20_000));
    let mut v = Vec::new();
    for load in [0.5, 0.9, 1.2] {
        let rate = load * cap;
        v.push((
            format!("continuous-{}pct", (load * 100.0) as u32),
            point(&llama_a100(&format!(
                "arrival = \"poisson\"\nrate_per_s = {rate}\nnum_requests = {}",
                n(100_000.0)
            ))),
        ));
    }
    v
}

/// Describes a point's workload for messages.
pub fn describe(p: &Point) -> String {
    let w = &p.scenario.workload;
    let a = match &w.arrival {
        Arrival::Poisson { rate } => format!("Poisson {rate:.2} req/s"),
        other => format!("{other:?}"),
    };
    let s = match w.stop {
        Stop::Requests(n) => format!("{n} requests"),
        Stop::Timed { duration, .. } => format!("{:.0} s", duration.as_secs_f64()),
    };
    format!("{a}, {s}")
}
