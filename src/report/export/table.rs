//! The fixed-width table `infersim run` prints: the swept values, the seed (with
//! replications) and a few headline metrics per run.

use super::{Artifact, Destination, Exporter};
use crate::config::Experiment;
use crate::error::Result;
use crate::metrics::Summary;
use crate::report::row::{toml_to_json, ReportRow};
use serde_json::Value;

/// A column of the table: header, value, scale, decimals.
type Column = (&'static str, fn(&Summary) -> f64, f64, usize);

/// The metric columns of the printed table.
const COLUMNS: &[Column] = &[
    ("done", |s| s.completed as f64, 1.0, 0),
    ("req/s", |s| s.request_throughput, 1.0, 2),
    ("out tok/s", |s| s.output_throughput, 1.0, 0),
    ("TTFT p50 ms", |s| s.latency.ttft.median, 1.0, 1),
    ("TTFT p99 ms", |s| s.latency.ttft.p99, 1.0, 1),
    ("TPOT p50 ms", |s| s.latency.tpot.median, 1.0, 2),
    ("ITL p99 ms", |s| s.latency.itl.p99, 1.0, 1),
    ("E2E p50 s", |s| s.latency.e2el.median, 1e-3, 2),
    ("GPU busy", |s| s.gpu_busy_fraction, 1.0, 2),
    ("KV peak", |s| s.kv_cache_peak_fraction, 1.0, 2),
    ("preempt", |s| s.preemptions as f64, 1.0, 0),
];

/// A readable fixed-width table of the rows.
pub fn table(exp: &Experiment, rows: &[ReportRow]) -> String {
    let mut header: Vec<String> = exp.axes.iter().map(|(k, _)| k.clone()).collect();
    if exp.replications > 1 {
        header.push("seed".into());
    }
    header.extend(COLUMNS.iter().map(|c| c.0.to_string()));
    let mut cells: Vec<Vec<String>> = vec![header];
    for r in rows {
        let mut line: Vec<String> = exp
            .axes
            .iter()
            .map(|(k, _)| match r.params.get(k).map(toml_to_json) {
                Some(Value::String(s)) => s,
                Some(v) => v.to_string(),
                None => String::new(),
            })
            .collect();
        if exp.replications > 1 {
            line.push(r.seed.to_string());
        }
        for &(_, value, scale, dec) in COLUMNS {
            let v = value(&r.summary) * scale;
            line.push(format!("{v:.dec$}"));
        }
        cells.push(line);
    }
    let ncol = cells[0].len();
    let widths: Vec<usize> = (0..ncol)
        .map(|c| cells.iter().map(|l| l[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, l) in cells.iter().enumerate() {
        let s: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(c, x)| {
                if c < exp.axes.len() {
                    format!("{x:<w$}", w = widths[c])
                } else {
                    format!("{x:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(s.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (ncol - 1)));
            out.push('\n');
        }
    }
    out
}

/// The table exporter (standard output).
#[derive(Debug, Clone, Copy)]
pub struct Table;

impl Exporter for Table {
    fn name(&self) -> &'static str {
        "table"
    }
    fn files(&self) -> &'static [&'static str] {
        &[]
    }
    fn export(&self, exp: &Experiment, rows: &[ReportRow]) -> Result<Vec<Artifact>> {
        Ok(vec![Artifact {
            to: Destination::Stdout,
            text: table(exp, rows),
        }])
    }
}
