//! Candidates: every combination of the space's axes, in a stable order (model, GPU,
//! GPU count, TP, PP, sharing and pods, `max_num_seqs`, `max_num_batched_tokens`; the
//! last varies fastest), each built into a checked experiment point by the
//! experiment machinery, or pruned with the reason it cannot run.

use super::space::PlanFile;
use crate::config::build_table;
use crate::sim::Scenario;
use crate::specs::{GpuSpec, ModelSpec};
use crate::workload::Arrival;
use serde::{Deserialize, Serialize};

/// What one candidate is: the values of the axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Model.
    pub model: String,
    /// GPU type.
    pub gpu: String,
    /// Physical GPUs.
    pub num_gpus: u32,
    /// Tensor-parallel size.
    pub tp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// `exclusive`, `mps`, `time-slice` or `mig`.
    pub sharing: String,
    /// Pods per GPU (mps, time-slice), else 1.
    pub pods_per_gpu: u32,
    /// MIG profile with `mig`.
    pub mig: Option<String>,
    /// `max_num_seqs`, when the space sets it.
    pub max_num_seqs: Option<u32>,
    /// `max_num_batched_tokens`, when the space sets it.
    pub max_num_batched_tokens: Option<u32>,
}

impl Setup {
    /// A one-line label, e.g. `llama-3.1-8b on 2× l4, tp 1, exclusive, seqs 256`.
    pub fn label(&self) -> String {
        let mut s = format!("{} on {}× {}", self.model, self.num_gpus, self.gpu);
        if self.tp > 1 {
            s += &format!(", tp {}", self.tp);
        }
        if self.pp > 1 {
            s += &format!(", pp {}", self.pp);
        }
        match (self.sharing.as_str(), &self.mig) {
            ("mig", Some(m)) => s += &format!(", mig {m}"),
            ("exclusive", _) => {}
            (m, _) => s += &format!(", {m} ×{}", self.pods_per_gpu),
        }
        if let Some(n) = self.max_num_seqs {
            s += &format!(", seqs {n}");
        }
        if let Some(n) = self.max_num_batched_tokens {
            s += &format!(", mbt {n}");
        }
        s
    }
}

/// Every candidate of the space, in the stable order.
pub fn enumerate(plan: &PlanFile) -> Vec<Setup> {
    let sp = &plan.space;
    let get = |sec: &str, key: &str| {
        plan.base
            .get(sec)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let geti = |sec: &str, key: &str| {
        plan.base
            .get(sec)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_integer())
            .map_or(1, |x| x.max(1) as u32)
    };
    let or = |v: &Vec<String>, d: String| if v.is_empty() { vec![d] } else { v.clone() };
    let ori = |v: &Vec<u32>, d: u32| if v.is_empty() { vec![d] } else { v.clone() };
    let opt = |v: &Vec<u32>| -> Vec<Option<u32>> {
        if v.is_empty() {
            vec![None]
        } else {
            v.iter().copied().map(Some).collect()
        }
    };
    let base_sharing = {
        let s = get("hardware", "sharing");
        if s.is_empty() {
            "exclusive".to_string()
        } else {
            s
        }
    };
    // (sharing, pods, mig) combinations.
    let mut modes: Vec<(String, u32, Option<String>)> = Vec::new();
    for m in or(&sp.sharing, base_sharing) {
        match m.as_str() {
            "mps" | "time-slice" => {
                for &n in &ori(&sp.instances_per_gpu, geti("hardware", "instances_per_gpu")) {
                    modes.push((m.clone(), n, None));
                }
            }
            "mig" => {
                for p in &sp.mig {
                    modes.push((m.clone(), 1, Some(p.clone())));
                }
            }
            _ => modes.push((m.clone(), 1, None)),
        }
    }
    let mut out = Vec::new();
    for model in or(&sp.model, get("engine", "model")) {
        for gpu in or(&sp.gpu, get("hardware", "gpu")) {
            for &n in &ori(&sp.num_gpus, geti("hardware", "num_gpus")) {
                for &tp in &ori(
                    &sp.tensor_parallel_size,
                    geti("engine", "tensor_parallel_size"),
                ) {
                    for &pp in &ori(
                        &sp.pipeline_parallel_size,
                        geti("engine", "pipeline_parallel_size"),
                    ) {
                        for (sharing, pods, mig) in &modes {
                            for &seqs in &opt(&sp.max_num_seqs) {
                                for &mbt in &opt(&sp.max_num_batched_tokens) {
                                    out.push(Setup {
                                        model: model.clone(),
                                        gpu: gpu.clone(),
                                        num_gpus: n,
                                        tp,
                                        pp,
                                        sharing: sharing.clone(),
                                        pods_per_gpu: *pods,
                                        mig: mig.clone(),
                                        max_num_seqs: seqs,
                                        max_num_batched_tokens: mbt,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// The experiment keys the planner varies.
pub fn varied_keys() -> Vec<String> {
    [
        "engine.model",
        "hardware.gpu",
        "hardware.num_gpus",
        "engine.tensor_parallel_size",
        "engine.pipeline_parallel_size",
        "hardware.sharing",
        "hardware.instances_per_gpu",
        "hardware.mig",
        "engine.continuous.max_num_seqs",
        "engine.continuous.max_num_batched_tokens",
        "workload.rate_per_s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The experiment table of one candidate (the base with the axes' values set, and a
/// placeholder rate the search replaces).
pub fn table(plan: &PlanFile, s: &Setup) -> toml::Table {
    use toml::Value as V;
    let mut d = plan.base.clone();
    let sec = |d: &mut toml::Table, name: &str| -> toml::Table {
        match d.remove(name) {
            Some(V::Table(t)) => t,
            _ => toml::Table::new(),
        }
    };
    let mut hw = sec(&mut d, "hardware");
    hw.insert("gpu".into(), V::String(s.gpu.clone()));
    hw.insert("num_gpus".into(), V::Integer(s.num_gpus as i64));
    match s.sharing.as_str() {
        "mig" => {
            hw.remove("sharing");
            hw.insert("mig".into(), V::String(s.mig.clone().unwrap_or_default()));
        }
        m => {
            hw.insert("sharing".into(), V::String(m.to_string()));
        }
    }
    hw.insert(
        "instances_per_gpu".into(),
        V::Integer(s.pods_per_gpu as i64),
    );
    let mut eng = sec(&mut d, "engine");
    // Pods sharing a GPU split its memory: unless the file says, each takes an equal
    // share of vLLM's default 0.9.
    if s.pods_per_gpu > 1 && !eng.contains_key("gpu_memory_utilization") {
        eng.insert(
            "gpu_memory_utilization".into(),
            V::Float(0.9 / s.pods_per_gpu as f64),
        );
    }
    eng.insert("model".into(), V::String(s.model.clone()));
    eng.insert("tensor_parallel_size".into(), V::Integer(s.tp as i64));
    eng.insert("pipeline_parallel_size".into(), V::Integer(s.pp as i64));
    if s.max_num_seqs.is_some() || s.max_num_batched_tokens.is_some() {
        let mut c = match eng.remove("continuous") {
            Some(V::Table(t)) => t,
            _ => toml::Table::new(),
        };
        if let Some(n) = s.max_num_seqs {
            c.insert("max_num_seqs".into(), V::Integer(n as i64));
        }
        if let Some(n) = s.max_num_batched_tokens {
            c.insert("max_num_batched_tokens".into(), V::Integer(n as i64));
        }
        eng.insert("continuous".into(), V::Table(c));
    }
    let mut wl = sec(&mut d, "workload");
    wl.insert("rate_per_s".into(), V::Float(1.0));
    d.insert("hardware".into(), V::Table(hw));
    d.insert("engine".into(), V::Table(eng));
    d.insert("workload".into(), V::Table(wl));
    d
}

/// A built candidate: what the search runs.
#[derive(Debug, Clone)]
pub struct Built {
    /// Its scenario (rate replaced per run).
    pub scenario: Scenario,
    /// Physical GPUs the price counts.
    pub gpus: u32,
    /// Price per GPU-hour (NaN: unknown).
    pub usd_per_gpu_hour: f64,
    /// Instances.
    pub instances: u32,
    /// The model.
    pub model: ModelSpec,
    /// The GPU (physical).
    pub gpu: GpuSpec,
}

/// Why a candidate did not build: `memory` (weights and KV cache do not fit) or
/// `invalid` (a layout the experiment checks refuse), with the first message.
pub fn build(plan: &PlanFile, s: &Setup) -> Result<Built, (String, String)> {
    let file = plan.path.display().to_string();
    let base = plan.path.parent();
    match build_table(table(plan, s), base, &file, &varied_keys()) {
        Ok((_, (scenario, meta, model, gpu))) => Ok(Built {
            instances: scenario.instances.len() as u32,
            scenario,
            gpus: meta.gpus,
            usd_per_gpu_hour: meta.price.usd_per_gpu_hour,
            model,
            gpu,
        }),
        Err(es) => {
            let memory = es.iter().find(|e| e.message.contains("does not fit"));
            let e = memory.unwrap_or(&es[0]);
            let kind = if memory.is_some() {
                "memory"
            } else {
                "invalid"
            };
            Err((kind.to_string(), format!("{}: {}", e.field, e.message)))
        }
    }
}

/// `sc` with its arrival rate set to `rate` (requests per second).
pub fn at_rate(sc: &Scenario, rate: f64) -> Scenario {
    let mut sc = sc.clone();
    match &mut sc.workload.arrival {
        Arrival::Poisson { rate: r } | Arrival::Constant { rate: r } => *r = rate,
        Arrival::Gamma { rate: r, .. } => *r = rate,
        _ => {}
    }
    sc
}

/// Whether the workload's arrivals are set by a rate (the planner needs them to be).
pub fn rate_driven(sc: &Scenario) -> bool {
    matches!(
        sc.workload.arrival,
        Arrival::Poisson { .. } | Arrival::Constant { .. } | Arrival::Gamma { .. }
    ) && sc.workload.classes.is_empty()
}

/// An upper bound on the request rate a candidate can serve, from the roofline:
/// every token costs at least 2 FLOPs per active parameter, and every step (of at
/// most `max_num_batched_tokens` tokens) reads each GPU's share of the weights, so
/// tokens per second ≤ GPUs (MIG instances with MIG) × min(F / 2P, tokens per step × bandwidth / weights);
/// divided by the mean prompt + output tokens of a request. Quantised weights are
/// allowed twice the bf16 peak (FP8 tensor cores).
pub fn roofline_rate(b: &Built, batch_tokens: u64) -> f64 {
    let deploy = b
        .scenario
        .instances
        .first()
        .map(|i| i.cost.deployment().clone())
        .unwrap_or_default();
    let q = if deploy.quantization.is_some() {
        2.0
    } else {
        1.0
    };
    let flops = b.gpu.tensor_tflops * 1e12 * q;
    let p = b.model.active_param_count().max(1) as f64;
    let w = crate::config::memory::weight_bytes(&b.model, &deploy).max(1.0);
    let bw = b.gpu.memory_bandwidth_gbps * 1e9;
    let per_gpu = (flops / (2.0 * p)).min(batch_tokens as f64 * bw / w);
    let wl = &b.scenario.workload;
    let tokens = (wl.input.mean() + wl.output.mean()).max(1.0);
    // Physical GPUs, or the MIG instances (each priced with its slice's spec) when
    // there are more of them; a tensor-parallel group is one GPU to the simulation,
    // hence the larger of the two.
    let gpus = (b.gpus as usize).max(b.scenario.gpus.len()).max(1);
    gpus as f64 * per_gpu / tokens
}
