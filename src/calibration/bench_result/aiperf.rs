//! NVIDIA AIPerf's per-request export, `profile_export.jsonl` (GenAI-Perf's
//! successor): one JSON object per line, `{metadata, metrics, error}`.
//!
//! Field names from AIPerf's documentation (ai-dynamo/aiperf,
//! `docs/tutorials/working-with-profile-exports.md` and `docs/metrics_reference.md`):
//! `metadata.request_start_ns` / `request_end_ns` (epoch ns), `metadata.benchmark_phase`
//! (`"profiling"`; warm-up records are left out), `metrics.input_sequence_length`,
//! `metrics.output_sequence_length` (tokens), `metrics.time_to_first_token` and
//! `metrics.inter_token_latency` (per request, (last − first token) / (output − 1),
//! vLLM's TPOT), each `{value, unit}`; a failed request has a non-null `error` and
//! is left out. The aggregate `profile_export_aiperf.json` holds no per-request
//! records: given it, the requests are read from the `profile_export.jsonl` beside it
//! and the measured figures are the aggregate's own (`aggregate_figures`).

use super::records::{from_records, number, tokens, Record};
use super::BenchResult;
use crate::error::ConfigError;
use serde_json::Value;

/// Whether `v` (a line of the file) looks like an AIPerf record.
pub(crate) fn is_aiperf_record(v: &Value) -> bool {
    v.get("metadata").is_some_and(Value::is_object) && v.get("metrics").is_some()
}

/// Whether `v` looks like AIPerf's aggregate `profile_export_aiperf.json`.
pub(crate) fn is_aiperf_aggregate(v: &Value) -> bool {
    v.get("benchmark_duration").is_some() || v.get("input_config").is_some()
}

/// A `{value, unit}` latency in ms (units ns, us, ms, s converted), `None` if absent.
fn ms(v: Option<&Value>, file: &str, field: &str) -> Result<Option<f64>, ConfigError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let x = number(v.get("value"), file, &format!("{field}.value"))?;
    let scale = match v.get("unit").and_then(Value::as_str).unwrap_or("ms") {
        "ns" => 1e-6,
        "us" => 1e-3,
        "ms" => 1.0,
        "s" | "sec" => 1e3,
        u => {
            return Err(ConfigError::new(
                file,
                format!("{field}.unit"),
                format!("{u:?}, allowed: \"ns\", \"us\", \"ms\", \"s\""),
            ))
        }
    };
    Ok(Some(x * scale))
}

/// Reads the JSONL text of `profile_export.jsonl`.
pub(crate) fn parse_aiperf_jsonl(text: &str, file: &str) -> Result<BenchResult, ConfigError> {
    // Epoch nanoseconds are kept as integers until the first send is subtracted, so
    // durations keep their nanoseconds (as f64 seconds since 1970 they would not).
    let mut recs: Vec<(u64, u64, Record)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("line {}", i + 1);
        let v: Value = serde_json::from_str(line)
            .map_err(|e| ConfigError::new(file, &at, format!("not JSON: {e}")))?;
        if !is_aiperf_record(&v) {
            return Err(ConfigError::new(
                file,
                &at,
                "not an AIPerf record, allowed: {\"metadata\": ..., \"metrics\": ..., \"error\": ...}",
            ));
        }
        let md = &v["metadata"];
        let failed = v.get("error").is_some_and(|e| !e.is_null());
        let phase = md.get("benchmark_phase").and_then(Value::as_str);
        if failed || phase.is_some_and(|p| p != "profiling") {
            continue;
        }
        let f = |k: &str| format!("{at}: {k}");
        let ns = |k: &str| {
            md.get(k).and_then(Value::as_u64).ok_or_else(|| {
                ConfigError::new(
                    file,
                    f(&format!("metadata.{k}")),
                    "missing or not a time in ns since the epoch",
                )
            })
        };
        let m = &v["metrics"];
        let count = |k: &str| {
            tokens(
                m.pointer(&format!("/{k}/value")),
                file,
                &f(&format!("metrics.{k}.value")),
            )
        };
        let (start, end) = (ns("request_start_ns")?, ns("request_end_ns")?);
        if end < start {
            return Err(ConfigError::new(
                file,
                f("metadata.request_end_ns"),
                "before request_start_ns, allowed: a completion after the send",
            ));
        }
        recs.push((
            start,
            end,
            Record {
                start_s: 0.0,
                end_s: 0.0,
                ttft_ms: ms(
                    m.get("time_to_first_token"),
                    file,
                    &f("metrics.time_to_first_token"),
                )?,
                tpot_ms: ms(
                    m.get("inter_token_latency"),
                    file,
                    &f("metrics.inter_token_latency"),
                )?,
                prompt: count("input_sequence_length")?,
                output: count("output_sequence_length")?,
            },
        ));
    }
    let t0 = recs.iter().map(|r| r.0).min().unwrap_or(0);
    let recs = recs
        .into_iter()
        .map(|(s, e, r)| Record {
            start_s: (s - t0) as f64 / 1e9,
            end_s: (e - t0) as f64 / 1e9,
            ..r
        })
        .collect();
    from_records(recs, file, "(records)")
}

/// AIPerf aggregate keys and the simulator metric each one's statistics map to
/// (`inter_token_latency` is per request (last − first token) / (output − 1): TPOT).
const AGGREGATE_STATS: [(&str, &str); 3] = [
    ("time_to_first_token", "ttft_ms"),
    ("request_latency", "e2el_ms"),
    ("inter_token_latency", "tpot_ms"),
];

/// AIPerf aggregate keys whose `avg` is a run figure, and the simulator's name.
const AGGREGATE_FIGURES: [(&str, &str); 7] = [
    ("request_count", "completed"),
    ("benchmark_duration", "duration"),
    ("request_throughput", "request_throughput"),
    ("output_token_throughput", "output_throughput"),
    ("total_token_throughput", "total_token_throughput"),
    ("total_isl", "total_input_tokens"),
    ("total_osl", "total_output_tokens"),
];

/// The figures of the aggregate `profile_export_aiperf.json` `v` under the
/// simulator's metric names: run figures from each key's `avg`, and for TTFT, E2E
/// latency and TPOT `avg`, `p50`, `std`, `p90`, `p95`, `p99` as mean, median, std and
/// percentiles (latencies converted to ms by their `unit`).
pub(crate) fn aggregate_figures(
    v: &Value,
    file: &str,
) -> Result<std::collections::BTreeMap<String, f64>, ConfigError> {
    let mut m = std::collections::BTreeMap::new();
    for (k, name) in AGGREGATE_FIGURES {
        if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
            m.insert(
                name.to_string(),
                number(x.get("avg"), file, &format!("{k}.avg"))?,
            );
        }
    }
    for (k, name) in AGGREGATE_STATS {
        let Some(x) = v.get(k).filter(|x| !x.is_null()) else {
            continue;
        };
        for (stat, ours) in [
            ("avg", "mean"),
            ("p50", "median"),
            ("std", "std"),
            ("p90", "p90"),
            ("p95", "p95"),
            ("p99", "p99"),
        ] {
            let one = serde_json::json!({"value": x.get(stat), "unit": x.get("unit")});
            if x.get(stat).is_some_and(|s| !s.is_null()) {
                if let Some(ms) = ms(Some(&one), file, &format!("{k}.{stat}"))? {
                    m.insert(format!("{ours}_{name}"), ms);
                }
            }
        }
    }
    Ok(m)
}
