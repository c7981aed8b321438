//! The researchers' guide in `examples/` runs: the deadline scheduler and the least-KV
//! router, written against the public traits only, plugged into scenarios through
//! `SchedulerChoice::Custom` and `RouterKind::custom`, and showing what they are for.

#[allow(dead_code)]
#[path = "../examples/deadline_scheduler.rs"]
mod deadline;
#[allow(dead_code)]
#[path = "../examples/least_kv_router.rs"]
mod least_kv;

use infersim::router::{InstanceLoad, Router, RouterKind};
use infersim::sim::{run, RunOptions, Scenario};
use infersim::time::SimTime;
use infersim::workload::Request;

fn req() -> Request {
    Request::new(0, SimTime::ZERO, 10, 10)
}

fn load(kv_used_fraction: f64, outstanding_tokens: u64) -> InstanceLoad {
    InstanceLoad {
        kv_used_fraction,
        outstanding_tokens,
        ..InstanceLoad::default()
    }
}

/// Hand-worked loads: the lowest KV fraction wins whatever the tokens; between equal
/// fractions the fewer outstanding tokens; all equal, the lowest index.
#[test]
fn least_kv_picks_lowest_kv_then_fewest_tokens() {
    let mut r = least_kv::LeastKv;
    let loads = [
        load(0.5, 10),
        load(0.25, 900),
        load(0.25, 100),
        load(0.75, 0),
    ];
    assert_eq!(r.pick(&req(), &loads), 2);
    assert_eq!(r.pick(&req(), &[load(0.1, 5), load(0.0, 500)]), 1);
    assert_eq!(r.pick(&req(), &[load(0.0, 0), load(0.0, 0)]), 0);
}

/// Everything to the last instance: proves a custom router is the one the run asks.
#[derive(Debug)]
struct Last;

impl Router for Last {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        loads.len() - 1
    }
}

#[test]
fn a_custom_router_routes_the_run() {
    let sc = Scenario {
        router: RouterKind::custom("last", |_| Box::new(Last)),
        ..least_kv::scenario(0.2)
    };
    let opts = RunOptions {
        keep_records: true,
        ..RunOptions::default()
    };
    let recs = run(&sc, 1, opts).expect("runs").records.expect("kept");
    assert_eq!(recs.len(), 1500);
    assert!(recs.iter().all(|r| r.instance == 1));
    assert_eq!(format!("{:?}", sc.router), "Custom(\"last\")");
    assert_eq!(sc.router.name(), "last");
    assert_ne!(sc.router, RouterKind::RoundRobin);
}

/// Round-robin ignores how much context each instance holds, so long requests pile
/// up on one by chance and it runs out of KV; least-KV sends each request where the
/// least is held. At 0.6 requests/s: 191 preemptions against 267, and no slower.
#[test]
fn least_kv_preempts_less_than_round_robin_when_kv_is_short() {
    let (rr_e2e, rr_pre) = least_kv::measure(RouterKind::RoundRobin, 0.6);
    let (kv_e2e, kv_pre) = least_kv::measure(least_kv::LEAST_KV, 0.6);
    eprintln!("round-robin {rr_e2e:.2} s, {rr_pre} preemptions; least-kv {kv_e2e:.2} s, {kv_pre}");
    assert!(
        kv_pre < 0.8 * rr_pre,
        "{kv_pre} preemptions against {rr_pre}"
    );
    assert!(kv_e2e <= rr_e2e, "{kv_e2e} s against {rr_e2e} s");
}

/// Under FCFS a chat request waits behind every batch request that arrived before it;
/// under EDF (1 s target against 60 s) it goes ahead of them, and the batch class
/// pays only a little.
#[test]
fn edf_keeps_the_tight_class_on_target() {
    let fcfs = deadline::p90_ttft(&deadline::scenario());
    let edf = deadline::p90_ttft(&deadline::with_edf(deadline::scenario()));
    eprintln!("p90 TTFT chat/batch: fcfs {fcfs:?}, edf {edf:?}");
    assert!(edf[0] < 1.0 && fcfs[0] > 1.0, "{fcfs:?} against {edf:?}");
    assert!(fcfs[0] > 3.0 * edf[0], "{fcfs:?} against {edf:?}");
    assert!(edf[1] < 1.1 * fcfs[1], "{fcfs:?} against {edf:?}");
}

/// A custom kind is not a config name: experiment files reach only the registry.
#[test]
fn custom_routers_are_not_registered_names() {
    assert!(RouterKind::from_name("least-kv").is_none());
    assert_eq!(least_kv::LEAST_KV.name(), "least-kv");
    assert_eq!(least_kv::LEAST_KV, least_kv::LEAST_KV);
    let imposter = RouterKind::custom("round-robin", |_| Box::new(Last));
    assert_ne!(imposter, RouterKind::RoundRobin);
    assert_eq!(format!("{imposter:?}"), "Custom(\"round-robin\")");
}
