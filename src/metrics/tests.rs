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
    assert!(big.buckets.len() < 20_000 && big.values.is_empty());
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

/// The statistics as they were computed before the radix sort: a stable comparison
/// sort, then [`percentile`] for every quantile (the slow reference; the moments are
/// the same function's).
fn reference_stats(w: &mut [(f64, u64)]) -> Stats {
    w.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (n, mean, std) = moments(w.iter().copied());
    Stats {
        mean,
        median: percentile(w, n, 50.0),
        std,
        p50: percentile(w, n, 50.0),
        p90: percentile(w, n, 90.0),
        p95: percentile(w, n, 95.0),
        p99: percentile(w, n, 99.0),
    }
}

fn bits(s: &Stats) -> [u64; 7] {
    [s.mean, s.median, s.std, s.p50, s.p90, s.p95, s.p99].map(f64::to_bits)
}

/// Values that exercise the key: both zeros, negatives, subnormals, infinities,
/// repeats (with different weights, so the stable order shows), and a spread of
/// magnitudes in every digit of the key.
fn awkward(len: usize, seed: u64, unit: bool) -> Vec<(f64, u64)> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let special = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE / 4.0,
        5e-324,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        250.0,
    ];
    (0..len)
        .map(|_| {
            let r = next();
            let v = match r % 4 {
                0 => special[(r >> 8) as usize % special.len()],
                1 => ((r >> 11) % 1000) as f64 * 0.5,
                2 => f64::from_bits(r >> 2) * if r & 2 == 0 { 1.0 } else { -1.0 },
                _ => (r >> 11) as f64 / (1u64 << 53) as f64 * 3000.0,
            };
            let v = if v.is_nan() { 7.0 } else { v };
            (v, if unit { 1 } else { 1 + (r >> 40) % 5 })
        })
        .collect()
}

/// Sorts `w` by value in [`f64::total_cmp`] order as [`exact_stats`] does (by
/// [`sort_samples`] on (bits, weight) pairs).
fn sort_by_total_order(w: &mut [(f64, u64)]) {
    let mut pairs: Vec<(u64, u64)> = w.iter().map(|&(v, c)| (v.to_bits(), c)).collect();
    let value = if sort_samples(&mut pairs) {
        f64::from_bits
    } else {
        from_total_order_key
    };
    for (x, &(k, c)) in w.iter_mut().zip(&pairs) {
        *x = (value(k), c);
    }
}

/// `sort_by_total_order` of `w` is the stable comparison sort by `total_cmp`, to the
/// bit (the sign of a zero included).
fn assert_sorts_stably(w: &[(f64, u64)], what: &str) {
    let (mut a, mut b) = (w.to_vec(), w.to_vec());
    sort_by_total_order(&mut a);
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let ab: Vec<(u64, u64)> = a.iter().map(|&(v, c)| (v.to_bits(), c)).collect();
    let bb: Vec<(u64, u64)> = b.iter().map(|&(v, c)| (v.to_bits(), c)).collect();
    assert!(ab == bb, "{what}");
}

/// The bucket sort gives exactly the stable comparison sort's permutation (values
/// and weights in the same places), on small and large inputs.
#[test]
fn radix_sort_is_the_stable_comparison_sort() {
    for (len, seed) in [(0, 1), (1, 2), (255, 3), (256, 4), (1000, 5), (70_000, 6)] {
        for unit in [true, false] {
            let w = awkward(len, seed, unit);
            assert_sorts_stably(&w, &format!("len {len}, seed {seed}, unit {unit}"));
        }
    }
    // Narrow ranges (keys that differ only in some middle bits), all-equal values
    // with different weights, and a latency-like spread over a few octaves.
    let narrow: Vec<(f64, u64)> = (0..5000u64)
        .map(|k| (100.0 + ((k * 37) % 64) as f64 * 0.25, k % 3 + 1))
        .collect();
    let same: Vec<(f64, u64)> = (0..1000u64).map(|k| (2.5, k + 1)).collect();
    let spread: Vec<(f64, u64)> = (0..140_000u64)
        .map(|k| (20.0 + ((k * 7919) % 100_003) as f64 * 0.013, 1 + k % 2))
        .collect();
    for (name, v) in [("narrow", narrow), ("same", same), ("spread", spread)] {
        let mut a = v.clone();
        let mut b = v;
        sort_by_total_order(&mut a);
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert!(a == b, "{name}");
    }
    // The key orders as total_cmp does, and inverts.
    let vals = [-f64::INFINITY, -2.0, -0.0, 0.0, 5e-324, 1.0, f64::INFINITY];
    for w in vals.windows(2) {
        assert!(total_order_key(w[0]) < total_order_key(w[1]), "{w:?}");
    }
    for v in vals {
        assert_eq!(
            from_total_order_key(total_order_key(v)).to_bits(),
            v.to_bits()
        );
    }
}

/// Exact statistics are bit for bit those of the comparison sort and the scanning
/// percentile, with unit and with mixed weights.
#[test]
fn exact_stats_match_the_reference_bit_for_bit() {
    for (len, seed) in [(1, 7), (2, 8), (300, 9), (5000, 10), (40_000, 11)] {
        for unit in [true, false] {
            // Finite samples only, as a sketch holds.
            let w: Vec<(f64, u64)> = awkward(len, seed, unit)
                .into_iter()
                .map(|(v, c)| {
                    (
                        if v.is_finite() && v.abs() < 1e100 {
                            v
                        } else {
                            3.0
                        },
                        c,
                    )
                })
                .collect();
            let (a, mut b) = (w.clone(), w);
            assert_eq!(bits(&exact_stats(&a)), bits(&reference_stats(&mut b)));
        }
    }
}

/// Sample sets of the shapes the adaptive bucket sort treats differently, each
/// `len` long: a heavy tail (most samples small, a few huge: crowded buckets that
/// take a second pass), most samples one value (a bucket of equal keys), only a
/// few distinct values, consecutive floats (a bucket per key, no finishing),
/// negative values only and both signs (total-order keys instead of bits), a
/// cluster inside one first-pass bucket beside an outlier (deep recursion), and
/// uniform and latency-like spreads.
fn shapes(len: usize, seed: u64) -> Vec<(&'static str, Vec<f64>)> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut unit = move || (next() >> 11) as f64 / (1u64 << 53) as f64;
    let mut gen = |f: &mut dyn FnMut(f64, usize) -> f64| -> Vec<f64> {
        (0..len).map(|k| f(unit(), k)).collect()
    };
    vec![
        ("heavy tail", gen(&mut |u, _| 10.0 / (1.0 - u).powi(3))),
        (
            "mostly one value",
            gen(&mut |u, _| if u < 0.9 { 42.5 } else { u * 1000.0 }),
        ),
        (
            "few values",
            gen(&mut |u, _| [0.0, 1.0, 2.5, 1e6][(u * 4.0) as usize]),
        ),
        (
            "consecutive floats",
            gen(&mut |u, _| f64::from_bits(100.0f64.to_bits() + (u * 64.0) as u64)),
        ),
        ("negative", gen(&mut |u, _| -1.0 - u * 500.0)),
        (
            "both signs",
            gen(&mut |u, k| match k % 5 {
                0 => -0.0,
                1 => 0.0,
                _ => (u - 0.5) * 1e4,
            }),
        ),
        (
            "cluster and outlier",
            gen(&mut |u, k| if k == 0 { 1e9 } else { 1.0 + u * 1e-12 }),
        ),
        ("uniform", gen(&mut |u, _| u * 3000.0)),
        (
            "latency-like",
            gen(&mut |u, _| (u * 8.0 - 1.0).exp() * 20.0),
        ),
    ]
}

/// On every shape, at every size from trivial to well past the largest bucket
/// pass: the bucket sort gives exactly the stable comparison sort's permutation
/// of bare keys and of (value, weight) pairs (with equal values under different
/// weights, so a reordering would show), and the exact statistics are bit for bit
/// the reference's.
#[test]
fn bucket_sort_and_exact_stats_on_every_shape() {
    for (len, seed) in [
        (0, 1),
        (1, 2),
        (2, 3),
        (INSERTION_MAX, 4),
        (INSERTION_MAX + 1, 5),
        (100, 6),
        (5000, 7),
        (EXACT_LIMIT + 1, 8),
        (300_000, 9),
    ] {
        for (name, vals) in shapes(len, seed) {
            // Bare keys, as the unit-weight path sorts them.
            let mut keys: Vec<u64> = vals.iter().map(|v| v.to_bits()).collect();
            let value = if sort_samples(&mut keys) {
                f64::from_bits
            } else {
                from_total_order_key
            };
            let mut sorted = vals.clone();
            sorted.sort_by(f64::total_cmp);
            assert!(
                keys.iter()
                    .map(|&k| value(k).to_bits())
                    .eq(sorted.iter().map(|v| v.to_bits())),
                "{name}, len {len}: keys"
            );
            for unit in [true, false] {
                let w: Vec<(f64, u64)> = vals
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| (v, if unit { 1 } else { 1 + (k as u64 * 7) % 11 }))
                    .collect();
                assert_sorts_stably(&w, &format!("{name}, len {len}, unit {unit}: pairs"));
                let mut r = w.clone();
                assert_eq!(
                    bits(&exact_stats(&w)),
                    bits(&reference_stats(&mut r)),
                    "{name}, len {len}, unit {unit}: stats"
                );
            }
        }
    }
}

/// Equal values with different weights: the weighted sums add v * c in the order
/// the samples came, so the sort must keep that order among equal values; and a
/// sketch's statistics leave its samples in that order.
#[test]
fn equal_values_keep_their_order_and_the_samples_are_left_as_added() {
    // Weights whose products with 0.1 round differently, in both orders.
    let w: Vec<(f64, u64)> = (0..2000u64)
        .map(|k| {
            let v = [0.1, 0.7, 0.1 + f64::EPSILON][(k % 3) as usize];
            (v, 1 + (k * 2_654_435_761) % 1_000_003)
        })
        .collect();
    let mut a = w.clone();
    let mut b = w.clone();
    sort_by_total_order(&mut a);
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    assert!(a == b);
    let mut r = w.clone();
    assert_eq!(bits(&exact_stats(&w)), bits(&reference_stats(&mut r)));
    let mut s = Sketch::default();
    for &(v, c) in &w {
        s.add(v, c);
    }
    assert_eq!(bits(&s.stats()), bits(&reference_stats(&mut w.clone())));
    // Left as added: values, and weights (a weight that is not 1 is there).
    let added: Vec<(f64, u64)> = (0..s.values.len())
        .map(|i| (s.values[i], s.weights.get(i).copied().unwrap_or(1)))
        .collect();
    assert_eq!(added, w);
}

/// A run of a known number of requests reserves room for them in its per-request
/// sketches, never more than the exact limit, and nothing in a bucketed sketch.
#[test]
fn reserve_is_capped_at_the_exact_limit() {
    let mut r = Recorder::new(SimTime::ZERO, false);
    r.expect_requests(1000);
    assert!(r.requests.ttft.values.capacity() >= 1000);
    assert!(r.requests.e2el.values.capacity() >= 1000);
    assert!(r.requests.tpot.values.capacity() >= 1000);
    let mut r = Recorder::new(SimTime::ZERO, false);
    r.expect_requests(u64::MAX);
    assert!(r.requests.ttft.values.capacity() <= EXACT_LIMIT + 1 + 16);
    let mut s = Sketch::default();
    for k in 0..=EXACT_LIMIT {
        s.add(k as f64, 1);
    }
    assert!(s.bucketed);
    s.reserve(1000);
    assert_eq!(s.values.capacity(), 0);
}

/// A sketch that switched to buckets has the running sums, minimum and maximum it
/// would have had keeping them up to date from the first sample.
#[test]
fn bucketed_sums_replay_the_samples_in_order() {
    let mut s = Sketch::default();
    let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    for k in 0..(EXACT_LIMIT as u64 + 5000) {
        let v = ((k * 7919) % 10_007) as f64 * 0.37 + 0.01;
        let w = 1 + k % 3;
        s.add(v, w);
        sum += v * w as f64;
        sum_sq += v * v * w as f64;
        min = min.min(v);
        max = max.max(v);
    }
    assert!(s.bucketed);
    assert_eq!(s.sum.to_bits(), sum.to_bits());
    assert_eq!(s.sum_sq.to_bits(), sum_sq.to_bits());
    assert_eq!((s.min, s.max), (min, max));
    assert_eq!(
        s.count(),
        (0..EXACT_LIMIT as u64 + 5000)
            .map(|k| 1 + k % 3)
            .sum::<u64>()
    );
}

/// Unit weights are not stored; the first weight that is not 1 fills in the ones
/// before it, so the statistics (and a switch to buckets) see every weight. One
/// scratch shared by several sketches, big and small, unit and weighted, gives each
/// the statistics of its own.
#[test]
fn weights_are_stored_from_the_first_that_is_not_one() {
    let mut s = Sketch::default();
    let mut w = Vec::new();
    for k in 0..5000u64 {
        let c = if k == 3000 || k > 4000 { 1 + k % 7 } else { 1 };
        let v = 0.5 + (k * 7919 % 1013) as f64 * 1e-3;
        s.add(v, c);
        w.push((v, c));
        if k < 3000 {
            assert!(s.weights.is_empty());
        }
    }
    assert_eq!(s.weights.len(), s.values.len());
    assert_eq!(bits(&s.stats()), bits(&reference_stats(&mut w.clone())));

    let mut unit = Sketch::default();
    let mut small = Sketch::default();
    for k in 0..3000u64 {
        unit.add((k * 31 % 977) as f64, 1);
    }
    small.add(2.0, 3);
    small.add(1.0, 1);
    let mut sc = SortScratch::default();
    for sk in [&s, &unit, &small, &unit, &s] {
        assert_eq!(bits(&sk.stats_in(&mut sc)), bits(&sk.stats()));
    }
}
