//! A scheduler written outside the crate: earliest deadline first. Each workload
//! class has a time-to-first-token target; waiting requests are admitted in order of
//! `arrival + target` and, when KV runs short, the running request with the latest
//! deadline is preempted. Run: `cargo run --release --example deadline_scheduler`.

use infersim::config::parse_experiment;
use infersim::policy::fcfs::{admit_while, schedule_running};
use infersim::policy::{ReqView, Scheduler, SchedulerChoice, StepBuilder};
use infersim::sim::{run, RunOptions, Scenario};
use infersim::time::{Dur, SimTime};
use std::sync::Arc;

/// Earliest deadline first, by class target.
#[derive(Debug, Clone)]
pub struct EarliestDeadline {
    /// Time-to-first-token target of each class (a class beyond the list: none).
    pub targets: Vec<Dur>,
}

impl Scheduler for EarliestDeadline {
    fn name(&self) -> &str {
        "edf"
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        let target = |r: &ReqView| self.targets.get(r.class as usize).copied();
        let deadline = |r: &ReqView| target(r).map_or(SimTime::MAX, |t| r.arrival + t);
        schedule_running(s, |s| s.running().max_by_key(|r| (deadline(r), r.admitted)));
        let earliest = |s: &mut StepBuilder<'_>| s.waiting().min_by_key(|r| (deadline(r), r.id));
        admit_while(s, |s| earliest(s).map(|r| r.handle));
    }
}

/// A 1B model on an L4, busy enough to queue: a chat class beside a batch class.
pub fn scenario() -> Scenario {
    let class = |name: &str, rate: f64, input: u32, output: u32| {
        format!(
            "[[workload.classes]]\nname = \"{name}\"\narrival = \"poisson\"\nrate_per_s = {rate}\n\
            input_tokens = {{ dist = \"fixed\", value = {input} }}\n\
            output_tokens = {{ dist = \"fixed\", value = {output} }}\n"
        )
    };
    let text = "name = \"edf\"\n[hardware]\ngpu = \"l4\"\n[engine]\nmodel = \"llama-3.2-1b\"\n\
        policy = \"continuous\"\n[engine.continuous]\nmax_num_seqs = 8\n[workload]\n\
        arrival = \"classes\"\nnum_requests = 600\n"
        .to_string()
        + &class("chat", 0.5, 64, 32)
        + &class("batch", 2.0, 512, 256);
    let exp = parse_experiment(&text, "edf.toml".as_ref()).expect("valid");
    exp.points[0].scenario.clone()
}

/// The scenario with the deadline scheduler (1 s for chat, 60 s for batch).
pub fn with_edf(mut sc: Scenario) -> Scenario {
    let targets = vec![Dur::from_secs_f64(1.0), Dur::from_secs_f64(60.0)];
    let edf = EarliestDeadline { targets };
    let build = Arc::new(move |_seed| Box::new(edf.clone()) as Box<dyn Scheduler>);
    let name = "edf".into();
    sc.instances[0].scheduler = SchedulerChoice::Custom { name, build };
    sc
}

/// The 90th-percentile time to first token of each class, in seconds (the summary's
/// per-class rows), with the instance's invariants checked at every step.
pub fn p90_ttft(sc: &Scenario) -> [f64; 2] {
    let opts = RunOptions {
        check_invariants: true,
        ..RunOptions::default()
    };
    let s = run(sc, 1, opts).expect("runs").summary;
    [0, 1].map(|c| s.per_class[c].ttft.p90 / 1e3)
}

fn main() {
    let (fcfs, edf) = (p90_ttft(&scenario()), p90_ttft(&with_edf(scenario())));
    for (c, name) in ["chat", "batch"].iter().enumerate() {
        println!(
            "{name}: p90 TTFT {:.2} s (fcfs), {:.2} s (edf)",
            fcfs[c], edf[c]
        );
    }
}
