//! Serving-stack presets by engine and version (`engine.stack = "vllm@0.6"`, ...):
//! the scheduler semantics and the engine's own defaults, as data, one entry per
//! preset in [`PRESETS`], each value with the engine source it was read from.
//!
//! A preset sets two things:
//! - the **defaults** of `[engine.continuous]` the engine itself would pick
//!   (`max_num_seqs`, `max_num_batched_tokens`, chunked prefill, prefix caching,
//!   the step scheduler), some of them from the GPU's memory and the entry point
//!   (an API server or the offline `LLM` class), as vLLM V1 does ([`BatchDefaults`]);
//! - the **semantics** an instance runs with ([`StackSemantics`]): multi-step
//!   scheduling (`num_scheduler_steps`), CUDA-graph padding (`cuda_graph_sizes`) and
//!   async scheduling (`async_scheduling`). The user may override each in
//!   `[engine.continuous]`; a key the preset's engine does not have is an error that
//!   names the presets that have it ([`owners_of`]).
//!
//! The CPU costs come from a stack profile (`calibration/profiles/<profile>.toml`). A
//! preset names its own profile ([`StackPreset::profile`]) and the fitted one it
//! borrows while that file does not exist ([`StackPreset::borrows`]); the run's
//! profile status says which was used ([`StackPreset::profile_note`]).
//!
//! The plain stacks `vllm` and `transformers` are not presets: they keep the
//! simulator's historical defaults (V1-style continuous batching, no padding, no
//! multi-step), so every experiment written before presets gives the same bytes.
//! The `vllm` profile was fitted on vLLM 0.9.2 (the A100 study), 0.15.1 (the T4 study)
//! and a March-2025 Vertex AI vLLM image (the L4 study); see
//! `calibration/measurements/*/README.md`.

use crate::specs::GpuSpec;

/// What an instance runs with beyond its batching policy (see the module doc).
/// The default is the plain stack's: single-step scheduling, no CUDA-graph padding,
/// the profile's own CPU/GPU overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSemantics {
    /// Decode steps per scheduler call (vLLM 0.5–0.6 `--num-scheduler-steps`; 1: off).
    ///
    /// With n > 1, a decode-only step opens a block of n steps: the batch is fixed
    /// for the block, requests that arrive (or could be admitted) wait for its end, a
    /// sequence that finishes inside the block stops emitting but keeps its slot (and
    /// is computed) until the block ends, and the engine's per-step CPU part (the
    /// scheduler and input preparation) is paid once per block: the block's later
    /// steps pay only their per-sequence output processing, which overlaps the GPU.
    /// When the block's tokens reach the client: see
    /// [`StackSemantics::multi_step_stream_outputs`].
    /// A step with prefills is a single step, as in vLLM 0.6 without chunked prefill
    /// (`vllm/sequence.py` `init_multi_step_from_lookahead_slots`: a prefill gets
    /// `num_lookahead_slots = 0`, so one step; a decode `num_lookahead_slots + 1 =
    /// num_scheduler_steps`).
    pub num_scheduler_steps: u32,
    /// vLLM 0.6 `--multi-step-stream-outputs`: whether the tokens of a multi-step
    /// block are streamed after every step (true, the default from vLLM 0.6.3, PR
    /// #9047) or all at the block's end (false; vLLM 0.6.0 had only this, the flag
    /// came later with PR #8335, default false). With false, every token
    /// generated in a block, a first token included, is delivered at the block's end:
    /// the client sees one chunk per sequence per block (one inter-token gap, the
    /// time since its previous chunk), and a request finishing inside the block
    /// completes at its end (`instance/multi_step.rs`). No effect without multi-step.
    pub multi_step_stream_outputs: bool,
    /// CUDA-graph capture sizes, ascending (empty: none, eager). A decode-only step of
    /// B sequences, B <= the largest size, runs the graph of the next size P >= B:
    /// the dense layers compute P tokens and the P − B padding rows attend one key
    /// each (vLLM fills a padding row with seq_len 1); the LM head, the sampler and
    /// the CPU work see the B real rows only. Larger batches, and steps with prefills
    /// unless [`StackSemantics::pad_mixed_steps`], run eager, unpadded.
    pub cuda_graph_sizes: Vec<u32>,
    /// Whether steps with prefills are padded too (vLLM V1's piecewise graphs cover
    /// any step of at most the largest size in tokens; V0 graphs only decodes).
    pub pad_mixed_steps: bool,
    /// vLLM V1 async scheduling: the scheduler prepares step k+1 while step k runs on
    /// the GPU, so the engine's CPU work overlaps the GPU entirely and a step lasts
    /// max(GPU, CPU) instead of CPU serial part + GPU (the cost's `cpu_overlap` is
    /// 1). The first step after an idle spell cannot overlap anything; it is priced
    /// the same (an approximation).
    pub async_scheduling: bool,
}

impl Default for StackSemantics {
    fn default() -> Self {
        StackSemantics {
            num_scheduler_steps: 1,
            multi_step_stream_outputs: true,
            cuda_graph_sizes: Vec::new(),
            pad_mixed_steps: false,
            async_scheduling: false,
        }
    }
}

impl StackSemantics {
    /// Whether it is the plain stack's (nothing beyond the batching policy).
    pub fn is_plain(&self) -> bool {
        *self == StackSemantics::default()
    }

    /// The capture size a step of `batch` rows (tokens) runs at: `Some(P)` with
    /// P >= batch the smallest capture size, `None` when it runs eager (no sizes, or
    /// the batch is larger than the largest).
    pub fn padded_size(&self, batch: u64) -> Option<u64> {
        self.cuda_graph_sizes
            .iter()
            .map(|&s| s as u64)
            .find(|&s| s >= batch)
    }
}

/// vLLM's capture list for one size given (`--cuda-graph-sizes N`): `[1, 2, 4]` then
/// every multiple of 8 up to N (vllm/config.py `VllmConfig._set_cudagraph_sizes`,
/// 0.9–0.11; V0 0.6 `vllm/worker/model_runner.py` `_BATCH_SIZES_TO_CAPTURE` is the
/// same pattern up to 256), capped at `max_num_seqs` in V0.
pub fn vllm_capture_list(max: u32) -> Vec<u32> {
    let mut v: Vec<u32> = [1, 2, 4].into_iter().filter(|&s| s <= max).collect();
    v.extend((8..=max).step_by(8));
    v
}

/// How a preset picks `max_num_seqs` and `max_num_batched_tokens`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchDefaults {
    /// vLLM V0 (0.6): `max_num_seqs = 256`; `max_num_batched_tokens` 512 with
    /// chunked prefill (single-step), else max(max_model_len, 2048) (vllm/config.py
    /// `SchedulerConfig.__init__`, v0.6.x).
    VllmV0,
    /// vLLM V1 (0.9 onward): by the GPU's memory and the entry point
    /// (vllm/engine/arg_utils.py `EngineArgs._set_default_args_v1`, from 0.10
    /// `get_batch_defaults`): on GPUs of >= 70 GiB that are not A100s, 16384 tokens
    /// offline (`LLM` class) and 8192 behind the API server, 1024 sequences; elsewhere
    /// 8192 / 2048 tokens and 256 sequences.
    VllmV1,
    /// SGLang: `chunked_prefill_size` by the GPU's memory (< 35 GiB: 2048, < 160 GiB:
    /// 8192, else 16384; python/sglang/srt/server_args.py `ServerArgs.__post_init__`).
    /// `max_running_requests` is derived by SGLang from the KV pool
    /// (max_total_num_tokens // 2, capped by the request pool, at least 2048 slots);
    /// the preset takes the request pool's floor, 2048, since the pool is sized after
    /// the batch limits here.
    Sglang,
    /// Fixed values (TensorRT-LLM's `max_batch_size`, `max_num_tokens`).
    Fixed {
        /// Most sequences.
        max_num_seqs: u32,
        /// Most tokens per step.
        max_num_batched_tokens: u32,
    },
}

/// Where a request enters the engine: vLLM V1 picks different defaults for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    /// The OpenAI-compatible API server (`vllm serve`).
    ApiServer,
    /// The offline `LLM` class (`LLM.generate`).
    Offline,
}

/// The `[engine.continuous]` defaults a preset resolves to on one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContinuousDefaults {
    /// `max_num_seqs`.
    pub max_num_seqs: u32,
    /// `max_num_batched_tokens`.
    pub max_num_batched_tokens: u32,
    /// Chunked prefill.
    pub chunked_prefill: bool,
    /// Prefix caching (SGLang: the radix cache; TRT-LLM: KV block reuse).
    pub prefix_caching: bool,
}

/// One engine version's preset (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct StackPreset {
    /// Name in configs (`engine.stack`).
    pub name: &'static str,
    /// Engine (`vllm`, `sglang`, `trtllm`).
    pub engine: &'static str,
    /// The versions whose source the values were read from.
    pub version: &'static str,
    /// Its own stack profile (`calibration/profiles/<profile>.toml`), used when the
    /// file exists.
    pub profile: &'static str,
    /// The fitted profile it borrows otherwise.
    pub borrows: &'static str,
    /// Why that profile is the nearest.
    pub borrow_note: &'static str,
    /// `max_num_seqs` / `max_num_batched_tokens`.
    pub batch: BatchDefaults,
    /// Chunked prefill by default.
    pub chunked_prefill: bool,
    /// Prefix caching by default.
    pub prefix_caching: bool,
    /// Step scheduler by default (a name in `crate::policy::SCHEDULERS`).
    pub scheduler: &'static str,
    /// Multi-step default (1: off).
    pub num_scheduler_steps: u32,
    /// Largest CUDA-graph capture size of vLLM's pattern (0: no padding).
    pub cuda_graph_max: u32,
    /// Whether steps with prefills are padded too.
    pub pad_mixed_steps: bool,
    /// Async scheduling by default.
    pub async_scheduling: bool,
    /// `[engine.continuous]` keys of this engine beyond the common ones
    /// ([`ENGINE_KEYS`]).
    pub keys: &'static [&'static str],
    /// Each setting and the source file and version it comes from.
    pub sources: &'static [(&'static str, &'static str)],
}

/// The engine-specific `[engine.continuous]` keys: a preset lists those it has.
pub const ENGINE_KEYS: &[&str] = &[
    "num_scheduler_steps",
    "cuda_graph_sizes",
    "async_scheduling",
    "multi_step_stream_outputs",
    "chunked_prefill_size",
    "max_running_requests",
    "schedule_policy",
    "disable_radix_cache",
    "max_batch_size",
    "max_num_tokens",
];

/// The shipped presets.
pub const PRESETS: &[StackPreset] = &[
    StackPreset {
        name: "vllm@0.6",
        engine: "vllm",
        version: "0.6.x (V0 engine)",
        profile: "vllm@0.6",
        borrows: "vllm",
        borrow_note: "fitted on V1 0.9–0.15; V0's CPU path is slower and serial",
        batch: BatchDefaults::VllmV0,
        chunked_prefill: false,
        prefix_caching: false,
        scheduler: "fcfs",
        num_scheduler_steps: 1,
        cuda_graph_max: 256,
        pad_mixed_steps: false,
        async_scheduling: false,
        keys: &["num_scheduler_steps", "multi_step_stream_outputs", "cuda_graph_sizes"],
        sources: &[
            ("num_scheduler_steps = 1 (multi-step is opt-in: --num-scheduler-steps)", "vllm-project/vllm vllm/engine/arg_utils.py EngineArgs.num_scheduler_steps, v0.6.x"),
            ("a prefill step is one step, a decode block num_scheduler_steps steps", "vllm-project/vllm vllm/sequence.py SequenceGroup.init_multi_step_from_lookahead_slots, v0.6.x"),
            ("outputs stream after every step of a block (multi_step_stream_outputs = True, the default from 0.6.3)", "vllm-project/vllm vllm/engine/arg_utils.py EngineArgs.multi_step_stream_outputs, v0.6.3 (PR #9047, 2024-10-03)"),
            ("multi_step_stream_outputs = False: a block's outputs at its end (0.6.0: the only behaviour, one chunk per 10 tokens in the Lambda study's raw itls)", "vllm-project/vllm PR #8335 (adds the flag, default False); calibration/measurements/lambda-vllm-0.6-multistep"),
            ("chunked prefill off (on by default only for max_model_len > 32K, not modelled)", "vllm-project/vllm vllm/engine/arg_utils.py EngineArgs.create_engine_config, v0.6.x"),
            ("max_num_seqs = 256; max_num_batched_tokens = max(max_model_len, 2048) without chunked prefill, 512 with", "vllm-project/vllm vllm/config.py SchedulerConfig.__init__, v0.6.x"),
            ("enable_prefix_caching = False", "vllm-project/vllm vllm/engine/arg_utils.py EngineArgs.enable_prefix_caching, v0.6.x"),
            ("CUDA graphs for decode batches [1, 2, 4, 8, 16, ..., 256]; prefills eager", "vllm-project/vllm vllm/worker/model_runner.py _BATCH_SIZES_TO_CAPTURE, v0.6.x"),
        ],
    },
    StackPreset {
        name: "vllm@0.9",
        engine: "vllm",
        version: "0.9.x (V1 engine)",
        profile: "vllm@0.9",
        borrows: "vllm",
        borrow_note: "the vllm profile was fitted on 0.9.2 (A100), 0.15.1 (T4) and a 2025 Vertex image (L4)",
        batch: BatchDefaults::VllmV1,
        chunked_prefill: true,
        prefix_caching: true,
        scheduler: "fcfs",
        num_scheduler_steps: 1,
        cuda_graph_max: 512,
        pad_mixed_steps: true,
        async_scheduling: false,
        keys: &["cuda_graph_sizes"],
        sources: &[
            ("V1 always chunks prefills; prefix caching on", "vllm-project/vllm vllm/engine/arg_utils.py EngineArgs._set_default_args_v1, v0.9.x"),
            ("max_num_batched_tokens / max_num_seqs by GPU memory (>= 70 GiB and not A100) and usage context (LLM class, API server)", "vllm-project/vllm vllm/engine/arg_utils.py EngineArgs._set_default_args_v1, v0.9.x (PR #17885 excludes the A100)"),
            ("cuda_graph_sizes = [512]: [1, 2, 4] + range(8, 513, 8)", "vllm-project/vllm vllm/config.py SchedulerConfig.cuda_graph_sizes and VllmConfig._set_cudagraph_sizes, v0.9.x"),
            ("piecewise graphs: any step of at most 512 scheduled tokens is padded (pad_for_cudagraph); attention runs outside the graphs", "vllm-project/vllm vllm/v1/worker/gpu_model_runner.py GPUModelRunner.execute_model, v0.9.x"),
            ("multi-step scheduling removed in V1", "vllm-project/vllm vllm/engine/arg_utils.py (num_scheduler_steps unsupported by V1), v0.9.x"),
        ],
    },
    StackPreset {
        name: "vllm@0.15",
        engine: "vllm",
        version: "0.15.x (V1 engine, async scheduling)",
        profile: "vllm@0.15",
        borrows: "vllm",
        borrow_note: "the vllm profile was fitted on 0.9.2 (A100), 0.15.1 (T4) and a 2025 Vertex image (L4)",
        batch: BatchDefaults::VllmV1,
        chunked_prefill: true,
        prefix_caching: true,
        scheduler: "fcfs",
        num_scheduler_steps: 1,
        cuda_graph_max: 512,
        pad_mixed_steps: true,
        async_scheduling: true,
        keys: &["cuda_graph_sizes", "async_scheduling"],
        sources: &[
            ("batch defaults as 0.9, moved to EngineArgs.get_batch_defaults", "vllm-project/vllm vllm/engine/arg_utils.py EngineArgs.get_batch_defaults, v0.10 onward"),
            ("async_scheduling: None = decided from the configuration (on where supported; False disables)", "vllm-project/vllm vllm/config/scheduler.py SchedulerConfig.async_scheduling, late 0.1x; the exact release that turned it on by default was not verified"),
            ("capture sizes [1, 2, 4] + multiples of 8 up to 512", "vllm-project/vllm vllm/config/compilation.py cudagraph_capture_sizes, late 0.1x (max_cudagraph_capture_size = 512 not verified for 0.15 exactly)"),
        ],
    },
    StackPreset {
        name: "sglang@0.5",
        engine: "sglang",
        version: "0.5.x",
        profile: "sglang@0.5",
        borrows: "vllm",
        borrow_note: "no SGLang study exists; the vllm (V1) profile stands in for its CPU path",
        batch: BatchDefaults::Sglang,
        chunked_prefill: true,
        prefix_caching: true,
        scheduler: "fcfs",
        num_scheduler_steps: 1,
        cuda_graph_max: 0,
        pad_mixed_steps: false,
        async_scheduling: true,
        keys: &[
            "chunked_prefill_size",
            "max_running_requests",
            "schedule_policy",
            "disable_radix_cache",
        ],
        sources: &[
            ("chunked_prefill_size by GPU memory: < 35 GiB 2048, < 160 GiB 8192, else 16384", "sgl-project/sglang python/sglang/srt/server_args.py ServerArgs.__post_init__ (0.4.x logic; 0.5 tiers not re-verified)"),
            ("schedule_policy = \"fcfs\" (\"lpm\" selectable: scheduling_policy = \"lpm\")", "sgl-project/sglang python/sglang/srt/server_args.py ServerArgs.schedule_policy"),
            ("radix cache on (disable_radix_cache = False)", "sgl-project/sglang python/sglang/srt/server_args.py ServerArgs.disable_radix_cache"),
            ("overlap scheduler on (disable_overlap_schedule = False): CPU overlaps the GPU", "sgl-project/sglang python/sglang/srt/server_args.py ServerArgs.disable_overlap_schedule"),
            ("max_running_requests from the KV pool; the preset takes the request pool's floor 2048", "sgl-project/sglang python/sglang/srt/model_executor/model_runner.py (max_num_reqs) — approximated"),
            ("CUDA-graph padding (cuda_graph_max_bs by GPU memory) not modelled", "not looked up"),
        ],
    },
    StackPreset {
        name: "trtllm@1.0",
        engine: "trtllm",
        version: "1.0 (PyTorch backend)",
        profile: "trtllm@1.0",
        borrows: "vllm",
        borrow_note: "no TensorRT-LLM study exists; the vllm (V1) profile stands in for its CPU path",
        batch: BatchDefaults::Fixed {
            max_num_seqs: 2048,
            max_num_batched_tokens: 8192,
        },
        chunked_prefill: false,
        prefix_caching: true,
        scheduler: "fcfs",
        num_scheduler_steps: 1,
        cuda_graph_max: 0,
        pad_mixed_steps: false,
        async_scheduling: false,
        keys: &["max_batch_size", "max_num_tokens"],
        sources: &[
            ("in-flight batching = continuous batching; max_batch_size = 2048, max_num_tokens = 8192", "NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/llm_args.py BaseLlmArgs.max_batch_size / max_num_tokens, None = the BuildConfig defaults (tensorrt_llm/builder.py BuildConfig); the 2048 / 8192 values were not re-read in the source for 1.0"),
            ("enable_chunked_prefill = False", "NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/llm_args.py BaseLlmArgs.enable_chunked_prefill = Field(default=False)"),
            ("KV block reuse on (KvCacheConfig.enable_block_reuse = True)", "NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/llm_args.py KvCacheConfig, 1.0"),
            ("CUDA graphs without padding (CudaGraphConfig.enable_padding = False): no padding", "NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/llm_args.py CudaGraphConfig.enable_padding"),
        ],
    },
];

/// The names of the plain stacks and the presets: the allowed values of
/// `engine.stack`.
pub const STACK_NAMES: [&str; 2 + PRESETS.len()] = {
    let mut names = [""; 2 + PRESETS.len()];
    names[0] = "vllm";
    names[1] = "transformers";
    let mut i = 0;
    while i < PRESETS.len() {
        names[2 + i] = PRESETS[i].name;
        i += 1;
    }
    names
};

/// The preset called `name` (`None` for the plain stacks and unknown names).
pub fn preset(name: &str) -> Option<&'static StackPreset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The profile a stack runs with: a plain stack's own (`<stack>`), a preset's own
/// when `exists` says its file is there, else the one it borrows.
pub fn profile_name(stack: &str, exists: impl Fn(&str) -> bool) -> &str {
    match preset(stack) {
        Some(p) if exists(p.profile) => p.profile,
        Some(p) => p.borrows,
        None => stack,
    }
}

/// The presets whose engine has `key` (for the error of a key used with another
/// engine).
pub fn owners_of(key: &str) -> Vec<&'static str> {
    PRESETS
        .iter()
        .filter(|p| p.keys.contains(&key))
        .map(|p| p.name)
        .collect()
}

/// Whether the stack `stack` accepts `key` of [`ENGINE_KEYS`]: the plain `vllm`
/// stack accepts `cuda_graph_sizes` (off unless given); presets their own keys.
pub fn accepts(stack: &str, key: &str) -> bool {
    match preset(stack) {
        Some(p) => p.keys.contains(&key),
        None => stack == "vllm" && key == "cuda_graph_sizes",
    }
}

impl StackPreset {
    /// The `[engine.continuous]` defaults on `gpu` for requests entering at `entry`,
    /// with `max_len` the longest sequence and chunked prefill `chunked` (`None`: the
    /// preset's): V0's token budget depends on both.
    ///
    /// `multi_step`: whether `num_scheduler_steps > 1` (vLLM 0.6 then gives chunked
    /// prefill the whole-prompt budget max(max_model_len, 2048): multi-step chunked
    /// prefill does not split prompts).
    pub fn defaults(
        &self,
        gpu: &GpuSpec,
        entry: EntryPoint,
        max_len: u64,
        chunked: Option<bool>,
        multi_step: bool,
    ) -> ContinuousDefaults {
        let chunked = chunked.unwrap_or(self.chunked_prefill);
        let gib = gpu.memory_gib;
        let (max_num_seqs, max_num_batched_tokens) = match self.batch {
            BatchDefaults::VllmV0 => {
                let tokens = if chunked && !multi_step {
                    512
                } else {
                    max_len.max(2048).min(u32::MAX as u64) as u32
                };
                (256, tokens)
            }
            BatchDefaults::VllmV1 => {
                let a100 = gpu.name.to_lowercase().contains("a100");
                let big = gib >= 70.0 && !a100;
                let tokens = match (big, entry) {
                    (true, EntryPoint::Offline) => 16384,
                    (true, EntryPoint::ApiServer) => 8192,
                    (false, EntryPoint::Offline) => 8192,
                    (false, EntryPoint::ApiServer) => 2048,
                };
                (if big { 1024 } else { 256 }, tokens)
            }
            BatchDefaults::Sglang => {
                let tokens = if gib < 35.0 {
                    2048
                } else if gib < 160.0 {
                    8192
                } else {
                    16384
                };
                (2048, tokens)
            }
            BatchDefaults::Fixed {
                max_num_seqs,
                max_num_batched_tokens,
            } => (max_num_seqs, max_num_batched_tokens),
        };
        ContinuousDefaults {
            max_num_seqs,
            max_num_batched_tokens,
            chunked_prefill: chunked,
            prefix_caching: self.prefix_caching,
        }
    }

    /// The semantics by default (before the user's overrides), for a run whose
    /// running set is capped at `max_num_seqs` (V0 captures no larger batch).
    pub fn semantics(&self, max_num_seqs: u32) -> StackSemantics {
        let max = if self.pad_mixed_steps {
            self.cuda_graph_max
        } else {
            self.cuda_graph_max.min(max_num_seqs)
        };
        StackSemantics {
            num_scheduler_steps: self.num_scheduler_steps,
            multi_step_stream_outputs: true,
            cuda_graph_sizes: if self.cuda_graph_max == 0 {
                Vec::new()
            } else {
                vllm_capture_list(max)
            },
            pad_mixed_steps: self.pad_mixed_steps,
            async_scheduling: self.async_scheduling,
        }
    }

    /// The status line of the profile it runs with: its own when `own_exists`, else
    /// the borrowed one.
    pub fn profile_note(&self, own_exists: bool) -> String {
        if own_exists {
            format!("{}: own profile {}.toml", self.name, self.profile)
        } else {
            format!(
                "{}: borrows the `{}` profile ({}); no {}.toml yet",
                self.name, self.borrows, self.borrow_note, self.profile
            )
        }
    }
}

/// The presets as a text table (`infersim stacks`).
pub fn listing(profile_exists: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    out.push_str("plain stacks: vllm (V1-style continuous batching, the fitted vllm profile: vLLM 0.9.2 on the A100 study, 0.15.1 on the T4 study, a March-2025 Vertex image on the L4 study), transformers\n\n");
    for p in PRESETS {
        out.push_str(&format!("{} — {} {}\n", p.name, p.engine, p.version));
        out.push_str(&format!(
            "  profile: {}\n",
            p.profile_note(profile_exists(p.profile))
        ));
        let batch = match p.batch {
            BatchDefaults::VllmV0 => "max_num_seqs 256; max_num_batched_tokens max(max_model_len, 2048) (512 with chunked prefill)".to_string(),
            BatchDefaults::VllmV1 => "by GPU memory and entry point: >= 70 GiB (not A100) 1024 seqs, 8192 tokens (API) / 16384 (offline); else 256 seqs, 2048 / 8192".to_string(),
            BatchDefaults::Sglang => "max_running_requests 2048; chunked_prefill_size 2048 (< 35 GiB) / 8192 (< 160 GiB) / 16384".to_string(),
            BatchDefaults::Fixed { max_num_seqs, max_num_batched_tokens } => format!("max_batch_size {max_num_seqs}, max_num_tokens {max_num_batched_tokens}"),
        };
        out.push_str(&format!("  batch: {batch}\n"));
        out.push_str(&format!(
            "  chunked prefill {}, prefix caching {}, scheduler {}, num_scheduler_steps {}, cuda graphs {}, async scheduling {}\n",
            on(p.chunked_prefill),
            on(p.prefix_caching),
            p.scheduler,
            p.num_scheduler_steps,
            if p.cuda_graph_max == 0 {
                "no padding".to_string()
            } else {
                format!("padded up to {}{}", p.cuda_graph_max, if p.pad_mixed_steps { " (any step)" } else { " (decode steps)" })
            },
            on(p.async_scheduling)
        ));
        let keys = if p.keys.is_empty() {
            "none".to_string()
        } else {
            p.keys.join(", ")
        };
        out.push_str(&format!("  engine-specific keys: {keys}\n"));
        for (what, src) in p.sources {
            out.push_str(&format!("  - {what}\n      {src}\n"));
        }
        out.push('\n');
    }
    out
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_list_follows_vllms_pattern() {
        assert_eq!(vllm_capture_list(8), vec![1, 2, 4, 8]);
        assert_eq!(vllm_capture_list(3), vec![1, 2]);
        let l = vllm_capture_list(512);
        assert_eq!(l.len(), 3 + 64);
        assert_eq!(&l[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(*l.last().unwrap(), 512);
    }

    #[test]
    fn padded_size_is_the_next_capture_size_or_eager() {
        let s = StackSemantics {
            cuda_graph_sizes: vec![1, 2, 4, 8],
            ..StackSemantics::default()
        };
        assert_eq!(s.padded_size(5), Some(8));
        assert_eq!(s.padded_size(4), Some(4));
        assert_eq!(s.padded_size(9), None);
        assert_eq!(StackSemantics::default().padded_size(1), None);
    }

    #[test]
    fn names_are_unique_and_keys_known() {
        let mut names = STACK_NAMES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), STACK_NAMES.len());
        for p in PRESETS {
            assert!(p.keys.iter().all(|k| ENGINE_KEYS.contains(k)), "{}", p.name);
            assert!(crate::policy::registration(p.scheduler).is_some());
            assert!(!p.sources.is_empty());
        }
        assert_eq!(owners_of("num_scheduler_steps"), vec!["vllm@0.6"]);
        assert_eq!(owners_of("async_scheduling"), vec!["vllm@0.15"]);
        assert!(accepts("vllm", "cuda_graph_sizes"));
        assert!(!accepts("vllm", "num_scheduler_steps"));
        assert!(!accepts("sglang@0.5", "cuda_graph_sizes"));
        assert_eq!(profile_name("vllm@0.6", |_| false), "vllm");
        assert_eq!(profile_name("vllm@0.6", |n| n == "vllm@0.6"), "vllm@0.6");
        assert_eq!(profile_name("transformers", |_| false), "transformers");
    }
}
