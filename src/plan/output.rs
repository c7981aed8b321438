//! The plan's report: the cheapest candidate meeting the target and the runner-up
//! (or, with `target_rate = "max"`, the one sustaining the highest rate), the next
//! cheaper candidate (the margin), the Pareto frontiers, and every candidate's row;
//! as a table on stdout, `plan.json`, `plan.csv` and `plan.svg` (cost per hour
//! against the highest rate, the frontier highlighted).

use super::CandidateResult;
use crate::error::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The finished plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    /// The plan's name.
    pub name: String,
    /// Target, requests per second (None: "max").
    pub target_rate: Option<f64>,
    /// Replications per rate point.
    pub replications: u32,
    /// The SLOs, key → bound (ms).
    pub slo: Vec<(String, f64)>,
    /// Candidates in the space.
    pub candidates_total: usize,
    /// Candidates searched (rate points run).
    pub searched: usize,
    /// Pruned candidates by reason (`memory`, `invalid`, `roofline`, `dominated`).
    pub pruned: BTreeMap<String, usize>,
    /// The answer: the cheapest meeting the target, or the highest max rate.
    pub winner: Option<usize>,
    /// The second cheapest meeting the target (or second highest rate).
    pub runner_up: Option<usize>,
    /// The dearest searched candidate that costs less per hour than the winner (it
    /// misses the target): the margin.
    pub next_cheaper: Option<usize>,
    /// Candidates meeting the target that no other beats on both cost per hour and
    /// latency at the target, by cost.
    pub frontier_cost_latency: Vec<usize>,
    /// Searched candidates that no other beats on both cost per hour and max rate,
    /// by cost.
    pub frontier_cost_rate: Vec<usize>,
    /// Every candidate, by index.
    pub candidates: Vec<CandidateResult>,
    /// The winner's and the next cheaper candidate's re-runs at the target rate with
    /// other seeds ([`super::add_verification`]; empty until then, and without a
    /// numeric target).
    pub verification: Vec<super::Verification>,
}

fn cost(r: &CandidateResult) -> f64 {
    r.cost_per_hour_usd.unwrap_or(f64::INFINITY)
}

impl PlanReport {
    /// Assembles the report from finished results (sorted by index).
    pub fn new(
        name: String,
        target_rate: Option<f64>,
        replications: u32,
        slo: Vec<(String, f64)>,
        candidates_total: usize,
        candidates: Vec<CandidateResult>,
    ) -> Self {
        let searched: Vec<&CandidateResult> =
            candidates.iter().filter(|r| r.pruned.is_none()).collect();
        let mut pruned = BTreeMap::new();
        for r in &candidates {
            if let Some(p) = &r.pruned {
                let kind = p.split(':').next().unwrap_or(p).to_string();
                *pruned.entry(kind).or_insert(0) += 1;
            }
        }
        let by_cost = |v: &mut Vec<&CandidateResult>| {
            v.sort_by(|a, b| {
                (cost(a), a.index)
                    .partial_cmp(&(cost(b), b.index))
                    .expect("no NaN")
            })
        };
        let (winner, runner_up, next_cheaper) = if target_rate.is_some() {
            let mut meet: Vec<&CandidateResult> = searched
                .iter()
                .copied()
                .filter(|r| r.meets_target == Some(true))
                .collect();
            by_cost(&mut meet);
            let w = meet.first().map(|r| r.index);
            let mut cheaper: Vec<&CandidateResult> = searched
                .iter()
                .copied()
                .filter(|r| w.is_some_and(|w| cost(r) < cost(&candidates[w])))
                .collect();
            by_cost(&mut cheaper);
            (
                w,
                meet.get(1).map(|r| r.index),
                cheaper.last().map(|r| r.index),
            )
        } else {
            let mut v: Vec<&CandidateResult> = searched
                .iter()
                .copied()
                .filter(|r| r.max_rate.is_some())
                .collect();
            v.sort_by(|a, b| {
                (-a.max_rate.unwrap_or(0.0), cost(a), a.index)
                    .partial_cmp(&(-b.max_rate.unwrap_or(0.0), cost(b), b.index))
                    .expect("no NaN")
            });
            (v.first().map(|r| r.index), v.get(1).map(|r| r.index), None)
        };
        // Pareto frontiers, walking in cost order.
        let mut all = searched.clone();
        by_cost(&mut all);
        let mut frontier_cost_rate = Vec::new();
        let mut best = f64::NEG_INFINITY;
        for r in &all {
            let m = r.max_rate.unwrap_or(0.0);
            if m > best && r.cost_per_hour_usd.is_some() {
                best = m;
                frontier_cost_rate.push(r.index);
            }
        }
        let mut frontier_cost_latency = Vec::new();
        let mut best = f64::INFINITY;
        for r in all.iter().filter(|r| r.meets_target == Some(true)) {
            let l = r.latency_at_target_ms.unwrap_or(f64::INFINITY);
            if l < best && r.cost_per_hour_usd.is_some() {
                best = l;
                frontier_cost_latency.push(r.index);
            }
        }
        PlanReport {
            name,
            target_rate,
            replications,
            slo,
            candidates_total,
            searched: searched.len(),
            pruned,
            winner,
            runner_up,
            next_cheaper,
            frontier_cost_latency,
            frontier_cost_rate,
            candidates,
            verification: Vec::new(),
        }
    }

    /// The first SLO's key, e.g. `p99_ttft_ms`: the latency the report shows for a
    /// candidate at the target and for each re-run.
    pub fn slo_metric(&self) -> &str {
        self.slo
            .first()
            .map(|(k, _)| k.as_str())
            .unwrap_or("latency")
    }

    /// One line per verified candidate: how many of its re-runs met the SLOs, and
    /// each re-run's first SLO metric.
    pub fn verification_lines(&self) -> Vec<String> {
        let metric = self.slo_metric();
        self.verification
            .iter()
            .map(|v| {
                let lat: Vec<String> = v.runs.iter().map(|r| format!("{:.1}", r.latency_ms)).collect();
                format!(
                    "re-run {} #{} at {} req/s with {} other seeds: {}/{} meet the SLOs; {metric}: {}",
                    v.role,
                    v.index,
                    v.rate,
                    v.runs.len(),
                    v.met,
                    v.runs.len(),
                    lat.join(", ")
                )
            })
            .collect()
    }

    /// `plan.json`.
    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("report serialises");
        s.push('\n');
        s
    }

    /// The columns of `plan.csv` (and of the HTML report's candidate table).
    pub const COLUMNS: &'static str = "index,label,model,gpu,num_gpus,tp,pp,sharing,pods_per_gpu,mig,max_num_seqs,max_num_batched_tokens,instances,cost_per_hour_usd,roofline_rate,max_rate,max_rate_confidence,meets_target,target_confidence,latency_at_target_ms,usd_per_million_output_tokens,usd_per_million_tokens,runs,pruned";

    /// One row of cells per candidate, in [`Self::COLUMNS`] order, unquoted.
    pub fn cells(&self) -> Vec<Vec<String>> {
        let f = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        let u = |x: Option<u32>| x.map(|v| v.to_string()).unwrap_or_default();
        self.candidates
            .iter()
            .map(|r| {
                let s = &r.setup;
                vec![
                    r.index.to_string(),
                    r.label.clone(),
                    s.model.clone(),
                    s.gpu.clone(),
                    s.num_gpus.to_string(),
                    s.tp.to_string(),
                    s.pp.to_string(),
                    s.sharing.clone(),
                    s.pods_per_gpu.to_string(),
                    s.mig.clone().unwrap_or_default(),
                    u(s.max_num_seqs),
                    u(s.max_num_batched_tokens),
                    r.instances.to_string(),
                    f(r.cost_per_hour_usd),
                    f(r.roofline_rate),
                    f(r.max_rate),
                    r.max_rate_confidence.clone().unwrap_or_default(),
                    r.meets_target.map(|b| b.to_string()).unwrap_or_default(),
                    r.target_confidence.clone().unwrap_or_default(),
                    f(r.latency_at_target_ms),
                    f(r.usd_per_million_output_tokens),
                    f(r.usd_per_million_tokens),
                    r.runs.to_string(),
                    r.pruned.clone().unwrap_or_default(),
                ]
            })
            .collect()
    }

    /// `plan.csv`: one row per candidate.
    pub fn csv(&self) -> String {
        let mut out = format!("{}\n", Self::COLUMNS);
        for row in self.cells() {
            let row: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            out += &row.join(",");
            out.push('\n');
        }
        out
    }

    /// The table printed on stdout: the answer, then every searched candidate by
    /// cost, then the pruning counts.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let target = match self.target_rate {
            Some(t) => format!("{t} req/s"),
            None => "the highest rate".into(),
        };
        let slo: Vec<String> = self.slo.iter().map(|(k, v)| format!("{k} ≤ {v}")).collect();
        out += &format!(
            "plan {}: {} candidates, {} searched; target {target} with {} ({} replications per rate)\n",
            self.name,
            self.candidates_total,
            self.searched,
            slo.join(", "),
            self.replications
        );
        let line = |what: &str, i: Option<usize>| -> String {
            match i.map(|i| &self.candidates[i]) {
                Some(r) => format!(
                    "{what:<13} #{} {}: ${}/h, max {} req/s ({}), ${} per M output tokens\n",
                    r.index,
                    r.label,
                    show(r.cost_per_hour_usd, 2),
                    show(r.max_rate, 2),
                    r.max_rate_confidence.as_deref().unwrap_or("-"),
                    show(r.usd_per_million_output_tokens, 3)
                ),
                None => format!("{what:<13} none\n"),
            }
        };
        let (first, second) = if self.target_rate.is_some() {
            ("cheapest:", "runner-up:")
        } else {
            ("highest rate:", "second:")
        };
        out += &line(first, self.winner);
        out += &line(second, self.runner_up);
        if self.target_rate.is_some() {
            out += &line("next cheaper:", self.next_cheaper);
        }
        out += &format!(
            "\n{:>5} {:<58} {:>9} {:>10} {:>6} {:>8} {:>10} {:>9}\n",
            "#", "candidate", "$/hour", "max req/s", "conf", "target", "lat ms", "$/M out"
        );
        let mut rows: Vec<&CandidateResult> = self
            .candidates
            .iter()
            .filter(|r| r.pruned.is_none())
            .collect();
        rows.sort_by(|a, b| {
            (cost(a), a.index)
                .partial_cmp(&(cost(b), b.index))
                .expect("no NaN")
        });
        for r in rows {
            let mark = if Some(r.index) == self.winner {
                if self.target_rate.is_some() {
                    " <- cheapest"
                } else {
                    " <- highest rate"
                }
            } else if Some(r.index) == self.runner_up {
                if self.target_rate.is_some() {
                    " <- runner-up"
                } else {
                    " <- second"
                }
            } else if self.frontier_cost_rate.contains(&r.index) {
                " (frontier)"
            } else {
                ""
            };
            out += &format!(
                "{:>5} {:<58} {:>9} {:>10} {:>6} {:>8} {:>10} {:>9}{mark}\n",
                r.index,
                r.label,
                show(r.cost_per_hour_usd, 2),
                show(r.max_rate, 2),
                r.max_rate_confidence.as_deref().unwrap_or("-"),
                r.target_confidence.as_deref().unwrap_or("-"),
                show(r.latency_at_target_ms, 1),
                show(r.usd_per_million_output_tokens, 3)
            );
        }
        let pruned: Vec<String> = self
            .pruned
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        out += &format!(
            "\npruned: {}\n",
            if pruned.is_empty() {
                "none".into()
            } else {
                pruned.join(", ")
            }
        );
        out
    }

    /// `plan.svg`: cost per hour (x) against the highest rate (y) of every searched
    /// candidate, the cost–rate frontier joined and highlighted, the target a line.
    pub fn svg(&self) -> String {
        let pts: Vec<(f64, f64, usize)> = self
            .candidates
            .iter()
            .filter(|r| r.pruned.is_none())
            .filter_map(|r| Some((r.cost_per_hour_usd?, r.max_rate.unwrap_or(0.0), r.index)))
            .collect();
        super::svg::scatter(
            &format!(
                "{}: cost per hour vs highest rate meeting the SLOs",
                self.name
            ),
            &pts,
            &self.frontier_cost_rate,
            self.target_rate,
            self.winner,
        )
    }
}

/// A CSV cell, quoted when it holds a comma, quote or newline.
fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// `x` with `d` decimals, `-` when absent.
fn show(x: Option<f64>, d: usize) -> String {
    match x {
        Some(v) => format!("{v:.d$}"),
        None => "-".into(),
    }
}

/// Writes `plan.json`, `plan.csv` and `plan.svg` into `dir` (each whole).
pub fn write_outputs(report: &PlanReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    let mut written = Vec::new();
    for (name, text) in [
        ("plan.csv", report.csv()),
        ("plan.svg", report.svg()),
        ("plan.json", report.json()),
        ("report.html", super::html::html(report)),
    ] {
        let p = dir.join(name);
        crate::report::write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}
