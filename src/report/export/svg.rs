//! The SVG plots of a sweep: throughput, output throughput, TTFT, TPOT and E2E
//! latency against the first numeric sweep axis, one line per combination of the
//! other axes' values, replications averaged.

use super::csv::csv_field;
use super::{Artifact, Exporter};
use crate::config::Experiment;
use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::plot::{line_chart_with, ChartOptions, Series};
use crate::report::row::{toml_to_json, ReportRow};
use serde_json::Value;

/// The x axis for plots: the first swept axis whose values are all numbers.
fn plot_axis(exp: &Experiment) -> Option<usize> {
    exp.axes.iter().position(|(_, vals)| {
        vals.iter()
            .all(|v| v.as_float().is_some() || v.as_integer().is_some())
    })
}

/// What the report says when a run has one sweep point (or one value along x).
pub const ONE_POINT_NOTE: &str = "One value along the plotted axis: no curve was drawn, as a curve needs at least two sweep points; sweep a numeric axis (e.g. workload.rate_per_s) to get one.";

/// The distinct values of the plotted axis, in sweep order (none without one).
pub fn x_values(exp: &Experiment) -> Vec<f64> {
    let Some(ax) = plot_axis(exp) else {
        return Vec::new();
    };
    let mut v: Vec<f64> = Vec::new();
    for x in &exp.axes[ax].1 {
        let x = x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
        if let Some(x) = x {
            if !v.contains(&x) {
                v.push(x);
            }
        }
    }
    v
}

/// The x axis label of a swept key, with its unit: the arrival rate is the offered
/// load.
pub fn axis_label(key: &str) -> String {
    let name = key.rsplit('.').next().unwrap_or(key);
    if name == "rate_per_s" || name.ends_with("rate_per_s") {
        return "offered load (req/s)".into();
    }
    let unit = if name.ends_with("_ms") {
        "ms"
    } else if name.ends_with("_us") {
        "µs"
    } else if name.ends_with("_per_s") {
        "1/s"
    } else if name.ends_with("_s") {
        "s"
    } else if name.ends_with("_gib") {
        "GiB"
    } else if name.contains("token") {
        "tokens"
    } else if name.contains("utilization") || name.contains("fraction") {
        "fraction"
    } else if name.contains("seqs") {
        "sequences"
    } else if name.contains("gpu") {
        "GPUs"
    } else {
        "count"
    };
    format!("{name} ({unit})")
}

/// A plotted metric.
type Metric = fn(&Summary) -> f64;

/// A chart: file, title, y label, and the lines (metric, label suffix).
type Chart = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(Metric, &'static str)],
);

/// The charts of a sweep.
const CHARTS: &[Chart] = &[
    (
        "throughput.svg",
        "Request throughput",
        "request throughput (req/s)",
        &[(|s| s.request_throughput, "")],
    ),
    (
        "output_throughput.svg",
        "Output token throughput",
        "output throughput (tokens/s)",
        &[(|s| s.output_throughput, "")],
    ),
    (
        "ttft.svg",
        "Time to first token",
        "TTFT (ms)",
        &[
            (|s| s.latency.ttft.median, "p50"),
            (|s| s.latency.ttft.p99, "p99"),
        ],
    ),
    (
        "tpot.svg",
        "Time per output token",
        "TPOT (ms)",
        &[
            (|s| s.latency.tpot.median, "p50"),
            (|s| s.latency.tpot.p99, "p99"),
        ],
    ),
    (
        "e2el.svg",
        "End-to-end latency",
        "E2E (ms)",
        &[
            (|s| s.latency.e2el.median, "p50"),
            (|s| s.latency.e2el.p99, "p99"),
        ],
    ),
];

/// SVG plots of the swept metrics: (file name, SVG text).
pub fn plots(exp: &Experiment, rows: &[ReportRow]) -> Result<Vec<(String, String)>> {
    let Some(ax) = plot_axis(exp) else {
        return Ok(Vec::new());
    };
    let x_key = &exp.axes[ax].0;
    let param = |r: &ReportRow, k: &str| r.params.get(k).map(toml_to_json).unwrap_or(Value::Null);
    // Series: one per combination of the other axes' values; replications averaged.
    type Group<'a> = (String, Vec<(f64, Vec<&'a Summary>)>);
    let mut groups: Vec<Group> = Vec::new();
    for r in rows {
        let label: Vec<String> = exp
            .axes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != ax)
            .map(|(_, (k, _))| {
                format!(
                    "{}={}",
                    k.rsplit('.').next().unwrap_or(k),
                    csv_field(&param(r, k))
                )
            })
            .collect();
        let label = if label.is_empty() {
            exp.name.clone()
        } else {
            label.join(" ")
        };
        let x = param(r, x_key).as_f64().unwrap_or(f64::NAN);
        let g = match groups.iter().position(|g| g.0 == label) {
            Some(i) => &mut groups[i],
            None => {
                groups.push((label, Vec::new()));
                groups.last_mut().expect("just pushed")
            }
        };
        match g.1.iter().position(|p| p.0 == x) {
            Some(i) => g.1[i].1.push(&r.summary),
            None => g.1.push((x, vec![&r.summary])),
        }
    }
    // Replications averaged; a value that is not finite (written as null) is left
    // out of the sum but not of the count.
    let mean = |rs: &[&Summary], metric: Metric| {
        rs.iter()
            .map(|s| metric(s))
            .filter(|v| v.is_finite())
            .sum::<f64>()
            / rs.len().max(1) as f64
    };
    let series = |lines: &[(Metric, &str)]| -> Vec<Series> {
        let mut v = Vec::new();
        for (label, pts) in &groups {
            for &(metric, suffix) in lines {
                v.push(Series {
                    label: if suffix.is_empty() {
                        label.clone()
                    } else {
                        format!("{label} {suffix}")
                    },
                    points: pts.iter().map(|(x, rs)| (*x, mean(rs, metric))).collect(),
                    markers_only: false,
                });
            }
        }
        v
    };
    let x_label = axis_label(x_key);
    let offered = x_label.starts_with("offered load");
    let mut out = Vec::new();
    for &(file, title, y, lines) in CHARTS {
        let opts = ChartOptions {
            y_equals_x: offered && file == "throughput.svg",
            log_y_when_wide: y.contains("(ms)"),
            one_point_note: None,
        };
        let svg = line_chart_with(
            &format!("{}: {title}", exp.name),
            &x_label,
            y,
            &series(lines),
            &opts,
        )
        .map_err(|e| Error::Sim(e.to_string()))?;
        out.push((file.to_string(), svg));
    }
    Ok(out)
}

/// The SVG plots exporter.
#[derive(Debug, Clone, Copy)]
pub struct Plots;

impl Exporter for Plots {
    fn name(&self) -> &'static str {
        "svg"
    }
    fn files(&self) -> &'static [&'static str] {
        &[
            "throughput.svg",
            "output_throughput.svg",
            "ttft.svg",
            "tpot.svg",
            "e2el.svg",
        ]
    }
    fn export(&self, exp: &Experiment, rows: &[ReportRow]) -> Result<Vec<Artifact>> {
        Ok(plots(exp, rows)?
            .into_iter()
            .map(|(name, svg)| Artifact::file(&name, svg))
            .collect())
    }
}
