//! The typed carrier of an experiment file: serde structs with `deny_unknown_fields`,
//! one per table, filled from a sweep point the schema (`schema.rs`) has passed.
//! Their field names must equal the declared keys; a test in `schema.rs` holds them
//! to that.

use crate::router::RouterKind;
use crate::workload::LengthDist;
use serde::{Deserialize, Serialize};

/// The raw experiment file (after sweep expansion).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Experiment name (default output folder `output/<name>/`).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Base seed (default 0); replication r uses seed + r.
    #[serde(default)]
    pub seed: u64,
    /// Runs per point with different seeds (default 1).
    #[serde(default = "one")]
    pub replications: u32,
    /// GPUs and how they are shared.
    pub hardware: RawHardware,
    /// The serving engine of every instance.
    pub engine: RawEngine,
    /// The load.
    pub workload: RawWorkload,
    /// Instances placed one by one (`[[instance]]`: `gpu` = its GPU's index, and any
    /// `[engine]` setting to override), instead of `instances_per_gpu` copies of
    /// `[engine]`: for deployments that mix models, policies or memory fractions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance: Vec<toml::Table>,
    /// `[frontend]`: the API front end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<RawFrontEnd>,
    /// `[client]`: the benchmark client's behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<RawClient>,
    /// `[slo]`: latency SLOs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<RawSlo>,
}

/// `[slo]`: bounds in ms, `p<percentile>_<metric>` as the summary names them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    pub p50_ttft_ms: Option<f64>,
    pub p90_ttft_ms: Option<f64>,
    pub p95_ttft_ms: Option<f64>,
    pub p99_ttft_ms: Option<f64>,
    pub p50_tpot_ms: Option<f64>,
    pub p90_tpot_ms: Option<f64>,
    pub p95_tpot_ms: Option<f64>,
    pub p99_tpot_ms: Option<f64>,
    pub p50_itl_ms: Option<f64>,
    pub p90_itl_ms: Option<f64>,
    pub p95_itl_ms: Option<f64>,
    pub p99_itl_ms: Option<f64>,
    pub p50_e2el_ms: Option<f64>,
    pub p90_e2el_ms: Option<f64>,
    pub p95_e2el_ms: Option<f64>,
    pub p99_e2el_ms: Option<f64>,
}

/// `[frontend]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFrontEnd {
    /// `fixed` (default) or `queue`.
    pub mode: Option<String>,
    /// API-server processes (queue mode, default 1).
    pub api_server_count: Option<u32>,
    /// Rate limit, requests per second.
    pub rate_limit_per_s: Option<f64>,
    /// Rate limiter's bucket (default 1).
    pub rate_limit_burst: Option<u32>,
    /// `reject` (default) or `drop`.
    pub rate_limit_action: Option<String>,
}

/// `[client]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// Requests in flight at most.
    pub max_concurrency: Option<u32>,
    /// Client timeout, seconds.
    pub timeout_s: Option<f64>,
    /// `abort` (default) or `continue`.
    pub on_timeout: Option<String>,
}

fn one() -> u32 {
    1
}

/// `[hardware]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHardware {
    /// Shipped GPU name or a path to a GPU spec.
    pub gpu: String,
    /// GPUs (default 1).
    #[serde(default = "one")]
    pub num_gpus: u32,
    /// Instances on each GPU (default 1).
    #[serde(default = "one")]
    pub instances_per_gpu: u32,
    /// `exclusive` (default), `mps` or `time-slice`.
    #[serde(default)]
    pub sharing: Option<String>,
    /// Router in front of the instances (default `round-robin`).
    #[serde(default)]
    pub router: Option<RouterKind>,
    /// Time-slice quantum, ms (time-slice only).
    #[serde(default)]
    pub timeslice_ms: Option<f64>,
    /// Context-switch cost, ms (time-slice only).
    #[serde(default)]
    pub switch_cost_ms: Option<f64>,
    /// MPS active-thread percentage per instance (mps only, default 100).
    #[serde(default)]
    pub active_thread_percentage: Option<f64>,
    /// MIG profile (for example `3g.40gb`): each GPU is split into MIG instances of
    /// this profile, each of which then counts as a GPU of its own.
    #[serde(default)]
    pub mig: Option<String>,
    /// MIG instances per GPU (default: as many of the profile as fit).
    #[serde(default)]
    pub mig_instances: Option<u32>,
    /// Whose price the cost figures use (default `spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_provider: Option<String>,
    /// A user price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_file: Option<String>,
    /// Price kind (default `on-demand`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_kind: Option<String>,
}

/// Default time-slice quantum. NVIDIA does not publish it; the driver's default
/// time-slice is commonly reported as about 2 ms. Always echoed in results.
pub const DEFAULT_TIMESLICE_MS: f64 = 2.0;
/// Default context-switch cost. NVIDIA does not publish it; reported measurements of
/// GPU context switches are tens to hundreds of microseconds. Always echoed.
pub const DEFAULT_SWITCH_COST_MS: f64 = 0.1;

/// `[engine]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// Shipped model name or a path to a model spec.
    pub model: String,
    /// `sequential`, `static` or `continuous`.
    pub policy: String,
    /// Serving stack whose profile prices steps (default `vllm`).
    #[serde(default)]
    pub stack: Option<String>,
    /// Stack profile name or path (default: the stack's shipped profile, `<stack>`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Fraction of GPU memory this instance may use (default 0.9).
    #[serde(default)]
    pub gpu_memory_utilization: Option<f64>,
    /// Tokens per KV block (default 16).
    #[serde(default)]
    pub block_size: Option<u64>,
    /// Longest prompt + output (default: the model's context).
    #[serde(default)]
    pub max_model_len: Option<u64>,
    /// KV cache size in tokens, overriding the memory estimate (as a server log
    /// reports it).
    #[serde(default)]
    pub kv_cache_tokens: Option<u64>,
    /// Settings of the continuous policy (used when `policy = "continuous"`; each
    /// policy's settings live in their own table so a sweep over `engine.policy`
    /// can carry both).
    #[serde(default)]
    pub continuous: Option<RawContinuous>,
    /// Settings of the static policy.
    #[serde(default, rename = "static")]
    pub static_: Option<RawStatic>,
    /// Weights' quantization method, vLLM's name (default: the checkpoint's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// The compressed-tensors scheme (with `quantization = "compressed-tensors"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_scheme: Option<String>,
    /// KV-cache element type, vLLM's name (default `auto`: the model's dtype).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_dtype: Option<String>,
    /// GPUs per tensor-parallel group (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor_parallel_size: Option<u32>,
    /// Pipeline stages (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_parallel_size: Option<u32>,
    /// `steady` (default) or `flush`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_schedule: Option<String>,
    /// Expert parallelism over TP × DP GPUs (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_expert_parallel: Option<bool>,
    /// Data-parallel attention ranks with expert parallelism (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_parallel_size: Option<u32>,
}

/// `[engine.continuous]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawContinuous {
    /// Default 256.
    pub max_num_seqs: Option<u32>,
    /// Default 2048 with chunked prefill, else max_model_len.
    pub max_num_batched_tokens: Option<u32>,
    /// Default true.
    pub enable_chunked_prefill: Option<bool>,
    /// Automatic prefix caching (default true, as vLLM V1).
    pub enable_prefix_caching: Option<bool>,
    /// Step scheduler (default fcfs).
    pub scheduling_policy: Option<String>,
    /// vLLM 0.6 multi-step scheduling (default: the preset's, 1).
    #[serde(default)]
    pub num_scheduler_steps: Option<u32>,
    /// CUDA-graph capture sizes (default: the preset's; none for plain vllm).
    #[serde(default)]
    pub cuda_graph_sizes: Option<Vec<u32>>,
    /// vLLM V1 async scheduling (default: the preset's).
    #[serde(default)]
    pub async_scheduling: Option<bool>,
    /// vLLM 0.6 multi-step: stream after every step (default: the preset's, true).
    #[serde(default)]
    pub multi_step_stream_outputs: Option<bool>,
    /// SGLang's name for `max_num_batched_tokens` (stack sglang@0.5).
    #[serde(default)]
    pub chunked_prefill_size: Option<u32>,
    /// SGLang's name for `max_num_seqs`.
    #[serde(default)]
    pub max_running_requests: Option<u32>,
    /// SGLang's name for `scheduling_policy` (`lpm` or `fcfs`).
    #[serde(default)]
    pub schedule_policy: Option<String>,
    /// SGLang: `true` turns the radix (prefix) cache off.
    #[serde(default)]
    pub disable_radix_cache: Option<bool>,
    /// TensorRT-LLM's name for `max_num_seqs` (stack trtllm@1.0).
    #[serde(default)]
    pub max_batch_size: Option<u32>,
    /// TensorRT-LLM's name for `max_num_batched_tokens`.
    #[serde(default)]
    pub max_num_tokens: Option<u32>,
    /// Preemption victim (default: the scheduler's).
    pub preemption_victim: Option<String>,
    /// Output-length predictor of sjf and srpt (default oracle).
    pub length_predictor: Option<String>,
    /// σ of the noisy predictor's log error (default 0.5).
    pub length_predictor_error: Option<f64>,
    /// Fair share: charge per prompt token (default 1).
    pub fair_share_input_weight: Option<f64>,
    /// Fair share: charge per output token (default 2).
    pub fair_share_output_weight: Option<f64>,
}

/// `[engine.static]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    /// Largest batch (default 8).
    pub batch_size: Option<u32>,
    /// Longest wait for a full batch, ms (default 0).
    pub max_wait_ms: Option<f64>,
    /// Whether finished sequences stay in the batch (default true).
    pub pad_finished: Option<bool>,
}

/// `[workload]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    /// `poisson`, `gamma`, `constant`, `trace`, `closed-loop` or `offline`.
    pub arrival: String,
    /// Requests per second (poisson, gamma, constant).
    pub rate_per_s: Option<f64>,
    /// Gamma shape (gamma only, default 1).
    pub burstiness: Option<f64>,
    /// Finite run: requests to issue.
    pub num_requests: Option<u64>,
    /// Timed run: length, seconds.
    pub duration_s: Option<f64>,
    /// Timed run: warm-up excluded from statistics, seconds (default 0).
    pub warmup_s: Option<f64>,
    /// Closed loop: users.
    pub users: Option<u32>,
    /// Closed loop: users started per second (default: all at once).
    pub spawn_rate_per_s: Option<f64>,
    /// Closed loop: `constant` (default), `exponential` or `between`.
    pub think: Option<String>,
    /// Closed loop: think time (constant) or mean (exponential), seconds (default 0).
    pub think_time_s: Option<f64>,
    /// Closed loop, `between`: bounds, seconds.
    pub think_min_s: Option<f64>,
    /// Closed loop, `between`: bounds, seconds.
    pub think_max_s: Option<f64>,
    /// Offline: requests per group.
    pub batch_size: Option<u32>,
    /// Trace: CSV path (relative to the experiment file).
    pub trace: Option<String>,
    /// Trace: divide gaps by this (default 1).
    pub time_scale: Option<f64>,
    /// Prompt lengths (not for traces).
    pub input_tokens: Option<LengthDist>,
    /// Output lengths (not for traces).
    pub output_tokens: Option<LengthDist>,
    /// Number of distinct prompts the requests draw from (their lengths drawn once
    /// each from `input_tokens`); requests with the same prompt share it as a prefix
    /// the engine can cache. Default: every prompt unique.
    pub prompt_pool: Option<u32>,
    /// `random` (default: requests with the same prompt produce different tokens) or
    /// `greedy` (temperature 0, as `benchmark_serving`: they produce the same tokens,
    /// so the prefix cache also holds a request's generated tokens for its siblings).
    pub sampling: Option<String>,
    /// Whether lengths that do not fit `max_model_len` are cut to fit (with a warning
    /// counting them) instead of being an error (default false).
    pub truncate: Option<bool>,
    /// `[[workload.classes]]` (with `arrival = "classes"`).
    pub classes: Option<Vec<RawClass>>,
    /// `[workload.shared_prefix]`: groups of prompts with a shared system prompt.
    pub shared_prefix: Option<RawSharedPrefix>,
    /// `[workload.sessions]`: multi-turn sessions.
    pub sessions: Option<RawSessions>,
}

/// `[workload.shared_prefix]` (inference-perf's `shared_prefix` keys).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSharedPrefix {
    /// Groups, each with its own system prompt.
    pub num_groups: u32,
    /// Prompts per group.
    pub num_prompts_per_group: u32,
    /// Tokens of each group's system prompt.
    pub system_prompt_len: u32,
    /// Tokens of each prompt's question.
    pub question_len: LengthDist,
}

/// `[workload.sessions]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    /// Turns per session.
    pub turns: LengthDist,
    /// `constant` (default) or `exponential`.
    pub think: Option<String>,
    /// Think time between turns (constant) or its mean (exponential), seconds.
    pub think_time_s: Option<f64>,
}

/// One `[[workload.classes]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClass {
    /// Class name.
    pub name: String,
    /// `poisson`, `gamma` or `constant`.
    pub arrival: String,
    /// Requests per second.
    pub rate_per_s: f64,
    /// Gamma shape.
    pub burstiness: Option<f64>,
    /// Prompt lengths.
    pub input_tokens: LengthDist,
    /// Output lengths.
    pub output_tokens: LengthDist,
    /// Scheduling priority (default 0).
    pub priority: Option<i32>,
    /// Tenant (default 0).
    pub tenant: Option<u32>,
}
