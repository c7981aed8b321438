//! `infersim compare` on GuideLLM and AIPerf files: each parses to the requests it
//! holds (numbers worked out by hand in tests/fixtures/bench/README.md), and the
//! same three requests in the vLLM, GuideLLM and AIPerf formats compare identically.

use infersim::calibration::bench_result::{parse_result, read_result, BenchFormat, BenchResult};
use infersim::time::Dur;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bench")
        .join(name)
}

const FILES: [&str; 3] = ["vllm.json", "guidellm.json", "aiperf.jsonl"];

fn read(name: &str) -> BenchResult {
    read_result(&fixture(name), None, None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn each_format_parses_to_the_three_requests_and_their_figures() {
    for name in FILES {
        let r = read(name);
        let want = [(0.0, 100, 9), (0.25, 200, 17), (0.5, 50, 5)];
        let got: Vec<_> = r.requests.iter().map(|q| (q.0, q.1, q.2)).collect();
        let want: Vec<_> = want
            .iter()
            .map(|&(t, i, o)| (Dur::from_secs_f64(t), i, o))
            .collect();
        assert_eq!(got, want, "{name}");
        let m = |k: &str| {
            *r.measured
                .get(k)
                .unwrap_or_else(|| panic!("{name}: no {k}"))
        };
        assert_eq!(m("completed"), 3.0, "{name}");
        assert_eq!(m("duration"), 1.25, "{name}"); // B: sent at 0.25, done 1 s later
        assert_eq!(m("total_input_tokens"), 350.0, "{name}");
        assert_eq!(m("request_throughput"), 2.4, "{name}");
        assert_eq!(m("output_throughput"), 24.8, "{name}"); // 31 tokens / 1.25 s
        assert_eq!(m("median_ttft_ms"), 125.0, "{name}");
        assert_eq!(m("p90_ttft_ms"), 225.0, "{name}"); // rank 1.8: 125 + 0.8 · 125
        assert_eq!(m("median_e2el_ms"), 500.0, "{name}");
        assert_eq!(m("p99_e2el_ms"), 990.0, "{name}"); // rank 1.98: 500 + 0.98 · 500
        assert_eq!(m("median_tpot_ms"), 46.875, "{name}");
        assert!((m("mean_tpot_ms") - 156.25 / 3.0).abs() < 1e-12, "{name}");
    }
}

#[test]
fn the_three_formats_carry_the_same_figures() {
    let v = read("vllm.json");
    for name in &FILES[1..] {
        let r = read(name);
        assert_eq!(r.requests, v.requests, "{name}");
        let keys = |b: &BenchResult| b.measured.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&r), keys(&v), "{name}");
        for (k, x) in &v.measured {
            let y = r.measured[k];
            assert!(
                (x - y).abs() <= 1e-12 * x.abs(),
                "{name} {k}: {y} against {x}"
            );
        }
    }
}

fn compare_rows(file: &str, extra: &[&str]) -> Vec<String> {
    let exp = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("calibration/measurements/lambda-vllm-0.6-multistep/h100-llama-3-8b-10.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infersim"))
        .arg("compare")
        .arg(fixture(file))
        .arg("--experiment")
        .arg(exp)
        .args(extra)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // study, point (the file name), metric, measured, predicted, error: the point dropped.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("compare "))
        .map(|l| {
            let mut f: Vec<&str> = l.split_whitespace().collect();
            f.remove(1);
            f.join(" ")
        })
        .collect()
}

#[test]
fn guidellm_and_aiperf_files_compare_as_the_vllm_file_does() {
    let v = compare_rows("vllm.json", &[]);
    assert_eq!(v.len(), 25, "{v:#?}");
    assert_eq!(compare_rows("guidellm.json", &[]), v);
    assert_eq!(compare_rows("aiperf.jsonl", &[]), v);
    // Forcing the format that the content shows changes nothing.
    assert_eq!(compare_rows("aiperf.jsonl", &["--format", "aiperf"]), v);
}

#[test]
fn files_of_no_known_format_and_wrong_forced_formats_are_named() {
    let e = parse_result(r#"{"results": []}"#, "x.json", None, None).unwrap_err();
    assert_eq!(e.field, "(file)");
    assert!(
        e.message.contains("expected one of") && e.message.contains("GuideLLM"),
        "{e}"
    );
    let e = parse_result("not json\n", "x.txt", None, None).unwrap_err();
    assert!(
        e.message.starts_with("not JSON") && e.message.contains("AIPerf"),
        "{e}"
    );
    let vllm = std::fs::read_to_string(fixture("vllm.json")).unwrap();
    let e = parse_result(&vllm, "v.json", Some(BenchFormat::Guidellm), None).unwrap_err();
    assert_eq!(e.field, "benchmarks");
    let e = parse_result(&vllm, "v.json", Some(BenchFormat::Aiperf), None).unwrap_err();
    assert_eq!(e.field, "line 1");
    let agg = r#"{"request_throughput": {"unit": "requests/sec", "avg": 2.0}, "benchmark_duration": {"unit": "sec", "avg": 1.5}}"#;
    let e = parse_result(agg, "profile_export_aiperf.json", None, None).unwrap_err();
    assert!(e.message.contains("profile_export.jsonl"), "{e}");
    // The other files benchmark tools write are named, with what to give instead.
    for (text, says) in [
        ("benchmarks:\n- type_: generative_benchmark\n", "YAML"),
        ("<!DOCTYPE html>\n<html><body></body></html>\n", "HTML"),
        (
            "Benchmark,Rate,Requests/s,TTFT mean\nsweep,1.0,0.98,12.1\n",
            "CSV",
        ),
    ] {
        let e = parse_result(text, "r.out", None, None).unwrap_err();
        assert_eq!(e.field, "(file)");
        assert!(
            e.message.contains(says) && e.message.contains("JSON"),
            "{says}: {e}"
        );
    }
}

#[test]
fn a_guidellm_sample_or_an_unpicked_benchmark_is_refused() {
    let text = std::fs::read_to_string(fixture("guidellm.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let b = v["benchmarks"][0].clone();
    v["benchmarks"] = serde_json::json!([b.clone(), b.clone()]);
    let two = v.to_string();
    let e = parse_result(&two, "g.json", None, None).unwrap_err();
    assert_eq!(e.field, "benchmarks");
    assert!(e.message.contains("--benchmark"), "{e}");
    assert_eq!(
        parse_result(&two, "g.json", None, Some(1)).unwrap(),
        read("guidellm.json")
    );
    assert!(parse_result(&two, "g.json", None, Some(2)).is_err());
    v["benchmarks"] = serde_json::json!([b]);
    v["benchmarks"][0]["request_totals"]["successful"] = 300.into();
    let e = parse_result(&v.to_string(), "g.json", None, None).unwrap_err();
    assert_eq!(e.field, "benchmarks[0].requests.successful");
    assert!(e.message.contains("sample"), "{e}");
    // A bad number is named down to the request and the key.
    v["benchmarks"][0]["request_totals"]["successful"] = 3.into();
    v["benchmarks"][0]["requests"]["successful"][1]["prompt_tokens"] = "many".into();
    let e = parse_result(&v.to_string(), "g.json", None, None).unwrap_err();
    assert_eq!(
        e.field,
        "benchmarks[0].requests.successful[1].prompt_tokens"
    );
}

#[test]
fn aiperfs_aggregate_json_gives_its_own_figures_for_the_requests_beside_it() {
    let agg = read("aiperf/profile_export_aiperf.json");
    let records = read("aiperf.jsonl");
    assert_eq!(agg.requests, records.requests);
    let m = |k: &str| agg.measured[k];
    assert_eq!(m("duration"), 1.3); // benchmark_duration.avg, not the records' 1.25
    assert_eq!(m("request_throughput"), 3.0 / 1.3);
    assert_eq!(m("completed"), 3.0);
    assert_eq!(m("median_ttft_ms"), 125.0); // time_to_first_token.p50
    assert_eq!(m("p99_e2el_ms"), 990.0); // request_latency.p99
    assert_eq!(m("mean_tpot_ms"), 52.083333333333336); // inter_token_latency.avg
                                                       // The latency statistics agree with those worked out from the records.
    for k in [
        "mean_ttft_ms",
        "std_ttft_ms",
        "p95_tpot_ms",
        "median_e2el_ms",
    ] {
        assert_eq!(agg.measured[k], records.measured[k], "{k}");
    }
    // Without the JSONL beside it the aggregate cannot be replayed, and says so.
    let dir = std::env::temp_dir().join(format!("infersim-aiperf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lone = dir.join("profile_export_aiperf.json");
    std::fs::copy(fixture("aiperf/profile_export_aiperf.json"), &lone).unwrap();
    let e = read_result(&lone, None, None).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert!(e.file.ends_with("profile_export.jsonl"), "{e}");
    assert!(e.message.contains("no per-request records"), "{e}");
}
