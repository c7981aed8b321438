//! Fuzzing the inputs a user controls: experiment files (arbitrary text, token soup,
//! structured-but-random configs, mutations of the shipped experiments) and trace
//! CSVs (arbitrary text, random rows). Each goes through the parser and validator and,
//! when it validates, a short simulation with invariant checks. Nothing may panic,
//! hang or overflow: bad input must come back as errors naming the file.
//!
//! Bounded for CI: fixed seeds and case counts (proptest's `TestRunner` with a ChaCha
//! RNG seeded here), a few seconds in release. Set `INFERSIM_FUZZ_CASES` to run more
//! cases of each target (for example 20000 in a soak run).

use infersim::config::{parse_experiment, schema, Experiment};
use infersim::error::SimError;
use infersim::experiment::estimate;
use infersim::metrics::Summary;
use infersim::policy::fcfs::{admit_while, schedule_running};
use infersim::policy::{Scheduler, SchedulerChoice, StepBuilder};
use infersim::sim::{run, RunOptions};
use infersim::specs::{SHIPPED_GPUS, SHIPPED_MODELS};
use infersim::workload::{parse_trace, read_trace};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Simulations estimated above this many tokens are validated but not run (keeps the
/// target fast; the guard's estimate is what decides).
const MAX_SIM_TOKENS: f64 = 3e5;
/// A simulation that takes longer than this is a hang.
const SIM_TIMEOUT: Duration = Duration::from_secs(60);

fn runner(cases: u32, seed: u8) -> TestRunner {
    let cases = std::env::var("INFERSIM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let cfg = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    TestRunner::new_with_rng(cfg, TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]))
}

/// Runs `f` on another thread; fails if it panics or takes longer than `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = h.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The stuck thread cannot be stopped: report and end the process rather
            // than let shrinking start more of them.
            eprintln!("hang: no result after {limit:?}: {what}");
            std::process::exit(101);
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(e) => std::panic::resume_unwind(e),
            Ok(()) => unreachable!("sent nothing and did not panic"),
        },
    }
}

/// Counts of what the inputs led to.
#[derive(Debug, Default)]
struct Tally {
    invalid: u64,
    valid: u64,
    simulated: u64,
    sim_errors: u64,
    /// How often each field was named in an error.
    fields: std::collections::BTreeMap<String, u64>,
}

/// Parses `text` as `path`; every error must name a file and a field; when valid,
/// estimates and simulates (some of) its points.
fn exercise(text: &str, path: &Path, tally: &mut Tally) -> Result<(), TestCaseError> {
    match parse_experiment(text, path) {
        Err(errs) => {
            tally.invalid += 1;
            prop_assert!(!errs.is_empty());
            for e in &errs {
                prop_assert!(!e.file.is_empty() && !e.field.is_empty(), "{e:?}");
                prop_assert!(!e.message.is_empty(), "{e:?}");
                // The schema check must catch whatever deserialising would reject, so
                // that every error names its field.
                prop_assert!(
                    e.field != "(experiment)" || e.message.contains("more errors"),
                    "{e}\n{text}"
                );
                let shown = e.to_string();
                prop_assert!(shown.contains(&e.field), "{shown}");
                *tally.fields.entry(e.field.clone()).or_default() += 1;
            }
            Ok(())
        }
        Ok(exp) => {
            tally.valid += 1;
            simulate(&exp, text, tally)
        }
    }
}

fn simulate(exp: &Experiment, text: &str, tally: &mut Tally) -> Result<(), TestCaseError> {
    let est = estimate(exp, 1);
    prop_assert!(est.tokens >= 0.0 && est.seconds >= 0.0 && est.peak_bytes >= 0.0);
    let _ = infersim::experiment::guard_problem(&est);
    let _ = infersim::experiment::experiment_hash(exp, exp.seed);
    // At most two points (the first and the last), each if it is small.
    let mut picks = vec![0];
    if exp.points.len() > 1 {
        picks.push(exp.points.len() - 1);
    }
    for i in picks {
        let p = &exp.points[i];
        let single = Experiment {
            points: vec![p.clone()],
            replications: 1,
            ..exp.clone()
        };
        if estimate(&single, 1).tokens > MAX_SIM_TOKENS {
            continue;
        }
        let sc = p.scenario.clone();
        let seed = exp.seed;
        let res = within(SIM_TIMEOUT, format!("point {i} of\n{text}"), move || {
            run(
                &sc,
                seed,
                RunOptions {
                    check_invariants: true,
                    ..RunOptions::default()
                },
            )
            .map(|r| r.summary)
        });
        tally.simulated += 1;
        if res.is_err() {
            tally.sim_errors += 1;
        }
        check_run(res).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    }
    Ok(())
}

/// The check on a run of an experiment that validated: it must complete and count its
/// requests. A run can fail only through a bug here (an invariant broken, time going
/// back, a scheduler's invalid plan, requests left at the end): validation rejects
/// what cannot be served, the fuzzed experiments use the shipped schedulers, and no
/// output file is written. So any error fails the check (it once passed any error
/// without the word "invariant", which none of them contains).
fn check_run(res: Result<Summary, SimError>) -> Result<(), String> {
    match res {
        // Nothing completes that was not issued, and the counts add up.
        Ok(summary) if summary.completed > 0 || summary.total_output_tokens == 0 => Ok(()),
        Ok(summary) => Err(format!(
            "output tokens without a completed request: {summary:?}"
        )),
        Err(e) => Err(format!("a validated experiment failed to run: {e}")),
    }
}

const WEIRD: &[&str] = &[
    "0",
    "-1",
    "1.5",
    "\"x\"",
    "true",
    "9223372036854775807",
    "-9223372036854775808",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "5e-324",
    "[]",
    "[1, 2]",
    "{}",
    "1979-05-27T07:32:00Z",
    "\"\"",
    "4294967296",
];

/// One key's strategy, with the key's name.
type KeyGen = (&'static str, BoxedStrategy<Option<(String, String)>>);

/// A key present with probability `p`: a good value, or now and then a bad one (of
/// the key's own bad values, after `|` in `values`, or a weird one).
fn key(name: &'static str, p: f64, values: Vec<String>) -> KeyGen {
    let split = values.iter().position(|v| v == "|").unwrap_or(values.len());
    let good = values[..split].to_vec();
    let mut bad: Vec<String> = WEIRD.iter().map(|s| s.to_string()).collect();
    bad.extend(values[(split + 1).min(values.len())..].iter().cloned());
    let v = prop_oneof![
        40 => prop::sample::select(good),
        1 => prop::sample::select(bad),
    ];
    (
        name,
        prop::option::weighted(p, v.prop_map(move |v| (name.to_string(), v))).boxed(),
    )
}

fn quoted(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("\"{n}\"")).collect()
}

/// The section at `path` (`""`: the top level) from its keys' strategies: every key
/// the library declares there (`infersim::config::schema`), with the values given
/// here or, for a key this file has no values for, the declaration's example now and
/// then. A key given here that the library does not declare must be a deliberate
/// unknown one (`bogus_*`).
fn section(path: &str, given: Vec<KeyGen>) -> BoxedStrategy<Vec<(String, String)>> {
    let declared = schema::section(path).unwrap_or_else(|| panic!("no section {path:?}"));
    for (name, _) in &given {
        assert!(
            name.starts_with("bogus") || declared.iter().any(|k| k.name == *name),
            "fuzz values for {path}.{name}, which the library does not declare"
        );
    }
    let mut keys: Vec<BoxedStrategy<Option<(String, String)>>> = Vec::new();
    let mut given = given;
    for k in declared {
        match given.iter().position(|(n, _)| *n == k.name) {
            Some(i) => keys.push(given.remove(i).1),
            None if k.example.is_empty() => {}
            None => keys.push(key(k.name, 0.05, vec![k.example.to_string()]).1),
        }
    }
    keys.extend(given.into_iter().map(|(_, s)| s));
    keys.prop_map(|v| v.into_iter().flatten().collect()).boxed()
}

fn list(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn dist() -> Vec<String> {
    list(&[
        "{ dist = \"fixed\", value = 1 }",
        "{ dist = \"fixed\", value = 16 }",
        "{ dist = \"fixed\", value = 100 }",
        "{ dist = \"fixed\", value = 100 }",
        "{ dist = \"fixed\", value = 3000 }",
        "{ dist = \"fixed\", value = 1000000000 }",
        "{ dist = \"uniform\", mean = 64, range_ratio = 0.5 }",
        "{ dist = \"uniform\", mean = 64, range_ratio = 0.5 }",
        "{ dist = \"uniform\", mean = 1, range_ratio = 0.99 }",
        "{ dist = \"uniform\", mean = 64, range_ratio = 1.0 }",
        "{ dist = \"normal\", mean = 50.0, std = 40.0 }",
        "{ dist = \"normal\", mean = 1.0, std = 1000.0 }",
        "{ dist = \"lognormal\", mean = 80.0, std = 120.0 }",
        "{ dist = \"lognormal\", mean = 80.0, std = 120.0 }",
        "{ dist = \"lognormal\", mean = 1.0, std = 1e6 }",
        "{ dist = \"lognormal\", mean = 20.0, std = 0.0 }",
        "|",
        "{ dist = \"fixed\" }",
        "{ dist = \"zipf\", value = 3 }",
        "{ value = 3 }",
    ])
}

/// Structured experiment text: the keys that matter for the chosen arrival and
/// sharing mode usually present, the others rarely; each value good or now and then
/// weird; sometimes a sweep or variants.
fn config_text() -> impl Strategy<Value = String> {
    let kinds = (
        prop::sample::select(list(&[
            "poisson",
            "gamma",
            "constant",
            "trace",
            "closed-loop",
            "offline",
            "poisson",
            "constant",
            "closed-loop",
            "offline",
            "burst",
        ])),
        prop::sample::select(list(&[
            "exclusive",
            "exclusive",
            "exclusive",
            "exclusive",
            "mps",
            "mps",
            "time-slice",
            "time-slice",
            "mig",
        ])),
    );
    let kinds = (kinds, any::<bool>());
    kinds.prop_flat_map(|((arrival, sharing), timed)| {
        let on = |yes: bool| if yes { 0.95 } else { 0.03 };
        let open = ["poisson", "gamma", "constant"].contains(&arrival.as_str());
        let closed = arrival == "closed-loop";
        let trace = arrival == "trace";
        let mut gpus: Vec<String> = quoted(&SHIPPED_GPUS.iter().map(|g| g.0).collect::<Vec<_>>());
        gpus.extend(list(&["\"a100-80gb\"", "\"h100-sxm\"", "\"l40s\"", "|", "\"nope\"", "\"missing.toml\""]));
        // The shipped models a run can price today: MoE, MLA and quantised specs are
        // refused until the cost model has them, and 405B fits no GPU; drawing them
        // would starve the simulator of valid configs.
        let servable = |n: &&str| {
            let m = infersim::specs::load_model(n, None, "fuzz", "model").unwrap();
            m.moe.is_none() && m.mla.is_none() && m.quantization.is_none()
                && m.param_count() < 100_000_000_000
        };
        let mut models: Vec<String> =
            quoted(&SHIPPED_MODELS.iter().map(|m| m.0).filter(servable).collect::<Vec<_>>());
        models.extend(list(&[
            "\"llama-3.2-1b\"", "\"opt-125m\"", "\"gemma-3-1b-it\"", "\"llama-3.2-1b\"",
            "\"opt-125m\"", "\"gemma-3-1b-it\"", "\"llama-3.1-8b\"", "\"qwen2.5-7b\"", "|", "\"gpt-5\"", "\"missing.toml\"",
        ]));
        let top = section("", vec![
            key("name", 0.97, list(&["\"fuzz\"", "|", "\"a/b\"", "\" \"", "\"..\""])),
            key("seed", 0.3, list(&["0", "1", "42"])),
            key("replications", 0.2, list(&["1", "2", "|", "1001"])),
            key("bogus_top", 0.02, list(&["1"])),
        ]);
        let shared = sharing != "exclusive";
        let hardware = section("hardware", vec![
            key("gpu", 0.97, gpus),
            key("num_gpus", 0.3, list(&["1", "2", "3", "|", "5000"])),
            key("instances_per_gpu", on(shared), list(&["1", "2", "3", "|", "48", "49", "300"])),
            key("sharing", 0.95, vec![format!("\"{sharing}\"")]),
            key("mig", 0.1, quoted(&["1g.10gb", "3g.40gb", "7g.80gb", "|", "9g.1gb"])),
            key("mig_instances", 0.05, list(&["1", "2", "|", "8"])),
            key(
                "router",
                0.3,
                quoted(&[
                    "round-robin", "random", "least-requests", "least-tokens", "power-of-two",
                    "sticky", "prefix-aware", "session", "|", "hash",
                ]),
            ),
            key("timeslice_ms", on(sharing == "time-slice") / 2.0, list(&["0.1", "1.0", "2.0", "50.0", "|", "0.01"])),
            key("switch_cost_ms", on(sharing == "time-slice") / 2.0, list(&["0.0", "0.1", "1.0"])),
            key(
                "active_thread_percentage",
                on(sharing == "mps") / 2.0,
                list(&["1.0", "50.0", "100.0", "|", "150.0", "1e-9"]),
            ),
        ]);
        let engine = section("engine", vec![
            key("model", 0.97, models),
            key(
                "policy",
                0.97,
                list(&["\"sequential\"", "\"static\"", "\"continuous\"", "\"continuous\"", "|", "\"fifo\""]),
            ),
            key("stack", 0.15, list(&["\"vllm\"", "\"transformers\"", "|", "\"tgi\""])),
            key("profile", 0.05, list(&["\"vllm\"", "|", "\"nope\"", "\"missing.toml\""])),
            key(
                "gpu_memory_utilization",
                if shared { 0.8 } else { 0.3 },
                list(&["0.05", "0.3", "0.45", "0.5", "0.9", "1.0", "|", "1.2"]),
            ),
            key("block_size", 0.2, list(&["1", "8", "16", "32", "1024", "|", "2048"])),
            key(
                "max_model_len",
                0.7,
                list(&["2", "3", "16", "64", "512", "2048", "4096", "4096", "4096", "131072", "|", "1000000"]),
            ),
            key("kv_cache_tokens", 0.1, list(&["16", "100", "1000", "100000", "1000000000000", "|", "15"])),
            // A policy's table for another policy does not apply: rarely.
            key(
                "continuous",
                0.1,
                list(&[
                    "{ max_num_seqs = 1 }",
                    "{ max_num_seqs = 8, max_num_batched_tokens = 64 }",
                    "{ max_num_batched_tokens = 8 }",
                    "{ enable_chunked_prefill = false }",
                    "{ enable_chunked_prefill = false, max_num_batched_tokens = 100000 }",
                    "{ enable_prefix_caching = false, max_num_seqs = 1000000 }",
                    "{ max_num_seqs = 256, max_num_batched_tokens = 2048, enable_chunked_prefill = true, enable_prefix_caching = true }",
                    "|",
                    "{ bogus = 1 }",
                ]),
            ),
            // A policy's table for another policy does not apply: rarely.
            key(
                "static",
                0.1,
                list(&[
                    "{ batch_size = 1 }",
                    "{ batch_size = 64, max_wait_ms = 50.0 }",
                    "{ batch_size = 65536, pad_finished = false }",
                    "|",
                    "{ max_wait_ms = -1.0 }",
                ]),
            ),
        ]);
        let workload = section("workload", vec![
            key("arrival", 0.97, vec![format!("\"{arrival}\"")]),
            key("rate_per_s", on(open), list(&["0.1", "1.0", "5.0", "50.0", "1000.0", "|", "1e-300", "1e7"])),
            key("burstiness", on(arrival == "gamma"), list(&["0.1", "1.0", "4.0", "|", "1e-300"])),
            key(
                "num_requests",
                if trace { 0.3 } else if timed { 0.03 } else { 0.97 },
                list(&["1", "2", "5", "20", "40", "1000000000000"]),
            ),
            key("duration_s", if timed { 0.97 } else { 0.03 }, list(&["0.5", "2.0", "10.0", "|", "1e300"])),
            key("warmup_s", if timed { 0.3 } else { 0.02 }, list(&["0.0", "0.5", "1.0", "|", "20.0"])),
            key("users", on(closed), list(&["1", "2", "8", "32"])),
            key("spawn_rate_per_s", on(closed) / 2.0, list(&["0.5", "10.0", "|", "1e-300"])),
            key(
                "think",
                on(closed) / 2.0,
                list(&["\"constant\"", "\"exponential\"", "\"between\"", "|", "\"random\""]),
            ),
            key("think_time_s", on(closed) / 2.0, list(&["0.0", "0.1", "1.0"])),
            key("think_min_s", on(closed) / 4.0, list(&["0.0", "0.5", "2.0"])),
            key("think_max_s", on(closed) / 4.0, list(&["0.0", "0.5", "2.0"])),
            key("batch_size", on(arrival == "offline"), list(&["1", "4", "16"])),
            key(
                "trace",
                on(trace),
                list(&["\"t.csv\"", "\"azure.csv\"", "|", "\"bad.csv\"", "\"missing.csv\""]),
            ),
            key("time_scale", on(trace) / 2.0, list(&["0.5", "1.0", "10.0", "|", "1e-300", "1e300"])),
            key("input_tokens", on(!trace), dist()),
            key("output_tokens", on(!trace), dist()),
            key("prompt_pool", 0.1, list(&["1", "2", "10"])),
            key("sampling", 0.1, list(&["\"greedy\"", "\"random\"", "|", "\"beam\""])),
            // Lengths that do not fit max_model_len are an error unless cut on request.
            key("truncate", 0.6, list(&["true", "true", "false"])),
        ]);
        let sweep = prop::option::weighted(
            0.3,
            prop::sample::select(list(&[
                "\"workload.rate_per_s\" = [1.0, 2.0]",
                "\"engine.policy\" = [\"static\", \"continuous\"]",
                "\"hardware.num_gpus\" = [1, 2]",
                "\"engine.nope\" = [1]",
                "\"workload.rate_per_s\" = []",
                "\"engine.max_model_len\" = [64, 4096]",
                "\"hardware\" = [1]",
                "\"seed\" = [1, 2]",
                "\"workload..x\" = [1]",
                "\"engine.continuous\" = [{ max_num_seqs = 2 }, { max_num_seqs = 0 }]",
            ])),
        );
        let variant = prop::option::weighted(
            0.15,
            prop::sample::select(list(&[
                "[[variant]]\nname = \"a\"\n[[variant]]\nname = \"b\"\nengine.policy = \"static\"\n",
                "[[variant]]\nname = \"a\"\n[[variant]]\nname = \"a\"\n",
                "[[variant]]\nengine.policy = \"static\"\n",
                "[[variant]]\nname = \"2 mps\"\nhardware = { sharing = \"mps\", instances_per_gpu = 2 }\nengine.gpu_memory_utilization = 0.45\n",
            ])),
        );
        (top, hardware, engine, workload, sweep, variant)
    })
    .prop_map(|(top, hardware, engine, workload, sweep, variant)| {
        let mut s = String::new();
        let lines = |s: &mut String, kv: &[(String, String)]| {
            for (k, v) in kv {
                s.push_str(&format!("{k} = {v}\n"));
            }
        };
        lines(&mut s, &top);
        s.push_str("[hardware]\n");
        lines(&mut s, &hardware);
        s.push_str("[engine]\n");
        lines(&mut s, &engine);
        s.push_str("[workload]\n");
        lines(&mut s, &workload);
        if let Some(sw) = sweep {
            s.push_str(&format!("[sweep]\n{sw}\n"));
        }
        if let Some(v) = variant {
            s.push_str(&v);
        }
        s
    })
}

/// A folder with the trace files the structured configs name.
fn trace_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.csv"),
        "arrival_s,input_tokens,output_tokens\n0.0,10,5\n0.5,100,20\n0.5,3000,1\n2.0,1,1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("azure.csv"),
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.csv"), "arrival_s,input_tokens\n1,2\n").unwrap();
    dir
}

#[test]
fn arbitrary_text_never_panics_the_parser() {
    let dir = trace_dir();
    let path = dir.path().join("fuzz.toml");
    let tally = RefCell::new(Tally::default());
    let strategy = prop_oneof![
        any::<String>(),
        "[ -~\n]{0,300}",
        // Token soup: fragments of experiment files in random order.
        prop::collection::vec(
            prop::sample::select(vec![
                "name = \"x\"\n",
                "[hardware]\n",
                "[engine]\n",
                "[workload]\n",
                "[sweep]\n",
                "[[variant]]\n",
                "gpu = \"a100-80gb\"\n",
                "model = \"llama-3.2-1b\"\n",
                "policy = \"continuous\"\n",
                "arrival = \"poisson\"\n",
                "rate_per_s = 2.0\n",
                "num_requests = 5\n",
                "input_tokens = { dist = \"fixed\", value = 8 }\n",
                "output_tokens = { dist = \"fixed\", value = 4 }\n",
                "\"workload.rate_per_s\" = [1.0]\n",
                "=",
                "\"",
                "[",
                "]",
                "{",
                "}",
                ",",
                "\n",
                "#",
                "nan",
                "1e999",
                "'",
                "\\u0000",
                "a.b.c = 1\n",
                "[a.b]\n",
                "x = [[[[[[[[[[1]]]]]]]]]]\n",
            ]),
            0..40,
        )
        .prop_map(|v| v.concat()),
    ];
    runner(600, 1)
        .run(&strategy, |text| {
            exercise(&text, &path, &mut tally.borrow_mut())
        })
        .unwrap();
    eprintln!("arbitrary text: {:?}", tally.borrow());
}

#[test]
fn structured_configs_validate_or_fail_cleanly_and_valid_ones_simulate() {
    let dir = trace_dir();
    let path = dir.path().join("fuzz.toml");
    let tally = RefCell::new(Tally::default());
    // 2000 cases: the parallelism and quantisation keys the generator now draws make
    // more of them invalid, and at least 50 must still reach the simulator.
    runner(2000, 2)
        .run(&config_text(), |text| {
            exercise(&text, &path, &mut tally.borrow_mut())
        })
        .unwrap();
    let tally = tally.into_inner();
    eprintln!("structured configs: {tally:?}");
    // The generator must reach the simulator often enough to mean something.
    assert!(tally.simulated >= 50, "{tally:?}");
    assert!(tally.invalid >= 100, "{tally:?}");
}

/// The shipped experiments with one value replaced, a line deleted or a line
/// duplicated.
#[test]
fn mutated_shipped_experiments_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(root.join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    files.sort();
    let n = files.len();
    let replacement = prop::sample::select(list(&[
        "0",
        "-1",
        "1",
        "2",
        "0.5",
        "1e9",
        "nan",
        "inf",
        "\"x\"",
        "true",
        "[]",
        "{}",
        "\"static\"",
        "\"mps\"",
        "\"trace\"",
        "\"closed-loop\"",
        "\"offline\"",
        "\"t4\"",
        "\"llama-3.1-70b\"",
        "16",
        "65536",
        "{ dist = \"fixed\", value = 0 }",
    ]));
    let strategy = (0..n, any::<prop::sample::Index>(), 0..3u8, replacement);
    let tally = RefCell::new(Tally::default());
    runner(300, 3)
        .run(&strategy, |(f, line, op, rep)| {
            let (path, text) = &files[f];
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let i = line.index(lines.len());
            match op {
                0 => {
                    if let Some((k, _)) = lines[i].split_once(" = ") {
                        lines[i] = format!("{k} = {rep}");
                    }
                }
                1 => {
                    lines.remove(i);
                }
                _ => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
            }
            let mutated = lines.join("\n");
            exercise(&mutated, path, &mut tally.borrow_mut())
        })
        .unwrap();
    eprintln!("mutated experiments: {:?}", tally.borrow());
}

#[test]
fn trace_files_never_panic_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trace.csv");
    let field = || {
        prop_oneof![
            6 => (1u32..5000).prop_map(|v| v.to_string()),
            4 => (0.0f64..1e5).prop_map(|v| v.to_string()),
            2 => Just("2023-11-16 18:15:46.68".to_string()),
            1 => Just(String::new()),
            1 => any::<f64>().prop_map(|v| v.to_string()),
            1 => "[-+0-9.eE]{1,12}",
            1 => Just("4294967296".to_string()),
            1 => Just("nan".to_string()),
            1 => Just("inf".to_string()),
            1 => "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9.]{1,12}",
            1 => Just("9223372036854775807-01-01 00:00:00".to_string()),
            1 => any::<String>(),
        ]
    };
    let header = prop::sample::select(list(&[
        "arrival_s,input_tokens,output_tokens",
        "TIMESTAMP,ContextTokens,GeneratedTokens",
        "\u{feff}arrival_s,input_tokens,output_tokens",
        "a,b,c",
        "",
    ]));
    let rows = prop::collection::vec(
        prop_oneof![
            40 => (field(), field(), field()).prop_map(|(a, b, c)| format!("{a},{b},{c}")),
            1 => any::<String>(),
        ],
        0..8,
    );
    let text = prop_oneof![
        1 => any::<String>(),
        4 => (header, rows).prop_map(|(h, r)| format!("{h}\n{}\n", r.join("\n"))),
    ];
    let scale = prop_oneof![Just(1.0), Just(1e-300), Just(1e300), any::<f64>()];
    let parsed = std::cell::Cell::new(0u64);
    runner(1500, 4)
        .run(&(text, scale), |(text, scale)| {
            match parse_trace(&text, scale, "trace.csv", "workload.trace") {
                Ok(t) => {
                    parsed.set(parsed.get() + 1);
                    prop_assert!(!t.rows.is_empty());
                    prop_assert!(t.rows[0].0 .0 == 0, "the first arrival is at t = 0");
                    prop_assert!(t.rows.windows(2).all(|w| w[0].0 <= w[1].0));
                }
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
            std::fs::write(&file, text.as_bytes()).unwrap();
            let _ = read_trace(&file, scale, "workload.trace");
            Ok(())
        })
        .unwrap();
    eprintln!("traces: {} parsed", parsed.get());
}

/// Valid random traces replayed end to end.
#[test]
fn random_valid_traces_replay() {
    let dir = tempfile::tempdir().unwrap();
    let rows = prop::collection::vec((0.0f64..1e4, 1u32..20_000, 1u32..5000), 1..40);
    let tally = RefCell::new(Tally::default());
    runner(150, 5)
        .run(&(rows, 0.01f64..100.0), |(rows, scale)| {
            let mut csv = String::from("arrival_s,input_tokens,output_tokens\n");
            for (t, i, o) in &rows {
                csv.push_str(&format!("{t},{i},{o}\n"));
            }
            std::fs::write(dir.path().join("r.csv"), csv).unwrap();
            let text = format!(
                "name = \"r\"\n[hardware]\ngpu = \"l4\"\n[engine]\nmodel = \"llama-3.2-1b\"\npolicy = \"continuous\"\nmax_model_len = 8192\n[workload]\narrival = \"trace\"\ntrace = \"r.csv\"\ntime_scale = {scale:?}\ntruncate = true\n"
            );
            exercise(&text, &dir.path().join("r.toml"), &mut tally.borrow_mut())
        })
        .unwrap();
    let tally = tally.into_inner();
    eprintln!("replayed traces: {tally:?}");
    assert!(tally.simulated >= 100, "{tally:?}");
}

/// FCFS that, once it has planned its step, tries to preempt a request that is still
/// waiting: an invalid operation, which the instance records and the run reports.
#[derive(Debug)]
struct PreemptsTheWaiting;

impl Scheduler for PreemptsTheWaiting {
    fn name(&self) -> &str {
        "preempts-the-waiting"
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        schedule_running(s, |s| s.newest_running());
        admit_while(s, |s| s.waiting_front().map(|r| r.handle));
        if let Some(r) = s.waiting_front() {
            let _ = s.preempt(r.handle);
        }
    }
}

/// The run check can fail: a run whose scheduler makes an invalid plan fails it (the
/// old check, which looked for the word "invariant", passed it), and the same
/// experiment with the shipped FCFS passes.
#[test]
fn the_run_check_fails_a_broken_run() {
    let text = "name = \"broken\"\n[hardware]\ngpu = \"l4\"\n[engine]\n\
        model = \"llama-3.2-1b\"\npolicy = \"continuous\"\n[engine.continuous]\n\
        max_num_seqs = 2\n[workload]\narrival = \"poisson\"\nrate_per_s = 20.0\n\
        num_requests = 20\ninput_tokens = { dist = \"fixed\", value = 64 }\n\
        output_tokens = { dist = \"fixed\", value = 16 }\n";
    let exp = parse_experiment(text, "broken.toml".as_ref()).expect("valid");
    let mut sc = exp.points[0].scenario.clone();
    let opts = RunOptions {
        check_invariants: true,
        ..RunOptions::default()
    };
    assert_eq!(check_run(run(&sc, 1, opts).map(|r| r.summary)), Ok(()));
    sc.instances[0].scheduler = SchedulerChoice::Custom {
        name: "preempts-the-waiting".into(),
        build: Arc::new(|_| Box::new(PreemptsTheWaiting)),
    };
    // Without the per-step invariant checks (which would report it as an invariant
    // error), the run itself fails on the invalid plan.
    let res = run(&sc, 1, RunOptions::default()).map(|r| r.summary);
    let e = res.as_ref().expect_err("an invalid plan fails the run");
    assert!(
        matches!(e, SimError::InvalidPlan { what, .. } if what.starts_with("preempt: request")),
        "{e}"
    );
    assert!(
        !matches!(e, SimError::Invariant(_)),
        "the old check would have caught it: {e}"
    );
    let verdict = check_run(res).expect_err("the check fails the run");
    assert!(verdict.contains("failed to run"), "{verdict}");
}
