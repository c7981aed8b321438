//! Benchmark result files (`vllm bench serve` / `benchmark_serving.py` JSON) read as a
//! one-point study: the requests it sent, replayed on an experiment's deployment, and
//! its summary figures as the measured values (`infersim compare`). The comparison
//! itself is `infersim reproduce`'s ([`crate::reproduce::reproduce`]), so the metric
//! names, the arithmetic and the table are the same.
//!
//! What a result file records, and what it does not: `benchmark_serving.py` keeps
//! per-request `input_lens`, `output_lens`, `ttfts` and `itls`, and the run's
//! `request_rate`, but not when each request was sent. With `request_rate` `inf`
//! every request is sent at t = 0, which is replayed exactly. With a finite rate the
//! send times were drawn by the client (Poisson or gamma) and are lost, so such a
//! file is refused unless it carries the send offsets in an `arrival_s` list (which
//! `benchmark_serving.py` does not write; `infersim run --format vllm-bench` does).
//! GuideLLM reports ([`guidellm`]) and AIPerf per-request exports ([`aiperf`]) record
//! each request's send time, so they replay at any rate; their figures are computed
//! from the per-request records ([`records`]). [`parse_result`] tells the formats
//! apart (or takes a [`BenchFormat`]) and gives them all as the same [`BenchResult`].

use crate::config::{load_experiment, Point};
use crate::error::ConfigError;
use crate::study::{Study, StudyFile, StudyPoint};
use crate::time::Dur;
use crate::workload::{Arrival, SharedContext, Stop, Trace};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub mod aiperf;
pub mod guidellm;
pub mod records;
pub mod write_study;

/// The study name compared rows carry.
pub const COMPARE_STUDY: &str = "compare";

/// The requests of a benchmark result and its summary figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// (send offset, prompt tokens, output tokens) per request, in the file's order.
    pub requests: Vec<(Dur, u32, u32)>,
    /// Summary figures the simulator also computes, by metric name.
    pub measured: BTreeMap<String, f64>,
}

/// Fields every `benchmark_serving` result has (see `vllm/benchmarks/serve.py`).
const REQUIRED: [&str; 5] = [
    "input_lens",
    "output_lens",
    "request_rate",
    "duration",
    "completed",
];

fn lens(v: &Value, file: &str, field: &str) -> Result<Vec<u32>, ConfigError> {
    let err = |m: String| ConfigError::new(file, field, m);
    let a = v
        .as_array()
        .ok_or_else(|| err("allowed: a list of token counts".into()))?;
    a.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_u64()
                .filter(|&n| n <= u32::MAX as u64)
                .map(|n| n as u32)
                .ok_or_else(|| err(format!("item {i} is {x}, allowed: a token count ≥ 0")))
        })
        .collect()
}

/// Parses the text of a result JSON; `file` names it in messages.
pub fn parse_bench_result(text: &str, file: &str) -> Result<BenchResult, ConfigError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::new(file, "(file)", format!("not JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(ConfigError::new(
            file,
            "(file)",
            "not a benchmark result: supported is the JSON object `vllm bench serve` / benchmark_serving.py writes (--save-result)",
        ));
    };
    for f in REQUIRED {
        if !obj.contains_key(f) {
            return Err(ConfigError::new(
                file,
                f,
                format!(
                    "missing: not a benchmark result (supported: the JSON `vllm bench serve` / benchmark_serving.py writes with --save-result, which has {})",
                    REQUIRED.join(", ")
                ),
            ));
        }
    }
    let input = lens(&obj["input_lens"], file, "input_lens")?;
    let output = lens(&obj["output_lens"], file, "output_lens")?;
    if input.len() != output.len() || input.is_empty() {
        return Err(ConfigError::new(
            file,
            "output_lens",
            format!(
                "{} output lengths for {} input lengths, allowed: one per request, at least one request",
                output.len(),
                input.len()
            ),
        ));
    }
    let offsets: Vec<f64> = match (&obj["request_rate"], obj.get("arrival_s")) {
        (_, Some(a)) => {
            let a = a.as_array().filter(|a| a.len() == input.len());
            let a = a.and_then(|a| {
                a.iter()
                    .map(|x| x.as_f64().filter(|t| t.is_finite() && *t >= 0.0))
                    .collect::<Option<Vec<f64>>>()
            });
            a.ok_or_else(|| {
                ConfigError::new(
                    file,
                    "arrival_s",
                    "allowed: one send offset in seconds ≥ 0 per request",
                )
            })?
        }
        (Value::String(s), None) if s == "inf" => vec![0.0; input.len()],
        (r, None) => {
            return Err(ConfigError::new(
                file,
                "request_rate",
                format!(
                    "got {r}: with a finite rate the client drew each send time and the file does not record them, so the arrivals cannot be replayed; allowed: \"inf\" (all sent at t = 0), or an `arrival_s` list of send offsets"
                ),
            ))
        }
    };
    // benchmark_serving counts a request that returned no text as completed with
    // output_len 0; the engine still prefilled it and sampled one token (as the
    // committed study replays it, calibration/measurements/lambda-vllm-0.6-multistep).
    let requests = offsets
        .iter()
        .zip(input.iter().zip(&output))
        .map(|(&t, (&i, &o))| (Dur::from_secs_f64(t), i, o.max(1)))
        .collect();
    let names = crate::metrics::summary::metric_names();
    let measured = obj
        .iter()
        .filter(|(k, _)| names.iter().any(|n| n == *k))
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64().filter(|x| x.is_finite())?)))
        .collect();
    Ok(BenchResult { requests, measured })
}

/// Reads a result JSON of `vllm bench serve` (see [`parse_bench_result`]).
pub fn read_bench_result(path: &Path) -> Result<BenchResult, ConfigError> {
    read_result(path, Some(BenchFormat::Vllm), None)
}

/// The benchmark tools whose result files `infersim compare` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchFormat {
    /// `vllm bench serve` / `benchmark_serving.py --save-result` JSON.
    Vllm,
    /// GuideLLM's report JSON.
    Guidellm,
    /// AIPerf's `profile_export.jsonl`.
    Aiperf,
}

impl std::str::FromStr for BenchFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vllm" => Ok(Self::Vllm),
            "guidellm" => Ok(Self::Guidellm),
            "aiperf" => Ok(Self::Aiperf),
            _ => Err(format!("{s:?}, allowed: vllm, guidellm, aiperf")),
        }
    }
}

/// What a file of none of the formats is told.
const EXPECTED: &str = "expected one of: the JSON `vllm bench serve` / benchmark_serving.py --save-result writes (input_lens, output_lens, ...), a GuideLLM report JSON (a `benchmarks` list), AIPerf's profile_export.jsonl (one {metadata, metrics, error} object per line)";

/// What a result file that is not JSON looks like instead, when it is one of the
/// other files benchmark tools write (which hold no per-request data, or hold it in
/// a form read only as JSON), with what to give instead.
fn other_format(text: &str) -> Option<&'static str> {
    let head = text.trim_start();
    let first = head.lines().next().unwrap_or("");
    let lower = first.to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        Some("an HTML page (GuideLLM's benchmarks.html?): it holds charts, not the requests; allowed: the JSON report written beside it (GuideLLM writes benchmarks.json by default), or a `vllm bench serve` / AIPerf result")
    } else if text.lines().any(|l| l.starts_with("benchmarks:")) {
        Some("a GuideLLM report in YAML: it is read as JSON only; write it with `--outputs json` (or `--output-path NAME.json`), or convert it: python3 -c 'import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)' REPORT.yaml > REPORT.json")
    } else if first.matches(',').count() >= 2 && !first.contains('{') {
        Some("a CSV table (GuideLLM's benchmarks.csv or a similar summary?): it holds per-benchmark statistics, not the requests; allowed: the per-request JSON (GuideLLM's benchmarks.json, written by default beside the CSV; `vllm bench serve --save-result --save-detailed`; AIPerf's profile_export.jsonl)")
    } else {
        None
    }
}

/// Parses a result file of `format`, or of the format its content shows when `None`;
/// `benchmark` picks one benchmark of a GuideLLM report holding several.
pub fn parse_result(
    text: &str,
    file: &str,
    format: Option<BenchFormat>,
    benchmark: Option<usize>,
) -> Result<BenchResult, ConfigError> {
    let whole: Result<Value, _> = serde_json::from_str(text);
    let first_line = || {
        let l = text.lines().find(|l| !l.trim().is_empty())?;
        serde_json::from_str::<Value>(l).ok()
    };
    let format = match (format, &whole) {
        (Some(f), _) => f,
        (None, Ok(v)) if guidellm::is_guidellm(v) => BenchFormat::Guidellm,
        (None, Ok(v)) if aiperf::is_aiperf_record(v) => BenchFormat::Aiperf,
        (None, Ok(v)) if aiperf::is_aiperf_aggregate(v) => BenchFormat::Aiperf,
        (None, Ok(v)) if v.get("input_lens").is_some() => BenchFormat::Vllm,
        (None, Ok(_)) => {
            return Err(ConfigError::new(
                file,
                "(file)",
                format!("not a benchmark result: {EXPECTED}"),
            ))
        }
        (None, Err(_)) if first_line().is_some_and(|v| aiperf::is_aiperf_record(&v)) => {
            BenchFormat::Aiperf
        }
        (None, Err(e)) => {
            let why = match other_format(text) {
                Some(hint) => hint.to_string(),
                None => format!("not JSON: {e}; {EXPECTED}"),
            };
            return Err(ConfigError::new(file, "(file)", why));
        }
    };
    match format {
        BenchFormat::Vllm => parse_bench_result(text, file),
        BenchFormat::Guidellm => match whole {
            Ok(v) => guidellm::parse_guidellm(&v, file, benchmark),
            Err(e) => Err(ConfigError::new(file, "(file)", format!("not JSON: {e}"))),
        },
        BenchFormat::Aiperf => match whole {
            Ok(v) if aiperf::is_aiperf_aggregate(&v) => Err(ConfigError::new(
                file,
                "(file)",
                "AIPerf's aggregate profile_export_aiperf.json holds no per-request records; allowed: the file read from disk with the profile_export.jsonl beside it, or that JSONL",
            )),
            _ => aiperf::parse_aiperf_jsonl(text, file),
        },
    }
}

/// AIPerf's aggregate JSON at `path`: the requests of the `profile_export.jsonl`
/// beside it, the aggregate's figures as measured. `None` when `text` is not one.
fn aiperf_aggregate(
    path: &Path,
    text: &str,
    format: Option<BenchFormat>,
) -> Option<Result<BenchResult, ConfigError>> {
    if !matches!(format, None | Some(BenchFormat::Aiperf)) {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    if !aiperf::is_aiperf_aggregate(&v) || aiperf::is_aiperf_record(&v) {
        return None;
    }
    let file = path.display().to_string();
    let jsonl = path.with_file_name("profile_export.jsonl");
    let jname = jsonl.display().to_string();
    Some((|| {
        let records = std::fs::read_to_string(&jsonl).map_err(|e| {
            ConfigError::new(
                &jname,
                "(file)",
                format!("cannot read ({e}): the aggregate {file} holds no per-request records, they are read from the profile_export.jsonl beside it"),
            )
        })?;
        let mut r = aiperf::parse_aiperf_jsonl(&records, &jname)?;
        r.measured = aiperf::aggregate_figures(&v, &file)?;
        Ok(r)
    })())
}

/// Reads a result file (see [`parse_result`]).
pub fn read_result(
    path: &Path,
    format: Option<BenchFormat>,
    benchmark: Option<usize>,
) -> Result<BenchResult, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&file, "(file)", format!("cannot read: {e}")))?;
    if let Some(r) = aiperf_aggregate(path, &text, format) {
        return r;
    }
    parse_result(&text, &file, format, benchmark)
}

/// The experiment's single point with its workload replaced by the result's requests.
pub fn replay_point(
    result: &BenchResult,
    experiment: &Path,
    label: &str,
) -> Result<StudyPoint, Vec<ConfigError>> {
    let exp = load_experiment(experiment)?;
    let file = experiment.display().to_string();
    if exp.points.len() != 1 {
        return Err(vec![ConfigError::new(
            file,
            "[sweep]",
            format!(
                "{} sweep points, allowed: an experiment of one point (the deployment the result was measured on)",
                exp.points.len()
            ),
        )]);
    }
    let mut point: Point = exp.points[0].clone();
    let w = &mut point.scenario.workload;
    let max = w.max_context;
    if let Some(i) = result
        .requests
        .iter()
        .position(|r| r.1 as u64 >= max || r.1 as u64 + r.2 as u64 > max)
    {
        return Err(vec![ConfigError::new(
            file,
            "engine.max_model_len",
            format!(
                "request {i} of the result ({} + {} tokens) does not fit max_model_len = {max}; allowed: the deployment the result was measured on",
                result.requests[i].1, result.requests[i].2
            ),
        )]);
    }
    w.arrival = Arrival::Trace(Arc::new(Trace {
        rows: result.requests.clone(),
        prefixes: Vec::new(),
    }));
    w.stop = Stop::Requests(result.requests.len() as u64);
    w.classes.clear();
    w.prompt_pool = None;
    w.shared = SharedContext::None;
    Ok(StudyPoint {
        study: COMPARE_STUDY.into(),
        label: label.into(),
        measured: result
            .measured
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        calibrate: true,
        point,
        experiment: experiment.to_path_buf(),
    })
}

/// A one-point study of `sp` (no targets), for [`crate::reproduce::reproduce`].
pub fn one_point_study(sp: StudyPoint) -> Study {
    Study {
        file: StudyFile {
            name: COMPARE_STUDY.into(),
            gpu: sp.point.meta.gpu.clone(),
            model: sp.point.meta.model.clone(),
            stack: sp.point.meta.profile.clone(),
            trust: "high".into(),
            calibrate: true,
            source: sp.label.clone(),
            experiment: sp.experiment.display().to_string(),
            point: Vec::new(),
            target: Vec::new(),
            known_miss: Vec::new(),
            plot: Vec::new(),
        },
        dir: sp
            .experiment
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        points: vec![sp],
    }
}
