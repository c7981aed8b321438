//! Experiment files: TOML in, checked [`Scenario`]s out.
//!
//! Every key is declared once, in [`schema`]; a file is checked against that
//! declaration ([`validate`]), deserialised into the raw types of [`raw`] with
//! `deny_unknown_fields`, then checked for what no single key can say and turned into
//! the types the simulator uses (`check*.rs`). Sweep axes (`[sweep]`, dotted paths with
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

mod check;
mod check_client;
mod check_engine;
mod check_hardware;
mod check_slo;
mod check_stack;
mod check_workload;
pub mod expand;
pub mod key;
pub mod memory;
pub mod prices;
pub mod raw;
pub mod reference;
pub mod schema;
pub mod validate;

pub use check::{build_point, Built};
pub use expand::VARIANT;
pub use memory::{activation_bytes, plan_memory, MemoryPlan};
pub use raw::{
    RawContinuous, RawEngine, RawExperiment, RawHardware, RawStatic, RawWorkload,
    DEFAULT_SWITCH_COST_MS, DEFAULT_TIMESLICE_MS,
};

use crate::cost::CostModel;
use crate::error::ConfigError;
use crate::profile::Profile;
use crate::sim::Scenario;
use crate::specs::{GpuSpec, ModelSpec};
use crate::time::Dur;
use crate::validate::{show, Origin, PointSources, Spans, MAX_POINTS};
use crate::workload::{Arrival, Workload};
use check::{check_point, TraceCache};
use expand::{deep_merge, set_path, take_sweep, take_variants, toml_error};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
        let deploy = match sc.instances.first() {
            Some(i) => i.cost.deployment().clone(),
            None => crate::cost::Deployment::default(),
        };
        let mut cost = CostModel::for_deployment(
            &self.model,
            &self.gpu,
            profile,
            crate::cost::GpuPath::Auto,
            &deploy,
        )?;
        cost.set_front_end(has_front_end(&sc.workload));
        let lat = api_latency(profile, &sc.workload);
        if sc.front_end.is_queue() {
            cost.set_front_end(false);
        }
        for i in &mut sc.instances {
            i.cost = cost.clone();
            i.api_latency = lat;
        }
        let fe = &sc.front_end;
        sc.front_end = crate::frontend::FrontEndSetup::from_profile(
            fe.mode,
            fe.api_servers,
            profile,
            fe.rate_limit,
        );
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
    /// The engine preset (`engine.stack = "<engine>@<version>"`), when one is used;
    /// `profile` then names the profile it runs with (its own or the borrowed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The price of one physical GPU the cost figures use (not a result-row key:
    /// the figures themselves are).
    #[serde(skip)]
    pub price: prices::Price,
}

impl Meta {
    /// The cost figures of a run of this set-up that measured `s`: `gpus` physical
    /// GPUs (MIG slices and MPS or time-sliced pods count the GPUs they run on) at
    /// the point's price.
    pub fn cost(&self, s: &crate::metrics::Summary) -> crate::metrics::CostSummary {
        crate::metrics::CostSummary::new(
            self.gpus,
            self.price.usd_per_gpu_hour,
            s.output_throughput,
            s.total_token_throughput,
        )
    }
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
    /// What the checks changed on request (`workload.truncate`), each once, to be
    /// shown to the user.
    pub warnings: Vec<String>,
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

/// Checks one resolved experiment table (no `[sweep]`, no `[[variant]]`) and builds
/// it, as each sweep point is: the planner's candidates (`infersim plan`) go through
/// here. `varied` names the keys that differ between the tables checked together.
pub fn build_table(
    d: toml::Table,
    base: Option<&Path>,
    file: &str,
    varied: &[String],
) -> Result<(RawExperiment, check::Built), Vec<ConfigError>> {
    let mut traces = TraceCache::default();
    check_point(d, base, file, varied, &mut traces).map(|(raw, built, _)| (raw, built))
}

/// The most distinct errors reported for one file.
pub const MAX_REPORTED_ERRORS: usize = 100;

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
    let varied = varied_paths(&axes, &variants);
    let base = path.parent().map(Path::to_path_buf);
    let mut traces = TraceCache::default();
    let mut points = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
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
            match check_point(d, base.as_deref(), &file, &varied, &mut traces) {
                Ok((raw, (scenario, meta, model, gpu), point_warnings)) => {
                    for w in point_warnings {
                        if !warnings.contains(&w) {
                            warnings.push(w);
                        }
                    }
                    points.push(Point {
                        index,
                        params: params_of(index),
                        raw,
                        scenario,
                        meta,
                        model,
                        gpu,
                    })
                }
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
        warnings,
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

/// The dotted paths that differ between sweep points: the sweep axes and every key a
/// `[[variant]]` sets.
fn varied_paths(
    axes: &[(String, Vec<toml::Value>)],
    variants: &[(String, toml::Table)],
) -> Vec<String> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in t {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => walk(&p, inner, out),
                _ => out.push(p),
            }
        }
    }
    let mut out: Vec<String> = axes
        .iter()
        .filter(|(k, _)| k != VARIANT)
        .map(|(k, _)| k.clone())
        .collect();
    for (_, t) in variants {
        walk("", t, &mut out);
    }
    out
}
