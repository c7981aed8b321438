//! `report.html` of `infersim run`: the set-up, the summary table (the numbers of
//! `summary.csv`, cell for cell), the plots, the calibration status of every profile
//! used and the model's limits that apply to this run.

use super::status::calibration_rows;
use super::{page, Block, Section};
use crate::config::Experiment;
use crate::report::csv_field;
use crate::report::row::{toml_to_json, ReportRow};
use serde_json::Value;

/// The set-up section: what was run, with which seed and hash, on what.
fn setup(exp: &Experiment, seed: u64, hash: &str) -> Section {
    let axes: Vec<String> = exp
        .axes
        .iter()
        .map(|(k, v)| {
            let vals: Vec<String> = v.iter().map(|x| csv_field(&toml_to_json(x))).collect();
            format!("{k} = [{}]", vals.join(", "))
        })
        .collect();
    let mut fields = vec![
        ("experiment".to_string(), exp.name.clone()),
        ("file".into(), exp.path.display().to_string()),
        ("seed".into(), seed.to_string()),
        ("experiment hash".into(), hash.to_string()),
        (
            "runs".into(),
            format!(
                "{} sweep point(s) × {} replication(s)",
                exp.points.len(),
                exp.replications
            ),
        ),
        (
            "swept".into(),
            if axes.is_empty() {
                "nothing (one point)".into()
            } else {
                axes.join("; ")
            },
        ),
    ];
    if let Some(p) = exp.points.first() {
        if !p.raw.description.is_empty() {
            fields.insert(1, ("description".into(), p.raw.description.clone()));
        }
    }
    let mut head: Vec<String> = vec!["point".into()];
    head.extend(exp.axes.iter().map(|(k, _)| k.clone()));
    head.extend(
        [
            "model",
            "GPU",
            "GPUs",
            "instances",
            "sharing",
            "policy",
            "engine stack",
            "profile",
            "router",
        ]
        .map(String::from),
    );
    let rows: Vec<Vec<String>> = exp
        .points
        .iter()
        .map(|p| {
            let m = &p.meta;
            let mut r = vec![p.index.to_string()];
            r.extend(exp.axes.iter().map(|(k, _)| {
                p.params
                    .iter()
                    .find(|(pk, _)| pk == k)
                    .map(|(_, v)| csv_field(&toml_to_json(v)))
                    .unwrap_or_default()
            }));
            r.extend([
                m.model.clone(),
                m.gpu.clone(),
                m.gpus.to_string(),
                m.instances.to_string(),
                m.mig
                    .as_ref()
                    .map(|g| format!("{} ({g})", m.sharing))
                    .unwrap_or_else(|| m.sharing.clone()),
                m.policy.clone(),
                m.stack.clone().unwrap_or_else(|| "(plain)".into()),
                m.profile.clone(),
                m.router.clone(),
            ]);
            r
        })
        .collect();
    let mut s =
        Section::new("Set-up")
            .push(Block::Fields(fields))
            .table("Every sweep point", head, rows);
    if let Some(p) = exp.points.first() {
        let w = toml::to_string(&p.raw.workload).unwrap_or_else(|e| format!("(not shown: {e})"));
        s = s.push(Block::Folded {
            summary: "Workload of point 0".into(),
            text: w,
        });
    }
    s.push(Block::Folded {
        summary: "Resolved configuration of every point (config.resolved.toml)".into(),
        text: crate::report::resolved_config(exp),
    })
}

/// The summary table: every column of `summary.csv` whose values are plain
/// (numbers, text), cells written exactly as the CSV writes them.
pub fn summary_section(rows: &[ReportRow]) -> Section {
    let json: Vec<Value> = rows.iter().map(ReportRow::to_json).collect();
    let mut keys: Vec<String> = Vec::new();
    let mut nested: Vec<String> = Vec::new();
    for r in &json {
        if let Value::Object(m) = r {
            for (k, v) in m {
                let n = matches!(v, Value::Object(_) | Value::Array(_));
                if keys.contains(k) || nested.contains(k) {
                    continue;
                }
                if n {
                    nested.push(k.clone());
                } else {
                    keys.push(k.clone());
                }
            }
        }
    }
    let cells: Vec<Vec<String>> = json
        .iter()
        .map(|r| {
            keys.iter()
                .map(|k| csv_field(r.get(k).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    let mut s = Section::new("Summary").table(
        "One row per run (as summary.csv); latencies in ms, throughputs per second",
        keys,
        cells,
    );
    if !nested.is_empty() {
        s = s.para(format!(
            "Nested columns ({}) are in summary.json and summary.csv.",
            nested.join(", ")
        ));
    }
    for n in crate::report::run_notes(rows) {
        s = s.note(n);
    }
    s
}

/// The model's limits that apply to this experiment, and the warnings its checks
/// raised.
pub fn limits(exp: &Experiment) -> Vec<String> {
    let mut v: Vec<String> = exp
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    let any = |f: &dyn Fn(&crate::config::Meta) -> bool| exp.points.iter().any(|p| f(&p.meta));
    let uncal: std::collections::BTreeSet<&str> = exp
        .points
        .iter()
        .filter(|p| !p.meta.calibrated)
        .map(|p| p.meta.profile.as_str())
        .collect();
    if !uncal.is_empty() {
        v.push(format!(
            "profile {} is not calibrated on measurements; treat absolute numbers as estimates",
            uncal.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    for p in &exp.points {
        if let Some(pre) = p.meta.stack.as_deref().and_then(crate::stacks::preset) {
            let w = format!(
                "engine preset {} borrows the `{}` profile: {}",
                pre.name, p.meta.profile, pre.borrow_note
            );
            if pre.profile != p.meta.profile && !v.contains(&w) {
                v.push(w);
            }
        }
    }
    v.push("One forward pass per step; no speculative decoding.".into());
    if any(&|m| m.gpus > m.instances && m.mig.is_none()) {
        v.push("Tensor, pipeline and expert parallelism stay within one node: cross-node links are not modelled, and collectives do not overlap compute.".into());
    }
    if any(&|m| m.mig.is_some()) {
        v.push("A MIG instance is modelled as its fractions of the whole GPU; compute-bound steps on A100 MIG instances may be up to 10 % slower than predicted, and mixed MIG profiles are not modelled.".into());
    }
    if any(&|m| m.sharing == "mps") {
        v.push("MPS sharing is fluid: each step's remaining work shrinks at a rate recomputed whenever a step starts or ends.".into());
    }
    if any(&|m| m.timeslice_ms.is_some()) {
        v.push("Time-slicing uses an assumed quantum and switch cost.".into());
    }
    if exp
        .points
        .iter()
        .any(|p| !matches!(crate::kernels::tables_for(&p.gpu.name), Ok(Some(_))))
    {
        v.push("GPUs without kernel tables are priced on roofline curves anchored on their architecture.".into());
    }
    v.push("ITL is pooled over every token gap in the measurement window, as benchmark_serving pools inter-token latencies; a request of one output token has no gap.".into());
    v.push("The API server's per-request latency is one fitted constant per profile, not a queue of its own, unless [frontend] mode = \"queue\".".into());
    v
}

/// The whole `report.html` of a run: `plots` are the SVGs the run wrote (file name,
/// text).
pub fn run_report(
    exp: &Experiment,
    rows: &[ReportRow],
    plots: &[(String, String)],
    seed: u64,
    hash: &str,
) -> String {
    let mut figs = Section::new("Plots");
    if plots.is_empty() && exp.points.len() == 1 {
        figs = figs.note(crate::report::export::svg::ONE_POINT_NOTE);
    } else if plots.is_empty() {
        figs = figs.note("No plots: no swept axis has numeric values to draw along x.");
    } else if crate::report::export::svg::x_values(exp).len() < 2 {
        figs = figs.note(crate::report::export::svg::ONE_POINT_NOTE);
    }
    for (name, svg) in plots {
        figs = figs.svg(name.clone(), svg.clone());
    }
    let cal = calibration_rows(&exp.points)
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    let sections = vec![
        setup(exp, seed, hash),
        summary_section(rows),
        figs,
        Section::new("Calibration status").table(
            "Every profile, engine preset and GPU part the runs priced steps with",
            ["kind", "name", "status", "source"]
                .map(String::from)
                .to_vec(),
            cal,
        ),
        Section::new("Limits that apply").push(Block::List(limits(exp))),
    ];
    page(&format!("infersim run: {}", exp.name), &sections)
}
