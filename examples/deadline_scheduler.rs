//! A scheduler written outside the crate: earliest deadline first. Each workload
//! class has a time-to-first-token target; waiting requests are admitted in order of
//! `arrival + target` and, when KV runs short, the running request with the latest
//! deadline is preempted. Run: `cargo run --release --example deadline_scheduler`.

use infersim::config::parse_experiment;
use infersim::policy::fcfs::{admit_while, schedule_running};
use infersim::policy::{ReqView, Scheduler, SchedulerChoice, StepBuilder};
use infersim::sim::{run, RunOptions, Scenario};
use infersim::time::{Dur, SimTime};
use infersim::workload::{Arrival, LengthDist::Fixed, WorkloadClass};
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
        admit_while(s, |s| {
            let first = s.waiting().min_by_key(|r| (deadline(r), r.id));
            first.map(|r| r.handle)
        });
    }
}

/// A 1B model on an L4, busy enough that requests queue: an interactive class (short
/// prompts, 1 s target) and a batch class (long prompts, 60 s target).
pub fn scenario() -> Scenario {
    let text = "name = \"edf\"\n[hardware]\ngpu = \"l4\"\n[engine]\nmodel = \"llama-3.2-1b\"\n\
        policy = \"continuous\"\n[engine.continuous]\nmax_num_seqs = 8\n[workload]\n\
        arrival = \"poisson\"\nrate_per_s = 1.0\nnum_requests = 600\n\
        input_tokens = { dist = \"fixed\", value = 1 }\noutput_tokens = { dist = \"fixed\", value = 1 }\n";
    let exp = parse_experiment(text, "edf.toml".as_ref()).expect("valid");
    let mut sc = exp.points[0].scenario.clone();
    let class = |name: &str, rate, input, output| WorkloadClass {
        name: name.into(),
        arrival: Arrival::Poisson { rate },
        input: Fixed { value: input },
        output: Fixed { value: output },
        priority: 0,
        tenant: 0,
    };
    sc.workload.classes = vec![class("chat", 0.5, 64, 32), class("batch", 2.0, 512, 256)];
    sc
}

/// The scenario with the deadline scheduler on its instance.
pub fn with_edf(mut sc: Scenario) -> Scenario {
    let targets = vec![Dur::from_secs_f64(1.0), Dur::from_secs_f64(60.0)];
    let edf = EarliestDeadline { targets };
    let build = Arc::new(move |_seed| Box::new(edf.clone()) as Box<dyn Scheduler>);
    sc.instances[0].scheduler = SchedulerChoice::Custom {
        name: "edf".into(),
        build,
    };
    sc
}

/// The 90th-percentile time to first token of each class, in seconds.
pub fn p90_ttft(sc: &Scenario) -> [f64; 2] {
    let mut opts = RunOptions::default();
    (opts.keep_records, opts.check_invariants) = (true, true);
    let recs = run(sc, 1, opts).expect("runs").records.expect("kept");
    [0, 1].map(|c| {
        let class = recs.iter().filter(|r| r.class == c);
        let mut t: Vec<f64> = class.map(|r| r.first_token_s - r.arrival_s).collect();
        t.sort_by(f64::total_cmp);
        t[(t.len() - 1) * 9 / 10]
    })
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
