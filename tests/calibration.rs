//! Calibration: identifiability on simulator-made measurements, determinism of the
//! fit, and the accuracy targets of the calibration set on the shipped profiles.

use infersim::calibrate::{fit, fit_record, profile_text, residuals, FitSpec, Param};
use infersim::config::parse_experiment;
use infersim::profile::Profile;
use infersim::reproduce::reproduce;
use infersim::study::{load_studies, replay, StudyPoint};
use std::path::Path;

fn flat_prior() -> Profile {
    let mut p = prior();
    p.eta_compute = Some(0.7);
    p.eta_bandwidth = Some(0.8);
    p.gpu_step_overhead_us = 300.0;
    p
}

fn prior() -> Profile {
    infersim::profile::read_profile(&infersim::profile::profiles_dir().join("vllm.toml")).unwrap()
}

/// Synthetic study points on a T4: decode-heavy offline batches of 1, 8 and 64
/// (weights, per-step and per-sequence costs), long-context decodes whose KV reads
/// separate bandwidth from fixed costs, and a long compute-bound prefill (tensor
/// throughput).
fn synthetic_points(truth: &Profile) -> Vec<StudyPoint> {
    let text = r#"
name = "synthetic"
[hardware]
gpu = "t4"
[engine]
model = "llama-3.2-3b-instruct"
policy = "continuous"
max_model_len = 4096
[engine.continuous]
max_num_batched_tokens = 4096
[workload]
arrival = "offline"
batch_size = 1
num_requests = 64
input_tokens = { dist = "fixed", value = 10 }
output_tokens = { dist = "fixed", value = 60 }
[[variant]]
name = "decode"
[[variant]]
name = "prefill"
workload = { input_tokens = { dist = "fixed", value = 3000 }, output_tokens = { dist = "fixed", value = 2 }, num_requests = 2 }
[[variant]]
name = "longdecode"
workload = { input_tokens = { dist = "fixed", value = 2000 }, output_tokens = { dist = "fixed", value = 400 }, num_requests = 16 }
[sweep]
"workload.batch_size" = [1, 8, 64]
"#;
    let exp = parse_experiment(text, Path::new("synthetic.toml")).unwrap();
    exp.points
        .into_iter()
        .filter(|p| match p.params[0].1.as_str() {
            Some("prefill") => p.params[1].1.as_integer() == Some(1),
            Some("longdecode") => p.params[1].1.as_integer() == Some(8),
            _ => true,
        })
        .map(|p| {
            let metric = if p.params[0].1.as_str() == Some("prefill") {
                "mean_ttft_ms"
            } else {
                "mean_batch_latency_ms"
            };
            let mut sp = StudyPoint {
                study: "synthetic".into(),
                label: format!("{:?}", p.params),
                measured: Vec::new(),
                calibrate: true,
                point: p,
                experiment: "synthetic.toml".into(),
            };
            let sim = replay(&sp, Some(truth), 1).unwrap();
            sp.measured
                .push((metric.to_string(), sim.metric(metric).unwrap()));
            sp
        })
        .collect()
}

/// A flat roofline (the fit's identifiability is a property of the fit, not of the
/// kernel model).
fn truth() -> Profile {
    let mut t = flat_prior();
    t.eta_compute = Some(0.55);
    t.eta_bandwidth = Some(0.68);
    t.gpu_step_overhead_us = 900.0;
    t.gpu_seq_overhead_us = 40.0;
    t.cpu_step_overhead_us = 0.0;
    t.cpu_seq_overhead_us = 0.0;
    t.cpu_overlap = 0.0;
    t
}

fn spec(start: Profile) -> FitSpec {
    FitSpec {
        prior: start,
        warm: None,
        free: vec![
            Param::EtaCompute,
            Param::EtaBandwidth,
            Param::GpuStep,
            Param::GpuSeq,
        ],
        prior_weight: 0.0,
        metrics: Vec::new(),
        seed: 1,
        max_evals: 1500,
    }
}

/// Measurements the simulator made with known parameters are fitted back to them.
#[test]
fn identifiability_recovers_known_parameters_within_2_percent() {
    let truth = truth();
    let points = synthetic_points(&truth);
    assert_eq!(points.len(), 5);
    let mut start = flat_prior();
    start.cpu_step_overhead_us = 0.0;
    start.cpu_seq_overhead_us = 0.0;
    start.cpu_overlap = 0.0;
    let r = fit(&spec(start), &points);
    for p in [
        Param::EtaCompute,
        Param::EtaBandwidth,
        Param::GpuStep,
        Param::GpuSeq,
    ] {
        let (got, want) = (p.get(&r.profile), p.get(&truth));
        assert!(
            ((got - want) / want).abs() < 0.02,
            "{}: fitted {got}, true {want}",
            p.name()
        );
    }
    for res in residuals(&points, Some(&r.profile), 1).unwrap() {
        assert!(res.rel_error().abs() < 0.005, "{res:?}");
    }
}

/// The same inputs give the same profile bytes.
#[test]
fn the_fit_is_deterministic() {
    let points = synthetic_points(&truth());
    let text = || {
        let mut s = spec(flat_prior());
        s.max_evals = 300;
        let r = fit(&s, &points);
        let res = residuals(&points, Some(&r.profile), 1).unwrap();
        let mut p = r.profile.clone();
        p.fit = Some(fit_record("2026-01-01", 1, &["synthetic".into()], &r, &res));
        profile_text(&p, "test")
    };
    assert_eq!(text(), text());
}

/// Calibration-set targets that the shipped stack profile misses, with the diagnosis
/// (README, "Calibration"). With the GPU part fixed by measured kernels and one vLLM
/// stack profile for every GPU, inside the plausibility bands:
/// - the L4 study (gemma-3-1b, a March 2025 Vertex AI vLLM image of unknown version)
///   runs 29–33 % slower per request than the shared stack predicts: its engine spends
///   more per sequence per step than V1's bands and process split allow, as the V0
///   engine of that time did (API server and engine in one process). Fitting it would
///   need a stack profile of its own engine version.
/// - the T4 study's step time grows 0.45 ms per extra sequence from batch 1 to 8 (the
///   model: 0.09 ms); nothing on the GPU of a memory-bound 3B decode explains it, so it
///   is host CPU work on the T4's slow host, which one stack profile for every host
///   cannot carry: batch 8 and the API run, both at 8 sequences, come out 5.4–5.8 %
///   fast (±5 % allowed); batches 1–4 are met.
const KNOWN_MISSES: &[(&str, &str, &str)] = &[
    ("l4-gemma-3-1b-vllm", "single pod", "request_throughput"),
    ("l4-gemma-3-1b-vllm", "single pod", "median_e2el_ms"),
    (
        "t4-llama-3.2-3b-vllm",
        "offline batch 8",
        "mean_batch_latency_ms",
    ),
    (
        "t4-llama-3.2-3b-vllm",
        "offline batch 8",
        "output_throughput",
    ),
    ("t4-llama-3.2-3b-vllm", "api v2", "duration"),
    ("t4-llama-3.2-3b-vllm", "api v2", "median_e2el_ms"),
];

/// `infersim reproduce` on the shipped profiles meets every calibration-set target
/// but the known misses above (a new miss fails the test, with the whole table).
#[test]
fn reproduce_meets_the_calibration_targets() {
    let studies = load_studies(&[]).unwrap();
    assert_eq!(studies.len(), 5);
    let report = reproduce(&studies, 1).unwrap();
    let with_target = report.rows.iter().filter(|r| r.target.is_some()).count();
    assert!(with_target >= 60, "{with_target} targets");
    let missed: Vec<(String, String, String)> = report
        .rows
        .iter()
        .filter(|r| r.pass() == Some(false))
        .map(|r| {
            (
                r.res.study.clone(),
                r.res.point.clone(),
                r.res.metric.clone(),
            )
        })
        .collect();
    let unknown: Vec<_> = missed
        .iter()
        .filter(|(s, p, m)| {
            !KNOWN_MISSES
                .iter()
                .any(|(ks, kp, km)| s == ks && p.contains(kp) && m == km)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "new misses {unknown:?}\n{}",
        report.table()
    );
    assert!(
        missed.len() <= 8,
        "{} misses\n{}",
        missed.len(),
        report.table()
    );
    // The one stack profile is calibrated and used for every study of the set.
    for r in report.rows.iter().filter(|r| r.calibrate) {
        assert!(
            r.calibrated,
            "{} uses uncalibrated profile {}",
            r.res.study, r.profile
        );
    }
}
