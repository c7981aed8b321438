//! The `infersim` binary end to end: outputs, exit codes, determinism across threads.

mod common;

use std::path::Path;

fn infersim(args: &[&str]) -> (i32, String, String) {
    common::infersim_bin(args, &[])
}

const SMALL: &str = r#"
name = "small"
seed = 7
replications = 2
[hardware]
gpu = "a100-80gb"
[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 4096
[engine.static]
batch_size = 16
[workload]
arrival = "poisson"
rate_per_s = 5.0
num_requests = 300
input_tokens = { dist = "uniform", mean = 256, range_ratio = 0.5 }
output_tokens = { dist = "lognormal", mean = 100.0, std = 50.0 }
[sweep]
"engine.policy" = ["continuous", "static"]
"workload.rate_per_s" = [5.0, 15.0, 30.0]
"#;

#[test]
fn step_time_json_has_seconds_and_breakdown() {
    for args in [
        vec![
            "step-time",
            "--gpu",
            "t4",
            "--model",
            "llama-3.2-3b-instruct",
            "--decode-batch",
            "8",
            "--context",
            "200",
            "--json",
        ],
        vec![
            "step-time",
            "--gpu",
            "t4",
            "--model",
            "llama-3.2-3b-instruct",
            "--prefill",
            "512",
            "--json",
        ],
    ] {
        let (code, out, err) = infersim(&args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let s = v["seconds"].as_f64().unwrap();
        assert!(s > 0.02 && s < 1.0, "{s}");
        assert!([
            "compute-bound",
            "memory-bound",
            "overhead-bound",
            "cpu-bound"
        ]
        .contains(&v["bound"].as_str().unwrap()));
        let groups = v["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 8);
        for g in groups {
            assert!(
                ["table", "roofline"].contains(&g["source"].as_str().unwrap()),
                "{g}"
            );
        }
    }
}

#[test]
fn run_writes_every_output_and_is_identical_on_1_and_2_threads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.toml");
    std::fs::write(&file, SMALL).unwrap();
    let mut outs = Vec::new();
    for jobs in ["1", "2"] {
        let out = dir.path().join(format!("out{jobs}"));
        let (code, stdout, err) = infersim(&[
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            jobs,
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains("req/s"), "{stdout}");
        for f in [
            "summary.json",
            "summary.csv",
            "config.resolved.toml",
            "manifest.json",
            "throughput.svg",
            "ttft.svg",
            "tpot.svg",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        outs.push(std::fs::read(out.join("summary.json")).unwrap());
    }
    assert_eq!(
        outs[0], outs[1],
        "summary.json differs between 1 and 2 threads"
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&outs[0]).unwrap();
    assert_eq!(rows.len(), 12);
    // Replication r runs with seed + r; every row names its set-up and swept values.
    assert_eq!(rows[0]["seed"], 7);
    assert_eq!(rows[1]["seed"], 8);
    for r in &rows {
        for k in [
            "engine.policy",
            "workload.rate_per_s",
            "gpu",
            "gpus",
            "instances",
            "sharing",
            "router",
            "completed",
            "request_throughput",
            "p99_ttft_ms",
            "median_tpot_ms",
            "mean_itl_ms",
            "p95_e2el_ms",
            "gpu_busy_fraction",
            "kv_cache_peak_fraction",
            "preemptions",
            "max_queue_len",
        ] {
            assert!(r.get(k).is_some(), "row lacks {k}");
        }
        assert_eq!(r["completed"], 300);
    }
    let csv = std::fs::read_to_string(dir.path().join("out1/summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    // --seed overrides the file's seed.
    let out = dir.path().join("seeded");
    let (code, _, err) = infersim(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "99",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(rows[0]["seed"], 99);
}

#[test]
fn shipped_experiments_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let (code, out, err) = infersim(&["validate", p.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {err}", p.display());
            assert!(out.contains("ok"));
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn bad_input_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            SMALL.replace(
                "\"workload.rate_per_s\" = [5.0, 15.0, 30.0]",
                "\"workload.rate_per_s\" = [5.0, -1.0]",
            ),
            "workload.rate_per_s",
        ),
        (
            SMALL.replace("num_requests = 300", "num_requests = 0"),
            "workload.num_requests",
        ),
        (
            SMALL.replace("model = \"llama-3.1-8b\"", "model = \"llama-3.1-70b\""),
            "does not fit",
        ),
        (
            SMALL.replace("max_model_len = 4096", "max_model_len = 4096\nbogus = 1"),
            "bogus",
        ),
        (
            SMALL.replace("[hardware]", "[hardware\n"),
            ":5:10: (toml): ",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let (code, _, err) = infersim(&["validate", f.to_str().unwrap()]);
        assert_eq!(code, 2, "case {i}: {err}");
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(err.contains(&format!("bad{i}.toml")), "case {i}: {err}");
    }
    let (code, _, err) = infersim(&["validate", "/nonexistent/x.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn requests_csv_holds_every_completed_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.toml");
    std::fs::write(&file, SMALL).unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = infersim(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--requests-csv",
    ]);
    assert_eq!(code, 0, "{err}");
    for point in 0..6 {
        for rep in 0..2 {
            let csv =
                std::fs::read_to_string(out.join(format!("requests/{point}-{rep}.csv"))).unwrap();
            let mut lines = csv.lines();
            assert_eq!(lines.next(), Some(infersim::metrics::REQUESTS_CSV_HEADER));
            let rows: Vec<&str> = lines.collect();
            assert_eq!(rows.len(), 300, "point {point} replication {rep}");
            for r in rows {
                let f: Vec<f64> = r.split(',').take(5).map(|x| x.parse().unwrap()).collect();
                assert!(f[1] <= f[2] && f[2] <= f[3] && f[3] <= f[4], "{r}");
            }
        }
    }
}

/// `calibrate --study` fits the stack profile on the studies named (one profile for
/// the stack, whatever GPU the study ran on), writes it where `--out` says with its
/// bands beside each fitted parameter, and `--warm` records the objective of the
/// profile it also started from.
#[test]
fn calibrate_one_study_writes_one_stack_profile() {
    let dir = std::env::temp_dir().join(format!("infersim-cal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles");
    for e in std::fs::read_dir(&shipped).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let (code, out, err) = infersim(&[
        "calibrate",
        "--study",
        "l4-gemma-3-1b-vllm",
        "--max-evals",
        "40",
        "--date",
        "2026-01-01",
        "--warm",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("vllm: objective"), "{out}");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    // The shipped profiles, no file added (vllm@0.6 is the Lambda study's own).
    assert_eq!(files, ["transformers.toml", "vllm.toml", "vllm@0.6.toml"]);
    let p = std::fs::read_to_string(dir.join("vllm.toml")).unwrap();
    assert!(p.contains("date = \"2026-01-01\""), "{p}");
    assert!(p.contains("studies = [\"l4-gemma-3-1b-vllm\"]"), "{p}");
    assert!(p.contains("warm_start_objective = "), "{p}");
    assert!(p.contains("status = \"calibrated\""), "{p}");
    assert!(p.contains("#   cpu_seq_overhead_us = "), "{p}");
    assert!(infersim::profile::read_profile(&dir.join("vllm.toml")).is_ok());
    // The transformers profile, which no study fitted, is untouched.
    assert_eq!(
        std::fs::read(dir.join("transformers.toml")).unwrap(),
        std::fs::read(shipped.join("transformers.toml")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An output folder that cannot be created is a failure of the run (exit 1) naming
/// the path, not bad input.
#[test]
fn unwritable_output_folder_exits_1_with_the_path() {
    let dir = std::env::temp_dir().join(format!("infersim-unwritable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A file where a folder should be: no one, not even root, can create a folder in it.
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let out = blocker.join("results");
    let (code, _, err) = infersim(&[
        "run",
        "experiments/quickstart.toml",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&*blocker.to_string_lossy()), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `calibrate` writes into `output/calibration/profiles/` of the working folder by
/// default; the shipped profiles change only with `--replace-shipped`.
#[test]
fn calibrate_leaves_the_shipped_profiles_alone_by_default() {
    let cwd = std::env::temp_dir().join(format!("infersim-cal-default-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles/vllm.toml");
    let before = std::fs::read(&shipped).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args([
            "calibrate",
            "--study",
            "l4-gemma-3-1b-vllm",
            "--max-evals",
            "10",
        ])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cwd.join("output/calibration/profiles/vllm.toml").is_file());
    assert_eq!(std::fs::read(&shipped).unwrap(), before);
    let _ = std::fs::remove_dir_all(&cwd);
}
