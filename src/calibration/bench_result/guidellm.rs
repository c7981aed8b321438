//! GuideLLM's benchmark report (`guidellm benchmark --output-path report.json`), a
//! serialised `GenerativeBenchmarksReport`: `benchmarks`, each a
//! `GenerativeBenchmark` with `requests.successful` (also `incomplete`, `errored`)
//! lists of `GenerativeRequestStats`, and `request_totals` counting them.
//!
//! Field names from GuideLLM's source (vllm-project/guidellm,
//! `src/guidellm/benchmark/benchmark.py` and `src/guidellm/schemas/stats.py`): per
//! request `prompt_tokens`, `output_tokens`, `time_to_first_token_ms`,
//! `inter_token_latency_ms` (ms between the first and the last token over
//! output − 1, vLLM's TPOT) and the send and completion times in seconds since the
//! epoch, `request_start_time` / `request_end_time` (0.4 and later, computed from
//! `info.timings`) or `start_time` / `end_time` (0.2, 0.3).

use super::records::{from_records, number, opt_number, tokens, Record};
use super::BenchResult;
use crate::error::ConfigError;
use serde_json::Value;

/// Whether `v` looks like a GuideLLM report (an object with a `benchmarks` list).
pub(crate) fn is_guidellm(v: &Value) -> bool {
    v.get("benchmarks").is_some_and(Value::is_array)
}

/// Reads benchmark `index` of the report (`None`: the only one).
pub(crate) fn parse_guidellm(
    v: &Value,
    file: &str,
    index: Option<usize>,
) -> Result<BenchResult, ConfigError> {
    let benches = v
        .get("benchmarks")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ConfigError::new(
                file,
                "benchmarks",
                "missing: not a GuideLLM report (a JSON object with a `benchmarks` list)",
            )
        })?;
    let i = match (index, benches.len()) {
        (Some(i), n) if i < n => i,
        (None, 1) => 0,
        (i, n) => {
            return Err(ConfigError::new(
                file,
                "benchmarks",
                format!(
                    "{n} benchmarks{}; allowed: --benchmark N with 0 ≤ N < {n} (one benchmark is one load level, one sweep point)",
                    i.map(|i| format!(", --benchmark {i}")).unwrap_or_default()
                ),
            ))
        }
    };
    let b = &benches[i];
    let at = format!("benchmarks[{i}].requests.successful");
    let ok = b
        .pointer("/requests/successful")
        .and_then(Value::as_array)
        .ok_or_else(|| ConfigError::new(file, &at, "missing: allowed a list of requests"))?;
    // GuideLLM can keep only a sample of the requests (--sample-requests); a sample
    // cannot be replayed as the load it was measured under.
    if let Some(total) = b
        .pointer("/request_totals/successful")
        .and_then(Value::as_u64)
    {
        if total != ok.len() as u64 {
            return Err(ConfigError::new(
                file,
                &at,
                format!(
                    "{} requests kept of {total} successful (a sample); allowed: a report holding every request (GuideLLM without --sample-requests)",
                    ok.len()
                ),
            ));
        }
    }
    let recs = ok
        .iter()
        .enumerate()
        .map(|(j, r)| {
            let f = |k: &str| format!("{at}[{j}].{k}");
            let time = |new: &str, old: &str| match r.get(new) {
                Some(x) if !x.is_null() => number(Some(x), file, &f(new)),
                _ => number(r.get(old), file, &f(old)),
            };
            Ok(Record {
                start_s: time("request_start_time", "start_time")?,
                end_s: time("request_end_time", "end_time")?,
                ttft_ms: opt_number(
                    r.get("time_to_first_token_ms"),
                    file,
                    &f("time_to_first_token_ms"),
                )?,
                tpot_ms: opt_number(
                    r.get("inter_token_latency_ms"),
                    file,
                    &f("inter_token_latency_ms"),
                )?,
                prompt: tokens(r.get("prompt_tokens"), file, &f("prompt_tokens"))?,
                output: tokens(r.get("output_tokens"), file, &f("output_tokens"))?,
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    from_records(recs, file, &at)
}
