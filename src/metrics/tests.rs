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
    assert!(big.buckets.len() < 20_000 && big.units.is_empty() && big.pairs.is_empty());
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
    let s = r.take_summary(4.0);
    assert_eq!(s.latency.ttft.mean, 500.0);
    assert_eq!(s.latency.tpot.mean, 100.0);
    assert_eq!(s.latency.e2el.mean, 1500.0);
    assert_eq!(s.request_throughput, 0.25);
    assert_eq!(s.total_token_throughput, 21.0 / 4.0);
    assert!(s.latency.batch.is_none());
}

/// The statistics by the slow reference: the moments summed over the samples in the
/// order they came, then a stable comparison sort and [`percentile`] (a walk from the
/// start) for every quantile. Leaves `w` sorted.
fn reference_stats(w: &mut [(f64, u64)]) -> Stats {
    let (n, mean, std) = moments(w.iter().copied());
    w.sort_by(|a, b| a.0.total_cmp(&b.0));
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

/// The total-order key orders as `total_cmp` does (the sign of a zero included), and
/// inverts.
#[test]
fn total_order_key_orders_as_total_cmp() {
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
/// percentile, with unit and with mixed weights (negative values, both zeros and
/// subnormals included).
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
            assert_eq!(bits(&exact_stats_of(&a)), bits(&reference_stats(&mut b)));
        }
    }
}

/// Sample sets of awkward shapes, each `len` long: a heavy tail (most samples
/// small, a few huge), most samples one value (many equal keys around the
/// percentiles), only a few distinct values, consecutive floats, negative values
/// only and both signs (total-order keys instead of bits), a cluster beside an
/// outlier, and uniform and latency-like spreads.
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

/// On every shape, at every size from trivial to past the exact limit, with unit
/// and with mixed weights (equal values under different weights, and ranges small
/// enough to be sorted and large enough to be split many times): the exact
/// statistics are bit for bit the reference's.
#[test]
fn exact_stats_on_every_shape() {
    for (len, seed) in [
        (0, 1),
        (1, 2),
        (2, 3),
        (SELECT_SORT_MAX, 4),
        (SELECT_SORT_MAX + 1, 5),
        (100, 6),
        (5000, 7),
        (EXACT_LIMIT + 1, 8),
        (300_000, 9),
    ] {
        for (name, vals) in shapes(len, seed) {
            for unit in [true, false] {
                let w: Vec<(f64, u64)> = vals
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| (v, if unit { 1 } else { 1 + (k as u64 * 7) % 11 }))
                    .collect();
                let mut r = w.clone();
                assert_eq!(
                    bits(&exact_stats_of(&w)),
                    bits(&reference_stats(&mut r)),
                    "{name}, len {len}, unit {unit}: stats"
                );
            }
        }
    }
}

/// Order statistics asked for in any order, repeated, and past the end are those of
/// the walk over the sorted entries (the percentiles ask in increasing order; the
/// selection must not depend on it), unit and weighted.
#[test]
fn selection_in_any_order_is_the_sorted_walk() {
    let vals: Vec<(f64, u64)> = awkward(3000, 12, false)
        .into_iter()
        .filter(|x| x.0.is_finite())
        .collect();
    for unit in [true, false] {
        let w: Vec<(f64, u64)> = vals
            .iter()
            .map(|&(v, c)| (v, if unit { 1 } else { c }))
            .collect();
        let mut sorted = w.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n: u64 = w.iter().map(|x| x.1).sum();
        // The walk: the first entry whose running weight passes idx, else the last.
        let walk = |idx: u64| {
            let mut acc = 0;
            for &(v, c) in &sorted {
                acc += c;
                if idx < acc {
                    return v.to_bits();
                }
            }
            sorted.last().unwrap().0.to_bits()
        };
        let asks = [
            0,
            n / 2,
            n / 2,
            n - 1,
            1,
            n / 3,
            n + 5,
            7,
            n - 2,
            0,
            n / 2 + 1,
        ];
        let mut keys: Vec<u64> = w.iter().map(|x| total_order_key(x.0)).collect();
        let mut pairs: Vec<(u64, u64)> = w.iter().map(|x| (total_order_key(x.0), x.1)).collect();
        let mut by_key = Selection::new(&mut keys);
        let mut by_pair = Selection::new(&mut pairs);
        for idx in asks {
            let want = walk(idx);
            assert_eq!(
                from_total_order_key(by_pair.at(idx)).to_bits(),
                want,
                "pairs, {idx}"
            );
            if unit {
                assert_eq!(
                    from_total_order_key(by_key.at(idx)).to_bits(),
                    want,
                    "keys, {idx}"
                );
            }
        }
    }
}

/// Equal values with different weights: the weighted sums add v * c in the order
/// the samples came (products that round differently, so another order would show);
/// and a sketch's statistics leave its samples in that order.
#[test]
fn weighted_sums_keep_the_added_order_and_the_samples_are_left_as_added() {
    // Weights whose products with 0.1 round differently, in both orders.
    let w: Vec<(f64, u64)> = (0..2000u64)
        .map(|k| {
            let v = [0.1, 0.7, 0.1 + f64::EPSILON][(k % 3) as usize];
            (v, 1 + (k * 2_654_435_761) % 1_000_003)
        })
        .collect();
    let mut r = w.clone();
    assert_eq!(bits(&exact_stats_of(&w)), bits(&reference_stats(&mut r)));
    let mut s = Sketch::default();
    for &(v, c) in &w {
        s.add(v, c);
    }
    assert_eq!(bits(&s.stats()), bits(&reference_stats(&mut w.clone())));
    // Left as added: values, and weights (a weight that is not 1 is there).
    let added: Vec<(f64, u64)> = s
        .pairs
        .iter()
        .map(|&(b, c)| (f64::from_bits(b), c))
        .collect();
    assert_eq!(added, w);
    // Taking the statistics gives the same and leaves the sketch empty.
    assert_eq!(
        bits(&s.take_stats()),
        bits(&reference_stats(&mut w.clone()))
    );
    assert!(s.pairs.is_empty() && s.units.is_empty() && s.count() == 0);
}

/// A run of a known number of requests reserves room for them in its per-request
/// sketches, never more than the exact limit, and nothing in a bucketed sketch.
#[test]
fn reserve_is_capped_at_the_exact_limit() {
    let mut r = Recorder::new(SimTime::ZERO, false);
    r.expect_requests(1000);
    assert!(r.requests.ttft.units.capacity() >= 1000);
    assert!(r.requests.e2el.units.capacity() >= 1000);
    assert!(r.requests.tpot.units.capacity() >= 1000);
    let mut r = Recorder::new(SimTime::ZERO, false);
    r.expect_requests(u64::MAX);
    assert!(r.requests.ttft.units.capacity() <= EXACT_LIMIT + 1 + 16);
    let mut s = Sketch::default();
    for k in 0..=EXACT_LIMIT {
        s.add(k as f64, 1);
    }
    assert!(s.bucketed);
    s.reserve(1000);
    assert_eq!(s.units.capacity(), 0);
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

/// Unit weights are not stored; the first weight that is not 1 moves the samples
/// before it into the pairs with weight 1, so the statistics (and a switch to
/// buckets) see every weight. Taking the statistics of sketches big and small, unit
/// and weighted, gives those of a copy left as it was.
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
            assert!(s.pairs.is_empty() && s.units.len() == k as usize + 1);
        } else {
            assert!(s.units.is_empty() && s.pairs.len() == k as usize + 1);
        }
    }
    assert_eq!(bits(&s.stats()), bits(&reference_stats(&mut w.clone())));

    let mut unit = Sketch::default();
    let mut small = Sketch::default();
    for k in 0..3000u64 {
        unit.add((k * 31 % 977) as f64, 1);
    }
    small.add(2.0, 3);
    small.add(1.0, 1);
    for sk in [&s, &unit, &small] {
        let kept = sk.stats();
        assert_eq!(bits(&sk.stats()), bits(&kept));
        assert_eq!(bits(&sk.clone().take_stats()), bits(&kept));
    }
}
