//! Instance behaviour pinned step by step through the public API, for mutants that
//! the end-to-end tests let through: each expected number is worked out in the
//! comments.

mod common;

use common::*;
use infersim::metrics::Recorder;
use infersim::policy::Policy;
use infersim::serving::instance::Instance;
use infersim::serving::kv::KvGeometry;
use infersim::time::SimTime;
use infersim::workload::Request;

fn req(id: u64, input_tokens: u32, output_tokens: u32) -> Request {
    Request {
        id,
        arrival: SimTime::ZERO,
        input_tokens,
        output_tokens,
        user: None,
        group: None,
        prefix: None,
        class: 0,
        priority: 0,
        tenant: 0,
        session: None,
    }
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
    let policy = Policy::Continuous {
        max_num_seqs: 8,
        max_num_batched_tokens: 10,
        chunked_prefill: true,
        prefix_caching: false,
    };
    let cm = tiny_cost(&profile(0.0, 0.0, 0.0));
    let geo = KvGeometry::new(&tiny_model(), 16);
    let mut inst = Instance::new(0, policy, cm, geo, 1000, 4096);
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
