//! Checking the meaning of one sweep point after the schema has passed its keys:
//! what no single key can say (spec files that must load, memory that must fit,
//! instances that must share a GPU legally, a warm-up shorter than the run), and
//! building the [`Scenario`] and result descriptors. Every range of a single key lives
//! in the declaration (`schema.rs`), not here. The sections' own checks are in
//! `check_hardware.rs`, `check_engine.rs` and `check_workload.rs`.

use super::expand::{deep_merge, remove_path};
use super::raw::{RawEngine, RawExperiment, RawHardware, RawWorkload};
use super::schema::{Kind, MAX_INSTANCES_PER_GPU, TOP};
use super::{api_latency, has_front_end, Meta};
use crate::cost::{CostModel, GpuPath};
use crate::error::ConfigError;
use crate::gpu::Sharing;
use crate::kv::KvGeometry;
use crate::policy::Policy;
use crate::profile::Profile;
use crate::router::RouterKind;
use crate::sim::{InstanceSetup, Scenario};
use crate::specs::{GpuSpec, ModelSpec};
use crate::validate::check_schema;
use crate::workload::{Arrival, Trace};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Traces read while checking an experiment, by (path, time scale), so a sweep reads
/// each once.
pub(crate) type TraceCache = HashMap<(PathBuf, u64), Result<Arc<Trace>, ConfigError>>;

/// What a checked point is made of.
pub type Built = (Scenario, Meta, ModelSpec, GpuSpec);

/// Checks one resolved sweep point: the schema first, then the meaning of each
/// section. When the schema finds errors, the keys it faulted are left out and the
/// rest is still checked, so that one round reports schema and meaning errors
/// together (an error the rest would report about a left-out key is the schema's).
pub(crate) fn check_point(
    d: toml::Table,
    base: Option<&Path>,
    file: &str,
    varied: &[String],
    traces: &mut TraceCache,
) -> Result<(RawExperiment, Built, Vec<String>), Vec<ConfigError>> {
    let schema = check_schema(file, &d, varied);
    let seed = d
        .get("seed")
        .and_then(toml::Value::as_integer)
        .map_or(0, |s| s.max(0) as u64);
    let faulted: Vec<String> = schema.iter().map(|e| faulted_key(&e.field)).collect();
    let mut c = Checker {
        file,
        base,
        traces,
        errs: Vec::new(),
        faulted: &faulted,
        seed,
        warnings: Vec::new(),
        offline_entry: false,
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
        let built = built.map(|mut b| {
            c.front_and_client(&raw, &mut b.0);
            c.slo(&raw, &mut b.0);
            b.1.price = c.price(&raw.hardware, &b.3);
            b
        });
        return match built {
            Some(b) if c.errs.is_empty() => Ok((raw, b, c.warnings)),
            _ => Err(c.errs),
        };
    }
    let section = |sec: &str| -> Option<toml::Value> {
        let dotted = format!("{sec}.");
        let mut v = d.get(sec)?.clone();
        for p in &faulted {
            if p == sec {
                return None;
            }
            if let Some(rest) = p.strip_prefix(&dotted) {
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
    errs.extend(
        std::mem::take(&mut c.errs)
            .into_iter()
            .filter(|e| !faulted.iter().any(|p| covers(p, &e.field))),
    );
    Err(errs)
}

/// The declared key an error at `field` is about: the field itself, or the length
/// distribution (or other non-table key) that holds it.
fn faulted_key(field: &str) -> String {
    let mut keys = Some(TOP);
    let mut out: Vec<&str> = Vec::new();
    for part in field.split('.') {
        out.push(part);
        match keys
            .and_then(|ks| ks.iter().find(|k| k.name == part))
            .map(|k| k.kind)
        {
            Some(Kind::Table(t)) => keys = Some(t),
            _ => break,
        }
    }
    out.join(".")
}

/// Whether `path` is `key` or lies under it.
fn covers(key: &str, path: &str) -> bool {
    path == key || (path.starts_with(key) && path[key.len()..].starts_with('.'))
}

/// Checks one raw point (against the schema too) and builds its scenario; every
/// error found.
pub fn build_point(
    raw: &RawExperiment,
    base: Option<&Path>,
    file: &str,
) -> Result<Built, Vec<ConfigError>> {
    let table = match toml::Value::try_from(raw) {
        Ok(toml::Value::Table(t)) => t,
        Ok(_) => toml::Table::new(),
        Err(e) => return Err(vec![ConfigError::new(file, "(experiment)", e.to_string())]),
    };
    let mut traces = TraceCache::default();
    check_point(table, base, file, &[], &mut traces).map(|(_, built, _)| built)
}

/// The checked `[hardware]`.
pub(super) struct Hw {
    /// The GPU, or one MIG instance of it.
    pub(super) gpu: GpuSpec,
    pub(super) sharing: Sharing,
    pub(super) atp: f64,
    pub(super) router: RouterKind,
    /// GPUs as the simulation sees them (MIG instances with MIG).
    pub(super) num_gpus: u32,
    pub(super) per_gpu: u32,
    /// With MIG: (profile, physical GPUs).
    pub(super) mig: Option<(String, u32)>,
}

/// The checked `[engine]`.
pub(super) struct Eng {
    pub(super) model: ModelSpec,
    pub(super) profile: Profile,
    pub(super) policy: Policy,
    pub(super) scheduler: crate::policy::SchedulerChoice,
    pub(super) block_size: u64,
    pub(super) blocks: u64,
    pub(super) geo: KvGeometry,
    pub(super) stack: crate::stacks::StackSemantics,
    /// Parallelism and number formats.
    pub(super) deploy: crate::cost::Deployment,
}

/// Collects the errors of one point.
pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) base: Option<&'a Path>,
    pub(super) traces: &'a mut TraceCache,
    pub(super) errs: Vec<ConfigError>,
    /// Keys the schema faulted and left out (their errors are the schema's).
    pub(super) faulted: &'a [String],
    /// The experiment's base seed (lengths are drawn with it to count the requests
    /// that do not fit).
    pub(super) seed: u64,
    /// Whether requests enter through the offline `LLM` class rather than an API
    /// server (`workload.arrival = "offline"`): vLLM V1 presets pick other defaults.
    pub(super) offline_entry: bool,
    /// What the point changes in the user's workload on request (`truncate`).
    pub(super) warnings: Vec<String>,
}

impl Checker<'_> {
    /// Whether the schema faulted (and left out) the key at `field`.
    pub(super) fn is_faulted(&self, field: &str) -> bool {
        self.faulted.iter().any(|p| p == field)
    }

    pub(super) fn err(&mut self, field: &str, msg: impl Into<String>) {
        self.errs.push(ConfigError::new(self.file, field, msg));
    }

    /// A spec file named by `field` that cannot be read is an error of this file.
    pub(super) fn spec_error(&self, e: ConfigError, field: &str, what: &str) -> ConfigError {
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
        self.offline_entry = w.is_some_and(|w| w.arrival == "offline");
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
        self.sharded_hardware(&hw, &eng.deploy);
        if !self.errs.is_empty() {
            return None;
        }
        let cost = match CostModel::for_deployment(
            &eng.model,
            &hw.gpu,
            &eng.profile,
            GpuPath::Auto,
            &eng.deploy,
        ) {
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
        // A tensor/pipeline-parallel group runs in lockstep: one simulated GPU per
        // instance, standing for its tp × pp physical GPUs (reports count those).
        let groups = hw.num_gpus / eng.deploy.gpus();
        let n = (groups * hw.per_gpu) as usize;
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
                scheduler: eng.scheduler.clone(),
                stack: eng.stack.clone(),
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
            stack: e
                .and_then(|e| e.stack.clone())
                .filter(|s| crate::stacks::preset(s).is_some()),
            price: Default::default(),
        };
        Some((
            Scenario {
                workload,
                gpus: vec![hw.sharing; groups as usize],
                instances,
                router: hw.router,
                front_end: crate::frontend::FrontEndSetup::from_profile(
                    Default::default(),
                    1,
                    &eng.profile,
                    None,
                ),
                client: Default::default(),
            },
            meta,
            eng.model,
            hw.gpu,
        ))
    }

    /// A sharded instance (tensor × pipeline GPUs) needs whole GPUs to itself:
    /// `num_gpus` a multiple of its GPUs, exclusive sharing (so one instance per
    /// GPU), no MIG.
    fn sharded_hardware(&mut self, hw: &Hw, deploy: &crate::cost::Deployment) {
        let g = deploy.gpus();
        if g <= 1 {
            return;
        }
        let (tp, pp) = (deploy.tensor_parallel, deploy.pipeline_parallel);
        if hw.mig.is_some() {
            self.err("hardware.mig", format!("an instance of tensor_parallel_size {tp} × pipeline_parallel_size {pp} takes {g} whole GPUs; MIG slices cannot be grouped; remove mig or set both sizes to 1"));
            return;
        }
        if hw.sharing != Sharing::Exclusive {
            self.err("hardware.sharing", format!("got {:?}, but an instance of tensor_parallel_size {tp} × pipeline_parallel_size {pp} takes {g} whole GPUs; allowed with parallelism: \"exclusive\"", hw.sharing.name()));
        }
        if hw.num_gpus % g != 0 {
            let dp = match deploy.data_parallel {
                1 => String::new(),
                n => format!(" × data_parallel_size {n}"),
            };
            self.err("hardware.num_gpus", format!("got {}, but each instance takes tensor_parallel_size {tp} × pipeline_parallel_size {pp}{dp} = {g} GPUs; allowed: a multiple of {g}", hw.num_gpus));
        }
    }

    /// `[[instance]]`: replaces the copies of `[engine]` by instances placed one by
    /// one, each with `[engine]`'s settings overridden by its own.
    fn place_instances(&mut self, raw: &RawExperiment, built: Built) -> Option<Built> {
        let (mut sc, mut meta, model0, gpu) = built;
        let h = &raw.hardware;
        if sc.instances[0].cost.deployment().is_sharded() {
            self.err(
                "engine.tensor_parallel_size",
                "tensor and pipeline parallelism apply to [engine]'s copies only, not to [[instance]] placements; remove [[instance]] or the parallel sizes",
            );
            return None;
        }
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
            let cost = match CostModel::for_deployment(
                &eng.model,
                &gpu,
                &eng.profile,
                GpuPath::Auto,
                &eng.deploy,
            ) {
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
                scheduler: eng.scheduler.clone(),
                stack: eng.stack.clone(),
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
}
