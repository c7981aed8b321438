//! Hand-worked cases small enough to check on paper. The tiny model and the slow GPU
//! (1 FLOP or 1 byte per microsecond) are in `common`; every expected number below
//! is derived in the comments.

mod common;

use common::*;
use infersim::cost::StepShape;
use infersim::policy::Policy;
use infersim::sim::{run, RunOptions};
use infersim::time::Dur;

const OPTS: RunOptions = RunOptions {
    keep_records: true,
    check_invariants: true,
    step_by_step: false,
};

/// Prefill of 4 tokens: dense 2·512·4 = 4096 FLOP (compute, 4096 µs; bytes 1024 + 4·32
/// = 1152); LM head 512 FLOP / 512 B (512 µs); attention 4·8·(1+2+3+4) = 320 FLOP vs
/// 32·4 = 128 B (320 µs); sampler 4·32 = 128 B (128 µs). GPU 5056 µs.
#[test]
fn step_times_of_the_tiny_model_by_hand() {
    let cm = tiny_cost(&profile(0.0, 0.0, 0.0));
    let p = cm.price(&StepShape::prefill_only(4));
    assert!(
        (p.times.gpu_s() - 5056e-6).abs() < 1e-12,
        "{}",
        p.times.gpu_s()
    );
    assert!((p.times.compute_s - (4096e-6 + 320e-6)).abs() < 1e-12);
    // Decode of 2 sequences attending 5 keys each: dense 2048 FLOP vs 1024 + 64 B
    // (2048 µs); LM head 1024 FLOP vs 512 B (1024 µs); attention 32·10 = 320 FLOP and
    // 32·10 = 320 B (320 µs); sampler 256 B (256 µs). GPU 3648 µs.
    let d = cm.price(&StepShape::decode_only(2, 5, 0));
    assert!(
        (d.times.gpu_s() - 3648e-6).abs() < 1e-12,
        "{}",
        d.times.gpu_s()
    );
}

/// One request, 4 prompt tokens, 3 output tokens, sequential; 1000 µs GPU and 500 µs
/// CPU overhead per step, no overlap.
/// Step 1 (prefill): 5056 + 1000 + 500 = 6556 µs → first token at 6.556 ms.
/// Step 2 (decode, 5 keys): dense 1056 B (memory), LM head 512, attention 160,
/// sampler 128 → 1856 + 1500 = 3356 µs → 9.912 ms.
/// Step 3 (6 keys): attention 192 → 1888 + 1500 = 3388 µs → 13.300 ms.
#[test]
fn one_request_timeline_by_hand() {
    let cm = tiny_cost(&profile(1000.0, 500.0, 0.0));
    let sc = single(
        Policy::Sequential,
        cm,
        16,
        100,
        trace_workload(&[(0.0, 4, 3)]),
    );
    let r = run(&sc, 1, OPTS).unwrap();
    let rec = r.records.unwrap()[0];
    assert_eq!(Dur::from_secs_f64(rec.first_token_s).0, 6_556_000);
    assert_eq!(Dur::from_secs_f64(rec.finish_s).0, 13_300_000);
    let tpot = r.summary.latency.tpot.mean;
    assert!((tpot - 3.372).abs() < 1e-9, "{tpot}");
    // Full overlap of CPU and GPU: each step takes its GPU time only.
    let cm = tiny_cost(&profile(1000.0, 500.0, 1.0));
    let sc = single(
        Policy::Sequential,
        cm,
        16,
        100,
        trace_workload(&[(0.0, 4, 3)]),
    );
    let rec = run(&sc, 1, OPTS).unwrap().records.unwrap()[0];
    assert_eq!(
        Dur::from_secs_f64(rec.finish_s).0,
        6_056_000 + 2_856_000 + 2_888_000
    );
}

/// A padded static batch of outputs 2, 5 and 3 ends when its longest member does: the
/// fourth request (second batch) is scheduled exactly when the 5-token one finishes,
/// while the 2-token one finished three decode steps earlier.
#[test]
fn static_batch_finishes_when_its_longest_member_does() {
    let cm = tiny_cost(&profile(0.0, 0.0, 0.0));
    let policy = Policy::Static {
        batch_size: 3,
        max_wait: Dur(0),
        pad_finished: true,
    };
    let rows = [(0.0, 4, 2), (0.0, 4, 5), (0.0, 4, 3), (0.0, 4, 1)];
    let sc = single(policy, cm.clone(), 16, 100, trace_workload(&rows));
    let recs = run(&sc, 1, OPTS).unwrap().records.unwrap();
    let by_id = |id: u64| *recs.iter().find(|r| r.id == id).unwrap();
    let (short, long, fourth) = (by_id(0), by_id(1), by_id(3));
    assert_eq!(fourth.scheduled_s, long.finish_s);
    assert!(short.finish_s < long.finish_s);
    // Prefill of three 4-token chunks, then 4 padded decode steps of batch 3 with
    // attended lengths 5, 6, 7, 8: the batch's length, priced step by step.
    let mut prefill = StepShape::prefill_only(4);
    prefill.prefills = vec![prefill.prefills[0]; 3];
    prefill.emitting = 3;
    let mut t = cm.price(&prefill).times.wall_s();
    // Tokens 2..5: all three emit token 2; the 2-token one is done, so two emit
    // token 3; the 3-token one is done, so one emits tokens 4 and 5.
    let emitting = [3u64, 2, 1, 1];
    for (i, keys) in (5..=8u64).enumerate() {
        let mut s = StepShape::decode_only(3, keys, 0);
        s.emitting = emitting[i];
        t += cm.price(&s).times.wall_s();
    }
    assert!((long.finish_s - t).abs() < 5e-9, "{} vs {t}", long.finish_s);
}

/// Request A arrives at 0 (prefill ends at 6.556 ms, first decode step at 9.912 ms);
/// B arrives at 7 ms, mid-step, and is first scheduled at the next boundary, 9.912 ms.
#[test]
fn continuous_batch_admits_an_arrival_at_the_next_step_boundary() {
    let cm = tiny_cost(&profile(1000.0, 500.0, 0.0));
    let sc = single(
        continuous(),
        cm,
        16,
        100,
        trace_workload(&[(0.0, 4, 10), (0.007, 4, 3)]),
    );
    let recs = run(&sc, 1, OPTS).unwrap().records.unwrap();
    let b = recs.iter().find(|r| r.id == 1).unwrap();
    assert_eq!(Dur::from_secs_f64(b.scheduled_s).0, 9_912_000);
}

/// Two requests of 4 prompt + 8 output tokens, 4-token blocks. Each ends with 4 + 7 =
/// 11 tokens cached (the last token is never fed back), i.e. 3 blocks: 6 in all.
/// Both need their third block at the same step (context 8). With 6 blocks nobody is
/// preempted and the pool is exactly full at the peak; with 5 the later one is
/// preempted exactly once, at that step.
#[test]
fn preemption_happens_exactly_when_blocks_run_out() {
    let cm = tiny_cost(&profile(0.0, 0.0, 0.0));
    let rows = [(0.0, 4, 8), (0.0, 4, 8)];
    let enough = run(
        &single(continuous(), cm.clone(), 4, 6, trace_workload(&rows)),
        1,
        OPTS,
    )
    .unwrap();
    assert_eq!(enough.summary.preemptions, 0);
    assert_eq!(enough.summary.kv_cache_peak_fraction, 1.0);
    let short = run(
        &single(continuous(), cm, 4, 5, trace_workload(&rows)),
        1,
        OPTS,
    )
    .unwrap();
    assert_eq!(short.summary.preemptions, 1);
    let recs = short.records.unwrap();
    let (a, b) = (
        recs.iter().find(|r| r.id == 0).unwrap(),
        recs.iter().find(|r| r.id == 1).unwrap(),
    );
    // Both got their first token together; B, preempted, finishes after A.
    assert_eq!(a.first_token_s, b.first_token_s);
    assert!(b.finish_s > a.finish_s);
    assert_eq!(short.kv_in_use_at_end, vec![0]);
    assert_eq!(short.tokens_emitted, 16);
}

/// The per-request CSV streams the same requests the records hold, in completion
/// order, with times to the nanosecond.
#[test]
fn per_request_csv_streams_every_request() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cm = tiny_cost(&profile(1000.0, 500.0, 0.0));
    let rows = [(0.0, 4, 3), (0.001, 5, 2), (0.002, 6, 4)];
    let sc = single(continuous(), cm, 16, 100, trace_workload(&rows));
    let buf = Buf::default();
    let r = infersim::sim::run_with_csv(&sc, 1, OPTS, Box::new(buf.clone())).unwrap();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], infersim::metrics::REQUESTS_CSV_HEADER);
    let recs = r.records.unwrap();
    assert_eq!(lines.len(), 1 + recs.len());
    for (line, rec) in lines[1..].iter().zip(&recs) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0].parse::<u64>().unwrap(), rec.id);
        assert_eq!(f[4], format!("{:.9}", rec.finish_s));
        assert_eq!(f[6].parse::<u32>().unwrap(), rec.output_tokens);
    }
}
