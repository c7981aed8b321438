//! A table of bad inputs: broken TOML, unknown keys, wrong types, out-of-range values,
//! settings that do not apply, lengths that do not fit `max_model_len`, absurd spec
//! files, impossible deployments, empty or corrupt trace files, unreadable paths, runs
//! the guards refuse. Each runs the `infersim` binary and must exit with code 2, without a
//! panic, printing exactly the message recorded in `tests/snapshots/bad_inputs.snap`
//! (the whole message is compared, with the temporary folder written as `<dir>`).
//!
//! After changing a message on purpose, rewrite the snapshot with
//! `INFERSIM_UPDATE_SNAPSHOTS=1 cargo test --release --test bad_inputs` and review the
//! diff.

mod common;

use std::path::Path;

const BASE: &str = r#"name = "t"
[hardware]
gpu = "a100-80gb"
[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 4096
[workload]
arrival = "poisson"
rate_per_s = 5.0
num_requests = 100
input_tokens = { dist = "fixed", value = 256 }
output_tokens = { dist = "fixed", value = 64 }
"#;

const TRACE_BASE: &str = r#"name = "t"
[hardware]
gpu = "a100-80gb"
[engine]
model = "llama-3.1-8b"
policy = "continuous"
max_model_len = 4096
[workload]
arrival = "trace"
trace = "trace.csv"
"#;

/// One bad input: the experiment text, extra files beside it, and the command
/// (`{f}`: the experiment file, `{d}`: the folder).
struct Case {
    name: &'static str,
    text: String,
    files: Vec<(&'static str, Vec<u8>)>,
    args: Vec<&'static str>,
}

fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn case(name: &'static str, text: String) -> Case {
    Case {
        name,
        text,
        files: Vec::new(),
        args: vec!["validate", "{f}"],
    }
}

fn trace_case(name: &'static str, trace: &[u8]) -> Case {
    trace_case_with(name, "", trace)
}

/// A trace experiment with `extra` lines in `[workload]`.
fn trace_case_with(name: &'static str, extra: &str, trace: &[u8]) -> Case {
    Case {
        name,
        text: format!("{TRACE_BASE}{extra}"),
        files: vec![("trace.csv", trace.to_vec())],
        args: vec!["validate", "{f}"],
    }
}

/// The shipped A100-80GB spec with `from` replaced by `to`.
fn gpu_spec(from: &str, to: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("models/gpu/a100-80gb.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1).into_bytes()
}

/// The shipped Llama-3.1-8B spec with `from` replaced by `to`.
fn model_spec(from: &str, to: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("models/llm/llama-3.1-8b.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1).into_bytes()
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        // Broken TOML.
        case("toml-unclosed-table-header", BASE.replace("[engine]", "[engine")),
        case(
            "toml-unterminated-string",
            edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb"),
        ),
        case(
            "toml-duplicate-key",
            edit("rate_per_s = 5.0", "rate_per_s = 5.0\nrate_per_s = 6.0"),
        ),
        case("toml-missing-value", edit("num_requests = 100", "num_requests =")),
        case("empty-file", String::new()),
        // Unknown keys.
        case("unknown-top-level-key", format!("replication = 3\n{BASE}")),
        case("unknown-engine-key-typo", edit("policy =", "polcy =")),
        case(
            "unknown-key-in-length-distribution",
            edit("value = 64", "valu = 64"),
        ),
        // Wrong types.
        case(
            "wrong-type-string-for-integer",
            edit("num_requests = 100", "num_requests = \"100\""),
        ),
        case(
            "wrong-type-float-for-integer",
            edit("max_model_len = 4096", "max_model_len = 4096.5"),
        ),
        case(
            "wrong-type-table-for-string",
            edit("gpu = \"a100-80gb\"", "gpu = { name = \"a100\" }"),
        ),
        // Out of range, non-finite, zero.
        case(
            "zero-gpus",
            edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nnum_gpus = 0"),
        ),
        case(
            "memory-fraction-120-percent",
            edit("policy =", "gpu_memory_utilization = 1.2\npolicy ="),
        ),
        case("zero-rate", edit("rate_per_s = 5.0", "rate_per_s = 0.0")),
        case(
            "unknown-scheduling-policy",
            format!("{BASE}[engine.continuous]\nscheduling_policy = \"lifo\"\n"),
        ),
        // Engine presets (src/serving/stacks.rs).
        case(
            "unknown-stack-preset",
            edit("policy =", "stack = \"vllm@0.3\"\npolicy ="),
        ),
        case(
            "multi-step-on-a-v1-preset",
            edit("policy =", "stack = \"vllm@0.9\"\npolicy =")
                + "[engine.continuous]\nnum_scheduler_steps = 8\n",
        ),
        case(
            "multi-step-stream-outputs-on-a-v1-preset",
            edit("policy =", "stack = \"vllm@0.9\"\npolicy =")
                + "[engine.continuous]\nmulti_step_stream_outputs = false\n",
        ),
        case(
            "async-scheduling-on-sglang",
            edit("policy =", "stack = \"sglang@0.5\"\npolicy =")
                + "[engine.continuous]\nasync_scheduling = true\n",
        ),
        case(
            "sglang-name-on-a-vllm-preset",
            edit("policy =", "stack = \"vllm@0.9\"\npolicy =")
                + "[engine.continuous]\nchunked_prefill_size = 4096\n",
        ),
        case(
            "a-setting-under-both-names",
            edit("policy =", "stack = \"trtllm@1.0\"\npolicy =")
                + "[engine.continuous]\nmax_batch_size = 64\nmax_num_seqs = 32\n",
        ),
        case(
            "cuda-graph-sizes-not-integers",
            format!("{BASE}[engine.continuous]\ncuda_graph_sizes = [1, 2, \"four\"]\n"),
        ),
        case(
            "predictor-for-fcfs-does-not-apply",
            format!("{BASE}[engine.continuous]\nlength_predictor = \"noisy\"\n"),
        ),
        case(
            "predictor-error-without-noisy",
            format!("{BASE}[engine.continuous]\nscheduling_policy = \"sjf\"\nlength_predictor_error = 0.3\n"),
        ),
        case(
            "scheduler-under-static-policy",
            edit("policy = \"continuous\"", "policy = \"static\"")
                + "[engine.continuous]\nscheduling_policy = \"priority\"\n",
        ),
        case(
            "classes-missing",
            edit("arrival = \"poisson\"\nrate_per_s = 5.0", "arrival = \"classes\"")
                .replace("input_tokens = { dist = \"fixed\", value = 256 }\n", "")
                .replace("output_tokens = { dist = \"fixed\", value = 64 }\n", ""),
        ),
        case(
            "classes-duplicate-names",
            edit("arrival = \"poisson\"\nrate_per_s = 5.0", "arrival = \"classes\"")
                .replace("input_tokens = { dist = \"fixed\", value = 256 }\n", "")
                .replace("output_tokens = { dist = \"fixed\", value = 64 }\n", "")
                + "[[workload.classes]]\nname = \"a\"\narrival = \"poisson\"\nrate_per_s = 1.0\ninput_tokens = { dist = \"fixed\", value = 8 }\noutput_tokens = { dist = \"fixed\", value = 8 }\n"
                + "[[workload.classes]]\nname = \"a\"\narrival = \"gamma\"\nrate_per_s = 1.0\nburstiness = 0.5\ninput_tokens = { dist = \"fixed\", value = 80 }\noutput_tokens = { dist = \"fixed\", value = 8 }\n",
        ),
        case(
            "class-prompt-longer-than-max-model-len",
            edit("arrival = \"poisson\"\nrate_per_s = 5.0", "arrival = \"classes\"")
                .replace("input_tokens = { dist = \"fixed\", value = 256 }\n", "")
                .replace("output_tokens = { dist = \"fixed\", value = 64 }\n", "")
                + "[[workload.classes]]\nname = \"a\"\narrival = \"poisson\"\nrate_per_s = 1.0\ninput_tokens = { dist = \"fixed\", value = 8 }\noutput_tokens = { dist = \"fixed\", value = 8 }\n"
                + "[[workload.classes]]\nname = \"b\"\narrival = \"gamma\"\nrate_per_s = 1.0\nburstiness = 0.5\ninput_tokens = { dist = \"fixed\", value = 8000 }\noutput_tokens = { dist = \"fixed\", value = 8 }\n",
        ),
        case(
            "classes-with-top-level-rate-and-duplicate-names",
            edit("arrival = \"poisson\"", "arrival = \"classes\"")
                .replace("input_tokens = { dist = \"fixed\", value = 256 }\n", "")
                .replace("output_tokens = { dist = \"fixed\", value = 64 }\n", "")
                + "[[workload.classes]]\nname = \"a\"\narrival = \"poisson\"\nrate_per_s = 1.0\ninput_tokens = { dist = \"fixed\", value = 8 }\noutput_tokens = { dist = \"fixed\", value = 8 }\n"
                + "[[workload.classes]]\nname = \"a\"\narrival = \"burst\"\nrate_per_s = 1.0\ninput_tokens = { dist = \"fixed\", value = 8000 }\noutput_tokens = { dist = \"fixed\", value = 8 }\n",
        ),
        case("nan-rate", edit("rate_per_s = 5.0", "rate_per_s = nan")),
        case(
            "unknown-sampling",
            edit("num_requests = 100", "num_requests = 100\nsampling = \"beam\""),
        ),
        case(
            "infinite-duration",
            edit("num_requests = 100", "duration_s = inf"),
        ),
        case(
            "zero-length-output",
            edit("value = 64", "value = 0"),
        ),
        case(
            "warmup-not-shorter-than-duration",
            edit("num_requests = 100", "duration_s = 10.0\nwarmup_s = 10.0"),
        ),
        case(
            "both-num-requests-and-duration",
            edit("num_requests = 100", "num_requests = 100\nduration_s = 10.0"),
        ),
        // Unknown names and missing keys.
        case("unknown-gpu", edit("gpu = \"a100-80gb\"", "gpu = \"a100\"")),
        case(
            "mig-on-a-gpu-without-mig",
            edit("gpu = \"a100-80gb\"", "gpu = \"l4\"\nmig = \"1g.10gb\""),
        ),
        case(
            "mig-unknown-profile",
            edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nmig = \"2g.40gb\""),
        ),
        case(
            "mig-too-many-instances",
            edit(
                "gpu = \"a100-80gb\"",
                "gpu = \"a100-80gb\"\nmig = \"3g.40gb\"\nmig_instances = 3",
            ),
        ),
        case(
            "mig-instances-without-mig",
            edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nmig_instances = 2"),
        ),
        case(
            "mig-instance-index-out-of-range",
            format!(
                "{}[[instance]]\ngpu = 0\n[[instance]]\ngpu = 2\n",
                edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nmig = \"3g.40gb\"")
            ),
        ),
        case(
            "mig-model-does-not-fit",
            edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nmig = \"1g.10gb\""),
        ),
        case(
            "unknown-model",
            edit("model = \"llama-3.1-8b\"", "model = \"llama-4-8b\""),
        ),
        case(
            "missing-model-spec-file",
            edit("model = \"llama-3.1-8b\"", "model = \"models/mine.toml\""),
        ),
        Case {
            name: "model-spec-file-corrupt",
            text: edit("model = \"llama-3.1-8b\"", "model = \"mine.toml\""),
            files: vec![("mine.toml", b"name = \"mine\"\nnum_layers = \"32\"\n".to_vec())],
            args: vec!["validate", "{f}"],
        },
        case(
            "missing-policy-and-lengths",
            BASE.replace("policy = \"continuous\"\n", "")
                .replace("input_tokens = { dist = \"fixed\", value = 256 }\n", ""),
        ),
        case(
            "rate-for-closed-loop",
            edit("arrival = \"poisson\"", "arrival = \"closed-loop\"\nusers = 4"),
        ),
        // Impossible deployments.
        case(
            "70b-on-a-t4",
            edit("gpu = \"a100-80gb\"", "gpu = \"t4\"")
                .replace("llama-3.1-8b", "llama-3.1-70b"),
        ),
        case(
            "memory-fractions-over-1-on-one-gpu",
            edit(
                "gpu = \"a100-80gb\"",
                "gpu = \"a100-80gb\"\nsharing = \"mps\"\ninstances_per_gpu = 2",
            )
            .replace("policy =", "gpu_memory_utilization = 0.6\npolicy ="),
        ),
        case(
            "mps-client-limit",
            edit(
                "gpu = \"a100-80gb\"",
                "gpu = \"a100-80gb\"\nsharing = \"mps\"\ninstances_per_gpu = 49",
            )
            .replace("policy =", "gpu_memory_utilization = 0.02\npolicy ="),
        ),
        case(
            "two-instances-exclusive",
            edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\ninstances_per_gpu = 2"),
        ),
        case(
            "timeslice-option-with-mps",
            edit(
                "gpu = \"a100-80gb\"",
                "gpu = \"a100-80gb\"\nsharing = \"mps\"\ntimeslice_ms = 2.0",
            ),
        ),
        case(
            "chunked-prefill-budget-below-a-block",
            format!("{BASE}[engine.continuous]\nmax_num_seqs = 4\nmax_num_batched_tokens = 8\n")
                .replace("[workload]", "block_size = 16\n[workload]"),
        ),
        case(
            "batched-tokens-below-max-model-len-without-chunking",
            format!("{BASE}[engine.continuous]\nenable_chunked_prefill = false\nmax_num_batched_tokens = 2048\n"),
        ),
        case(
            "context-longer-than-the-model",
            edit("max_model_len = 4096", "max_model_len = 1000000"),
        ),
        case(
            "sticky-router-open-loop",
            edit("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nrouter = \"sticky\""),
        ),
        // Lengths that do not fit max_model_len (never cut silently).
        case(
            "prompt-longer-than-max-model-len",
            edit("value = 256", "value = 5000"),
        ),
        case(
            "prompt-plus-output-longer-than-max-model-len",
            edit("value = 256", "value = 4000").replace("value = 64", "value = 200"),
        ),
        case(
            "some-uniform-lengths-do-not-fit",
            edit(
                "input_tokens = { dist = \"fixed\", value = 256 }",
                "input_tokens = { dist = \"uniform\", mean = 3500, range_ratio = 0.2 }",
            ),
        ),
        case(
            "uniform-lengths-that-can-exceed-though-no-draw-did",
            edit(
                "input_tokens = { dist = \"fixed\", value = 256 }",
                "input_tokens = { dist = \"uniform\", mean = 2100, range_ratio = 0.95 }",
            )
            .replace("num_requests = 100", "num_requests = 1"),
        ),
        trace_case(
            "trace-rows-longer-than-max-model-len",
            b"arrival_s,input_tokens,output_tokens\n0.0,100,20\n0.5,4000,200\n1.0,5000,1\n",
        ),
        // Spec files and sizes no hardware has.
        case(
            "block-size-not-a-power-of-two",
            edit("max_model_len = 4096", "max_model_len = 4096\nblock_size = 24"),
        ),
        case(
            "kv-cache-larger-than-memory",
            edit("max_model_len = 4096", "max_model_len = 4096\nkv_cache_tokens = 100000000"),
        ),
        Case {
            name: "gpu-spec-absurd-tflops",
            text: edit("gpu = \"a100-80gb\"", "gpu = \"mine.toml\""),
            files: vec![("mine.toml", gpu_spec("tensor_tflops = 312.0", "tensor_tflops = 1e-300"))],
            args: vec!["validate", "{f}"],
        },
        Case {
            name: "gpu-spec-zero-sms",
            text: edit("gpu = \"a100-80gb\"", "gpu = \"mine.toml\""),
            files: vec![("mine.toml", gpu_spec("sm_count = 108", "sm_count = 0"))],
            args: vec!["validate", "{f}"],
        },
        Case {
            name: "gpu-spec-every-error-in-one-round",
            text: edit("gpu = \"a100-80gb\"", "gpu = \"mine.toml\""),
            files: vec![(
                "mine.toml",
                String::from_utf8(gpu_spec("sm_count = 108", "sm_count = 0"))
                    .unwrap()
                    .replacen("tensor_tflops = 312.0", "tensor_tflops = 1e-300", 1)
                    .into_bytes(),
            )],
            args: vec!["validate", "{f}"],
        },
        Case {
            name: "gpu-spec-negative-price",
            text: edit("gpu = \"a100-80gb\"", "gpu = \"mine.toml\""),
            files: vec![("mine.toml", gpu_spec("price_per_gpu_hour_usd = 3.4309", "price_per_gpu_hour_usd = -1.0"))],
            args: vec!["validate", "{f}"],
        },
        Case {
            name: "model-spec-hidden-size-overflows",
            text: edit("model = \"llama-3.1-8b\"", "model = \"mine.toml\""),
            files: vec![("mine.toml", model_spec("hidden_size = 4096", "hidden_size = 4611686018427387904"))],
            args: vec!["validate", "{f}"],
        },
        // Settings of what is not selected.
        case(
            "static-settings-with-continuous-policy",
            format!("{BASE}[engine.static]\nbatch_size = 8\n"),
        ),
        case(
            "think-bounds-with-constant-think",
            edit("arrival = \"poisson\"", "arrival = \"closed-loop\"\nusers = 4\nthink_min_s = 1.0")
                .replace("rate_per_s = 5.0\n", ""),
        ),
        // Schema and meaning errors of one file in one round.
        case(
            "schema-and-meaning-errors-together",
            edit("num_requests = 100", "num_requests = 100\nwarmup_s = 1.0")
                .replace("rate_per_s = 5.0", "rate_per_s = 1e9")
                .replace("policy =", "gpu_memory_utilization = \"most\"\npolicy =")
                .replace("value = 256", "value = 5000"),
        ),
        // Sweeps and variants.
        case(
            "empty-sweep",
            format!("{BASE}[sweep]\n\"workload.rate_per_s\" = []\n"),
        ),
        case(
            "sweep-not-a-list",
            format!("{BASE}[sweep]\n\"workload.rate_per_s\" = 5.0\n"),
        ),
        case(
            "sweep-unknown-key",
            format!("{BASE}[sweep]\n\"workload.rate_per_sec\" = [1.0, 2.0]\n"),
        ),
        case(
            "sweep-one-bad-value",
            format!("{BASE}[sweep]\n\"workload.rate_per_s\" = [1.0, -2.0, 3.0]\n"),
        ),
        case(
            "sweep-combination-does-not-fit",
            format!("{BASE}[sweep]\n\"hardware.gpu\" = [\"a100-80gb\", \"t4\"]\n\"engine.model\" = [\"llama-3.1-8b\", \"qwen3-14b\"]\n"),
        ),
        case(
            "sweep-too-many-points",
            format!(
                "{BASE}[sweep]\n\"workload.rate_per_s\" = [{}]\n\"engine.block_size\" = [{}]\n",
                (1..=200).map(|i| format!("{i}.0")).collect::<Vec<_>>().join(", "),
                (1..=60).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            ),
        ),
        case(
            "sweep-duplicate-value",
            format!("{BASE}[sweep]\n\"workload.rate_per_s\" = [1.0, 2.0, 1.0]\n"),
        ),
        case(
            "sweep-seed",
            format!("{BASE}[sweep]\nseed = [1, 2]\n"),
        ),
        case(
            "variant-without-name",
            format!("{BASE}[[variant]]\nname = \"a\"\n[[variant]]\nengine.policy = \"static\"\n"),
        ),
        case(
            "variant-bad-value",
            format!("{BASE}[[variant]]\nname = \"ok\"\n[[variant]]\nname = \"bad\"\nengine.gpu_memory_utilization = 2.0\n"),
        ),
        // Everything at once: every error is reported.
        case(
            "many-errors-at-once",
            BASE.replace("num_requests = 100", "num_requests = -5")
                .replace("policy = \"continuous\"", "policy = \"fcfs\"")
                .replace("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nnum_gpu = 2")
                .replace("value = 64", "value = 64.5"),
        ),
        // Traces.
        trace_case("trace-empty", b""),
        trace_case("trace-header-only", b"arrival_s,input_tokens,output_tokens\n"),
        trace_case("trace-unknown-header", b"time,prompt,completion\n0,1,2\n"),
        trace_case(
            "trace-corrupt-row",
            b"arrival_s,input_tokens,output_tokens\n0.0,100,20\n0.5,abc,20\n",
        ),
        trace_case(
            "trace-negative-time",
            b"arrival_s,input_tokens,output_tokens\n-1.0,100,20\n",
        ),
        trace_case(
            "trace-missing-column",
            b"arrival_s,input_tokens,output_tokens\n0.0,100\n",
        ),
        trace_case(
            "trace-azure-bad-timestamp",
            b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 25:61:00.0,374,44\n",
        ),
        trace_case("trace-not-utf8", b"arrival_s,input_tokens,output_tokens\n\xff\xfe,1,2\n"),
        Case {
            name: "trace-file-missing",
            text: TRACE_BASE.to_string(),
            files: Vec::new(),
            args: vec!["validate", "{f}"],
        },
        trace_case_with(
            "trace-lengths-given",
            "input_tokens = { dist = \"fixed\", value = 8 }\n",
            b"arrival_s,input_tokens,output_tokens\n0,1,1\n",
        ),
        trace_case_with(
            "trace-sampling-given",
            "sampling = \"greedy\"\n",
            b"arrival_s,input_tokens,output_tokens\n0,1,1\n",
        ),
        // Unreadable experiment files.
        Case {
            name: "experiment-file-missing",
            text: String::new(),
            files: Vec::new(),
            args: vec!["validate", "{d}/nope.toml"],
        },
        Case {
            name: "experiment-path-is-a-folder",
            text: String::new(),
            files: Vec::new(),
            args: vec!["validate", "{d}"],
        },
        Case {
            name: "experiment-not-utf8",
            text: String::new(),
            files: vec![("bin.toml", b"name = \"\xff\xfe\"\n".to_vec())],
            args: vec!["validate", "{d}/bin.toml"],
        },
        Case {
            name: "seed-above-the-file-range",
            text: BASE.to_string(),
            files: Vec::new(),
            args: vec!["run", "{f}", "--out", "{d}/out", "--seed", "9223372036854775808"],
        },
        // Runs the guards refuse.
        Case {
            name: "guard-refuses-hours-of-work",
            text: edit("num_requests = 100", "num_requests = 2000000000"),
            files: Vec::new(),
            args: vec!["run", "{f}", "--out", "{d}/out", "--jobs", "2"],
        },
        Case {
            name: "output-folder-of-another-config",
            text: BASE.to_string(),
            files: vec![(
                "out/manifest.json",
                br#"{"experiment": "t", "experiment_hash": "0123456789abcdef"}"#.to_vec(),
            )],
            args: vec!["run", "{f}", "--out", "{d}/out", "--quiet"],
        },
        Case {
            name: "output-folder-not-ours",
            text: BASE.to_string(),
            files: vec![("out/notes.txt", b"mine".to_vec())],
            args: vec!["run", "{f}", "--out", "{d}/out", "--quiet"],
        },
    ];
    v.extend(shared_context_cases());
    v.extend(shard_cases());
    v.extend(front_end_cases());
    v.extend(hf_config_cases());
    v.extend(expert_parallel_cases());
    v.extend(quantization_cases());
    v.extend(parallel_cases());
    v.extend(slo_price_cases());
    v.sort_by_key(|c| c.name);
    v
}

/// `engine.quantization` and `engine.kv_cache_dtype`.
fn quantization_cases() -> Vec<Case> {
    let q = |v: &str| {
        edit(
            "max_model_len = 4096",
            &format!("max_model_len = 4096\n{v}"),
        )
    };
    vec![
        case("quantization-unknown-method", q("quantization = \"int3\"")),
        case(
            "quantization-compressed-tensors",
            q("quantization = \"compressed-tensors\""),
        ),
        case(
            "quantization-kv-cache-dtype-unknown",
            q("kv_cache_dtype = \"int8\""),
        ),
        case(
            "quantization-fp8-on-turing",
            q("quantization = \"fp8\"").replace("gpu = \"a100-80gb\"", "gpu = \"t4\""),
        ),
        case(
            "quantization-scheme-without-compressed-tensors",
            q("quantization = \"fp8\"\nquantization_scheme = \"w8a8-int8\""),
        ),
        case(
            "quantization-scheme-unknown",
            q("quantization = \"compressed-tensors\"\nquantization_scheme = \"w4a4-int\""),
        ),
        Case {
            name: "quantization-int8-without-int8-tensor-cores",
            text: q("quantization = \"compressed-tensors\"\nquantization_scheme = \"w8a8-int8\"")
                .replace("gpu = \"a100-80gb\"", "gpu = \"mine.toml\""),
            files: vec![(
                "mine.toml",
                gpu_spec("int8_tops = 624.0", "int8_tops = 0.0"),
            )],
            args: vec!["validate", "{f}"],
        },
        case(
            "quantization-mxfp4-on-a-dense-model",
            q("quantization = \"mxfp4\""),
        ),
        Case {
            name: "quantization-does-not-match-the-checkpoint",
            text: q("quantization = \"awq\"")
                .replace("model = \"llama-3.1-8b\"", "model = \"mine.toml\""),
            files: vec![(
                "mine.toml",
                model_spec("hf_repo = ", "quantization = \"fp8\"\nhf_repo = "),
            )],
            args: vec!["validate", "{f}"],
        },
        Case {
            name: "quantization-checkpoint-format-not-priced",
            text: edit("model = \"llama-3.1-8b\"", "model = \"mine.toml\""),
            files: vec![(
                "mine.toml",
                model_spec("hf_repo = ", "quantization = \"gguf\"\nhf_repo = "),
            )],
            args: vec!["validate", "{f}"],
        },
        Case {
            name: "quantization-gpu-spec-negative-fp8-rate",
            text: edit("gpu = \"a100-80gb\"", "gpu = \"mine.toml\""),
            files: vec![(
                "mine.toml",
                gpu_spec("fp8_tflops = 0.0", "fp8_tflops = -1.0"),
            )],
            args: vec!["validate", "{f}"],
        },
    ]
}

/// Shared prefixes, sessions and traces that name them.
fn shared_context_cases() -> Vec<Case> {
    const SP: &str = "[workload.shared_prefix]\nnum_groups = 2\nnum_prompts_per_group = 4\nsystem_prompt_len = 512\nquestion_len = { dist = \"fixed\", value = 64 }\n";
    const SS: &str = "[workload.sessions]\nturns = { dist = \"fixed\", value = 3 }\n";
    let no_input = || BASE.replace("input_tokens = { dist = \"fixed\", value = 256 }\n", "");
    let trace = "arrival_s,input_tokens,output_tokens";
    vec![
        case("shared-prefix-with-input-tokens", format!("{BASE}{SP}")),
        case(
            "shared-prefix-and-sessions",
            format!("{}{SP}{SS}", no_input()),
        ),
        case(
            "shared-prefix-with-prompt-pool",
            format!(
                "{}{SP}",
                no_input().replace("num_requests = 100", "num_requests = 100\nprompt_pool = 4")
            ),
        ),
        case(
            "shared-prefix-zero-groups",
            format!(
                "{}{}",
                no_input(),
                SP.replace("num_groups = 2", "num_groups = 0")
            ),
        ),
        case(
            "shared-prefix-missing-system-prompt",
            format!(
                "{}{}",
                no_input(),
                SP.replace("system_prompt_len = 512\n", "")
            ),
        ),
        case(
            "shared-prefix-too-many-prompts",
            format!(
                "{}{}",
                no_input(),
                SP.replace("num_groups = 2", "num_groups = 1000000")
                    .replace("num_prompts_per_group = 4", "num_prompts_per_group = 1000")
            ),
        ),
        case(
            "shared-prefix-bad-question-len",
            format!("{}{}", no_input(), SP.replace("value = 64", "value = 0")),
        ),
        case(
            "sessions-with-greedy-sampling",
            format!(
                "{}{SS}",
                edit(
                    "num_requests = 100",
                    "num_requests = 100\nsampling = \"greedy\""
                )
            ),
        ),
        case(
            "sessions-unknown-think",
            format!("{BASE}{SS}think = \"between\"\n"),
        ),
        case(
            "sessions-negative-think-time",
            format!("{BASE}{SS}think_time_s = -1.0\n"),
        ),
        case("sessions-unknown-key", format!("{BASE}{SS}turn = 2\n")),
        case(
            "sessions-with-offline",
            format!(
                "{}{SS}",
                edit(
                    "arrival = \"poisson\"\nrate_per_s = 5.0",
                    "arrival = \"offline\"\nbatch_size = 8"
                )
            ),
        ),
        trace_case(
            "trace-unknown-optional-column",
            format!("{trace},user\n0,10,10,a\n").as_bytes(),
        ),
        trace_case(
            "trace-prefix-group-without-tokens",
            format!("{trace},prefix_group\n0,10,10,a\n").as_bytes(),
        ),
        trace_case(
            "trace-prefix-and-session-columns",
            format!("{trace},prefix_group,prefix_tokens,session_id\n0,10,10,a,4,s\n").as_bytes(),
        ),
        trace_case(
            "trace-prefix-longer-than-prompt",
            format!("{trace},prefix_group,prefix_tokens\n0,10,10,a,4\n1,10,10,a,11\n").as_bytes(),
        ),
        trace_case(
            "trace-prefix-group-lengths-differ",
            format!("{trace},prefix_group,prefix_tokens\n0,10,10,a,4\n1,10,10,a,5\n").as_bytes(),
        ),
        trace_case(
            "trace-prefix-tokens-without-group",
            format!("{trace},prefix_group,prefix_tokens\n0,10,10,,4\n").as_bytes(),
        ),
        trace_case(
            "trace-session-column-count",
            format!("{trace},session_id\n0,10,10\n").as_bytes(),
        ),
    ]
}

/// `run --shard` and `merge`: shard files and folders they refuse.
fn shard_cases() -> Vec<Case> {
    let run = |name, files: Vec<(&'static str, Vec<u8>)>, args| Case {
        name,
        text: BASE.to_string(),
        files,
        args,
    };
    // A well-formed shard 0 of 2 (no runs needed: the missing shard is found first).
    let shard0 = format!(
        r#"{{"kind": "run", "format": 1, "infersim_version": "{}", "experiment": "t", "file": "exp.toml", "seed": 1, "experiment_hash": "0123456789abcdef", "shard": 0, "shards": 2, "runs_total": 1, "command_line": [], "runs": []}}"#,
        env!("CARGO_PKG_VERSION")
    );
    vec![
        run(
            "shard-not-i-of-n",
            Vec::new(),
            vec!["run", "{f}", "--out", "{d}/out", "--shard", "2/2"],
        ),
        run(
            "shard-into-another-configs-folder",
            vec![(
                "out/manifest.json",
                br#"{"experiment": "t", "experiment_hash": "0123456789abcdef"}"#.to_vec(),
            )],
            vec!["run", "{f}", "--out", "{d}/out", "--shard", "0/2"],
        ),
        run(
            "merge-folder-without-shards",
            vec![("out/notes.txt", b"mine".to_vec())],
            vec!["merge", "{d}/out"],
        ),
        run(
            "merge-shard-not-json",
            vec![("out/shard-0-of-1.json", b"{ not json".to_vec())],
            vec!["merge", "{d}/out"],
        ),
        run(
            "merge-shard-unknown-kind",
            vec![("out/shard-0-of-1.json", br#"{"kind": "sweep"}"#.to_vec())],
            vec!["merge", "{d}/out"],
        ),
        run(
            "merge-shard-without-kind",
            vec![("out/shard-0-of-1.json", br#"{"runs": []}"#.to_vec())],
            vec!["merge", "{d}/out"],
        ),
        run(
            "merge-shard-missing",
            vec![("out/shard-0-of-2.json", shard0.into_bytes())],
            vec!["merge", "{d}/out"],
        ),
    ]
}

/// Runs one case in a fresh folder: (exit code, stderr with the folder as `<dir>`).
fn run_case(c: &Case) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("exp.toml");
    std::fs::write(&f, &c.text).unwrap();
    for (name, bytes) in &c.files {
        let p = d.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| {
            a.replace("{f}", f.to_str().unwrap())
                .replace("{d}", d.to_str().unwrap())
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, stderr) = common::infersim_bin(&args, &[]);
    (code, stderr.replace(d.to_str().unwrap(), "<dir>"))
}

/// `engine.model = "m/config.json"`: Hugging Face configs the importer refuses.
fn hf_config_cases() -> Vec<Case> {
    let llama = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/llama-3.1-8b/config.json"),
    )
    .unwrap();
    let cfg = |name: &'static str, json: String| Case {
        name,
        text: edit("model = \"llama-3.1-8b\"", "model = \"m/config.json\""),
        files: vec![("m/config.json", json.into_bytes())],
        args: vec!["validate", "{f}"],
    };
    let with = |from: &str, to: &str| {
        assert!(llama.contains(from), "{from}");
        llama.replacen(from, to, 1)
    };
    vec![
        cfg(
            "hf-config-moe-model-type",
            with("\"model_type\": \"llama\"", "\"model_type\": \"mixtral\""),
        ),
        cfg(
            "hf-config-unknown-model-type",
            with("\"model_type\": \"llama\"", "\"model_type\": \"falcon\""),
        ),
        cfg(
            "hf-config-architectures-mismatch",
            with("\"LlamaForCausalLM\"", "\"Qwen2ForCausalLM\""),
        ),
        cfg(
            "hf-config-missing-field",
            with("\"num_hidden_layers\": 32,", ""),
        ),
        cfg(
            "hf-config-bad-json",
            with("\"hidden_size\": 4096,", "\"hidden_size\": 4096,,"),
        ),
        cfg(
            "hf-config-quantised",
            with(
                "\"torch_dtype\"",
                "\"quantization_config\": {\"quant_method\": \"compressed-tensors\"},\n  \"torch_dtype\"",
            ),
        ),
        cfg(
            "hf-config-experts-field",
            with("\"mlp_bias\": false,", "\"mlp_bias\": false,\n  \"num_local_experts\": 8,"),
        ),
        cfg(
            "hf-config-unknown-quant-method",
            with(
                "\"torch_dtype\"",
                "\"quantization_config\": {\"quant_method\": \"int3\"},\n  \"torch_dtype\"",
            ),
        ),
        cfg(
            "hf-config-moe-missing-experts",
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/hf/mixtral-8x7b/config.json"),
            )
            .unwrap()
            .replacen("\"num_local_experts\": 8,", "", 1),
        ),
        cfg(
            "hf-config-wrong-type",
            with("\"vocab_size\": 128256", "\"vocab_size\": \"128256\""),
        ),
        cfg(
            "hf-config-bad-dtype",
            with("\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": \"int8\""),
        ),
        case(
            "hf-config-missing-file",
            edit("model = \"llama-3.1-8b\"", "model = \"nowhere/config.json\""),
        ),
    ]
}

/// `[frontend]` and `[client]`: unknown values, settings that do not apply, a
/// client for an offline batch.
fn front_end_cases() -> Vec<Case> {
    let offline = edit(
        "arrival = \"poisson\"\nrate_per_s = 5.0",
        "arrival = \"offline\"\nbatch_size = 4",
    );
    vec![
        case(
            "frontend-unknown-mode",
            format!("{BASE}[frontend]\nmode = \"queued\"\n"),
        ),
        case(
            "frontend-servers-without-queue",
            format!("{BASE}[frontend]\napi_server_count = 2\n"),
        ),
        case(
            "frontend-burst-without-rate",
            format!("{BASE}[frontend]\nrate_limit_burst = 3\n"),
        ),
        case(
            "client-zero-timeout",
            format!("{BASE}[client]\ntimeout_s = 0.0\n"),
        ),
        case(
            "client-on-timeout-without-timeout",
            format!("{BASE}[client]\non_timeout = \"abort\"\n"),
        ),
        case(
            "frontend-rejects-a-spinning-closed-loop",
            edit(
                "arrival = \"poisson\"\nrate_per_s = 5.0\nnum_requests = 100",
                "arrival = \"closed-loop\"\nusers = 2\nduration_s = 10.0",
            ) + "[frontend]\nrate_limit_per_s = 1.0\n",
        ),
        case(
            "frontend-drop-without-timeout",
            format!("{BASE}[frontend]\nrate_limit_per_s = 1.0\nrate_limit_action = \"drop\"\n"),
        ),
        case(
            "client-on-offline-batch",
            format!("{offline}[client]\nmax_concurrency = 4\n"),
        ),
    ]
}

/// `[slo]` and the price keys of `[hardware]`.
fn slo_price_cases() -> Vec<Case> {
    let gpu = |extra: &str| {
        edit(
            "gpu = \"a100-80gb\"",
            &format!("gpu = \"a100-80gb\"\n{extra}"),
        )
    };
    let mut user_file = case("price-file-bad-row", gpu("price_file = \"prices.toml\""));
    user_file.files.push((
        "prices.toml",
        b"provider = \"mine\"\n[[price]]\ngpu = \"a100-80gb\"\nkind = \"yearly\"\nusd_per_gpu_hour = -1.0\ndate = \"2026\"\nsource = \"s\"\n".to_vec(),
    ));
    vec![
        case(
            "slo-unknown-key",
            format!("{BASE}[slo]\np99_ttft = 2000.0\n"),
        ),
        case(
            "slo-unknown-percentile",
            format!("{BASE}[slo]\np80_ttft_ms = 2000.0\n"),
        ),
        case(
            "slo-zero-bound",
            format!("{BASE}[slo]\np99_e2el_ms = 0.0\n"),
        ),
        case("slo-empty", format!("{BASE}[slo]\n")),
        case(
            "price-unknown-provider",
            gpu("price_provider = \"aws-east\""),
        ),
        case(
            "price-gpu-not-offered",
            edit(
                "gpu = \"a100-80gb\"",
                "gpu = \"l40\"\nprice_provider = \"aws\"",
            ),
        ),
        case(
            "price-kind-not-offered",
            gpu("price_provider = \"aws\"\nprice_kind = \"spot\""),
        ),
        case("price-kind-with-spec", gpu("price_kind = \"spot\"")),
        case(
            "price-kind-unknown",
            gpu("price_provider = \"aws\"\nprice_kind = \"monthly\""),
        ),
        case("price-file-missing", gpu("price_file = \"nope.toml\"")),
        user_file,
    ]
}

/// The snapshot text of every case.
fn snapshot(results: &[(&str, i32, String)]) -> String {
    let mut s = String::from(
        "# Messages of tests/bad_inputs.rs; rewrite with INFERSIM_UPDATE_SNAPSHOTS=1.\n",
    );
    for (name, code, stderr) in results {
        s.push_str(&format!("\n=== {name} (exit {code})\n{stderr}"));
        if !stderr.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

#[test]
fn every_bad_input_exits_2_with_its_recorded_message() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    let results: Vec<(&str, i32, String)> = cases
        .iter()
        .map(|c| {
            let (code, stderr) = run_case(c);
            (c.name, code, stderr)
        })
        .collect();
    for (name, code, stderr) in &results {
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert_eq!(*code, 2, "{name}: {stderr}");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/bad_inputs.snap");
    let actual = snapshot(&results);
    if std::env::var_os("INFERSIM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if actual != expected {
        // Name the cases whose message changed, with both versions.
        let split = |s: &str| -> Vec<(String, String)> {
            s.split("\n=== ")
                .skip(1)
                .map(|b| {
                    let (head, body) = b.split_once('\n').unwrap_or((b, ""));
                    (head.to_string(), body.to_string())
                })
                .collect()
        };
        let (a, e) = (split(&actual), split(&expected));
        let mut report = String::new();
        for (head, body) in &a {
            match e.iter().find(|(h, _)| h == head) {
                Some((_, eb)) if eb == body => {}
                Some((_, eb)) => {
                    report.push_str(&format!("--- {head}\nexpected:\n{eb}actual:\n{body}"))
                }
                None => report.push_str(&format!("--- {head}: not in the snapshot\n{body}")),
            }
        }
        for (head, _) in &e {
            if !a.iter().any(|(h, _)| h == head) {
                report.push_str(&format!("--- {head}: in the snapshot, no longer a case\n"));
            }
        }
        panic!(
            "messages differ from {} (INFERSIM_UPDATE_SNAPSHOTS=1 rewrites it):\n{report}",
            path.display()
        );
    }
}

/// With `workload.truncate = true`, lengths that do not fit are cut, and `validate`
/// says how many requests that changes (exit 0).
#[test]
fn truncate_warns_with_the_count_of_requests_cut() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("exp.toml");
    let text = edit("value = 256", "value = 4000")
        .replace("value = 64", "value = 200")
        .replace("num_requests = 100", "num_requests = 100\ntruncate = true");
    std::fs::write(&f, text).unwrap();
    let (code, out, err) = common::infersim_bin(&["validate", f.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"), "{out}");
    // Every one of the 100 requests has 4000 + 200 > 4096 tokens.
    assert!(
        err.contains("warning: ")
            && err.contains(
                "workload.input_tokens: 100 of 100 requests drawn with seed 0 do not fit"
            )
            && err.contains("the longest is 4200 tokens")
            && err.contains("max_model_len = 4096")
            && err.contains("cut to fit"),
        "{err}"
    );
}

/// A trace out of order is replayed sorted by arrival time, as the reference says.
#[test]
fn trace_out_of_order_is_replayed_sorted() {
    let t = infersim::workload::parse_trace(
        "arrival_s,input_tokens,output_tokens\n5.0,30,3\n1.0,10,1\n3.0,20,2\n",
        1.0,
        "t.csv",
        "workload.trace",
    )
    .unwrap();
    let rows: Vec<(u64, u32, u32)> = t.rows.iter().map(|r| (r.0 .0, r.1, r.2)).collect();
    // Sorted, the first at t = 0, the gaps kept (2 s each).
    assert_eq!(
        rows,
        vec![(0, 10, 1), (2_000_000_000, 20, 2), (4_000_000_000, 30, 3)]
    );
    let doc = infersim::config::schema::lookup("workload.trace")
        .unwrap()
        .doc;
    assert!(doc.contains("sorted by arrival time"), "{doc}");
}

/// What `run` refuses, `validate` refuses too, with exit 2 and the way to run it
/// anyway (its estimate depends on the machine's threads, so it is not in the
/// snapshot).
#[test]
fn validate_refuses_what_run_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("exp.toml");
    std::fs::write(&f, edit("num_requests = 100", "num_requests = 2000000000")).unwrap();
    let (code, out, err) = common::infersim_bin(&["validate", f.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.starts_with("error: ")
            && err.contains("exp.toml: (estimate): ")
            && err.contains("--no-guard"),
        "{err}"
    );
    assert!(!out.contains(": ok"), "{out}");
}

/// Expert parallelism and data-parallel attention (src/cost/expert_parallel.rs): the
/// Qwen3-30B-A3B test fixture (128 experts) on H100s, beside the experiment.
fn expert_parallel_cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let qwen = std::fs::read(root.join("tests/fixtures/moe/qwen3-30b-a3b.toml")).unwrap();
    let moe = |name: &'static str, gpus: u32, engine: &str| Case {
        name,
        text: BASE
            .replace(
                "gpu = \"a100-80gb\"",
                &format!("gpu = \"h100-sxm\"\nnum_gpus = {gpus}"),
            )
            .replace(
                "model = \"llama-3.1-8b\"",
                &format!("model = \"qwen.toml\"\n{engine}"),
            ),
        files: vec![("qwen.toml", qwen.clone())],
        args: vec!["validate", "{f}"],
    };
    vec![
        case(
            "ep-on-a-dense-model",
            edit(
                "policy = \"continuous\"",
                "policy = \"continuous\"\ntensor_parallel_size = 2\nenable_expert_parallel = true",
            )
            .replace("gpu = \"a100-80gb\"", "gpu = \"a100-80gb\"\nnum_gpus = 2"),
        ),
        moe(
            "ep-experts-not-divisible",
            3,
            "enable_expert_parallel = true\ndata_parallel_size = 3",
        ),
        moe(
            "ep-data-parallel-not-dividing-num-gpus",
            3,
            "enable_expert_parallel = true\ndata_parallel_size = 2",
        ),
        moe("ep-data-parallel-without-ep", 2, "data_parallel_size = 2"),
        moe(
            "ep-group-beyond-a-node",
            16,
            "enable_expert_parallel = true\ndata_parallel_size = 16",
        ),
        Case {
            name: "ep-deepseek-v3-bf16-over-8-h200",
            text: BASE
                .replace("gpu = \"a100-80gb\"", "gpu = \"h200\"\nnum_gpus = 8")
                .replace(
                    "model = \"llama-3.1-8b\"",
                    "model = \"ds.toml\"\nenable_expert_parallel = true\ndata_parallel_size = 8",
                ),
            files: vec![(
                "ds.toml",
                std::fs::read(root.join("tests/fixtures/ep/deepseek-v3-bf16.toml")).unwrap(),
            )],
            args: vec!["validate", "{f}"],
        },
        moe(
            "ep-with-pipeline",
            4,
            "enable_expert_parallel = true\ntensor_parallel_size = 2\npipeline_parallel_size = 2",
        ),
    ]
}

/// Tensor and pipeline parallelism that vLLM or the hardware cannot run.
fn parallel_cases() -> Vec<Case> {
    let tp = |n: u32, gpus: u32| {
        edit(
            "policy = \"continuous\"",
            &format!("policy = \"continuous\"\ntensor_parallel_size = {n}"),
        )
        .replacen(
            "gpu = \"a100-80gb\"",
            &format!("gpu = \"a100-80gb\"\nnum_gpus = {gpus}"),
            1,
        )
    };
    vec![
        // Llama-3.1-8B has 32 attention heads.
        case("tp-not-dividing-heads", tp(3, 3)),
        case("tp-num-gpus-not-a-multiple", tp(2, 3)),
        // An HGX A100 node holds 8 GPUs.
        case("tp-larger-than-a-node", tp(16, 16)),
        case(
            "tp-with-mps",
            tp(2, 2)
                .replacen(
                    "num_gpus = 2",
                    "num_gpus = 2\nsharing = \"mps\"\ninstances_per_gpu = 2",
                    1,
                )
                .replacen(
                    "policy = \"continuous\"",
                    "policy = \"continuous\"\ngpu_memory_utilization = 0.45",
                    1,
                ),
        ),
        case(
            "tp-with-mig",
            tp(2, 2).replacen("num_gpus = 2", "num_gpus = 2\nmig = \"3g.40gb\"", 1),
        ),
        case(
            "pp-more-stages-than-layers",
            edit(
                "policy = \"continuous\"",
                "policy = \"continuous\"\npipeline_parallel_size = 64",
            )
            .replacen(
                "gpu = \"a100-80gb\"",
                "gpu = \"a100-80gb\"\nnum_gpus = 64",
                1,
            ),
        ),
        case(
            "pp-unknown-schedule",
            edit(
                "policy = \"continuous\"",
                "policy = \"continuous\"\npipeline_schedule = \"gpipe\"",
            ),
        ),
        case(
            "tp-70b-does-not-fit-on-two-gpus-at-half-memory",
            tp(2, 2)
                .replacen("llama-3.1-8b", "llama-3.1-70b", 1)
                .replacen(
                    "policy = \"continuous\"",
                    "policy = \"continuous\"\ngpu_memory_utilization = 0.5",
                    1,
                ),
        ),
        Case {
            name: "gpu-spec-unknown-link-kind",
            text: edit("gpu = \"a100-80gb\"", "gpu = \"mine.toml\""),
            files: vec![(
                "mine.toml",
                gpu_spec("link_kind = \"nvlink\"", "link_kind = \"infiniband\""),
            )],
            args: vec!["validate", "{f}"],
        },
    ]
}
