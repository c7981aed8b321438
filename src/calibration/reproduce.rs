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

impl Rule {
    /// The rule a study's `[[target]]` states (checked when the study loads).
    pub fn from_target(t: &TargetFile) -> Rule {
        match (t.above, t.abs) {
            (Some(threshold), Some(abs)) => Rule::RelAboveElseAbs {
                threshold,
                rel: t.rel,
                abs,
            },
            _ => Rule::Rel(t.rel),
        }
    }
}

/// The target for a metric of a study, if its `study.toml` states one.
pub fn target(study: &Study, metric: &str) -> Option<Rule> {
    study.file.target_for(metric).map(Rule::from_target)
}

/// Metrics that some study's target covers (every study under the measurements
/// folder), sorted: the metrics a calibration fits.
pub fn target_metrics() -> Vec<String> {
    let mut v: Vec<String> = crate::study::study_files()
        .iter()
        .flat_map(|f| f.target.iter().map(|t| t.metric.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

use crate::calibrate::residual_json;
use crate::error::{Error, Result as IResult};
use crate::metrics::Summary;
use crate::plot::{line_chart, Series};
use crate::sim::{run, RunOptions, Scenario};
use crate::study::{PlotFile, Study, StudyPoint, TargetFile};
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
    /// Its target, for calibration (and held-out) points that have one.
    pub target: Option<Rule>,
    /// Whether the point is held out: judged against the target, not fitted.
    pub held_out: bool,
    /// Profile used.
    pub profile: String,
    /// Whether that profile is calibrated.
    pub calibrated: bool,
    /// Why the target is known to be missed, when the study says it is.
    pub known_miss: Option<String>,
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
    /// Calibration-set targets missed.
    pub fn missed(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| !r.held_out && r.pass() == Some(false))
            .count()
    }

    /// Of [`Report::missed`], those the study does not explain as known misses
    /// (`[[known_miss]]`): what `reproduce` fails on.
    pub fn missed_unexplained(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| !r.held_out && r.pass() == Some(false) && r.known_miss.is_none())
            .count()
    }

    /// Held-out targets (points not fitted, judged all the same): (met, judged).
    pub fn held_out_met(&self) -> (usize, usize) {
        let judged = self
            .rows
            .iter()
            .filter(|r| r.held_out && r.target.is_some());
        let met = judged.clone().filter(|r| r.pass() == Some(true)).count();
        (met, judged.count())
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
                    if r.held_out {
                        m.insert("held_out".into(), true.into());
                    }
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
                (Some(t), Some(p)) => format!(
                    "{} {}{}",
                    t.describe(),
                    match (p, &r.known_miss) {
                        (true, _) => "ok",
                        (false, Some(_)) => "missed (known)",
                        (false, None) => "MISSED",
                    },
                    if r.held_out { " (held out)" } else { "" }
                ),
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
        let with_target = self
            .rows
            .iter()
            .filter(|r| !r.held_out && r.target.is_some())
            .count();
        let known = self.missed() - self.missed_unexplained();
        s.push_str(&format!(
            "{} of {with_target} calibration-set targets met{}\n",
            with_target - self.missed(),
            if known > 0 {
                format!(" ({known} missed target(s) are known misses the study explains)")
            } else {
                String::new()
            }
        ));
        let (met, judged) = self.held_out_met();
        if judged > 0 {
            s.push_str(&format!(
                "{met} of {judged} held-out targets met (points not fitted)\n"
            ));
        }
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
                let held_out = !sp.calibrate && s.file.held_out(&sp.label);
                let target = if sp.calibrate || held_out {
                    target(s, &r.metric)
                } else {
                    None
                };
                let known_miss = s.file.known_miss(&sp.label, &r.metric).map(String::from);
                rows.push(Row {
                    res: r,
                    calibrate: sp.calibrate,
                    target,
                    held_out,
                    profile: sp.point.meta.profile.clone(),
                    calibrated: sp.point.meta.calibrated,
                    known_miss,
                });
            }
        }
    }
    Ok(Report { rows })
}

/// The first point of `study` whose arrival process has the knob `vary`, and the
/// scenario with the knob set to `x` (see [`PlotFile`]).
fn knob_base<'a>(study: &'a Study, vary: &str) -> Option<&'a StudyPoint> {
    study.points.iter().find(|p| {
        let a = &p.point.scenario.workload.arrival;
        match vary {
            "workload.rate_per_s" => matches!(a, Arrival::Poisson { .. }),
            "workload.batch_size" => matches!(a, Arrival::Offline { .. }),
            "workload.users" => matches!(a, Arrival::ClosedLoop { .. }),
            _ => false,
        }
    })
}

fn set_knob(sc: &mut Scenario, vary: &str, x: f64) {
    match (vary, &mut sc.workload.arrival) {
        ("workload.rate_per_s", a) => *a = Arrival::Poisson { rate: x },
        ("workload.batch_size", a) => {
            *a = Arrival::Offline {
                batch_size: x as u32,
            }
        }
        ("workload.users", Arrival::ClosedLoop { users, .. }) => *users = x as u32,
        _ => {}
    }
}

fn param_f64(p: &StudyPoint, key: &str) -> Option<f64> {
    p.point
        .params
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
}

/// The simulated and measured series of one `[[plot]]`; `runs` caches the
/// simulated summaries by (knob, value), shared by the plots of a study.
fn plot_series(
    study: &Study,
    plot: &PlotFile,
    seed: u64,
    runs: &mut Vec<((String, u64), Option<Summary>)>,
) -> Option<Vec<Series>> {
    let base = knob_base(study, &plot.vary)?;
    let mut sim = Vec::new();
    for &x in &plot.values {
        let key = (plot.vary.clone(), x.to_bits());
        let i = match runs.iter().position(|r| r.0 == key) {
            Some(i) => i,
            None => {
                let mut sc = base.point.scenario.clone();
                set_knob(&mut sc, &plot.vary, x);
                let r = run(&sc, seed, RunOptions::default())
                    .ok()
                    .map(|r| r.summary);
                runs.push((key, r));
                runs.len() - 1
            }
        };
        if let Some(v) = runs[i].1.as_ref().and_then(|s| s.metric(&plot.metric)) {
            sim.push((x, v));
        }
    }
    let mut series = vec![Series {
        label: "simulated".into(),
        points: sim,
        markers_only: false,
    }];
    for m in &plot.measured {
        let points = study
            .points
            .iter()
            .filter(|p| {
                m.label_contains
                    .as_ref()
                    .is_none_or(|c| p.label.contains(c.as_str()))
            })
            .filter_map(|p| {
                let x = match (&m.x_param, m.x) {
                    (Some(k), _) => param_f64(p, k)?,
                    (None, x) => x?,
                };
                let y = p.measured.iter().find(|(k, _)| *k == plot.metric)?.1;
                Some((x, y))
            })
            .collect();
        series.push(Series {
            label: m.label.clone(),
            points,
            markers_only: true,
        });
    }
    Some(series)
}

/// SVG plots of the simulated curves with the measured points drawn over them, as
/// each study's `[[plot]]` tables ask.
pub fn plots(studies: &[Study], seed: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in studies {
        let mut runs = Vec::new();
        for plot in &s.file.plot {
            let Some(series) = plot_series(s, plot, seed, &mut runs) else {
                continue;
            };
            if let Ok(svg) = line_chart(&plot.title, &plot.x_label, &plot.y_label, &series) {
                out.push((plot.file.clone(), svg));
            }
        }
    }
    out
}

/// Writes `reproduce.json`, `reproduce.csv`, the plots and `report.html` into `dir`.
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
    let svgs = plots(studies, seed);
    for (name, svg) in &svgs {
        crate::experiment::write_atomic(&dir.join(name), svg.as_bytes())?;
    }
    let html = crate::report::html::reproduce::reproduce_report(report, studies, &svgs, seed);
    crate::experiment::write_atomic(&dir.join(crate::report::html::REPORT_FILE), html.as_bytes())
}
