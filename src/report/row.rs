//! The typed result row of one run of an experiment: which run it was (experiment,
//! point, swept values, seed, replication), how the point is set up ([`Meta`]) and
//! what it measured ([`Summary`]), serialised flat into one object of
//! `summary.json` in that order.

use crate::config::{Meta, Point};
use crate::metrics::{num, Summary};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// A JSON value for a TOML value (sweep parameters).
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => num(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// The swept (path, value) pairs of a point, serialised as one key each (values as
/// [`toml_to_json`] writes them).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(pub Vec<(String, toml::Value)>);

impl Params {
    /// The value swept on `axis`, if this point has one.
    pub fn get(&self, axis: &str) -> Option<&toml::Value> {
        self.0.iter().find(|(k, _)| k == axis).map(|(_, v)| v)
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, &toml_to_json(v))?;
        }
        m.end()
    }
}

/// One run's row of `summary.json` / `summary.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    /// Experiment name.
    pub experiment: String,
    /// Sweep point index.
    pub point: u64,
    /// The swept values of the point.
    #[serde(flatten)]
    pub params: Params,
    /// Seed of the run.
    pub seed: u64,
    /// Replication index.
    pub replication: u32,
    /// The point's set-up.
    #[serde(flatten)]
    pub meta: Meta,
    /// What the run measured.
    #[serde(flatten)]
    pub summary: Summary,
}

impl ReportRow {
    /// The row of `p` run as replication `replication` with `seed`.
    pub fn new(exp_name: &str, p: &Point, seed: u64, replication: u32, summary: Summary) -> Self {
        ReportRow {
            experiment: exp_name.to_string(),
            point: p.index as u64,
            params: Params(p.params.clone()),
            seed,
            replication,
            meta: p.meta.clone(),
            summary,
        }
    }

    /// `point N (axis = value, ...)`, the point's name in notes.
    pub fn label(&self) -> String {
        let params: Vec<String> = self
            .params
            .0
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        if params.is_empty() {
            format!("point {}", self.point)
        } else {
            format!("point {} ({})", self.point, params.join(", "))
        }
    }

    /// The row as a JSON object (what `summary.json` holds for it).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a row serialises")
    }
}

/// The runs' warnings about their own figures, one per point and replication that
/// has one: today, a drain after the last arrival long enough to make
/// `request_throughput` under-report capacity ([`Summary::drain_note`]).
pub fn run_notes(rows: &[ReportRow]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| {
            let rep = if r.replication > 0 {
                format!(", replication {}", r.replication)
            } else {
                String::new()
            };
            r.summary
                .drain_note()
                .map(|n| format!("{}{rep}: {n}", r.label()))
        })
        .collect()
}
