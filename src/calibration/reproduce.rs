//! `infersim reproduce`: every measured study replayed with the shipped profiles,
//! predicted against measured, with the accuracy targets of the calibration set.

use crate::calibrate::Residual;

/// How close a prediction must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// |relative error| ≤ this.
    Rel(f64),
    /// Above `threshold` (measured), |relative error| ≤ `rel`; below, |error| ≤ `abs`
    /// (same unit as the metric).
    RelAboveElseAbs {
        /// Where the rule switches.
        threshold: f64,
        /// Relative tolerance above.
        rel: f64,
        /// Absolute tolerance below.
        abs: f64,
    },
}

impl Rule {
    /// Whether `r` meets the rule.
    pub fn passes(&self, r: &Residual) -> bool {
        match *self {
            Rule::Rel(t) => r.rel_error().abs() <= t,
            Rule::RelAboveElseAbs {
                threshold,
                rel,
                abs,
            } => {
                if r.measured > threshold {
                    r.rel_error().abs() <= rel
                } else {
                    (r.predicted - r.measured).abs() <= abs
                }
            }
        }
    }

    /// The rule in words.
    pub fn describe(&self) -> String {
        match *self {
            Rule::Rel(t) => format!("±{:.0}%", t * 100.0),
            Rule::RelAboveElseAbs {
                threshold,
                rel,
                abs,
            } => {
                format!("±{:.0}% above {threshold}, else ±{abs}", rel * 100.0)
            }
        }
    }
}

/// Accuracy targets of the calibration set: (study, metric, rule). They apply to the
/// study's calibration points.
pub const TARGETS: &[(&str, &str, Rule)] = &[
    (
        "a100-40gb-qwen3-14b-vllm",
        "request_throughput",
        Rule::Rel(0.05),
    ),
    (
        "a100-40gb-qwen3-14b-vllm",
        "median_tpot_ms",
        Rule::Rel(0.10),
    ),
    (
        "a100-40gb-qwen3-14b-vllm",
        "median_ttft_ms",
        Rule::RelAboveElseAbs {
            threshold: 1000.0,
            rel: 0.25,
            abs: 30.0,
        },
    ),
    (
        "a100-40gb-qwen3-14b-vllm",
        "mean_ttft_ms",
        Rule::RelAboveElseAbs {
            threshold: 1000.0,
            rel: 0.25,
            abs: 30.0,
        },
    ),
    (
        "t4-llama-3.2-3b-vllm",
        "mean_batch_latency_ms",
        Rule::Rel(0.05),
    ),
    ("t4-llama-3.2-3b-vllm", "output_throughput", Rule::Rel(0.05)),
    ("t4-llama-3.2-3b-vllm", "duration", Rule::Rel(0.05)),
    ("t4-llama-3.2-3b-vllm", "median_e2el_ms", Rule::Rel(0.05)),
    ("l4-gemma-3-1b-vllm", "request_throughput", Rule::Rel(0.05)),
    ("l4-gemma-3-1b-vllm", "median_e2el_ms", Rule::Rel(0.05)),
];

/// The target for a metric of a study, if any.
pub fn target(study: &str, metric: &str) -> Option<Rule> {
    TARGETS
        .iter()
        .find(|(s, m, _)| *s == study && *m == metric)
        .map(|t| t.2)
}

/// Metrics that some target covers.
pub fn target_metrics() -> Vec<String> {
    let mut v: Vec<String> = TARGETS.iter().map(|t| t.1.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

use crate::calibrate::residual_json;
use crate::error::{Error, Result as IResult};
use crate::plot::{line_chart, Series};
use crate::sim::{run, RunOptions, Scenario};
use crate::study::Study;
use crate::workload::Arrival;
use serde_json::Value;
use std::path::Path;

/// One compared number with its context.
#[derive(Debug, Clone)]
pub struct Row {
    /// The comparison.
    pub res: Residual,
    /// Whether the point is in the calibration set.
    pub calibrate: bool,
    /// Its target, for calibration points that have one.
    pub target: Option<Rule>,
    /// Profile used.
    pub profile: String,
    /// Whether that profile is calibrated.
    pub calibrated: bool,
}

impl Row {
    /// Whether the target is met (`None` without a target).
    pub fn pass(&self) -> Option<bool> {
        self.target.map(|t| t.passes(&self.res))
    }
}

/// Every study replayed.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Rows in study, point, metric order.
    pub rows: Vec<Row>,
}

impl Report {
    /// Targets missed.
    pub fn missed(&self) -> usize {
        self.rows.iter().filter(|r| r.pass() == Some(false)).count()
    }

    /// JSON rows: `{study, point, metric, measured, predicted, rel_error}` plus
    /// `calibration_set`, `target`, `pass`, `profile`, `profile_calibrated`.
    pub fn json(&self) -> Vec<Value> {
        let res: Vec<Residual> = self.rows.iter().map(|r| r.res.clone()).collect();
        residual_json(&res)
            .into_iter()
            .zip(&self.rows)
            .map(|(mut v, r)| {
                if let Value::Object(m) = &mut v {
                    m.insert("calibration_set".into(), r.calibrate.into());
                    m.insert(
                        "target".into(),
                        r.target
                            .map(|t| Value::String(t.describe()))
                            .unwrap_or(Value::Null),
                    );
                    m.insert(
                        "pass".into(),
                        r.pass().map(Value::Bool).unwrap_or(Value::Null),
                    );
                    m.insert("profile".into(), r.profile.clone().into());
                    m.insert("profile_calibrated".into(), r.calibrated.into());
                }
                v
            })
            .collect()
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<26} {:<22} {:<22} {:>12} {:>12} {:>8}  {}\n",
            "study", "point", "metric", "measured", "predicted", "error", "target"
        );
        s.push_str(&"-".repeat(130));
        s.push('\n');
        for r in &self.rows {
            let t = match (r.target, r.pass()) {
                (Some(t), Some(p)) => {
                    format!("{} {}", t.describe(), if p { "ok" } else { "MISSED" })
                }
                _ if !r.calibrate => "(not in calibration set)".into(),
                _ => String::new(),
            };
            s.push_str(&format!(
                "{:<26} {:<22} {:<22} {:>12.3} {:>12.3} {:>+7.1}%  {}{}\n",
                r.res.study,
                r.res.point,
                r.res.metric,
                r.res.measured,
                r.res.predicted,
                r.res.rel_error() * 100.0,
                t,
                if r.calibrated {
                    ""
                } else {
                    " [uncalibrated profile]"
                }
            ));
        }
        s.push_str(&self.metric_summary());
        let with_target = self.rows.iter().filter(|r| r.target.is_some()).count();
        s.push_str(&format!(
            "{} of {with_target} calibration-set targets met\n",
            with_target - self.missed()
        ));
        s
    }
}

impl Report {
    /// Residuals of every measured metric, targeted or not, summarised per study and
    /// metric: points, median and worst |relative error|, and the mean signed error
    /// (the bias).
    pub fn metric_summary(&self) -> String {
        let mut keys: Vec<(String, String)> = Vec::new();
        for r in &self.rows {
            let k = (r.res.study.clone(), r.res.metric.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let mut s = format!(
            "\nEvery measured metric ({} study-metric pairs): points, |error| median and worst, mean signed error\n",
            keys.len()
        );
        for (study, metric) in keys {
            let mut e: Vec<f64> = self
                .rows
                .iter()
                .filter(|r| r.res.study == study && r.res.metric == metric)
                .map(|r| r.res.rel_error())
                .filter(|e| e.is_finite())
                .collect();
            if e.is_empty() {
                continue;
            }
            let bias = e.iter().sum::<f64>() / e.len() as f64;
            e.iter_mut().for_each(|x| *x = x.abs());
            e.sort_by(f64::total_cmp);
            let med = if e.len() % 2 == 1 {
                e[e.len() / 2]
            } else {
                (e[e.len() / 2 - 1] + e[e.len() / 2]) / 2.0
            };
            s.push_str(&format!(
                "  {:<26} {:<22} {:>3} {:>7.1}% {:>7.1}% {:>+7.1}%\n",
                study,
                metric,
                e.len(),
                med * 100.0,
                e[e.len() - 1] * 100.0,
                bias * 100.0
            ));
        }
        s
    }
}

/// Replays every point of `studies` with its shipped profile.
pub fn reproduce(studies: &[Study], seed: u64) -> IResult<Report> {
    let mut rows = Vec::new();
    for s in studies {
        for sp in &s.points {
            let res = crate::calibrate::residuals(std::slice::from_ref(sp), None, seed)
                .map_err(Error::Sim)?;
            for r in res {
                let target = if sp.calibrate {
                    target(&s.file.name, &r.metric)
                } else {
                    None
                };
                rows.push(Row {
                    res: r,
                    calibrate: sp.calibrate,
                    target,
                    profile: sp.point.meta.profile.clone(),
                    calibrated: sp.point.meta.calibrated,
                });
            }
        }
    }
    Ok(Report { rows })
}

fn sweep_curve(
    base: &Scenario,
    xs: &[f64],
    seed: u64,
    set: &dyn Fn(&mut Scenario, f64),
    keys: &[&str],
) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new(); keys.len()];
    for &x in xs {
        let mut sc = base.clone();
        set(&mut sc, x);
        if let Ok(r) = run(&sc, seed, RunOptions::default()) {
            for (k, key) in keys.iter().enumerate() {
                if let Some(v) = r.summary.metric(key) {
                    out[k].push((x, v));
                }
            }
        }
    }
    out
}

fn measured_series(
    study: &Study,
    label: &str,
    x_of: &dyn Fn(&crate::study::StudyPoint) -> Option<f64>,
    metric: &str,
    filter: &dyn Fn(&str) -> bool,
) -> Series {
    Series {
        label: label.into(),
        points: study
            .points
            .iter()
            .filter(|p| filter(&p.label))
            .filter_map(|p| {
                let x = x_of(p)?;
                let y = p.measured.iter().find(|(m, _)| m == metric)?.1;
                Some((x, y))
            })
            .collect(),
        markers_only: true,
    }
}

fn param_f64(p: &crate::study::StudyPoint, key: &str) -> Option<f64> {
    p.point
        .params
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
}

/// SVG plots of the simulated curves with the measured points drawn over them.
pub fn plots(studies: &[Study], seed: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chart = |file: &str, title: &str, x: &str, y: &str, series: Vec<Series>| {
        if let Ok(svg) = line_chart(title, x, y, &series) {
            out.push((file.to_string(), svg));
        }
    };
    for s in studies {
        let Some(first) = s.points.first() else {
            continue;
        };
        let base = &first.point.scenario;
        match s.file.name.as_str() {
            "a100-40gb-qwen3-14b-vllm" => {
                let xs: Vec<f64> = (1..=14).map(|i| i as f64 * 5.0).collect();
                let set =
                    |sc: &mut Scenario, x: f64| sc.workload.arrival = Arrival::Poisson { rate: x };
                let keys = ["request_throughput", "median_ttft_ms", "median_tpot_ms"];
                let c = sweep_curve(base, &xs, seed, &set, &keys);
                let xr = |p: &crate::study::StudyPoint| param_f64(p, "workload.rate_per_s");
                for (k, (file, title, y)) in [
                    (
                        "a100-saturation-throughput.svg",
                        "A100-40GB, Qwen3-14B: request throughput",
                        "completed requests / s",
                    ),
                    (
                        "a100-saturation-ttft.svg",
                        "A100-40GB, Qwen3-14B: median TTFT",
                        "ms",
                    ),
                    (
                        "a100-saturation-tpot.svg",
                        "A100-40GB, Qwen3-14B: median TPOT",
                        "ms",
                    ),
                ]
                .into_iter()
                .enumerate()
                {
                    let sim = Series {
                        label: "simulated".into(),
                        points: c[k].clone(),
                        markers_only: false,
                    };
                    let sat =
                        measured_series(s, "measured (SAT)", &xr, keys[k], &|l| l.contains("SAT"));
                    let scale = measured_series(s, "measured (SCALE)", &xr, keys[k], &|l| {
                        l.contains("SCALE")
                    });
                    chart(
                        file,
                        title,
                        "offered rate (req/s)",
                        y,
                        vec![sim, sat, scale],
                    );
                }
            }
            "t4-llama-3.2-3b-vllm" => {
                let Some(off) = s
                    .points
                    .iter()
                    .find(|p| matches!(p.point.scenario.workload.arrival, Arrival::Offline { .. }))
                else {
                    continue;
                };
                let xs: Vec<f64> = (1..=16).map(|b| b as f64).collect();
                let set = |sc: &mut Scenario, x: f64| {
                    sc.workload.arrival = Arrival::Offline {
                        batch_size: x as u32,
                    }
                };
                let keys = ["mean_batch_latency_ms", "output_throughput"];
                let c = sweep_curve(&off.point.scenario, &xs, seed, &set, &keys);
                let xb = |p: &crate::study::StudyPoint| param_f64(p, "workload.batch_size");
                for (k, (file, title, y)) in [
                    (
                        "t4-batch-latency.svg",
                        "T4, Llama-3.2-3B: latency of a batch (100 tokens)",
                        "ms",
                    ),
                    (
                        "t4-batch-throughput.svg",
                        "T4, Llama-3.2-3B: output tokens / s",
                        "tokens / s",
                    ),
                ]
                .into_iter()
                .enumerate()
                {
                    let sim = Series {
                        label: "simulated".into(),
                        points: c[k].clone(),
                        markers_only: false,
                    };
                    let m = measured_series(s, "measured", &xb, keys[k], &|_| true);
                    chart(file, title, "batch size", y, vec![sim, m]);
                }
            }
            "l4-gemma-3-1b-vllm" => {
                let xs: Vec<f64> = (1..=10).map(|u| u as f64 * 10.0).collect();
                let set = |sc: &mut Scenario, x: f64| {
                    if let Arrival::ClosedLoop { users, .. } = &mut sc.workload.arrival {
                        *users = x as u32;
                    }
                };
                let keys = ["request_throughput", "median_e2el_ms"];
                let c = sweep_curve(base, &xs, seed, &set, &keys);
                let x50 = |_: &crate::study::StudyPoint| Some(50.0);
                for (k, (file, title, y)) in [
                    (
                        "l4-single-throughput.svg",
                        "L4, gemma-3-1b-it, one server: requests / s",
                        "requests / s",
                    ),
                    (
                        "l4-single-latency.svg",
                        "L4, gemma-3-1b-it, one server: median latency",
                        "ms",
                    ),
                ]
                .into_iter()
                .enumerate()
                {
                    let sim = Series {
                        label: "simulated".into(),
                        points: c[k].clone(),
                        markers_only: false,
                    };
                    let m = measured_series(s, "measured (50 users)", &x50, keys[k], &|_| true);
                    chart(file, title, "closed-loop users", y, vec![sim, m]);
                }
            }
            _ => {}
        }
    }
    out
}

/// Writes `reproduce.json`, `reproduce.csv` and the plots into `dir`.
pub fn write_report(report: &Report, studies: &[Study], dir: &Path, seed: u64) -> IResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = report.json();
    crate::experiment::write_atomic(
        &dir.join("reproduce.json"),
        crate::experiment::summary_json(&json).as_bytes(),
    )?;
    crate::experiment::write_atomic(
        &dir.join("reproduce.csv"),
        crate::experiment::summary_csv(&json).as_bytes(),
    )?;
    for (name, svg) in plots(studies, seed) {
        crate::experiment::write_atomic(&dir.join(name), svg.as_bytes())?;
    }
    Ok(())
}
