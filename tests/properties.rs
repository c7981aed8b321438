//! Invariants on random small scenarios (proptest): every request finishes exactly
//! once, tokens are conserved, KV blocks in use never exceed the pool (checked after
//! every step) and return to zero, time never goes back, timestamps are ordered, the
//! same seed gives the same summary, and fast-forward equals step-by-step.
//! `PROPTEST_CASES=20000 cargo test --release --test properties` runs more cases.

mod common;

use common::*;
use infersim::gpu::Sharing;
use infersim::kv::KvGeometry;
use infersim::policy::Policy;
use infersim::router::RouterKind;
use infersim::sim::{run, InstanceSetup, RunOptions, Scenario};
use infersim::time::Dur;
use infersim::workload::{Arrival, LengthDist, Stop, Think, Workload};
use proptest::prelude::*;

const MAX_CTX: u64 = 64;

/// The tiny model with 2 layers (one of them with a sliding window of `window` tokens
/// when `window` > 0) on the slow GPU: its cost model and KV geometry for blocks of
/// `bs` tokens.
fn two_layers(window: u64, bs: u64) -> (infersim::cost::CostModel, KvGeometry) {
    let mut model = tiny_model();
    model.num_layers = 2;
    if window > 0 {
        model.sliding_window = window;
        model.sliding_window_layers = 1;
    }
    let cost =
        infersim::cost::CostModel::new(&model, &slow_gpu(), &profile(300.0, 200.0, 0.5)).unwrap();
    (cost, KvGeometry::new(&model, bs))
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Sequential),
        (1u32..8, 0u64..3_000_000, any::<bool>()).prop_map(|(b, w, p)| Policy::Static {
            batch_size: b,
            max_wait: Dur(w),
            pad_finished: p,
        }),
        (1u32..16, 0u32..100, any::<bool>(), any::<bool>()).prop_map(|(s, extra, chunked, pc)| {
            Policy::Continuous {
                max_num_seqs: s,
                max_num_batched_tokens: if chunked {
                    s.max(16) + extra
                } else {
                    MAX_CTX as u32 + extra
                },
                chunked_prefill: chunked,
                prefix_caching: pc,
            }
        }),
    ]
}

fn length() -> impl Strategy<Value = LengthDist> {
    prop_oneof![
        (1u64..40).prop_map(|v| LengthDist::Fixed { value: v }),
        (2u64..30, 0.0f64..0.9).prop_map(|(m, r)| LengthDist::Uniform {
            mean: m,
            range_ratio: r
        }),
        (1.0f64..30.0, 0.0f64..20.0).prop_map(|(m, s)| LengthDist::Lognormal { mean: m, std: s }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    scenario: Scenario,
    requests: u64,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        policy(),
        1u64..17,
        0u64..40,
        prop_oneof![Just(0u64), Just(8u64)],
        (1usize..4, 0usize..3),
        (0usize..8, prop_oneof![Just(0u64), 1u64..3_000_000]),
        (0usize..4, 1.0f64..3000.0, 1u64..200),
        (
            length(),
            length(),
            prop_oneof![Just(None), (1u32..5).prop_map(Some)],
            any::<bool>(),
        ),
        any::<u64>(),
        // Stack semantics (src/serving/stacks.rs): multi-step, CUDA-graph padding,
        // async scheduling; the continuous policy only uses them.
        (0usize..4, 0usize..3, any::<bool>()),
    )
        .prop_map(
            |(
                policy,
                bs,
                extra_blocks,
                window,
                (n_inst, sharing),
                (router, api_lat),
                (arr, rate, n),
                (li, lo, pool, greedy),
                seed,
                (steps, sizes, async_scheduling),
            )| {
                let stack = infersim::stacks::StackSemantics {
                    num_scheduler_steps: [1, 1, 2, 5][steps],
                    cuda_graph_sizes: [vec![], vec![1, 2, 4, 8], vec![2, 3]][sizes].clone(),
                    pad_mixed_steps: sizes == 2,
                    async_scheduling,
                    ..Default::default()
                };
                let (cost, geo) = two_layers(window, bs);
                let kv_blocks = MAX_CTX.div_ceil(bs) + extra_blocks;
                let closed = arr == 2;
                let arrival = match arr {
                    0 => Arrival::Poisson { rate },
                    1 => Arrival::Gamma {
                        rate,
                        burstiness: 0.3,
                    },
                    2 => Arrival::ClosedLoop {
                        users: 1 + (n % 7) as u32,
                        spawn_rate: rate,
                        think: Think::Exponential(Dur(1_000_000)),
                    },
                    _ => Arrival::Offline {
                        batch_size: 1 + (n % 9) as u32,
                    },
                };
                let sharing = match sharing {
                    0 => Sharing::Exclusive,
                    1 => Sharing::Mps,
                    _ => Sharing::TimeSlice {
                        quantum: Dur(2_000_000),
                        switch_cost: Dur(100_000),
                    },
                };
                let n_inst = if sharing == Sharing::Exclusive {
                    1
                } else {
                    n_inst
                };
                let router = [
                    RouterKind::RoundRobin,
                    RouterKind::Random,
                    RouterKind::LeastRequests,
                    RouterKind::LeastTokens,
                    RouterKind::PowerOfTwo,
                    RouterKind::Sticky,
                    RouterKind::from_name("prefix-aware").unwrap(),
                    RouterKind::from_name("session").unwrap(),
                ][router];
                let router = if router == RouterKind::Sticky && !closed {
                    RouterKind::RoundRobin
                } else {
                    router
                };
                let instances = (0..n_inst)
                    .map(|_| InstanceSetup {
                        gpu: 0,
                        policy: policy.clone(),
                        cost: cost.clone(),
                        geo,
                        kv_blocks,
                        active_thread_fraction: 0.7,
                        api_latency: Dur(api_lat),
                        scheduler: Default::default(),
                        stack: stack.clone(),
                    })
                    .collect();
                Case {
                    scenario: Scenario {
                        workload: Workload {
                            arrival,
                            input: li,
                            output: lo,
                            stop: Stop::Requests(n),
                            max_context: MAX_CTX,
                            prompt_pool: pool,
                            identical_outputs: greedy,
                            classes: Vec::new(),
                            shared: infersim::workload::SharedContext::None,
                        },
                        gpus: vec![sharing],
                        instances,
                        router,
                        front_end: Default::default(),
                        client: Default::default(),
                    },
                    requests: n,
                    seed,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_on_random_scenarios(c in case()) {
        let opts = RunOptions { keep_records: true, check_invariants: true, step_by_step: false };
        let r = run(&c.scenario, c.seed, opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Every request finishes exactly once.
        let recs = r.records.clone().unwrap();
        prop_assert_eq!(recs.len() as u64, c.requests);
        prop_assert_eq!(r.issued, c.requests);
        let mut ids: Vec<u64> = recs.iter().map(|x| x.id).collect();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(ids.len() as u64, c.requests);
        // Output tokens conserved: every emitted token belongs to a finished request.
        let out: u64 = recs.iter().map(|x| x.output_tokens as u64).sum();
        prop_assert_eq!(r.tokens_emitted, out);
        prop_assert_eq!(r.summary.total_output_tokens, out);
        // Served once, by exactly one instance.
        prop_assert_eq!(r.instances.iter().map(|s| s.served).sum::<u64>(), c.requests);
        // KV returns to zero.
        prop_assert!(r.kv_in_use_at_end.iter().all(|&u| u == 0), "{:?}", r.kv_in_use_at_end);
        // Timestamps in order; lengths within the context.
        for x in &recs {
            prop_assert!(x.arrival_s <= x.scheduled_s && x.scheduled_s <= x.first_token_s && x.first_token_s <= x.finish_s, "{:?}", x);
            prop_assert!((x.input_tokens + x.output_tokens) as u64 <= MAX_CTX);
        }
        itl_adds_up(&r)?;
        // Same seed, same result.
        let again = run(&c.scenario, c.seed, opts).unwrap();
        prop_assert_eq!(&again.summary, &r.summary);
        // Fast-forward (the default) and the step-by-step reference agree on every
        // request's timestamps, to the nanosecond, and on the whole summary.
        let reference = run(&c.scenario, c.seed, RunOptions { step_by_step: true, ..opts }).unwrap();
        prop_assert_eq!(&reference.summary, &r.summary);
        prop_assert_eq!(&reference.records, &r.records);
    }
}

/// Inter-token latencies add up, request by request, to the time from first token to
/// finish (preemption gaps included): their mean equals Σ(finish − first token) /
/// Σ(output − 1).
fn itl_adds_up(r: &infersim::sim::RunResult) -> Result<(), TestCaseError> {
    let recs = r.records.as_ref().expect("records kept");
    let gaps: f64 = recs.iter().map(|x| x.finish_s - x.first_token_s).sum();
    let itls: u64 = recs
        .iter()
        .map(|x| x.output_tokens.saturating_sub(1) as u64)
        .sum();
    if itls > 0 {
        let mean = r.summary.latency.itl.mean;
        let expect = gaps * 1e3 / itls as f64;
        prop_assert!(
            (mean - expect).abs() <= 1e-6 * expect.max(1.0),
            "mean ITL {} ms, expected {} ms",
            mean,
            expect
        );
    }
    Ok(())
}

/// Checks every step's bookkeeping and keeps the records.
const CHECKED: RunOptions = RunOptions {
    keep_records: true,
    check_invariants: true,
    step_by_step: false,
};

/// Runs `sc` fast-forwarded (with every step checked) and step by step, asserts that
/// both give the same records and summary, and returns the fast-forwarded run and the
/// reference.
fn same_as_reference(
    sc: &Scenario,
    seed: u64,
    what: &str,
) -> (infersim::sim::RunResult, infersim::sim::RunResult) {
    let fast = run(sc, seed, CHECKED).unwrap();
    let reference = run(
        sc,
        seed,
        RunOptions {
            step_by_step: true,
            ..CHECKED
        },
    )
    .unwrap();
    assert_eq!(fast.summary, reference.summary, "{what}");
    assert_eq!(fast.records, reference.records, "{what}");
    (fast, reference)
}

/// Long decode stretches (few closed-loop users, long outputs) on a model with a
/// sliding window, a tight KV pool (so stretches end in preemptions) and each policy:
/// most steps go through the decode-stretch fast-forward, and every request's
/// timestamps and the whole summary equal the step-by-step reference's.
#[test]
fn decode_stretches_are_fast_forwarded_exactly() {
    let (cost, geo) = two_layers(48, 8);
    let policies = [
        continuous(),
        Policy::Continuous {
            max_num_seqs: 3,
            max_num_batched_tokens: 64,
            chunked_prefill: true,
            prefix_caching: true,
        },
        Policy::Static {
            batch_size: 3,
            max_wait: Dur(1_000_000),
            pad_finished: true,
        },
        Policy::Sequential,
    ];
    let mut preempted = 0;
    for (p, policy) in policies.iter().enumerate() {
        // 60 blocks hold about two full-length sequences (the window layer stops
        // growing at 48 tokens), not four; 1,000 hold them all.
        for kv_blocks in [60, 1_000] {
            let workload = Workload {
                arrival: Arrival::ClosedLoop {
                    users: 4,
                    spawn_rate: 50.0,
                    think: Think::Exponential(Dur(20_000_000)),
                },
                input: LengthDist::Uniform {
                    mean: 40,
                    range_ratio: 0.5,
                },
                output: LengthDist::Uniform {
                    mean: 300,
                    range_ratio: 0.3,
                },
                stop: Stop::Requests(200),
                max_context: 400,
                prompt_pool: Some(3),
                identical_outputs: true,
                classes: Vec::new(),
                shared: infersim::workload::SharedContext::None,
            };
            let scenario = alone(workload, policy.clone(), &cost, geo, kv_blocks);
            let (fast, reference) =
                same_as_reference(&scenario, 7, &format!("policy {p}, {kv_blocks} blocks"));
            // With a tight pool requests wait for blocks, and a step may admit one,
            // so fewer steps are pure decodes.
            let steps = fast.summary.steps;
            let share = if kv_blocks == 60 { 4 } else { 7 };
            assert!(
                fast.fast_forwarded_steps * 10 >= steps * share,
                "policy {p}, {kv_blocks} blocks: only {} of {steps} steps fast-forwarded",
                fast.fast_forwarded_steps
            );
            assert_eq!(reference.fast_forwarded_steps, 0);
            preempted += fast.summary.preemptions;
        }
    }
    assert!(preempted > 0, "the tight pools should have preempted");
}

/// Identical outputs (greedy sampling) with a prompt pool and a pool of KV blocks too
/// small for the load: preempted requests resume in their siblings' blocks, lenders
/// finish or are preempted while borrowers still reference their blocks (which then
/// pass to a borrower), and the bookkeeping holds after every step (checked), every
/// request finishes, blocks return to zero, and fast-forward equals step-by-step;
/// with blocks for all, identical outputs change nothing.
#[test]
fn resumed_requests_borrow_their_siblings_blocks_exactly() {
    let bs = 4;
    let (cost, geo) = two_layers(0, bs);
    let policy = Policy::Continuous {
        max_num_seqs: 12,
        max_num_batched_tokens: 64,
        chunked_prefill: true,
        prefix_caching: true,
    };
    let scenario = |identical_outputs: bool, kv_blocks: u64| {
        let workload = Workload {
            arrival: Arrival::Poisson { rate: 400.0 },
            input: LengthDist::Fixed { value: 10 },
            output: LengthDist::Uniform {
                mean: 40,
                range_ratio: 0.5,
            },
            stop: Stop::Requests(300),
            max_context: MAX_CTX,
            prompt_pool: Some(2),
            identical_outputs,
            classes: Vec::new(),
            shared: infersim::workload::SharedContext::None,
        };
        alone(workload, policy.clone(), &cost, geo, kv_blocks)
    };
    let mut loans = 0;
    for kv_blocks in [40, 60, 90] {
        let (greedy, _) = same_as_reference(&scenario(true, kv_blocks), 3, "greedy");
        assert_eq!(greedy.records.as_ref().unwrap().len(), 300);
        assert!(greedy.kv_in_use_at_end.iter().all(|&u| u == 0));
        let sampled = run(&scenario(false, kv_blocks), 3, CHECKED).unwrap();
        let hits = greedy.instances[0].sibling_hits;
        assert!(greedy.summary.preemptions > 0);
        assert!(hits > 0, "{kv_blocks} blocks: no resumed request borrowed");
        assert_eq!(sampled.instances[0].sibling_hits, 0);
        // Every resume from a sibling finds at least one whole block beyond the
        // prompt's: it reports more cache hits than the resumes themselves.
        assert!(greedy.summary.prefix_cache_hit_tokens >= hits * bs);
        loans += hits;
    }
    assert!(loans > 0);
    // With blocks for everyone nobody is preempted, nothing is borrowed, and identical
    // outputs change nothing.
    let greedy = run(&scenario(true, 400), 3, CHECKED).unwrap();
    let sampled = run(&scenario(false, 400), 3, CHECKED).unwrap();
    assert_eq!(greedy.summary.preemptions, 0);
    assert_eq!(greedy.summary, sampled.summary);
}

/// Scenarios built to preempt with identical outputs: continuous batching with the
/// prefix cache, a prompt pool, greedy sampling and a pool of blocks barely larger than
/// one sequence, on one or two instances.
fn greedy_case() -> impl Strategy<Value = (Scenario, u64, u64)> {
    (
        (1u64..9, 0u64..30, 1u32..12, any::<bool>()),
        (1u32..4, length(), length()),
        (0usize..2, 1usize..3, 20u64..150, 50.0f64..2000.0),
        any::<u64>(),
    )
        .prop_map(
            |((bs, extra, seqs, chunked), (pool, li, lo), (arr, n_inst, n, rate), seed)| {
                let (cost, geo) = two_layers(0, bs);
                let policy = Policy::Continuous {
                    max_num_seqs: seqs,
                    max_num_batched_tokens: if chunked {
                        seqs.max(16)
                    } else {
                        MAX_CTX as u32
                    },
                    chunked_prefill: chunked,
                    prefix_caching: true,
                };
                let workload = Workload {
                    arrival: if arr == 0 {
                        Arrival::Poisson { rate }
                    } else {
                        Arrival::ClosedLoop {
                            users: 2 + (n % 6) as u32,
                            spawn_rate: rate,
                            think: Think::Exponential(Dur(500_000)),
                        }
                    },
                    input: li,
                    output: lo,
                    stop: Stop::Requests(n),
                    max_context: MAX_CTX,
                    prompt_pool: Some(pool),
                    identical_outputs: true,
                    classes: Vec::new(),
                    shared: infersim::workload::SharedContext::None,
                };
                let mut sc = alone(workload, policy, &cost, geo, MAX_CTX.div_ceil(bs) + extra);
                if n_inst == 2 {
                    sc.gpus = vec![Sharing::Mps];
                    let second = sc.instances[0].clone();
                    sc.instances.push(second);
                }
                (sc, n, seed)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    /// Loans of blocks between siblings keep every invariant (checked after every
    /// step), every request finishes once, blocks return to zero, inter-token gaps add
    /// up, and fast-forward equals step-by-step.
    #[test]
    fn greedy_sharing_holds_on_random_tight_pools((sc, n, seed) in greedy_case()) {
        let r = run(&sc, seed, CHECKED).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let recs = r.records.clone().unwrap();
        prop_assert_eq!(recs.len() as u64, n);
        prop_assert!(r.kv_in_use_at_end.iter().all(|&u| u == 0));
        itl_adds_up(&r)?;
        let reference = run(&sc, seed, RunOptions { step_by_step: true, ..CHECKED }).unwrap();
        prop_assert_eq!(&reference.summary, &r.summary);
        prop_assert_eq!(&reference.records, &r.records);
    }
}
