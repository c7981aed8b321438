//! The plan file: an experiment (`[hardware]`, `[engine]`, `[workload]`, `[slo]`)
//! plus `[plan]` (the target and the search's settings) and `[plan.space]` (the
//! values each axis takes). Every `[plan]` key is checked here; the experiment part
//! is checked by the experiment machinery ([`crate::config::build_table`]) for every
//! candidate.

use crate::error::ConfigError;
use std::path::{Path, PathBuf};

/// `[plan]` keys, with what each takes.
pub const PLAN_KEYS: &[(&str, &str)] = &[
    ("target_rate", "requests per second > 0, or \"max\""),
    ("replications", "runs per rate point, 1 to 20 (default 3)"),
    (
        "cheapest_only",
        "true (default with a numeric target: skip candidates dearer than the runner-up) or false",
    ),
    (
        "max_steps",
        "rate points tried per candidate at most, 2 to 40 (default 12)",
    ),
    (
        "rate_tolerance",
        "relative width at which bisection stops, in (0, 1) (default 0.05)",
    ),
    (
        "start_rate",
        "first rate tried when target_rate = \"max\", > 0 (default 1.0)",
    ),
    (
        "verify_seeds",
        "seeds the winner and the next cheaper are re-run with, 0 to 50 (default 5)",
    ),
    ("space", "the search space table"),
];

/// `[plan.space]` axes, with the experiment key each sets and what it takes.
pub const SPACE_KEYS: &[(&str, &str)] = &[
    ("model", "engine.model: model names (see `infersim list`)"),
    ("gpu", "hardware.gpu: GPU names (see `infersim list`)"),
    ("num_gpus", "hardware.num_gpus: whole numbers 1 to 4096"),
    (
        "tensor_parallel_size",
        "engine.tensor_parallel_size: whole numbers 1 to 64",
    ),
    (
        "pipeline_parallel_size",
        "engine.pipeline_parallel_size: whole numbers 1 to 64",
    ),
    (
        "sharing",
        "hardware.sharing: \"exclusive\", \"mps\", \"time-slice\" or \"mig\"",
    ),
    (
        "instances_per_gpu",
        "hardware.instances_per_gpu with mps and time-slice: whole numbers 2 to 16",
    ),
    (
        "mig",
        "hardware.mig with sharing \"mig\": MIG profile names such as \"3g.40gb\"",
    ),
    (
        "max_num_seqs",
        "engine.continuous.max_num_seqs: whole numbers 1 to 65536",
    ),
    (
        "max_num_batched_tokens",
        "engine.continuous.max_num_batched_tokens: whole numbers 1 to 1048576",
    ),
];

/// The checked `[plan]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Target rate, requests per second; `None`: find the highest.
    pub target_rate: Option<f64>,
    /// Runs per rate point.
    pub replications: u32,
    /// Skip candidates dearer than the runner-up (numeric target only).
    pub cheapest_only: bool,
    /// Rate points per candidate at most.
    pub max_steps: u32,
    /// Relative bracket width at which bisection stops.
    pub rate_tolerance: f64,
    /// First rate with `target_rate = "max"`.
    pub start_rate: f64,
    /// Seeds of the verification re-runs.
    pub verify_seeds: u32,
}

/// The search space: each axis's values, in the file's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Space {
    /// `engine.model` values (empty: the base's).
    pub model: Vec<String>,
    /// `hardware.gpu` values.
    pub gpu: Vec<String>,
    /// `hardware.num_gpus` values.
    pub num_gpus: Vec<u32>,
    /// `engine.tensor_parallel_size` values.
    pub tensor_parallel_size: Vec<u32>,
    /// `engine.pipeline_parallel_size` values.
    pub pipeline_parallel_size: Vec<u32>,
    /// Sharing modes.
    pub sharing: Vec<String>,
    /// Pods per GPU with mps and time-slice.
    pub instances_per_gpu: Vec<u32>,
    /// MIG profiles with sharing `mig`.
    pub mig: Vec<String>,
    /// `max_num_seqs` values.
    pub max_num_seqs: Vec<u32>,
    /// `max_num_batched_tokens` values.
    pub max_num_batched_tokens: Vec<u32>,
}

/// A parsed plan file: its settings, its space and the base experiment table.
#[derive(Debug, Clone)]
pub struct PlanFile {
    /// Path it was read from.
    pub path: PathBuf,
    /// The plan's name (the experiment's `name`).
    pub name: String,
    /// The base seed.
    pub seed: u64,
    /// `[plan]`.
    pub settings: PlanSettings,
    /// `[plan.space]`.
    pub space: Space,
    /// The experiment table without `[plan]`.
    pub base: toml::Table,
}

fn err(file: &str, field: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(file, field, msg)
}

fn allowed(keys: &[(&str, &str)]) -> String {
    keys.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
}

/// Parses a plan file's text; every error found.
pub fn parse_plan(text: &str, path: &Path) -> Result<PlanFile, Vec<ConfigError>> {
    parse_plan_keys(text, path).map_err(|errs| {
        // Each error at the line and column of its key or value, as an experiment's.
        let spans = crate::config::validate::Spans::new(text);
        let (file, none) = (
            path.display().to_string(),
            crate::config::validate::PointSources::default(),
        );
        errs.into_iter()
            .map(|e| spans.locate(e, &file, &none).0)
            .collect()
    })
}

fn parse_plan_keys(text: &str, path: &Path) -> Result<PlanFile, Vec<ConfigError>> {
    let file = path.display().to_string();
    let f = file.as_str();
    let mut base: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![crate::config::expand::toml_error(&e, text, f)])?;
    let mut errs = Vec::new();
    for k in ["sweep", "variant"] {
        if base.contains_key(k) {
            errs.push(err(
                f,
                k,
                "is not allowed in a plan file: the search space is [plan.space]; remove it",
            ));
        }
    }
    let plan = match base.remove("plan") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            errs.push(err(
                f,
                "plan",
                "must be a table ([plan] with target_rate and [plan.space])",
            ));
            return Err(errs);
        }
        None => {
            errs.push(err(
                f,
                "plan",
                format!(
                    "is missing: a plan file needs [plan] (keys: {}) and [plan.space]",
                    allowed(PLAN_KEYS)
                ),
            ));
            return Err(errs);
        }
    };
    let mut s = PlanSettings {
        target_rate: None,
        replications: 3,
        cheapest_only: true,
        max_steps: 12,
        rate_tolerance: 0.05,
        start_rate: 1.0,
        verify_seeds: 5,
    };
    let mut space = Space::default();
    let mut have_target = false;
    let mut cheapest_given = false;
    for (k, v) in &plan {
        let field = format!("plan.{k}");
        let num = |lo: f64, hi: f64, what: &str| -> Result<f64, ConfigError> {
            let x = match v {
                toml::Value::Integer(i) => *i as f64,
                toml::Value::Float(x) => *x,
                _ => return Err(err(f, &field, format!("got {v}, allowed: {what}"))),
            };
            if x.is_finite() && x > lo && x < hi {
                Ok(x)
            } else {
                Err(err(f, &field, format!("got {v}, allowed: {what}")))
            }
        };
        let int = |lo: i64, hi: i64, what: &str| -> Result<u32, ConfigError> {
            match v {
                toml::Value::Integer(i) if *i >= lo && *i <= hi => Ok(*i as u32),
                _ => Err(err(f, &field, format!("got {v}, allowed: {what}"))),
            }
        };
        let what = PLAN_KEYS.iter().find(|p| p.0 == k).map(|p| p.1);
        let r = match (k.as_str(), what) {
            ("target_rate", Some(w)) => {
                have_target = true;
                match v {
                    toml::Value::String(m) if m == "max" => Ok(()),
                    _ => num(0.0, 1e9, w).map(|x| s.target_rate = Some(x)),
                }
            }
            ("replications", Some(w)) => int(1, 20, w).map(|x| s.replications = x),
            ("cheapest_only", Some(w)) => match v {
                toml::Value::Boolean(b) => {
                    cheapest_given = true;
                    s.cheapest_only = *b;
                    Ok(())
                }
                _ => Err(err(f, &field, format!("got {v}, allowed: {w}"))),
            },
            ("max_steps", Some(w)) => int(2, 40, w).map(|x| s.max_steps = x),
            ("rate_tolerance", Some(w)) => num(0.0, 1.0, w).map(|x| s.rate_tolerance = x),
            ("start_rate", Some(w)) => num(0.0, 1e9, w).map(|x| s.start_rate = x),
            ("verify_seeds", Some(w)) => int(0, 50, w).map(|x| s.verify_seeds = x),
            ("space", _) => match v {
                toml::Value::Table(t) => {
                    parse_space(t, f, &mut space, &mut errs);
                    Ok(())
                }
                _ => Err(err(f, &field, "must be a table of axes, [plan.space]")),
            },
            _ => Err(err(
                f,
                &field,
                format!("unknown key; [plan] takes: {}", allowed(PLAN_KEYS)),
            )),
        };
        if let Err(e) = r {
            errs.push(e);
        }
    }
    if !have_target {
        errs.push(err(
            f,
            "plan.target_rate",
            "is missing: give the rate to meet (requests per second) or \"max\"",
        ));
    }
    if !plan.contains_key("space") {
        errs.push(err(
            f,
            "plan.space",
            format!(
                "is missing: [plan.space] with axes among {}",
                allowed(SPACE_KEYS)
            ),
        ));
    }
    if s.target_rate.is_none() && cheapest_given && s.cheapest_only {
        errs.push(err(f, "plan.cheapest_only", "applies only with a numeric target_rate (with \"max\" every candidate is searched); remove it"));
    }
    if s.target_rate.is_none() {
        s.cheapest_only = false;
    }
    if s.target_rate.is_some() && plan.contains_key("start_rate") {
        errs.push(err(f, "plan.start_rate", "applies only with target_rate = \"max\" (a numeric target is the first rate tried); remove it"));
    }
    if let Some(w) = base.get("workload").and_then(|w| w.as_table()) {
        if w.contains_key("rate_per_s") {
            errs.push(err(f, "workload.rate_per_s", "is set by the planner (the rates it tries); remove it and give the target as plan.target_rate"));
        }
        if w.contains_key("num_requests") {
            errs.push(err(
                f,
                "workload.num_requests",
                "plans use timed runs: give workload.duration_s (and warmup_s) instead",
            ));
        } else if !w.contains_key("duration_s") {
            errs.push(err(
                f,
                "workload.duration_s",
                "is missing: plans use timed runs with a warm-up (duration_s, warmup_s)",
            ));
        }
    }
    if !base.contains_key("slo") {
        errs.push(err(
            f,
            "slo",
            "is missing: a plan searches for the highest rate meeting [slo] (for example p99_ttft_ms = 2000)",
        ));
    }
    if base.contains_key("instance") {
        errs.push(err(
            f,
            "instance",
            "is not allowed in a plan file: the planner places the instances; remove [[instance]]",
        ));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let name = base
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("plan")
        .to_string();
    let seed = base
        .get("seed")
        .and_then(|n| n.as_integer())
        .map_or(0, |x| x.max(0) as u64);
    Ok(PlanFile {
        path: path.to_path_buf(),
        name,
        seed,
        settings: s,
        space,
        base,
    })
}

fn parse_space(t: &toml::Table, f: &str, sp: &mut Space, errs: &mut Vec<ConfigError>) {
    for (k, v) in t {
        let field = format!("plan.space.{k}");
        let Some(&(_, what)) = SPACE_KEYS.iter().find(|p| p.0 == k) else {
            errs.push(err(
                f,
                &field,
                format!("unknown axis; [plan.space] takes: {}", allowed(SPACE_KEYS)),
            ));
            continue;
        };
        let Some(arr) = v.as_array().filter(|a| !a.is_empty()) else {
            errs.push(err(
                f,
                &field,
                format!("must be a non-empty list of values ({what})"),
            ));
            continue;
        };
        let strings = || -> Option<Vec<String>> {
            arr.iter().map(|x| x.as_str().map(String::from)).collect()
        };
        let ints = |lo: i64, hi: i64| -> Option<Vec<u32>> {
            arr.iter()
                .map(|x| {
                    x.as_integer()
                        .filter(|i| *i >= lo && *i <= hi)
                        .map(|i| i as u32)
                })
                .collect()
        };
        let ok = match k.as_str() {
            "model" => strings().map(|x| sp.model = x).is_some(),
            "gpu" => strings().map(|x| sp.gpu = x).is_some(),
            "mig" => strings().map(|x| sp.mig = x).is_some(),
            "sharing" => strings()
                .filter(|x| {
                    x.iter()
                        .all(|m| ["exclusive", "mps", "time-slice", "mig"].contains(&m.as_str()))
                })
                .map(|x| sp.sharing = x)
                .is_some(),
            "num_gpus" => ints(1, 4096).map(|x| sp.num_gpus = x).is_some(),
            "tensor_parallel_size" => ints(1, 64).map(|x| sp.tensor_parallel_size = x).is_some(),
            "pipeline_parallel_size" => {
                ints(1, 64).map(|x| sp.pipeline_parallel_size = x).is_some()
            }
            "instances_per_gpu" => ints(2, 16).map(|x| sp.instances_per_gpu = x).is_some(),
            "max_num_seqs" => ints(1, 65536).map(|x| sp.max_num_seqs = x).is_some(),
            _ => ints(1, 1 << 20)
                .map(|x| sp.max_num_batched_tokens = x)
                .is_some(),
        };
        if !ok {
            errs.push(err(f, &field, format!("got {v}, allowed: {what}")));
        }
    }
    let has = |m: &str| sp.sharing.iter().any(|s| s == m);
    if !sp.instances_per_gpu.is_empty() && !has("mps") && !has("time-slice") {
        errs.push(err(f, "plan.space.instances_per_gpu", "applies only with sharing \"mps\" or \"time-slice\" in plan.space.sharing; add one or remove it"));
    }
    if (has("mps") || has("time-slice")) && sp.instances_per_gpu.is_empty() {
        errs.push(err(
            f,
            "plan.space.instances_per_gpu",
            "is missing: sharing \"mps\" or \"time-slice\" needs the pods per GPU to try (2 to 16)",
        ));
    }
    if has("mig") == sp.mig.is_empty() {
        errs.push(err(
            f,
            "plan.space.mig",
            "goes with sharing \"mig\": give both (MIG profiles such as \"3g.40gb\") or neither",
        ));
    }
}
