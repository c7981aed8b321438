//! `infersim compare --write-study DIR`: the written folder is a study the study
//! loader accepts, and replaying it predicts what the committed study predicts for
//! the same result (the Lambda H100 10-prompt point), figure for figure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const STUDY: &str = "calibration/measurements/lambda-vllm-0.6-multistep";
const RAW: &str = "raw/prompt_10/1xH100-80GB-SXM/Meta-Llama-3-8B-Instruct_tp1_len2048.json";

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("infersim-ws-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn compare_write(result: &Path, dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_infersim"))
        .arg("compare")
        .arg(result)
        .arg("--experiment")
        .arg(root().join(STUDY).join("h100-llama-3-8b-10.toml"))
        .arg("--write-study")
        .arg(dir)
        .output()
        .expect("runs")
}

#[test]
fn a_written_study_loads_and_reproduces_the_committed_point() {
    let base = tmp("lambda");
    let dir = base.join("my-h100-llama");
    let raw = root().join(STUDY).join(RAW);
    let out = compare_write(&raw, &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The result is kept byte for byte.
    let name = raw.file_name().unwrap();
    assert_eq!(
        std::fs::read(dir.join("raw").join(name)).unwrap(),
        std::fs::read(&raw).unwrap()
    );
    let study = infersim::study::load_study(&dir).expect("the written study loads");
    assert_eq!(study.file.name, "my-h100-llama");
    assert_eq!(
        (study.file.gpu.as_str(), study.file.stack.as_str()),
        ("h100-sxm", "vllm@0.6")
    );
    assert_eq!(study.points.len(), 1);
    let written = infersim::reproduce::reproduce(&[study], 1).expect("replays");

    let committed = infersim::study::load_studies(&["lambda-vllm-0.6-multistep".into()]).unwrap();
    let committed = infersim::reproduce::reproduce(&committed, 1).unwrap();
    let mut shared = 0;
    for r in committed
        .rows
        .iter()
        .filter(|r| r.res.point == "h100 llama-3-8b, 10 prompts")
    {
        let Some(w) = written.rows.iter().find(|w| w.res.metric == r.res.metric) else {
            continue;
        };
        shared += 1;
        common::residual::assert_same_figures(&w.res, &r.res);
    }
    assert!(shared >= 10, "{shared} shared metrics");
    // Targets were written for the measured throughput and medians: they are judged.
    assert!(written
        .rows
        .iter()
        .any(|w| w.res.metric == "output_throughput" && w.target.is_some()));

    // A second write into the same folder is refused, the folder left as it was.
    let again = compare_write(&raw, &dir);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--write-study"));
    assert!(infersim::study::load_study(&dir).is_ok());
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn a_guidellm_report_becomes_a_study_replaying_its_send_times() {
    let base = tmp("guidellm");
    let dir = base.join("g");
    let out = compare_write(&root().join("tests/fixtures/bench/guidellm.json"), &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.join("requests.csv")).unwrap();
    assert_eq!(
        csv,
        "arrival_s,input_tokens,output_tokens\n0.000000000,100,9\n0.250000000,200,17\n0.500000000,50,5\n"
    );
    let study = infersim::study::load_study(&dir).expect("loads");
    assert_eq!(
        study.points[0]
            .measured
            .iter()
            .find(|m| m.0 == "duration")
            .map(|m| m.1),
        Some(1.25)
    );
    // Nothing is left beside the study (the temporary folder was renamed into place).
    let names: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("g")]);
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn an_aiperf_aggregate_study_keeps_the_records_it_replayed() {
    let base = tmp("aiperf");
    let dir = base.join("a");
    let agg = root().join("tests/fixtures/bench/aiperf/profile_export_aiperf.json");
    let out = compare_write(&agg, &dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("raw/profile_export.jsonl")).unwrap(),
        std::fs::read(agg.with_file_name("profile_export.jsonl")).unwrap()
    );
    let study = infersim::study::load_study(&dir).expect("loads");
    let duration = study.points[0].measured.iter().find(|m| m.0 == "duration");
    assert_eq!(duration.map(|m| m.1), Some(1.3)); // the aggregate's benchmark_duration
    std::fs::remove_dir_all(&base).ok();
}
