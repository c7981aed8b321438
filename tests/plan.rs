//! `infersim plan`: a small plan whose answer is checked by invariants and re-runs
//! (the winner meets the SLOs with 5 other seeds, the next cheaper does not), pruning
//! checked against the memory arithmetic and the roofline, sharded-then-merged equal
//! to unsharded byte for byte, thread-count independence, and bad plan keys.

use infersim::plan::{
    add_verification, finalize, load_plan, merge_plan_shards, run_plan, verify, write_outputs,
    write_shard, PlanOptions, PlanReport,
};
use infersim::report::Shard;
use std::path::{Path, PathBuf};

/// Llama-3.1-8B on 1–2 L4/A10G/T4 (the T4 cannot hold it), 6 req/s, p99 TTFT 2 s.
const PLAN: &str = r#"
name = "plan-test"
seed = 7

[plan]
target_rate = 6.0
replications = 2

[plan.space]
gpu = ["t4", "l4", "a10g"]
num_gpus = [1, 2]
tensor_parallel_size = [1, 2]
max_num_seqs = [64, 256]

[hardware]
gpu = "l4"

[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 4096

[workload]
arrival = "poisson"
duration_s = 30.0
warmup_s = 5.0
input_tokens = { dist = "uniform", mean = 512, range_ratio = 0.5 }
output_tokens = { dist = "uniform", mean = 128, range_ratio = 0.5 }

[slo]
p99_ttft_ms = 2000
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn report(path: &Path, threads: usize, shard: Option<Shard>) -> infersim::plan::ShardFile {
    let plan = load_plan(path).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| run_plan(&plan, &PlanOptions { quiet: true, shard }))
        .unwrap()
}

fn files(r: &PlanReport, dir: &Path) -> Vec<(String, Vec<u8>)> {
    write_outputs(r, dir).unwrap();
    ["plan.json", "plan.csv", "plan.svg", "report.html"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(dir.join(n)).unwrap()))
        .collect()
}

#[test]
fn the_winner_holds_with_other_seeds_and_the_next_cheaper_does_not() {
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "plan.toml", PLAN);
    let r = finalize(report(&path, 2, None));
    let plan = load_plan(&path).unwrap();
    let w = r.winner.expect("a winner");
    let win = &r.candidates[w];
    assert_eq!(win.meets_target, Some(true));
    assert!(win.max_rate.unwrap() >= 6.0);
    let runs = verify(&plan, w, 6.0, 5).unwrap();
    assert_eq!(runs.len(), 5);
    assert!(runs.iter().all(|v| v.met), "winner re-runs: {runs:?}");
    let n = r.next_cheaper.expect("a cheaper candidate that misses");
    let nc = &r.candidates[n];
    assert!(nc.cost_per_hour_usd.unwrap() < win.cost_per_hour_usd.unwrap());
    assert_eq!(nc.meets_target, Some(false));
    assert!(nc.max_rate.unwrap_or(0.0) < 6.0);
    let runs_n = verify(&plan, n, 6.0, 5).unwrap();
    // It missed the target in the search; the re-runs show it is not reliable there
    // either (a candidate near its limit passes with some seeds).
    assert!(
        runs_n.iter().any(|v| !v.met),
        "next cheaper re-runs: {runs_n:?}"
    );
    // The report keeps both sets of re-runs (plan.json, report.html), the same as
    // re-running them by hand.
    let mut with = r.clone();
    add_verification(&plan, &mut with).unwrap();
    assert_eq!(with.verification.len(), 2);
    let (vw, vn) = (&with.verification[0], &with.verification[1]);
    assert_eq!((vw.role.as_str(), vw.index, vw.rate), ("cheapest", w, 6.0));
    assert_eq!((vn.role.as_str(), vn.index), ("next cheaper", n));
    assert_eq!(vw.runs, runs);
    assert_eq!(vn.runs, runs_n);
    assert_eq!(vw.met, 5);
    assert_eq!(vn.met, runs_n.iter().filter(|v| v.met).count());
    assert!(vn.met < 5);
    let json: serde_json::Value = serde_json::from_str(&with.json()).unwrap();
    assert_eq!(json["verification"][0]["met"], 5);
    assert_eq!(json["verification"][1]["runs"].as_array().unwrap().len(), 5);
    // No searched candidate cheaper than the winner meets the target, and the
    // runner-up costs at least as much.
    for c in r.candidates.iter().filter(|c| c.pruned.is_none()) {
        if c.cost_per_hour_usd < win.cost_per_hour_usd {
            assert_ne!(c.meets_target, Some(true), "{}", c.label);
        }
    }
    let ru = &r.candidates[r.runner_up.expect("runner-up")];
    assert!(ru.cost_per_hour_usd >= win.cost_per_hour_usd);
    // Everything dominated costs at least the runner-up's price.
    for c in &r.candidates {
        if c.pruned
            .as_deref()
            .is_some_and(|p| p.starts_with("dominated"))
        {
            assert!(c.cost_per_hour_usd >= ru.cost_per_hour_usd, "{}", c.label);
            assert!(c.max_rate.is_none() && c.runs == 0);
        }
    }
}

#[test]
fn pruning_is_by_memory_layout_and_roofline_and_each_holds() {
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "plan.toml", PLAN);
    let r = finalize(report(&path, 2, None));
    assert_eq!(r.candidates_total, 3 * 2 * 2 * 2);
    let model = infersim::specs::load_model("llama-3.1-8b", None, "t", "m").unwrap();
    let t4 = infersim::specs::load_gpu("t4", None, "t", "g").unwrap();
    // One T4 cannot hold 8B bf16 weights in 0.9 of its memory.
    let weights = infersim::config::memory::weight_bytes(&model, &Default::default());
    assert!(weights > 0.9 * t4.memory_bytes());
    let mem: Vec<_> = r
        .candidates
        .iter()
        .filter(|c| c.pruned.as_deref().is_some_and(|p| p.starts_with("memory")))
        .collect();
    assert!(!mem.is_empty());
    for c in &mem {
        // Each GPU of the group holds 1/tp of the weights: only TP 1 on a T4 fails.
        assert_eq!((c.setup.gpu.as_str(), c.setup.tp), ("t4", 1), "{}", c.label);
    }
    // TP 2 on one GPU is not a layout.
    for c in &r.candidates {
        if c.setup.tp > c.setup.num_gpus {
            assert!(
                c.pruned.as_deref().unwrap().starts_with("invalid"),
                "{}",
                c.label
            );
        }
        // The roofline bounds every rate found, and prunes only below the target.
        if let (Some(m), Some(b)) = (c.max_rate, c.roofline_rate) {
            assert!(m <= b, "{}: {m} > {b}", c.label);
        }
        if c.pruned
            .as_deref()
            .is_some_and(|p| p.starts_with("roofline"))
        {
            assert!(c.roofline_rate.unwrap() < 6.0);
        }
    }
    let counted: usize = r.pruned.values().sum();
    assert_eq!(counted + r.searched, r.candidates_total);
}

#[test]
fn sharded_then_merged_equals_unsharded_and_threads_do_not_matter() {
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "plan.toml", PLAN);
    let plan = load_plan(&path).unwrap();
    let verified = |threads: usize| {
        let mut r = finalize(report(&path, threads, None));
        add_verification(&plan, &mut r).unwrap();
        assert_eq!(r.verification.len(), 2);
        r
    };
    let whole = files(&verified(1), &d.path().join("whole"));
    let three = files(&verified(3), &d.path().join("three"));
    assert_eq!(whole, three, "1 thread vs 3 threads");
    let mut shard_files = Vec::new();
    for i in 0..3 {
        let sh = Shard { index: i, count: 3 };
        let raw = report(&path, 2, Some(sh));
        let p = d.path().join(format!("shard-{i}-of-3.json"));
        write_shard(&raw, &p).unwrap();
        shard_files.push(p);
    }
    shard_files.reverse();
    let merged = files(
        &merge_plan_shards(&shard_files, None).unwrap(),
        &d.path().join("merged"),
    );
    for (a, b) in whole.iter().zip(&merged) {
        assert!(a.1 == b.1, "{} differs after merging shards", a.0);
    }
    // A missing shard is an error naming it.
    let e = merge_plan_shards(&shard_files[..2], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("shard") && e.contains("missing"), "{e}");
    // The re-runs need the plan the shards were run with: another plan is refused,
    // naming the option, and the same plan given explicitly merges the same.
    let other = write(
        d.path(),
        "other.toml",
        &PLAN.replace("target_rate = 6.0", "target_rate = 5.0"),
    );
    let e = merge_plan_shards(&shard_files, Some(&other)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(
        msg.contains("--experiment") && msg.contains("not the plan the shards were run with"),
        "{msg}"
    );
    let again = files(
        &merge_plan_shards(&shard_files, Some(&path)).unwrap(),
        &d.path().join("again"),
    );
    assert!(whole == again, "merge with the plan given");
}

fn plan_error(text: &str) -> (String, i32) {
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "bad.toml", text);
    let e = load_plan(&path).unwrap_err();
    (e.to_string(), e.exit_code())
}

#[test]
fn bad_plan_keys_name_the_file_field_and_what_is_allowed() {
    let cases = [
        ("target_rate = 6.0", "target_rat = 6.0", "plan.target_rat: unknown key; [plan] takes: target_rate"),
        ("target_rate = 6.0", "target_rate = -1", "plan.target_rate: got -1, allowed: requests per second > 0, or \"max\""),
        ("replications = 2", "replications = 0", "plan.replications: got 0, allowed: runs per rate point, 1 to 20"),
        ("num_gpus = [1, 2]", "num_gpu = [1, 2]", "plan.space.num_gpu: unknown axis; [plan.space] takes: model, gpu, num_gpus"),
        ("max_num_seqs = [64, 256]", "sharing = [\"exclusiv\"]", "plan.space.sharing: got [\"exclusiv\"], allowed: hardware.sharing: \"exclusive\", \"mps\", \"time-slice\" or \"mig\""),
        ("max_num_seqs = [64, 256]", "max_num_seqs = []", "plan.space.max_num_seqs: must be a non-empty list of values"),
        ("duration_s = 30.0", "rate_per_s = 3.0\nduration_s = 30.0", "workload.rate_per_s: is set by the planner"),
        ("[slo]\np99_ttft_ms = 2000", "", "slo: is missing"),
        ("max_model_len = 4096", "max_model_len = 4096\nmax_modl_len = 1", "engine.max_modl_len"),
    ];
    for (from, to, want) in cases {
        assert!(PLAN.contains(from), "{from}");
        let (msg, code) = plan_error(&PLAN.replacen(from, to, 1));
        assert_eq!(code, 2, "{msg}");
        assert!(msg.contains("bad.toml"), "{msg}");
        assert!(msg.contains(want), "wanted {want:?} in:\n{msg}");
        // Plan keys are located at their line, as an experiment's keys are.
        if want.starts_with("plan.") {
            let text = PLAN.replacen(from, to, 1);
            let line = text[..text.find(to).unwrap()].matches('\n').count() + 1;
            assert!(
                msg.contains(&format!("bad.toml:{line}:")),
                "line {line} in:\n{msg}"
            );
        }
    }
    // "max" searches every candidate: cheapest_only does not apply.
    let (msg, code) = plan_error(&PLAN.replacen(
        "target_rate = 6.0",
        "target_rate = \"max\"\ncheapest_only = true",
        1,
    ));
    assert_eq!(code, 2);
    assert!(
        msg.contains("plan.cheapest_only: applies only with a numeric target_rate"),
        "{msg}"
    );
}

#[test]
fn the_command_writes_its_files_and_refuses_bad_input_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "plan.toml", PLAN);
    let out = d.path().join("out");
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = vec!["infersim".into(), "plan".into(), path.display().to_string()];
        v.extend(["--out".into(), out.display().to_string(), "--quiet".into()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    assert_eq!(infersim::cli::main_with_args(args(&[])), 0);
    for f in ["plan.json", "plan.csv", "plan.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert_eq!(infersim::cli::main_with_args(args(&["--shard", "1/2"])), 0);
    assert!(out.join("shard-1-of-2.json").is_file());
    assert_eq!(infersim::cli::main_with_args(args(&["--shard", "2/2"])), 2);
    // `infersim run` on a plan file says to use `infersim plan`.
    let run = ["infersim", "run", &path.display().to_string(), "--quiet"];
    let run: Vec<String> = run.iter().map(|s| s.to_string()).collect();
    assert_eq!(infersim::cli::main_with_args(run), 2);
    // The HTML report is self-contained and holds every candidate's row.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for external in ["href=\"http", "src=\"http", "<script", "<link", "url("] {
        assert!(!html.contains(external), "report.html holds {external}");
    }
    let csv = std::fs::read_to_string(out.join("plan.csv")).unwrap();
    let rows = csv.lines().count() - 1;
    assert!(
        html.matches("<tr").count() > rows,
        "{rows} candidate rows and a header"
    );
    assert!(html.contains("<svg"), "the plot is inlined");
    // `infersim merge` on the folder of a 2-way split writes the unsharded files.
    let shards = d.path().join("shards");
    for i in ["0/2", "1/2"] {
        let mut v = args(&["--shard", i]);
        v[4] = shards.display().to_string();
        assert_eq!(infersim::cli::main_with_args(v), 0);
    }
    let merged = d.path().join("merged");
    let cmd = ["infersim", "merge", &shards.display().to_string(), "--out"];
    let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    v.extend([merged.display().to_string(), "--quiet".into()]);
    assert_eq!(infersim::cli::main_with_args(v), 0);
    for f in ["plan.json", "plan.csv", "plan.svg", "report.html"] {
        let a = std::fs::read(out.join(f)).unwrap();
        let b = std::fs::read(merged.join(f)).unwrap();
        assert!(a == b, "{f} differs after infersim merge");
    }
}

/// Sharing modes: MPS and time-sliced pods split the GPU's memory (0.9 / pods unless
/// the file sets it) and build; MIG slices build as GPUs of their own; with
/// `target_rate = "max"` every candidate is searched and its rate stays under its
/// roofline bound (counted over the MIG instances, which outnumber the GPU).
#[test]
fn sharing_modes_build_and_max_searches_every_candidate() {
    let text = PLAN
        .replacen("target_rate = 6.0", "target_rate = \"max\"\nmax_steps = 14", 1)
        .replacen(
            "gpu = [\"t4\", \"l4\", \"a10g\"]\nnum_gpus = [1, 2]\ntensor_parallel_size = [1, 2]\nmax_num_seqs = [64, 256]",
            "gpu = [\"a100-80gb\"]\nsharing = [\"exclusive\", \"mps\", \"time-slice\", \"mig\"]\ninstances_per_gpu = [2]\nmig = [\"3g.40gb\", \"1g.10gb\"]",
            1,
        )
        .replacen("llama-3.1-8b", "llama-3.2-1b", 1);
    let d = tempfile::tempdir().unwrap();
    let path = write(d.path(), "share.toml", &text);
    let r = finalize(report(&path, 2, None));
    assert_eq!(r.candidates_total, 5);
    assert_eq!(r.searched, 5, "{:?}", r.candidates);
    for c in &r.candidates {
        let (m, b) = (c.max_rate.unwrap(), c.roofline_rate.unwrap());
        assert!(m > 0.0 && m <= b, "{}: {m} vs {b}", c.label);
        // One physical GPU's price, whatever runs on it.
        assert_eq!(c.cost_per_hour_usd, r.candidates[0].cost_per_hour_usd);
    }
    assert_eq!(r.candidates[1].instances, 2); // mps ×2
    assert_eq!(r.candidates[4].instances, 7); // seven 1g.10gb slices
                                              // The winner has the highest rate.
    let w = r.winner.unwrap();
    assert!(r
        .candidates
        .iter()
        .all(|c| c.max_rate <= r.candidates[w].max_rate));
}
