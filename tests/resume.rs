//! Nothing lost: each run's row is saved as it finishes, an interrupted sweep (killed,
//! Ctrl-C, or stopped by the test hook `INFERSIM_STOP_AFTER_POINTS`) resumes with
//! `--resume` to a `summary.json` identical to an uninterrupted run's, and an output
//! folder of another configuration is not overwritten without `--force`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// 6 points × 2 replications, small.
const SWEEP: &str = r#"
name = "resume"
seed = 3
replications = 2
[hardware]
gpu = "l4"
[engine]
model = "llama-3.2-1b"
policy = "sequential"
max_model_len = 4096
[workload]
arrival = "poisson"
rate_per_s = 5.0
num_requests = 1500
input_tokens = { dist = "uniform", mean = 200, range_ratio = 0.5 }
output_tokens = { dist = "lognormal", mean = 150.0, std = 100.0 }
[sweep]
"workload.rate_per_s" = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
"#;

/// The same, each run about a quarter of a second (sequential batching: one token per
/// step), so that a test can interrupt the sweep mid-way.
fn slow() -> String {
    SWEEP
        .replace("num_requests = 1500", "num_requests = 12000")
        .replace("mean = 150.0, std = 100.0", "mean = 250.0, std = 100.0")
}

use common::infersim_bin as infersim;

fn point_files(out: &Path) -> usize {
    std::fs::read_dir(out.join("points"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

/// Runs the sweep uninterrupted into `dir/name` and returns its summary.json.
fn reference(dir: &Path, file: &str) -> Vec<u8> {
    let out = dir.join("reference");
    let (code, _, err) = infersim(
        &["run", file, "--out", out.to_str().unwrap(), "--quiet"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(point_files(&out), 12);
    std::fs::read(out.join("summary.json")).unwrap()
}

fn setup(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resume.toml");
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap().to_string();
    (dir, f)
}

#[test]
fn stopped_sweep_resumes_to_an_identical_summary() {
    let (dir, file) = setup(SWEEP);
    let expected = reference(dir.path(), &file);
    let out = dir.path().join("stopped");
    let o = out.to_str().unwrap();
    // The hook stops scheduling after 5 runs, as Ctrl-C does.
    let (code, _, err) = infersim(
        &["run", &file, "--out", o, "--quiet", "--jobs", "1"],
        &[("INFERSIM_STOP_AFTER_POINTS", "5")],
    );
    assert_eq!(code, 130, "{err}");
    assert!(
        err.contains("interrupted: 5 of 12 runs finished (0 reused, 5 new)"),
        "{err}"
    );
    assert!(err.contains("--resume`"), "{err}");
    assert_eq!(point_files(&out), 5);
    assert!(!out.join("summary.json").exists());
    // Without --resume the same configuration simply runs again; with it, the five
    // saved runs are reused: allowing no new run at all fails, allowing 7 succeeds.
    let (code, _, err) = infersim(
        &["run", &file, "--out", o, "--quiet", "--resume"],
        &[("INFERSIM_STOP_AFTER_POINTS", "0")],
    );
    assert_eq!(code, 130, "{err}");
    assert!(
        err.contains("5 of 12 runs finished (5 reused, 0 new)"),
        "{err}"
    );
    let (code, _, err) = infersim(
        &["run", &file, "--out", o, "--quiet", "--resume"],
        &[("INFERSIM_STOP_AFTER_POINTS", "7")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), expected);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["runs"], 12);
    // A finished folder resumes without running anything.
    let (code, _, err) = infersim(
        &["run", &file, "--out", o, "--quiet", "--resume"],
        &[("INFERSIM_STOP_AFTER_POINTS", "0")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), expected);
}

#[test]
fn killed_sweep_resumes_to_an_identical_summary() {
    let (dir, file) = setup(&slow());
    let expected = reference(dir.path(), &file);
    let out = dir.path().join("killed");
    let o = out.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args(["run", &file, "--out", o, "--quiet", "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL: no chance to clean up) once two runs are saved.
    let t0 = Instant::now();
    while point_files(&out) < 2 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved = point_files(&out);
    assert!(saved >= 2, "{saved}");
    // Every saved point file is whole JSON (written to a temporary file, then renamed).
    for e in std::fs::read_dir(out.join("points")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(v["row"]["completed"].is_u64());
        }
    }
    let (code, _, err) = infersim(&["run", &file, "--out", o, "--quiet", "--resume"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), expected);
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_finished_runs_and_says_how_to_resume() {
    let (dir, file) = setup(&slow());
    let out = dir.path().join("interrupted");
    let o = out.to_str().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args(["run", &file, "--out", o, "--quiet", "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while point_files(&out) < 1 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let res = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    let saved = point_files(&out);
    if saved < 12 {
        assert_eq!(res.status.code(), Some(130), "{err}");
        assert!(err.contains("interrupted:"), "{err}");
        assert!(
            err.contains(&format!("{saved} of 12 runs finished")),
            "{err}"
        );
        assert!(err.contains("--resume`"), "{err}");
    }
    let (code, _, err) = infersim(&["run", &file, "--out", o, "--quiet", "--resume"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(point_files(&out), 12);
}

#[test]
fn another_configurations_folder_needs_force_and_resume_reuses_what_matches() {
    let (dir, file) = setup(SWEEP);
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let (code, _, err) = infersim(&["run", &file, "--out", o, "--quiet"], &[]);
    assert_eq!(code, 0, "{err}");
    // The same configuration may write there again.
    let (code, _, err) = infersim(&["run", &file, "--out", o, "--quiet"], &[]);
    assert_eq!(code, 0, "{err}");
    // Another one (one sweep value changed) may not, without --resume or --force.
    let changed = dir.path().join("changed.toml");
    std::fs::write(&changed, SWEEP.replace("32.0]", "64.0]")).unwrap();
    let c = changed.to_str().unwrap();
    let (code, _, err) = infersim(&["run", c, "--out", o, "--quiet"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another configuration"), "{err}");
    assert!(err.contains("--force"), "{err}");
    // --resume reruns only the changed point's two runs.
    let (code, _, err) = infersim(
        &["run", c, "--out", o, "--quiet", "--resume"],
        &[("INFERSIM_STOP_AFTER_POINTS", "0")],
    );
    assert_eq!(code, 130, "{err}");
    assert!(
        err.contains("10 of 12 runs finished (10 reused, 0 new)"),
        "{err}"
    );
    // The old summary is gone at once: the folder holds no other configuration's.
    assert!(!out.join("summary.json").exists());
    let (code, _, err) = infersim(&["run", c, "--out", o, "--quiet", "--resume"], &[]);
    assert_eq!(code, 0, "{err}");
    // --force replaces, saved runs included: a smaller sweep leaves no stale point
    // files behind (a file of the user's own stays).
    let small = dir.path().join("small.toml");
    std::fs::write(
        &small,
        SWEEP.replace("[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]", "[2.0, 32.0]"),
    )
    .unwrap();
    std::fs::write(out.join("points").join("notes.json"), "{}").unwrap();
    let s = small.to_str().unwrap();
    let (code, _, err) = infersim(&["run", s, "--out", o, "--quiet", "--force"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(point_files(&out), 4 + 1);
    assert!(out.join("points").join("notes.json").exists());
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows.last().unwrap()["workload.rate_per_s"], 32.0);
}

#[test]
fn shipped_experiments_pass_the_guard() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for study in std::fs::read_dir(root.join("calibration/measurements")).unwrap() {
        let study = study.unwrap().path();
        if study.is_dir() {
            files.extend(std::fs::read_dir(study).unwrap().map(|e| e.unwrap().path()));
        }
    }
    let mut n = 0;
    for f in files {
        if f.extension().is_none_or(|x| x != "toml")
            || f.ends_with("study.toml")
            || infersim::plan::is_plan_file(&f)
        {
            continue;
        }
        let exp = infersim::config::load_experiment(&f)
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        let est = infersim::experiment::estimate(&exp, 1);
        assert!(
            infersim::experiment::guard_problem(&est).is_none(),
            "{}: {est:?}",
            f.display()
        );
        // Well under the limit, even on one thread.
        assert!(est.seconds < 600.0, "{}: {est:?}", f.display());
        n += 1;
    }
    assert!(n >= 10, "{n}");
}

/// The run hash follows what decides the results and nothing else: the resolved
/// settings, the seed and the content of the data files (here a profile given by path
/// and a trace), not the free-text description or where the data lives.
#[test]
fn run_hash_follows_settings_seed_and_data_file_content() {
    use infersim::config::load_experiment;
    use infersim::experiment::{experiment_hash, run_hash};
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let profile = std::fs::read_to_string(root.join("calibration/profiles/vllm.toml")).unwrap();
    std::fs::write(dir.path().join("mine.toml"), &profile).unwrap();
    std::fs::write(
        dir.path().join("t.csv"),
        "arrival_s,input_tokens,output_tokens\n0.0,100,20\n0.5,200,30\n",
    )
    .unwrap();
    let text = r#"
name = "hash"
seed = 3
replications = 2
[hardware]
gpu = "l4"
[engine]
model = "llama-3.2-1b"
policy = "sequential"
profile = "mine.toml"
max_model_len = 4096
[workload]
arrival = "trace"
trace = "t.csv"
[sweep]
"engine.policy" = ["sequential", "continuous"]
"#
    .to_string();
    let file = dir.path().join("h.toml");
    let hash = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let exp = load_experiment(&file).unwrap_or_else(|e| panic!("{e:?}"));
        experiment_hash(&exp, exp.seed)
    };
    let h0 = hash(&text);
    // Stable: loading again gives the same hash; a description changes nothing.
    assert_eq!(hash(&text), h0);
    assert_eq!(
        hash(&text.replace("seed = 3", "seed = 3\ndescription = \"notes\"")),
        h0
    );
    // A setting, the seed, the profile's content and the trace's content each change it.
    assert_ne!(
        hash(&text.replace("max_model_len = 4096", "max_model_len = 2048")),
        h0
    );
    assert_ne!(hash(&text.replace("seed = 3", "seed = 4")), h0);
    std::fs::write(
        dir.path().join("mine.toml"),
        format!("{profile}\n# edited\n"),
    )
    .unwrap();
    let h1 = hash(&text);
    assert_ne!(h1, h0);
    std::fs::write(
        dir.path().join("t.csv"),
        "arrival_s,input_tokens,output_tokens\n0.0,100,20\n0.5,200,31\n",
    )
    .unwrap();
    assert_ne!(hash(&text), h1);
    // Each run of a point has its own hash (the seed differs per replication).
    std::fs::write(&file, &text).unwrap();
    let exp = load_experiment(&file).unwrap();
    let p = &exp.points[0];
    assert_ne!(run_hash(&exp, p, 3), run_hash(&exp, p, 4));
    assert_eq!(run_hash(&exp, p, 3), run_hash(&exp, p, 3));
}
