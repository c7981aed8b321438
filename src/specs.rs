//! Model and GPU specifications, shipped as data in `models/`.
//!
//! The shipped TOML files are embedded in the binary so `infersim` works from any
//! directory; a config may also name a spec file by path (anything ending in `.toml`).
//! Each number in the files carries its source in a comment.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Architecture of a decoder-only transformer, from its Hugging Face `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Short name, equal to the file stem.
    pub name: String,
    /// Hugging Face repository the architecture was read from.
    pub hf_repo: String,
    /// Transformer layers (`num_hidden_layers`).
    pub num_layers: u32,
    /// Model width `d` (`hidden_size`).
    pub hidden_size: u64,
    /// MLP width (`intermediate_size`, OPT's `ffn_dim`).
    pub intermediate_size: u64,
    /// Query heads.
    pub num_heads: u32,
    /// Key/value heads (grouped-query attention).
    pub num_kv_heads: u32,
    /// Width of one head.
    pub head_dim: u64,
    /// Vocabulary size.
    pub vocab_size: u64,
    /// Whether the LM head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Longest context the model supports, in tokens.
    pub max_context: u64,
    /// Bytes per parameter and per cached K/V element (2 for fp16/bf16).
    pub dtype_bytes: u64,
    /// `gated` (3 MLP matrices) or `plain` (2).
    pub mlp: MlpKind,
    /// Whether q/k/v projections carry biases.
    pub attention_bias: bool,
    /// Sliding-window length in tokens (0: none).
    pub sliding_window: u64,
    /// How many layers use the sliding window.
    pub sliding_window_layers: u32,
    /// Rows of a learned positional-embedding table (OPT), else 0.
    pub learned_position_embeddings: u64,
    /// Parameter count stated on the model card, in billions (for checking).
    pub model_card_params_b: f64,
    /// Active parameters per token stated on the model card, in billions (MoE
    /// models; for checking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_card_active_params_b: Option<f64>,
    /// Whether the window layers attend within fixed chunks of `sliding_window` tokens
    /// (Llama 4's chunked local attention: a token sees the keys of its own chunk)
    /// rather than over a sliding window of the last `sliding_window` tokens.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chunked_window: bool,
    /// The checkpoint's own weight quantisation, as vLLM names it (`fp8` for
    /// DeepSeek-V3, `mxfp4` for gpt-oss, `awq`, `gptq`, ...); absent: weights in
    /// `dtype_bytes`. An engine's `quantization` defaults to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// The compressed-tensors scheme of a `quantization = "compressed-tensors"`
    /// checkpoint (one of `cost::quant::SCHEMES`, read from its `config_groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_scheme: Option<String>,
    /// Mixture-of-experts MLP (absent: every layer's MLP is dense).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<MoeSpec>,
    /// Multi-head latent attention (DeepSeek-V2/V3; absent: grouped-query attention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla: Option<MlaSpec>,
}

/// A mixture-of-experts MLP: each token's hidden state goes to `experts_per_token` of
/// `num_experts` routed experts (each a gated MLP of width `expert_intermediate_size`),
/// plus, in some models, shared experts every token passes through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeSpec {
    /// Routed experts per MoE layer (`num_local_experts`, `num_experts`,
    /// `n_routed_experts`).
    pub num_experts: u32,
    /// Experts each token is routed to (`num_experts_per_tok`, top-k).
    pub experts_per_token: u32,
    /// MLP width of one routed expert (`moe_intermediate_size`; Mixtral's
    /// `intermediate_size`).
    pub expert_intermediate_size: u64,
    /// Total MLP width of the shared experts (DeepSeek: `n_shared_experts` ×
    /// `moe_intermediate_size`; Qwen2-MoE: `shared_expert_intermediate_size`); 0: none.
    #[serde(default)]
    pub shared_expert_intermediate_size: u64,
    /// Leading layers whose MLP is dense, of width `intermediate_size` (DeepSeek's
    /// `first_k_dense_replace`).
    #[serde(default)]
    pub first_dense_layers: u32,
    /// Every `layer_step`-th layer after those is a MoE layer, the rest dense (Llama 4
    /// Maverick's `interleave_moe_layer_step` = 2; 1: every layer).
    #[serde(default = "one")]
    pub layer_step: u32,
}

fn one() -> u32 {
    1
}

/// Multi-head latent attention: keys and values are cached as one compressed latent
/// of `kv_lora_rank` plus a shared rotary key of `qk_rope_head_dim` per token and
/// layer, and expanded per head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlaSpec {
    /// Rank of the query compression (0: queries projected directly, DeepSeek-V2-Lite).
    pub q_lora_rank: u64,
    /// Rank of the key/value latent (`kv_lora_rank`).
    pub kv_lora_rank: u64,
    /// Per-head query/key width without rotary embedding (`qk_nope_head_dim`).
    pub qk_nope_head_dim: u64,
    /// Per-head query/key width with rotary embedding (`qk_rope_head_dim`).
    pub qk_rope_head_dim: u64,
    /// Per-head value width (`v_head_dim`).
    pub v_head_dim: u64,
}

/// MLP structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MlpKind {
    /// SwiGLU/GeGLU: gate, up and down projections.
    Gated,
    /// fc1 and fc2.
    Plain,
}

impl ModelSpec {
    /// Parameters of one layer's attention projections (q, k, v, o; MLA's down and
    /// up projections).
    pub fn layer_attn_params(&self) -> u64 {
        let d = self.hidden_size;
        let h = self.num_heads as u64;
        match &self.mla {
            Some(a) => {
                let qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
                let q = if a.q_lora_rank == 0 {
                    d * h * qk
                } else {
                    d * a.q_lora_rank + a.q_lora_rank * h * qk
                };
                let kv_a = d * (a.kv_lora_rank + a.qk_rope_head_dim);
                let kv_b = a.kv_lora_rank * h * (a.qk_nope_head_dim + a.v_head_dim);
                let o = h * a.v_head_dim * d;
                q + kv_a + kv_b + o
            }
            None => {
                let q = d * h * self.head_dim;
                let kv = 2 * d * self.num_kv_heads as u64 * self.head_dim;
                let o = h * self.head_dim * d;
                q + kv + o
            }
        }
    }

    /// Parameters of one MLP of width `f` (3 matrices when gated, 2 when plain).
    pub fn mlp_params(&self, f: u64) -> u64 {
        match self.mlp {
            MlpKind::Gated => 3 * self.hidden_size * f,
            MlpKind::Plain => 2 * self.hidden_size * f,
        }
    }

    /// Layers whose MLP is a mixture of experts (0 for a dense model).
    pub fn moe_layers(&self) -> u32 {
        match &self.moe {
            None => 0,
            Some(m) => {
                let rest = self.num_layers.saturating_sub(m.first_dense_layers);
                rest / m.layer_step.max(1)
            }
        }
    }

    /// Parameters of one routed expert.
    pub fn expert_params(&self) -> u64 {
        self.moe
            .as_ref()
            .map_or(0, |m| self.mlp_params(m.expert_intermediate_size))
    }

    /// Parameters of one MoE layer's MLP that every token uses: the shared experts
    /// and the router (`d · E`).
    pub fn moe_layer_shared_params(&self) -> u64 {
        self.moe.as_ref().map_or(0, |m| {
            self.mlp_params(m.shared_expert_intermediate_size)
                + self.hidden_size * m.num_experts as u64
        })
    }

    /// Parameters of the layers, all of them (attention, dense MLPs, every expert).
    pub fn layers_params(&self) -> u64 {
        let moe = self.moe_layers() as u64;
        let dense = self.num_layers as u64 - moe;
        let experts = self.moe.as_ref().map_or(0, |m| m.num_experts as u64);
        self.layer_attn_params() * self.num_layers as u64
            + dense * self.mlp_params(self.intermediate_size)
            + moe * (self.moe_layer_shared_params() + experts * self.expert_params())
    }

    /// Parameters of the layers one token passes through: as
    /// [`ModelSpec::layers_params`] with only its top-k experts per MoE layer.
    pub fn active_layers_params(&self) -> u64 {
        let moe = self.moe_layers() as u64;
        let dense = self.num_layers as u64 - moe;
        let k = self.moe.as_ref().map_or(0, |m| m.experts_per_token as u64);
        self.layer_attn_params() * self.num_layers as u64
            + dense * self.mlp_params(self.intermediate_size)
            + moe * (self.moe_layer_shared_params() + k * self.expert_params())
    }

    /// Parameters of the dense matmuls of one layer (attention projections and MLP).
    pub fn layer_dense_params(&self) -> u64 {
        let d = self.hidden_size;
        let q = d * self.num_heads as u64 * self.head_dim;
        let kv = 2 * d * self.num_kv_heads as u64 * self.head_dim;
        let o = self.num_heads as u64 * self.head_dim * d;
        let mlp = match self.mlp {
            MlpKind::Gated => 3 * d * self.intermediate_size,
            MlpKind::Plain => 2 * d * self.intermediate_size,
        };
        q + kv + o + mlp
    }

    /// (n, k) of the GEMMs of one layer and the LM head, in the order QKV, output,
    /// MLP up (gate and up together when gated), MLP down, LM head: C[m×n] = A[m×k]·B[k×n]
    /// with m the tokens of a step.
    pub fn gemm_nk(&self) -> [(f64, f64); 5] {
        let d = self.hidden_size as f64;
        let q = (self.num_heads as u64 * self.head_dim) as f64;
        let kv = (self.num_kv_heads as u64 * self.head_dim) as f64;
        let f = self.intermediate_size as f64;
        let up = match self.mlp {
            MlpKind::Gated => 2.0 * f,
            MlpKind::Plain => f,
        };
        [
            (q + 2.0 * kv, d),
            (d, q),
            (up, d),
            (d, f),
            (self.vocab_size as f64, d),
        ]
    }

    /// Parameters touched by the dense matmuls of a whole forward pass (all layers),
    /// excluding the LM head.
    pub fn dense_params(&self) -> u64 {
        self.layer_dense_params() * self.num_layers as u64
    }

    /// Parameters of the LM head (`d · V`).
    pub fn lm_head_params(&self) -> u64 {
        self.hidden_size * self.vocab_size
    }

    /// Total parameter count (embeddings, layers, untied LM head; norms and biases are
    /// under 0.1 % and left out).
    pub fn param_count(&self) -> u64 {
        self.embedding_params() + self.layers_params()
    }

    /// Parameters one token uses (MoE: only its top-k experts; dense: all).
    pub fn active_param_count(&self) -> u64 {
        self.embedding_params() + self.active_layers_params()
    }

    /// Token and learned position embeddings plus an untied LM head.
    fn embedding_params(&self) -> u64 {
        let embed = self.vocab_size * self.hidden_size
            + self.learned_position_embeddings * self.hidden_size;
        let head = if self.tied_embeddings {
            0
        } else {
            self.lm_head_params()
        };
        embed + head
    }

    /// Bytes of weights resident on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        self.param_count() * self.dtype_bytes
    }

    /// Layers with full (global) attention.
    pub fn full_layers(&self) -> u32 {
        if self.sliding_window == 0 {
            self.num_layers
        } else {
            self.num_layers - self.sliding_window_layers
        }
    }

    /// Layers with sliding-window attention.
    pub fn window_layers(&self) -> u32 {
        if self.sliding_window == 0 {
            0
        } else {
            self.sliding_window_layers
        }
    }

    /// K and V bytes one cached token takes in one layer (MLA: its latent and rotary
    /// key).
    pub fn kv_bytes_per_token_layer(&self) -> u64 {
        match &self.mla {
            Some(a) => (a.kv_lora_rank + a.qk_rope_head_dim) * self.dtype_bytes,
            None => 2 * self.num_kv_heads as u64 * self.head_dim * self.dtype_bytes,
        }
    }

    /// K and V bytes one cached token takes over all layers (the uncapped figure).
    pub fn kv_bytes_per_token(&self) -> u64 {
        self.kv_bytes_per_token_layer() * self.num_layers as u64
    }

    /// Checks the spec's values (each within a range no real model leaves, so the
    /// arithmetic on them cannot overflow) and its internal consistency.
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        self.check_all(file).into_iter().next().map_or(Ok(()), Err)
    }

    /// Every error [`ModelSpec::check`] finds, in one round (the sizes first; the
    /// arithmetic on them only when they are all in range).
    pub fn check_all(&self, file: &str) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut err = |field: &str, msg: String| errs.push(ConfigError::new(file, field, msg));
        for (field, v, lo, hi) in [
            ("num_layers", self.num_layers as u64, 1, 1000),
            ("hidden_size", self.hidden_size, 1, 1_000_000),
            ("intermediate_size", self.intermediate_size, 1, 10_000_000),
            ("num_heads", self.num_heads as u64, 1, 10_000),
            ("num_kv_heads", self.num_kv_heads as u64, 1, 10_000),
            ("head_dim", self.head_dim, 1, 100_000),
            ("vocab_size", self.vocab_size, 1, 10_000_000),
            ("max_context", self.max_context, 2, 100_000_000),
            ("dtype_bytes", self.dtype_bytes, 1, 8),
            (
                "learned_position_embeddings",
                self.learned_position_embeddings,
                0,
                100_000_000,
            ),
            ("sliding_window", self.sliding_window, 0, 100_000_000),
        ] {
            if !(lo..=hi).contains(&v) {
                err(
                    field,
                    format!("got {v}, allowed: an integer from {lo} to {hi}"),
                );
            }
        }
        if !errs.is_empty() {
            return errs;
        }
        let mut err = |field: &str, msg: String| errs.push(ConfigError::new(file, field, msg));
        // Weights in 128-bit arithmetic: within the ranges above they fit, but say so
        // rather than trust it.
        let d = self.hidden_size as u128;
        let layer =
            d * (self.num_heads as u128 + 2 * self.num_kv_heads as u128) * self.head_dim as u128
                + self.num_heads as u128 * self.head_dim as u128 * d
                + 3 * d * self.intermediate_size as u128;
        let experts = self.moe.as_ref().map_or(0, |m| {
            (m.num_experts as u128 * m.expert_intermediate_size as u128
                + m.shared_expert_intermediate_size as u128
                + m.num_experts as u128)
                * 3
                * d
        });
        let total = ((layer + experts) * self.num_layers as u128
            + 2 * d * (self.vocab_size + self.learned_position_embeddings) as u128)
            * self.dtype_bytes as u128;
        if total > 1u128 << 60 {
            err(
                "hidden_size",
                format!("these sizes make {total} bytes of weights; allowed: at most 2^60 (an exbibyte)"),
            )
        }
        if self.num_heads % self.num_kv_heads != 0 {
            err(
                "num_kv_heads",
                format!(
                    "{} does not divide num_heads = {}",
                    self.num_kv_heads, self.num_heads
                ),
            )
        }
        if self.sliding_window_layers > self.num_layers {
            err(
                "sliding_window_layers",
                format!(
                    "{} is more than num_layers = {}",
                    self.sliding_window_layers, self.num_layers
                ),
            )
        }
        if self.sliding_window > 0 && self.sliding_window_layers == 0 {
            err(
                "sliding_window_layers",
                "is 0 while sliding_window is set; give how many layers use the window".into(),
            )
        }
        if let Some(m) = &self.moe {
            for (field, v, lo, hi) in [
                ("moe.num_experts", m.num_experts as u64, 1, 100_000),
                (
                    "moe.experts_per_token",
                    m.experts_per_token as u64,
                    1,
                    m.num_experts as u64,
                ),
                (
                    "moe.expert_intermediate_size",
                    m.expert_intermediate_size,
                    1,
                    10_000_000,
                ),
                (
                    "moe.shared_expert_intermediate_size",
                    m.shared_expert_intermediate_size,
                    0,
                    10_000_000,
                ),
                (
                    "moe.first_dense_layers",
                    m.first_dense_layers as u64,
                    0,
                    self.num_layers as u64 - 1,
                ),
                (
                    "moe.layer_step",
                    m.layer_step as u64,
                    1,
                    self.num_layers as u64,
                ),
            ] {
                if !(lo..=hi).contains(&v) {
                    err(
                        field,
                        format!("got {v}, allowed: an integer from {lo} to {hi}"),
                    );
                }
            }
        }
        if let Some(a) = &self.mla {
            for (field, v, lo) in [
                ("mla.q_lora_rank", a.q_lora_rank, 0),
                ("mla.kv_lora_rank", a.kv_lora_rank, 1),
                ("mla.qk_nope_head_dim", a.qk_nope_head_dim, 1),
                ("mla.qk_rope_head_dim", a.qk_rope_head_dim, 0),
                ("mla.v_head_dim", a.v_head_dim, 1),
            ] {
                if !(lo..=100_000).contains(&v) {
                    err(
                        field,
                        format!("got {v}, allowed: an integer from {lo} to 100000"),
                    );
                }
            }
        }
        errs
    }
}

/// A GPU's datasheet figures and price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// Short name, equal to the file stem.
    pub name: String,
    /// Marketing name.
    pub full_name: String,
    /// Architecture generation.
    pub architecture: String,
    /// CUDA compute capability.
    pub compute_capability: String,
    /// Dense fp16/bf16 tensor-core TFLOP/s (no sparsity).
    pub tensor_tflops: f64,
    /// Dense FP8 tensor-core TFLOP/s (no sparsity; 0: no FP8 tensor cores, or not
    /// stated).
    #[serde(default)]
    pub fp8_tflops: f64,
    /// Dense INT8 tensor-core TOPS (no sparsity; 0: none, or not stated).
    #[serde(default)]
    pub int8_tops: f64,
    /// Dense FP4 tensor-core TFLOP/s (no sparsity; 0: none, or not stated).
    #[serde(default)]
    pub fp4_tflops: f64,
    /// Memory capacity as CUDA reports it, GiB.
    pub memory_gib: f64,
    /// Memory bandwidth, GB/s (10^9 bytes per second).
    pub memory_bandwidth_gbps: f64,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Interconnect, in words.
    pub interconnect: String,
    /// Interconnect bandwidth, GB/s.
    pub interconnect_gbps: f64,
    /// Kind of the link a GPU has to its peers in a node: `nvlink` or `pcie` (the
    /// collectives of tensor and pipeline parallelism run over it).
    pub link_kind: String,
    /// Bandwidth one GPU has to its peers, GB/s per direction (the bidirectional
    /// `interconnect_gbps` halved, for NVLink and PCIe alike).
    pub link_gbps_per_direction: f64,
    /// Per-message latency of a collective or point-to-point transfer over the link,
    /// µs (the fixed cost of a tiny message).
    pub link_latency_us: f64,
    /// GPUs one node (one NVLink or PCIe domain) holds: the largest tensor-parallel
    /// group (cross-node tensor parallelism is not modelled).
    pub gpus_per_node: u32,
    /// CUDA MPS client limit per device.
    pub mps_max_clients: u32,
    /// MIG instances (0: no MIG).
    pub mig_max_instances: u32,
    /// MIG profiles the GPU offers (none without MIG).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mig_profiles: Vec<MigProfile>,
    /// Set on one MIG instance of a GPU (see [`GpuSpec::mig_slice`]): its profile.
    #[serde(skip)]
    pub mig: Option<String>,
    /// On-demand price per GPU-hour, US dollars.
    pub price_per_gpu_hour_usd: f64,
    /// Where the price came from.
    pub price_source: String,
}

/// A MIG profile: a hard partition of the GPU with its own SMs, memory and bandwidth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigProfile {
    /// NVIDIA's name, for example `3g.40gb`.
    pub name: String,
    /// Compute slices, in sevenths of the GPU's SMs.
    pub compute: u32,
    /// Memory slices, in eighths of its memory (and of its bandwidth and L2).
    pub memory: u32,
    /// How many instances of this profile fit on one GPU.
    pub max_instances: u32,
}

impl GpuSpec {
    /// One MIG instance of profile `p` as a GPU of its own: `p.compute`/7 of the SMs
    /// and tensor FLOP/s, `p.memory`/8 of the memory and of the bandwidth, the same
    /// name (so the GPU's profile applies) and no MIG of its own.
    pub fn mig_slice(&self, p: &MigProfile) -> GpuSpec {
        let c = p.compute as f64 / 7.0;
        let m = p.memory as f64 / 8.0;
        GpuSpec {
            full_name: format!("{} MIG {}", self.full_name, p.name),
            tensor_tflops: self.tensor_tflops * c,
            fp8_tflops: self.fp8_tflops * c,
            int8_tops: self.int8_tops * c,
            fp4_tflops: self.fp4_tflops * c,
            memory_gib: self.memory_gib * m,
            memory_bandwidth_gbps: self.memory_bandwidth_gbps * m,
            sm_count: ((self.sm_count as f64 * c).round() as u32).max(1),
            mig_max_instances: 0,
            mig_profiles: Vec::new(),
            mig: Some(p.name.clone()),
            price_per_gpu_hour_usd: self.price_per_gpu_hour_usd * c.max(m),
            ..self.clone()
        }
    }

    /// Its name, with the MIG profile for one MIG instance (`a100-80gb MIG 3g.40gb`).
    pub fn label(&self) -> String {
        match &self.mig {
            Some(p) => format!("{} MIG {p}", self.name),
            None => self.name.clone(),
        }
    }

    /// Peak dense tensor FLOP/s.
    pub fn peak_flops(&self) -> f64 {
        self.tensor_tflops * 1e12
    }
    /// Peak memory bandwidth, bytes/s.
    pub fn peak_bandwidth(&self) -> f64 {
        self.memory_bandwidth_gbps * 1e9
    }
    /// Memory capacity, bytes.
    pub fn memory_bytes(&self) -> f64 {
        self.memory_gib * GIB
    }

    /// Checks the spec's values.
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        self.check_all(file).into_iter().next().map_or(Ok(()), Err)
    }

    /// Every error [`GpuSpec::check`] finds, in one round.
    pub fn check_all(&self, file: &str) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        for (field, v, lo, hi) in [
            ("tensor_tflops", self.tensor_tflops, 0.01, 1e5),
            ("fp8_tflops", self.fp8_tflops, 0.0, 1e5),
            ("int8_tops", self.int8_tops, 0.0, 1e5),
            ("fp4_tflops", self.fp4_tflops, 0.0, 1e5),
            ("memory_gib", self.memory_gib, 0.01, 1e5),
            (
                "memory_bandwidth_gbps",
                self.memory_bandwidth_gbps,
                0.1,
                1e6,
            ),
            ("interconnect_gbps", self.interconnect_gbps, 0.0, 1e6),
            (
                "link_gbps_per_direction",
                self.link_gbps_per_direction,
                0.1,
                1e5,
            ),
            ("link_latency_us", self.link_latency_us, 0.0, 1e3),
            (
                "price_per_gpu_hour_usd",
                self.price_per_gpu_hour_usd,
                0.0,
                1e4,
            ),
        ] {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                errs.push(ConfigError::new(
                    file,
                    field,
                    format!(
                        "got {}, allowed: {} to {}",
                        crate::validate::fmt_num(v),
                        crate::validate::fmt_num(lo),
                        crate::validate::fmt_num(hi)
                    ),
                ));
            }
        }
        for (field, v, lo, hi) in [
            ("sm_count", self.sm_count, 1, 100_000),
            ("mps_max_clients", self.mps_max_clients, 1, 1024),
            ("mig_max_instances", self.mig_max_instances, 0, 7),
            ("gpus_per_node", self.gpus_per_node, 1, 1024),
        ] {
            if !(lo..=hi).contains(&v) {
                errs.push(ConfigError::new(
                    file,
                    field,
                    format!("got {v}, allowed: an integer from {lo} to {hi}"),
                ));
            }
        }
        for (i, p) in self.mig_profiles.iter().enumerate() {
            if !(1..=7).contains(&p.compute)
                || !(1..=8).contains(&p.memory)
                || !(1..=7).contains(&p.max_instances)
                || p.max_instances * p.compute > 7
                || p.max_instances * p.memory > 8
            {
                errs.push(ConfigError::new(
                    file,
                    format!("mig_profiles[{i}]"),
                    format!(
                        "{}: compute {} (sevenths, 1-7), memory {} (eighths, 1-8), max_instances {} (1-7, at most 7 sevenths and 8 eighths in all)",
                        p.name, p.compute, p.memory, p.max_instances
                    ),
                ));
            }
        }
        if !["nvlink", "pcie"].contains(&self.link_kind.as_str()) {
            errs.push(ConfigError::new(
                file,
                "link_kind",
                format!("got {:?}, allowed: \"nvlink\" or \"pcie\"", self.link_kind),
            ));
        }
        errs
    }
}

/// Bytes in a GiB.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

macro_rules! shipped {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../models/", $dir, "/", $name, ".toml")))),*]
    };
}

/// Shipped model specs: (name, TOML text).
pub const SHIPPED_MODELS: &[(&str, &str)] = shipped!("llm":
    "opt-125m", "gemma-3-1b-it", "llama-3.2-1b", "llama-3.2-3b-instruct", "llama-2-7b",
    "llama-3.1-8b", "mistral-7b", "qwen2.5-7b", "qwen3-14b", "llama-3.1-70b",
    "llama-3-8b-instruct", "mistral-7b-instruct-v0.3",
    // Issue 15: the deployments people rent (MoE, MLA and MXFP4/FP8 ones load and
    // count, and are priced once the cost model has those parts).
    "llama-3.1-405b", "llama-3.3-70b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b",
    "mixtral-8x7b", "deepseek-v3", "gpt-oss-20b", "gpt-oss-120b");

/// Shipped GPU specs: (name, TOML text).
pub const SHIPPED_GPUS: &[(&str, &str)] = shipped!("gpu":
    "t4", "l4", "a10g", "a100-40gb", "a100-80gb", "l40", "l40s", "h100-sxm", "h100-pcie", "h200",
    "h20", "b200", "gb200", "rtx-pro-6000");

fn parse_spec<T: for<'de> Deserialize<'de>>(text: &str, file: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let msg = e
            .message()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ");
        let err = ConfigError::new(file, "(spec)", format!("not a valid spec: {msg}"));
        match e.span() {
            Some(span) => err.at_offset(text, span.start),
            None => err,
        }
    })
}

fn read_spec_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            path.display().to_string(),
            "(file)",
            format!("cannot read: {e}"),
        )
    })
}

/// Where shipped specs of one kind live and how they are called in messages.
struct Shipped {
    list: &'static [(&'static str, &'static str)],
    kind: &'static str,
    dir: &'static str,
}

/// Looks a spec up by shipped name, or loads it from a `.toml` path (relative to
/// `base`, the directory of the file that named it).
fn load_spec<T: for<'de> Deserialize<'de>>(
    check: fn(&T, &str) -> Vec<ConfigError>,
    shipped: &Shipped,
    name: &str,
    base: Option<&Path>,
    file: &str,
    field: &str,
) -> Result<T, Vec<ConfigError>> {
    if name.ends_with(".toml") {
        let path = base.map(|b| b.join(name)).unwrap_or_else(|| name.into());
        let text = read_spec_file(&path).map_err(|e| vec![e])?;
        let file = path.display().to_string();
        let spec: T = parse_spec(&text, &file).map_err(|e| vec![e])?;
        // A spec file's value errors are located in it, as an experiment's are, and
        // come all in one round.
        let errs = check(&spec, &file);
        if errs.is_empty() {
            return Ok(spec);
        }
        let spans = crate::validate::Spans::new(&text);
        let sources = crate::validate::PointSources::default();
        return Err(errs
            .into_iter()
            .map(|e| spans.locate(e, &file, &sources).0)
            .collect());
    }
    let (_, text) = shipped
        .list
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| {
            ConfigError::new(
                file,
                field,
                format!(
                    "unknown {} {name:?}; shipped {}s: {} (or a path to a .toml spec)",
                    shipped.kind,
                    shipped.kind,
                    names(shipped.list)
                ),
            )
        })
        .map_err(|e| vec![e])?;
    let shipped_file = format!("{}/{name}.toml", shipped.dir);
    let spec: T = parse_spec(text, &shipped_file).map_err(|e| vec![e])?;
    let errs = check(&spec, &shipped_file);
    if errs.is_empty() {
        Ok(spec)
    } else {
        Err(errs)
    }
}

/// Looks up a model by shipped name, or loads it from a `.toml` path (relative paths
/// are taken relative to `base`, the directory of the file that named it).
pub fn load_model(
    name: &str,
    base: Option<&Path>,
    file: &str,
    field: &str,
) -> Result<ModelSpec, ConfigError> {
    load_model_all(name, base, file, field).map_err(first)
}

/// [`load_model`], with every error of a spec file in one round.
pub fn load_model_all(
    name: &str,
    base: Option<&Path>,
    file: &str,
    field: &str,
) -> Result<ModelSpec, Vec<ConfigError>> {
    if name.ends_with(".json") {
        // A Hugging Face config.json (see `hf_import`).
        let path = base.map(|b| b.join(name)).unwrap_or_else(|| name.into());
        return hf_import::load(&path);
    }
    let shipped = Shipped {
        list: SHIPPED_MODELS,
        kind: "model",
        dir: "models/llm",
    };
    load_spec(ModelSpec::check_all, &shipped, name, base, file, field)
}

/// The first of a non-empty list of errors.
fn first(mut errs: Vec<ConfigError>) -> ConfigError {
    errs.swap_remove(0)
}

/// Looks up a GPU by shipped name, or loads it from a `.toml` path.
pub fn load_gpu(
    name: &str,
    base: Option<&Path>,
    file: &str,
    field: &str,
) -> Result<GpuSpec, ConfigError> {
    load_gpu_all(name, base, file, field).map_err(first)
}

/// [`load_gpu`], with every error of a spec file in one round.
pub fn load_gpu_all(
    name: &str,
    base: Option<&Path>,
    file: &str,
    field: &str,
) -> Result<GpuSpec, Vec<ConfigError>> {
    let shipped = Shipped {
        list: SHIPPED_GPUS,
        kind: "GPU",
        dir: "models/gpu",
    };
    load_spec(GpuSpec::check_all, &shipped, name, base, file, field)
}

/// Comma-separated names of a shipped list.
pub fn names(list: &[(&str, &str)]) -> String {
    list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

pub mod embedded;
pub mod hf_import;

#[cfg(test)]
mod tests;
