//! SLOs, goodput and cost figures on hand-worked timelines: goodput and percentile
//! attainment on a sequential engine whose steps last exactly 10 ms, per-request
//! judging as requests stream by (equal to judging the kept records), and the cost
//! figures of a run (physical GPUs × price, $/M tokens) for plain, MPS and MIG
//! deployments and for the shipped and user price tables.

mod common;

use common::{profile, single, slow_gpu, tiny_model, trace_workload};
use infersim::config::parse_experiment;
use infersim::cost::CostModel;
use infersim::metrics::{Slo, SloSummary};
use infersim::policy::Policy;
use infersim::report::{run_row, RunSpec};
use infersim::sim::{run, RunOptions, Scenario};
use infersim::specs::GpuSpec;
use infersim::time::Dur;
use infersim::workload::Stop;
use std::path::Path;

/// A GPU so fast that the tiny model's kernels round to 0 ns: a step lasts exactly
/// its CPU overhead (a flat roofline).
fn instant_gpu() -> GpuSpec {
    GpuSpec {
        tensor_tflops: 1e12,
        memory_bandwidth_gbps: 1e12,
        ..slow_gpu()
    }
}

fn opts(step_by_step: bool) -> RunOptions {
    RunOptions {
        keep_records: true,
        check_invariants: true,
        step_by_step,
    }
}

/// Ten requests sent at 0 of 5 output tokens each, served one at a time in 10 ms
/// steps: request k (1..=10) has its first token at 50(k−1) + 10 ms and its last at
/// 50k ms, so TTFT = 50k − 40 ms, E2E = 50k ms, TPOT and every gap 10 ms; the run
/// lasts 500 ms.
fn ten_in_a_row(slo: Slo) -> Scenario {
    let cost = CostModel::new(&tiny_model(), &instant_gpu(), &profile(0.0, 10_000.0, 0.0)).unwrap();
    let mut sc = single(
        Policy::Sequential,
        cost,
        16,
        1000,
        trace_workload(&[(0.0, 4, 5); 10]),
    );
    sc.client.slo = Some(slo);
    sc
}

fn slo(bounds: &[(&str, f64)]) -> Slo {
    let mut s = Slo::default();
    for &(k, b) in bounds {
        assert!(s.set(k, b), "{k}");
    }
    s
}

fn slo_of(sc: &Scenario) -> SloSummary {
    let fast = run(sc, 0, opts(false)).expect("runs");
    let slow = run(sc, 0, opts(true)).expect("runs");
    assert_eq!(fast.summary, slow.summary, "fast-forward = step by step");
    assert_eq!(fast.summary.duration, 0.5);
    fast.summary.slo.clone().expect("an [slo] run has SLO keys")
}

#[test]
fn goodput_counts_the_requests_within_every_bound() {
    // TTFT <= 310 ms: requests 1..=7 (TTFT 10, 60, ..., 310). E2E <= 450 ms: 1..=9.
    let s = slo_of(&ten_in_a_row(slo(&[
        ("p50_ttft_ms", 310.0),
        ("p99_ttft_ms", 310.0),
        ("p90_e2el_ms", 450.0),
        ("p99_tpot_ms", 10.0),
        ("p99_itl_ms", 10.0),
    ])));
    // 7 requests within all bounds over 0.5 s.
    assert_eq!(s.goodput, 14.0);
    assert_eq!(s.slo_attainment, 0.7);
    let rows: Vec<(&str, f64, bool)> = s
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.attainment, r.met))
        .collect();
    assert_eq!(
        rows,
        [
            ("p50_ttft_ms", 0.7, true),
            ("p99_ttft_ms", 0.7, false),
            ("p99_tpot_ms", 1.0, true),
            ("p99_itl_ms", 1.0, true),
            ("p90_e2el_ms", 0.9, true),
        ]
    );
    assert!(!s.slo_met, "p99 TTFT does not hold");
}

/// [`ten_in_a_row`] cut off by a timed end at `end_ms` (no warm-up).
fn ten_cut_at(slo: Slo, end_ms: u64) -> SloSummary {
    let mut sc = ten_in_a_row(slo);
    sc.workload.stop = Stop::Timed {
        duration: Dur(end_ms * 1_000_000),
        warmup: Dur::ZERO,
    };
    let fast = run(&sc, 0, opts(false)).expect("runs");
    let slow = run(&sc, 0, opts(true)).expect("runs");
    assert_eq!(fast.summary, slow.summary, "fast-forward = step by step");
    fast.summary.slo.clone().expect("an [slo] run has SLO keys")
}

#[test]
fn requests_in_flight_at_a_timed_end_count_against_the_bounds_they_missed() {
    // Ended at 275 ms: requests 1..=5 completed (TTFT 10, 60, ..., 210 ms; E2E 50,
    // ..., 250 ms); request 6 has its first token (at 260 ms) and is decoding;
    // 7..=10 wait, 275 ms after they were sent.
    let s = ten_cut_at(slo(&[("p90_ttft_ms", 100.0), ("p50_e2el_ms", 270.0)]), 275);
    // TTFT: 2 completed within (1, 2); 3 completed and all 5 in flight missed it.
    assert_eq!(s.rows[0].attainment, 0.2);
    assert!(!s.rows[0].met);
    // E2E: the 5 completed within; the 5 in flight are past 270 ms.
    assert_eq!(s.rows[1].attainment, 0.5);
    assert!(s.rows[1].met, "50 % within at p50 holds");
    assert_eq!(s.unfinished_late, 5);
    assert_eq!(s.slo_attainment, 0.2);
    assert_eq!(s.goodput, 2.0 / 0.275);
    // Looser bounds nobody in flight has missed yet: judged on the completed only.
    let s = ten_cut_at(slo(&[("p90_ttft_ms", 280.0), ("p50_e2el_ms", 280.0)]), 275);
    assert_eq!(s.unfinished_late, 0);
    assert_eq!((s.rows[0].attainment, s.rows[1].attainment), (1.0, 1.0));
    assert!(s.slo_met);
}

#[test]
fn a_timed_run_that_judged_no_request_meets_no_slo() {
    // Ended at 5 ms, before the first step: nothing completed, nobody has waited
    // past 100 ms. Before in-flight requests were judged this held vacuously.
    let s = ten_cut_at(slo(&[("p99_ttft_ms", 100.0)]), 5);
    assert_eq!(s.unfinished_late, 0);
    assert_eq!(s.rows[0].attainment, 0.0);
    assert!(!s.slo_met);
    assert_eq!(s.slo_attainment, 0.0);
}

/// The drain: in [`ten_in_a_row`] request 10 is admitted at 450 ms and the run ends
/// at 500 ms, so the last 50 ms (a tenth of the run: no note yet) had nothing new to
/// admit; a long last request makes most of the run drain, and the note appears.
#[test]
fn the_drain_after_the_last_admission_is_measured_and_noted_past_a_tenth() {
    let sc = ten_in_a_row(slo(&[("p99_ttft_ms", 1e6)]));
    let r = run(&sc, 0, opts(false)).expect("runs").summary;
    assert!((r.drain_s.expect("a request-count run") - 0.05).abs() < 1e-12);
    assert_eq!(r.drain_note(), None);
    // Requests 1..=9 of 1 output token and request 10 of 41: request 10 is admitted
    // at 9 × 10 = 90 ms and ends at 90 + 410 = 500 ms: a 410 ms drain of 500 ms.
    let cost = CostModel::new(&tiny_model(), &instant_gpu(), &profile(0.0, 10_000.0, 0.0)).unwrap();
    let mut rows = vec![(0.0, 4, 1); 9];
    rows.push((0.0, 4, 41));
    let sc = single(Policy::Sequential, cost, 64, 1000, trace_workload(&rows));
    let r = run(&sc, 0, opts(false)).expect("runs").summary;
    assert!((r.duration - 0.5).abs() < 1e-12, "{}", r.duration);
    assert!((r.drain_s.unwrap() - 0.41).abs() < 1e-12);
    let note = r.drain_note().expect("82 % of the run is drain");
    assert!(
        note.contains("the last 0.4 s of the 0.5 s run (82 %)"),
        "{note}"
    );
}

#[test]
fn a_bound_just_below_a_latency_excludes_that_request() {
    // 309.999 ms leaves request 7 (TTFT 310 ms) out; TPOT 9.999 leaves every
    // request of more than one token out, so no request is good.
    let s = slo_of(&ten_in_a_row(slo(&[("p50_ttft_ms", 309.999)])));
    assert_eq!(s.goodput, 12.0);
    assert_eq!(s.rows[0].attainment, 0.6);
    let s = slo_of(&ten_in_a_row(slo(&[("p50_tpot_ms", 9.999)])));
    assert_eq!((s.goodput, s.slo_attainment, s.slo_met), (0.0, 0.0, false));
    // ITL is judged over the gaps: none within 9.999 ms.
    let s = slo_of(&ten_in_a_row(slo(&[("p50_itl_ms", 9.999)])));
    assert_eq!(s.rows[0].attainment, 0.0);
}

#[test]
fn without_slo_the_summary_has_no_slo_keys() {
    let mut sc = ten_in_a_row(Slo::default());
    sc.client.slo = None;
    let r = run(&sc, 0, opts(false)).unwrap();
    assert!(r.summary.slo.is_none());
    let keys = r.summary.to_json();
    assert!(!keys.contains_key("goodput") && !keys.contains_key("slo_attainment"));
}

const EXPERIMENT: &str = r#"
name = "slo-cost"
[hardware]
gpu = "a100-80gb"
num_gpus = 2
[engine]
model = "llama-3.1-8b"
policy = "continuous"
[workload]
arrival = "poisson"
rate_per_s = 20.0
num_requests = 300
input_tokens = { dist = "uniform", mean = 500, range_ratio = 0.8 }
output_tokens = { dist = "uniform", mean = 150, range_ratio = 0.9 }
[slo]
p90_ttft_ms = 200
p99_e2el_ms = 6000.0
p50_tpot_ms = 20.0
"#;

fn first_row(text: &str, dir: &Path) -> serde_json::Value {
    let exp = parse_experiment(text, &dir.join("e.toml")).unwrap_or_else(|e| panic!("{e:?}"));
    let spec = RunSpec {
        point: 0,
        replication: 0,
        seed: 3,
    };
    run_row(&exp.name, &exp.points[0], spec).unwrap().to_json()
}

#[test]
fn streaming_judgement_equals_judging_the_records() {
    let exp = parse_experiment(EXPERIMENT, Path::new("e.toml")).unwrap();
    let sc = &exp.points[0].scenario;
    let r = run(sc, 3, opts(false)).unwrap();
    let recs = r.records.as_ref().expect("kept");
    let ms = |s: f64| s * 1e3;
    let good = recs
        .iter()
        .filter(|q| {
            let ttft = ms(q.first_token_s - q.arrival_s);
            let e2e = ms(q.finish_s - q.arrival_s);
            let tpot = (e2e - ttft) / (q.output_tokens - 1).max(1) as f64;
            ttft <= 200.0 && e2e <= 6000.0 && (q.output_tokens <= 1 || tpot <= 20.0)
        })
        .count();
    let ttft_ok = recs
        .iter()
        .filter(|q| ms(q.first_token_s - q.arrival_s) <= 200.0)
        .count();
    let s = r.summary.slo.as_ref().unwrap();
    assert!(
        good > 0 && good < recs.len(),
        "a test that separates: {good}"
    );
    assert!((s.goodput - good as f64 / r.summary.duration).abs() < 1e-9);
    assert_eq!(s.rows[0].name, "p90_ttft_ms");
    assert_eq!(s.rows[0].attainment, ttft_ok as f64 / recs.len() as f64);
    // The p90 TTFT SLO holds exactly when at least 90 % are within 200 ms.
    assert_eq!(s.rows[0].met, ttft_ok * 10 >= recs.len() * 9);
    // Not keeping records judges the same.
    let streamed = run(
        sc,
        3,
        RunOptions {
            keep_records: false,
            ..opts(false)
        },
    )
    .unwrap();
    assert_eq!(streamed.summary, r.summary);
}

#[test]
fn cost_figures_by_hand_for_the_spec_price_a_provider_and_a_user_file() {
    let dir = tempfile::tempdir().unwrap();
    let row = first_row(EXPERIMENT, dir.path());
    // Default provider: the a100-80gb spec file's $3.4309 per GPU-hour, 2 GPUs.
    assert_eq!(row["cost_per_hour_usd"], 2.0 * 3.4309);
    let out = row["output_throughput"].as_f64().unwrap();
    let total = row["total_token_throughput"].as_f64().unwrap();
    let per_m = row["usd_per_million_output_tokens"].as_f64().unwrap();
    assert!((per_m - 2.0 * 3.4309 / (out * 3600.0) * 1e6).abs() < 1e-9);
    let per_m_all = row["usd_per_million_tokens"].as_f64().unwrap();
    assert!((per_m_all - 2.0 * 3.4309 / (total * 3600.0) * 1e6).abs() < 1e-9);
    assert!(row["goodput"].as_f64().unwrap() <= row["request_throughput"].as_f64().unwrap());
    assert!(row["slo_p90_ttft_ms_met"].is_boolean());

    // A shipped provider and kind: RunPod's A100 80GB spot row, $1.39.
    let spot = EXPERIMENT.replace(
        "num_gpus = 2",
        "num_gpus = 2\nprice_provider = \"runpod\"\nprice_kind = \"spot\"",
    );
    assert_eq!(
        first_row(&spot, dir.path())["cost_per_hour_usd"],
        2.0 * 1.39
    );

    // A user's own table, relative to the experiment file.
    std::fs::write(
        dir.path().join("my-prices.toml"),
        "provider = \"mine\"\n[[price]]\ngpu = \"a100-80gb\"\nkind = \"reserved\"\nusd_per_gpu_hour = 1.5\ndate = \"2026-12-01\"\nsource = \"our contract\"\n",
    )
    .unwrap();
    let mine = EXPERIMENT.replace(
        "num_gpus = 2",
        "num_gpus = 2\nprice_file = \"my-prices.toml\"\nprice_kind = \"reserved\"",
    );
    assert_eq!(first_row(&mine, dir.path())["cost_per_hour_usd"], 3.0);
}

#[test]
fn shared_gpus_cost_the_gpus_not_the_pods() {
    let dir = tempfile::tempdir().unwrap();
    // Two MPS pods on each of 2 GPUs: 2 GPUs' price.
    let mps = EXPERIMENT
        .replace(
            "num_gpus = 2",
            "num_gpus = 2\ninstances_per_gpu = 2\nsharing = \"mps\"",
        )
        .replace(
            "policy = \"continuous\"",
            "policy = \"continuous\"\ngpu_memory_utilization = 0.45",
        );
    assert_eq!(
        first_row(&mps, dir.path())["cost_per_hour_usd"],
        2.0 * 3.4309
    );
    // Two 3g.40gb MIG slices on each of 2 GPUs: the 2 whole GPUs.
    let mig = EXPERIMENT.replace("num_gpus = 2", "num_gpus = 2\nmig = \"3g.40gb\"");
    let row = first_row(&mig, dir.path());
    assert_eq!(row["mig_slices"], 4);
    assert_eq!(row["cost_per_hour_usd"], 2.0 * 3.4309);
    // A GPU with no known price: null figures, not zero.
    let gb = EXPERIMENT.replace("a100-80gb", "gb200");
    let row = first_row(&gb, dir.path());
    assert!(row["cost_per_hour_usd"].is_null());
    assert!(row["usd_per_million_tokens"].is_null());
}
