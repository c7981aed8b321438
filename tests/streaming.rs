//! `multi_step_stream_outputs` (src/serving/instance/multi_step.rs): when the tokens of
//! a vLLM 0.6 multi-step block reach the client. Hand-worked timelines on the tiny model
//! (a flat roofline on a GPU where one FLOP or one byte takes a microsecond, 1 ms of CPU
//! per scheduler call): held to the block's end, finishes, ITL chunks, TPOT and a first
//! token generated inside a block. Fast path = step by step with it is in tests/stacks.rs.

mod common;

use common::blocks::*;
use common::*;
use infersim::cost::{PrefillChunk, StepShape};
use infersim::instance::Instance;
use infersim::kv::KvGeometry;
use infersim::metrics::Recorder;
use infersim::policy::Policy;
use infersim::sim::{run, RunOptions};
use infersim::stacks::StackSemantics;
use infersim::time::SimTime;
use infersim::workload::Request;

/// `multi_step_stream_outputs = false` (vLLM 0.6.0), n = 4: a block's tokens reach the
/// client at its end. r0 (4 in, 3 out) and r1 (4 in, 8 out) arrive at 0 and prefill
/// together (step P, both first tokens at its end). Block 1 (steps s1..s4, contexts
/// 5..8 each; s1 pays the CPU, r0 computes as padding in s3, s4): r0's last token is
/// generated in s2, but the client gets tokens 2-3 (r0) and 2-5 (r1) at the block's end,
/// so r0 finishes at P + s1 + s2 + s3 + s4 (streamed: P + s1 + s2). Block 2 is r1's
/// alone (s5 with the CPU, s6, s7; contexts 9..11): its tokens 6-8, r1's end, the same
/// in both modes. ITL: one gap per chunk: r0 and r1 at block 1's end (B1 = s1 + ... +
/// s4 each), r1 at block 2's (B2 = s5 + s6 + s7).
#[test]
fn without_streaming_a_blocks_tokens_arrive_at_its_end() {
    let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
    // A decode step of `batch` slots attending `ctx` keys each, `emitting` of them
    // real; `cpu`: the block's first step, which pays the CPU part.
    let decode = |batch: u64, ctx: u64, emitting: u64, cpu: bool| {
        let mut c = cost.price(&StepShape {
            emitting,
            ..StepShape::decode_only(batch, ctx, 0)
        });
        if !cpu {
            c.times.cpu_s = 0.0;
            c.times.cpu_overlap = 1.0;
        }
        ns(&c.times)
    };
    let chunk = PrefillChunk { cached: 0, new: 4 };
    let p = ns(&cost
        .price(&StepShape {
            prefills: vec![chunk, chunk],
            emitting: 2,
            ..StepShape::default()
        })
        .times);
    let s = [
        decode(2, 5, 2, true),
        decode(2, 6, 2, false),
        decode(2, 7, 1, false),
        decode(2, 8, 1, false),
    ];
    let b1: u64 = s.iter().sum();
    let b2 = decode(1, 9, 1, true) + decode(1, 10, 1, false) + decode(1, 11, 1, false);
    let us = |ns: u64| ns as f64 / 1000.0;

    let rows = [(0.0, 4, 3), (0.0, 4, 8)];
    let held = StackSemantics {
        multi_step_stream_outputs: false,
        ..multi_step(4)
    };
    let off = timeline(&rows, held.clone());
    let on = timeline(&rows, multi_step(4));
    for recs in [&off, &on] {
        assert_eq!(at_us(recs[0].first_token_s), at_us(us(p) * 1e-6));
        assert_eq!(at_us(recs[1].first_token_s), at_us(us(p) * 1e-6));
        assert_eq!(at_us(recs[1].finish_s), at_us(us(p + b1 + b2) * 1e-6));
    }
    assert_eq!(at_us(off[0].finish_s), at_us(us(p + b1) * 1e-6));
    assert_eq!(at_us(on[0].finish_s), at_us(us(p + s[0] + s[1]) * 1e-6));

    // The summary: three chunks after the first, TPOT from the delivered times.
    let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
    let mut sc = single(policy(), cost, 1, 4096, trace_workload(&rows));
    sc.instances[0].stack = held;
    let opts = RunOptions {
        keep_records: false,
        check_invariants: true,
        step_by_step: true,
    };
    let out = run(&sc, 0, opts).unwrap();
    let itl = &out.summary.latency.itl;
    let mean_ms = (2 * b1 + b2) as f64 / 3.0 / 1e6;
    assert!(
        (itl.mean - mean_ms).abs() < 1e-9,
        "{} vs {mean_ms}",
        itl.mean
    );
    assert_eq!(out.tokens_emitted, 11);
    let tpot_r0 = (b1 as f64 / 2.0) / 1e6;
    let tpot_r1 = ((b1 + b2) as f64 / 7.0) / 1e6;
    let tpot = &out.summary.latency.tpot;
    assert!((tpot.mean - (tpot_r0 + tpot_r1) / 2.0).abs() < 1e-9);
}

/// Multi-step with chunked prefill and `multi_step_stream_outputs = false`: a prompt that
/// completes in the block's first step has its first token generated there, but the
/// client gets it with the block, at its end. r0 (4 in, 3 out) alone: step 1 prefills it
/// (first token) and opens a block of 4; steps 2 and 3 decode tokens 2 and 3, and the
/// block ends there (nobody left to emit). Streamed, TTFT is step 1's end; held, it is
/// step 3's, with the finish.
#[test]
fn without_streaming_a_first_token_generated_in_a_block_waits_for_its_end() {
    let chunked = Policy::Continuous {
        max_num_seqs: 16,
        max_num_batched_tokens: 64,
        chunked_prefill: true,
        prefix_caching: false,
    };
    let run_one = |stream: bool| {
        let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
        let geo = KvGeometry::new(&tiny_model(), 1);
        let mut inst = Instance::new(0, chunked.clone(), cost, geo, 4096, 4096);
        inst.set_stack_semantics(StackSemantics {
            multi_step_stream_outputs: stream,
            ..multi_step(4)
        });
        let r0 = Request::new(0, SimTime::ZERO, 4, 3);
        inst.note_routed(&r0);
        inst.enqueue(r0, SimTime::ZERO);
        let mut rec = Recorder::new(SimTime::ZERO, true);
        let mut t = 0;
        let mut ends = Vec::new();
        while step(&mut inst, &mut t, &mut rec).is_some() {
            ends.push(t);
        }
        assert!(inst.running_len() == 0 && inst.kv.used == 0);
        (rec.records.unwrap()[0], ends)
    };
    let (on, ends) = run_one(true);
    let (off, ends_off) = run_one(false);
    assert_eq!(ends.len(), 3);
    assert_eq!(ends, ends_off, "the same steps either way");
    assert_eq!(at_us(on.first_token_s), ends[0] / US);
    assert_eq!(at_us(off.first_token_s), ends[2] / US);
    assert_eq!(at_us(on.finish_s), ends[2] / US);
    assert_eq!(at_us(off.finish_s), ends[2] / US);
}
