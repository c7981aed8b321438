//! A router written outside the crate: the instance with the least KV cache in use,
//! ties (equal fractions, as between idle instances) broken by outstanding tokens,
//! then by index. Run: `cargo run --release --example least_kv_router`.

use infersim::config::parse_experiment;
use infersim::router::{argmin, InstanceLoad, Router, RouterKind};
use infersim::sim::{run, RunOptions, Scenario};
use infersim::workload::Request;

/// Least KV in use, then fewest outstanding tokens.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastKv;

impl Router for LeastKv {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        // For fractions in [0, 1] the bits of an f64 order as its value does.
        argmin(loads, |l| {
            (l.kv_used_fraction.to_bits(), l.outstanding_tokens)
        })
    }
}

/// How a scenario names it: a custom router kind built fresh for each run.
pub const LEAST_KV: RouterKind = RouterKind::custom("least-kv", |_rng| Box::new(LeastKv));

/// Two instances of an 8B model, each on an L4 whose KV cache holds about 31 k
/// tokens, under `rate` requests/s whose outputs range from 21 to 2027 tokens: KV is
/// what runs short, and round-robin lands long requests on a full instance by chance.
pub fn scenario(rate: f64) -> Scenario {
    let text = format!("name = \"kv\"\n[hardware]\ngpu = \"l4\"\nnum_gpus = 2\n\
        [engine]\nmodel = \"llama-3.1-8b\"\nmax_model_len = 4096\npolicy = \"continuous\"\n[workload]\n\
        arrival = \"poisson\"\nrate_per_s = {rate}\nnum_requests = 1500\n\
        input_tokens = {{ dist = \"fixed\", value = 256 }}\n\
        output_tokens = {{ dist = \"uniform\", mean = 1024, range_ratio = 0.98 }}\n");
    let exp = parse_experiment(&text, "kv.toml".as_ref()).expect("valid");
    exp.points[0].scenario.clone()
}

/// Mean end-to-end latency (s) and the preemptions under `router`.
pub fn measure(router: RouterKind, rate: f64) -> (f64, f64) {
    let sc = Scenario {
        router,
        ..scenario(rate)
    };
    let opts = RunOptions {
        check_invariants: true,
        ..RunOptions::default()
    };
    let s = run(&sc, 1, opts).expect("runs").summary;
    (s.latency.e2el.mean / 1e3, s.preemptions as f64)
}

fn main() {
    for router in [RouterKind::RoundRobin, LEAST_KV] {
        let (e2e, pre) = measure(router, 0.6);
        println!(
            "{:>12}: mean E2E {e2e:.1} s, {pre} preemptions",
            router.name()
        );
    }
}
