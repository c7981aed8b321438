//! `infersim bench`: how fast the simulator runs on standard scenarios.
//!
//! Each scenario runs in a child process of its own (so its peak resident memory is
//! its own), once fast-forwarded and once step by step, and reports simulated
//! requests per wall-second, simulated seconds per wall-second, events per second
//! and peak memory; the two modes must give identical summaries. A 64-point sweep is
//! then timed on one thread and on all cores.
//!
//! The planner's targets (issue 16, part 8) are printed from the same rows
//! ([`target_lines`]): simulated requests per CPU-second at 90 % load, the MPS cost
//! per request over the exclusive cost of the same deployment, and the bytes a
//! waiting request takes (the record's size, and peak RSS over the peak queue of an
//! overloaded run).

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
    /// CPU seconds of the simulating thread (the run only, not the set-up).
    #[serde(default)]
    pub cpu_s: f64,
    /// Requests simulated per CPU-second of the simulating thread.
    #[serde(default)]
    pub sim_requests_per_cpu_s: f64,
    /// Longest waiting queue of the run (`max_queue_len`).
    #[serde(default)]
    pub peak_waiting: u64,
    /// Growth of the resident set during the run (peak RSS after it minus the RSS
    /// before it), MB.
    #[serde(default)]
    pub rss_growth_mb: f64,
}

/// CPU time of the calling thread, seconds (Linux `CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Resident set size of this process now, MB (Linux `VmRSS`; 0 elsewhere).
pub fn rss_mb() -> f64 {
    status_kb("VmRSS:") / 1024.0
}

fn status_kb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
}

/// Peak resident set size of this process in MB (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:") / 1024.0
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
/// other scenarios change the batch about once per step. `exclusive-3-gpus-l4` is
/// `mps-3-servers-l4`'s deployment and workload with each instance on a GPU of its
/// own (the exclusive cost per request the MPS one is compared with);
/// `overload-300pct` arrives at three times the capacity, so most requests wait
/// (bytes per waiting request).
pub const SCENARIOS: [&str; 9] = [
    "continuous-50pct",
    "continuous-90pct",
    "continuous-120pct",
    "mps-3-servers-l4",
    "exclusive-3-gpus-l4",
    "dp-8-replicas",
    "closed-loop-50-users",
    "closed-loop-4-users-long",
    "overload-300pct",
];

/// The three L4 instances of `mps-3-servers-l4` (`hardware` says how they share).
fn gemma_l4(hardware: &str, requests: u64) -> String {
    format!(
        r#"name = "bench"
[hardware]
gpu = "l4"
{hardware}
router = "round-robin"
[engine]
model = "gemma-3-1b-it"
policy = "continuous"
gpu_memory_utilization = 0.3
max_model_len = 4096
[workload]
arrival = "poisson"
rate_per_s = 15.0
num_requests = {requests}
input_tokens = {{ dist = "fixed", value = 15 }}
output_tokens = {{ dist = "fixed", value = 100 }}
"#
    )
}

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
        "mps-3-servers-l4" => point(&gemma_l4(
            "sharing = \"mps\"\ninstances_per_gpu = 3",
            n(20_000.0),
        )),
        "exclusive-3-gpus-l4" => point(&gemma_l4("num_gpus = 3", n(20_000.0))),
        "overload-300pct" => point(&llama_a100("", &poisson(3.0, 1.0))),
        _ => return None,
    })
}

/// Runs one scenario in this process and reports it.
pub fn time_run(name: &str, step_by_step: bool, p: &Point) -> BenchRow {
    let opts = RunOptions {
        step_by_step,
        ..RunOptions::default()
    };
    let rss_before = rss_mb();
    let cpu0 = thread_cpu_s();
    let t = Instant::now();
    let r = run(&p.scenario, 1, opts).expect("bench run");
    let wall = t.elapsed().as_secs_f64().max(1e-9);
    let cpu = (thread_cpu_s() - cpu0).max(1e-9);
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
        cpu_s: cpu,
        sim_requests_per_cpu_s: r.issued as f64 / cpu,
        peak_waiting: r.summary.max_queue_len,
        rss_growth_mb: (peak_rss_mb() - rss_before).max(0.0),
    }
}

/// The planner's targets, from the fast-forward rows of one `bench` invocation
/// (scenarios not run are left out): requests per CPU-second at 90 % load (target
/// ≥ 3 M), MPS over exclusive CPU cost per request of the same three-instance L4
/// deployment and workload (target ≤ 1.5×), and bytes per waiting request (target
/// ≤ 64 B), both as the record's size plus its queue entry and as the overloaded
/// run's RSS growth over its peak queue (which also counts vector growth slack and
/// everything else the run holds, so it is an upper bound).
pub fn target_lines(rows: &[BenchRow]) -> Vec<String> {
    let fast = |name: &str| {
        rows.iter()
            .find(|r| r.scenario == name && r.mode == "fast-forward")
    };
    let per_req = |r: &BenchRow| r.cpu_s / r.requests.max(1) as f64;
    let mut out = Vec::new();
    if let Some(r) = fast("continuous-90pct") {
        out.push(format!(
            "target: {:.2} M simulated requests per CPU-second at 90 % load (target >= 3 M)",
            r.sim_requests_per_cpu_s / 1e6
        ));
    }
    if let (Some(m), Some(x)) = (fast("mps-3-servers-l4"), fast("exclusive-3-gpus-l4")) {
        // Per step too: the exclusive GPUs run each instance faster, so its batches
        // are smaller and it takes more steps per request.
        let per_step = |r: &BenchRow| r.cpu_s / r.steps.max(1) as f64;
        out.push(format!(
            "target: MPS {:.2} us per request, exclusive {:.2} us: {:.2}x (target <= 1.5x); \
             per step {:.3} us and {:.3} us: {:.2}x",
            per_req(m) * 1e6,
            per_req(x) * 1e6,
            per_req(m) / per_req(x),
            per_step(m) * 1e6,
            per_step(x) * 1e6,
            per_step(m) / per_step(x)
        ));
    }
    let record = crate::instance::Instance::bytes_per_waiting_request();
    let mut line = format!(
        "target: {record} B per waiting request (size of its record and queue entry; target <= 64 B)"
    );
    if let Some(o) = fast("overload-300pct").filter(|o| o.peak_waiting > 0) {
        line += &format!(
            "; overload-300pct: {:.0} B of RSS growth per request at its peak queue of {}",
            o.rss_growth_mb * 1024.0 * 1024.0 / o.peak_waiting as f64,
            o.peak_waiting
        );
    }
    out.push(line);
    out
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
