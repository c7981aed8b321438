//! `report.html` of `infersim reproduce`: every study replayed, measured against
//! predicted per metric with the error and target, the plots of simulated curves
//! over measured points, and the calibration status of every profile used.

use super::status::calibration_rows;
use super::{page, Block, Section};
use crate::reproduce::Report;
use crate::study::Study;

/// The whole report: `plots` are the SVGs `reproduce` wrote (file name, text).
pub fn reproduce_report(
    report: &Report,
    studies: &[Study],
    plots: &[(String, String)],
    seed: u64,
) -> String {
    let setup_rows: Vec<Vec<String>> = studies
        .iter()
        .map(|s| {
            vec![
                s.file.name.clone(),
                s.file.model.clone(),
                s.file.gpu.clone(),
                s.file.stack.clone(),
                s.points.len().to_string(),
                s.file.trust.clone(),
                s.file.source.clone(),
            ]
        })
        .collect();
    let setup = Section::new("Set-up")
        .push(Block::Fields(vec![
            ("seed".into(), seed.to_string()),
            ("studies".into(), studies.len().to_string()),
        ]))
        .table(
            "Studies replayed",
            [
                "study", "model", "GPU", "stack", "points", "trust", "source",
            ]
            .map(String::from)
            .to_vec(),
            setup_rows,
        );
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            let verdict = match r.pass() {
                Some(true) => "ok",
                Some(false) if r.known_miss.is_some() => "missed (known)",
                Some(false) => "MISSED",
                None => "",
            };
            vec![
                r.res.study.clone(),
                r.res.point.clone(),
                r.res.metric.clone(),
                format!("{:.3}", r.res.measured),
                format!("{:.3}", r.res.predicted),
                format!("{:+.1}", r.res.rel_error() * 100.0),
                r.target.map(|t| t.describe()).unwrap_or_default(),
                verdict.into(),
                if r.held_out {
                    "held out".into()
                } else if r.calibrate {
                    "calibration set".into()
                } else {
                    "not in calibration set".into()
                },
                format!(
                    "{}{}",
                    r.profile,
                    if r.calibrated { "" } else { " (uncalibrated)" }
                ),
            ]
        })
        .collect();
    let with_target = report
        .rows
        .iter()
        .filter(|r| !r.held_out && r.target.is_some())
        .count();
    let (met, judged) = report.held_out_met();
    let mut cmp = Section::new("Measured against predicted")
        .para(format!(
            "{} of {with_target} calibration-set targets met; {met} of {judged} held-out targets met.",
            with_target - report.missed()
        ))
        .table(
            "One row per study, point and metric (as reproduce.csv); error = predicted / measured − 1, in %",
            [
                "study", "point", "metric", "measured", "predicted", "error %", "target", "result",
                "set", "profile",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        )
        .push(Block::Folded {
            summary: "Every measured metric: points, |error| median and worst, bias".into(),
            text: report.metric_summary(),
        });
    let misses: Vec<String> = report
        .rows
        .iter()
        .filter_map(|r| {
            r.known_miss
                .as_ref()
                .map(|w| format!("{} {} {}: {w}", r.res.study, r.res.point, r.res.metric))
        })
        .collect();
    if !misses.is_empty() {
        cmp = cmp.push(Block::List(misses));
    }
    let mut figs = Section::new("Plots");
    if plots.is_empty() {
        figs = figs.note("No plots: none of these studies asks for one ([[plot]]).");
    }
    for (name, svg) in plots {
        figs = figs.svg(name.clone(), svg.clone());
    }
    let cal = calibration_rows(
        studies
            .iter()
            .flat_map(|s| s.points.iter().map(|p| &p.point)),
    )
    .into_iter()
    .map(|r| r.to_vec())
    .collect();
    let sections = vec![
        setup,
        cmp,
        figs,
        Section::new("Calibration status").table(
            "Every profile, engine preset and GPU part the replays priced steps with",
            ["kind", "name", "status", "source"].map(String::from).to_vec(),
            cal,
        ),
        Section::new("Limits that apply").push(Block::List(vec![
            "Each point is replayed with one seed; a study's measured numbers are one run of a real server.".into(),
            "An uncalibrated profile's predictions are estimates derived from another GPU's fit and the datasheet.".into(),
            "ITL is pooled over every token gap in the measurement window, as benchmark_serving pools inter-token latencies.".into(),
        ])),
    ];
    page("infersim reproduce", &sections)
}
