//! Measured studies (`calibration/measurements/<study>/study.toml`): what was measured,
//! and how to replay it in the simulator. See `calibration/measurements/SCHEMA.md`.

use crate::config::{load_experiment, Experiment, Point};
use crate::error::{ConfigError, ReplayError};
use crate::metrics::Summary;
use crate::profile::Profile;
use crate::sim::{run, RunOptions};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `study.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// Folder name.
    pub name: String,
    /// Shipped GPU name.
    pub gpu: String,
    /// Shipped model name.
    pub model: String,
    /// Serving stack.
    pub stack: String,
    /// `high` or `low`.
    pub trust: String,
    /// Whether its points are used to fit profiles (points may opt out).
    pub calibrate: bool,
    /// Where the numbers come from.
    pub source: String,
    /// Replay experiment, relative to the study folder.
    pub experiment: String,
    /// Measured points.
    #[serde(default)]
    pub point: Vec<StudyPointFile>,
    /// Accuracy targets of the study's calibration points (`infersim reproduce`).
    #[serde(default)]
    pub target: Vec<TargetFile>,
    /// Targets the shipped profile is known to miss, with the diagnosis.
    #[serde(default)]
    pub known_miss: Vec<KnownMissFile>,
    /// Plots of simulated curves with the measured points over them.
    #[serde(default)]
    pub plot: Vec<PlotFile>,
}

/// One `[[target]]`: how close the prediction of `metric` must be on every
/// calibration point of the study that measured it. `|relative error| <= rel`, or,
/// with `above` and `abs`, that only where the measured value is above `above`, and
/// `|error| <= abs` (in the metric's unit) where it is not.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// A summary metric.
    pub metric: String,
    /// Relative tolerance.
    pub rel: f64,
    /// Measured value above which the relative tolerance applies.
    #[serde(default)]
    pub above: Option<f64>,
    /// Absolute tolerance at or below `above`.
    #[serde(default)]
    pub abs: Option<f64>,
}

/// One `[[known_miss]]`: a target the shipped profile misses on one point, and why.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownMissFile {
    /// The point's label.
    pub point: String,
    /// The targeted metric.
    pub metric: String,
    /// The diagnosis.
    pub reason: String,
}

/// Knobs a plot can vary on the simulated curve (see [`PlotFile::vary`]).
pub const PLOT_KNOBS: &[&str] = &[
    "workload.rate_per_s",
    "workload.batch_size",
    "workload.users",
];

/// One `[[plot]]`: `metric` simulated along `vary` at `values` (from the first point
/// of the study whose arrival process has that knob: Poisson arrivals for
/// `workload.rate_per_s`, which it sets as a Poisson rate, offline batches for
/// `workload.batch_size`, closed-loop users for `workload.users`), with measured
/// series drawn over it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotFile {
    /// SVG file name written into the output folder.
    pub file: String,
    /// Chart title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The summary metric plotted.
    pub metric: String,
    /// One of [`PLOT_KNOBS`].
    pub vary: String,
    /// The knob's values on the simulated curve.
    pub values: Vec<f64>,
    /// Measured points drawn over the curve.
    #[serde(default)]
    pub measured: Vec<MeasuredSeriesFile>,
}

/// Measured points of a plot: the study's points (those whose label contains
/// `label_contains`, if given) at x = their `params` value `x_param`, or at the
/// constant `x`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredSeriesFile {
    /// Legend label.
    pub label: String,
    /// Keep only points whose label contains this.
    #[serde(default)]
    pub label_contains: Option<String>,
    /// The sweep parameter giving each point's x.
    #[serde(default)]
    pub x_param: Option<String>,
    /// A constant x for every point.
    #[serde(default)]
    pub x: Option<f64>,
}

impl StudyFile {
    /// Every problem of the targets, known misses and plots, located by field.
    pub fn check(&self, fname: &str) -> Vec<ConfigError> {
        let metrics = crate::metrics::summary::metric_names();
        let known = |m: &str| metrics.iter().any(|k| k == m);
        let allowed = || format!("allowed: a summary metric ({})", metrics.join(", "));
        let mut errs = Vec::new();
        let mut err = |field: String, msg: String| errs.push(ConfigError::new(fname, field, msg));
        for (i, t) in self.target.iter().enumerate() {
            if !known(&t.metric) {
                err(
                    format!("target[{i}].metric"),
                    format!("got {:?}, {}", t.metric, allowed()),
                );
            }
            if !(t.rel.is_finite() && t.rel > 0.0) {
                err(
                    format!("target[{i}].rel"),
                    format!("got {}, allowed: a relative tolerance above 0", t.rel),
                );
            }
            match (t.above, t.abs) {
                (None, None) => {}
                (Some(a), Some(b)) if a.is_finite() && b.is_finite() && b >= 0.0 => {}
                (Some(_), Some(_)) => err(
                    format!("target[{i}]"),
                    "above and abs must be finite numbers, abs at least 0".into(),
                ),
                _ => err(
                    format!("target[{i}]"),
                    "give both above and abs (the absolute tolerance at or below above) or neither"
                        .into(),
                ),
            }
            if self.target[..i].iter().any(|o| o.metric == t.metric) {
                err(
                    format!("target[{i}].metric"),
                    format!("{:?} has a target already", t.metric),
                );
            }
        }
        for (i, p) in self.point.iter().enumerate() {
            if p.held_out == Some(true) && p.calibrate.unwrap_or(self.calibrate) {
                err(
                    format!("point[{i}].held_out"),
                    "a held-out point is not fitted: set `calibrate = false` on it".into(),
                );
            }
        }
        for (i, k) in self.known_miss.iter().enumerate() {
            if !self.point.iter().any(|p| p.label == k.point) {
                err(
                    format!("known_miss[{i}].point"),
                    format!(
                        "got {:?}, allowed: a point label of this study ({})",
                        k.point,
                        self.point
                            .iter()
                            .map(|p| format!("{:?}", p.label))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if !self.target.iter().any(|t| t.metric == k.metric) {
                err(
                    format!("known_miss[{i}].metric"),
                    format!("got {:?}, allowed: a metric with a [[target]]", k.metric),
                );
            }
            if k.reason.trim().is_empty() {
                err(
                    format!("known_miss[{i}].reason"),
                    "say why the target is missed".into(),
                );
            }
        }
        for (i, p) in self.plot.iter().enumerate() {
            if !known(&p.metric) {
                err(
                    format!("plot[{i}].metric"),
                    format!("got {:?}, {}", p.metric, allowed()),
                );
            }
            if !PLOT_KNOBS.contains(&p.vary.as_str()) {
                err(
                    format!("plot[{i}].vary"),
                    format!("got {:?}, allowed: {}", p.vary, PLOT_KNOBS.join(", ")),
                );
            }
            if p.values.is_empty() || p.values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                err(
                    format!("plot[{i}].values"),
                    "allowed: a non-empty list of numbers above 0".into(),
                );
            }
            if p.file.contains(['/', '\\']) || !p.file.ends_with(".svg") {
                err(
                    format!("plot[{i}].file"),
                    format!("got {:?}, allowed: a file name ending in .svg", p.file),
                );
            }
            for (j, m) in p.measured.iter().enumerate() {
                if m.x_param.is_some() == m.x.is_some() {
                    err(
                        format!("plot[{i}].measured[{j}]"),
                        "give exactly one of x_param (a params key) or x (a constant)".into(),
                    );
                }
            }
        }
        errs
    }

    /// The target of `metric`, if the study has one.
    pub fn target_for(&self, metric: &str) -> Option<&TargetFile> {
        self.target.iter().find(|t| t.metric == metric)
    }

    /// Why the target of `metric` is known to be missed on `point`, if it is.
    pub fn known_miss(&self, point: &str, metric: &str) -> Option<&str> {
        self.known_miss
            .iter()
            .find(|k| k.point == point && k.metric == metric)
            .map(|k| k.reason.as_str())
    }

    /// Whether the point labelled `point` is held out (not fitted, but judged).
    pub fn held_out(&self, point: &str) -> bool {
        self.point
            .iter()
            .any(|p| p.label == point && p.held_out == Some(true))
    }
}

/// One `[[point]]` of a study.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyPointFile {
    /// Human label.
    pub label: String,
    /// Raw file the numbers come from.
    #[serde(default)]
    pub file: Option<String>,
    /// Sweep values selecting the experiment's point (keys that are not sweep axes
    /// of the experiment only label the point).
    #[serde(default)]
    pub params: toml::Table,
    /// Metric name → measured value.
    pub measured: BTreeMap<String, f64>,
    /// Overrides the study's experiment file.
    #[serde(default)]
    pub experiment: Option<String>,
    /// Overrides the study's `calibrate`.
    #[serde(default)]
    pub calibrate: Option<bool>,
    /// A held-out point: not fitted (needs `calibrate = false`), yet judged against
    /// the study's targets by `infersim reproduce`.
    #[serde(default)]
    pub held_out: Option<bool>,
    /// A remark.
    #[serde(default)]
    pub note: Option<String>,
    /// Reported figures that are not compared.
    #[serde(default)]
    pub reported: Option<toml::Table>,
}

/// A loaded study point, ready to replay.
#[derive(Debug, Clone)]
pub struct StudyPoint {
    /// Study name.
    pub study: String,
    /// Point label.
    pub label: String,
    /// Measured metrics, by name.
    pub measured: Vec<(String, f64)>,
    /// Whether it is in the calibration set.
    pub calibrate: bool,
    /// The experiment point that replays it.
    pub point: Point,
    /// The experiment file.
    pub experiment: PathBuf,
}

/// A loaded study.
#[derive(Debug, Clone)]
pub struct Study {
    /// As written.
    pub file: StudyFile,
    /// Its folder.
    pub dir: PathBuf,
    /// Points.
    pub points: Vec<StudyPoint>,
}

/// The folder of measured studies: `calibration/measurements` of the source tree.
pub fn measurements_dir() -> PathBuf {
    match std::env::var_os("INFERSIM_MEASUREMENTS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/measurements"),
    }
}

fn values_match(a: &toml::Value, b: &toml::Value) -> bool {
    let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Loads one study folder.
pub fn load_study(dir: &Path) -> Result<Study, Vec<ConfigError>> {
    let path = dir.join("study.toml");
    let fname = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        vec![ConfigError::new(
            &fname,
            "(file)",
            format!("cannot read: {e}"),
        )]
    })?;
    let file: StudyFile = toml::from_str(&text)
        .map_err(|e| vec![ConfigError::new(&fname, "(study)", e.message().to_string())])?;
    let errs = file.check(&fname);
    if !errs.is_empty() {
        return Err(errs);
    }
    let mut cache: BTreeMap<PathBuf, Experiment> = BTreeMap::new();
    let mut points = Vec::new();
    for (i, p) in file.point.iter().enumerate() {
        let exp_path = dir.join(p.experiment.as_deref().unwrap_or(&file.experiment));
        if !cache.contains_key(&exp_path) {
            cache.insert(exp_path.clone(), load_experiment(&exp_path)?);
        }
        let exp = &cache[&exp_path];
        let found = exp.points.iter().find(|ep| {
            exp.axes.iter().all(|(axis, _)| {
                let mine = ep.params.iter().find(|(k, _)| k == axis).map(|(_, v)| v);
                match (p.params.get(axis), mine) {
                    (Some(want), Some(have)) => values_match(want, have),
                    _ => false,
                }
            })
        });
        let Some(ep) = found else {
            return Err(vec![ConfigError::new(
                &fname,
                format!("point[{i}].params"),
                format!(
                    "{:?} matches no sweep point of {} (its axes: {})",
                    p.params,
                    exp_path.display(),
                    exp.axes
                        .iter()
                        .map(|a| a.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )]);
        };
        points.push(StudyPoint {
            study: file.name.clone(),
            label: p.label.clone(),
            measured: p.measured.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            calibrate: p.calibrate.unwrap_or(file.calibrate),
            point: ep.clone(),
            experiment: exp_path,
        });
    }
    Ok(Study {
        file,
        dir: dir.to_path_buf(),
        points,
    })
}

/// The `study.toml` of every study under [`measurements_dir`], sorted by name, as
/// written (experiments not loaded); files that do not parse are left out.
pub fn study_files() -> Vec<StudyFile> {
    let dir = measurements_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("study.toml"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| toml::from_str(&std::fs::read_to_string(p).ok()?).ok())
        .collect()
}

/// Loads every study under [`measurements_dir`], sorted by name; `only` filters.
pub fn load_studies(only: &[String]) -> Result<Vec<Study>, Vec<ConfigError>> {
    let dir = measurements_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| {
            vec![ConfigError::new(
                dir.display().to_string(),
                "(folder)",
                format!("cannot read: {e}"),
            )]
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("study.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for o in only {
        if !names.contains(o) {
            return Err(vec![ConfigError::new(
                "<command line>",
                "STUDY",
                format!("unknown study {o:?}; studies: {}", names.join(", ")),
            )]);
        }
    }
    names
        .iter()
        .filter(|n| only.is_empty() || only.contains(n))
        .map(|n| load_study(&dir.join(n)))
        .collect()
}

/// Replays a study point with `profile` (or its experiment's own profile when
/// `None`) and returns the simulated summary.
pub fn replay(
    sp: &StudyPoint,
    profile: Option<&Profile>,
    seed: u64,
) -> Result<Summary, ReplayError> {
    let sc = match profile {
        Some(p) => sp.point.with_profile(p)?,
        None => sp.point.scenario.clone(),
    };
    Ok(run(&sc, seed, RunOptions::default())?.summary)
}
