//! Instance behaviour pinned step by step through the public API, for mutants that
//! the end-to-end tests let through: each expected number is worked out in the
//! comments.

mod common;

use common::*;
use infersim::config::parse_experiment;
use infersim::metrics::Recorder;
use infersim::policy::fcfs::Fcfs;
use infersim::policy::{Phase, Policy, Scheduler, SchedulerChoice, SchedulerConfig, StepBuilder};
use infersim::policy::{Predictor, Victim};
use infersim::serving::instance::Instance;
use infersim::serving::kv::KvGeometry;
use infersim::sim::{run, RunOptions};
use infersim::time::SimTime;
use infersim::workload::Request;
use std::sync::{Arc, Mutex};

fn req(id: u64, input_tokens: u32, output_tokens: u32) -> Request {
    Request::new(id, SimTime::ZERO, input_tokens, output_tokens)
}

/// Continuous batching with a 10-token step budget and chunked prefill, on the tiny
/// model with plenty of KV.
fn chunking_instance() -> Instance {
    let policy = Policy::Continuous {
        max_num_seqs: 8,
        max_num_batched_tokens: 10,
        chunked_prefill: true,
        prefix_caching: false,
    };
    let cm = tiny_cost(&profile(0.0, 0.0, 0.0));
    let geo = KvGeometry::new(&tiny_model(), 16);
    Instance::new(0, policy, cm, geo, 1000, 4096)
}

/// Plans and finishes one step at `t` µs; the plan's (prefills, decodes).
fn step(inst: &mut Instance, t: u64, rec: &mut Recorder) -> (Vec<(u64, u64)>, u64) {
    let mut wake = None;
    inst.plan_step(SimTime(t * 1000), &mut wake)
        .expect("a step to run");
    let plan = inst.last_plan().clone();
    inst.finish_step(SimTime(t * 1000 + 500), rec, &mut Vec::new());
    (plan.prefills, plan.decodes)
}

/// A step's budget of 10 tokens, chunked prefill: request 0 (4 prompt tokens) fills
/// step 1 alone; from step 2 it decodes one token a step, so request 1's 30-token
/// prompt gets 10 − 1 = 9 tokens when admitted, 9 again as a running prefill in step
/// 3, 9 in step 4 and the last 3 in step 5. A budget that ignores the decode token
/// (either on admission or on a running prefill) plans 10 and fails here.
#[test]
fn prefill_chunks_get_the_budget_left_by_the_decodes() {
    let mut inst = chunking_instance();
    let mut rec = Recorder::new(SimTime::ZERO, false);
    inst.enqueue(req(0, 4, 8), SimTime::ZERO);
    assert_eq!(step(&mut inst, 0, &mut rec), (vec![(0, 4)], 0));
    inst.enqueue(req(1, 30, 2), SimTime(1000));
    assert_eq!(step(&mut inst, 1, &mut rec), (vec![(1, 9)], 1));
    assert_eq!(step(&mut inst, 2, &mut rec), (vec![(1, 9)], 1));
    assert_eq!(step(&mut inst, 3, &mut rec), (vec![(1, 9)], 1));
    assert_eq!(step(&mut inst, 4, &mut rec), (vec![(1, 3)], 1));
    // Request 1 now decodes beside request 0.
    assert_eq!(step(&mut inst, 5, &mut rec), (vec![], 2));
    assert_eq!(inst.policy_error(), None);
}

/// FCFS that first notes what it sees of the running set: (id, phase, computed).
#[derive(Debug)]
struct Watching(Arc<Mutex<Vec<Seen>>>);

/// The running set as one step's planning saw it.
type Seen = Vec<(u64, Phase, u64)>;

impl Scheduler for Watching {
    fn name(&self) -> &str {
        "watching"
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        let seen = s.running().map(|r| (r.id, r.phase, r.computed)).collect();
        self.0.lock().unwrap().push(seen);
        Fcfs {
            victim: Victim::Newest,
        }
        .schedule(s);
    }
}

/// The budget test's first steps, watched: when step 2 is planned request 0 decodes
/// with the KV of its 4 prompt tokens computed (its first token's KV comes with its
/// first decode); when step 3 is planned it has 5, and request 1 is a running prefill
/// with 9 of its 30 tokens computed, which a scheduler must see as prefilling.
#[test]
fn a_scheduler_sees_a_running_prefill_as_prefilling() {
    let mut inst = chunking_instance();
    let seen = Arc::new(Mutex::new(Vec::new()));
    inst.set_scheduler(Box::new(Watching(seen.clone())));
    let mut rec = Recorder::new(SimTime::ZERO, false);
    inst.enqueue(req(0, 4, 8), SimTime::ZERO);
    step(&mut inst, 0, &mut rec);
    inst.enqueue(req(1, 30, 2), SimTime(1000));
    step(&mut inst, 1, &mut rec);
    step(&mut inst, 2, &mut rec);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], vec![]);
    assert_eq!(seen[1], vec![(0, Phase::Decoding, 4)]);
    assert_eq!(
        seen[2],
        vec![(0, Phase::Decoding, 5), (1, Phase::Prefilling, 9)]
    );
}

/// SJF only orders admission (vLLM-style, non-preemptive); SRPT preempts the longest
/// running request when a waiting one is less than half as long. With KV to spare
/// (no preemption for blocks), 2 running slots and outputs from 20 to 780 tokens
/// arriving faster than they are served, SJF preempts nothing and SRPT does.
#[test]
fn sjf_never_preempts_with_kv_to_spare_while_srpt_does() {
    let text = "name = \"sjf\"\n[hardware]\ngpu = \"l4\"\n[engine]\n\
        model = \"llama-3.2-1b\"\npolicy = \"continuous\"\nmax_model_len = 2048\n\
        [engine.continuous]\nmax_num_seqs = 2\n[workload]\narrival = \"poisson\"\n\
        rate_per_s = 1.0\nnum_requests = 60\n\
        input_tokens = { dist = \"fixed\", value = 32 }\n\
        output_tokens = { dist = \"uniform\", mean = 400, range_ratio = 0.95 }\n";
    let exp = parse_experiment(text, "sjf.toml".as_ref()).expect("valid");
    let preemptions = |name: &str| {
        let mut sc = exp.points[0].scenario.clone();
        sc.instances[0].scheduler = SchedulerChoice::Config(SchedulerConfig {
            name: name.into(),
            predictor: Predictor::Oracle,
            ..SchedulerConfig::default()
        });
        let opts = RunOptions {
            check_invariants: true,
            ..RunOptions::default()
        };
        run(&sc, 1, opts).expect("runs").summary.preemptions
    };
    assert_eq!(preemptions("fcfs"), 0);
    assert_eq!(preemptions("sjf"), 0);
    assert!(preemptions("srpt") > 0);
}
