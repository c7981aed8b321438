//! `summary.json`: the rows as a pretty JSON array, newline-terminated.

use super::{Artifact, Exporter};
use crate::config::Experiment;
use crate::error::Result;
use crate::report::row::ReportRow;
use serde::Serialize;

/// `summary.json` text of any serialisable rows.
pub fn summary_json<T: Serialize>(rows: &[T]) -> String {
    let mut s = serde_json::to_string_pretty(rows).expect("rows serialise");
    s.push('\n');
    s
}

/// The `summary.json` exporter.
#[derive(Debug, Clone, Copy)]
pub struct Json;

impl Exporter for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn files(&self) -> &'static [&'static str] {
        &["summary.json"]
    }
    fn export(&self, _exp: &Experiment, rows: &[ReportRow]) -> Result<Vec<Artifact>> {
        Ok(vec![Artifact::file("summary.json", summary_json(rows))])
    }
}
