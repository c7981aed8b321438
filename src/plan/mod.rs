//! `infersim plan FILE`: the cheapest deployment that meets the SLOs at a target rate
//! (or the highest rate each deployment sustains), searched over a space of GPU type ×
//! count × TP/PP × sharing mode and pods × engine settings.
//!
//! Every candidate of the space ([`candidate::enumerate`]) is built by the
//! experiment machinery; those that do not fit in memory or do not form a valid
//! layout are pruned, and so are those whose roofline bound on the rate is below the
//! target. The rest are searched ([`search`]) in order of cost per hour, in fixed-size
//! batches (in parallel with rayon within a batch). With `cheapest_only`, the search
//! stops once two candidates meeting the target are known: every dearer one is
//! dominated (the cheapest and the runner-up are found). Which candidates count as
//! dominated is decided on the results alone, in cost order ([`finalize`]), so a
//! sharded plan merged ([`merge_plan_shards`]) gives the same report byte for byte.

pub mod candidate;
mod html;
pub mod output;
pub mod search;
pub mod space;
mod svg;

pub use output::{write_outputs, PlanReport};
pub use space::{parse_plan, PlanFile, PlanSettings, Space};

use crate::error::{ConfigError, Error, Result};
use crate::report::Shard;
use candidate::{build, enumerate, rate_driven, roofline_rate, Setup};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Candidates searched together; fixed, so that where the search stops does not
/// depend on the thread count.
pub const BATCH: usize = 8;

/// One candidate's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateResult {
    /// Position in the space's order.
    pub index: usize,
    /// Its label.
    pub label: String,
    /// Its axes.
    #[serde(flatten)]
    pub setup: Setup,
    /// Instances.
    pub instances: u32,
    /// GPUs × price per GPU-hour, US dollars (None: no price known).
    pub cost_per_hour_usd: Option<f64>,
    /// The roofline bound on the rate, requests per second.
    pub roofline_rate: Option<f64>,
    /// Why it was not searched (None: searched): `memory: …`, `invalid: …`,
    /// `roofline: …`, `dominated: …`, `not reached`.
    pub pruned: Option<String>,
    /// Highest rate found to meet the SLOs (None: none, or not searched).
    pub max_rate: Option<f64>,
    /// Replications meeting the SLOs at `max_rate`, e.g. `3/3`.
    pub max_rate_confidence: Option<String>,
    /// Replications meeting the SLOs at the target rate, e.g. `1/3`.
    pub target_confidence: Option<String>,
    /// Whether it meets the SLOs at the target rate (every replication).
    pub meets_target: Option<bool>,
    /// The first SLO's metric at the target rate (mean over replications), ms.
    pub latency_at_target_ms: Option<f64>,
    /// Dollars per million output tokens at `max_rate`.
    pub usd_per_million_output_tokens: Option<f64>,
    /// Dollars per million tokens at `max_rate`.
    pub usd_per_million_tokens: Option<f64>,
    /// Simulations run.
    pub runs: u32,
}

impl CandidateResult {
    fn new(index: usize, setup: Setup) -> Self {
        CandidateResult {
            index,
            label: setup.label(),
            setup,
            instances: 0,
            cost_per_hour_usd: None,
            roofline_rate: None,
            pruned: None,
            max_rate: None,
            max_rate_confidence: None,
            target_confidence: None,
            meets_target: None,
            latency_at_target_ms: None,
            usd_per_million_output_tokens: None,
            usd_per_million_tokens: None,
            runs: 0,
        }
    }

    /// Sort key of the cost order: cost per hour (unknown last), then index.
    fn cost_key(&self) -> (f64, usize) {
        (self.cost_per_hour_usd.unwrap_or(f64::INFINITY), self.index)
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Loads and checks a plan file (the experiment part is checked on the space's
/// first candidate, so that a mistake in it is reported, not pruned).
pub fn load_plan(path: &Path) -> Result<PlanFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(ConfigError::new(
            path.display().to_string(),
            "(file)",
            format!("cannot read: {e}"),
        ))
    })?;
    let plan = parse_plan(&text, path).map_err(errors)?;
    let file = path.display().to_string();
    let first = enumerate(&plan);
    let Some(s) = first.first() else {
        return Err(ConfigError::new(&file, "plan.space", "has no candidates").into());
    };
    let varied = candidate::varied_keys();
    if let Err(es) =
        crate::config::build_table(candidate::table(&plan, s), path.parent(), &file, &varied)
    {
        // Errors about the keys the planner sets depend on the candidate (pruned);
        // the others are the file's.
        let own: Vec<ConfigError> = es
            .into_iter()
            .filter(|e| {
                !e.message.contains("does not fit")
                    && !varied.iter().any(|k| e.field.starts_with(k.as_str()))
            })
            .collect();
        if !own.is_empty() {
            return Err(errors(own));
        }
    }
    Ok(plan)
}

fn errors(mut es: Vec<ConfigError>) -> Error {
    if es.len() == 1 {
        Error::Config(es.remove(0))
    } else {
        Error::ConfigList(es)
    }
}

/// Whether `path` holds a plan file (a TOML file with a top-level `[plan]` table)
/// rather than an experiment: `infersim validate` checks each as what it is.
pub fn is_plan_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.get("plan").is_some_and(|p| p.is_table()))
}

/// Options of one plan run.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// No progress bar.
    pub quiet: bool,
    /// The share of the candidates to search (None: all).
    pub shard: Option<Shard>,
}

/// A plan's results before [`finalize`]: what a shard file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    /// Always `"plan"`: what `infersim merge` dispatches on.
    pub kind: String,
    /// The plan's name.
    pub name: String,
    /// A digest of the plan file's text (shards of different plans do not merge).
    pub plan_digest: String,
    /// The plan file as the shard was run with it (`infersim merge` loads it to
    /// re-run the winner and the next cheaper with other seeds).
    #[serde(default)]
    pub plan_file: String,
    /// Which shard, `i/n`.
    pub shard: String,
    /// The plan's target (None: "max").
    pub target_rate: Option<f64>,
    /// `cheapest_only`.
    pub cheapest_only: bool,
    /// Replications per point.
    pub replications: u32,
    /// The SLO keys and bounds.
    pub slo: Vec<(String, f64)>,
    /// Candidates in the whole space.
    pub candidates_total: usize,
    /// This shard's candidates' results, by index.
    pub results: Vec<CandidateResult>,
}

/// Searches the candidates of `plan` (those of `opts.shard`) and returns the raw
/// results. Deterministic whatever the thread count.
pub fn run_plan(plan: &PlanFile, opts: &PlanOptions) -> Result<ShardFile> {
    let setups = enumerate(plan);
    let shard = opts.shard.unwrap_or(Shard::WHOLE);
    let s = &plan.settings;
    let mbt_base = plan
        .base
        .get("engine")
        .and_then(|e| e.get("continuous"))
        .and_then(|c| c.get("max_num_batched_tokens"))
        .and_then(|v| v.as_integer())
        .map(|x| x.max(1) as u64);
    let file = plan.path.display().to_string();
    // Build and prune, in parallel (each candidate alone).
    let built: Vec<(CandidateResult, Option<candidate::Built>)> = shard
        .indices(setups.len())
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|i| {
            let setup = setups[i].clone();
            let mut r = CandidateResult::new(i, setup.clone());
            match build(plan, &setup) {
                Err((kind, msg)) => {
                    r.pruned = Some(format!("{kind}: {msg}"));
                    (r, None)
                }
                Ok(b) => {
                    r.instances = b.instances;
                    r.cost_per_hour_usd = finite(b.gpus as f64 * b.usd_per_gpu_hour);
                    let mbt = setup
                        .max_num_batched_tokens
                        .map(u64::from)
                        .or(mbt_base)
                        .unwrap_or(b.scenario.workload.max_context);
                    let bound = roofline_rate(&b, mbt);
                    r.roofline_rate = Some(bound);
                    if let Some(t) = s.target_rate.filter(|t| bound < *t) {
                        r.pruned = Some(format!(
                            "roofline: at most {bound:.3} req/s < target {t} req/s"
                        ));
                        return (r, None);
                    }
                    (r, Some(b))
                }
            }
        })
        .collect();
    if let Some((_, Some(b))) = built.iter().find(|(_, b)| b.is_some()) {
        if !rate_driven(&b.scenario) {
            return Err(ConfigError::new(
                &file,
                "workload.arrival",
                "plans need arrivals set by a rate: poisson, gamma or constant, without classes",
            )
            .into());
        }
    }
    let mut results: Vec<CandidateResult> = Vec::with_capacity(built.len());
    let mut live: Vec<(CandidateResult, candidate::Built)> = Vec::new();
    for (r, b) in built {
        match b {
            Some(b) => live.push((r, b)),
            None => results.push(r),
        }
    }
    live.sort_by(|a, b| a.0.cost_key().partial_cmp(&b.0.cost_key()).expect("no NaN"));
    let bar = if opts.quiet || live.len() < 2 {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(live.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} candidates searched, {elapsed} elapsed, ETA {eta}",
            )
            .expect("template"),
        );
        b
    };
    let mut feasible = 0usize;
    let mut searched = 0usize;
    for chunk in live.chunks(BATCH) {
        if s.cheapest_only && feasible >= 2 {
            break;
        }
        let done: Vec<Result<CandidateResult>> = chunk
            .par_iter()
            .map(|(r, b)| {
                let out = searched_result(r.clone(), b, s, plan.seed);
                bar.inc(1);
                out
            })
            .collect();
        for r in done {
            let r = r?;
            feasible += r.meets_target.unwrap_or(false) as usize;
            results.push(r);
        }
        searched += chunk.len();
    }
    bar.finish_and_clear();
    for (mut r, _) in live.into_iter().skip(searched) {
        r.pruned = Some("not reached".into());
        results.push(r);
    }
    results.sort_by_key(|r| r.index);
    Ok(ShardFile {
        kind: "plan".to_string(),
        name: plan.name.clone(),
        plan_digest: plan_digest(plan),
        plan_file: plan.path.display().to_string(),
        shard: shard.to_string(),
        target_rate: s.target_rate,
        cheapest_only: s.cheapest_only,
        replications: s.replications,
        slo: slo_of(plan),
        candidates_total: setups.len(),
        results,
    })
}

fn searched_result(
    mut r: CandidateResult,
    b: &candidate::Built,
    s: &PlanSettings,
    seed: u64,
) -> Result<CandidateResult> {
    let bound = r.roofline_rate.unwrap_or(f64::INFINITY);
    let found = search::search(b, s, seed, bound)?;
    r.runs = found.runs;
    let conf = |p: &search::PointResult| format!("{}/{}", p.met, p.runs);
    if let Some(p) = &found.at_target {
        r.target_confidence = Some(conf(p));
        r.meets_target = Some(p.passed());
        r.latency_at_target_ms = finite(p.latency_ms);
    } else if s.target_rate.is_some() {
        r.meets_target = Some(false);
    }
    if let Some(p) = &found.best {
        r.max_rate = Some(p.rate);
        r.max_rate_confidence = Some(if found.bracketed {
            conf(p)
        } else {
            format!("{}, a lower bound: no failing rate found", conf(p))
        });
        let c = crate::metrics::CostSummary::new(
            b.gpus,
            b.usd_per_gpu_hour,
            p.output_throughput,
            p.total_token_throughput,
        );
        r.usd_per_million_output_tokens = finite(c.usd_per_million_output_tokens);
        r.usd_per_million_tokens = finite(c.usd_per_million_tokens);
    }
    Ok(r)
}

/// The `[slo]` bounds of the plan, in the file's order.
fn slo_of(plan: &PlanFile) -> Vec<(String, f64)> {
    plan.base
        .get("slo")
        .and_then(|t| t.as_table())
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| {
                    let x = v.as_float().or_else(|| v.as_integer().map(|i| i as f64))?;
                    Some((k.clone(), x))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A digest of the plan's settings, space and base experiment.
fn plan_digest(plan: &PlanFile) -> String {
    let mut h = crate::report::StableHasher::default();
    h.feed(format!("{:?}{:?}{}", plan.settings, plan.space, plan.base).as_bytes());
    h.feed(plan.seed.to_string().as_bytes());
    h.hex()
}

/// Turns raw results into the report: in cost order, once two candidates meet the
/// target (with `cheapest_only`), every later one is dominated, whatever was found
/// for it (so the report does not depend on where a shard stopped).
pub fn finalize(raw: ShardFile) -> PlanReport {
    let mut results = raw.results;
    if raw.cheapest_only {
        let mut order: Vec<usize> = (0..results.len())
            .filter(|&i| {
                results[i].pruned.is_none() || results[i].pruned.as_deref() == Some("not reached")
            })
            .collect();
        order.sort_by(|&a, &b| {
            results[a]
                .cost_key()
                .partial_cmp(&results[b].cost_key())
                .expect("no NaN")
        });
        let mut winners: Vec<usize> = Vec::new();
        for i in order {
            if winners.len() >= 2 {
                let (a, b) = (results[winners[0]].index, results[winners[1]].index);
                let r = &mut results[i];
                let setup = r.setup.clone();
                let (index, instances, cost, roof) =
                    (r.index, r.instances, r.cost_per_hour_usd, r.roofline_rate);
                *r = CandidateResult::new(index, setup);
                r.instances = instances;
                r.cost_per_hour_usd = cost;
                r.roofline_rate = roof;
                r.pruned = Some(format!(
                    "dominated: costs at least as much as candidates {a} and {b}, which meet the target"
                ));
            } else if results[i].meets_target == Some(true) {
                winners.push(i);
            }
        }
    }
    PlanReport::new(
        raw.name,
        raw.target_rate,
        raw.replications,
        raw.slo,
        raw.candidates_total,
        results,
    )
}

/// Combines the shard files of one plan (every shard of `n`, once) into the report
/// the unsharded plan gives, byte for byte once written.
pub fn merge_plan_shards(paths: &[PathBuf], plan_file: Option<&Path>) -> Result<PlanReport> {
    let mut shards: Vec<(Shard, ShardFile)> = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        let f: ShardFile = serde_json::from_str(&text).map_err(|e| {
            ConfigError::new(
                p.display().to_string(),
                "(file)",
                format!("is not a plan shard file: {e}"),
            )
        })?;
        let sh: Shard = f
            .shard
            .parse()
            .map_err(|e: String| ConfigError::new(p.display().to_string(), "shard", e))?;
        shards.push((sh, f));
    }
    let Some((first_shard, first)) = shards.first().cloned() else {
        return Err(ConfigError::new("<command line>", "shards", "no shard files given").into());
    };
    let n = first_shard.count;
    for (k, (sh, f)) in shards.iter().enumerate() {
        let file = paths[k].display().to_string();
        if f.plan_digest != first.plan_digest || sh.count != n {
            return Err(ConfigError::new(
                &file,
                "plan_digest",
                format!(
                    "is a shard of another plan or shard count than {} (shard {})",
                    paths[0].display(),
                    first.shard
                ),
            )
            .into());
        }
    }
    let mut seen = vec![false; n];
    for (sh, _) in &shards {
        if std::mem::replace(&mut seen[sh.index], true) {
            return Err(ConfigError::new(
                "<command line>",
                "shards",
                format!("shard {sh} given twice"),
            )
            .into());
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(ConfigError::new(
            "<command line>",
            "shards",
            format!("shard {i}/{n} is missing"),
        )
        .into());
    }
    let mut merged = first.clone();
    merged.shard = Shard::WHOLE.to_string();
    merged.results = shards.into_iter().flat_map(|(_, f)| f.results).collect();
    merged.results.sort_by_key(|r| r.index);
    // The verification re-runs need the plan itself: the file the shards name (or
    // the one given), which must be the plan they were run with.
    let (named, digest) = (PathBuf::from(&merged.plan_file), merged.plan_digest.clone());
    let mut report = finalize(merged);
    if report.target_rate.is_some() {
        let (path, file, field) = match plan_file {
            Some(p) => (
                p.to_path_buf(),
                "<command line>".to_string(),
                "--experiment",
            ),
            None => (named, paths[0].display().to_string(), "plan_file"),
        };
        if path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                file,
                field,
                "names no plan file (a shard of an older version); give the plan with --experiment",
            )
            .into());
        }
        let plan = load_plan(&path)?;
        if plan_digest(&plan) != digest {
            return Err(ConfigError::new(
                file,
                field,
                format!(
                    "{} is not the plan the shards were run with (its digest differs); give that plan with --experiment",
                    path.display()
                ),
            )
            .into());
        }
        add_verification(&plan, &mut report)?;
    }
    Ok(report)
}

/// Writes a shard's raw results to `path` (whole).
pub fn write_shard(raw: &ShardFile, path: &Path) -> Result<()> {
    let mut text = serde_json::to_string_pretty(raw).expect("shard serialises");
    text.push('\n');
    crate::report::write_atomic(path, text.as_bytes())
}

/// One verification re-run: its seed, whether it met every SLO, and the first
/// SLO's metric (ms).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verify {
    /// Seed.
    pub seed: u64,
    /// Met every SLO.
    pub met: bool,
    /// The first SLO's metric, ms.
    pub latency_ms: f64,
}

/// Re-runs candidate `index` at `rate` with `n` seeds other than the search's
/// (`seed + 1000 + k`), in parallel; in seed order.
pub fn verify(plan: &PlanFile, index: usize, rate: f64, n: u32) -> Result<Vec<Verify>> {
    let setups = enumerate(plan);
    let b = build(plan, &setups[index]).map_err(|(k, m)| Error::Sim(format!("{k}: {m}")))?;
    (0..n)
        .into_par_iter()
        .map(|k| {
            let seed = plan.seed.wrapping_add(1000 + k as u64);
            let s = search::run_at(&b, rate, seed)?;
            let (met, latency_ms) = search::judged(&s);
            Ok(Verify {
                seed,
                met,
                latency_ms,
            })
        })
        .collect()
}

/// The re-runs of one candidate at the target rate with seeds other than the search's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// `cheapest` or `next cheaper`.
    pub role: String,
    /// The candidate's index.
    pub index: usize,
    /// The rate it was re-run at (the target), requests per second.
    pub rate: f64,
    /// The re-runs meeting every SLO.
    pub met: usize,
    /// The re-runs, in seed order.
    pub runs: Vec<Verify>,
}

/// Re-runs the winner and the next cheaper candidate of `report` at the target rate
/// with `verify_seeds` other seeds ([`verify`]) and keeps the re-runs in the report
/// (nothing without a numeric target or with `verify_seeds = 0`).
pub fn add_verification(plan: &PlanFile, report: &mut PlanReport) -> Result<()> {
    report.verification.clear();
    let (Some(rate), n) = (plan.settings.target_rate, plan.settings.verify_seeds) else {
        return Ok(());
    };
    if n == 0 {
        return Ok(());
    }
    for (role, i) in [
        ("cheapest", report.winner),
        ("next cheaper", report.next_cheaper),
    ] {
        let Some(index) = i else { continue };
        let runs = verify(plan, index, rate, n)?;
        report.verification.push(Verification {
            role: role.into(),
            index,
            rate,
            met: runs.iter().filter(|v| v.met).count(),
            runs,
        });
    }
    Ok(())
}
