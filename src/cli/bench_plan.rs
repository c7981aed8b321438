//! `infersim bench --scenario plan`: the planner over 4,608 candidates, 1,224 of them
//! valid layouts (issue 16's target: ≥ 1,000 in under 10 s on 2 cores): Llama-3.1-8B
//! and Llama-3.1-70B, each its own plan, on six GPU types, 1–8 GPUs, TP 1–8, three
//! `max_num_seqs` and two `max_num_batched_tokens` (TP must divide the GPUs and the
//! heads, so TP 3, 5, 6 and 7 and TP above the GPU count are pruned as invalid); 10 req/s
//! with p99 TTFT under 2 s, 60 s timed runs after a 10 s warm-up, 3 replications per
//! rate. Prints the candidates, how many were searched and pruned (by reason), wall
//! and CPU seconds, and the winners' and next cheaper candidates' re-runs with 5 other
//! seeds.

use crate::error::Error;
use crate::plan::{finalize, parse_plan, run_plan, verify, PlanOptions};
use std::path::Path;
use std::time::Instant;

/// The bench plan for `model`.
pub fn bench_plan_text(model: &str) -> String {
    format!(
        r#"name = "bench-plan-{model}"
seed = 1
[plan]
target_rate = 10.0
replications = 3
[plan.space]
gpu = ["l4", "a10g", "l40s", "a100-80gb", "h100-sxm", "h200"]
num_gpus = [1, 2, 3, 4, 5, 6, 7, 8]
tensor_parallel_size = [1, 2, 3, 4, 5, 6, 7, 8]
max_num_seqs = [64, 128, 256]
max_num_batched_tokens = [2048, 8192]
[hardware]
gpu = "l4"
[engine]
model = "{model}"
policy = "continuous"
max_model_len = 4096
[workload]
arrival = "poisson"
duration_s = 60.0
warmup_s = 10.0
input_tokens = {{ dist = "uniform", mean = 512, range_ratio = 0.5 }}
output_tokens = {{ dist = "uniform", mean = 256, range_ratio = 0.5 }}
[slo]
p99_ttft_ms = 2000
"#
    )
}

/// CPU seconds of the whole process (every thread), user + system.
fn process_cpu_s() -> f64 {
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Runs the plan scenario and prints its figures.
pub fn run_plan_bench(json: bool) -> Result<(), Error> {
    let (w0, c0) = (Instant::now(), process_cpu_s());
    let mut lines = Vec::new();
    let mut total = 0usize;
    let mut searched = 0usize;
    let mut pruned = std::collections::BTreeMap::<String, usize>::new();
    let mut reports = Vec::new();
    for model in ["llama-3.1-8b", "llama-3.1-70b"] {
        let text = bench_plan_text(model);
        let path = Path::new("<bench plan>");
        let plan = parse_plan(&text, path).map_err(Error::ConfigList)?;
        let raw = run_plan(
            &plan,
            &PlanOptions {
                quiet: true,
                shard: None,
            },
        )?;
        let r = finalize(raw);
        total += r.candidates_total;
        searched += r.searched;
        for (k, n) in &r.pruned {
            *pruned.entry(k.clone()).or_default() += n;
        }
        reports.push((plan, r));
    }
    let (wall, cpu) = (w0.elapsed().as_secs_f64(), process_cpu_s() - c0);
    for (plan, r) in &reports {
        for (what, i) in [("cheapest", r.winner), ("next cheaper", r.next_cheaper)] {
            let Some(i) = i else {
                lines.push(format!("{}: no {what} candidate", plan.name));
                continue;
            };
            let c = &r.candidates[i];
            let v = verify(plan, i, 10.0, 5)?;
            lines.push(format!(
                "{}: {what} #{i} {} (${:.2}/h, max {:.2} req/s): {}/5 other seeds meet the SLOs at 10 req/s",
                plan.name,
                c.label,
                c.cost_per_hour_usd.unwrap_or(f64::NAN),
                c.max_rate.unwrap_or(0.0),
                v.iter().filter(|x| x.met).count()
            ));
        }
    }
    let threads = rayon::current_num_threads();
    if json {
        let v = serde_json::json!({
            "scenario": "plan", "candidates": total, "searched": searched,
            "pruned": pruned, "wall_s": wall, "cpu_s": cpu, "threads": threads,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        let p: Vec<String> = pruned.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "plan: {total} candidates ({} valid layouts), {searched} searched, pruned {}; {wall:.2} s wall, {cpu:.2} s CPU on {threads} threads (target: under 10 s on 2 cores)",
            total - pruned.get("invalid").copied().unwrap_or(0),
            p.join(", ")
        );
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}
