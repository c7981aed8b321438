//! Shared prefixes and multi-turn sessions, hand-worked: a session turn's KV left in
//! the prefix cache serves the next turn (and does not once evicted), shared system
//! prompts are computed once per group, traces that name groups and sessions, routers
//! that follow a session's context; and on random small scenarios with these
//! workloads, every invariant after every step and fast-forward = step-by-step.
//!
//! The rule checked: a request shares the full blocks of its first
//! `min(prefix_tokens, input - 1)` prompt tokens; a finished session turn leaves the
//! full blocks of its `input + output - 1` KV tokens cached for the next turn.

mod common;

use common::*;
use infersim::gpu::Sharing;
use infersim::kv::KvGeometry;
use infersim::policy::Policy;
use infersim::router::RouterKind;
use infersim::sim::{run, InstanceSetup, RunOptions, RunResult, Scenario};
use infersim::time::Dur;
use infersim::workload::{
    parse_trace, Arrival, LengthDist, Sessions, SharedContext, SharedPrefix, Stop, Think, Workload,
};
use proptest::prelude::*;
use std::sync::Arc;

const CHECKED: RunOptions = RunOptions {
    keep_records: true,
    check_invariants: true,
    step_by_step: false,
};

fn caching() -> Policy {
    Policy::Continuous {
        max_num_seqs: 256,
        max_num_batched_tokens: 2048,
        chunked_prefill: true,
        prefix_caching: true,
    }
}

/// A workload replaying the trace CSV `text`.
fn trace(text: &str) -> Workload {
    let t = parse_trace(text, 1.0, "t.csv", "workload.trace").unwrap();
    Workload {
        stop: Stop::Requests(t.rows.len() as u64),
        arrival: Arrival::Trace(Arc::new(t)),
        ..trace_workload(&[])
    }
}

/// Runs `sc` with every step checked, and step by step; both must agree exactly.
fn checked(sc: &Scenario) -> RunResult {
    let fast = run(sc, 3, CHECKED).unwrap();
    let reference = run(
        sc,
        3,
        RunOptions {
            step_by_step: true,
            ..CHECKED
        },
    )
    .unwrap();
    assert_eq!(fast.summary, reference.summary);
    assert_eq!(fast.records, reference.records);
    assert!(fast.kv_in_use_at_end.iter().all(|&u| u == 0));
    fast
}

fn one_instance(w: Workload, kv_blocks: u64) -> Scenario {
    single(
        caching(),
        tiny_cost(&profile(100.0, 0.0, 0.0)),
        16,
        kv_blocks,
        w,
    )
}

/// Turn 1: prompt 100, output 50 (KV of 149 tokens: 9 full blocks of 16 = 144
/// tokens kept). Turn 2: prompt 150 + 30 = 180 with prefix_tokens 150: its shared
/// blocks are floor(min(150, 179) / 16) = 9, all cached: a hit of 144 tokens, 36
/// computed.
#[test]
fn a_two_turn_session_hits_the_previous_turns_context() {
    let w = trace("arrival_s,input_tokens,output_tokens,session_id\n0,100,50,a\n100,180,30,a\n");
    let r = checked(&one_instance(w, 1000));
    assert_eq!(r.summary.prefix_cache_hit_tokens, 144);
    assert_eq!(r.summary.prefill_tokens_computed, 100 + 36);
    assert_eq!(r.summary.prefix_cache_hit_rate, Some(144.0 / 280.0));
    assert_eq!(r.summary.completed, 2);
}

/// The same two turns with a 320-token request between them on a pool of 20
/// blocks: it needs all 20 blocks, so the LRU free queue hands it the kept blocks
/// too and turn 2 finds nothing (a 200-block pool keeps them: 144 again).
#[test]
fn an_evicted_context_is_not_hit() {
    let text =
        "arrival_s,input_tokens,output_tokens,session_id\n0,100,50,a\n50,310,10,\n100,180,30,a\n";
    let r = checked(&one_instance(trace(text), 20));
    assert_eq!(r.summary.prefix_cache_hit_tokens, 0);
    assert_eq!(r.summary.prefill_tokens_computed, 100 + 310 + 180);
    let r = checked(&one_instance(trace(text), 200));
    assert_eq!(r.summary.prefix_cache_hit_tokens, 144);
    assert_eq!(r.summary.prefill_tokens_computed, 100 + 310 + 36);
}

/// A generated session of 2 turns: prompt 100 and output 50, then 150 + 100 = 250
/// tokens; the hit is the same 9 blocks (144 tokens), 106 computed.
#[test]
fn generated_sessions_carry_the_conversation() {
    let w = Workload {
        arrival: Arrival::Poisson { rate: 1.0 },
        input: LengthDist::Fixed { value: 100 },
        output: LengthDist::Fixed { value: 50 },
        stop: Stop::Requests(2),
        shared: SharedContext::Sessions(Sessions {
            turns: LengthDist::Fixed { value: 2 },
            think: Think::Constant(Dur::from_secs_f64(2.0)),
        }),
        ..trace_workload(&[])
    };
    let r = checked(&one_instance(w, 1000));
    let recs = r.records.as_ref().unwrap();
    assert_eq!(
        recs.iter()
            .map(|x| (x.input_tokens, x.output_tokens))
            .collect::<Vec<_>>(),
        [(100, 50), (250, 50)]
    );
    // The second turn is sent 2 s after the first finishes.
    assert!((recs[1].arrival_s - recs[0].finish_s - 2.0).abs() < 1e-9);
    assert_eq!(r.summary.prefix_cache_hit_tokens, 144);
    assert_eq!(r.summary.prefill_tokens_computed, 100 + 106);
}

/// 2 groups × 3 prompts, a 40-token system prompt, 20-token questions (60-token
/// prompts), one request at a time: each group's first request computes all 60
/// tokens and shares floor(min(40, 59) / 16) = 2 blocks; the 4 others hit 32 tokens
/// and compute 28. Prefill: 2·40 + 6·20 (G·S + all questions) + 4·8 (the system
/// prompt's partial block, recomputed) = 232; hits 128.
#[test]
fn shared_prefix_groups_compute_each_system_prompt_once() {
    let w = Workload {
        arrival: Arrival::Constant { rate: 0.1 },
        input: LengthDist::Fixed { value: 1 },
        output: LengthDist::Fixed { value: 4 },
        stop: Stop::Requests(6),
        shared: SharedContext::Prefix(SharedPrefix {
            num_groups: 2,
            num_prompts_per_group: 3,
            system_prompt_len: 40,
            question_len: LengthDist::Fixed { value: 20 },
        }),
        ..trace_workload(&[])
    };
    let r = checked(&one_instance(w.clone(), 1000));
    assert_eq!(r.summary.prefill_tokens_computed, 232);
    assert_eq!(r.summary.prefix_cache_hit_tokens, 128);
    assert_eq!(r.summary.total_input_tokens, 6 * 60);
    // Without the prefix cache every prompt is computed whole, and the rate says 0.
    let mut sc = one_instance(w, 1000);
    sc.instances[0].policy = Policy::Continuous {
        max_num_seqs: 256,
        max_num_batched_tokens: 2048,
        chunked_prefill: true,
        prefix_caching: false,
    };
    let r = checked(&sc);
    assert_eq!(r.summary.prefill_tokens_computed, 360);
    assert_eq!(r.summary.prefix_cache_hit_rate, Some(0.0));
}

/// A trace's prefix groups: rows of group `s` share 40 tokens (2 blocks), the row
/// without a group shares nothing. Rows 10 s apart: 60 + 28 + 60 + 28 computed.
#[test]
fn trace_prefix_groups_share_their_prefix() {
    let text = "arrival_s,input_tokens,output_tokens,prefix_group,prefix_tokens\n\
                0,60,4,s,40\n10,60,4,s,40\n20,60,4,,\n30,60,4,s,40\n";
    let r = checked(&one_instance(trace(text), 1000));
    assert_eq!(r.summary.prefix_cache_hit_tokens, 64);
    assert_eq!(r.summary.prefill_tokens_computed, 60 + 28 + 60 + 28);
}

/// Two instances: a session's second turn goes where its context is with the
/// prefix-aware and session routers; round-robin sends it to the other instance,
/// which has none of it.
#[test]
fn routers_follow_the_sessions_context() {
    let text = "arrival_s,input_tokens,output_tokens,session_id\n0,100,50,a\n100,180,30,a\n";
    let hits = |router: &str| {
        let mut sc = one_instance(trace(text), 1000);
        sc.gpus = vec![Sharing::Exclusive, Sharing::Exclusive];
        let mut second = sc.instances[0].clone();
        second.gpu = 1;
        sc.instances.push(second);
        sc.router = RouterKind::from_name(router).unwrap();
        checked(&sc).summary.prefix_cache_hit_tokens
    };
    assert_eq!(hits("prefix-aware"), 144);
    assert_eq!(hits("session"), 144);
    assert_eq!(hits("round-robin"), 0);
}

/// Closed-loop users run sessions back to back; `num_requests` counts turns.
#[test]
fn closed_loop_users_run_sessions_back_to_back() {
    let w = Workload {
        arrival: Arrival::ClosedLoop {
            users: 2,
            spawn_rate: f64::INFINITY,
            think: Think::Constant(Dur::from_secs_f64(1.0)),
        },
        input: LengthDist::Fixed { value: 40 },
        output: LengthDist::Fixed { value: 8 },
        stop: Stop::Requests(9),
        shared: SharedContext::Sessions(Sessions {
            turns: LengthDist::Fixed { value: 3 },
            think: Think::Constant(Dur::from_secs_f64(0.5)),
        }),
        ..trace_workload(&[])
    };
    let r = checked(&one_instance(w, 1000));
    let recs = r.records.as_ref().unwrap();
    assert_eq!(recs.len(), 9);
    // Each user's turns grow 40, 88, 136, then a new session starts at 40.
    let mut lens: Vec<u32> = recs.iter().map(|x| x.input_tokens).collect();
    lens.sort();
    assert_eq!(lens, [40, 40, 40, 40, 88, 88, 88, 136, 136]);
    // Turn 2 hits floor(47 / 16) = 2 blocks, turn 3 floor(95 / 16) = 5.
    assert_eq!(r.summary.prefix_cache_hit_tokens, 3 * 32 + 2 * 80);
}

fn session_case() -> impl Strategy<Value = (Scenario, u64)> {
    (
        (1u64..40, 1u64..24, 1u64..6, 0u64..3),
        (8u64..200, prop::sample::select(vec![4u64, 8, 16])),
        (1u32..5, 1u32..4, 1u32..40),
        (0u8..4, 1usize..3, 0u64..1000, 1u32..5),
    )
        .prop_map(
            |((li, lo, turns, think_ms), (kv, bs), (g, m, sys), (kind, n_inst, seed, chunk))| {
                let shared = if kind < 2 {
                    SharedContext::Sessions(Sessions {
                        turns: LengthDist::Uniform {
                            mean: turns,
                            range_ratio: 0.5,
                        },
                        think: Think::Exponential(Dur(think_ms * 1_000_000)),
                    })
                } else {
                    SharedContext::Prefix(SharedPrefix {
                        num_groups: g,
                        num_prompts_per_group: m,
                        system_prompt_len: sys,
                        question_len: LengthDist::Uniform {
                            mean: li,
                            range_ratio: 0.5,
                        },
                    })
                };
                let arrival = if kind % 2 == 0 {
                    Arrival::Poisson { rate: 20.0 }
                } else {
                    Arrival::ClosedLoop {
                        users: 3,
                        spawn_rate: 50.0,
                        think: Think::Constant(Dur(1_000_000)),
                    }
                };
                let w = Workload {
                    arrival,
                    input: LengthDist::Uniform {
                        mean: li,
                        range_ratio: 0.5,
                    },
                    output: LengthDist::Uniform {
                        mean: lo,
                        range_ratio: 0.5,
                    },
                    stop: Stop::Requests(30),
                    max_context: 160,
                    shared,
                    ..trace_workload(&[])
                };
                let policy = Policy::Continuous {
                    max_num_seqs: 4,
                    max_num_batched_tokens: 16 * chunk,
                    chunked_prefill: true,
                    prefix_caching: true,
                };
                let geo = KvGeometry::new(&tiny_model(), bs);
                let cost = tiny_cost(&profile(100.0, 0.0, 0.0));
                let inst = InstanceSetup {
                    gpu: 0,
                    policy,
                    cost,
                    geo,
                    kv_blocks: kv.max(160_u64.div_ceil(bs)),
                    active_thread_fraction: 1.0,
                    api_latency: Dur(0),
                    scheduler: Default::default(),
                    stack: Default::default(),
                };
                let sc = Scenario {
                    workload: w,
                    gpus: vec![Sharing::Exclusive; n_inst],
                    instances: (0..n_inst)
                        .map(|i| InstanceSetup {
                            gpu: i,
                            ..inst.clone()
                        })
                        .collect(),
                    router: if n_inst == 1 {
                        RouterKind::RoundRobin
                    } else {
                        RouterKind::from_name("prefix-aware").unwrap()
                    },
                    front_end: Default::default(),
                    client: Default::default(),
                };
                (sc, seed)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    /// Sessions and shared prefixes on tight pools: every invariant after every step,
    /// every request finishes once, blocks return to zero, every prompt token is
    /// computed or hit, and fast-forward equals step-by-step.
    #[test]
    fn sessions_and_shared_prefixes_keep_every_invariant((sc, seed) in session_case()) {
        let r = run(&sc, seed, CHECKED).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let recs = r.records.clone().unwrap();
        prop_assert_eq!(recs.len(), 30);
        prop_assert!(r.kv_in_use_at_end.iter().all(|&u| u == 0));
        // Every prompt token is computed or found in the cache: exactly once without
        // preemptions (a resumed request also recomputes or finds its outputs).
        let prompts: u64 = recs.iter().map(|x| x.input_tokens as u64).sum();
        let seen = r.summary.prefix_cache_hit_tokens + r.summary.prefill_tokens_computed;
        if r.summary.preemptions == 0 {
            prop_assert_eq!(seen, prompts);
        } else {
            prop_assert!(seen >= prompts);
        }
        let reference = run(&sc, seed, RunOptions { step_by_step: true, ..CHECKED }).unwrap();
        prop_assert_eq!(&reference.summary, &r.summary);
        prop_assert_eq!(&reference.records, &r.records);
    }
}

/// The run guard counts a timed open-loop session workload's turns: 2 sessions/s ×
/// 4 turns each = 8 requests/s, × 100 s (+1), 50 output tokens per turn.
#[test]
fn the_estimate_counts_every_turn() {
    let text = r#"name = "t"
[hardware]
gpu = "a100-80gb"
[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 8192
[workload]
arrival = "poisson"
rate_per_s = 2.0
duration_s = 100.0
input_tokens = { dist = "fixed", value = 100 }
output_tokens = { dist = "fixed", value = 50 }
[workload.sessions]
turns = { dist = "fixed", value = 4 }
"#;
    let exp = infersim::config::parse_experiment(text, "t.toml".as_ref()).expect("valid");
    let e = infersim::experiment::estimate(&exp, 1);
    assert!((e.requests - 801.0).abs() < 1e-9, "{}", e.requests);
    assert!((e.tokens - 801.0 * 50.0).abs() < 1e-6, "{}", e.tokens);
}

/// The shipped shared-prefix and multi-turn experiments, every point: invariants
/// after every step, blocks back to zero, fast-forward = step-by-step; and their
/// workloads do hit the cache.
#[test]
fn shipped_experiments_keep_every_invariant() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["shared-prefix", "multi-turn"] {
        let path = root.join(format!("experiments/{name}.toml"));
        let exp = infersim::config::load_experiment(&path).expect("valid");
        for p in &exp.points {
            let r = checked(&p.scenario);
            assert!(r.summary.prefix_cache_hit_rate.is_some(), "{name}");
            assert_eq!(r.summary.completed, r.issued, "{name}");
        }
    }
}
