//! `infersim bench`: how fast the simulator runs on standard scenarios.
//!
//! Each scenario runs in a child process of its own (so its peak resident memory is
//! its own), once fast-forwarded and once step by step, and reports simulated
//! requests per wall-second, simulated seconds per wall-second, events per second
//! and peak memory; the two modes must give identical summaries. A 64-point sweep is
//! then timed on one thread and on all cores.

use crate::config::{parse_experiment, Experiment, Point};
use crate::experiment::{run_all, RunConfig};
use crate::sim::{run, RunOptions};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// One benchmark figure.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BenchRow {
    /// Scenario name.
    pub scenario: String,
    /// `fast-forward` or `step-by-step`.
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
    /// Peak resident memory of the process that ran it, MB.
    pub peak_rss_mb: f64,
    /// Hash of the run's summary (equal across modes when they agree).
    pub summary_hash: String,
    /// GPU steps simulated.
    pub steps: u64,
    /// Of those, steps run by the decode-stretch fast-forward.
    pub fast_forwarded_steps: u64,
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

fn experiment(toml: &str) -> Experiment {
    parse_experiment(toml, Path::new("<bench>"))
        .unwrap_or_else(|e| panic!("bench scenario is invalid: {e:?}"))
}

fn point(toml: &str) -> Point {
    experiment(toml)
        .points
        .into_iter()
        .next()
        .expect("one point")
}

fn llama_a100(hardware: &str, workload: &str) -> String {
    llama_a100_out(hardware, workload, 128)
}

/// [`llama_a100`] with `output` tokens per request.
fn llama_a100_out(hardware: &str, workload: &str, output: u32) -> String {
    format!(
        r#"name = "bench"
[hardware]
gpu = "a100-80gb"
{hardware}
[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 4096
[workload]
{workload}
input_tokens = {{ dist = "fixed", value = 512 }}
output_tokens = {{ dist = "fixed", value = {output} }}
"#
    )
}

/// Saturated throughput (req/s) of one Llama-3.1-8B instance on an A100-80GB with
/// 512/128-token requests: an offline run of 20,000 requests at once.
pub fn capacity() -> f64 {
    let p = point(&llama_a100(
        "",
        "arrival = \"offline\"\nbatch_size = 20000\nnum_requests = 20000",
    ));
    let r = run(&p.scenario, 1, RunOptions::default()).expect("capacity run");
    r.summary.request_throughput
}

/// Names of the standard scenarios.
///
/// The first six are the standard set; `closed-loop-4-users-long` (4 users, 512
/// output tokens) has the long decode stretches the fast-forward is for, where the
/// other scenarios change the batch about once per step.
pub const SCENARIOS: [&str; 7] = [
    "continuous-50pct",
    "continuous-90pct",
    "continuous-120pct",
    "mps-3-servers-l4",
    "dp-8-replicas",
    "closed-loop-50-users",
    "closed-loop-4-users-long",
];

/// The scenario `name` at `scale` (1.0: 100,000 requests; 0.1: 10,000).
pub fn scenario(name: &str, scale: f64, cap: f64) -> Option<Point> {
    let n = |base: f64| ((base * scale).round() as u64).max(10);
    let poisson = |load: f64, reps: f64| {
        format!(
            "arrival = \"poisson\"\nrate_per_s = {}\nnum_requests = {}",
            load * cap * reps,
            n(100_000.0)
        )
    };
    Some(match name {
        "continuous-50pct" => point(&llama_a100("", &poisson(0.5, 1.0))),
        "continuous-90pct" => point(&llama_a100("", &poisson(0.9, 1.0))),
        "continuous-120pct" => point(&llama_a100("", &poisson(1.2, 1.0))),
        "dp-8-replicas" => point(&llama_a100("num_gpus = 8", &poisson(0.9, 8.0))),
        "closed-loop-50-users" => point(&llama_a100(
            "",
            &format!(
                "arrival = \"closed-loop\"\nusers = 50\nnum_requests = {}",
                n(100_000.0)
            ),
        )),
        "closed-loop-4-users-long" => point(&llama_a100_out(
            "",
            &format!(
                "arrival = \"closed-loop\"\nusers = 4\nnum_requests = {}",
                n(20_000.0)
            ),
            512,
        )),
        "mps-3-servers-l4" => point(&format!(
            r#"name = "bench"
[hardware]
gpu = "l4"
sharing = "mps"
instances_per_gpu = 3
router = "round-robin"
[engine]
model = "gemma-3-1b-it"
policy = "continuous"
gpu_memory_utilization = 0.3
max_model_len = 4096
[workload]
arrival = "poisson"
rate_per_s = 15.0
num_requests = {}
input_tokens = {{ dist = "fixed", value = 15 }}
output_tokens = {{ dist = "fixed", value = 100 }}
"#,
            n(20_000.0)
        )),
        _ => return None,
    })
}

/// Runs one scenario in this process and reports it.
pub fn time_run(name: &str, step_by_step: bool, p: &Point) -> BenchRow {
    let t = Instant::now();
    let opts = RunOptions {
        step_by_step,
        ..RunOptions::default()
    };
    let r = run(&p.scenario, 1, opts).expect("bench run");
    let wall = t.elapsed().as_secs_f64().max(1e-9);
    let text = serde_json::to_string(&r.summary).expect("serialises");
    BenchRow {
        scenario: name.into(),
        mode: if step_by_step {
            "step-by-step"
        } else {
            "fast-forward"
        }
        .into(),
        requests: r.issued,
        wall_s: wall,
        sim_requests_per_s: r.issued as f64 / wall,
        sim_seconds_per_s: r.end.as_secs_f64() / wall,
        events_per_s: r.events as f64 / wall,
        peak_rss_mb: peak_rss_mb(),
        summary_hash: format!("{:016x}", fnv1a(text.as_bytes())),
        steps: r.summary.steps,
        fast_forwarded_steps: r.fast_forwarded_steps,
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of a summary.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Times a 64-point sweep (the bench model at 64 rates, 10,000 requests each)
/// on `jobs` threads; returns wall seconds and requests simulated.
pub fn time_sweep(jobs: usize, scale: f64) -> (f64, u64) {
    let rates: Vec<String> = (1..=64).map(|i| format!("{:.1}", i as f64 * 0.5)).collect();
    let n = ((10_000.0 * scale).round() as u64).max(10);
    let text = llama_a100(
        "",
        &format!("arrival = \"poisson\"\nrate_per_s = 1.0\nnum_requests = {n}"),
    ) + &format!(
        "[sweep]\n\"workload.rate_per_s\" = [{}]\n",
        rates.join(", ")
    );
    let exp = experiment(&text);
    let t = Instant::now();
    let rows = run_all(
        &exp,
        &RunConfig {
            seed: None,
            jobs,
            quiet: true,
            step_by_step: false,
        },
    )
    .expect("sweep");
    (t.elapsed().as_secs_f64(), rows.len() as u64 * n)
}
