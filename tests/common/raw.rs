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

/// A result's TTFT and ITL means and medians, total output tokens and output
/// throughput are those of its own per-request lists (`ttfts`, `itls`, `output_lens`,
/// `duration`): nothing was lost or altered in the transfer of file `rel`.
pub fn assert_summaries_follow_the_lists(d: &serde_json::Value, rel: &str) {
    let ttfts = f64s(&d["ttfts"]);
    let itls: Vec<f64> = d["itls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(f64s)
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for (key, got) in [
        ("mean_ttft_ms", mean(&ttfts) * 1000.0),
        ("median_ttft_ms", median(ttfts.clone()) * 1000.0),
        ("mean_itl_ms", mean(&itls) * 1000.0),
        ("median_itl_ms", median(itls.clone()) * 1000.0),
    ] {
        let want = d[key].as_f64().unwrap();
        assert!(close(got, want), "{rel} {key}: {got} vs {want}");
    }
    let out: u64 = d["output_lens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(d["total_output_tokens"].as_u64(), Some(out), "{rel}");
    let thr = out as f64 / d["duration"].as_f64().unwrap();
    assert!(
        close(thr, d["output_throughput"].as_f64().unwrap()),
        "{rel}"
    );
}
