//! The plan's `report.html`: the question (target, SLOs, space size), the answer and
//! its margin, the frontier, the plot, every candidate's row (the cells of
//! `plan.csv`) and the limits of the search; built with [`crate::report::html`].

use super::PlanReport;
use crate::report::html::{page, Block, Section};

/// The report page of `report`.
pub fn html(report: &PlanReport) -> String {
    let target = match report.target_rate {
        Some(t) => format!("{t} req/s"),
        None => "the highest sustainable rate (\"max\")".into(),
    };
    let slo: Vec<String> = report
        .slo
        .iter()
        .map(|(k, v)| format!("{k} ≤ {v}"))
        .collect();
    let mut pruned: Vec<String> = report
        .pruned
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    if pruned.is_empty() {
        pruned.push("none".into());
    }
    let setup = Section::new("Set-up").push(Block::Fields(vec![
        ("plan".into(), report.name.clone()),
        ("target".into(), target),
        ("SLOs".into(), slo.join(", ")),
        (
            "replications per rate".into(),
            report.replications.to_string(),
        ),
        ("candidates".into(), report.candidates_total.to_string()),
        ("searched".into(), report.searched.to_string()),
        ("pruned".into(), pruned.join(", ")),
    ]));
    let answer = Section::new("Answer").push(Block::Folded {
        summary: "the table `infersim plan` prints".into(),
        text: report.table(),
    });
    let answer = [
        ("cheapest", report.winner),
        ("runner-up", report.runner_up),
        ("next cheaper (the margin)", report.next_cheaper),
    ]
    .iter()
    .fold(answer, |sec, (what, i)| match i {
        Some(i) => {
            let r = &report.candidates[*i];
            sec.para(format!(
                "{what}: #{} {}, cost {} per hour, max rate {} req/s",
                r.index,
                r.label,
                r.cost_per_hour_usd
                    .map(|c| format!("${c:.2}"))
                    .unwrap_or_else(|| "unknown".into()),
                r.max_rate
                    .map(|m| format!("{m:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ))
        }
        None => sec.para(format!("{what}: none")),
    });
    let verified = if report.verification.is_empty() {
        Section::new("Re-runs with other seeds").para(match report.target_rate {
            Some(_) => "No re-runs: no candidate met the target, or verify_seeds = 0.",
            None => "No re-runs: the plan has no numeric target rate to re-run at.",
        })
    } else {
        let rows: Vec<Vec<String>> = report
            .verification
            .iter()
            .flat_map(|v| {
                v.runs.iter().map(move |r| {
                    vec![
                        v.role.clone(),
                        format!("#{} {}", v.index, report.candidates[v.index].label),
                        v.rate.to_string(),
                        r.seed.to_string(),
                        if r.met { "yes" } else { "no" }.to_string(),
                        format!("{:.1}", r.latency_ms),
                    ]
                })
            })
            .collect();
        let sec = report
            .verification_lines()
            .into_iter()
            .fold(Section::new("Re-runs with other seeds"), |sec, line| {
                sec.para(line)
            });
        sec.table(
            "the winner and the next cheaper candidate re-run at the target rate with seeds the search did not use: the margin",
            ["role", "candidate", "rate req/s", "seed", "meets the SLOs", report.slo_metric()]
                .map(String::from)
                .to_vec(),
            rows,
        )
    };
    let head: Vec<String> = PlanReport::COLUMNS.split(',').map(String::from).collect();
    let candidates = Section::new("Candidates").table(
        "every candidate: its highest rate meeting the SLOs, cost and why it was pruned",
        head,
        report.cells(),
    );
    let plot = Section::new("Cost against rate").svg(
        "cost per hour against the highest rate meeting the SLOs; frontier in red, winner ringed",
        report.svg(),
    );
    let limits = Section::new("Limits").push(Block::List(vec![
        "A candidate's highest rate is found by bisection on timed runs; a rate passes only when every replication meets every SLO, and the confidence k/R says how many did.".into(),
        "Pruned candidates were not simulated: `memory` (weights and KV cache do not fit), `invalid` (a layout the config refuses), `roofline` (an upper bound on rate below the target), `dominated` (dearer than two candidates that already meet the target).".into(),
        "Prices come from the price tables (`infersim list`); none is verified against the providers' pages.".into(),
        "Instances spanning several GPUs are modelled within one node only; cross-node links are not modelled.".into(),
    ]));
    page(
        &format!("infersim plan: {}", report.name),
        &[setup, answer, verified, plot, candidates, limits],
    )
}
