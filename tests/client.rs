//! The front end as a resource and the client's behaviour, on hand-worked timelines:
//! client timeouts with the server continuing or aborting (exact failed counts and
//! wasted tokens), the `max_concurrency` semaphore (latency from sending), the rate
//! limiter, the front end alone as an M/D/1 queue, and its saturated throughput.

mod common;

use common::{profile, single, tiny_cost, tiny_model, trace_workload};
use infersim::cost::CostModel;
use infersim::frontend::{
    ClientSetup, FrontEndMode, FrontEndSetup, OnTimeout, OverLimit, RateLimit,
};
use infersim::policy::Policy;
use infersim::sim::{run, RunOptions, Scenario};
use infersim::specs::GpuSpec;
use infersim::time::Dur;
use infersim::workload::{Arrival, LengthDist, Stop, Think, Workload};

/// A GPU so fast that the tiny model's kernels round to 0 ns: a step lasts exactly
/// its CPU overhead.
fn instant_gpu() -> GpuSpec {
    GpuSpec {
        tensor_tflops: 1e9,
        memory_bandwidth_gbps: 1e12,
        ..common::slow_gpu()
    }
}

/// Steps of exactly `step_us` (serial CPU), GPU time 0.
fn cpu_cost(step_us: f64) -> CostModel {
    CostModel::new(&tiny_model(), &instant_gpu(), &profile(0.0, step_us, 0.0)).unwrap()
}

fn opts() -> RunOptions {
    RunOptions {
        keep_records: true,
        check_invariants: true,
        step_by_step: false,
    }
}

/// Both paths (fast-forward and step by step) give the same summary; returns it.
fn both(sc: &Scenario, seed: u64) -> infersim::metrics::Summary {
    let fast = run(sc, seed, opts()).expect("runs");
    let slow = run(
        sc,
        seed,
        RunOptions {
            step_by_step: true,
            ..opts()
        },
    )
    .expect("runs");
    assert_eq!(fast.summary, slow.summary, "fast-forward = step by step");
    fast.summary
}

/// Sequential engine, 10 ms steps; four requests sent at 0 of 5 output tokens each
/// (50 ms apiece: done at 50, 100, 150, 200 ms); the client gives up after 120 ms.
fn timeout_case(on_timeout: OnTimeout) -> Scenario {
    let rows = [(0.0, 4, 5); 4];
    let mut sc = single(
        Policy::Sequential,
        cpu_cost(10_000.0),
        16,
        1000,
        trace_workload(&rows),
    );
    sc.client = ClientSetup {
        max_concurrency: None,
        timeout: Some(Dur::from_millis_f64(120.0)),
        on_timeout,
        slo: None,
    };
    sc
}

#[test]
fn timeouts_with_the_server_continuing_waste_whole_requests() {
    let s = both(&timeout_case(OnTimeout::Continue), 0);
    let c = s.client.expect("client keys");
    // Requests 0 and 1 finish at 50 and 100 ms; 2 and 3 would at 150 and 200 ms,
    // after their 120 ms timeout: abandoned, but computed to the end (10 tokens).
    assert_eq!((s.completed, c.sent, c.failed, c.timed_out), (2, 4, 2, 2));
    assert_eq!((c.rejected, c.wasted_output_tokens), (0, 10));
    assert_eq!(c.success_rate, 0.5);
    // Metrics over the successful requests only: E2E 50 and 100 ms.
    assert_eq!(s.latency.e2el.mean, 75.0);
    assert_eq!(s.total_output_tokens, 10);
    // The server worked until 200 ms: 20 steps.
    assert_eq!(s.steps, 20);
}

#[test]
fn timeouts_with_abort_free_the_server_at_the_timeout() {
    let s = both(&timeout_case(OnTimeout::Abort), 0);
    let c = s.client.expect("client keys");
    // At 120 ms request 2 has run two steps (tokens at 110 and 120 ms) and is
    // dropped; request 3 is dropped from the queue before it started.
    assert_eq!((s.completed, c.failed, c.timed_out), (2, 2, 2));
    assert_eq!(c.wasted_output_tokens, 2);
    assert_eq!(s.steps, 12);
    assert_eq!(s.latency.e2el.mean, 75.0);
}

#[test]
fn abort_keeps_the_engine_consistent_under_every_policy() {
    // 40 requests within 40 ms and a timeout that cuts many in mid-prefill,
    // mid-decode or in the queue, under continuous batching (with the prefix cache, a
    // prompt pool and greedy sampling, so that aborted sequences lend and borrow
    // blocks) and under padded static batches: the invariants are checked after every
    // step (check_invariants), the KV pool ends empty, every request ends once, and
    // fast-forward equals step by step.
    let continuous = Policy::Continuous {
        max_num_seqs: 8,
        max_num_batched_tokens: 64,
        chunked_prefill: true,
        prefix_caching: true,
    };
    let padded = Policy::Static {
        batch_size: 4,
        max_wait: Dur(0),
        pad_finished: true,
    };
    for (policy, greedy) in [
        (continuous.clone(), false),
        (continuous, true),
        (padded, false),
    ] {
        let w = Workload {
            arrival: Arrival::Poisson { rate: 1000.0 },
            input: LengthDist::Uniform {
                mean: 24,
                range_ratio: 0.5,
            },
            output: LengthDist::Uniform {
                mean: 24,
                range_ratio: 0.9,
            },
            prompt_pool: Some(3),
            identical_outputs: greedy,
            ..poisson(1000.0, 40)
        };
        let mut sc = single(policy.clone(), cpu_cost(1_000.0), 4, 200, w);
        sc.client = ClientSetup {
            max_concurrency: None,
            timeout: Some(Dur::from_millis_f64(40.0)),
            on_timeout: OnTimeout::Abort,
            slo: None,
        };
        for seed in 0..4 {
            let r = run(&sc, seed, opts()).expect("runs");
            assert!(r.kv_in_use_at_end.iter().all(|&u| u == 0), "{policy:?}");
            let c = r.summary.client.clone().unwrap();
            assert!(c.timed_out > 0, "{policy:?} seed {seed}: no timeout");
            assert_eq!(r.summary.completed + c.failed, 40);
            // Aborted work is at most what the abandoned requests asked for.
            assert!(r.tokens_emitted >= r.summary.total_output_tokens + c.wasted_output_tokens);
            both(&sc, seed);
        }
    }
}

#[test]
fn an_abort_waits_for_the_end_of_a_multi_step_block() {
    // vLLM 0.6 multi-step, 4 steps a block: one request of 12 tokens whose client
    // gives up after 25 ms, mid-block. The engine drops it only at a block boundary
    // (vLLM 0.6 applies aborts when it next calls schedule()): its prefill step emits
    // 1 token, each block 4, so the tokens wasted are 1 + 4 m.
    let rows = [(0.0, 4, 12)];
    let policy = Policy::Continuous {
        max_num_seqs: 256,
        max_num_batched_tokens: 2048,
        chunked_prefill: false,
        prefix_caching: false,
    };
    let mut sc = single(policy, cpu_cost(10_000.0), 16, 1000, trace_workload(&rows));
    sc.instances[0].stack = infersim::stacks::StackSemantics {
        num_scheduler_steps: 4,
        ..Default::default()
    };
    sc.client = ClientSetup {
        max_concurrency: None,
        timeout: Some(Dur::from_millis_f64(25.0)),
        on_timeout: OnTimeout::Abort,
        slo: None,
    };
    let r = run(&sc, 0, opts()).expect("runs");
    let c = r.summary.client.clone().unwrap();
    assert_eq!((r.summary.completed, c.timed_out), (0, 1));
    assert_eq!(c.wasted_output_tokens, r.tokens_emitted);
    assert!(c.wasted_output_tokens < 12 && (c.wasted_output_tokens - 1) % 4 == 0);
    assert!(r.kv_in_use_at_end.iter().all(|&u| u == 0));
    both(&sc, 0);
}

#[test]
fn a_request_whose_stream_ends_after_the_timeout_fails() {
    // The streaming timeline below (the engine done at 34 ms, the client seeing the
    // last chunk at 59 ms) with a 50 ms timeout: the engine finished in time, the
    // client did not; all 3 tokens are wasted.
    let mut sc = single(
        Policy::Sequential,
        cpu_cost(10_000.0),
        16,
        1000,
        trace_workload(&[(0.0, 4, 3), (0.2, 4, 3)]),
    );
    sc.front_end = queue(1, 4000.0, 0.0, 15_000.0);
    sc.client.timeout = Some(Dur::from_millis_f64(50.0));
    let s = run(&sc, 0, opts()).expect("runs").summary;
    let c = s.client.unwrap();
    assert_eq!(
        (s.completed, c.timed_out, c.wasted_output_tokens),
        (0, 2, 6)
    );
    // The run lasts until the second request's timeout, at 250 ms.
    assert!((s.duration - 0.25).abs() < 1e-15);
    // 60 ms: it succeeds; the second request, sent at 200 ms, is seen at 259 ms.
    sc.client.timeout = Some(Dur::from_millis_f64(60.0));
    let s = run(&sc, 0, opts()).expect("runs").summary;
    assert_eq!((s.completed, s.client.unwrap().failed), (2, 0));
    assert_eq!(s.latency.e2el.mean, 59.0);
    assert!((s.duration - 0.259).abs() < 1e-15);
}

#[test]
fn max_concurrency_measures_latency_from_sending() {
    // Three requests of one token (one 10 ms step each) arrive at 0.
    let rows = [(0.0, 4, 1); 3];
    let mut sc = single(
        Policy::Sequential,
        cpu_cost(10_000.0),
        16,
        1000,
        trace_workload(&rows),
    );
    // Without a limit they queue in the engine: E2E 10, 20, 30 ms.
    assert_eq!(both(&sc, 0).latency.e2el.mean, 20.0);
    // With one in flight they queue in the client, sent at 0, 10, 20 ms: 10 ms each.
    sc.client.max_concurrency = Some(1);
    let s = both(&sc, 0);
    assert_eq!(s.latency.e2el.mean, 10.0);
    assert_eq!(s.latency.ttft.p99, 10.0);
    assert!((s.duration - 0.03).abs() < 1e-15);
    assert_eq!(s.client.unwrap().success_rate, 1.0);
}

#[test]
fn the_rate_limiter_rejects_what_the_bucket_cannot_cover() {
    // Ten requests at 0 and one at 1.5 s; 1 request/s with a bucket of 2: the
    // first two pass, eight are rejected, the last finds 1.5 tokens.
    let mut rows = vec![(0.0, 4, 1); 10];
    rows.push((1.5, 4, 1));
    let mut sc = single(
        Policy::Sequential,
        cpu_cost(10_000.0),
        16,
        1000,
        trace_workload(&rows),
    );
    sc.front_end.rate_limit = Some(RateLimit {
        per_s: 1.0,
        burst: 2.0,
        over: OverLimit::Reject,
    });
    let s = both(&sc, 0);
    let c = s.client.unwrap();
    assert_eq!((c.sent, c.rejected, c.failed, s.completed), (11, 8, 8, 3));
    assert!((c.success_rate - 3.0 / 11.0).abs() < 1e-15);
    // Dropped instead of rejected: the eight wait for the client's 2 s timeout, and
    // the run lasts until the client has seen them fail.
    sc.front_end.rate_limit.as_mut().unwrap().over = OverLimit::Drop;
    sc.client.timeout = Some(Dur::from_millis_f64(2000.0));
    let s = both(&sc, 0);
    let c = s.client.unwrap();
    assert_eq!(
        (c.rejected, c.timed_out, c.failed, s.completed),
        (0, 8, 8, 3)
    );
    assert_eq!((s.duration, c.wasted_output_tokens), (2.0, 0));
}

/// A queueing front end of `servers` API servers with these costs (µs).
fn queue(servers: u32, request_us: f64, token_us: f64, chunk_us: f64) -> FrontEndSetup {
    FrontEndSetup {
        mode: FrontEndMode::Queue,
        api_servers: servers,
        request_s: request_us * 1e-6,
        prompt_token_s: token_us * 1e-6,
        chunk_s: chunk_us * 1e-6,
        rate_limit: None,
    }
}

#[test]
fn a_queue_front_end_at_zero_cost_changes_nothing() {
    let rows: Vec<(f64, u32, u32)> = (0..30)
        .map(|i| (i as f64 * 0.003, 10 + i % 5, 3 + i % 11))
        .collect();
    let mut sc = single(
        common::continuous(),
        tiny_cost(&profile(300.0, 200.0, 0.5)),
        4,
        500,
        trace_workload(&rows),
    );
    let before = run(&sc, 1, opts()).expect("runs");
    // One server: with several, each step's token gaps are split into one share per
    // server, and the ITL statistics' sums then round differently.
    sc.front_end = queue(1, 0.0, 0.0, 0.0);
    let after = run(&sc, 1, opts()).expect("runs");
    assert_eq!(before.records, after.records);
    let mut s = after.summary.clone();
    let fe = s.front_end.take().expect("front-end keys");
    assert_eq!(fe.api_server_count, 1);
    assert_eq!(fe.api_server_busy_fraction, [0.0]);
    assert_eq!(s, before.summary);
    // Two servers: the same requests, timed the same.
    sc.front_end = queue(2, 0.0, 0.0, 0.0);
    assert_eq!(run(&sc, 1, opts()).expect("runs").records, before.records);
}

#[test]
fn streaming_through_a_busy_server_delays_what_the_client_sees() {
    // One request of 3 tokens, 10 ms steps (tokens at 10, 20, 30 ms), ingress 4 ms,
    // 15 ms per chunk: the engine sees it at 4 ms (tokens at 14, 24, 34 ms); the
    // server streams the chunks at 29, 44 and 59 ms (each waits for the previous).
    let mut sc = single(
        Policy::Sequential,
        cpu_cost(10_000.0),
        16,
        1000,
        trace_workload(&[(0.0, 4, 3)]),
    );
    sc.front_end = queue(1, 4000.0, 0.0, 15_000.0);
    let s = run(&sc, 0, opts()).expect("runs").summary;
    assert_eq!(s.latency.ttft.mean, 29.0);
    assert_eq!(s.latency.e2el.mean, 59.0);
    assert_eq!(s.latency.itl.mean, 15.0);
    assert!((s.duration - 0.059).abs() < 1e-15);
    // Busy 4 + 45 ms of 59 ms.
    let fe = s.front_end.unwrap();
    assert!((fe.api_server_busy_fraction[0] - 49.0 / 59.0).abs() < 1e-12);
}

/// Poisson arrivals at `rate` of one-token prompts and outputs, `n` requests.
fn poisson(rate: f64, n: u64) -> Workload {
    Workload {
        arrival: Arrival::Poisson { rate },
        input: LengthDist::Fixed { value: 1 },
        output: LengthDist::Fixed { value: 1 },
        stop: Stop::Requests(n),
        max_context: 4096,
        prompt_pool: None,
        identical_outputs: false,
        classes: Vec::new(),
        shared: infersim::workload::SharedContext::None,
    }
}

#[test]
fn the_front_end_alone_is_an_md1_queue() {
    // Deterministic ingress S = 1 ms, no streaming cost, Poisson arrivals at
    // ρ = λS = 0.7: Pollaczek–Khinchine gives the mean wait ρS / (2(1 − ρ)) =
    // 1.1667 ms. Over 200,000 requests the waits' autocorrelation (relaxation time
    // ≈ (1 + ρ)/(1 − ρ)² ≈ 19 services) leaves a standard error of about 2 % on
    // their mean; the tolerance is 6 % (three of them), on each of three seeds.
    let (s_ms, rho) = (1.0, 0.7);
    let want = rho * s_ms / (2.0 * (1.0 - rho));
    for seed in 0..3 {
        let mut sc = single(
            Policy::Sequential,
            cpu_cost(1.0),
            16,
            1000,
            poisson(rho / (s_ms * 1e-3), 200_000),
        );
        sc.front_end = queue(1, s_ms * 1e3, 0.0, 0.0);
        let fe = run(&sc, seed, RunOptions::default())
            .expect("runs")
            .summary
            .front_end
            .unwrap();
        let got = fe.mean_api_queue_wait_ms;
        eprintln!(
            "seed {seed}: mean wait {got:.4} ms (M/D/1 {want:.4}), busy {:.4}",
            fe.api_server_busy_fraction[0]
        );
        assert!(
            (got - want).abs() / want < 0.06,
            "seed {seed}: mean wait {got} ms, M/D/1 {want} ms"
        );
        // The server is busy ρ of the time (to the statistical tolerance).
        assert!((fe.api_server_busy_fraction[0] - rho).abs() < 0.01);
    }
}

#[test]
fn saturated_throughput_is_servers_over_service_time() {
    // 64 users with no think time keep the front end saturated; the GPU is
    // (almost) free. Per request: ingress 0.5 ms + 10 prompt tokens × 50 µs = 1 ms,
    // 4 streamed chunks × 250 µs = 1 ms: 2 ms of API-server work, so two servers
    // serve 1000 requests/s.
    let w = Workload {
        arrival: Arrival::ClosedLoop {
            users: 64,
            spawn_rate: 1e9,
            think: Think::Constant(Dur(0)),
        },
        input: LengthDist::Fixed { value: 10 },
        output: LengthDist::Fixed { value: 4 },
        ..poisson(1.0, 20_000)
    };
    let policy = Policy::Continuous {
        max_num_seqs: 256,
        max_num_batched_tokens: 4096,
        chunked_prefill: true,
        prefix_caching: false,
    };
    let mut sc = single(policy, cpu_cost(1.0), 16, 100_000, w);
    sc.front_end = queue(2, 500.0, 50.0, 250.0);
    let s = run(&sc, 0, RunOptions::default()).expect("runs").summary;
    eprintln!("two servers: {:.2} req/s", s.request_throughput);
    assert!(
        (s.request_throughput - 1000.0).abs() / 1000.0 < 0.01,
        "{} req/s",
        s.request_throughput
    );
    for b in s.front_end.unwrap().api_server_busy_fraction {
        assert!(b > 0.99, "busy {b}");
    }
    // One server: half of it.
    sc.front_end.api_servers = 1;
    let s = run(&sc, 0, RunOptions::default()).expect("runs").summary;
    assert!((s.request_throughput - 500.0).abs() / 500.0 < 0.01);
    // Two engines (data parallel, a GPU each) behind the one server share it: no
    // more requests a second.
    let mut second = sc.instances[0].clone();
    second.gpu = 1;
    sc.instances.push(second);
    sc.gpus.push(sc.gpus[0]);
    let s = run(&sc, 0, RunOptions::default()).expect("runs").summary;
    assert!((s.request_throughput - 500.0).abs() / 500.0 < 0.01);
    assert_eq!(s.per_instance.len(), 2);
    assert!(s.per_instance.iter().all(|i| i.requests_served > 9000));
}

#[test]
fn a_slow_front_end_bounds_the_request_rate_where_the_gpu_does_not() {
    // Qwen3-14B on an A100 at 128 prompt tokens and 4 output tokens, offered
    // 60 requests/s. The shipped profile with an API server costing 21.7 ms per
    // request (128 × 1 µs to tokenise, 4 chunks × its 232 µs to stream: 22.7 ms in
    // all) in queue mode: one server saturates at 1 / 22.7 ms = 44 requests/s,
    // whatever the GPU could do; in fixed mode (the fitted behaviour) the GPU serves
    // the offered rate.
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles/vllm.toml"),
    )
    .unwrap();
    let profile = dir.path().join("slow-api.toml");
    std::fs::write(
        &profile,
        format!("api_request_us = 21700.0\napi_prompt_token_us = 1.0\n{shipped}"),
    )
    .unwrap();
    let text = |mode: &str| {
        format!(
            "name = \"fe\"\n[hardware]\ngpu = \"a100-80gb\"\n[engine]\nmodel = \"qwen3-14b\"\n\
             policy = \"continuous\"\nmax_model_len = 4096\nprofile = \"{}\"\n[workload]\n\
             arrival = \"poisson\"\nrate_per_s = 60.0\nnum_requests = 3000\n\
             input_tokens = {{ dist = \"fixed\", value = 128 }}\n\
             output_tokens = {{ dist = \"fixed\", value = 4 }}\n[frontend]\nmode = \"{mode}\"\n",
            profile.display()
        )
    };
    let run_mode = |mode: &str| {
        let exp = infersim::config::parse_experiment(&text(mode), "fe.toml".as_ref())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let sc = exp.points[0].scenario.clone();
        run(&sc, 1, RunOptions::default()).expect("runs").summary
    };
    let fixed = run_mode("fixed");
    assert!(fixed.front_end.is_none());
    assert!(
        (fixed.request_throughput - 60.0).abs() < 3.0,
        "{}",
        fixed.request_throughput
    );
    let queue = run_mode("queue");
    let want = 1.0 / (21.7e-3 + 128.0 * 1e-6 + 4.0 * 232.108e-6);
    eprintln!(
        "fixed {:.1} req/s, queue {:.2} req/s (bound {want:.2})",
        fixed.request_throughput, queue.request_throughput
    );
    assert!((queue.request_throughput - want).abs() / want < 0.01);
    let fe = queue.front_end.unwrap();
    assert!(fe.api_server_busy_fraction[0] > 0.99);
    // Offered 60 against 44 a second, the server's queue grows all run long, and the
    // client sees it: a TTFT of seconds, against a fraction of a second in fixed mode.
    assert!(
        fixed.latency.ttft.median < 1000.0,
        "{}",
        fixed.latency.ttft.median
    );
    assert!(
        queue.latency.ttft.median > 5000.0,
        "{}",
        queue.latency.ttft.median
    );
}

#[test]
fn timeouts_and_aborts_keep_multi_turn_sessions_consistent() {
    // experiments/multi-turn.toml at 8 sessions a second with a 3 s client timeout:
    // turns are abandoned and aborted while their sessions' contexts sit in the
    // prefix cache; the invariants hold after every step, the KV pool ends empty,
    // and fast-forward equals step by step.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/multi-turn.toml"),
    )
    .unwrap()
    .replace("rate_per_s = 1.0", "rate_per_s = 8.0")
    .replace("num_requests = 400", "num_requests = 300")
    .replace("[sweep]", "[client]\ntimeout_s = 3.0\n\n[sweep]");
    let exp = infersim::config::parse_experiment(&text, "mt.toml".as_ref())
        .unwrap_or_else(|e| panic!("{e:?}"));
    for on_timeout in [OnTimeout::Abort, OnTimeout::Continue] {
        for p in &exp.points {
            let mut sc = p.scenario.clone();
            sc.client.on_timeout = on_timeout;
            let r = run(&sc, 1, opts()).expect("runs");
            let c = r.summary.client.clone().unwrap();
            assert!(c.timed_out > 0, "{on_timeout:?}: no timeouts");
            assert!(
                r.kv_in_use_at_end.iter().all(|&u| u == 0) || on_timeout == OnTimeout::Continue
            );
            assert_eq!(r.summary.completed + c.failed, c.sent);
            both(&sc, 1);
        }
    }
}
