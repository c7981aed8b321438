//! The Lambda vLLM 0.6 study (`calibration/measurements/lambda-vllm-0.6-multistep`) is an
//! exact import: the raw files have the lengths the stored copy gives, their own summary
//! numbers follow from their per-request lists, `study.toml` copies them digit for digit,
//! and each replay trace is the raw file's request list. The 40- and 80-prompt H100
//! points are held out: not fitted, judged by `infersim reproduce` all the same.

#[path = "common/raw.rs"]
mod raw;

use raw::assert_summaries_follow_the_lists;
use std::path::{Path, PathBuf};

fn study_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/measurements/lambda-vllm-0.6-multistep")
}

/// (raw file, characters of the stored copy as the repository index reports them, trace).
const RAW: &[(&str, usize, &str)] = &[
    (
        "raw/prompt_10/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json",
        13012,
        "h100-llama-3-8b-10.csv",
    ),
    (
        "raw/prompt_10/1xH100-80GB-SXM/Mistral-7B-Instruct-v0.3_tp1_len2048.json",
        16000,
        "h100-mistral-7b-10.csv",
    ),
    (
        "raw/prompt_10/1xA100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json",
        13426,
        "a100-llama-3-8b-10.csv",
    ),
    (
        "raw/prompt_10/1xA100-80GB-SXM/Mistral-7B-Instruct-v0.3_tp1_len2048.json",
        15546,
        "a100-mistral-7b-10.csv",
    ),
    (
        "raw/prompt_20/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json",
        26681,
        "h100-llama-3-8b-20.csv",
    ),
    (
        "raw/prompt_20/1xH100-80GB-SXM/Mistral-7B-Instruct-v0.3_tp1_len2048.json",
        29878,
        "h100-mistral-7b-20.csv",
    ),
    // Held-out points (imported after the fit).
    (
        "raw/prompt_40/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json",
        50909,
        "h100-llama-3-8b-40.csv",
    ),
    (
        "raw/prompt_40/1xH100-80GB-SXM/Mistral-7B-Instruct-v0.3_tp1_len2048.json",
        53884,
        "h100-mistral-7b-40.csv",
    ),
    (
        "raw/prompt_80/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json",
        96064,
        "h100-llama-3-8b-80.csv",
    ),
    (
        "raw/prompt_80/1xH100-80GB-SXM/Mistral-7B-Instruct-v0.3_tp1_len2048.json",
        98102,
        "h100-mistral-7b-80.csv",
    ),
];

/// Labels of the held-out points.
const HELD_OUT: &[&str] = &[
    "h100 llama-3-8b, 40 prompts",
    "h100 mistral-7b, 40 prompts",
    "h100 llama-3-8b, 80 prompts",
    "h100 mistral-7b, 80 prompts",
];

fn load(rel: &str) -> (String, serde_json::Value) {
    let text = std::fs::read_to_string(study_dir().join(rel)).unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// The raw files are the stored copies (same character count, plain ASCII as Python's
/// `json.dump` writes), every request completed, and their TTFT and ITL summaries
/// are the mean and median of their own per-request lists: nothing was lost or altered
/// in the transfer.
#[test]
fn raw_files_are_whole_and_self_consistent() {
    for &(rel, chars, _) in RAW {
        let (text, d) = load(rel);
        assert!(text.is_ascii(), "{rel}");
        assert_eq!(text.len(), chars, "{rel}");
        let n = d["input_lens"].as_array().unwrap().len();
        assert!([10, 20, 40, 80].contains(&n), "{rel}");
        assert_eq!(d["num_prompts"], n, "{rel}");
        assert_eq!(d["completed"], n, "{rel}");
        assert_eq!(d["request_rate"], "inf", "{rel}");
        assert_summaries_follow_the_lists(&d, rel);
    }
}

/// Every `[point.measured]` and `[point.reported]` value of `study.toml` is the raw
/// file's value exactly, and every point names its raw file.
#[test]
fn study_values_are_copied_exactly() {
    let text = std::fs::read_to_string(study_dir().join("study.toml")).unwrap();
    let study: toml::Table = toml::from_str(&text).unwrap();
    let points = study["point"].as_array().unwrap();
    assert_eq!(points.len(), RAW.len());
    for p in points {
        let file = p["file"].as_str().unwrap();
        assert!(RAW.iter().any(|r| r.0 == file), "{file}");
        let (_, d) = load(file);
        let mut n = 0;
        for section in ["measured", "reported"] {
            for (k, v) in p[section].as_table().unwrap() {
                let want = d[k.as_str()]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{file} {k}"));
                let got = v
                    .as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .unwrap();
                assert_eq!(got, want, "{file} {k}");
                n += 1;
            }
        }
        assert!(n >= 20, "{file}: {n} values");
    }
}

/// Each replay trace is its raw file's requests in order, all at t = 0 (request rate
/// inf), with an output of 0 tokens (an empty text) replayed as 1 token.
#[test]
fn traces_replay_the_raw_requests() {
    for &(rel, _, trace) in RAW {
        let (_, d) = load(rel);
        let csv = std::fs::read_to_string(study_dir().join(trace)).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("arrival_s,input_tokens,output_tokens"));
        let rows: Vec<&str> = lines.collect();
        let inputs = d["input_lens"].as_array().unwrap();
        let outputs = d["output_lens"].as_array().unwrap();
        assert_eq!(rows.len(), inputs.len(), "{trace}");
        for (i, row) in rows.iter().enumerate() {
            let o = outputs[i].as_u64().unwrap().max(1);
            assert_eq!(*row, format!("0,{},{o}", inputs[i]), "{trace} row {i}");
        }
    }
}

/// `infersim calibrate` fits a preset's own profile from the study's points alone: with
/// no `vllm@0.6.toml` among the profiles it starts from the one the preset borrows
/// (`vllm`), and it writes `vllm@0.6.toml` (stack `vllm@0.6`, fitted on this study only),
/// nothing else.
#[test]
fn calibrate_writes_the_presets_own_profile() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles");
    let profiles = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&shipped).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "vllm@0.6.toml" {
            std::fs::copy(e.path(), profiles.path().join(e.file_name())).unwrap();
        }
    }
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args([
            "calibrate",
            "--study",
            "lambda-vllm-0.6-multistep",
            "--max-evals",
            "40",
            "--date",
            "2026-01-01",
            "--out",
        ])
        .arg(out.path())
        .env("INFERSIM_PROFILES", profiles.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("vllm@0.6: objective"), "{stdout}");
    let files: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(files, ["vllm@0.6.toml"]);
    let path = out.path().join("vllm@0.6.toml");
    let p = infersim::profile::read_profile(&path).unwrap();
    assert_eq!(p.name, "vllm@0.6");
    assert_eq!(p.stack, "vllm@0.6");
    assert!(p.is_calibrated());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("studies = [\"lambda-vllm-0.6-multistep\"]"),
        "{text}"
    );
}

/// The held-out points are not fitted but judged: each has `calibrate = false` and
/// `held_out = true`, `infersim reproduce` gives each of them every target of the study
/// (throughputs within 5 %, median TTFT, TPOT and ITL and mean ITL within 15 %), every
/// missed one is a declared known miss and every declared one is missed, and none of
/// them counts against the calibration set (22 of its 24 met, as without them).
#[test]
fn held_out_points_are_judged_not_fitted() {
    let study = infersim::study::load_study(&study_dir()).unwrap();
    for label in HELD_OUT {
        let p = study.points.iter().find(|p| p.label == *label).unwrap();
        assert!(!p.calibrate, "{label}");
        assert!(study.file.held_out(label), "{label}");
    }
    // The A100 points are shown, not fitted and not judged.
    assert!(!study.file.held_out("a100 llama-3-8b, 10 prompts"));
    let report = infersim::reproduce::reproduce(std::slice::from_ref(&study), 1).unwrap();
    let judged: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.target.is_some() && r.held_out)
        .collect();
    let targets = study.file.target.len();
    assert_eq!(targets, 6);
    assert_eq!(judged.len(), targets * HELD_OUT.len());
    for r in &judged {
        assert!(HELD_OUT.contains(&r.res.point.as_str()), "{}", r.res.point);
        let missed = r.pass() == Some(false);
        assert_eq!(
            missed,
            r.known_miss.is_some(),
            "{} {}: missed {missed}, declared {:?}\n{}",
            r.res.point,
            r.res.metric,
            r.known_miss,
            report.table()
        );
    }
    let (met, n) = report.held_out_met();
    assert_eq!(n, 24);
    // Median TPOT and median ITL are met on all four and mean ITL on the 40-prompt
    // Mistral point; throughput and median TTFT everywhere, and mean ITL on the other
    // three, are known misses.
    assert_eq!(met, 9, "{}", report.table());
    assert_eq!(report.missed(), 2, "{}", report.table());
    // Both are known misses the study explains: `reproduce` reports them and passes.
    assert_eq!(report.missed_unexplained(), 0, "{}", report.table());
    assert!(report.table().contains("missed (known)"));
    let calib = report
        .rows
        .iter()
        .filter(|r| !r.held_out && r.target.is_some())
        .count();
    assert_eq!(calib, 24);
    assert!(report.table().contains("9 of 24 held-out targets met"));
}

/// `held_out = true` on a point that is fitted is refused, naming the field.
#[test]
fn held_out_needs_calibrate_false() {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(study_dir()).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
        }
    }
    let text = std::fs::read_to_string(study_dir().join("study.toml"))
        .unwrap()
        .replacen(
            "label = \"h100 llama-3-8b, 40 prompts\"\ncalibrate = false\n",
            "label = \"h100 llama-3-8b, 40 prompts\"\n",
            1,
        );
    std::fs::write(dir.path().join("study.toml"), text).unwrap();
    let errs = infersim::study::load_study(dir.path()).unwrap_err();
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["point[6].held_out"], "{errs:?}");
    assert!(errs[0].message.contains("calibrate = false"), "{errs:?}");
}
