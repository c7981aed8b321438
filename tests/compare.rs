//! `infersim compare`: a committed benchmark_serving result of the calibration set,
//! compared against its study point's experiment, predicts exactly what
//! `infersim reproduce` predicts for that point; bad result files get located errors.

mod common;

use infersim::calibration::bench_result::{
    one_point_study, parse_bench_result, read_bench_result, replay_point,
};
use std::path::{Path, PathBuf};

fn study_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/measurements/lambda-vllm-0.6-multistep")
}

const RAW: &str = "raw/prompt_10/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json";
const LABEL: &str = "h100 llama-3-8b, 10 prompts";

#[test]
fn compare_predicts_what_reproduce_predicts_for_the_lambda_point() {
    let dir = study_dir();
    let result = read_bench_result(&dir.join(RAW)).expect("a benchmark result");
    // The requests are the study's CSV rows: 10 requests, all sent at t = 0.
    assert_eq!(result.requests.len(), 10);
    assert_eq!(
        result.requests.iter().map(|r| r.1 as u64).sum::<u64>(),
        1369
    );
    assert_eq!(
        result.requests.iter().map(|r| r.2 as u64).sum::<u64>(),
        1867
    );
    let sp = replay_point(&result, &dir.join("h100-llama-3-8b-10.toml"), "raw").expect("replays");
    let compared = infersim::reproduce::reproduce(&[one_point_study(sp)], 1).expect("runs");

    let studies =
        infersim::study::load_studies(&["lambda-vllm-0.6-multistep".into()]).expect("loads");
    let reproduced = infersim::reproduce::reproduce(&studies, 1).expect("runs");
    let rows: Vec<_> = reproduced
        .rows
        .iter()
        .filter(|r| r.res.point == LABEL)
        .collect();
    assert!(
        rows.len() >= 10,
        "the study measures {} metrics",
        rows.len()
    );
    for r in rows {
        let c = compared
            .rows
            .iter()
            .find(|c| c.res.metric == r.res.metric)
            .unwrap_or_else(|| panic!("compare has no {}", r.res.metric));
        // The same figures, bit for bit: measured copied verbatim, predicted by the same replay.
        common::residual::assert_same_figures(&c.res, &r.res);
    }
}

#[test]
fn the_cli_prints_reproduces_table() {
    let dir = study_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infersim"))
        .arg("compare")
        .arg(dir.join(RAW))
        .arg("--experiment")
        .arg(dir.join("h100-llama-3-8b-10.toml"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // reproduce prints this point's output_throughput as 347.892 measured, 362.679 predicted.
    let line = text
        .lines()
        .find(|l| l.contains(" output_throughput "))
        .expect("an output_throughput row");
    assert!(
        line.contains("347.892") && line.contains("362.679"),
        "{line}"
    );
}

#[test]
fn a_file_that_is_not_a_result_names_the_missing_field() {
    let e = parse_bench_result(r#"{"input_lens": [1]}"#, "x.json").unwrap_err();
    assert_eq!(e.file, "x.json");
    assert_eq!(e.field, "output_lens");
    let e = parse_bench_result("[1, 2]", "x.json").unwrap_err();
    assert_eq!(e.field, "(file)");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args(["compare", "Cargo.toml", "--experiment", "Cargo.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cargo.toml: (file): not JSON"));
}

#[test]
fn a_finite_rate_without_send_times_is_refused_and_with_them_replayed() {
    let base = r#""input_lens": [10, 20], "output_lens": [5, 0], "duration": 1.0, "completed": 2"#;
    let e =
        parse_bench_result(&format!("{{{base}, \"request_rate\": 4.0}}"), "r.json").unwrap_err();
    assert_eq!(e.field, "request_rate");
    let r = parse_bench_result(
        &format!("{{{base}, \"request_rate\": 4.0, \"arrival_s\": [0.0, 0.25]}}"),
        "r.json",
    )
    .expect("parses");
    assert_eq!(r.requests[1].0, infersim::time::Dur::from_secs_f64(0.25));
    // An empty answer (output_len 0) is replayed as one sampled token.
    assert_eq!((r.requests[1].1, r.requests[1].2), (20, 1));
    assert_eq!(r.measured.get("duration"), Some(&1.0));
    assert_eq!(r.measured.get("completed"), Some(&2.0));
}

/// Runs `exp` keeping records, writes the result JSON, compares it against `exp`.
fn round_trip(exp: &Path, request_rate: serde_json::Value) -> infersim::reproduce::Report {
    let e = infersim::config::load_experiment(exp).expect("loads");
    let sc = &e.points[0].scenario;
    let opts = infersim::sim::RunOptions {
        keep_records: true,
        ..Default::default()
    };
    let res = infersim::sim::run(sc, e.seed, opts).expect("runs");
    let json = infersim::experiment::vllm_bench::vllm_bench_json(&res, "m", request_rate)
        .expect("records kept");
    let text = serde_json::to_string(&json).expect("serialises");
    let back = parse_bench_result(&text, "rt.json").expect("reads back");
    let sp = replay_point(&back, exp, "round trip").expect("replays");
    infersim::reproduce::reproduce(&[one_point_study(sp)], e.seed).expect("runs")
}

#[test]
fn a_run_written_as_vllm_bench_json_compares_with_zero_error() {
    let exp = study_dir().join("h100-llama-3-8b-10.toml");
    let report = round_trip(&exp, "inf".into());
    assert!(report.rows.len() >= 15, "{} metrics", report.rows.len());
    for r in &report.rows {
        assert_eq!(r.res.predicted, r.res.measured, "{}", r.res.metric);
    }
}

#[test]
fn a_poisson_run_round_trips_through_its_send_times() {
    let dir = std::env::temp_dir().join(format!("infersim-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(study_dir().join("h100-llama-3-8b-10.toml")).unwrap();
    let head = &base[..base.find("[workload]").unwrap()];
    let exp = dir.join("poisson.toml");
    std::fs::write(
        &exp,
        format!(
            "{head}[workload]\narrival = \"poisson\"\nrate_per_s = 4.0\nnum_requests = 40\ninput_tokens = {{ dist = \"fixed\", value = 200 }}\noutput_tokens = {{ dist = \"fixed\", value = 100 }}\n"
        ),
    )
    .unwrap();
    let report = round_trip(&exp, 4.0.into());
    std::fs::remove_dir_all(&dir).ok();
    assert!(report.rows.len() >= 15, "{} metrics", report.rows.len());
    for r in &report.rows {
        assert_eq!(r.res.predicted, r.res.measured, "{}", r.res.metric);
    }
}

#[test]
fn run_format_vllm_bench_then_compare_prints_zero_errors() {
    let exp = study_dir().join("h100-llama-3-8b-10.toml");
    let dir = std::env::temp_dir().join(format!("infersim-vllm-bench-{}", std::process::id()));
    let bin = env!("CARGO_BIN_EXE_infersim");
    let run = std::process::Command::new(bin)
        .arg("run")
        .arg(&exp)
        .arg("--out")
        .arg(&dir)
        .args(["--quiet", "--force", "--format", "vllm-bench"])
        .output()
        .expect("runs");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = std::process::Command::new(bin)
        .arg("compare")
        .arg(dir.join("vllm-bench/0-0.json"))
        .arg("--experiment")
        .arg(&exp)
        .output()
        .expect("runs");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("compare ")).collect();
    assert!(rows.len() >= 15, "{text}");
    for l in rows {
        // study, point, metric, measured, predicted, error: equal figures, error 0
        // (NaN% where both are 0, reproduce's 0/0).
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f[3], f[4], "{l}");
        assert!(
            f[5] == "+0.0%" || (f[5] == "NaN%" && f[3] == "0.000"),
            "{l}"
        );
    }
}
