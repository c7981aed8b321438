//! Shards and merge: a sweep run as shards 0/3, 1/3 and 2/3 and merged gives the
//! unsharded run's outputs byte for byte (summary, plots, resolved config, and the
//! manifest, whose command line is the shards' without `--shard`); a missing,
//! duplicated or foreign shard, a changed experiment and an unknown kind are refused
//! with exit code 2 and a message naming the problem.

mod common;

use common::infersim_bin as infersim;
use std::path::{Path, PathBuf};

/// 4 points × 2 replications: 8 runs, dealt 3 / 3 / 2 over three shards.
const SWEEP: &str = include_str!("fixtures/shard-sweep.toml");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = infersim(args, &[]);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn refused(args: &[&str], wanted: &[&str]) {
    let (code, _, err) = infersim(args, &[]);
    assert_eq!(code, 2, "{args:?} should be refused: {err}");
    for w in wanted {
        assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
    }
}

/// A temporary folder with the sweep in `sweep.toml`.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sweep.toml");
    std::fs::write(&file, SWEEP).unwrap();
    (dir, file)
}

/// Runs the three shards of `file` into `out` (with extra arguments).
fn run_shards(file: &Path, out: &Path, extra: &[&str]) {
    for i in 0..3 {
        let shard = format!("{i}/3");
        let mut args = vec![
            "run",
            s(file),
            "--out",
            s(out),
            "--quiet",
            "--shard",
            &shard,
        ];
        args.extend(extra);
        ok(&args);
    }
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn merged_shards_equal_the_unsharded_run_byte_for_byte() {
    let (tmp, file) = setup();
    let out = tmp.path().join("out");
    // The unsharded run, then moved aside so that the shards use the same --out (the
    // manifest records the command line).
    ok(&["run", s(&file), "--out", s(&out), "--quiet"]);
    let reference = tmp.path().join("reference");
    std::fs::rename(&out, &reference).unwrap();
    run_shards(&file, &out, &[]);
    // Round-robin: shard i holds runs k with k mod 3 = i, each with its own row.
    for (i, want) in [(0, vec![0, 3, 6]), (1, vec![1, 4, 7]), (2, vec![2, 5])] {
        let v = json(&out.join(format!("shard-{i}-of-3.json")));
        assert_eq!(v["kind"], "run");
        assert_eq!(v["runs_total"], 8);
        let runs: Vec<u64> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run"].as_u64().unwrap())
            .collect();
        assert_eq!(runs, want);
    }
    // No summary before the merge.
    assert!(!out.join("summary.json").exists() && !out.join("manifest.json").exists());
    ok(&["merge", s(&out), "--quiet"]);
    let mut names: Vec<String> = std::fs::read_dir(&reference)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in [
        "summary.json",
        "summary.csv",
        "manifest.json",
        "config.resolved.toml",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    assert!(names.iter().any(|x| x.ends_with(".svg")));
    for n in &names {
        let a = std::fs::read(reference.join(n)).unwrap();
        let b = std::fs::read(out.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert!(
            a == b,
            "{n} differs between the merged and the unsharded run"
        );
    }
    // The saved runs too (so `--resume` works on the merged folder).
    for e in std::fs::read_dir(reference.join("points")).unwrap() {
        let e = e.unwrap();
        let b = std::fs::read(out.join("points").join(e.file_name())).unwrap();
        assert_eq!(std::fs::read(e.path()).unwrap(), b);
    }
    // Merging into another folder from the files gives the same summary.
    let other = tmp.path().join("other");
    let files: Vec<PathBuf> = (0..3)
        .map(|i| out.join(format!("shard-{i}-of-3.json")))
        .collect();
    ok(&[
        "merge",
        s(&files[2]),
        s(&files[0]),
        s(&files[1]),
        "--out",
        s(&other),
        "--quiet",
    ]);
    assert_eq!(
        std::fs::read(other.join("summary.json")).unwrap(),
        std::fs::read(reference.join("summary.json")).unwrap()
    );
}

#[test]
fn merge_refuses_missing_duplicate_and_foreign_shards() {
    let (tmp, file) = setup();
    let out = tmp.path().join("out");
    run_shards(&file, &out, &[]);
    let f = |i: usize| out.join(format!("shard-{i}-of-3.json"));
    let merged = tmp.path().join("merged");
    let m = s(&merged);
    refused(
        &["merge", s(&f(0)), s(&f(2)), "--out", m],
        &["shard 1/3 of this job is missing", "shard-1-of-3.json"],
    );
    let copy = tmp.path().join("copy.json");
    std::fs::copy(f(1), &copy).unwrap();
    refused(
        &["merge", s(&f(0)), s(&f(1)), s(&copy), s(&f(2)), "--out", m],
        &["shard 1/3 is given twice", "copy.json"],
    );
    // A shard of the same file run with another seed is another experiment.
    let seed4 = tmp.path().join("seed4");
    ok(&[
        "run",
        s(&file),
        "--out",
        s(&seed4),
        "--quiet",
        "--shard",
        "1/3",
        "--seed",
        "4",
    ]);
    refused(
        &[
            "merge",
            s(&f(0)),
            s(&seed4.join("shard-1-of-3.json")),
            s(&f(2)),
            "--out",
            m,
        ],
        &["is from another experiment", "seed 4", "seed 3"],
    );
    // Shards of another split.
    let two = tmp.path().join("two");
    ok(&[
        "run",
        s(&file),
        "--out",
        s(&two),
        "--quiet",
        "--shard",
        "1/2",
    ]);
    refused(
        &[
            "merge",
            s(&f(0)),
            s(&two.join("shard-1-of-2.json")),
            "--out",
            m,
        ],
        &["shard 1/2", "same n"],
    );
    // An unknown kind.
    let odd = tmp.path().join("odd.json");
    let text = std::fs::read_to_string(f(0)).unwrap();
    std::fs::write(
        &odd,
        text.replacen("\"kind\": \"run\"", "\"kind\": \"sweep\"", 1),
    )
    .unwrap();
    refused(
        &["merge", s(&odd), "--out", m],
        &["unknown shard kind \"sweep\"", "\"run\""],
    );
    // A shard that lost a run.
    let mut v = json(&f(0));
    v["runs"].as_array_mut().unwrap().pop();
    let short = tmp.path().join("short");
    std::fs::create_dir(&short).unwrap();
    std::fs::write(short.join("shard-0-of-3.json"), v.to_string()).unwrap();
    refused(
        &[
            "merge",
            s(&short.join("shard-0-of-3.json")),
            s(&f(1)),
            s(&f(2)),
            "--out",
            m,
        ],
        &["holds 2 of the 3 runs shard 0/3 owns", "--resume"],
    );
    // The experiment changed after the shards ran.
    std::fs::write(
        &file,
        SWEEP.replace("num_requests = 300", "num_requests = 301"),
    )
    .unwrap();
    refused(
        &["merge", s(&out), "--out", m],
        &["the shards ran experiment hash", "run the shards again"],
    );
    assert!(
        !merged.join("summary.json").exists(),
        "nothing written when refused"
    );
    // A folder without shard files, and --format with --shard.
    refused(
        &["merge", s(tmp.path()), "--out", m],
        &["holds no shard file"],
    );
    refused(
        &[
            "run",
            s(&file),
            "--out",
            s(&out),
            "--shard",
            "0/3",
            "--format",
            "vllm-bench",
        ],
        &["--format", "--shard"],
    );
}

#[test]
fn an_interrupted_shard_resumes_and_merges() {
    let (tmp, file) = setup();
    let out = tmp.path().join("out");
    let (code, _, err) = infersim(
        &[
            "run",
            s(&file),
            "--out",
            s(&out),
            "--quiet",
            "--shard",
            "0/3",
            "--jobs",
            "1",
        ],
        &[("INFERSIM_STOP_AFTER_POINTS", "1")],
    );
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("1 of 3 runs finished"), "{err}");
    assert!(!out.join("shard-0-of-3.json").exists());
    ok(&[
        "run",
        s(&file),
        "--out",
        s(&out),
        "--quiet",
        "--shard",
        "0/3",
        "--resume",
    ]);
    for i in 1..3 {
        let shard = format!("{i}/3");
        ok(&[
            "run",
            s(&file),
            "--out",
            s(&out),
            "--quiet",
            "--shard",
            &shard,
        ]);
    }
    ok(&["merge", s(&out), "--quiet"]);
    let reference = tmp.path().join("reference");
    ok(&["run", s(&file), "--out", s(&reference), "--quiet"]);
    for n in ["summary.json", "summary.csv"] {
        assert_eq!(
            std::fs::read(out.join(n)).unwrap(),
            std::fs::read(reference.join(n)).unwrap(),
            "{n}"
        );
    }
}
