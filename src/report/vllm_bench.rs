//! A run written as a `benchmark_serving.py` / `vllm bench serve` result JSON: its
//! per-request lists and summary fields, so `infersim compare` can read it back (the
//! round trip of tests/compare.rs).
//!
//! What cannot be written: benchmark_serving's `itls` are the per-token gaps of each
//! request, which a run does not keep per request (only as a sketch over all gaps), so
//! every request's `itls` is an empty list and the ITL figures are in the summary
//! fields only; `generated_texts` are empty strings (no text is generated). The send
//! times, which benchmark_serving does not record, are written as `arrival_s` (seconds
//! from the first request), which `compare` replays.

use crate::metrics::RequestRecord;
use crate::sim::RunResult;
use serde_json::{Map, Value};

/// The result JSON of `res` (run with `keep_records`); `model_id` and `request_rate`
/// (`"inf"`, or the rate the arrival process was set to) are written as given. `None`
/// when the run kept no per-request records.
pub fn vllm_bench_json(res: &RunResult, model_id: &str, request_rate: Value) -> Option<Value> {
    let mut recs: Vec<RequestRecord> = res.records.clone()?;
    recs.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s).then(a.id.cmp(&b.id)));
    let t0 = recs.first().map_or(0.0, |r| r.arrival_s);
    let mut m = Map::new();
    m.insert("backend".into(), "infersim".into());
    m.insert("model_id".into(), model_id.into());
    m.insert("num_prompts".into(), recs.len().into());
    m.insert("request_rate".into(), request_rate);
    for (k, v) in res.summary.to_json() {
        if v.is_number() {
            m.insert(k, v);
        }
    }
    let list = |f: &dyn Fn(&RequestRecord) -> Value| -> Value {
        Value::Array(recs.iter().map(f).collect())
    };
    m.insert("input_lens".into(), list(&|r| r.input_tokens.into()));
    m.insert("output_lens".into(), list(&|r| r.output_tokens.into()));
    m.insert(
        "ttfts".into(),
        list(&|r| crate::metrics::num(r.first_token_s - r.arrival_s)),
    );
    m.insert("itls".into(), list(&|_| Value::Array(Vec::new())));
    m.insert("generated_texts".into(), list(&|_| "".into()));
    m.insert("errors".into(), list(&|_| "".into()));
    m.insert(
        "arrival_s".into(),
        list(&|r| crate::metrics::num(r.arrival_s - t0)),
    );
    Some(Value::Object(m))
}

/// The `request_rate` benchmark_serving would have recorded for `arrival`: the rate
/// of an open-loop process, `"inf"` for a trace sent all at t = 0, else `null`.
pub fn request_rate(arrival: &crate::workload::Arrival) -> Value {
    use crate::workload::Arrival;
    match arrival {
        Arrival::Poisson { rate } | Arrival::Gamma { rate, .. } | Arrival::Constant { rate } => {
            crate::metrics::num(*rate)
        }
        Arrival::Trace(t) if t.rows.iter().all(|r| r.0 == crate::time::Dur::ZERO) => "inf".into(),
        _ => Value::Null,
    }
}

/// `run --format vllm-bench`: every run of `exp` (points × replications, with the
/// seeds `run` used) replayed keeping its records and written to
/// `dir/vllm-bench/<point>-<replication>.json`. Each run is simulated again (the same
/// deterministic run), so this doubles the run time.
pub fn write_vllm_bench(
    exp: &crate::config::Experiment,
    seed: u64,
    step_by_step: bool,
    dir: &std::path::Path,
) -> crate::error::Result<()> {
    let out = dir.join("vllm-bench");
    std::fs::create_dir_all(&out).map_err(|e| crate::error::Error::io(&out, e))?;
    for spec in crate::experiment::plan_runs(exp, seed) {
        let p = &exp.points[spec.point];
        let opts = crate::sim::RunOptions {
            keep_records: true,
            step_by_step,
            ..Default::default()
        };
        let res = crate::sim::run(&p.scenario, spec.seed, opts)?;
        let rate = request_rate(&p.scenario.workload.arrival);
        let json = vllm_bench_json(&res, &p.meta.model, rate).unwrap_or(Value::Null);
        let mut text = serde_json::to_string_pretty(&json).expect("serialises");
        text.push('\n');
        crate::experiment::write_atomic(
            &out.join(format!("{}-{}.json", spec.point, spec.replication)),
            text.as_bytes(),
        )?;
    }
    Ok(())
}
