//! `summary.csv`: one column per key of the serialised rows (in first-seen order),
//! nested values (per-instance and per-GPU rows) as JSON text.

use super::{Artifact, Exporter};
use crate::config::Experiment;
use crate::error::Result;
use crate::report::row::ReportRow;
use serde_json::Value;

/// One CSV field: strings as they are, `null` empty, other values as JSON; quoted
/// when they hold a comma, a quote or a newline.
pub fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `summary.csv` text of JSON object rows: one column per key of any row.
pub fn summary_csv(rows: &[Value]) -> String {
    let mut keys: Vec<String> = Vec::new();
    for r in rows {
        if let Value::Object(m) = r {
            for k in m.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    let mut out = keys
        .iter()
        .map(|k| csv_field(&Value::String(k.clone())))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in rows {
        let line: Vec<String> = keys
            .iter()
            .map(|k| csv_field(r.get(k).unwrap_or(&Value::Null)))
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// The `summary.csv` exporter.
#[derive(Debug, Clone, Copy)]
pub struct Csv;

impl Exporter for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }
    fn files(&self) -> &'static [&'static str] {
        &["summary.csv"]
    }
    fn export(&self, _exp: &Experiment, rows: &[ReportRow]) -> Result<Vec<Artifact>> {
        let json: Vec<Value> = rows.iter().map(ReportRow::to_json).collect();
        Ok(vec![Artifact::file("summary.csv", summary_csv(&json))])
    }
}
