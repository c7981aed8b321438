//! Experiment files: TOML in, checked [`Scenario`]s out.
//!
//! A file is deserialised into raw types with `deny_unknown_fields`, then checked and
//! turned into the types the simulator uses. Sweep axes (`[sweep]`, dotted paths with
//! value lists) are expanded *before* checking, so every point is checked.
//!
//! ```toml
//! name = "quickstart"
//! [hardware]
//! gpu = "a100-80gb"
//! [engine]
//! model = "llama-3.1-8b"
//! policy = "continuous"
//! [workload]
//! arrival = "poisson"
//! rate_per_s = 10.0
//! num_requests = 2000
//! input_tokens = { dist = "fixed", value = 512 }
//! output_tokens = { dist = "fixed", value = 128 }
//! [sweep]
//! "workload.rate_per_s" = [5.0, 10.0, 20.0]
//! ```

pub mod validate;

use crate::cost::CostModel;
use crate::error::ConfigError;
use crate::gpu::Sharing;
use crate::kv::KvGeometry;
use crate::policy::Policy;
use crate::profile::{resolve_profile, Profile};
use crate::router::RouterKind;
use crate::sim::{InstanceSetup, Scenario};
use crate::specs::{load_gpu, load_model, GpuSpec, ModelSpec, GIB};
use crate::time::Dur;
use crate::validate::{
    check_schema, fmt_num, show, type_name, Origin, PointSources, Spans, ARRIVALS,
    MAX_INSTANCES_PER_GPU, MAX_POINTS, POLICIES, SAMPLINGS, SHARING, STACKS, THINKS,
};
use crate::workload::{parse_trace, Arrival, LengthDist, Stop, Think, Trace, Workload};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The raw experiment file (after sweep expansion).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Experiment name (default output folder `output/<name>/`).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Base seed (default 0); replication r uses seed + r.
    #[serde(default)]
    pub seed: u64,
    /// Runs per point with different seeds (default 1).
    #[serde(default = "one")]
    pub replications: u32,
    /// GPUs and how they are shared.
    pub hardware: RawHardware,
    /// The serving engine of every instance.
    pub engine: RawEngine,
    /// The load.
    pub workload: RawWorkload,
    /// Instances placed one by one (`[[instance]]`: `gpu` = its GPU's index, and any
    /// `[engine]` setting to override), instead of `instances_per_gpu` copies of
    /// `[engine]`: for deployments that mix models, policies or memory fractions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance: Vec<toml::Table>,
}

fn one() -> u32 {
    1
}

/// `[hardware]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHardware {
    /// Shipped GPU name or a path to a GPU spec.
    pub gpu: String,
    /// GPUs (default 1).
    #[serde(default = "one")]
    pub num_gpus: u32,
    /// Instances on each GPU (default 1).
    #[serde(default = "one")]
    pub instances_per_gpu: u32,
    /// `exclusive` (default), `mps` or `time-slice`.
    #[serde(default)]
    pub sharing: Option<String>,
    /// Router in front of the instances (default `round-robin`).
    #[serde(default)]
    pub router: Option<RouterKind>,
    /// Time-slice quantum, ms (time-slice only).
    #[serde(default)]
    pub timeslice_ms: Option<f64>,
    /// Context-switch cost, ms (time-slice only).
    #[serde(default)]
    pub switch_cost_ms: Option<f64>,
    /// MPS active-thread percentage per instance (mps only, default 100).
    #[serde(default)]
    pub active_thread_percentage: Option<f64>,
    /// MIG profile (for example `3g.40gb`): each GPU is split into MIG instances of
    /// this profile, each of which then counts as a GPU of its own.
    #[serde(default)]
    pub mig: Option<String>,
    /// MIG instances per GPU (default: as many of the profile as fit).
    #[serde(default)]
    pub mig_instances: Option<u32>,
}

/// Default time-slice quantum. NVIDIA does not publish it; the driver's default
/// time-slice is commonly reported as about 2 ms. Always echoed in results.
pub const DEFAULT_TIMESLICE_MS: f64 = 2.0;
/// Default context-switch cost. NVIDIA does not publish it; reported measurements of
/// GPU context switches are tens to hundreds of microseconds. Always echoed.
pub const DEFAULT_SWITCH_COST_MS: f64 = 0.1;

/// `[engine]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// Shipped model name or a path to a model spec.
    pub model: String,
    /// `sequential`, `static` or `continuous`.
    pub policy: String,
    /// Serving stack whose profile prices steps (default `vllm`).
    #[serde(default)]
    pub stack: Option<String>,
    /// Stack profile name or path (default: the stack's shipped profile, `<stack>`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Fraction of GPU memory this instance may use (default 0.9).
    #[serde(default)]
    pub gpu_memory_utilization: Option<f64>,
    /// Tokens per KV block (default 16).
    #[serde(default)]
    pub block_size: Option<u64>,
    /// Longest prompt + output (default: the model's context).
    #[serde(default)]
    pub max_model_len: Option<u64>,
    /// KV cache size in tokens, overriding the memory estimate (as a server log
    /// reports it).
    #[serde(default)]
    pub kv_cache_tokens: Option<u64>,
    /// Settings of the continuous policy (used when `policy = "continuous"`; each
    /// policy's settings live in their own table so a sweep over `engine.policy`
    /// can carry both).
    #[serde(default)]
    pub continuous: Option<RawContinuous>,
    /// Settings of the static policy.
    #[serde(default, rename = "static")]
    pub static_: Option<RawStatic>,
}

/// `[engine.continuous]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawContinuous {
    /// Default 256.
    pub max_num_seqs: Option<u32>,
    /// Default 2048 with chunked prefill, else max_model_len.
    pub max_num_batched_tokens: Option<u32>,
    /// Default true.
    pub enable_chunked_prefill: Option<bool>,
    /// Automatic prefix caching (default true, as vLLM V1).
    pub enable_prefix_caching: Option<bool>,
}

/// `[engine.static]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    /// Largest batch (default 8).
    pub batch_size: Option<u32>,
    /// Longest wait for a full batch, ms (default 0).
    pub max_wait_ms: Option<f64>,
    /// Whether finished sequences stay in the batch (default true).
    pub pad_finished: Option<bool>,
}

/// `[workload]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    /// `poisson`, `gamma`, `constant`, `trace`, `closed-loop` or `offline`.
    pub arrival: String,
    /// Requests per second (poisson, gamma, constant).
    pub rate_per_s: Option<f64>,
    /// Gamma shape (gamma only, default 1).
    pub burstiness: Option<f64>,
    /// Finite run: requests to issue.
    pub num_requests: Option<u64>,
    /// Timed run: length, seconds.
    pub duration_s: Option<f64>,
    /// Timed run: warm-up excluded from statistics, seconds (default 0).
    pub warmup_s: Option<f64>,
    /// Closed loop: users.
    pub users: Option<u32>,
    /// Closed loop: users started per second (default: all at once).
    pub spawn_rate_per_s: Option<f64>,
    /// Closed loop: `constant` (default), `exponential` or `between`.
    pub think: Option<String>,
    /// Closed loop: think time (constant) or mean (exponential), seconds (default 0).
    pub think_time_s: Option<f64>,
    /// Closed loop, `between`: bounds, seconds.
    pub think_min_s: Option<f64>,
    /// Closed loop, `between`: bounds, seconds.
    pub think_max_s: Option<f64>,
    /// Offline: requests per group.
    pub batch_size: Option<u32>,
    /// Trace: CSV path (relative to the experiment file).
    pub trace: Option<String>,
    /// Trace: divide gaps by this (default 1).
    pub time_scale: Option<f64>,
    /// Prompt lengths (not for traces).
    pub input_tokens: Option<LengthDist>,
    /// Output lengths (not for traces).
    pub output_tokens: Option<LengthDist>,
    /// Number of distinct prompts the requests draw from (their lengths drawn once
    /// each from `input_tokens`); requests with the same prompt share it as a prefix
    /// the engine can cache. Default: every prompt unique.
    pub prompt_pool: Option<u32>,
    /// `random` (default: requests with the same prompt produce different tokens) or
    /// `greedy` (temperature 0, as `benchmark_serving`: they produce the same tokens,
    /// so the prefix cache also holds a request's generated tokens for its siblings).
    pub sampling: Option<String>,
}

/// One checked point of an experiment.
#[derive(Debug, Clone)]
pub struct Point {
    /// Index in the sweep, from 0.
    pub index: usize,
    /// Swept (path, value) pairs of this point.
    pub params: Vec<(String, toml::Value)>,
    /// The resolved raw config of this point.
    pub raw: RawExperiment,
    /// The scenario to simulate.
    pub scenario: Scenario,
    /// Descriptors written into every result row.
    pub meta: Meta,
    /// The model served.
    pub model: ModelSpec,
    /// The GPU type.
    pub gpu: GpuSpec,
}

impl Point {
    /// This point's scenario with every instance priced by `profile` instead, for
    /// the point's model (calibration replays studies of one model; a deployment of
    /// mixed `[[instance]]`s would be re-priced as if all served that model).
    pub fn with_profile(&self, profile: &Profile) -> Result<Scenario, crate::error::CostError> {
        let mut sc = self.scenario.clone();
        let mut cost = CostModel::new(&self.model, &self.gpu, profile)?;
        cost.set_front_end(has_front_end(&sc.workload));
        let lat = api_latency(profile, &sc.workload);
        for i in &mut sc.instances {
            i.cost = cost.clone();
            i.api_latency = lat;
        }
        Ok(sc)
    }
}

/// The API front-end latency of `profile` for `workload`: none for offline batches,
/// which call the engine in-process.
/// Whether requests reach the engine through an API server (everything but offline
/// batches, which call the engine in-process).
pub fn has_front_end(workload: &Workload) -> bool {
    !matches!(workload.arrival, Arrival::Offline { .. })
}

pub fn api_latency(profile: &Profile, workload: &Workload) -> Dur {
    match workload.arrival {
        Arrival::Offline { .. } => Dur(0),
        _ => Dur::from_secs_f64(profile.api_latency_us * 1e-6),
    }
}

/// What a result row records about its set-up.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// GPU type.
    pub gpu: String,
    /// GPUs.
    pub gpus: u32,
    /// Instances in all.
    pub instances: u32,
    /// Sharing mode.
    pub sharing: String,
    /// Router.
    pub router: String,
    /// Model.
    pub model: String,
    /// Batching policy.
    pub policy: String,
    /// Profile used.
    pub profile: String,
    /// Whether that profile is calibrated on measurements.
    pub calibrated: bool,
    /// KV cache per instance, tokens.
    pub kv_cache_tokens: u64,
    /// Time-slice quantum and switch cost (ms), when time-slicing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeslice_ms: Option<f64>,
    /// Switch cost, ms, when time-slicing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_cost_ms: Option<f64>,
    /// MIG profile of every GPU's instances, with MIG (`gpus` then counts physical
    /// GPUs and `mig_slices` the MIG instances, which the per-GPU figures list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig: Option<String>,
    /// MIG instances in all, with MIG.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig_slices: Option<u32>,
}

/// A loaded experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Name.
    pub name: String,
    /// Path it was read from.
    pub path: PathBuf,
    /// Base seed.
    pub seed: u64,
    /// Replications per point.
    pub replications: u32,
    /// Sweep axes: (path, values).
    pub axes: Vec<(String, Vec<toml::Value>)>,
    /// Every point, checked.
    pub points: Vec<Point>,
}

/// Reads, expands and checks an experiment file. Collects every error it can find,
/// each located (`file:line:column`) where the file allows.
pub fn load_experiment(path: &Path) -> Result<Experiment, Vec<ConfigError>> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        vec![ConfigError::new(
            &file,
            "(file)",
            format!("cannot read: {e}"),
        )]
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..bad]).into_owned();
        vec![ConfigError::new(
            &file,
            "(file)",
            "is not UTF-8 text (TOML files must be UTF-8)",
        )
        .at_offset(&text, bad)]
    })?;
    parse_experiment(&text, path)
}

/// The most distinct errors reported for one file.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// Sweep keys that cannot be swept, and why.
const UNSWEEPABLE: &[(&str, &str)] = &[
    ("name", "one experiment writes one output folder"),
    ("seed", "use replications, or run again with --seed"),
    ("replications", "set it once for the whole experiment"),
    (VARIANT, "write [[variant]] tables instead"),
];

/// Like [`load_experiment`] from text (`path` names the file in messages and anchors
/// relative paths).
pub fn parse_experiment(text: &str, path: &Path) -> Result<Experiment, Vec<ConfigError>> {
    let file = path.display().to_string();
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![toml_error(&e, text, &file)])?;
    let spans = Spans::new(text);
    let no_sources = PointSources::default();
    let mut errors = Vec::new();
    let variants = take_variants(&mut doc, &file, &mut errors);
    let mut axes = take_sweep(&mut doc, &file, &mut errors);
    if !variants.is_empty() {
        let names = variants
            .iter()
            .map(|(n, _)| toml::Value::String(n.clone()))
            .collect();
        axes.insert(0, (VARIANT.to_string(), names));
    }
    let n_points = axes
        .iter()
        .try_fold(1usize, |acc, a| acc.checked_mul(a.1.len()))
        .filter(|n| *n <= MAX_POINTS);
    if n_points.is_none() {
        let sizes: Vec<String> = axes.iter().map(|a| a.1.len().to_string()).collect();
        errors.push(ConfigError::new(
            &file,
            "sweep",
            format!(
                "{} combinations are more than the limit of {MAX_POINTS} sweep points; split the experiment into several files",
                sizes.join(" × ")
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| spans.locate(e, &file, &no_sources).0)
            .collect());
    }
    let n_points = n_points.unwrap_or(1);
    let base = path.parent().map(Path::to_path_buf);
    let mut traces = TraceCache::default();
    let mut points = Vec::new();
    let mut found: Vec<(ConfigError, Origin, usize)> = Vec::new();
    let picks_of = |index: usize| {
        // The last axis varies fastest.
        let mut rem = index;
        let mut picks = vec![0; axes.len()];
        for (ai, (_, vals)) in axes.iter().enumerate().rev() {
            picks[ai] = rem % vals.len();
            rem /= vals.len();
        }
        picks
    };
    let params_of = |index: usize| -> Vec<(String, toml::Value)> {
        picks_of(index)
            .iter()
            .zip(&axes)
            .map(|(&p, (k, vals))| (k.clone(), vals[p].clone()))
            .collect()
    };
    for index in 0..n_points {
        let mut d = doc.clone();
        let picks = picks_of(index);
        let mut sources = PointSources::default();
        let mut point_errors = Vec::new();
        for (ai, (key, vals)) in axes.iter().enumerate() {
            if key == VARIANT {
                deep_merge(&mut d, &variants[picks[ai]].1);
                sources.variant = Some(picks[ai]);
                continue;
            }
            sources.sweep.push((key.clone(), picks[ai]));
            if let Err(e) = set_path(&mut d, key, vals[picks[ai]].clone(), &file) {
                point_errors.push(e);
            }
        }
        if point_errors.is_empty() {
            match check_point(d, base.as_deref(), &file, &mut traces) {
                Ok((raw, (scenario, meta, model, gpu))) => points.push(Point {
                    index,
                    params: params_of(index),
                    raw,
                    scenario,
                    meta,
                    model,
                    gpu,
                }),
                Err(es) => point_errors = es,
            }
        }
        for e in point_errors {
            let (e, origin) = spans.locate(e, &file, &sources);
            found.push((e, origin, index));
        }
    }
    if !found.is_empty() {
        let label = |i: usize| {
            let p: Vec<String> = params_of(i)
                .iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect();
            format!("{i}: {}", p.join(", "))
        };
        return Err(group_errors(found, n_points, &file, label));
    }
    let first = &points[0].raw;
    Ok(Experiment {
        name: first.name.clone(),
        path: path.to_path_buf(),
        seed: first.seed,
        replications: first.replications,
        axes,
        points,
    })
}

/// Merges identical errors of different sweep points into one. An error that holds in
/// only some points, from a value in the body of the file, says in which points.
fn group_errors(
    found: Vec<(ConfigError, Origin, usize)>,
    n_points: usize,
    file: &str,
    label: impl Fn(usize) -> String,
) -> Vec<ConfigError> {
    let mut groups: Vec<(ConfigError, Origin, Vec<usize>)> = Vec::new();
    let mut index: HashMap<ConfigError, usize> = HashMap::new();
    for (e, origin, p) in found {
        match index.get(&e) {
            Some(&i) => {
                if groups[i].2.last() != Some(&p) {
                    groups[i].2.push(p);
                }
            }
            None => {
                index.insert(e.clone(), groups.len());
                groups.push((e, origin, vec![p]));
            }
        }
    }
    // In file order: this file's errors by line, then other files' (traces, specs).
    groups.sort_by_key(|g| (g.0.file != file, g.0.file.clone(), g.0.line, g.0.column));
    let total = groups.len();
    let mut out: Vec<ConfigError> = groups
        .into_iter()
        .take(MAX_REPORTED_ERRORS)
        .map(|(mut e, origin, pts)| {
            if pts.len() < n_points && origin == Origin::Body {
                let shown: Vec<String> = pts.iter().take(3).map(|&p| label(p)).collect();
                let more = if pts.len() > 3 {
                    format!("; and {} more", pts.len() - 3)
                } else {
                    String::new()
                };
                let s = if pts.len() == 1 { "" } else { "s" };
                e.message = format!(
                    "{} (in sweep point{s} {}{more})",
                    e.message,
                    shown.join("; ")
                );
            }
            e
        })
        .collect();
    if total > MAX_REPORTED_ERRORS {
        out.push(ConfigError::new(
            file,
            "(experiment)",
            format!(
                "{} more errors not shown; fix the ones above first",
                total - MAX_REPORTED_ERRORS
            ),
        ));
    }
    out
}

/// Takes `[sweep]` out of the document: its axes, in file order.
fn take_sweep(
    doc: &mut toml::Table,
    file: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Vec<toml::Value>)> {
    let mut axes = Vec::new();
    match doc.remove("sweep") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (k, v) in t {
                let field = format!("sweep.{k}");
                if let Some((_, why)) = UNSWEEPABLE.iter().find(|(n, _)| *n == k) {
                    errors.push(ConfigError::new(
                        file,
                        field,
                        format!("{k:?} cannot be swept: {why}"),
                    ));
                    continue;
                }
                match v {
                    toml::Value::Array(a) if !a.is_empty() => axes.push((k, a)),
                    toml::Value::Array(_) => errors.push(ConfigError::new(
                        file,
                        field,
                        "is an empty list; give at least one value",
                    )),
                    toml::Value::Table(_) => errors.push(ConfigError::new(
                        file,
                        field,
                        format!(
                            "got a table, allowed: a list of values; write dotted paths in quotes, for example \"{k}.key\" = [1, 2]"
                        ),
                    )),
                    other => errors.push(ConfigError::new(
                        file,
                        field,
                        format!(
                            "got {} ({}), allowed: a list of values, for example [{}]",
                            show(&other),
                            type_name(&other),
                            show(&other)
                        ),
                    )),
                }
            }
        }
        Some(other) => errors.push(ConfigError::new(
            file,
            "sweep",
            format!(
                "got {} ({}), allowed: a table of \"dotted.path\" = [values]",
                show(&other),
                type_name(&other)
            ),
        )),
    }
    axes
}

/// The name of the sweep axis made by `[[variant]]` tables.
pub const VARIANT: &str = "variant";

/// Removes the `[[variant]]` tables: each has a `name` and settings that override the
/// rest of the file (tables merge key by key). Variants form the first sweep axis,
/// for set-ups that differ in several settings at once.
fn take_variants(
    doc: &mut toml::Table,
    file: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, toml::Table)> {
    let Some(v) = doc.remove(VARIANT) else {
        return Vec::new();
    };
    let toml::Value::Array(items) = v else {
        errors.push(ConfigError::new(
            file,
            VARIANT,
            format!(
                "got {}, allowed: an array of tables ([[variant]]), each with a name",
                type_name(&v)
            ),
        ));
        return Vec::new();
    };
    if items.is_empty() {
        errors.push(ConfigError::new(
            file,
            VARIANT,
            "is empty; give at least one [[variant]]",
        ));
    }
    let mut out: Vec<(String, toml::Table)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let toml::Value::Table(mut t) = item else {
            errors.push(ConfigError::new(
                file,
                format!("variant[{i}]"),
                format!("got {}, allowed: a table", type_name(&item)),
            ));
            continue;
        };
        let name = match t.remove("name") {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
            other => {
                let got = other
                    .map(|v| format!("got {}; ", show(&v)))
                    .unwrap_or_default();
                errors.push(ConfigError::new(
                    file,
                    format!("variant[{i}].name"),
                    format!("{got}a non-empty string naming the set-up is required"),
                ));
                continue;
            }
        };
        if out.iter().any(|(n, _)| *n == name) {
            errors.push(ConfigError::new(
                file,
                format!("variant[{i}].name"),
                format!("{name:?} is used twice; names must be unique"),
            ));
            continue;
        }
        out.push((name, t));
    }
    out
}

/// A TOML syntax error, located.
fn toml_error(e: &toml::de::Error, text: &str, file: &str) -> ConfigError {
    let lines: Vec<&str> = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let msg = if lines.is_empty() {
        "invalid TOML: a value is expected here".to_string()
    } else {
        format!("invalid TOML: {}", lines.join("; "))
    };
    let err = ConfigError::new(file, "(toml)", msg);
    match e.span() {
        Some(span) => err.at_offset(text, span.start),
        None => err,
    }
}

/// Sets `a.b.c` in a TOML table to `v`; the parent tables must exist or are created.
fn set_path(
    doc: &mut toml::Table,
    path: &str,
    v: toml::Value,
    file: &str,
) -> Result<(), ConfigError> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(ConfigError::new(
            file,
            format!("sweep.{path}"),
            "is not a dotted path like \"workload.rate_per_s\"",
        ));
    }
    let mut t = doc;
    for (i, p) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(tt) => tt,
            other => {
                return Err(ConfigError::new(
                    file,
                    format!("sweep.{path}"),
                    format!(
                        "{} is {}, not a table, so it cannot hold {path:?}",
                        parts[..=i].join("."),
                        type_name(other)
                    ),
                ))
            }
        };
    }
    t.insert(parts[parts.len() - 1].to_string(), v);
    Ok(())
}

/// Traces read while checking an experiment, by (path, time scale), so a sweep reads
/// each once.
type TraceCache = HashMap<(PathBuf, u64), Result<Arc<Trace>, ConfigError>>;

/// What a checked point is made of.
pub type Built = (Scenario, Meta, ModelSpec, GpuSpec);

/// Checks one resolved sweep point: the schema first, then the meaning of each
/// section, independently where they are independent, so that one pass reports as
/// many errors as it can.
fn check_point(
    d: toml::Table,
    base: Option<&Path>,
    file: &str,
    traces: &mut TraceCache,
) -> Result<(RawExperiment, Built), Vec<ConfigError>> {
    let schema = check_schema(file, &d);
    let mut c = Checker {
        file,
        base,
        traces,
        errs: Vec::new(),
    };
    if schema.is_empty() {
        let raw = RawExperiment::deserialize(toml::Value::Table(d)).map_err(|e| {
            vec![ConfigError::new(
                file,
                "(experiment)",
                e.message().to_string(),
            )]
        })?;
        let built = c.point(
            Some(&raw.name),
            Some(&raw.hardware),
            Some(&raw.engine),
            Some(&raw.workload),
        );
        let built = match built {
            Some(b) if c.errs.is_empty() && !raw.instance.is_empty() => c.place_instances(&raw, b),
            other => other,
        };
        return match built {
            Some(b) if c.errs.is_empty() => Ok((raw, b)),
            _ => Err(c.errs),
        };
    }
    // Check the meaning of the sections the schema passed (or found only unknown keys
    // in, which are left out), to report their errors too.
    let section = |sec: &str| -> Option<toml::Value> {
        let dotted = format!("{sec}.");
        let mut v = d.get(sec)?.clone();
        for e in &schema {
            if e.field == sec {
                return None;
            }
            if let Some(rest) = e.field.strip_prefix(&dotted) {
                if !e.message.starts_with("unknown key") {
                    return None;
                }
                remove_path(&mut v, rest);
            }
        }
        Some(v)
    };
    let hw = section("hardware").and_then(|v| RawHardware::deserialize(v).ok());
    let eng = section("engine").and_then(|v| RawEngine::deserialize(v).ok());
    let wl = section("workload").and_then(|v| RawWorkload::deserialize(v).ok());
    let name = d.get("name").and_then(|v| v.as_str());
    c.point(name, hw.as_ref(), eng.as_ref(), wl.as_ref());
    let mut errs = schema;
    errs.extend(c.errs);
    Err(errs)
}

/// Removes the key at dotted `path` under `v`, if there.
fn remove_path(v: &mut toml::Value, path: &str) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let toml::Value::Table(t) = cur {
        t.remove(parts[parts.len() - 1]);
    }
}

/// Checks one raw point and builds its scenario; every error found.
pub fn build_point(
    raw: &RawExperiment,
    base: Option<&Path>,
    file: &str,
) -> Result<Built, Vec<ConfigError>> {
    let mut traces = TraceCache::default();
    let mut c = Checker {
        file,
        base,
        traces: &mut traces,
        errs: Vec::new(),
    };
    if raw.replications == 0 {
        c.err("replications", "got 0, allowed: an integer from 1 to 1000");
    }
    match c.point(
        Some(&raw.name),
        Some(&raw.hardware),
        Some(&raw.engine),
        Some(&raw.workload),
    ) {
        Some(b) if c.errs.is_empty() => {
            if raw.instance.is_empty() {
                return Ok(b);
            }
            match c.place_instances(raw, b) {
                Some(b) if c.errs.is_empty() => Ok(b),
                _ => Err(c.errs),
            }
        }
        _ => Err(c.errs),
    }
}

/// The checked `[hardware]`.
struct Hw {
    /// The GPU, or one MIG instance of it.
    gpu: GpuSpec,
    sharing: Sharing,
    atp: f64,
    router: RouterKind,
    /// GPUs as the simulation sees them (MIG instances with MIG).
    num_gpus: u32,
    per_gpu: u32,
    /// With MIG: (profile, physical GPUs).
    mig: Option<(String, u32)>,
}

/// The checked `[engine]`.
struct Eng {
    model: ModelSpec,
    profile: Profile,
    policy: Policy,
    block_size: u64,
    blocks: u64,
    geo: KvGeometry,
}

/// Collects the errors of one point.
struct Checker<'a> {
    file: &'a str,
    base: Option<&'a Path>,
    traces: &'a mut TraceCache,
    errs: Vec<ConfigError>,
}

impl Checker<'_> {
    fn err(&mut self, field: &str, msg: impl Into<String>) {
        self.errs.push(ConfigError::new(self.file, field, msg));
    }

    fn range(&mut self, field: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Option<f64> {
        if v.is_finite() && (lo..=hi).contains(&v) {
            Some(v)
        } else {
            self.err(
                field,
                format!(
                    "got {}, allowed: {} to {}{unit}",
                    fmt_num(v),
                    fmt_num(lo),
                    fmt_num(hi)
                ),
            );
            None
        }
    }

    /// Errs if an option is given that does not apply.
    fn not_for(&mut self, field: &str, present: bool, what: &str) {
        if present {
            self.err(field, format!("does not apply to {what}; remove it"));
        }
    }

    /// A spec file named by `field` that cannot be read is an error of this file.
    fn spec_error(&self, e: ConfigError, field: &str, what: &str) -> ConfigError {
        if e.field == "(file)" && e.file != self.file {
            let why = e
                .message
                .strip_prefix("cannot read: ")
                .unwrap_or(&e.message);
            ConfigError::new(
                self.file,
                field,
                format!("cannot read {what} spec {}: {why}", e.file),
            )
        } else {
            e
        }
    }

    /// Checks every section given; the point, when everything holds.
    fn point(
        &mut self,
        name: Option<&str>,
        h: Option<&RawHardware>,
        e: Option<&RawEngine>,
        w: Option<&RawWorkload>,
    ) -> Option<Built> {
        if let Some(n) = name {
            if n.trim().is_empty() || n.contains(['/', '\\']) || n == "." || n == ".." {
                self.err(
                    "name",
                    format!("got {n:?}, allowed: a non-empty name without slashes (it names the output folder)"),
                );
            }
        }
        let (gpu, hw) = match h {
            Some(h) => self.hardware(h),
            None => (None, None),
        };
        let per_gpu = h
            .map(|h| h.instances_per_gpu)
            .filter(|n| (1..=MAX_INSTANCES_PER_GPU as u32).contains(n));
        let (eng, max_len) = match e {
            Some(e) => self.engine(e, gpu.as_ref(), per_gpu),
            None => (None, None),
        };
        let max_len = max_len.unwrap_or(u32::MAX as u64);
        let wl = w.and_then(|w| self.workload(w, max_len));
        let (Some(hw), Some(eng), Some(workload)) = (hw, eng, wl) else {
            return None;
        };
        let closed = matches!(workload.arrival, Arrival::ClosedLoop { .. });
        if !closed && hw.router == RouterKind::Sticky {
            // Sticky would fall back to round-robin for open-loop requests; say so
            // rather than guess.
            self.err("hardware.router", "\"sticky\" pins closed-loop users; this workload has no users (use arrival = \"closed-loop\" or another router)");
        }
        if !self.errs.is_empty() {
            return None;
        }
        let cost = match CostModel::new(&eng.model, &hw.gpu, &eng.profile) {
            Ok(mut c) => {
                c.set_front_end(has_front_end(&workload));
                c
            }
            Err(e) => {
                self.err(
                    "hardware.gpu",
                    format!("cannot price steps on this GPU: {e}"),
                );
                return None;
            }
        };
        let n = (hw.num_gpus * hw.per_gpu) as usize;
        let lat = api_latency(&eng.profile, &workload);
        let instances = (0..n)
            .map(|i| InstanceSetup {
                gpu: i / hw.per_gpu as usize,
                policy: eng.policy.clone(),
                cost: cost.clone(),
                geo: eng.geo,
                kv_blocks: eng.blocks,
                active_thread_fraction: hw.atp / 100.0,
                api_latency: lat,
                scheduler: Default::default(),
            })
            .collect();
        let meta = Meta {
            gpu: hw.gpu.name.clone(),
            gpus: hw.mig.as_ref().map_or(hw.num_gpus, |m| m.1),
            instances: n as u32,
            sharing: hw.sharing.name().into(),
            router: hw.router.name().into(),
            model: eng.model.name.clone(),
            policy: eng.policy.name().into(),
            profile: eng.profile.name.clone(),
            calibrated: eng.profile.is_calibrated(),
            kv_cache_tokens: eng.blocks.saturating_mul(eng.block_size),
            timeslice_ms: match hw.sharing {
                Sharing::TimeSlice { quantum, .. } => Some(quantum.as_millis_f64()),
                _ => None,
            },
            switch_cost_ms: match hw.sharing {
                Sharing::TimeSlice { switch_cost, .. } => Some(switch_cost.as_millis_f64()),
                _ => None,
            },
            mig: hw.mig.as_ref().map(|m| m.0.clone()),
            mig_slices: hw.mig.as_ref().map(|_| hw.num_gpus),
        };
        Some((
            Scenario {
                workload,
                gpus: vec![hw.sharing; hw.num_gpus as usize],
                instances,
                router: hw.router,
            },
            meta,
            eng.model,
            hw.gpu,
        ))
    }

    /// `[[instance]]`: replaces the copies of `[engine]` by instances placed one by
    /// one, each with `[engine]`'s settings overridden by its own.
    fn place_instances(&mut self, raw: &RawExperiment, built: Built) -> Option<Built> {
        let (mut sc, mut meta, model0, gpu) = built;
        let h = &raw.hardware;
        if h.instances_per_gpu != 1 {
            self.err(
                "hardware.instances_per_gpu",
                "does not apply when [[instance]] tables place the instances; remove it",
            );
            return None;
        }
        let engine = match toml::Value::try_from(&raw.engine) {
            Ok(toml::Value::Table(t)) => t,
            _ => {
                self.err("engine", "cannot be combined with [[instance]]");
                return None;
            }
        };
        let sharing = sc.gpus[0];
        let atp = sc.instances[0].active_thread_fraction;
        let mut per_gpu = vec![0u32; sc.gpus.len()];
        let mut util = vec![0.0f64; sc.gpus.len()];
        let mut instances = Vec::new();
        let (mut models, mut policies, mut profiles) = (Vec::new(), Vec::new(), Vec::new());
        let mut calibrated = true;
        for (i, over) in raw.instance.iter().enumerate() {
            let field = format!("instance[{i}]");
            let g = over
                .get("gpu")
                .and_then(toml::Value::as_integer)
                .unwrap_or(-1);
            if g < 0 || g as usize >= sc.gpus.len() {
                self.err(&format!("{field}.gpu"), {
                    let n = sc.gpus.len();
                    let (what, count) = match &meta.mig {
                        Some(p) => ("a MIG instance", format!("{n} instances of {p} in all")),
                        None => ("a GPU", format!("hardware.num_gpus = {n}")),
                    };
                    format!(
                        "got {g}, allowed: {what} index from 0 to {} ({count})",
                        n - 1
                    )
                });
                continue;
            }
            let g = g as usize;
            let mut merged = engine.clone();
            let mut over = over.clone();
            over.remove("gpu");
            deep_merge(&mut merged, &over);
            let re = match RawEngine::deserialize(toml::Value::Table(merged)) {
                Ok(re) => re,
                Err(e) => {
                    self.err(&field, e.message().to_string());
                    continue;
                }
            };
            let n0 = self.errs.len();
            let (eng, max_len) = self.engine(&re, Some(&gpu), Some(1));
            for e in &mut self.errs[n0..] {
                if let Some(rest) = e.field.strip_prefix("engine.") {
                    e.field = format!("{field}.{rest}");
                }
            }
            let Some(eng) = eng else { continue };
            if max_len != Some(sc.workload.max_context) {
                self.err(
                    &format!("{field}.max_model_len"),
                    format!(
                        "is {}, but every instance must serve the same max_model_len as [engine] ({}), since any request may reach any instance",
                        max_len.unwrap_or(0),
                        sc.workload.max_context
                    ),
                );
                continue;
            }
            per_gpu[g] += 1;
            util[g] += re.gpu_memory_utilization.unwrap_or(0.9);
            let cost = match CostModel::new(&eng.model, &gpu, &eng.profile) {
                Ok(mut c) => {
                    c.set_front_end(has_front_end(&sc.workload));
                    c
                }
                Err(e) => {
                    self.err(
                        &format!("{field}.gpu"),
                        format!("cannot price steps on this GPU: {e}"),
                    );
                    continue;
                }
            };
            for (list, name) in [
                (&mut models, eng.model.name.clone()),
                (&mut policies, eng.policy.name().to_string()),
                (&mut profiles, eng.profile.name.clone()),
            ] {
                if !list.contains(&name) {
                    list.push(name);
                }
            }
            calibrated &= eng.profile.is_calibrated();
            instances.push(InstanceSetup {
                gpu: g,
                policy: eng.policy.clone(),
                cost,
                geo: eng.geo,
                kv_blocks: eng.blocks,
                active_thread_fraction: atp,
                api_latency: api_latency(&eng.profile, &sc.workload),
                scheduler: Default::default(),
            });
        }
        for (g, (&n, &u)) in per_gpu.iter().zip(&util).enumerate() {
            let many = match sharing {
                Sharing::Exclusive => n > 1,
                Sharing::Mps => n > gpu.mps_max_clients,
                Sharing::TimeSlice { .. } => false,
            };
            if many {
                self.err(
                    "instance",
                    format!(
                        "{n} instances on GPU {g} with sharing = \"{}\" (allowed: {})",
                        sharing.name(),
                        if sharing == Sharing::Exclusive {
                            "one; use \"mps\" or \"time-slice\"".to_string()
                        } else {
                            format!("at most {} MPS clients", gpu.mps_max_clients)
                        }
                    ),
                );
            }
            if u > 1.0 + 1e-9 {
                self.err(
                    "instance",
                    format!("the gpu_memory_utilization of the instances on GPU {g} add up to {u:.2}; on one GPU they must add up to at most 1"),
                );
            }
        }
        if !self.errs.is_empty() || instances.is_empty() {
            return None;
        }
        meta.instances = instances.len() as u32;
        meta.model = models.join("+");
        meta.policy = policies.join("+");
        meta.profile = profiles.join("+");
        meta.calibrated = calibrated;
        sc.instances = instances;
        Some((sc, meta, model0, gpu))
    }

    /// `[hardware]`: the GPU (when it loads) and the section (when all of it holds).
    fn hardware(&mut self, h: &RawHardware) -> (Option<GpuSpec>, Option<Hw>) {
        let n0 = self.errs.len();
        let gpu = match load_gpu(&h.gpu, self.base, self.file, "hardware.gpu") {
            Ok(g) => Some(g),
            Err(e) => {
                let e = self.spec_error(e, "hardware.gpu", "GPU");
                self.errs.push(e);
                None
            }
        };
        let (gpu, mig) = self.mig(h, gpu);
        if !(1..=4096).contains(&h.num_gpus) {
            self.err(
                "hardware.num_gpus",
                format!("got {}, allowed: an integer from 1 to 4096", h.num_gpus),
            );
        }
        let per_gpu = h.instances_per_gpu;
        let per_gpu_ok = (1..=MAX_INSTANCES_PER_GPU as u32).contains(&per_gpu);
        if !per_gpu_ok {
            self.err(
                "hardware.instances_per_gpu",
                format!("got {per_gpu}, allowed: an integer from 1 to {MAX_INSTANCES_PER_GPU}"),
            );
        }
        let sharing_name = h.sharing.as_deref().unwrap_or("exclusive");
        let sharing = match sharing_name {
            "exclusive" => {
                if per_gpu_ok && per_gpu != 1 {
                    self.err("hardware.instances_per_gpu", format!("got {per_gpu}, but sharing = \"exclusive\" allows one instance per GPU; use sharing = \"mps\" or \"time-slice\""));
                }
                Some(Sharing::Exclusive)
            }
            "mps" => {
                if let Some(g) = &gpu {
                    if per_gpu > g.mps_max_clients {
                        self.err(
                            "hardware.instances_per_gpu",
                            format!(
                                "got {per_gpu}, but MPS allows at most {} clients per {} GPU",
                                g.mps_max_clients,
                                g.label()
                            ),
                        );
                    }
                }
                Some(Sharing::Mps)
            }
            "time-slice" => {
                let q = self.range(
                    "hardware.timeslice_ms",
                    h.timeslice_ms.unwrap_or(DEFAULT_TIMESLICE_MS),
                    0.1,
                    1000.0,
                    " ms",
                );
                let s = self.range(
                    "hardware.switch_cost_ms",
                    h.switch_cost_ms.unwrap_or(DEFAULT_SWITCH_COST_MS),
                    0.0,
                    1000.0,
                    " ms",
                );
                match (q, s) {
                    (Some(q), Some(s)) => Some(Sharing::TimeSlice {
                        quantum: Dur::from_millis_f64(q),
                        switch_cost: Dur::from_millis_f64(s),
                    }),
                    _ => None,
                }
            }
            other => {
                self.err(
                    "hardware.sharing",
                    format!("got {other:?}, allowed: {}", quoted(SHARING)),
                );
                None
            }
        };
        if sharing_name != "time-slice" {
            let what = format!("sharing = {sharing_name:?} (only \"time-slice\")");
            self.not_for("hardware.timeslice_ms", h.timeslice_ms.is_some(), &what);
            self.not_for("hardware.switch_cost_ms", h.switch_cost_ms.is_some(), &what);
        }
        let atp = match h.active_thread_percentage {
            None => Some(100.0),
            Some(_) if sharing_name != "mps" => {
                self.err(
                    "hardware.active_thread_percentage",
                    format!("applies only to sharing = \"mps\" (this is sharing = {sharing_name:?}); remove it"),
                );
                None
            }
            Some(p) if !(p.is_finite() && p > 0.0 && p <= 100.0) => {
                self.err(
                    "hardware.active_thread_percentage",
                    format!("got {}, allowed: a percentage in (0, 100]", fmt_num(p)),
                );
                None
            }
            Some(p) => Some(p),
        };
        let (Some(g), Some(sharing), Some(atp), true) =
            (gpu.clone(), sharing, atp, self.errs.len() == n0)
        else {
            return (gpu, None);
        };
        let num_gpus = h.num_gpus * mig.as_ref().map_or(1, |m| m.1);
        (
            gpu,
            Some(Hw {
                gpu: g,
                sharing,
                atp,
                router: h.router.unwrap_or(RouterKind::RoundRobin),
                num_gpus,
                per_gpu,
                mig: mig.map(|m| (m.0, h.num_gpus)),
            }),
        )
    }

    /// `hardware.mig` and `mig_instances`: the GPU to simulate (one MIG instance of
    /// the GPU, with MIG) and, with MIG, (profile, MIG instances per GPU).
    fn mig(
        &mut self,
        h: &RawHardware,
        gpu: Option<GpuSpec>,
    ) -> (Option<GpuSpec>, Option<(String, u32)>) {
        let Some(name) = &h.mig else {
            if h.mig_instances.is_some() {
                self.err(
                    "hardware.mig_instances",
                    "applies only with hardware.mig (a MIG profile such as \"3g.40gb\"); set it or remove mig_instances",
                );
            }
            return (gpu, None);
        };
        let Some(g) = gpu else {
            return (None, None);
        };
        if g.mig_profiles.is_empty() {
            self.err(
                "hardware.mig",
                format!("{} has no MIG; MIG needs an A100, H100 or H200 (see `infersim list`); remove mig or choose another gpu", g.name),
            );
            return (Some(g), None);
        }
        let Some(p) = g.mig_profiles.iter().find(|p| &p.name == name) else {
            let names: Vec<&str> = g.mig_profiles.iter().map(|p| p.name.as_str()).collect();
            self.err(
                "hardware.mig",
                format!("got {name:?}, allowed on {}: {}", g.name, quoted(&names)),
            );
            return (Some(g), None);
        };
        let n = h.mig_instances.unwrap_or(p.max_instances);
        if !(1..=p.max_instances).contains(&n) {
            self.err(
                "hardware.mig_instances",
                format!(
                    "got {n}, allowed: 1 to {} instances of {} per {} GPU",
                    p.max_instances, p.name, g.name
                ),
            );
            return (Some(g), None);
        }
        (Some(g.mig_slice(p)), Some((p.name.clone(), n)))
    }

    /// `[engine]` on `gpu` (if it loaded) with `per_gpu` instances on each GPU (if
    /// valid): the section, and the longest sequence for the workload's lengths.
    fn engine(
        &mut self,
        e: &RawEngine,
        gpu: Option<&GpuSpec>,
        per_gpu: Option<u32>,
    ) -> (Option<Eng>, Option<u64>) {
        let n0 = self.errs.len();
        let model = match load_model(&e.model, self.base, self.file, "engine.model") {
            Ok(m) => Some(m),
            Err(err) => {
                let err = self.spec_error(err, "engine.model", "model");
                self.errs.push(err);
                None
            }
        };
        let stack = e.stack.as_deref().unwrap_or("vllm");
        if !STACKS.contains(&stack) {
            self.err(
                "engine.stack",
                format!("got {stack:?}, allowed: {}", quoted(STACKS)),
            );
        }
        let profile = match gpu {
            Some(g) if STACKS.contains(&stack) => match resolve_profile(
                e.profile.as_deref(),
                &g.name,
                stack,
                self.base,
                self.file,
                "engine.profile",
            ) {
                Ok(p) => Some(p),
                Err(err) => {
                    self.errs.push(err);
                    None
                }
            },
            _ => None,
        };
        let util = e.gpu_memory_utilization.unwrap_or(0.9);
        let util_ok = util.is_finite() && util > 0.0 && util <= 1.0;
        if !util_ok {
            self.err(
                "engine.gpu_memory_utilization",
                format!("got {}, allowed: a fraction in (0, 1]", fmt_num(util)),
            );
        }
        if let Some(n) = per_gpu {
            if util_ok && util * n as f64 > 1.0 + 1e-9 {
                self.err("engine.gpu_memory_utilization", format!("{n} instances × {util} = {:.2} of one GPU's memory; the fractions on one GPU must add up to at most 1", util * n as f64));
            }
        }
        let block_size = e.block_size.unwrap_or(16);
        let block_ok = (1..=1024).contains(&block_size);
        if !block_ok {
            self.err(
                "engine.block_size",
                format!("got {block_size}, allowed: an integer from 1 to 1024 (tokens)"),
            );
        }
        let max_len = match &model {
            Some(m) => {
                let v = e.max_model_len.unwrap_or(m.max_context);
                if v < 2 || v > m.max_context {
                    self.err(
                        "engine.max_model_len",
                        format!(
                            "got {v}, allowed: 2 to {} (the context of {})",
                            m.max_context, m.name
                        ),
                    );
                    None
                } else {
                    Some(v)
                }
            }
            None => None,
        };
        let hint = max_len
            .or(e.max_model_len)
            .or(model.as_ref().map(|m| m.max_context));
        let policy = self.policy(e, max_len, block_size);
        if self.errs.len() > n0 {
            return (None, hint);
        }
        let (Some(model), Some(gpu), Some(profile), Some(max_len), Some((policy, tokens, seqs))) =
            (model, gpu, profile, max_len, policy)
        else {
            return (None, hint);
        };
        let mem = match plan_memory(
            &model, gpu, &profile, util, block_size, tokens, seqs, self.file,
        ) {
            Ok(m) => m,
            Err(err) => {
                self.errs.push(err);
                return (None, hint);
            }
        };
        let blocks = match e.kv_cache_tokens {
            Some(t) if t < block_size => {
                self.err(
                    "engine.kv_cache_tokens",
                    format!("got {t}, allowed: at least one block ({block_size} tokens)"),
                );
                return (None, hint);
            }
            Some(t) => t / block_size,
            None => mem.blocks,
        };
        let geo = KvGeometry::new(&model, block_size);
        if geo.blocks_for(max_len) > blocks.saturating_mul(geo.layers()) {
            self.err("engine.max_model_len", format!("{max_len} tokens need {} KV blocks but the cache holds only {blocks} ({} tokens); lower max_model_len or raise gpu_memory_utilization", max_len.div_ceil(block_size), blocks.saturating_mul(block_size)));
            return (None, hint);
        }
        (
            Some(Eng {
                model,
                profile,
                policy,
                block_size,
                blocks,
                geo,
            }),
            hint,
        )
    }

    /// The batching policy, with the batch it may form: (policy, tokens, sequences).
    fn policy(
        &mut self,
        e: &RawEngine,
        max_len: Option<u64>,
        block_size: u64,
    ) -> Option<(Policy, u64, u64)> {
        let n0 = self.errs.len();
        match e.policy.as_str() {
            "sequential" => max_len.map(|m| (Policy::Sequential, m, 1)),
            "static" => {
                let s = e.static_.clone().unwrap_or_default();
                let b = s.batch_size.unwrap_or(8);
                if b == 0 || b > 65536 {
                    self.err(
                        "engine.static.batch_size",
                        format!("got {b}, allowed: an integer from 1 to 65536"),
                    );
                }
                let w = self.range(
                    "engine.static.max_wait_ms",
                    s.max_wait_ms.unwrap_or(0.0),
                    0.0,
                    1e7,
                    " ms",
                );
                let (Some(m), Some(w), true) = (max_len, w, self.errs.len() == n0) else {
                    return None;
                };
                Some((
                    Policy::Static {
                        batch_size: b,
                        max_wait: Dur::from_millis_f64(w),
                        pad_finished: s.pad_finished.unwrap_or(true),
                    },
                    m,
                    b as u64,
                ))
            }
            "continuous" => {
                let c = e.continuous.clone().unwrap_or_default();
                let chunked = c.enable_chunked_prefill.unwrap_or(true);
                let seqs = c.max_num_seqs.unwrap_or(256);
                let default_tokens = if chunked {
                    2048.max(seqs)
                } else {
                    max_len.unwrap_or(2048).min(u32::MAX as u64) as u32
                };
                let tokens = c.max_num_batched_tokens.unwrap_or(default_tokens);
                let f = "engine.continuous.max_num_batched_tokens";
                if seqs == 0 {
                    self.err(
                        "engine.continuous.max_num_seqs",
                        "got 0, allowed: an integer from 1 to 1000000",
                    );
                } else if tokens < seqs {
                    self.err(f, format!("got {tokens}, smaller than max_num_seqs = {seqs}; vLLM requires max_num_batched_tokens >= max_num_seqs"));
                }
                if (tokens as u64) < block_size {
                    self.err(
                        f,
                        format!("got {tokens}, smaller than one KV block ({block_size} tokens)"),
                    );
                }
                if let Some(m) = max_len {
                    if !chunked && (tokens as u64) < m {
                        self.err(f, format!("got {tokens}, smaller than max_model_len = {m} with chunked prefill off, so long prompts could never be scheduled; raise it, lower max_model_len or enable chunked prefill"));
                    }
                }
                let (Some(_), true) = (max_len, self.errs.len() == n0) else {
                    return None;
                };
                Some((
                    Policy::Continuous {
                        max_num_seqs: seqs,
                        max_num_batched_tokens: tokens,
                        chunked_prefill: chunked,
                        prefix_caching: c.enable_prefix_caching.unwrap_or(true),
                    },
                    tokens as u64,
                    seqs as u64,
                ))
            }
            other => {
                self.err(
                    "engine.policy",
                    format!("got {other:?}, allowed: {}", quoted(POLICIES)),
                );
                None
            }
        }
    }

    /// A trace, read once per experiment.
    fn trace(&mut self, p: &str, scale: f64) -> Option<Arc<Trace>> {
        let path = self.base.map(|b| b.join(p)).unwrap_or_else(|| p.into());
        let key = (path.clone(), scale.to_bits());
        if !self.traces.contains_key(&key) {
            let read = match std::fs::read_to_string(&path) {
                Ok(text) => {
                    parse_trace(&text, scale, &path.display().to_string(), "workload.trace")
                        .map(Arc::new)
                }
                Err(e) => Err(ConfigError::new(
                    self.file,
                    "workload.trace",
                    format!("cannot read trace file {}: {e}", path.display()),
                )),
            };
            self.traces.insert(key.clone(), read);
        }
        match &self.traces[&key] {
            Ok(t) => Some(t.clone()),
            Err(e) => {
                self.errs.push(e.clone());
                None
            }
        }
    }

    /// `[workload]`, with lengths clamped to `max_model_len`.
    fn workload(&mut self, w: &RawWorkload, max_model_len: u64) -> Option<Workload> {
        let n0 = self.errs.len();
        let f = |name: &str| format!("workload.{name}");
        let kind = w.arrival.as_str();
        let open = matches!(kind, "poisson" | "gamma" | "constant");
        let not_kind = |only: &str| format!("arrival = {kind:?} (only {only})");
        if !open {
            self.not_for(
                &f("rate_per_s"),
                w.rate_per_s.is_some(),
                &not_kind("poisson, gamma, constant"),
            );
        }
        if kind != "gamma" {
            self.not_for(&f("burstiness"), w.burstiness.is_some(), &not_kind("gamma"));
        }
        if kind != "closed-loop" {
            for (name, present) in [
                ("users", w.users.is_some()),
                ("spawn_rate_per_s", w.spawn_rate_per_s.is_some()),
                ("think", w.think.is_some()),
                ("think_time_s", w.think_time_s.is_some()),
                ("think_min_s", w.think_min_s.is_some()),
                ("think_max_s", w.think_max_s.is_some()),
            ] {
                self.not_for(&f(name), present, &not_kind("closed-loop"));
            }
        }
        if kind != "offline" {
            self.not_for(
                &f("batch_size"),
                w.batch_size.is_some(),
                &not_kind("offline"),
            );
        }
        if kind != "trace" {
            self.not_for(&f("trace"), w.trace.is_some(), &not_kind("trace"));
            self.not_for(&f("time_scale"), w.time_scale.is_some(), &not_kind("trace"));
        }
        let rate = |c: &mut Self| match w.rate_per_s {
            None => {
                c.err(
                    &f("rate_per_s"),
                    format!("is missing; arrival = {kind:?} needs a rate in requests per second"),
                );
                None
            }
            Some(r) => c.range(&f("rate_per_s"), r, 1e-6, 1e6, " requests per second"),
        };
        let arrival = match kind {
            "poisson" => rate(self).map(|rate| Arrival::Poisson { rate }),
            "constant" => rate(self).map(|rate| Arrival::Constant { rate }),
            "gamma" => {
                let r = rate(self);
                let b = self.range(
                    &f("burstiness"),
                    w.burstiness.unwrap_or(1.0),
                    0.001,
                    1000.0,
                    "",
                );
                match (r, b) {
                    (Some(rate), Some(burstiness)) => Some(Arrival::Gamma { rate, burstiness }),
                    _ => None,
                }
            }
            "trace" => {
                let scale =
                    self.range(&f("time_scale"), w.time_scale.unwrap_or(1.0), 1e-6, 1e6, "");
                match (&w.trace, scale) {
                    (None, _) => {
                        self.err(
                            &f("trace"),
                            "is missing; arrival = \"trace\" needs trace = \"path/to/trace.csv\"",
                        );
                        None
                    }
                    (Some(p), Some(scale)) => self.trace(p, scale).map(Arrival::Trace),
                    _ => None,
                }
            }
            "closed-loop" => self.closed_loop(w),
            "offline" => match w.batch_size {
                None => {
                    self.err(
                        &f("batch_size"),
                        "is missing; arrival = \"offline\" needs batch_size (requests per group)",
                    );
                    None
                }
                Some(b) if b == 0 || b > 1_000_000 => {
                    self.err(
                        &f("batch_size"),
                        format!("got {b}, allowed: an integer from 1 to 1000000"),
                    );
                    None
                }
                Some(b) => Some(Arrival::Offline { batch_size: b }),
            },
            other => {
                self.err(
                    &f("arrival"),
                    format!("got {other:?}, allowed: {}", quoted(ARRIVALS)),
                );
                None
            }
        };
        let is_trace = kind == "trace";
        let lengths = |c: &mut Self, name: &str, d: &Option<LengthDist>| match d {
            Some(_) if is_trace => {
                c.err(
                    &f(name),
                    "does not apply to traces, which carry their own lengths; remove it",
                );
                None
            }
            Some(d) => match d.check(c.file, &f(name)) {
                Ok(()) => Some(d.clone()),
                Err(e) => {
                    c.errs.push(e);
                    None
                }
            },
            None if is_trace => Some(LengthDist::Fixed { value: 1 }),
            None => {
                c.err(
                    &f(name),
                    "is missing; give a length distribution, for example { dist = \"fixed\", value = 128 }",
                );
                None
            }
        };
        let input = lengths(self, "input_tokens", &w.input_tokens);
        let output = lengths(self, "output_tokens", &w.output_tokens);
        let prompt_pool = match w.prompt_pool {
            Some(n) if is_trace => {
                self.err(
                    &f("prompt_pool"),
                    format!("does not apply to traces (got {n}); remove it"),
                );
                None
            }
            Some(n) if n == 0 || n > 10_000_000 => {
                self.err(
                    &f("prompt_pool"),
                    format!("got {n}, allowed: an integer from 1 to 10000000 (distinct prompts)"),
                );
                None
            }
            other => other,
        };
        let identical_outputs = match w.sampling.as_deref() {
            Some(_) if is_trace => {
                self.err(
                    &f("sampling"),
                    "does not apply to traces (they name no prompts); remove it",
                );
                false
            }
            None | Some("random") => false,
            Some("greedy") => true,
            Some(other) => {
                self.err(
                    &f("sampling"),
                    format!("got {other:?}, allowed: {}", quoted(SAMPLINGS)),
                );
                false
            }
        };
        let stop = match (w.num_requests, w.duration_s) {
            (Some(_), Some(_)) => {
                self.err(
                    &f("duration_s"),
                    "give either num_requests (a finite run) or duration_s (a timed run), not both",
                );
                None
            }
            (Some(0), None) => {
                self.err(&f("num_requests"), "got 0, allowed: an integer >= 1");
                None
            }
            (Some(n), None) => {
                self.not_for(
                    &f("warmup_s"),
                    w.warmup_s.is_some(),
                    "finite runs (num_requests); warm-up applies to timed runs",
                );
                Some(Stop::Requests(n))
            }
            (None, Some(d)) => {
                let d = self.range(&f("duration_s"), d, 1e-6, 1e9, " s");
                let wu = self.range(&f("warmup_s"), w.warmup_s.unwrap_or(0.0), 0.0, 1e9, " s");
                match (d, wu) {
                    (Some(d), Some(wu)) if wu >= d => {
                        self.err(
                            &f("warmup_s"),
                            format!("got {wu}, which is not shorter than duration_s = {d}"),
                        );
                        None
                    }
                    (Some(d), Some(wu)) => Some(Stop::Timed {
                        duration: Dur::from_secs_f64(d),
                        warmup: Dur::from_secs_f64(wu),
                    }),
                    _ => None,
                }
            }
            (None, None) if is_trace => Some(Stop::Requests(u64::MAX)),
            (None, None) => {
                self.err(
                    &f("num_requests"),
                    "is missing; give num_requests (a finite run) or duration_s (a timed run)",
                );
                None
            }
        };
        if self.errs.len() > n0 {
            return None;
        }
        Some(Workload {
            arrival: arrival?,
            input: input?,
            output: output?,
            stop: stop?,
            max_context: max_model_len,
            prompt_pool,
            identical_outputs,
            classes: Vec::new(),
        })
    }

    fn closed_loop(&mut self, w: &RawWorkload) -> Option<Arrival> {
        let f = |name: &str| format!("workload.{name}");
        let n0 = self.errs.len();
        let users = match w.users {
            None => {
                self.err(
                    &f("users"),
                    "is missing; arrival = \"closed-loop\" needs users (an integer >= 1)",
                );
                None
            }
            Some(u) if u == 0 || u > 10_000_000 => {
                self.err(
                    &f("users"),
                    format!("got {u}, allowed: an integer from 1 to 10000000"),
                );
                None
            }
            Some(u) => Some(u),
        };
        let spawn = match w.spawn_rate_per_s {
            Some(s) => self.range(&f("spawn_rate_per_s"), s, 1e-6, 1e9, " users per second"),
            None => Some(f64::INFINITY),
        };
        let think_kind = w.think.as_deref().unwrap_or("constant");
        let think = match think_kind {
            "constant" | "exponential" => {
                let what = format!("think = {think_kind:?} (give think_time_s)");
                self.not_for(&f("think_min_s"), w.think_min_s.is_some(), &what);
                self.not_for(&f("think_max_s"), w.think_max_s.is_some(), &what);
                let t = self.range(
                    &f("think_time_s"),
                    w.think_time_s.unwrap_or(0.0),
                    0.0,
                    1e6,
                    " s",
                );
                t.map(|t| {
                    let d = Dur::from_secs_f64(t);
                    if think_kind == "constant" {
                        Think::Constant(d)
                    } else {
                        Think::Exponential(d)
                    }
                })
            }
            "between" => {
                self.not_for(
                    &f("think_time_s"),
                    w.think_time_s.is_some(),
                    "think = \"between\" (give think_min_s and think_max_s)",
                );
                let a = self.range(
                    &f("think_min_s"),
                    w.think_min_s.unwrap_or(0.0),
                    0.0,
                    1e6,
                    " s",
                );
                let b = self.range(
                    &f("think_max_s"),
                    w.think_max_s.unwrap_or(0.0),
                    0.0,
                    1e6,
                    " s",
                );
                match (a, b) {
                    (Some(a), Some(b)) if b < a => {
                        self.err(
                            &f("think_max_s"),
                            format!("got {b}, which is below think_min_s = {a}"),
                        );
                        None
                    }
                    (Some(a), Some(b)) => {
                        Some(Think::Between(Dur::from_secs_f64(a), Dur::from_secs_f64(b)))
                    }
                    _ => None,
                }
            }
            other => {
                self.err(
                    &f("think"),
                    format!("got {other:?}, allowed: {}", quoted(THINKS)),
                );
                None
            }
        };
        if self.errs.len() > n0 {
            return None;
        }
        Some(Arrival::ClosedLoop {
            users: users?,
            spawn_rate: spawn?,
            think: think?,
        })
    }
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Merges `src` into `dst`: tables key by key, anything else replaced.
fn deep_merge(dst: &mut toml::Table, src: &toml::Table) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(toml::Value::Table(d)), toml::Value::Table(s)) => deep_merge(d, s),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Estimated activation memory vLLM's profiling run reserves: the MLP intermediate of
/// a full token budget plus fp32 logits and probabilities of a full batch.
pub fn activation_bytes(model: &ModelSpec, batch_tokens: u64, batch_seqs: u64) -> f64 {
    let per_token = (2 * model.intermediate_size + 4 * model.hidden_size) * model.dtype_bytes;
    (batch_tokens * per_token) as f64 + (batch_seqs * model.vocab_size * 4 * 2) as f64
}

/// Memory arithmetic of one instance.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPlan {
    /// util × capacity, bytes.
    pub budget: f64,
    /// Weights, bytes.
    pub weights: f64,
    /// Activations + non-torch, bytes.
    pub reserve: f64,
    /// KV blocks.
    pub blocks: u64,
}

/// Sizes an instance's KV pool; errors if the model does not fit.
#[allow(clippy::too_many_arguments)]
pub fn plan_memory(
    model: &ModelSpec,
    gpu: &GpuSpec,
    profile: &Profile,
    util: f64,
    block_size: u64,
    batch_tokens: u64,
    batch_seqs: u64,
    file: &str,
) -> Result<MemoryPlan, ConfigError> {
    let budget = util * gpu.memory_bytes();
    let weights = model.weight_bytes() as f64;
    let reserve =
        activation_bytes(model, batch_tokens, batch_seqs) + profile.non_torch_memory_gib * GIB;
    let kv = budget - weights - reserve;
    if kv <= 0.0 {
        return Err(ConfigError::new(
            file,
            "engine.model",
            format!(
                "{} does not fit on {} at gpu_memory_utilization {util}: weights {:.2} GiB + activations and runtime {:.2} GiB exceed the {:.2} GiB budget by {:.2} GiB",
                model.name,
                gpu.label(),
                weights / GIB,
                reserve / GIB,
                budget / GIB,
                -kv / GIB
            ),
        ));
    }
    let per_block = (block_size * model.kv_bytes_per_token()) as f64;
    Ok(MemoryPlan {
        budget,
        weights,
        reserve,
        blocks: (kv / per_block).floor() as u64,
    })
}
