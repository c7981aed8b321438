//! The declaration of every experiment key: one entry per key, from which everything
//! else about the key is derived.
//!
//! Each [`Key`] states the key's name, what it may hold ([`Kind`]: type, integer or
//! float range, allowed strings), its unit, its default in words, whether it is
//! required (with a hint of what to give), an example value, a one-line doc, and the
//! settings it applies to ([`Cond`]: for example `rate_per_s` only with an open-loop
//! `workload.arrival`). From these tables come:
//!
//! - the schema check ([`crate::validate::check_schema`]): types, ranges, unknown keys
//!   with suggestions, missing keys, and "does not apply" for a setting of an arrival,
//!   sharing mode or policy that is not selected;
//! - the key lists of the fuzz test (`tests/fuzz.rs` reads [`key_paths`] and
//!   [`section`]);
//! - the configuration reference in README.md ([`reference_table`], printed by
//!   `infersim schema`; a test keeps the README's copy equal to it).
//!
//! The serde `Raw*` structs in [`crate::config::raw`] carry the checked values to the
//! code that builds a scenario; a test (`every_declared_key_is_a_serde_field_and_back`
//! below) holds their fields and these tables to the same set of names. What cannot be
//! said of one key alone (a warm-up shorter than the duration, memory that must fit,
//! MIG profiles of the chosen GPU) is checked by the `Checker` in
//! [`crate::config`], after this schema.
//!
//! # Adding a key
//!
//! 1. Add one entry to its section's table below, for example
//!    `key("max_queue", Kind::Int(1, 1_000_000)).unit("requests").default_is("no limit")
//!    .example("64").doc("Longest waiting queue.")`, with `.only(&[...])` when it
//!    applies only to some arrival, sharing mode or policy.
//! 2. Add the field to the matching `Raw*` struct (`Option<T>`, `T` the Rust type the
//!    kind allows) and use it where the scenario is built.
//! 3. Regenerate the README table: `cargo run --release -- schema --readme README.md`.
//!
//! The schema test, the fuzz key lists and the README test then follow by themselves.
//!
//! This file is over 600 lines because it is the whole declaration, one entry per
//! key, meant to be read in one place; the shape of a key is in `key.rs` and the words
//! and reference table in `reference.rs`.

pub use super::key::{float, float_above, float_below, key, Cond, FloatRange, Key, Kind};
pub use super::reference::{
    allowed, float_range, fmt_num, int_range, quoted_list, reference_table, with_reference_table,
    README_BEGIN, README_END,
};

const U32: i64 = u32::MAX as i64;
const ANY: Kind = Kind::Str(&[]);

/// The most `[[variant]]`s × sweep values (sweep points) of one experiment.
pub const MAX_POINTS: usize = 10_000;
/// The most replications of one experiment.
pub const MAX_REPLICATIONS: i64 = 1000;
/// The most instances on one GPU (MPS has a lower, per-GPU limit).
pub const MAX_INSTANCES_PER_GPU: i64 = 256;
/// The largest seed, in the TOML file and on the command line alike (TOML integers
/// are signed 64-bit).
pub const MAX_SEED: i64 = i64::MAX;

/// Allowed values of `hardware.sharing`.
pub const SHARING: &[&str] = &["exclusive", "mps", "time-slice"];
/// Allowed values of `hardware.router`.
pub const ROUTERS: &[&str] = &crate::router::NAMES;
/// Allowed values of `engine.pipeline_schedule`.
pub const PIPELINE_SCHEDULES: &[&str] = &["steady", "flush"];
/// Allowed values of `engine.policy`.
pub const POLICIES: &[&str] = &["sequential", "static", "continuous"];
/// Allowed values of `engine.stack`.
pub const STACKS: &[&str] = &crate::stacks::STACK_NAMES;
/// Allowed values of `workload.arrival`.
pub const ARRIVALS: &[&str] = &[
    "poisson",
    "gamma",
    "constant",
    "trace",
    "closed-loop",
    "offline",
    "classes",
];
/// Allowed values of `workload.think`.
pub const THINKS: &[&str] = &["constant", "exponential", "between"];
/// Allowed values of `workload.sampling`.
pub const SAMPLINGS: &[&str] = &["random", "greedy"];
/// Allowed values of `dist` in a length distribution.
pub const DISTS: &[&str] = &["fixed", "uniform", "normal", "lognormal"];

const fn arrival(values: &'static [&'static str], note: &'static str) -> Cond {
    Cond {
        key: "arrival",
        values,
        default: "",
        note,
        varied_ok: false,
    }
}

const fn sharing(values: &'static [&'static str], note: &'static str) -> Cond {
    Cond {
        key: "sharing",
        values,
        default: "exclusive",
        note,
        varied_ok: false,
    }
}

const fn policy(values: &'static [&'static str], note: &'static str) -> Cond {
    Cond {
        key: "policy",
        values,
        default: "",
        note,
        varied_ok: true,
    }
}

const fn think(values: &'static [&'static str], note: &'static str) -> Cond {
    Cond {
        key: "think",
        values,
        default: "constant",
        note,
        varied_ok: false,
    }
}

const fn scheduler(values: &'static [&'static str], note: &'static str) -> Cond {
    Cond {
        key: "scheduling_policy",
        values,
        default: "fcfs",
        note,
        varied_ok: true,
    }
}

/// Allowed values of `engine.continuous.scheduling_policy`: the registered schedulers.
pub const SCHEDULING_POLICIES: &[&str] = &crate::policy::SCHEDULER_NAMES;
/// Allowed values of `engine.continuous.preemption_victim`.
pub const VICTIMS: &[&str] = crate::policy::Victim::NAMES;
/// Allowed values of `engine.continuous.length_predictor`.
pub const PREDICTORS: &[&str] = crate::policy::Predictor::NAMES;
/// Allowed values of a workload class's `arrival`.
pub const CLASS_ARRIVALS: &[&str] = &["poisson", "gamma", "constant"];

const OPEN: &[Cond] = &[arrival(
    &["poisson", "gamma", "constant"],
    "only poisson, gamma, constant",
)];
const CLOSED: Cond = arrival(&["closed-loop"], "only closed-loop");
const NOT_TRACE: &[&str] = &["poisson", "gamma", "constant", "closed-loop", "offline"];
const CLASSES: Cond = arrival(&["classes"], "only arrival = \"classes\"");
const TIME_SLICE: &[Cond] = &[sharing(&["time-slice"], "only \"time-slice\"")];

const HARDWARE: &[Key] = &[
    key("gpu", ANY)
        .req("give a shipped GPU (see `infersim list`) or a path to a GPU spec .toml")
        .example("\"a100-80gb\"")
        .doc("GPU type: a shipped name or a path to a GPU spec file."),
    key("num_gpus", Kind::Int(1, 4096))
        .default_is("1")
        .example("2")
        .doc("GPUs of that type."),
    key("instances_per_gpu", Kind::Int(1, MAX_INSTANCES_PER_GPU))
        .default_is("1")
        .example("2")
        .doc("Copies of `[engine]` on each GPU (more than 1 needs mps or time-slice)."),
    key("sharing", Kind::Str(SHARING))
        .default_is("\"exclusive\"")
        .example("\"mps\"")
        .doc("How instances on one GPU share it."),
    key("router", Kind::Str(ROUTERS))
        .default_is("\"round-robin\"")
        .example("\"least-requests\"")
        .doc("Router in front of the instances."),
    key("timeslice_ms", float(0.1, 1000.0))
        .unit("ms")
        .default_is("2")
        .example("2.0")
        .doc("Time-slice quantum (NVIDIA does not publish it; about 2 ms is reported).")
        .only(TIME_SLICE),
    key("switch_cost_ms", float(0.0, 1000.0))
        .unit("ms")
        .default_is("0.1")
        .example("0.1")
        .doc("Cost of one context switch between time-sliced instances.")
        .only(TIME_SLICE),
    key("active_thread_percentage", float_above(0.0, 100.0))
        .unit("percentage")
        .default_is("100")
        .example("50.0")
        .doc("MPS active-thread percentage of each instance.")
        .only(&[sharing(&["mps"], "only \"mps\"")]),
    key("mig", ANY)
        .default_is("no MIG")
        .example("\"3g.40gb\"")
        .doc("MIG profile: each GPU is split into instances of it, each a GPU of its own."),
    key("mig_instances", Kind::Int(1, 7))
        .default_is("as many as fit")
        .example("2")
        .doc("MIG instances per GPU (with `mig`)."),
    // Prices (see README "Prices"; `src/config/prices.rs`).
    key("price_provider", ANY)
        .default_is("\"spec\" (the GPU spec file's price)")
        .example("\"aws\"")
        .doc("Whose GPU price the cost figures use: \"spec\", a shipped table (models/prices/, `infersim list`) or the provider of `price_file`."),
    key("price_file", ANY)
        .default_is("none")
        .example("\"my-prices.toml\"")
        .doc("A price table of your own (format of models/prices/*.toml), relative to the experiment file."),
    key("price_kind", Kind::Str(super::prices::PRICE_KINDS))
        .default_is("\"on-demand\"")
        .example("\"spot\"")
        .doc("Which kind of price to read from the provider's table (not with \"spec\")."),
];

const CONTINUOUS: &[Key] = &[
    key("max_num_seqs", Kind::Int(1, 1_000_000))
        .unit("sequences")
        .default_is("256")
        .example("256")
        .doc("Most sequences in one step."),
    key("max_num_batched_tokens", Kind::Int(1, U32))
        .unit("tokens")
        .default_is("2048 with chunked prefill, else max_model_len")
        .example("2048")
        .doc("Most tokens in one step."),
    key("enable_chunked_prefill", Kind::Bool)
        .default_is("true")
        .example("true")
        .doc("Split long prompts over steps."),
    key("enable_prefix_caching", Kind::Bool)
        .default_is("true")
        .example("true")
        .doc("Automatic prefix caching (as vLLM V1)."),
    key("scheduling_policy", Kind::Str(SCHEDULING_POLICIES))
        .default_is("\"fcfs\"")
        .example("\"priority\"")
        .doc("Step scheduler: fcfs (vLLM's default), priority (vLLM's), sjf / srpt (by predicted output length), fair-share (VTC across tenants), lpm (SGLang's longest cached prefix first)."),
    key("preemption_victim", Kind::Str(VICTIMS))
        .default_is("the scheduler's: newest; lowest-priority for priority; longest remaining for srpt")
        .example("\"oldest\"")
        .doc("Which running request gives its KV back when the pool runs short."),
    key("length_predictor", Kind::Str(PREDICTORS))
        .default_is("\"oracle\"")
        .example("\"noisy\"")
        .doc("Output-length prediction for sjf and srpt: the true length, with a log-normal error, or its power-of-two bucket.")
        .only(&[scheduler(&["sjf", "srpt"], "only sjf, srpt")]),
    key("length_predictor_error", float_above(0.0, 5.0))
        .default_is("0.5")
        .example("1.0")
        .doc("Noisy predictor: standard deviation of ln(predicted / true).")
        .only(&[
            scheduler(&["sjf", "srpt"], "only sjf, srpt"),
            Cond {
                key: "length_predictor",
                values: &["noisy"],
                default: "oracle",
                note: "only length_predictor = \"noisy\"",
                varied_ok: true,
            },
        ]),
    key("fair_share_input_weight", float(0.0, 1e6))
        .default_is("1")
        .example("1.0")
        .doc("Fair share: counter charge per prompt token (VTC's w_p).")
        .only(&[scheduler(&["fair-share"], "only fair-share")]),
    key("fair_share_output_weight", float(0.0, 1e6))
        .default_is("2")
        .example("2.0")
        .doc("Fair share: counter charge per output token (VTC's w_q).")
        .only(&[scheduler(&["fair-share"], "only fair-share")]),
    // Engine-specific keys (src/serving/stacks.rs: which presets have each; another
    // stack refuses them in check_engine.rs).
    key("num_scheduler_steps", Kind::Int(1, 1024))
        .unit("steps")
        .default_is("the stack preset's (1: off)")
        .example("10")
        .doc("vLLM 0.6 multi-step scheduling: decode steps per scheduler call; arrivals wait for the block (stack vllm@0.6 only)."),
    key("cuda_graph_sizes", Kind::Ints(1, 65536))
        .unit("sequences")
        .default_is("the stack preset's ([] for plain vllm: no padding)")
        .example("[1, 2, 4, 8, 16]")
        .doc("CUDA-graph capture sizes: a decode step of B <= the largest is priced padded to the next size (vLLM stacks)."),
    key("async_scheduling", Kind::Bool)
        .default_is("the stack preset's")
        .example("true")
        .doc("vLLM V1 async scheduling: the engine's CPU work overlaps the GPU's (stack vllm@0.15)."),
    key("multi_step_stream_outputs", Kind::Bool)
        .default_is("true (vLLM 0.6.3 onward; 0.6.0 streamed at the block's end)")
        .example("false")
        .doc("vLLM 0.6 multi-step: stream tokens after every step of a block; false: all at the block's end (stack vllm@0.6 only)."),
    // The same settings under the names SGLang and TensorRT-LLM give them (each only
    // with its engine's preset; giving both names of one setting is an error).
    key("chunked_prefill_size", Kind::Int(1, U32))
        .unit("tokens")
        .default_is("the preset's, by GPU memory")
        .example("8192")
        .doc("SGLang's name for max_num_batched_tokens: most prompt tokens in one step (stack sglang@0.5 only)."),
    key("max_running_requests", Kind::Int(1, 1_000_000))
        .unit("sequences")
        .default_is("the preset's (2048)")
        .example("512")
        .doc("SGLang's name for max_num_seqs (stack sglang@0.5 only)."),
    key("schedule_policy", Kind::Str(&["fcfs", "lpm"]))
        .default_is("\"fcfs\"")
        .example("\"lpm\"")
        .doc("SGLang's name for scheduling_policy: fcfs or lpm, longest cached prefix first (stack sglang@0.5 only)."),
    key("disable_radix_cache", Kind::Bool)
        .default_is("false")
        .example("true")
        .doc("SGLang: turn the radix (prefix) cache off, i.e. enable_prefix_caching = false (stack sglang@0.5 only)."),
    key("max_batch_size", Kind::Int(1, 1_000_000))
        .unit("sequences")
        .default_is("the preset's (2048)")
        .example("256")
        .doc("TensorRT-LLM's name for max_num_seqs (stack trtllm@1.0 only)."),
    key("max_num_tokens", Kind::Int(1, U32))
        .unit("tokens")
        .default_is("the preset's (8192)")
        .example("8192")
        .doc("TensorRT-LLM's name for max_num_batched_tokens (stack trtllm@1.0 only)."),
];

/// One `[[workload.classes]]` table.
const CLASS: &[Key] = &[
    key("name", ANY)
        .req("give the class a name, for example name = \"chat\"")
        .example("\"chat\"")
        .doc("Class name, for the per-class results."),
    key("arrival", Kind::Str(CLASS_ARRIVALS))
        .req("give \"poisson\", \"gamma\" or \"constant\"")
        .example("\"poisson\"")
        .doc("How the class's requests arrive (open loop)."),
    key("rate_per_s", float(1e-6, 1e6))
        .req("give rate_per_s = R")
        .unit("requests per second")
        .example("2.0")
        .doc("The class's mean arrival rate."),
    key("burstiness", float(0.001, 1000.0))
        .default_is("1 (Poisson)")
        .example("0.5")
        .doc("Gamma shape.")
        .only(&[arrival(&["gamma"], "only gamma")]),
    key("input_tokens", Kind::Dist)
        .req("give input_tokens = { dist = ... }")
        .unit("tokens")
        .example("{ dist = \"fixed\", value = 512 }")
        .doc("The class's prompt lengths."),
    key("output_tokens", Kind::Dist)
        .req("give output_tokens = { dist = ... }")
        .unit("tokens")
        .example("{ dist = \"fixed\", value = 128 }")
        .doc("The class's output lengths."),
    key("priority", Kind::Int(-1_000_000, 1_000_000))
        .default_is("0")
        .example("1")
        .doc("Scheduling priority of its requests (lower first, as vLLM)."),
    key("tenant", Kind::Int(0, 1_000_000))
        .default_is("0")
        .example("2")
        .doc("Tenant its requests are served for (fair-share scheduling)."),
];

/// Allowed values of `workload.sessions.think`.
pub const SESSION_THINKS: &[&str] = &["constant", "exponential"];

/// `[workload.shared_prefix]`, named as inference-perf's `shared_prefix` data config.
const SHARED_PREFIX: &[Key] = &[
    key("num_groups", Kind::Int(1, 1_000_000))
        .req("give num_groups = N (groups, each with its own system prompt)")
        .unit("groups")
        .example("4")
        .doc("Groups, each with its own shared system prompt."),
    key("num_prompts_per_group", Kind::Int(1, 1_000_000))
        .req("give num_prompts_per_group = M")
        .unit("prompts")
        .example("8")
        .doc("Prompts (users) per group, each with its own question."),
    key("system_prompt_len", Kind::Int(1, U32))
        .req("give system_prompt_len = S (tokens)")
        .unit("tokens")
        .example("512")
        .doc("Tokens of each group's system prompt, shared by its prompts."),
    key("question_len", Kind::Dist)
        .req("give question_len = { dist = ... }")
        .unit("tokens")
        .example("{ dist = \"fixed\", value = 64 }")
        .doc("Tokens of each prompt's question (drawn once per prompt)."),
];

/// `[workload.sessions]`.
const SESSIONS: &[Key] = &[
    key("turns", Kind::Dist)
        .req("give turns = { dist = ... } (turns per session)")
        .unit("turns")
        .example("{ dist = \"uniform\", mean = 4, range_ratio = 0.5 }")
        .doc("Turns per session; each turn's prompt is the conversation so far plus a new message of `input_tokens`."),
    key("think", Kind::Str(SESSION_THINKS))
        .default_is("\"constant\"")
        .example("\"exponential\"")
        .doc("How think times between turns are drawn."),
    key("think_time_s", float(0.0, 1e6))
        .unit("s")
        .default_is("0")
        .example("5.0")
        .doc("Think time between a turn's completion and the next turn (constant), or its mean (exponential)."),
];

const STATIC: &[Key] = &[
    key("batch_size", Kind::Int(1, 65536))
        .unit("requests")
        .default_is("8")
        .example("32")
        .doc("Largest batch."),
    key("max_wait_ms", float(0.0, 1e7))
        .unit("ms")
        .default_is("0")
        .example("50.0")
        .doc("Longest wait for a full batch."),
    key("pad_finished", Kind::Bool)
        .default_is("true")
        .example("true")
        .doc("Whether finished sequences stay in the batch until it ends."),
];

/// The `[engine]` settings an `[[instance]]` may override too.
const ENGINE_SETTINGS: &[Key] = &[
    key("stack", Kind::Str(STACKS))
        .default_is("\"vllm\"")
        .example("\"vllm@0.6\"")
        .doc("Serving stack whose profile prices the steps, or an engine preset `<engine>@<version>` that also sets the engine's defaults (`infersim stacks`)."),
    key("profile", ANY)
        .default_is("the stack's shipped profile")
        .example("\"vllm\"")
        .doc("Stack profile: a shipped name or a path to a profile file."),
    key("gpu_memory_utilization", float_above(0.0, 1.0))
        .unit("fraction")
        .default_is("0.9")
        .example("0.9")
        .doc("Fraction of GPU memory the instance may use."),
    key("block_size", Kind::Int(1, 1024))
        .unit("tokens")
        .default_is("16")
        .example("16")
        .doc("Tokens per KV-cache block; a power of two."),
    key("max_model_len", Kind::Int(2, U32))
        .unit("tokens")
        .default_is("the model's context")
        .example("8192")
        .doc("Longest prompt + output."),
    key("kv_cache_tokens", Kind::Int(1, 1_000_000_000_000))
        .unit("tokens")
        .default_is("from the memory left")
        .example("47840")
        .doc("KV-cache size, overriding the memory estimate (as a server log reports it)."),
    key("continuous", Kind::Table(CONTINUOUS))
        .default_is("vLLM's defaults")
        .example("{ max_num_seqs = 256 }")
        .doc("Settings of the continuous policy.")
        .only(&[policy(&["continuous"], "only \"continuous\"")]),
    key("static", Kind::Table(STATIC))
        .default_is("the defaults below")
        .example("{ batch_size = 32 }")
        .doc("Settings of the static policy.")
        .only(&[policy(&["static"], "only \"static\"")]),
    // Number formats (quantisation; see the README's "Quantisation").
    key("quantization", Kind::Str(crate::cost::quant::METHODS))
        .default_is("the checkpoint's own format (16-bit when it has none)")
        .example("\"fp8\"")
        .doc("Weights' quantization method, vLLM's `--quantization` name: fp8 (W8A8 on FP8 tensor cores, W8A16 on Ampere), awq / awq_marlin / gptq / gptq_marlin / bitsandbytes (int4 weight-only), modelopt_fp4 (NVFP4), mxfp4 (MoE experts), compressed-tensors (the scheme in quantization_scheme)."),
    key("quantization_scheme", Kind::Str(crate::cost::quant::SCHEMES))
        .default_is("the checkpoint's scheme (its config.json `config_groups`)")
        .example("\"w8a8-int8\"")
        .doc("The compressed-tensors scheme, only with quantization = \"compressed-tensors\": w8a8-int8 (W8A8 on INT8 tensor cores), w8a8-fp8 (as fp8), w4a16 / w8a16 (weight-only), nvfp4 (as modelopt_fp4)."),
    key("kv_cache_dtype", Kind::Str(crate::cost::quant::KV_CACHE_DTYPES))
        .default_is("\"auto\"")
        .example("\"fp8\"")
        .doc("KV-cache element type, vLLM's `--kv-cache-dtype`: auto (the model's dtype) or an fp8 format (1 byte per element)."),
];

/// `a` followed by `b` (`N` = their total length), at compile time.
const fn concat<const N: usize>(a: &[Key], b: &[Key]) -> [Key; N] {
    assert!(a.len() + b.len() == N);
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}

const ENGINE: &[Key] = &concat::<{ 2 + PARALLEL.len() + ENGINE_SETTINGS.len() }>(
    &[
        key("model", ANY)
            .req("give a shipped model (see `infersim list`) or a path to a model spec .toml")
            .example("\"llama-3.1-8b\"")
            .doc("Model served: a shipped name or a path to a model spec file (`.toml`) or to a Hugging Face `config.json` (any `.json`; dense models; see the README)."),
        key("policy", Kind::Str(POLICIES))
            .req("give \"sequential\", \"static\" or \"continuous\"")
            .example("\"continuous\"")
            .doc("Batching policy."),
    ],
    &concat::<{ PARALLEL.len() + ENGINE_SETTINGS.len() }>(PARALLEL, ENGINE_SETTINGS),
);

/// Tensor and pipeline parallelism of `[engine]` (every instance alike; an
/// `[[instance]]` cannot override them).
const PARALLEL: &[Key] = &[
    key("tensor_parallel_size", Kind::Int(1, 64))
        .unit("GPUs")
        .default_is("1")
        .example("4")
        .doc("GPUs each layer is split over (vLLM `--tensor-parallel-size`); must divide the attention heads, and divide or be a multiple of the KV heads; at most the GPU's `gpus_per_node`."),
    key("pipeline_parallel_size", Kind::Int(1, 64))
        .unit("stages")
        .default_is("1")
        .example("2")
        .doc("Pipeline stages, each a tensor-parallel group holding a share of the layers (vLLM `--pipeline-parallel-size`); an instance takes tensor × pipeline GPUs."),
    key("pipeline_schedule", Kind::Str(PIPELINE_SCHEDULES))
        .default_is("\"steady\"")
        .example("\"flush\"")
        .doc("How a pipelined step's micro-batches flow: `steady` (vLLM's virtual engines keep the stages busy) or `flush` (GPipe fill and drain)."),
    // Expert parallelism and data-parallel attention (src/cost/expert_parallel.rs).
    key("enable_expert_parallel", Kind::Bool)
        .default_is("false")
        .example("true")
        .doc("MoE models: each MoE layer's routed experts spread whole over the EP group of tensor_parallel_size × data_parallel_size GPUs (vLLM `--enable-expert-parallel`) instead of each expert split by TP; attention and dense layers stay TP. The experts must divide evenly over the group."),
    key("data_parallel_size", Kind::Int(1, 64))
        .unit("ranks")
        .default_is("1")
        .example("8")
        .doc("Attention data-parallel ranks of one expert-parallel instance (vLLM `--data-parallel-size`, with enable_expert_parallel only): each rank its own batch, KV pool, max_num_seqs and max_num_batched_tokens, all ranks' MoE layers in lockstep; the instance takes tensor × data GPUs."),
];

/// One `[[instance]]`: the GPU it runs on and settings that override `[engine]`.
const INSTANCE: &[Key] = &concat::<{ 3 + ENGINE_SETTINGS.len() }>(
    &[
        key("gpu", Kind::Int(0, 4095))
            .req("give the index of the GPU it runs on, from 0")
            .example("0")
            .doc("Index of the GPU (or MIG instance) it runs on."),
        key("model", ANY)
            .default_is("`[engine]`'s")
            .example("\"llama-3.2-1b\"")
            .doc("Model served by this instance."),
        key("policy", Kind::Str(POLICIES))
            .default_is("`[engine]`'s")
            .example("\"static\"")
            .doc("Batching policy of this instance."),
    ],
    ENGINE_SETTINGS,
);

const WORKLOAD: &[Key] = &[
    key("arrival", Kind::Str(ARRIVALS))
        .req("give \"poisson\", \"gamma\", \"constant\", \"trace\", \"closed-loop\" or \"offline\"")
        .example("\"poisson\"")
        .doc("How requests arrive."),
    key("rate_per_s", float(1e-6, 1e6))
        .unit("requests per second")
        .default_is("required")
        .example("10.0")
        .doc("Mean arrival rate.")
        .only(OPEN),
    key("classes", Kind::Tables(CLASS))
        .default_is("required")
        .example("[{ name = \"chat\", arrival = \"poisson\", rate_per_s = 2.0, input_tokens = { dist = \"fixed\", value = 256 }, output_tokens = { dist = \"fixed\", value = 64 } }]")
        .doc("Classes superposed, each with its own arrivals, lengths, priority and tenant (`[[workload.classes]]`).")
        .only(&[CLASSES]),
    key("burstiness", float(0.001, 1000.0))
        .default_is("1 (Poisson)")
        .example("0.5")
        .doc("Gamma shape: below 1 burstier, above 1 smoother.")
        .only(&[arrival(&["gamma"], "only gamma")]),
    key("num_requests", Kind::Int(1, i64::MAX))
        .unit("requests")
        .default_is("(or duration_s)")
        .example("1000")
        .doc("Finite run: requests to issue."),
    key("duration_s", float(1e-6, 1e9))
        .unit("s")
        .default_is("(or num_requests)")
        .example("60.0")
        .doc("Timed run: its length."),
    key("warmup_s", float(0.0, 1e9))
        .unit("s")
        .default_is("0")
        .example("10.0")
        .doc("Timed run: warm-up left out of the statistics."),
    key("users", Kind::Int(1, 10_000_000))
        .unit("users")
        .default_is("required")
        .example("16")
        .doc("Closed loop: users, each with one request in flight.")
        .only(&[CLOSED]),
    key("spawn_rate_per_s", float(1e-6, 1e9))
        .unit("users per second")
        .default_is("all at once")
        .example("10.0")
        .doc("Closed loop: users started per second.")
        .only(&[CLOSED]),
    key("think", Kind::Str(THINKS))
        .default_is("\"constant\"")
        .example("\"exponential\"")
        .doc("Closed loop: how think times are drawn.")
        .only(&[CLOSED]),
    key("think_time_s", float(0.0, 1e6))
        .unit("s")
        .default_is("0")
        .example("1.0")
        .doc("Closed loop: think time (constant) or its mean (exponential).")
        .only(&[
            CLOSED,
            think(
                &["constant", "exponential"],
                "give think_min_s and think_max_s",
            ),
        ]),
    key("think_min_s", float(0.0, 1e6))
        .unit("s")
        .default_is("0")
        .example("0.5")
        .doc("Closed loop, think = \"between\": shortest think time.")
        .only(&[CLOSED, think(&["between"], "give think_time_s")]),
    key("think_max_s", float(0.0, 1e6))
        .unit("s")
        .default_is("0")
        .example("2.0")
        .doc("Closed loop, think = \"between\": longest think time.")
        .only(&[CLOSED, think(&["between"], "give think_time_s")]),
    key("batch_size", Kind::Int(1, 1_000_000))
        .unit("requests")
        .default_is("required")
        .example("8")
        .doc("Offline: requests per group handed to the engine at once.")
        .only(&[arrival(&["offline"], "only offline")]),
    key("trace", ANY)
        .default_is("required")
        .example("\"traces/conv.csv\"")
        .doc("Trace: CSV path, relative to the experiment file; its rows are replayed sorted by arrival time, the first at t = 0.")
        .only(&[arrival(&["trace"], "only trace")]),
    key("time_scale", float(1e-6, 1e6))
        .default_is("1")
        .example("2.0")
        .doc("Trace: gaps are divided by this.")
        .only(&[arrival(&["trace"], "only trace")]),
    key("input_tokens", Kind::Dist)
        .unit("tokens")
        .default_is("required")
        .example("{ dist = \"fixed\", value = 512 }")
        .doc("Prompt lengths.")
        .only(&[arrival(NOT_TRACE, "traces and classes carry their own lengths")]),
    key("output_tokens", Kind::Dist)
        .unit("tokens")
        .default_is("required")
        .example("{ dist = \"fixed\", value = 128 }")
        .doc("Output lengths.")
        .only(&[arrival(NOT_TRACE, "traces and classes carry their own lengths")]),
    key("prompt_pool", Kind::Int(1, 10_000_000))
        .unit("prompts")
        .default_is("every prompt unique")
        .example("4")
        .doc("Distinct prompts the requests draw from (shared prefixes the engine can cache).")
        .only(&[arrival(NOT_TRACE, "traces and classes name no prompts")]),
    key("truncate", Kind::Bool)
        .default_is("false")
        .example("true")
        .doc("Cut prompts and outputs that do not fit max_model_len (a warning counts them) instead of refusing the file."),
    key("sampling", Kind::Str(SAMPLINGS))
        .default_is("\"random\"")
        .example("\"greedy\"")
        .doc("\"greedy\": requests with the same prompt produce the same tokens.")
        .only(&[arrival(NOT_TRACE, "traces and classes name no prompts")]),
    key("shared_prefix", Kind::Table(SHARED_PREFIX))
        .default_is("no shared prefixes")
        .example("{ num_groups = 4, num_prompts_per_group = 8, system_prompt_len = 512, question_len = { dist = \"fixed\", value = 64 } }")
        .doc("Groups of prompts sharing a system prompt, as inference-perf's shared_prefix (prompts = system prompt + question; no input_tokens).")
        .only(&[arrival(NOT_TRACE, "traces and classes carry their own lengths")]),
    key("sessions", Kind::Table(SESSIONS))
        .default_is("single-turn requests")
        .example("{ turns = { dist = \"fixed\", value = 3 }, think_time_s = 5.0 }")
        .doc("Multi-turn sessions: each arrival (or closed-loop user) runs sessions whose turns carry the conversation so far.")
        .only(&[arrival(
            &["poisson", "gamma", "constant", "closed-loop"],
            "only poisson, gamma, constant, closed-loop",
        )]),
];

const fn fe_mode(values: &'static [&'static str], note: &'static str) -> Cond {
    Cond {
        key: "mode",
        values,
        default: "fixed",
        note,
        varied_ok: false,
    }
}

/// `[frontend]`: the API server in front of the engines (see [`crate::frontend`]).
const FRONTEND: &[Key] = &[
    key("mode", Kind::Str(crate::frontend::MODES))
        .default_is("\"fixed\"")
        .example("\"queue\"")
        .doc("\"fixed\": the profile's api_latency_us as a delay and api_seq_overhead_us as a bound on each step (as fitted); \"queue\": API-server processes through which every request and streamed token passes, FCFS."),
    key("api_server_count", Kind::Int(1, 1024))
        .unit("processes")
        .default_is("1")
        .example("2")
        .doc("API-server processes shared by all instances (vLLM's --api-server-count); requests are assigned round-robin.")
        .only(&[fe_mode(&["queue"], "only mode = \"queue\"")]),
    key("rate_limit_per_s", float(1e-6, 1e6))
        .unit("requests per second")
        .default_is("no limit")
        .example("1.0")
        .doc("Token-bucket rate limiter in front of the server: requests over it are rejected (HTTP 429) and counted as failed."),
    key("rate_limit_burst", Kind::Int(1, 1_000_000))
        .unit("requests")
        .default_is("1")
        .example("5")
        .doc("Bucket size of the rate limiter: requests admitted back to back after an idle spell."),
    key("rate_limit_action", Kind::Str(crate::frontend::OVER_LIMIT))
        .default_is("\"reject\"")
        .example("\"drop\"")
        .doc("A request over the rate limit is answered HTTP 429 at once (\"reject\") or never answered, so that the client times out (\"drop\")."),
];

/// `[client]`: the benchmark client's behaviour (not for offline workloads).
const CLIENT: &[Key] = &[
    key("max_concurrency", Kind::Int(1, U32))
        .unit("requests")
        .default_is("no limit")
        .example("5")
        .doc("Requests in flight at most (vllm bench serve --max-concurrency); an arrival beyond it waits in the client, and its latency counts from when it is sent."),
    key("timeout_s", float(1e-3, 1e7))
        .unit("s")
        .default_is("none")
        .example("60.0")
        .doc("A request not complete this long after it was sent is abandoned and counted as failed."),
    key("on_timeout", Kind::Str(crate::frontend::ON_TIMEOUT))
        .default_is("\"abort\"")
        .example("\"continue\"")
        .doc("What the server does with an abandoned request: keeps computing it (\"continue\") or drops it and frees its KV cache (\"abort\")."),
];

/// One `[slo]` bound: the `$p`th percentile of `$m` (see README "SLOs and goodput").
macro_rules! slo_key {
    ($p:literal, $m:literal, $what:literal) => {
        slo_key!($p, $m, $what, "completed requests")
    };
    ($p:literal, $m:literal, $what:literal, $of:literal) => {
        key(concat!("p", $p, "_", $m), float(0.001, 1e9))
            .unit("ms")
            .default_is("no bound")
            .example("2000.0")
            .doc(concat!(
                "SLO: ",
                $what,
                " within this bound for at least ",
                $p,
                " % of ",
                $of,
                "."
            ))
    };
}

/// `[slo]`: latency bounds judged per request (goodput, attainment).
const SLO: &[Key] = &[
    slo_key!("50", "ttft_ms", "time to first token"),
    slo_key!("90", "ttft_ms", "time to first token"),
    slo_key!("95", "ttft_ms", "time to first token"),
    slo_key!("99", "ttft_ms", "time to first token"),
    slo_key!("50", "tpot_ms", "time per output token"),
    slo_key!("90", "tpot_ms", "time per output token"),
    slo_key!("95", "tpot_ms", "time per output token"),
    slo_key!("99", "tpot_ms", "time per output token"),
    slo_key!(
        "50",
        "itl_ms",
        "the gap between two tokens",
        "all token gaps"
    ),
    slo_key!(
        "90",
        "itl_ms",
        "the gap between two tokens",
        "all token gaps"
    ),
    slo_key!(
        "95",
        "itl_ms",
        "the gap between two tokens",
        "all token gaps"
    ),
    slo_key!(
        "99",
        "itl_ms",
        "the gap between two tokens",
        "all token gaps"
    ),
    slo_key!("50", "e2el_ms", "end-to-end latency"),
    slo_key!("90", "e2el_ms", "end-to-end latency"),
    slo_key!("95", "e2el_ms", "end-to-end latency"),
    slo_key!("99", "e2el_ms", "end-to-end latency"),
];

/// The keys of an experiment file (after `[sweep]` and `[[variant]]` are taken out).
pub const TOP: &[Key] = &[
    key("name", ANY)
        .req("give a name for the output folder, for example name = \"my-test\"")
        .example("\"my-test\"")
        .doc("Experiment name; results go to `output/<name>/`."),
    key("description", ANY)
        .default_is("\"\"")
        .example("\"what it is for\"")
        .doc("What the experiment is for."),
    key("seed", Kind::Int(0, MAX_SEED))
        .default_is("0")
        .example("1")
        .doc("Base seed; replication r uses seed + r."),
    key("replications", Kind::Int(1, MAX_REPLICATIONS))
        .default_is("1")
        .example("3")
        .doc("Runs of each point with different seeds."),
    key("hardware", Kind::Table(HARDWARE))
        .req("add a [hardware] table with at least gpu = \"...\"")
        .doc("GPUs and how they are shared."),
    key("engine", Kind::Table(ENGINE))
        .req("add an [engine] table with at least model and policy")
        .doc("The serving engine of every instance."),
    key("instance", Kind::Tables(INSTANCE))
        .default_is("`instances_per_gpu` copies of `[engine]`")
        .doc("Instances placed one by one, each overriding `[engine]` settings."),
    key("workload", Kind::Table(WORKLOAD))
        .req("add a [workload] table: arrival, input_tokens, output_tokens, and num_requests or duration_s")
        .doc("The load."),
    key("frontend", Kind::Table(FRONTEND))
        .default_is("mode = \"fixed\"")
        .doc("The API front end: a fixed delay, or API-server processes as queues; a rate limiter."),
    key("client", Kind::Table(CLIENT))
        .default_is("every request sent when it arrives, no timeout")
        .doc("The benchmark client: concurrency limit and timeouts (not for offline workloads)."),    key("slo", Kind::Table(SLO))
        .default_is("no SLO (no goodput keys)")
        .doc("Latency SLOs: each request is judged by them; the summary gains goodput and attainment."),
];

/// `{ dist = "fixed" }`.
pub const DIST_FIXED: &[Key] = &[key("value", Kind::Int(1, i64::MAX))
    .req("give value = N")
    .unit("tokens")
    .example("128")
    .doc("Every request's length.")];
/// `{ dist = "uniform" }`.
pub const DIST_UNIFORM: &[Key] = &[
    key("mean", Kind::Int(1, i64::MAX))
        .req("give mean = N (tokens)")
        .unit("tokens")
        .example("512")
        .doc("Mean length."),
    key("range_ratio", float_below(0.0, 1.0))
        .req("give range_ratio in [0, 1), for example 0.5")
        .example("0.5")
        .doc("Lengths are uniform in mean × (1 ± range_ratio)."),
];
/// `{ dist = "normal" }` and `{ dist = "lognormal" }`.
pub const DIST_NORMAL: &[Key] = &[
    key("mean", float(1.0, 1e9))
        .req("give mean (tokens)")
        .unit("tokens")
        .example("80.0")
        .doc("Mean length."),
    key("std", float(0.0, 1e12))
        .req("give std (tokens)")
        .unit("tokens")
        .example("40.0")
        .doc("Standard deviation of the lengths."),
];

/// The keys of a length distribution with `dist = name`, if it is one.
pub fn dist_keys(name: &str) -> Option<&'static [Key]> {
    match name {
        "fixed" => Some(DIST_FIXED),
        "uniform" => Some(DIST_UNIFORM),
        "normal" | "lognormal" => Some(DIST_NORMAL),
        _ => None,
    }
}

/// The keys of the table at dotted `path` (`""`: the top level, `"engine.static"`,
/// `"instance"`), if it is one.
pub fn section(path: &str) -> Option<&'static [Key]> {
    let mut keys = TOP;
    if path.is_empty() {
        return Some(keys);
    }
    for part in path.split('.') {
        match keys.iter().find(|k| k.name == part)?.kind {
            Kind::Table(t) | Kind::Tables(t) => keys = t,
            _ => return None,
        }
    }
    Some(keys)
}

/// The declared key at dotted `path` (`"workload.rate_per_s"`), if there is one.
pub fn lookup(path: &str) -> Option<&'static Key> {
    let (table, name) = path.rsplit_once('.').unwrap_or(("", path));
    section(table)?.iter().find(|k| k.name == name)
}

/// Every leaf key's dotted path, in declaration order (tables are walked into;
/// `[[instance]]` keys are listed as `instance.<key>`).
pub fn key_paths() -> Vec<String> {
    fn walk(prefix: &str, keys: &[Key], out: &mut Vec<String>) {
        for k in keys {
            let p = if prefix.is_empty() {
                k.name.to_string()
            } else {
                format!("{prefix}.{}", k.name)
            };
            match k.kind {
                Kind::Table(t) | Kind::Tables(t) => walk(&p, t, out),
                _ => out.push(p),
            }
        }
    }
    let mut out = Vec::new();
    walk("", TOP, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawExperiment;
    use serde::Deserialize;

    /// The field names serde's `deny_unknown_fields` lists for the table at `path`
    /// (from its "expected one of" message for a key no table has).
    fn serde_fields(path: &str) -> Vec<String> {
        let mut doc: toml::Table = MINIMAL.parse().unwrap();
        let mut t = &mut doc;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            t = t
                .entry(part)
                .or_insert(toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap();
        }
        t.insert("zz_no_such_key".into(), toml::Value::Integer(1));
        let err = RawExperiment::deserialize(toml::Value::Table(doc))
            .unwrap_err()
            .to_string();
        let list = err
            .split_once("expected one of ")
            .or_else(|| err.split_once("expected "))
            .unwrap_or_else(|| panic!("{path}: {err}"))
            .1;
        let mut names: Vec<String> = list
            .split(',')
            .map(|s| s.trim().trim_matches(|c| c == '`' || c == '\n').to_string())
            .map(|s| s.split('`').next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty())
            .collect();
        names.sort();
        names
    }

    const MINIMAL: &str = r#"name = "t"
[hardware]
gpu = "a100-80gb"
[engine]
model = "llama-3.1-8b"
policy = "continuous"
[workload]
arrival = "poisson"
"#;

    #[test]
    fn every_declared_key_is_a_serde_field_and_back() {
        for (path, keys) in [
            ("", TOP),
            ("hardware", HARDWARE),
            ("engine", ENGINE),
            ("engine.continuous", CONTINUOUS),
            ("engine.static", STATIC),
            ("workload", WORKLOAD),
            ("workload.shared_prefix", SHARED_PREFIX),
            ("workload.sessions", SESSIONS),
            ("frontend", FRONTEND),
            ("client", CLIENT),
            ("slo", SLO),
        ] {
            let mut declared: Vec<String> = keys.iter().map(|k| k.name.to_string()).collect();
            declared.sort();
            assert_eq!(serde_fields(path), declared, "keys of [{path}]");
        }
    }

    #[test]
    fn every_example_passes_its_own_check() {
        for path in key_paths() {
            let k = lookup(&path).unwrap_or_else(|| panic!("{path} not found"));
            if matches!(k.kind, Kind::Table(_) | Kind::Tables(_)) {
                continue;
            }
            assert!(!k.example.is_empty(), "{path}: no example");
            assert!(!k.doc.is_empty(), "{path}: no doc");
            let v: toml::Table = format!("x = {}", k.example).parse().unwrap();
            let errs = crate::validate::check_key("f", &path, k, &v["x"]);
            assert!(errs.is_empty(), "{path}: example {}: {errs:?}", k.example);
        }
    }

    #[test]
    fn float_ranges_say_their_ends_and_units() {
        assert_eq!(
            float_range(
                FloatRange {
                    lo: 0.1,
                    hi: 1000.0,
                    lo_open: false,
                    hi_open: false
                },
                "ms"
            ),
            "0.1 to 1000 ms"
        );
        assert_eq!(
            allowed(
                lookup("engine.gpu_memory_utilization").unwrap().kind,
                "fraction"
            ),
            "a fraction in (0, 1]"
        );
        let r = match lookup("hardware.active_thread_percentage").unwrap().kind {
            Kind::Float(r) => r,
            _ => unreachable!(),
        };
        assert!(!r.contains(0.0) && r.contains(1e-9) && r.contains(100.0) && !r.contains(100.5));
        assert!(!r.contains(f64::NAN));
    }

    #[test]
    fn key_paths_reach_every_leaf() {
        let paths = key_paths();
        assert!(paths.contains(&"workload.rate_per_s".to_string()));
        assert!(paths.contains(&"engine.continuous.max_num_seqs".to_string()));
        assert!(paths.contains(&"instance.gpu".to_string()));
        assert!(!paths.contains(&"engine".to_string()));
        let mut unique = paths.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), paths.len());
    }
}
