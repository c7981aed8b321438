//! Per-request records (send time, completion time, time to first token, token
//! counts) turned into a [`BenchResult`]: the requests to replay and the summary
//! figures computed from the records with the simulator's definitions. GuideLLM
//! reports and AIPerf exports are read through here, so both give the same figures
//! for the same requests.

use super::BenchResult;
use crate::error::ConfigError;
use crate::time::Dur;
use std::collections::BTreeMap;

/// One successful request as a benchmark client recorded it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    /// When it was sent, in seconds on the client's clock (any origin).
    pub start_s: f64,
    /// When its last token came back, on the same clock.
    pub end_s: f64,
    /// Time to first token in ms, when recorded.
    pub ttft_ms: Option<f64>,
    /// Mean gap after the first token in ms (vLLM's TPOT), when recorded.
    pub tpot_ms: Option<f64>,
    /// Prompt tokens.
    pub prompt: u32,
    /// Output tokens.
    pub output: u32,
}

/// Mean, median, population std and numpy-linear p90/p95/p99 of `v`, under
/// `{stat}_{name}` keys.
fn put_stats(m: &mut BTreeMap<String, f64>, name: &str, v: &[f64]) {
    if v.is_empty() {
        return;
    }
    let mut w: Vec<(f64, u64)> = v.iter().map(|&x| (x, 1)).collect();
    w.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = w.len() as u64;
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    let p = |q| crate::metrics::percentile(&w, n, q);
    for (stat, x) in [
        ("mean", mean),
        ("median", p(50.0)),
        ("std", var.sqrt()),
        ("p90", p(90.0)),
        ("p95", p(95.0)),
        ("p99", p(99.0)),
    ] {
        m.insert(format!("{stat}_{name}"), x);
    }
}

/// The requests of `recs` in send order (offsets from the first send), and the
/// run's figures: `completed`, `duration`, token totals, (first send to last completion), the three
/// throughputs over it, and TTFT, TPOT and E2E latency statistics (TPOT over
/// requests of more than one output token: the record's own figure, else
/// (E2E − TTFT) / (output − 1)). `field` names the records in messages.
pub(crate) fn from_records(
    mut recs: Vec<Record>,
    file: &str,
    field: &str,
) -> Result<BenchResult, ConfigError> {
    if recs.is_empty() {
        return Err(ConfigError::new(
            file,
            field,
            "no successful request, allowed: at least one",
        ));
    }
    if let Some(i) = recs
        .iter()
        .position(|r| !(r.start_s.is_finite() && r.end_s.is_finite() && r.end_s >= r.start_s))
    {
        return Err(ConfigError::new(
            file,
            format!("{field}[{i}]"),
            format!(
                "start {} s, end {} s; allowed: finite times with end ≥ start",
                recs[i].start_s, recs[i].end_s
            ),
        ));
    }
    recs.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let t0 = recs[0].start_s;
    let t1 = recs.iter().map(|r| r.end_s).fold(f64::MIN, f64::max);
    let duration = t1 - t0;
    let n = recs.len() as f64;
    let out: u64 = recs.iter().map(|r| r.output as u64).sum();
    let inp: u64 = recs.iter().map(|r| r.prompt as u64).sum();
    let mut m = BTreeMap::new();
    m.insert("completed".into(), n);
    m.insert("duration".into(), duration);
    m.insert("total_input_tokens".into(), inp as f64);
    m.insert("total_output_tokens".into(), out as f64);
    if duration > 0.0 {
        m.insert("request_throughput".into(), n / duration);
        m.insert("output_throughput".into(), out as f64 / duration);
        m.insert(
            "total_token_throughput".into(),
            (inp + out) as f64 / duration,
        );
    }
    let e2el: Vec<f64> = recs.iter().map(|r| (r.end_s - r.start_s) * 1e3).collect();
    put_stats(&mut m, "e2el_ms", &e2el);
    // TTFT and TPOT only when every request has them (a partial list would be
    // compared against the whole replay).
    let ttft: Option<Vec<f64>> = recs.iter().map(|r| r.ttft_ms).collect();
    if let Some(ttft) = &ttft {
        put_stats(&mut m, "ttft_ms", ttft);
    }
    let tpot: Option<Vec<f64>> = recs
        .iter()
        .zip(&e2el)
        .filter(|(r, _)| r.output > 1)
        .map(|(r, e)| {
            r.tpot_ms
                .or_else(|| r.ttft_ms.map(|t| (e - t) / (r.output - 1) as f64))
        })
        .collect();
    if let Some(tpot) = tpot {
        put_stats(&mut m, "tpot_ms", &tpot);
    }
    // An empty answer is replayed as one sampled token, as in the vLLM reader.
    let requests = recs
        .iter()
        .map(|r| {
            (
                Dur::from_secs_f64(r.start_s - t0),
                r.prompt,
                r.output.max(1),
            )
        })
        .collect();
    Ok(BenchResult {
        requests,
        measured: m,
    })
}

/// A token count at `v`, or an error naming `field`.
pub(crate) fn tokens(
    v: Option<&serde_json::Value>,
    file: &str,
    field: &str,
) -> Result<u32, ConfigError> {
    v.and_then(serde_json::Value::as_u64)
        .filter(|&n| n <= u32::MAX as u64)
        .map(|n| n as u32)
        .ok_or_else(|| ConfigError::new(file, field, "missing or not a token count ≥ 0"))
}

/// A finite number at `v`, or an error naming `field`.
pub(crate) fn number(
    v: Option<&serde_json::Value>,
    file: &str,
    field: &str,
) -> Result<f64, ConfigError> {
    v.and_then(serde_json::Value::as_f64)
        .filter(|x| x.is_finite())
        .ok_or_else(|| ConfigError::new(file, field, "missing or not a finite number"))
}

/// A finite number at `v`, `None` when absent or null, an error when something else.
pub(crate) fn opt_number(
    v: Option<&serde_json::Value>,
    file: &str,
    field: &str,
) -> Result<Option<f64>, ConfigError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => number(v, file, field).map(Some),
    }
}
