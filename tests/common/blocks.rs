//! Builders shared by the multi-step tests (tests/stacks.rs, tests/streaming.rs): the
//! continuous policy they run, multi-step semantics, a step's exclusive duration, a
//! step-by-step timeline of a trace, and an instance stepped by hand.

use super::{profile, single, tiny_cost, tiny_model, trace_workload};
use infersim::cost::{CostModel, StepTimes};
use infersim::instance::Instance;
use infersim::kv::KvGeometry;
use infersim::metrics::Recorder;
use infersim::policy::Policy;
use infersim::sim::{run, RunOptions};
use infersim::stacks::StackSemantics;
use infersim::time::SimTime;
use infersim::workload::Request;

/// Continuous batching without chunking or prefix caching, room for 16 sequences.
pub fn policy() -> Policy {
    Policy::Continuous {
        max_num_seqs: 16,
        max_num_batched_tokens: 64,
        chunked_prefill: false,
        prefix_caching: false,
    }
}

pub fn multi_step(n: u32) -> StackSemantics {
    StackSemantics {
        num_scheduler_steps: n,
        ..StackSemantics::default()
    }
}

/// A step's duration on an exclusive GPU, ns: serial CPU, then max(GPU, overlapped).
pub fn ns(c: &StepTimes) -> u64 {
    let (serial, gpu, overlapped) = c.exclusive_durations();
    serial.0 + gpu.0.max(overlapped.0)
}

pub const US: u64 = 1000;

/// Runs a trace of (arrival s, input, output) on the tiny model with 1 ms of CPU per
/// step (serial) and the given semantics; returns the records by id.
pub fn timeline(
    rows: &[(f64, u32, u32)],
    stack: StackSemantics,
) -> Vec<infersim::metrics::RequestRecord> {
    let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
    let mut sc = single(policy(), cost, 1, 4096, trace_workload(rows));
    sc.instances[0].stack = stack;
    let opts = RunOptions {
        keep_records: true,
        check_invariants: true,
        step_by_step: true,
    };
    let mut recs = run(&sc, 0, opts).unwrap().records.unwrap();
    recs.sort_by_key(|r| r.id);
    recs
}

pub fn at_us(s: f64) -> u64 {
    (s * 1e6).round() as u64
}

/// Plans and finishes steps back to back from `t` (ns); returns the step's cost.
pub fn step(inst: &mut Instance, t: &mut u64, rec: &mut Recorder) -> Option<StepTimes> {
    let mut wake = None;
    let cost = inst.plan_step(SimTime(*t), &mut wake)?;
    *t += ns(&cost);
    let mut done = Vec::new();
    inst.finish_step(SimTime(*t), rec, &mut done);
    inst.check_invariants().unwrap();
    Some(cost)
}

pub fn instance(cost: CostModel, stack: StackSemantics, requests: &[(u32, u32)]) -> Instance {
    let geo = KvGeometry::new(&tiny_model(), 1);
    let mut inst = Instance::new(0, policy(), cost, geo, 4096, 4096);
    inst.set_stack_semantics(stack);
    for (id, &(input, output)) in requests.iter().enumerate() {
        let r = Request::new(id as u64, SimTime::ZERO, input, output);
        inst.note_routed(&r);
        inst.enqueue(r, SimTime::ZERO);
    }
    inst
}
