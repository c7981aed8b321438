//! Unit tests of `src/workload/mod.rs`.

use super::*;

#[test]
fn uniform_lengths_stay_in_range() {
    let d = LengthDist::Uniform {
        mean: 100,
        range_ratio: 0.5,
    };
    let mut r = rng(1, 2);
    for _ in 0..1000 {
        let v = d.sample(&mut r);
        assert!((50..=150).contains(&v));
    }
}

#[test]
fn poisson_mean_gap_matches_rate() {
    let w = Workload {
        arrival: Arrival::Poisson { rate: 4.0 },
        input: LengthDist::Fixed { value: 1 },
        output: LengthDist::Fixed { value: 1 },
        stop: Stop::Requests(20001),
        max_context: 100,
        prompt_pool: None,
        identical_outputs: false,
        classes: Vec::new(),
        shared: SharedContext::None,
    };
    let mut g = OpenLoop::new(&w, 7);
    let mut last = SimTime::ZERO;
    while let Some((t, _, _)) = g.next_arrival() {
        last = t;
    }
    // 20,000 gaps of mean 0.25 s: sum 5000 s, std 35 s.
    assert!((last.as_secs_f64() - 5000.0).abs() < 150.0, "{last}");
}
