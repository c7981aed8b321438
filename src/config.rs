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
use crate::workload::{read_trace, Arrival, LengthDist, Stop, Think, Workload};
use serde::{Deserialize, Serialize};
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
    /// Profile name or path (default `<gpu>-<stack>`, else `default-<stack>`).
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
    /// This point's scenario with every instance priced by `profile` instead.
    pub fn with_profile(&self, profile: &Profile) -> Scenario {
        let mut sc = self.scenario.clone();
        let cost = CostModel::new(&self.model, &self.gpu, profile);
        let lat = api_latency(profile, &sc.workload);
        for i in &mut sc.instances {
            i.cost = cost.clone();
            i.api_latency = lat;
        }
        sc
    }
}

/// The API front-end latency of `profile` for `workload`: none for offline batches,
/// which call the engine in-process.
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

/// Reads, expands and checks an experiment file. Collects every point's errors.
pub fn load_experiment(path: &Path) -> Result<Experiment, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError::new(
            &file,
            "(file)",
            format!("cannot read: {e}"),
        )]
    })?;
    parse_experiment(&text, path)
}

/// Like [`load_experiment`] from text (`path` names the file in messages and anchors
/// relative paths).
pub fn parse_experiment(text: &str, path: &Path) -> Result<Experiment, Vec<ConfigError>> {
    let file = path.display().to_string();
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        vec![ConfigError::new(&file, "(toml)", toml_error(&e, text))]
    })?;
    let variants = take_variants(&mut doc, &file)?;
    let mut axes = match doc.remove("sweep") {
        None => Vec::new(),
        Some(toml::Value::Table(t)) => {
            let mut axes = Vec::new();
            for (k, v) in t {
                match v {
                    toml::Value::Array(a) if !a.is_empty() => axes.push((k, a)),
                    toml::Value::Array(_) => {
                        return Err(vec![ConfigError::new(
                            &file,
                            format!("sweep.{k}"),
                            "is an empty list; give at least one value",
                        )])
                    }
                    other => {
                        return Err(vec![ConfigError::new(
                            &file,
                            format!("sweep.{k}"),
                            format!("must be a list of values, got {}", other.type_str()),
                        )])
                    }
                }
            }
            axes
        }
        Some(other) => {
            return Err(vec![ConfigError::new(
                &file,
                "sweep",
                format!(
                    "must be a table of \"dotted.path\" = [values], got {}",
                    other.type_str()
                ),
            )])
        }
    };
    if !variants.is_empty() {
        let names = variants
            .iter()
            .map(|(n, _)| toml::Value::String(n.clone()))
            .collect();
        axes.insert(0, (VARIANT.to_string(), names));
    }
    let base = path.parent().map(Path::to_path_buf);
    let mut points = Vec::new();
    let mut errors = Vec::new();
    let n_points: usize = axes.iter().map(|a| a.1.len()).product();
    for index in 0..n_points {
        let mut d = doc.clone();
        let mut params = Vec::new();
        let mut rem = index;
        // The last axis varies fastest.
        let mut picks = vec![0; axes.len()];
        for (ai, (_, vals)) in axes.iter().enumerate().rev() {
            picks[ai] = rem % vals.len();
            rem /= vals.len();
        }
        let mut ok = true;
        for (ai, (key, vals)) in axes.iter().enumerate() {
            let v = vals[picks[ai]].clone();
            if key == VARIANT {
                deep_merge(&mut d, &variants[picks[ai]].1);
                params.push((key.clone(), v));
                continue;
            }
            if let Err(e) = set_path(&mut d, key, v.clone(), &file) {
                errors.push(e);
                ok = false;
            }
            params.push((key.clone(), v));
        }
        if !ok {
            continue;
        }
        let label = if params.is_empty() {
            String::new()
        } else {
            format!(
                " (sweep point {index}: {})",
                params
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let raw: RawExperiment = match RawExperiment::deserialize(toml::Value::Table(d)) {
            Ok(r) => r,
            Err(e) => {
                errors.push(ConfigError::new(
                    format!("{file}{label}"),
                    "(experiment)",
                    e.message().to_string(),
                ));
                continue;
            }
        };
        match build_point(&raw, base.as_deref(), &format!("{file}{label}")) {
            Ok((scenario, meta, model, gpu)) => points.push(Point {
                index,
                params,
                raw,
                scenario,
                meta,
                model,
                gpu,
            }),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        return Err(errors);
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

/// The name of the sweep axis made by `[[variant]]` tables.
pub const VARIANT: &str = "variant";

/// Removes the `[[variant]]` tables: each has a `name` and settings that override the
/// rest of the file (tables merge key by key). Variants form the first sweep axis,
/// for set-ups that differ in several settings at once.
fn take_variants(
    doc: &mut toml::Table,
    file: &str,
) -> Result<Vec<(String, toml::Table)>, Vec<ConfigError>> {
    let Some(v) = doc.remove(VARIANT) else {
        return Ok(Vec::new());
    };
    let err = |field: String, msg: String| vec![ConfigError::new(file, field, msg)];
    let toml::Value::Array(items) = v else {
        return Err(err(
            "variant".into(),
            "must be an array of tables ([[variant]]), each with a name".into(),
        ));
    };
    if items.is_empty() {
        return Err(err(
            "variant".into(),
            "is empty; give at least one [[variant]]".into(),
        ));
    }
    let mut out: Vec<(String, toml::Table)> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let toml::Value::Table(mut t) = item else {
            return Err(err(format!("variant[{i}]"), "must be a table".into()));
        };
        let name = match t.remove("name") {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
            _ => {
                return Err(err(
                    format!("variant[{i}].name"),
                    "is required: a non-empty string naming the set-up".into(),
                ))
            }
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(err(
                format!("variant[{i}].name"),
                format!("{name:?} is used twice; names must be unique"),
            ));
        }
        out.push((name, t));
    }
    Ok(out)
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

/// A TOML syntax error with its line and column.
fn toml_error(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("line {line}, column {col}: {}", e.message())
        }
        None => e.message().to_string(),
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
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::new(
            file,
            format!("sweep.{path}"),
            "is not a dotted path like \"workload.rate_per_s\"",
        ));
    }
    let mut t = doc;
    for p in &parts[..parts.len() - 1] {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(tt) => tt,
            _ => {
                return Err(ConfigError::new(
                    file,
                    format!("sweep.{path}"),
                    format!("{p:?} is not a table, so it cannot hold {path:?}"),
                ))
            }
        };
    }
    t.insert(parts[parts.len() - 1].to_string(), v);
    Ok(())
}

fn finite_pos(file: &str, field: &str, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::new(
            file,
            field,
            format!("got {v}, allowed: a finite number > 0"),
        ))
    }
}

fn finite_nonneg(file: &str, field: &str, v: f64) -> Result<f64, ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ConfigError::new(
            file,
            field,
            format!("got {v}, allowed: a finite number >= 0"),
        ))
    }
}

fn not_for(file: &str, field: &str, present: bool, what: &str) -> Result<(), ConfigError> {
    if present {
        Err(ConfigError::new(
            file,
            field,
            format!("does not apply to {what}; remove it"),
        ))
    } else {
        Ok(())
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
                gpu.name,
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

/// Checks one raw point and builds its scenario.
pub fn build_point(
    raw: &RawExperiment,
    base: Option<&Path>,
    file: &str,
) -> Result<(Scenario, Meta, ModelSpec, GpuSpec), ConfigError> {
    if raw.name.trim().is_empty() || raw.name.contains(['/', '\\']) {
        return Err(ConfigError::new(
            file,
            "name",
            format!("{:?} must be non-empty and contain no slashes", raw.name),
        ));
    }
    if raw.replications == 0 {
        return Err(ConfigError::new(
            file,
            "replications",
            "got 0, allowed: an integer >= 1",
        ));
    }
    let h = &raw.hardware;
    let gpu = load_gpu(&h.gpu, base, file, "hardware.gpu")?;
    if h.num_gpus == 0 || h.num_gpus > 4096 {
        return Err(ConfigError::new(
            file,
            "hardware.num_gpus",
            format!("got {}, allowed: 1 to 4096", h.num_gpus),
        ));
    }
    if h.instances_per_gpu == 0 {
        return Err(ConfigError::new(
            file,
            "hardware.instances_per_gpu",
            "got 0, allowed: an integer >= 1",
        ));
    }
    let sharing_name = h.sharing.as_deref().unwrap_or("exclusive");
    let sharing = match sharing_name {
        "exclusive" => {
            if h.instances_per_gpu != 1 {
                return Err(ConfigError::new(file, "hardware.instances_per_gpu", format!("is {} but sharing is \"exclusive\" (one instance per GPU); use sharing = \"mps\" or \"time-slice\"", h.instances_per_gpu)));
            }
            Sharing::Exclusive
        }
        "mps" => {
            if h.instances_per_gpu > gpu.mps_max_clients {
                return Err(ConfigError::new(
                    file,
                    "hardware.instances_per_gpu",
                    format!(
                        "{} MPS clients on one {} exceed the limit of {} per GPU",
                        h.instances_per_gpu, gpu.name, gpu.mps_max_clients
                    ),
                ));
            }
            Sharing::Mps
        }
        "time-slice" => {
            let q = finite_pos(
                file,
                "hardware.timeslice_ms",
                h.timeslice_ms.unwrap_or(DEFAULT_TIMESLICE_MS),
            )?;
            let s = finite_nonneg(
                file,
                "hardware.switch_cost_ms",
                h.switch_cost_ms.unwrap_or(DEFAULT_SWITCH_COST_MS),
            )?;
            Sharing::TimeSlice {
                quantum: Dur::from_millis_f64(q),
                switch_cost: Dur::from_millis_f64(s),
            }
        }
        other => {
            return Err(ConfigError::new(
                file,
                "hardware.sharing",
                format!("got {other:?}, allowed: \"exclusive\", \"mps\", \"time-slice\""),
            ))
        }
    };
    if !matches!(sharing, Sharing::TimeSlice { .. }) {
        not_for(
            file,
            "hardware.timeslice_ms",
            h.timeslice_ms.is_some(),
            "this sharing mode (only time-slice)",
        )?;
        not_for(
            file,
            "hardware.switch_cost_ms",
            h.switch_cost_ms.is_some(),
            "this sharing mode (only time-slice)",
        )?;
    }
    let atp = match h.active_thread_percentage {
        None => 100.0,
        Some(p) => {
            if sharing != Sharing::Mps {
                return Err(ConfigError::new(
                    file,
                    "hardware.active_thread_percentage",
                    "applies only to sharing = \"mps\"",
                ));
            }
            if !(p.is_finite() && p > 0.0 && p <= 100.0) {
                return Err(ConfigError::new(
                    file,
                    "hardware.active_thread_percentage",
                    format!("got {p}, allowed: (0, 100]"),
                ));
            }
            p
        }
    };

    // Engine.
    let e = &raw.engine;
    let model = load_model(&e.model, base, file, "engine.model")?;
    let stack = e.stack.clone().unwrap_or_else(|| "vllm".into());
    if !["vllm", "transformers"].contains(&stack.as_str()) {
        return Err(ConfigError::new(
            file,
            "engine.stack",
            format!("got {stack:?}, allowed: \"vllm\", \"transformers\""),
        ));
    }
    let profile = resolve_profile(
        e.profile.as_deref(),
        &gpu.name,
        &stack,
        base,
        file,
        "engine.profile",
    )?;
    let util = e.gpu_memory_utilization.unwrap_or(0.9);
    if !(util.is_finite() && util > 0.0 && util <= 1.0) {
        return Err(ConfigError::new(
            file,
            "engine.gpu_memory_utilization",
            format!("got {util}, allowed: a fraction in (0, 1]"),
        ));
    }
    if util * h.instances_per_gpu as f64 > 1.0 + 1e-9 {
        return Err(ConfigError::new(file, "engine.gpu_memory_utilization", format!("{} instances × {util} = {:.2} of one GPU's memory; the fractions on one GPU must add up to at most 1", h.instances_per_gpu, util * h.instances_per_gpu as f64)));
    }
    let block_size = e.block_size.unwrap_or(16);
    if !(1..=1024).contains(&block_size) {
        return Err(ConfigError::new(
            file,
            "engine.block_size",
            format!("got {block_size}, allowed: 1 to 1024 tokens"),
        ));
    }
    let max_model_len = e.max_model_len.unwrap_or(model.max_context);
    if max_model_len < 2 || max_model_len > model.max_context {
        return Err(ConfigError::new(
            file,
            "engine.max_model_len",
            format!(
                "got {max_model_len}, allowed: 2 to {} (the model's context)",
                model.max_context
            ),
        ));
    }
    let (policy, batch_tokens, batch_seqs) = match e.policy.as_str() {
        "sequential" => (Policy::Sequential, max_model_len, 1),
        "static" => {
            let s = e.static_.clone().unwrap_or_default();
            let b = s.batch_size.unwrap_or(8);
            if b == 0 || b > 65536 {
                return Err(ConfigError::new(
                    file,
                    "engine.static.batch_size",
                    format!("got {b}, allowed: 1 to 65536"),
                ));
            }
            let w = finite_nonneg(
                file,
                "engine.static.max_wait_ms",
                s.max_wait_ms.unwrap_or(0.0),
            )?;
            (
                Policy::Static {
                    batch_size: b,
                    max_wait: Dur::from_millis_f64(w),
                    pad_finished: s.pad_finished.unwrap_or(true),
                },
                max_model_len,
                b as u64,
            )
        }
        "continuous" => {
            let c = e.continuous.clone().unwrap_or_default();
            let chunked = c.enable_chunked_prefill.unwrap_or(true);
            let seqs = c.max_num_seqs.unwrap_or(256);
            let default_tokens = if chunked {
                2048.max(seqs)
            } else {
                max_model_len.min(u32::MAX as u64) as u32
            };
            let tokens = c.max_num_batched_tokens.unwrap_or(default_tokens);
            if seqs == 0 {
                return Err(ConfigError::new(
                    file,
                    "engine.continuous.max_num_seqs",
                    "got 0, allowed: an integer >= 1",
                ));
            }
            if tokens < seqs {
                return Err(ConfigError::new(file, "engine.continuous.max_num_batched_tokens", format!("{tokens} is smaller than max_num_seqs = {seqs}; vLLM requires max_num_batched_tokens >= max_num_seqs")));
            }
            if (tokens as u64) < block_size {
                return Err(ConfigError::new(
                    file,
                    "engine.continuous.max_num_batched_tokens",
                    format!("{tokens} is smaller than one KV block ({block_size} tokens)"),
                ));
            }
            if !chunked && (tokens as u64) < max_model_len {
                return Err(ConfigError::new(file, "engine.continuous.max_num_batched_tokens", format!("{tokens} is smaller than max_model_len = {max_model_len} with chunked prefill off, so long prompts could never be scheduled; raise it, lower max_model_len or enable chunked prefill")));
            }
            (
                Policy::Continuous {
                    max_num_seqs: seqs,
                    max_num_batched_tokens: tokens,
                    chunked_prefill: chunked,
                    prefix_caching: c.enable_prefix_caching.unwrap_or(true),
                },
                tokens as u64,
                seqs as u64,
            )
        }
        other => {
            return Err(ConfigError::new(
                file,
                "engine.policy",
                format!("got {other:?}, allowed: \"sequential\", \"static\", \"continuous\""),
            ))
        }
    };
    let mem = plan_memory(
        &model,
        &gpu,
        &profile,
        util,
        block_size,
        batch_tokens,
        batch_seqs,
        file,
    )?;
    let blocks = match e.kv_cache_tokens {
        Some(t) => {
            if t < block_size {
                return Err(ConfigError::new(
                    file,
                    "engine.kv_cache_tokens",
                    format!("got {t}, allowed: at least one block ({block_size} tokens)"),
                ));
            }
            t / block_size
        }
        None => mem.blocks,
    };
    let geo = KvGeometry::new(&model, block_size);
    if geo.blocks_for(max_model_len) > blocks * geo.layers() {
        return Err(ConfigError::new(file, "engine.max_model_len", format!("{max_model_len} tokens need {} KV blocks but the cache holds only {blocks} ({} tokens); lower max_model_len or raise gpu_memory_utilization", max_model_len.div_ceil(block_size), blocks * block_size)));
    }

    let workload = build_workload(&raw.workload, max_model_len, base, file)?;
    if matches!(workload.arrival, Arrival::ClosedLoop { .. }) {
        // fine with any router
    } else if h.router == Some(RouterKind::Sticky) {
        // Sticky falls back to round-robin for open-loop requests; say so rather than guess.
        return Err(ConfigError::new(file, "hardware.router", "\"sticky\" pins closed-loop users; this workload has no users (use arrival = \"closed-loop\" or another router)"));
    }
    let cost = CostModel::new(&model, &gpu, &profile);
    let n = (h.num_gpus * h.instances_per_gpu) as usize;
    let instances = (0..n)
        .map(|i| InstanceSetup {
            gpu: i / h.instances_per_gpu as usize,
            policy: policy.clone(),
            cost: cost.clone(),
            geo,
            kv_blocks: blocks,
            active_thread_fraction: atp / 100.0,
            api_latency: api_latency(&profile, &workload),
        })
        .collect();
    let router = h.router.unwrap_or(RouterKind::RoundRobin);
    let meta = Meta {
        gpu: gpu.name.clone(),
        gpus: h.num_gpus,
        instances: n as u32,
        sharing: sharing.name().into(),
        router: router.name().into(),
        model: model.name.clone(),
        policy: policy.name().into(),
        profile: profile.name.clone(),
        calibrated: profile.is_calibrated(),
        kv_cache_tokens: blocks * block_size,
        timeslice_ms: match sharing {
            Sharing::TimeSlice { quantum, .. } => Some(quantum.as_millis_f64()),
            _ => None,
        },
        switch_cost_ms: match sharing {
            Sharing::TimeSlice { switch_cost, .. } => Some(switch_cost.as_millis_f64()),
            _ => None,
        },
    };
    Ok((
        Scenario {
            workload,
            gpus: vec![sharing; h.num_gpus as usize],
            instances,
            router,
        },
        meta,
        model,
        gpu,
    ))
}

fn build_workload(
    w: &RawWorkload,
    max_model_len: u64,
    base: Option<&Path>,
    file: &str,
) -> Result<Workload, ConfigError> {
    let f = |name: &str| format!("workload.{name}");
    let arrival_kind = w.arrival.as_str();
    let open = matches!(arrival_kind, "poisson" | "gamma" | "constant");
    let rate = || -> Result<f64, ConfigError> {
        let r = w.rate_per_s.ok_or_else(|| {
            ConfigError::new(
                file,
                f("rate_per_s"),
                format!("is required for arrival = {arrival_kind:?}"),
            )
        })?;
        finite_pos(file, &f("rate_per_s"), r)
    };
    if !open {
        not_for(
            file,
            &f("rate_per_s"),
            w.rate_per_s.is_some(),
            &format!("arrival = {arrival_kind:?}"),
        )?;
    }
    if arrival_kind != "gamma" {
        not_for(
            file,
            &f("burstiness"),
            w.burstiness.is_some(),
            &format!("arrival = {arrival_kind:?} (only gamma)"),
        )?;
    }
    let closed = arrival_kind == "closed-loop";
    for (name, present) in [
        ("users", w.users.is_some()),
        ("spawn_rate_per_s", w.spawn_rate_per_s.is_some()),
        ("think", w.think.is_some()),
        ("think_time_s", w.think_time_s.is_some()),
        ("think_min_s", w.think_min_s.is_some()),
        ("think_max_s", w.think_max_s.is_some()),
    ] {
        if !closed {
            not_for(
                file,
                &f(name),
                present,
                &format!("arrival = {arrival_kind:?} (only closed-loop)"),
            )?;
        }
    }
    if arrival_kind != "offline" {
        not_for(
            file,
            &f("batch_size"),
            w.batch_size.is_some(),
            &format!("arrival = {arrival_kind:?} (only offline)"),
        )?;
    }
    if arrival_kind != "trace" {
        not_for(
            file,
            &f("trace"),
            w.trace.is_some(),
            &format!("arrival = {arrival_kind:?} (only trace)"),
        )?;
        not_for(
            file,
            &f("time_scale"),
            w.time_scale.is_some(),
            &format!("arrival = {arrival_kind:?} (only trace)"),
        )?;
    }
    let arrival = match arrival_kind {
        "poisson" => Arrival::Poisson { rate: rate()? },
        "constant" => Arrival::Constant { rate: rate()? },
        "gamma" => Arrival::Gamma {
            rate: rate()?,
            burstiness: finite_pos(file, &f("burstiness"), w.burstiness.unwrap_or(1.0))?,
        },
        "trace" => {
            let p = w.trace.as_ref().ok_or_else(|| ConfigError::new(file, f("trace"), "is required for arrival = \"trace\" (a CSV path)"))?;
            let path = base.map(|b| b.join(p)).unwrap_or_else(|| p.into());
            let scale = finite_pos(file, &f("time_scale"), w.time_scale.unwrap_or(1.0))?;
            Arrival::Trace(Arc::new(read_trace(&path, scale, &f("trace"))?))
        }
        "closed-loop" => {
            let users = w.users.ok_or_else(|| ConfigError::new(file, f("users"), "is required for arrival = \"closed-loop\""))?;
            if users == 0 || users > 10_000_000 {
                return Err(ConfigError::new(file, f("users"), format!("got {users}, allowed: 1 to 10,000,000")));
            }
            let spawn = match w.spawn_rate_per_s {
                Some(s) => finite_pos(file, &f("spawn_rate_per_s"), s)?,
                None => f64::INFINITY,
            };
            let think = match w.think.as_deref().unwrap_or("constant") {
                "constant" => {
                    not_for(file, &f("think_min_s"), w.think_min_s.is_some(), "think = \"constant\"")?;
                    not_for(file, &f("think_max_s"), w.think_max_s.is_some(), "think = \"constant\"")?;
                    Think::Constant(Dur::from_secs_f64(finite_nonneg(file, &f("think_time_s"), w.think_time_s.unwrap_or(0.0))?))
                }
                "exponential" => {
                    not_for(file, &f("think_min_s"), w.think_min_s.is_some(), "think = \"exponential\"")?;
                    not_for(file, &f("think_max_s"), w.think_max_s.is_some(), "think = \"exponential\"")?;
                    Think::Exponential(Dur::from_secs_f64(finite_nonneg(file, &f("think_time_s"), w.think_time_s.unwrap_or(0.0))?))
                }
                "between" => {
                    not_for(file, &f("think_time_s"), w.think_time_s.is_some(), "think = \"between\" (give think_min_s and think_max_s)")?;
                    let a = finite_nonneg(file, &f("think_min_s"), w.think_min_s.unwrap_or(0.0))?;
                    let b = finite_nonneg(file, &f("think_max_s"), w.think_max_s.unwrap_or(0.0))?;
                    if b < a {
                        return Err(ConfigError::new(file, f("think_max_s"), format!("{b} is below think_min_s = {a}")));
                    }
                    Think::Between(Dur::from_secs_f64(a), Dur::from_secs_f64(b))
                }
                other => return Err(ConfigError::new(file, f("think"), format!("got {other:?}, allowed: \"constant\", \"exponential\", \"between\""))),
            };
            Arrival::ClosedLoop {
                users,
                spawn_rate: spawn,
                think,
            }
        }
        "offline" => {
            let b = w.batch_size.ok_or_else(|| ConfigError::new(file, f("batch_size"), "is required for arrival = \"offline\""))?;
            if b == 0 || b > 1_000_000 {
                return Err(ConfigError::new(file, f("batch_size"), format!("got {b}, allowed: 1 to 1,000,000")));
            }
            Arrival::Offline { batch_size: b }
        }
        other => {
            return Err(ConfigError::new(file, f("arrival"), format!("got {other:?}, allowed: \"poisson\", \"gamma\", \"constant\", \"trace\", \"closed-loop\", \"offline\"")))
        }
    };
    let is_trace = matches!(arrival, Arrival::Trace(_));
    let lengths = |name: &str, d: &Option<LengthDist>| -> Result<LengthDist, ConfigError> {
        match d {
            Some(d) if is_trace => Err(ConfigError::new(
                file,
                f(name),
                format!("does not apply to traces, which carry their own lengths (got {d:?})"),
            )),
            Some(d) => {
                d.check(file, &f(name))?;
                Ok(d.clone())
            }
            None if is_trace => Ok(LengthDist::Fixed { value: 1 }),
            None => Err(ConfigError::new(
                file,
                f(name),
                "is required, for example { dist = \"fixed\", value = 128 }",
            )),
        }
    };
    let input = lengths("input_tokens", &w.input_tokens)?;
    let prompt_pool = match w.prompt_pool {
        None => None,
        Some(n) if is_trace => {
            return Err(ConfigError::new(
                file,
                f("prompt_pool"),
                format!("does not apply to traces (got {n})"),
            ))
        }
        Some(n) if n == 0 || n > 10_000_000 => {
            return Err(ConfigError::new(
                file,
                f("prompt_pool"),
                format!("got {n}, allowed: 1 to 10,000,000 distinct prompts"),
            ))
        }
        Some(n) => Some(n),
    };
    let output = lengths("output_tokens", &w.output_tokens)?;
    let stop = match (w.num_requests, w.duration_s) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                file,
                f("duration_s"),
                "give either num_requests (a finite run) or duration_s (a timed run), not both",
            ))
        }
        (Some(n), None) => {
            if n == 0 {
                return Err(ConfigError::new(
                    file,
                    f("num_requests"),
                    "got 0, allowed: an integer >= 1",
                ));
            }
            not_for(
                file,
                &f("warmup_s"),
                w.warmup_s.is_some(),
                "finite runs (num_requests); warm-up applies to timed runs",
            )?;
            Stop::Requests(n)
        }
        (None, Some(d)) => {
            let d = finite_pos(file, &f("duration_s"), d)?;
            let wu = finite_nonneg(file, &f("warmup_s"), w.warmup_s.unwrap_or(0.0))?;
            if wu >= d {
                return Err(ConfigError::new(
                    file,
                    f("warmup_s"),
                    format!("{wu} is not shorter than duration_s = {d}"),
                ));
            }
            Stop::Timed {
                duration: Dur::from_secs_f64(d),
                warmup: Dur::from_secs_f64(wu),
            }
        }
        (None, None) => {
            if is_trace {
                Stop::Requests(u64::MAX)
            } else {
                return Err(ConfigError::new(
                    file,
                    f("num_requests"),
                    "give num_requests (a finite run) or duration_s (a timed run)",
                ));
            }
        }
    };
    Ok(Workload {
        arrival,
        input,
        output,
        stop,
        max_context: max_model_len,
        prompt_pool,
    })
}
