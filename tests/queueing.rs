//! Queueing theory: the event loop against closed-form results.

mod common;

use common::*;
use infersim::cost::StepShape;
use infersim::policy::Policy;
use infersim::sim::{run, RunOptions};
use infersim::time::Dur;
use infersim::workload::{Arrival, LengthDist, Stop, Think, Workload};

/// A sequential instance whose every request is one prefill step of constant cost D
/// (4 prompt tokens, 1 output token) under Poisson arrivals is an M/D/1 queue:
/// mean wait W = ρ / (2 μ (1 − ρ)) with μ = 1/D. The simulated wait is TTFT − D.
fn md1_relative_error(rho: f64, n: u64, seed: u64) -> f64 {
    let cm = tiny_cost(&profile(0.0, 0.0, 0.0));
    let d = cm.price(&StepShape::prefill_only(4)).times.wall_s();
    let mu = 1.0 / d;
    let w = Workload {
        arrival: Arrival::Poisson { rate: rho * mu },
        input: LengthDist::Fixed { value: 4 },
        output: LengthDist::Fixed { value: 1 },
        stop: Stop::Requests(n),
        max_context: 4096,
        prompt_pool: None,
        identical_outputs: false,
        classes: Vec::new(),
        shared: infersim::workload::SharedContext::None,
    };
    let sc = single(Policy::Sequential, cm, 16, 100, w);
    let r = run(&sc, seed, RunOptions::default()).unwrap();
    let wait = r.summary.latency.ttft.mean / 1e3 - d;
    let theory = rho / (2.0 * mu * (1.0 - rho));
    (wait - theory) / theory
}

#[test]
fn md1_mean_wait_at_half_load() {
    for seed in [1, 2] {
        let e = md1_relative_error(0.5, 400_000, seed);
        eprintln!("seed {seed}: relative error {e:+.4}");
        assert!(e.abs() < 0.03, "seed {seed}: relative error {e}");
    }
}

#[test]
fn md1_mean_wait_at_80_percent_load() {
    for seed in [1, 2] {
        let e = md1_relative_error(0.8, 1_500_000, seed);
        eprintln!("seed {seed}: relative error {e:+.4}");
        assert!(e.abs() < 0.03, "seed {seed}: relative error {e}");
    }
}

/// N closed-loop users with zero think time always have N requests in the system, so
/// throughput × mean E2E = N (Little's law), whatever the batching.
#[test]
fn littles_law_closed_loop() {
    for (users, policy) in [
        (20u32, continuous()),
        (
            7,
            Policy::Static {
                batch_size: 4,
                max_wait: Dur::from_millis_f64(1.0),
                pad_finished: true,
            },
        ),
    ] {
        let cm = tiny_cost(&profile(500.0, 200.0, 0.5));
        let w = Workload {
            arrival: Arrival::ClosedLoop {
                users,
                spawn_rate: f64::INFINITY,
                think: Think::Constant(Dur(0)),
            },
            input: LengthDist::Uniform {
                mean: 20,
                range_ratio: 0.5,
            },
            output: LengthDist::Uniform {
                mean: 20,
                range_ratio: 0.5,
            },
            stop: Stop::Timed {
                duration: Dur::from_secs_f64(400.0),
                warmup: Dur::from_secs_f64(20.0),
            },
            max_context: 4096,
            prompt_pool: None,
            identical_outputs: false,
            classes: Vec::new(),
            shared: infersim::workload::SharedContext::None,
        };
        let sc = single(policy, cm, 16, 10_000, w);
        let r = run(&sc, 3, RunOptions::default()).unwrap();
        let x = r.summary.request_throughput;
        let e2e = r.summary.latency.e2el.mean / 1e3;
        let l = x * e2e;
        eprintln!("{users} users: X·R = {l:.4}");
        assert!(
            ((l - users as f64) / users as f64).abs() < 0.01,
            "{users} users: X·R = {l}"
        );
    }
}
