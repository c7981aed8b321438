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
