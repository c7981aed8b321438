//! GPU sharing and many GPUs: MPS fluid sharing, time-slicing, data-parallel replicas
//! and routers, against hand-worked numbers and invariants.

mod common;

use common::*;
use infersim::cost::CostModel;
use infersim::gpu::Sharing;
use infersim::policy::Policy;
use infersim::router::RouterKind;
use infersim::sim::{run, InstanceSetup, RunOptions, Scenario};
use infersim::specs::GpuSpec;
use infersim::time::Dur;
use infersim::workload::{Arrival, LengthDist, Stop, Think, Workload};

const OPTS: RunOptions = RunOptions {
    keep_records: true,
    check_invariants: true,
    step_by_step: false,
};

fn setup(gpu: usize, policy: Policy, cost: CostModel, att: f64) -> InstanceSetup {
    InstanceSetup {
        gpu,
        policy,
        cost,
        geo: infersim::kv::KvGeometry::new(&tiny_model(), 16),
        kv_blocks: 1000,
        active_thread_fraction: att,
        api_latency: Dur(0),
        scheduler: Default::default(),
        stack: Default::default(),
    }
}

fn shared(
    sharing: Sharing,
    instances: Vec<InstanceSetup>,
    router: RouterKind,
    w: Workload,
) -> Scenario {
    let gpus = instances.iter().map(|i| i.gpu).max().unwrap_or(0) + 1;
    Scenario {
        workload: w,
        gpus: vec![sharing; gpus],
        instances,
        router,
        front_end: Default::default(),
        client: Default::default(),
    }
}

fn closed(users: u32, secs: f64) -> Workload {
    Workload {
        arrival: Arrival::ClosedLoop {
            users,
            spawn_rate: 50.0,
            think: Think::Exponential(Dur::from_millis_f64(5.0)),
        },
        input: LengthDist::Uniform {
            mean: 30,
            range_ratio: 0.5,
        },
        output: LengthDist::Uniform {
            mean: 20,
            range_ratio: 0.5,
        },
        stop: Stop::Timed {
            duration: Dur::from_secs_f64(secs),
            warmup: Dur::from_secs_f64(1.0),
        },
        max_context: 4096,
        prompt_pool: None,
        identical_outputs: false,
        classes: Vec::new(),
        shared: infersim::workload::SharedContext::None,
    }
}

/// With one instance, `mps` and `time-slice` (zero switch cost) give exactly the
/// `exclusive` result, for every policy.
#[test]
fn one_instance_under_mps_or_time_slice_equals_exclusive() {
    for policy in [
        continuous(),
        Policy::Sequential,
        Policy::Static {
            batch_size: 4,
            max_wait: Dur(1_000_000),
            pad_finished: true,
        },
    ] {
        let cost = tiny_cost(&profile(200.0, 300.0, 0.4));
        let base = shared(
            Sharing::Exclusive,
            vec![setup(0, policy.clone(), cost.clone(), 1.0)],
            RouterKind::RoundRobin,
            closed(6, 20.0),
        );
        let want = run(&base, 5, OPTS).unwrap();
        for sharing in [
            Sharing::Mps,
            Sharing::TimeSlice {
                quantum: Dur(700_000),
                switch_cost: Dur(0),
            },
        ] {
            let mut sc = base.clone();
            sc.gpus = vec![sharing];
            let got = run(&sc, 5, OPTS).unwrap();
            assert_eq!(got.summary, want.summary, "{sharing:?} {policy:?}");
            assert_eq!(got.records, want.records, "{sharing:?} {policy:?}");
        }
    }
}

/// A GPU so fast at arithmetic that every step is bound by memory bandwidth.
fn bandwidth_only_gpu() -> GpuSpec {
    GpuSpec {
        tensor_tflops: 1e6,
        ..slow_gpu()
    }
}

/// Two MPS instances each run one prefill, purely bandwidth-bound, at the same time.
/// Prefill bytes of p tokens: dense 1024 + 32p, LM head 512, attention 32p, sampler
/// 128 → 1664 + 64p bytes, at 1 byte/µs. p = 4 → 1920 µs; p = 20 → 2944 µs. Sharing
/// bandwidth, both run at half speed until the small one is done at 2 × 1920 = 3840 µs;
/// the big one then runs alone and ends when the combined 4864 bytes have moved:
/// 4864 µs.
#[test]
fn two_bandwidth_bound_mps_instances_take_the_combined_bytes() {
    let cost = CostModel::new(
        &tiny_model(),
        &bandwidth_only_gpu(),
        &profile(0.0, 0.0, 0.0),
    )
    .unwrap();
    let inst = vec![
        setup(0, Policy::Sequential, cost.clone(), 1.0),
        setup(0, Policy::Sequential, cost, 1.0),
    ];
    let sc = shared(
        Sharing::Mps,
        inst,
        RouterKind::RoundRobin,
        trace_workload(&[(0.0, 4, 1), (0.0, 20, 1)]),
    );
    let r = run(&sc, 1, OPTS).unwrap();
    let recs = r.records.unwrap();
    let t = |id| Dur::from_secs_f64(recs.iter().find(|x| x.id == id).unwrap().finish_s).0;
    assert_eq!(t(0), 3_840_000);
    assert_eq!(t(1), 4_864_000);
}

/// Prefills on the slow GPU: 4416 µs of compute-bound work (dense 4096 + attention
/// 320) and 640 µs of memory-bound groups, 5056 µs in all. Two instances capped at
/// 30 % of the SMs each: a job's SM work can never go faster than 30 % of the GPU, so
/// it takes at least 4416 / 0.3 = 14,720 µs, and with the SMs otherwise idle it takes
/// exactly that. Uncapped, the two share the SMs: each at least 2 × 4416 µs.
#[test]
fn compute_capped_mps_instances_never_exceed_their_share() {
    let cost = tiny_cost(&profile(0.0, 0.0, 0.0));
    for (cap, min_us) in [(0.3, 4416.0 / 0.3), (1.0, 2.0 * 4416.0)] {
        let inst = vec![
            setup(0, Policy::Sequential, cost.clone(), cap),
            setup(0, Policy::Sequential, cost.clone(), cap),
        ];
        let sc = shared(
            Sharing::Mps,
            inst,
            RouterKind::RoundRobin,
            trace_workload(&[(0.0, 4, 1), (0.0, 4, 1)]),
        );
        let recs = run(&sc, 1, OPTS).unwrap().records.unwrap();
        for r in &recs {
            assert!(
                r.finish_s * 1e6 >= min_us - 1e-3,
                "cap {cap}: {} µs < {min_us}",
                r.finish_s * 1e6
            );
        }
        for r in &recs {
            assert!(
                (r.finish_s * 1e6 - min_us).abs() < 0.01,
                "cap {cap}: {} vs {min_us}",
                r.finish_s * 1e6
            );
        }
    }
}

/// Time-slicing, quantum 2 ms, switch 0.5 ms. A's step needs 5 ms of GPU, B's 3 ms,
/// both ready at 0. A 0–2 (suspended), switch, B 2.5–4.5 (suspended), switch,
/// A 5–7 (suspended, 1 ms left), switch, B 7.5–8.5 done, switch, A 9–10 done.
#[test]
fn time_slicing_by_hand_with_suspension_and_switches() {
    let fast = GpuSpec {
        tensor_tflops: 1e12,
        memory_bandwidth_gbps: 1e12,
        ..slow_gpu()
    };
    let a = CostModel::new(&tiny_model(), &fast, &profile(5000.0, 0.0, 0.0)).unwrap();
    let b = CostModel::new(&tiny_model(), &fast, &profile(3000.0, 0.0, 0.0)).unwrap();
    let inst = vec![
        setup(0, Policy::Sequential, a, 1.0),
        setup(0, Policy::Sequential, b, 1.0),
    ];
    let ts = Sharing::TimeSlice {
        quantum: Dur(2_000_000),
        switch_cost: Dur(500_000),
    };
    let sc = shared(
        ts,
        inst,
        RouterKind::RoundRobin,
        trace_workload(&[(0.0, 4, 1), (0.0, 4, 1)]),
    );
    let recs = run(&sc, 1, OPTS).unwrap().records.unwrap();
    let t = |id| Dur::from_secs_f64(recs.iter().find(|x| x.id == id).unwrap().finish_s).0;
    assert_eq!(t(1), 8_500_000);
    assert_eq!(t(0), 10_000_000);
}

/// N data-parallel replicas behind round-robin saturate at N times one replica's
/// throughput.
#[test]
fn data_parallel_replicas_scale_saturated_throughput() {
    // 100× the slow GPU, so a long run completes tens of thousands of requests.
    let gpu = GpuSpec {
        tensor_tflops: 1e-4,
        memory_bandwidth_gbps: 0.1,
        ..slow_gpu()
    };
    let cost = CostModel::new(&tiny_model(), &gpu, &profile(3.0, 2.0, 0.5)).unwrap();
    let sat = |n: usize| {
        let inst = (0..n)
            .map(|g| setup(g, continuous(), cost.clone(), 1.0))
            .collect();
        let w = Workload {
            arrival: Arrival::Poisson {
                rate: 3000.0 * n as f64,
            },
            input: LengthDist::Uniform {
                mean: 30,
                range_ratio: 0.5,
            },
            output: LengthDist::Uniform {
                mean: 20,
                range_ratio: 0.5,
            },
            stop: Stop::Timed {
                duration: Dur::from_secs_f64(30.0),
                warmup: Dur::from_secs_f64(5.0),
            },
            max_context: 4096,
            prompt_pool: None,
            identical_outputs: false,
            classes: Vec::new(),
            shared: infersim::workload::SharedContext::None,
        };
        let r = run(
            &shared(Sharing::Exclusive, inst, RouterKind::RoundRobin, w),
            9,
            RunOptions::default(),
        )
        .unwrap();
        eprintln!(
            "{n}: {} req/s, {} preemptions, kv {}",
            r.summary.request_throughput, r.summary.preemptions, r.summary.kv_cache_peak_fraction
        );
        r.summary.request_throughput
    };
    let one = sat(1);
    for n in [2, 4] {
        let ratio = sat(n) / (n as f64 * one);
        assert!((ratio - 1.0).abs() < 0.02, "{n} replicas: {ratio}");
    }
}

/// `sticky` keeps each closed-loop user on one instance for the whole run, and the
/// users spread over the instances.
#[test]
fn sticky_keeps_every_user_on_one_instance() {
    assert_users_pinned_and_spread(RouterKind::Sticky);
}

/// At high load, power-of-two choices has a lower p99 TTFT than random routing.
#[test]
fn power_of_two_beats_random_on_p99_ttft_at_high_load() {
    let cost = tiny_cost(&profile(300.0, 200.0, 0.5));
    // Service time of one request: a 30-token prefill and one decode step.
    let d = cost
        .price(&infersim::cost::StepShape::prefill_only(30))
        .times
        .wall_s()
        + cost
            .price(&infersim::cost::StepShape::decode_only(1, 31, 0))
            .times
            .wall_s();
    let p99 = |router| {
        let inst = (0..8)
            .map(|g| setup(g, Policy::Sequential, cost.clone(), 1.0))
            .collect();
        let w = Workload {
            arrival: Arrival::Poisson {
                rate: 0.9 * 8.0 / d,
            },
            input: LengthDist::Fixed { value: 30 },
            output: LengthDist::Fixed { value: 2 },
            stop: Stop::Requests(100_000),
            max_context: 4096,
            prompt_pool: None,
            identical_outputs: false,
            classes: Vec::new(),
            shared: infersim::workload::SharedContext::None,
        };
        let r = run(
            &shared(Sharing::Exclusive, inst, router, w),
            2,
            RunOptions::default(),
        )
        .unwrap();
        r.summary.latency.ttft.p99
    };
    let (p2c, random) = (p99(RouterKind::PowerOfTwo), p99(RouterKind::Random));
    assert!(p2c < 0.5 * random, "p2c {p2c} ms vs random {random} ms");
}

const MIXED: &str = r#"
name = "mixed"
[hardware]
gpu = "l4"
num_gpus = 2
sharing = "mps"
router = "round-robin"
[engine]
model = "gemma-3-1b-it"
policy = "continuous"
max_model_len = 4096
gpu_memory_utilization = 0.45
[workload]
arrival = "poisson"
rate_per_s = 4.0
num_requests = 400
input_tokens = { dist = "fixed", value = 200 }
output_tokens = { dist = "fixed", value = 50 }
[[instance]]
gpu = 0
[[instance]]
gpu = 0
model = "llama-3.2-1b"
policy = "static"
static = { batch_size = 4 }
[[instance]]
gpu = 1
gpu_memory_utilization = 0.9
"#;

/// `[[instance]]` places different engines: two models sharing GPU 0 under MPS and a
/// third instance alone on GPU 1, each serving its share of the requests.
#[test]
fn mixed_instances_are_placed_one_by_one() {
    let exp =
        infersim::config::parse_experiment(MIXED, std::path::Path::new("mixed.toml")).unwrap();
    let p = &exp.points[0];
    assert_eq!(p.meta.instances, 3);
    assert_eq!(p.meta.model, "gemma-3-1b-it+llama-3.2-1b");
    assert_eq!(p.meta.policy, "continuous+static");
    let gpus: Vec<usize> = p.scenario.instances.iter().map(|i| i.gpu).collect();
    assert_eq!(gpus, vec![0, 0, 1]);
    assert!(p.scenario.instances[2].kv_blocks > 2 * p.scenario.instances[0].kv_blocks);
    let r = run(&p.scenario, 1, OPTS).unwrap();
    assert_eq!(r.summary.completed, 400);
    let served: Vec<u64> = r.instances.iter().map(|s| s.served).collect();
    assert_eq!(served.iter().sum::<u64>(), 400);
    assert!(
        served.iter().all(|&s| (120..=147).contains(&s)),
        "{served:?}"
    );
    // The summary names each instance's GPU, model and policy.
    let rows = &r.summary.per_instance;
    let named: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|x| (x.gpu, x.model.as_str(), x.policy.as_str()))
        .collect();
    assert_eq!(
        named,
        vec![
            (0, "gemma-3-1b-it", "continuous"),
            (0, "llama-3.2-1b", "static"),
            (1, "gemma-3-1b-it", "continuous"),
        ]
    );
}

/// Memory fractions over 1 on a GPU, and two instances on an exclusive GPU, are
/// errors naming `[[instance]]`.
#[test]
fn mixed_instances_are_checked_per_gpu() {
    let over = MIXED.replace(
        "[[instance]]\ngpu = 1\ngpu_memory_utilization = 0.9",
        "[[instance]]\ngpu = 0\ngpu_memory_utilization = 0.2",
    );
    let e =
        infersim::config::parse_experiment(&over, std::path::Path::new("mixed.toml")).unwrap_err();
    assert!(
        e.iter()
            .any(|e| e.field == "instance" && e.message.contains("add up to 1.10")),
        "{e:?}"
    );
    let excl = MIXED.replace("sharing = \"mps\"", "sharing = \"exclusive\"");
    let e =
        infersim::config::parse_experiment(&excl, std::path::Path::new("mixed.toml")).unwrap_err();
    assert!(
        e.iter()
            .any(|e| e.field == "instance" && e.message.contains("2 instances on GPU 0")),
        "{e:?}"
    );
    let bad = MIXED.replace("gpu = 1\n", "gpu = 7\n");
    let e =
        infersim::config::parse_experiment(&bad, std::path::Path::new("mixed.toml")).unwrap_err();
    assert!(e.iter().any(|e| e.field == "instance[2].gpu"), "{e:?}");
}

const MIG: &str = r#"
name = "mig"
[hardware]
gpu = "a100-80gb"
router = "least-requests"
[engine]
model = "llama-3.2-1b"
policy = "continuous"
max_model_len = 4096
[workload]
arrival = "poisson"
rate_per_s = 6.0
num_requests = 600
input_tokens = { dist = "fixed", value = 200 }
output_tokens = { dist = "fixed", value = 50 }
"#;

fn mig_point(mig: &str) -> infersim::config::Point {
    let text = MIG.replace(
        "gpu = \"a100-80gb\"",
        &format!("gpu = \"a100-80gb\"\n{mig}"),
    );
    let exp = infersim::config::parse_experiment(&text, std::path::Path::new("mig.toml")).unwrap();
    exp.points[0].clone()
}

/// MIG splits each GPU into independent smaller GPUs: `7g.80gb` is the whole GPU (the
/// same records as no MIG); `1g.10gb` gives 7 instances, each a GPU of its own with an
/// eighth of the memory (so an eighth-size KV pool, less what the weights take) behind
/// the router; rows name the profile and count physical GPUs.
#[test]
fn mig_instances_are_smaller_independent_gpus() {
    let whole = mig_point("");
    let seven_g = mig_point("mig = \"7g.80gb\"");
    assert_eq!(seven_g.meta.mig.as_deref(), Some("7g.80gb"));
    let a = run(&whole.scenario, 1, OPTS).unwrap();
    let b = run(&seven_g.scenario, 1, OPTS).unwrap();
    assert_eq!(a.records, b.records);
    let one_g = mig_point("mig = \"1g.10gb\"");
    assert_eq!(one_g.meta.gpus, 1);
    assert_eq!(one_g.meta.mig_slices, Some(7));
    assert_eq!(one_g.scenario.gpus.len(), 7);
    assert_eq!(one_g.scenario.instances.len(), 7);
    assert!(one_g.meta.kv_cache_tokens * 8 < whole.meta.kv_cache_tokens);
    let r = run(&one_g.scenario, 1, OPTS).unwrap();
    assert_eq!(r.summary.completed, 600);
    // Each instance streams its weights at an eighth of the bandwidth: a decode step
    // takes at least 2.47 GB / (2,039 GB/s / 8) = 9.7 ms.
    let floor = 2.47e9 / (2039e9 / 8.0) * 1e3;
    let tpot = r.summary.latency.tpot.median;
    assert!(tpot > floor, "{tpot} ms <= {floor} ms");
    let one_3g = mig_point("mig = \"3g.40gb\"\nmig_instances = 1");
    assert_eq!(one_3g.scenario.gpus.len(), 1);
    let per_gpu = &r.summary.per_gpu;
    assert_eq!(per_gpu.len(), 7);
}

fn router(name: &str) -> RouterKind {
    RouterKind::from_name(name).unwrap_or_else(|| panic!("{name} is registered"))
}

/// `session` keeps each closed-loop user (its session) on one instance for the whole
/// run; first requests go to the least loaded instance, so the users spread over all.
#[test]
fn session_affinity_keeps_every_user_on_one_instance() {
    assert_users_pinned_and_spread(router("session"));
}

/// Four replicas with prefix caching, lightly loaded, serving 400 requests that share
/// four 256-token prompts (16 blocks of 16 tokens). A request finding its prompt cached
/// computes only the last block (the last token must be computed, so 15 blocks hit).
/// `prefix-aware` sends each prompt where it is cached, so only the first request of
/// each prompt misses: 4 × 256 + 396 × 16 = 7360 tokens computed, 396 × 240 = 95040
/// hit. Round-robin misses each prompt once on every replica: 16 × 256 + 384 × 16 =
/// 10240 computed, 92160 hit. Other load-only routers miss more than prefix-aware.
#[test]
fn prefix_aware_routing_misses_each_prompt_once() {
    let gpu = GpuSpec {
        tensor_tflops: 1.0,
        memory_bandwidth_gbps: 100.0,
        ..slow_gpu()
    };
    let cost = CostModel::new(&tiny_model(), &gpu, &profile(100.0, 100.0, 0.5)).unwrap();
    let mut policy = continuous();
    if let Policy::Continuous { prefix_caching, .. } = &mut policy {
        *prefix_caching = true;
    }
    let w = Workload {
        arrival: Arrival::Poisson { rate: 200.0 },
        input: LengthDist::Uniform {
            mean: 256,
            range_ratio: 0.0,
        },
        output: LengthDist::Uniform {
            mean: 8,
            range_ratio: 0.5,
        },
        stop: Stop::Requests(400),
        max_context: 4096,
        prompt_pool: Some(4),
        identical_outputs: false,
        classes: Vec::new(),
        shared: infersim::workload::SharedContext::None,
    };
    let go = |name: &str| {
        let inst = (0..4)
            .map(|g| setup(g, policy.clone(), cost.clone(), 1.0))
            .collect();
        let r = run(
            &shared(Sharing::Exclusive, inst, router(name), w.clone()),
            3,
            OPTS,
        )
        .unwrap();
        assert_eq!(r.summary.preemptions, 0, "{name}");
        (
            r.summary.prefix_cache_hit_tokens,
            r.summary.prefill_tokens_computed,
        )
    };
    assert_eq!(go("prefix-aware"), (95040, 7360));
    assert_eq!(go("round-robin"), (92160, 10240));
    for other in ["least-tokens", "least-requests", "random", "power-of-two"] {
        let (hit, computed) = go(other);
        assert!(
            computed > 7360 && hit < 95040,
            "{other}: {hit} hit, {computed} computed"
        );
    }
}

/// `[hardware] router = "prefix-aware"` and `"session"` are accepted, reach the
/// scenario and run; an unknown router is refused naming the field and listing them.
#[test]
fn new_routers_are_configured_by_name() {
    let path = std::path::Path::new("mixed.toml");
    for name in ["prefix-aware", "session"] {
        let text = MIXED.replace("router = \"round-robin\"", &format!("router = \"{name}\""));
        let exp = infersim::config::parse_experiment(&text, path).unwrap();
        let sc = &exp.points[0].scenario;
        assert_eq!(sc.router.name(), name);
        let r = run(sc, 1, OPTS).unwrap();
        assert_eq!(r.summary.completed, 400, "{name}");
    }
    let text = MIXED.replace("router = \"round-robin\"", "router = \"fastest\"");
    let errs = infersim::config::parse_experiment(&text, path).unwrap_err();
    let msg: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let msg = msg.join("\n");
    assert!(msg.contains("hardware.router"), "{msg}");
    assert!(
        msg.contains("prefix-aware") && msg.contains("session"),
        "{msg}"
    );
}

/// Runs 30 closed-loop users on three MPS instances behind `router` and checks that
/// every user stays on one instance and that the users spread over all three.
fn assert_users_pinned_and_spread(router: RouterKind) {
    let cost = tiny_cost(&profile(300.0, 200.0, 0.5));
    let inst = (0..3)
        .map(|_| setup(0, continuous(), cost.clone(), 1.0))
        .collect();
    let sc = shared(Sharing::Mps, inst, router, closed(30, 10.0));
    let recs = run(&sc, 4, OPTS).unwrap().records.unwrap();
    let mut pin = std::collections::BTreeMap::new();
    for r in &recs {
        let u = r.user.unwrap();
        assert_eq!(
            *pin.entry(u).or_insert(r.instance),
            r.instance,
            "user {u} moved"
        );
    }
    let used: std::collections::BTreeSet<u32> = pin.values().copied().collect();
    assert_eq!(used.len(), 3);
}
