//! Unit tests of `src/metrics/mod.rs`.

use super::*;

#[test]
fn percentiles_match_numpy() {
    // np.percentile([1,2,3,4], [50, 90, 99]) = [2.5, 3.7, 3.97]
    let v = [(1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)];
    assert_eq!(percentile(&v, 4, 50.0), 2.5);
    assert!((percentile(&v, 4, 90.0) - 3.7).abs() < 1e-12);
    assert!((percentile(&v, 4, 99.0) - 3.97).abs() < 1e-12);
    // Weighted: [1,1,1,5] -> median 1, p90 = 1 + 0.7 * 4 = 3.8
    let w = [(1.0, 3), (5.0, 1)];
    assert_eq!(percentile(&w, 4, 50.0), 1.0);
    assert!((percentile(&w, 4, 90.0) - 3.8).abs() < 1e-12);
}

#[test]
fn bucketed_quantiles_are_within_the_stated_accuracy() {
    let mut exact = Sketch::default();
    let mut big = Sketch::default();
    // 300,000 samples: a lognormal-ish spread from 0.01 ms to 100 s.
    let mut vals = Vec::new();
    for k in 0..300_000u64 {
        let v = (((k * 7919) % 300_000) as f64 / 300_000.0 * 16.0 - 4.6).exp();
        vals.push(v);
        big.add(v, 1);
    }
    for &v in vals.iter().take(EXACT_LIMIT) {
        exact.add(v, 1);
    }
    assert!(big.bucketed && !exact.bucketed);
    vals.sort_by(f64::total_cmp);
    let st = big.stats();
    for (p, key, got) in [
        (50.0, "median", st.median),
        (90.0, "p90", st.p90),
        (99.0, "p99", st.p99),
    ] {
        let w: Vec<(f64, u64)> = vals.iter().map(|&v| (v, 1)).collect();
        let truth = percentile(&w, w.len() as u64, p);
        assert!(
            ((got - truth) / truth).abs() <= 1.5 * BUCKET_ACCURACY,
            "{key}: {got} vs {truth}"
        );
    }
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    assert!((st.mean - mean).abs() / mean < 1e-9);
    // Memory: a few thousand buckets, however many samples.
    assert!(big.buckets.len() < 20_000 && big.exact.is_empty());
}

#[test]
fn tpot_and_throughput_as_benchmark_serving() {
    let mut r = Recorder::new(SimTime::ZERO, false);
    let req = Request::new(0, SimTime::from_secs_f64(1.0), 10, 11);
    r.request(
        &req,
        0,
        SimTime::from_secs_f64(1.0),
        SimTime::from_secs_f64(1.5),
        SimTime::from_secs_f64(2.5),
    );
    let s = r.summarize(4.0);
    assert_eq!(s.latency.ttft.mean, 500.0);
    assert_eq!(s.latency.tpot.mean, 100.0);
    assert_eq!(s.latency.e2el.mean, 1500.0);
    assert_eq!(s.request_throughput, 0.25);
    assert_eq!(s.total_token_throughput, 21.0 / 4.0);
    assert!(s.latency.batch.is_none());
}
