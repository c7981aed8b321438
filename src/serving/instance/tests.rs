//! Unit tests of the pieces of an instance: the step's token budget, the preemption
//! victims, the prefix-cache signal, the tenant counters and the scheduler's checked
//! operations, each on numbers worked out by hand.

use super::*;
use crate::metrics::Recorder;
use crate::policy::{Refusal, Scheduler, SchedulerChoice, SchedulerConfig, StepBuilder};
use crate::profile::Profile;
use crate::specs::{load_gpu, load_model};

fn cost() -> CostModel {
    let model = load_model("llama-3.2-1b", None, "test", "model").unwrap();
    let gpu = load_gpu("l4", None, "test", "gpu").unwrap();
    let p = Profile {
        name: "t".into(),
        stack: "vllm".into(),
        status: "default".into(),
        eta_compute: Some(0.5),
        eta_bandwidth: Some(0.8),
        gpu_step_overhead_us: 0.0,
        gpu_seq_overhead_us: 0.0,
        cpu_step_overhead_us: 0.0,
        cpu_seq_overhead_us: 0.0,
        cpu_overlap: 0.0,
        logits_passes: 1.0,
        api_latency_us: 0.0,
        api_seq_overhead_us: 0.0,
        api_request_us: 0.0,
        api_prompt_token_us: 0.0,
        non_torch_memory_gib: 0.0,
        source: String::new(),
        fit: None,
    };
    CostModel::new(&model, &gpu, &p).unwrap()
}

fn geo() -> KvGeometry {
    KvGeometry::new(&load_model("llama-3.2-1b", None, "t", "m").unwrap(), 16)
}

fn continuous(max_num_seqs: u32, max_num_batched_tokens: u32, prefix_caching: bool) -> Policy {
    Policy::Continuous {
        max_num_seqs,
        max_num_batched_tokens,
        chunked_prefill: true,
        prefix_caching,
    }
}

fn req(id: u64, input: u32, output: u32) -> Request {
    Request::new(id, SimTime::ZERO, input, output)
}

/// Plans and finishes one step at `t` (µs); returns whether one ran.
fn step(inst: &mut Instance, t: &mut u64, rec: &mut Recorder) -> bool {
    let mut wake = None;
    let now = SimTime(*t * 1000);
    let Some(_) = inst.plan_step(now, &mut wake) else {
        return false;
    };
    *t += 1000;
    let mut done = Vec::new();
    inst.finish_step(SimTime(*t * 1000), rec, &mut done);
    inst.check_invariants().unwrap();
    true
}

#[test]
fn a_running_prefill_gets_the_budget_its_step_decodes_leave() {
    let mut inst = Instance::new(0, continuous(8, 64, false), cost(), geo(), 1000, 4096);
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;
    for id in 0..3 {
        inst.note_routed(&req(id, 4, 50));
        inst.enqueue(req(id, 4, 50), SimTime::ZERO);
    }
    assert!(step(&mut inst, &mut t, &mut rec));
    assert_eq!(inst.last_plan().prefills, vec![(0, 4), (1, 4), (2, 4)]);
    // Three decode; a 200-token prompt arrives: 64 - 3 = 61 tokens of it per step.
    inst.note_routed(&req(3, 200, 5));
    inst.enqueue(req(3, 200, 5), SimTime(t * 1000));
    assert!(step(&mut inst, &mut t, &mut rec));
    assert_eq!(inst.last_plan().prefills, vec![(3, 61)]);
    assert_eq!(inst.last_plan().decodes, 3);
    // Its next chunk, as a running prefill, gets the same: 61, not 64.
    assert!(step(&mut inst, &mut t, &mut rec));
    assert_eq!(inst.last_plan().prefills, vec![(3, 61)]);
    assert!(step(&mut inst, &mut t, &mut rec));
    assert!(step(&mut inst, &mut t, &mut rec));
    // 200 = 61 + 61 + 61 + 17.
    assert_eq!(inst.last_plan().prefills, vec![(3, 17)]);
}

/// Three requests of 3, 1 and 2 blocks in a pool of 7 blocks: they all fit, then their
/// first decode step needs 3 new blocks with 1 free, so one is preempted. Returns its id.
fn first_victim(victim: &str) -> u64 {
    let mut inst = Instance::new(0, continuous(8, 2048, false), cost(), geo(), 7, 4096);
    let choice = SchedulerChoice::Config(SchedulerConfig {
        victim: crate::policy::Victim::from_name(victim),
        ..SchedulerConfig::default()
    });
    inst.set_scheduler(choice.build(0).unwrap());
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;
    for (id, input) in [(0, 48), (1, 16), (2, 32)] {
        inst.note_routed(&req(id, input, 20));
        inst.enqueue(req(id, input, 20), SimTime::ZERO);
    }
    assert!(step(&mut inst, &mut t, &mut rec));
    assert_eq!(inst.last_plan().admitted, vec![0, 1, 2]);
    assert!(inst.last_plan().preempted.is_empty());
    assert!(step(&mut inst, &mut t, &mut rec));
    assert_eq!(
        inst.last_plan().preempted.len(),
        1,
        "{:?}",
        inst.last_plan()
    );
    inst.last_plan().preempted[0]
}

#[test]
fn each_victim_rule_preempts_its_request() {
    assert_eq!(first_victim("newest"), 2);
    assert_eq!(first_victim("oldest"), 0);
    assert_eq!(first_victim("fewest-blocks"), 1);
}

#[test]
fn the_prefix_signal_follows_the_cache() {
    let mut inst = Instance::new(0, continuous(8, 2048, true), cost(), geo(), 1000, 4096);
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;
    let mut r = req(0, 64, 2);
    r.prefix = Some(5);
    assert_eq!(inst.cached_prefix_blocks(5), 0);
    inst.note_routed(&r);
    inst.enqueue(r, SimTime::ZERO);
    assert!(step(&mut inst, &mut t, &mut rec));
    // A 64-token prompt shares (64 - 1) / 16 = 3 full blocks (the last token is
    // always computed).
    assert_eq!(inst.cached_prefix_blocks(5), 3);
    assert_eq!(inst.cached_prefix_blocks(4), 0);
    assert!(step(&mut inst, &mut t, &mut rec));
    assert!(inst.is_empty());
    // Released, still cached until evicted.
    assert_eq!(inst.cached_prefix_blocks(5), 3);
}

#[test]
fn tenant_tokens_count_every_emitted_token() {
    let mut inst = Instance::new(0, continuous(8, 2048, false), cost(), geo(), 1000, 4096);
    let choice = SchedulerChoice::Config(SchedulerConfig {
        name: "fair-share".into(),
        ..SchedulerConfig::default()
    });
    inst.set_scheduler(choice.build(0).unwrap());
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;
    for (id, tenant, out) in [(0, 0, 5), (1, 1, 3), (2, 1, 4)] {
        let mut r = req(id, 8, out);
        r.tenant = tenant;
        inst.note_routed(&r);
        inst.enqueue(r, SimTime::ZERO);
    }
    while step(&mut inst, &mut t, &mut rec) {}
    assert_eq!(inst.tenant_output_tokens(0), 5);
    assert_eq!(inst.tenant_output_tokens(1), 7);
    assert_eq!(rec.tokens_emitted, 12);
}

/// A scheduler that admits a request, then tries to admit it again.
#[derive(Debug)]
struct Twice;

impl Scheduler for Twice {
    fn name(&self) -> &str {
        "twice"
    }
    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        if let Some(r) = s.waiting_front() {
            assert!(s.admit(r.handle, 1000, true).is_ok());
            assert_eq!(s.admit(r.handle, 1000, true), Err(Refusal::Invalid));
        }
    }
}

#[test]
fn an_invalid_operation_is_an_error_of_the_policy() {
    let mut inst = Instance::new(0, continuous(8, 2048, false), cost(), geo(), 1000, 4096);
    inst.set_scheduler(Box::new(Twice));
    let mut rec = Recorder::new(SimTime::ZERO, false);
    inst.note_routed(&req(0, 8, 2));
    inst.enqueue(req(0, 8, 2), SimTime::ZERO);
    let mut t = 0;
    let mut wake = None;
    assert!(inst.plan_step(SimTime(0), &mut wake).is_some());
    t += 1;
    let mut done = Vec::new();
    inst.finish_step(SimTime(t * 1_000_000), &mut rec, &mut done);
    let e = inst.check_invariants().unwrap_err();
    assert!(e.contains("admit: request in slot 0 is not waiting"), "{e}");
    assert_eq!(
        inst.policy_error(),
        Some("admit: request in slot 0 is not waiting")
    );
}

/// Admits beyond the running cap: refused, the running set stays at the cap.
#[derive(Debug)]
struct Greedy;

impl Scheduler for Greedy {
    fn name(&self) -> &str {
        "greedy"
    }
    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        let all: Vec<_> = s.waiting().map(|r| r.handle).collect();
        for h in all {
            let _ = s.admit(h, 16, true);
        }
    }
}

#[test]
fn the_running_cap_and_budget_hold_whatever_the_scheduler_asks() {
    let mut inst = Instance::new(0, continuous(2, 20, false), cost(), geo(), 1000, 4096);
    inst.set_scheduler(Box::new(Greedy));
    for id in 0..5 {
        inst.note_routed(&req(id, 8, 3));
        inst.enqueue(req(id, 8, 3), SimTime::ZERO);
    }
    let mut wake = None;
    assert!(inst.plan_step(SimTime(0), &mut wake).is_some());
    // Two fit the cap; the second gets what is left of the 20-token budget: 8 + 8.
    assert_eq!(inst.last_plan().admitted, vec![0, 1]);
    assert_eq!(inst.last_plan().prefills, vec![(0, 8), (1, 8)]);
    assert_eq!(inst.running_len(), 2);
    assert!(inst.policy_error().is_none());
}

#[test]
fn a_new_request_waits_as_a_record_and_a_preempted_one_as_its_sequence() {
    let mut inst = Instance::new(0, continuous(1, 2048, false), cost(), geo(), 1000, 4096);
    inst.short_queue = 0;
    let mut rec = Recorder::new(SimTime::ZERO, false);
    for id in 0..3 {
        inst.note_routed(&req(id, 8, 4));
        inst.enqueue(req(id, 8, 4), SimTime::ZERO);
    }
    // Three records by rank 0, 1, 2; no sequence built yet.
    assert_eq!((inst.seqs.len(), inst.recs.len()), (0, 3));
    assert!(inst.waiting.iter().all(|&e| e & REC != 0));
    let mut t = 0;
    assert!(step(&mut inst, &mut t, &mut rec));
    // The cap of one admits request 0: its sequence has rank 0, the others still
    // wait as records.
    assert_eq!(inst.seqs.len(), 1);
    assert_eq!((inst.seqs[0].req.id, inst.seqs[0].rank), (0, 0));
    assert_eq!(inst.waiting_len(), 2);
    // Preempted, it waits at the front as its sequence.
    inst.preempt_slot(0);
    assert_eq!(inst.waiting.front(), Some(&0));
    assert_eq!(inst.seqs[0].state, State::Waiting);
    inst.check_invariants().unwrap();
    // Aborting a record frees its rank for the next request; the queue keeps its order.
    assert_eq!(inst.abort(1), Some(Aborted { generated: 0 }));
    assert_eq!(inst.outstanding, 2);
    assert_eq!(
        inst.waiting.iter().copied().collect::<Vec<_>>(),
        [0, REC | 2]
    );
    inst.note_routed(&req(3, 8, 4));
    inst.enqueue(req(3, 8, 4), SimTime(5));
    assert_eq!(inst.waiting.back(), Some(&(REC | 1)));
    assert_eq!(inst.recs.len(), 3);
    inst.check_invariants().unwrap();
    // A timed run's end sees every unfinished request: the preempted sequence 0
    // (its first token came at the end of its one step) and the records 2 and 3,
    // with none.
    let mut left = Vec::new();
    inst.for_each_unfinished(|r, first| left.push((r.id, first)));
    left.sort();
    let first = Some(SimTime(t * 1000));
    assert_eq!(inst.seqs[0].first_token, first);
    assert_eq!(left, [(0, first), (2, None), (3, None)]);
    assert_eq!(inst.abort(1), None);
}

/// Admits the head of the queue, then preempts it by the handle it had while waiting.
#[derive(Debug)]
struct AdmitThenPreempt;

impl Scheduler for AdmitThenPreempt {
    fn name(&self) -> &str {
        "admit-then-preempt"
    }
    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        if let Some(r) = s.waiting_front() {
            assert_eq!(r.phase, builder::Phase::Waiting);
            assert!(s.admit(r.handle, 1000, true).is_ok());
            assert_eq!(s.running().next().map(|v| v.id), Some(r.id));
            assert_eq!(s.preempt(r.handle), Ok(()));
        }
    }
}

#[test]
fn a_waiting_handle_names_its_request_for_the_whole_step() {
    let mut inst = Instance::new(0, continuous(8, 2048, false), cost(), geo(), 1000, 4096);
    inst.short_queue = 0;
    inst.set_scheduler(Box::new(AdmitThenPreempt));
    inst.note_routed(&req(0, 8, 2));
    inst.enqueue(req(0, 8, 2), SimTime::ZERO);
    let mut wake = None;
    let _ = inst.plan_step(SimTime(0), &mut wake);
    assert_eq!(inst.last_plan().admitted, vec![0]);
    assert_eq!(inst.last_plan().preempted, vec![0]);
    assert!(inst.policy_error().is_none());
    // Back in the queue, as a sequence now.
    assert_eq!(inst.waiting.iter().copied().collect::<Vec<_>>(), [0]);
    inst.check_invariants().unwrap();
}

/// Every step's plan and every completion of a run of `n` requests with ids from
/// `first_id` (lengths, priorities and prompts from the request's index; three
/// arrive, then two steps run), on a pool small enough to preempt, under `sched`,
/// new requests waiting as records behind `short_queue` others.
fn trace(first_id: u64, n: u64, sched: &str, short_queue: usize) -> Vec<String> {
    let mut inst = Instance::new(0, continuous(6, 96, true), cost(), geo(), 24, 4096);
    inst.short_queue = short_queue;
    let mut records = 0;
    let choice = SchedulerChoice::Config(SchedulerConfig {
        name: sched.into(),
        ..SchedulerConfig::default()
    });
    inst.set_scheduler(choice.build(0).unwrap());
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut out = Vec::new();
    let mut t = 0u64;
    let mut done = Vec::new();
    for i in 0..n {
        let (input, output) = (20 + (i as u32 * 37) % 90, 3 + i as u32 % 23);
        let mut r = Request::new(first_id + i, SimTime(t), input, output);
        r.priority = (i % 3) as i32;
        r.prefix = (i % 2 == 0).then_some((i % 4) as u32);
        inst.note_routed(&r);
        inst.enqueue(r, SimTime(t + 7));
        records += inst.waiting.iter().filter(|&&e| e & REC != 0).count();
        let steps = match (i % 3, i + 1 == n) {
            (_, true) => 10_000,
            (2, _) => 2,
            _ => 0,
        };
        for _ in 0..steps {
            let mut wake = None;
            if inst.plan_step(SimTime(t), &mut wake).is_none() {
                break;
            }
            t += 1_000_000;
            inst.finish_step(SimTime(t), &mut rec, &mut done);
            inst.check_invariants().unwrap();
            let p = inst.last_plan();
            let rel = |v: &[u64]| v.iter().map(|id| id - first_id).collect::<Vec<_>>();
            out.push(format!(
                "{:?} {:?} {:?} {} {:?}",
                rel(&p.admitted),
                rel(&p.preempted),
                p.prefills
                    .iter()
                    .map(|c| (c.0 - first_id, c.1))
                    .collect::<Vec<_>>(),
                p.decodes,
                done.drain(..)
                    .map(|f| (f.req.id - first_id, f.at))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(inst.policy_error().is_none());
    assert!(inst.is_empty(), "{sched}: {} left", inst.outstanding);
    out.push(format!("records seen {}", records > 0));
    out
}

#[test]
fn requests_waiting_as_sequences_are_served_exactly_as_records_are() {
    // Ids past 40 bits do not fit a record: every such request waits as a sequence.
    for sched in ["fcfs", "priority", "lpm"] {
        let records = trace(0, 60, sched, 0);
        // The pool is short enough to preempt.
        assert!(records.iter().any(|l| !l.contains("] [] [")), "{sched}");
        assert_eq!(records.last().unwrap(), "records seen true");
        let mut sequences = trace(1 << 41, 60, sched, 0);
        assert_eq!(sequences.pop().unwrap(), "records seen false");
        let mut mixed = trace(0, 60, sched, 4);
        assert_eq!(mixed.last().unwrap(), "records seen true");
        assert_eq!(records[..records.len() - 1], sequences[..], "{sched}");
        mixed.pop();
        assert_eq!(mixed, sequences, "{sched}");
    }
}
