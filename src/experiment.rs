//! Running experiments: every sweep point × replication in parallel (rayon), results
//! collected in a stable order, then the report: a table on stdout and, in the output
//! folder, `summary.json`, `summary.csv`, `config.resolved.toml`, `manifest.json` and
//! SVG plots. Files are written whole (temporary file, then rename).

use crate::config::{Experiment, Point};
use crate::error::{Error, Result};
use crate::metrics::num;
use crate::plot::{line_chart, Series};
use crate::sim::{run, RunOptions};
use rayon::prelude::*;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of `infersim run`.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Seed override (else the file's seed).
    pub seed: Option<u64>,
    /// Worker threads (0: all cores).
    pub jobs: usize,
    /// No progress bar, no table.
    pub quiet: bool,
}

/// One simulation to run.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// Sweep point.
    pub point: usize,
    /// Replication.
    pub replication: u32,
    /// Seed.
    pub seed: u64,
}

/// The runs of an experiment, in output order: points in sweep order, replications
/// within each point.
pub fn plan_runs(exp: &Experiment, seed: u64) -> Vec<RunSpec> {
    let mut v = Vec::new();
    for p in 0..exp.points.len() {
        for r in 0..exp.replications {
            v.push(RunSpec {
                point: p,
                replication: r,
                seed: seed.wrapping_add(r as u64),
            });
        }
    }
    v
}

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

/// Runs one point with one seed and returns its summary row.
pub fn run_row(exp_name: &str, p: &Point, spec: RunSpec) -> Result<Value> {
    let res = run(&p.scenario, spec.seed, RunOptions::default()).map_err(Error::Sim)?;
    let mut row = Map::new();
    row.insert("experiment".into(), exp_name.into());
    row.insert("point".into(), (p.index as u64).into());
    for (k, v) in &p.params {
        row.insert(k.clone(), toml_to_json(v));
    }
    row.insert("seed".into(), spec.seed.into());
    row.insert("replication".into(), spec.replication.into());
    if let Value::Object(m) = serde_json::to_value(&p.meta).expect("meta serialises") {
        row.extend(m);
    }
    row.extend(res.summary);
    Ok(Value::Object(row))
}

/// Runs every point and replication; rows come back in [`plan_runs`] order.
pub fn run_all(exp: &Experiment, cfg: &RunConfig) -> Result<Vec<Value>> {
    let seed = cfg.seed.unwrap_or(exp.seed);
    let runs = plan_runs(exp, seed);
    let bar = if cfg.quiet || runs.len() < 2 {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(runs.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} runs  {elapsed} (eta {eta})",
            )
            .expect("valid template"),
        );
        b
    };
    let work = || {
        runs.par_iter()
            .map(|&spec| {
                let r = run_row(&exp.name, &exp.points[spec.point], spec);
                bar.inc(1);
                r
            })
            .collect::<Vec<_>>()
    };
    let results = if cfg.jobs > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.jobs)
            .build()
            .map_err(|e| Error::Sim(format!("cannot start {} threads: {e}", cfg.jobs)))?
            .install(work)
    } else {
        work()
    };
    bar.finish_and_clear();
    results.into_iter().collect()
}

/// Writes `bytes` to `path` whole: a temporary file in the same folder, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `summary.json` text: a pretty array of rows, newline-terminated.
pub fn summary_json(rows: &[Value]) -> String {
    let mut s = serde_json::to_string_pretty(rows).expect("rows serialise");
    s.push('\n');
    s
}

fn csv_field(v: &Value) -> String {
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

/// `summary.csv` text: one column per key of the first row (nested values as JSON).
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

/// The columns of the printed table: (header, key, scale, decimals).
const TABLE: &[(&str, &str, f64, usize)] = &[
    ("done", "completed", 1.0, 0),
    ("req/s", "request_throughput", 1.0, 2),
    ("out tok/s", "output_throughput", 1.0, 0),
    ("TTFT p50 ms", "median_ttft_ms", 1.0, 1),
    ("TTFT p99 ms", "p99_ttft_ms", 1.0, 1),
    ("TPOT p50 ms", "median_tpot_ms", 1.0, 2),
    ("ITL p99 ms", "p99_itl_ms", 1.0, 1),
    ("E2E p50 s", "median_e2el_ms", 1e-3, 2),
    ("GPU busy", "gpu_busy_fraction", 1.0, 2),
    ("KV peak", "kv_cache_peak_fraction", 1.0, 2),
    ("preempt", "preemptions", 1.0, 0),
];

/// A readable fixed-width table of the rows.
pub fn table(exp: &Experiment, rows: &[Value]) -> String {
    let mut header: Vec<String> = exp.axes.iter().map(|(k, _)| k.clone()).collect();
    if exp.replications > 1 {
        header.push("seed".into());
    }
    header.extend(TABLE.iter().map(|c| c.0.to_string()));
    let mut cells: Vec<Vec<String>> = vec![header];
    for r in rows {
        let mut line: Vec<String> = exp
            .axes
            .iter()
            .map(|(k, _)| match r.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            })
            .collect();
        if exp.replications > 1 {
            line.push(r["seed"].to_string());
        }
        for &(_, key, scale, dec) in TABLE {
            let v = r.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN) * scale;
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

/// The x axis for plots: the first swept axis whose values are all numbers.
fn plot_axis(exp: &Experiment) -> Option<usize> {
    exp.axes.iter().position(|(_, vals)| {
        vals.iter()
            .all(|v| v.as_float().is_some() || v.as_integer().is_some())
    })
}

/// SVG plots of the swept metrics: (file name, SVG text).
pub fn plots(exp: &Experiment, rows: &[Value]) -> Result<Vec<(String, String)>> {
    let Some(ax) = plot_axis(exp) else {
        return Ok(Vec::new());
    };
    let x_key = &exp.axes[ax].0;
    // Series: one per combination of the other axes' values; replications averaged.
    type Group<'a> = (String, Vec<(f64, Vec<&'a Value>)>);
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
                    csv_field(r.get(k).unwrap_or(&Value::Null))
                )
            })
            .collect();
        let label = if label.is_empty() {
            exp.name.clone()
        } else {
            label.join(" ")
        };
        let x = r.get(x_key).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let g = match groups.iter().position(|g| g.0 == label) {
            Some(i) => &mut groups[i],
            None => {
                groups.push((label, Vec::new()));
                groups.last_mut().expect("just pushed")
            }
        };
        match g.1.iter().position(|p| p.0 == x) {
            Some(i) => g.1[i].1.push(r),
            None => g.1.push((x, vec![r])),
        }
    }
    let mean = |rs: &[&Value], key: &str| {
        rs.iter()
            .filter_map(|r| r.get(key).and_then(Value::as_f64))
            .sum::<f64>()
            / rs.len().max(1) as f64
    };
    let series = |keys: &[(&str, &str)]| -> Vec<Series> {
        let mut v = Vec::new();
        for (label, pts) in &groups {
            for (key, suffix) in keys {
                v.push(Series {
                    label: if suffix.is_empty() {
                        label.clone()
                    } else {
                        format!("{label} {suffix}")
                    },
                    points: pts.iter().map(|(x, rs)| (*x, mean(rs, key))).collect(),
                    markers_only: false,
                });
            }
        }
        v
    };
    let x_label = x_key.rsplit('.').next().unwrap_or(x_key);
    type Chart<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>);
    let charts: [Chart; 5] = [
        (
            "throughput.svg",
            "Request throughput",
            "completed requests / s",
            vec![("request_throughput", "")],
        ),
        (
            "output_throughput.svg",
            "Output token throughput",
            "output tokens / s",
            vec![("output_throughput", "")],
        ),
        (
            "ttft.svg",
            "Time to first token",
            "TTFT (ms)",
            vec![("median_ttft_ms", "p50"), ("p99_ttft_ms", "p99")],
        ),
        (
            "tpot.svg",
            "Time per output token",
            "TPOT (ms)",
            vec![("median_tpot_ms", "p50"), ("p99_tpot_ms", "p99")],
        ),
        (
            "e2el.svg",
            "End-to-end latency",
            "E2E (ms)",
            vec![("median_e2el_ms", "p50"), ("p99_e2el_ms", "p99")],
        ),
    ];
    let mut out = Vec::new();
    for (file, title, y, keys) in charts {
        let svg = line_chart(
            &format!("{}: {title}", exp.name),
            x_label,
            y,
            &series(&keys),
        )
        .map_err(Error::Sim)?;
        out.push((file.to_string(), svg));
    }
    Ok(out)
}

/// Writes every output file into `dir`.
pub fn write_outputs(
    exp: &Experiment,
    rows: &[Value],
    dir: &Path,
    manifest: &Value,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = dir.join(name);
        write_atomic(&p, bytes)?;
        written.push(p);
        Ok(())
    };
    put("summary.json", summary_json(rows).as_bytes())?;
    put("summary.csv", summary_csv(rows).as_bytes())?;
    put("config.resolved.toml", resolved_config(exp).as_bytes())?;
    let mut m = serde_json::to_string_pretty(manifest).expect("manifest serialises");
    m.push('\n');
    put("manifest.json", m.as_bytes())?;
    for (name, svg) in plots(exp, rows)? {
        put(&name, svg.as_bytes())?;
    }
    Ok(written)
}

/// Every point's fully resolved configuration, as TOML (`[[point]]` tables).
pub fn resolved_config(exp: &Experiment) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        point: Vec<&'a crate::config::RawExperiment>,
    }
    let doc = Doc {
        point: exp.points.iter().map(|p| &p.raw).collect(),
    };
    format!(
        "# Resolved configuration of every sweep point of {}, as run.\n{}",
        exp.path.display(),
        toml::to_string(&doc).unwrap_or_else(|e| format!("# could not serialise: {e}\n"))
    )
}
