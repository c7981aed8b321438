//! Reading `benchmark_serving` result JSONs of the Lambda studies in tests: the
//! per-request lists as numbers, their median, and equality to the last digits the
//! JSON keeps.

/// A JSON array of numbers.
pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The median, as Python's `numpy.median` takes it (the mean of the middle two).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Equal to 12 significant digits (what a float printed by `json.dump` and re-read
/// keeps of a sum of many terms).
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}
