//! Quantised weights and KV cache (`[engine] quantization`, `[engine] kv_cache_dtype`,
//! under vLLM's names): what each format stores per parameter, which compute path a
//! GPU runs it on, and the GEMM time and bytes that follow.
//! (Over 600 lines because the formats, their compute paths and the resolution of an
//! engine's `quantization` / `quantization_scheme` against the checkpoint read as one
//! table; splitting the resolution out is a mechanical follow-up.)
//!
//! Physics, per format (bytes per parameter of the quantised linear layers):
//!
//! | method | format | bytes / param | compute |
//! |---|---|---|---|
//! | `fp8` | fp8 e4m3, per-tensor scale | 1 | W8A8 at `fp8_tflops` (compute capability ≥ 8.9); W8A16 (FP8 Marlin) at the 16-bit peak on 8.0–8.8 |
//! | `awq`, `awq_marlin`, `gptq`, `gptq_marlin` | int4, group 128, fp16 scale + 4-bit zero per group | 0.5 + 2.5/128 = 0.51953 | W4A16: dequantised in the GEMM at the 16-bit peak × [`WEIGHT_ONLY_ETA`] |
//! | `bitsandbytes` | nf4, block 64, fp32 absmax per block | 0.5 + 4/64 = 0.5625 | W4A16 as above |
//! | `modelopt_fp4` (NVFP4) | fp4 e2m1, fp8 e4m3 scale per 16 | 0.5 + 1/16 = 0.5625 | W4A4 at `fp4_tflops` where the GPU has FP4 tensor cores, else W4A16 (Marlin) |
//! | `mxfp4` | fp4 e2m1, e8m0 scale per 32 | 0.5 + 1/32 = 0.53125 | MoE expert weights only (vLLM leaves linear layers unquantised) |
//! | `compressed-tensors`, scheme `w8a8-int8` | int8, an fp32 scale per output channel | 1 + 4/`hidden_size` | W8A8 at `int8_tops` (INT8 tensor cores, compute capability ≥ 7.5), on the curves |
//! | `compressed-tensors`, scheme `w8a8-fp8` | as `fp8` | 1 | as `fp8` |
//! | `compressed-tensors`, scheme `w4a16` | int4, symmetric, a 16-bit scale per group of 128 | 0.5 + 2/128 | W4A16 as awq |
//! | `compressed-tensors`, scheme `w8a16` | int8, symmetric, a 16-bit scale per output channel | 1 + 2/`hidden_size` | W8A16, weight-only as awq |
//! | `compressed-tensors`, scheme `nvfp4` | as `modelopt_fp4` | 0.5625 | as `modelopt_fp4` |
//!
//! compressed-tensors (llm-compressor checkpoints) is a container: the scheme of its
//! `config_groups` decides the format, as vLLM's `CompressedTensorsConfig.
//! _get_scheme_from_parts` (`compressed_tensors.py`) picks it: 8-bit int weights and
//! 8-bit input activations (`_is_dynamic_token_w8a8` / `_is_static_tensor_w8a8`) →
//! `CompressedTensorsW8A8Int8` (`get_min_capability` 75, the CUTLASS `cutlass_scaled_mm`
//! int8 kernel; weight scale a float32 `ChannelQuantScaleParameter`, one per output
//! row); float 8-bit (`_is_fp8_w8a8`) → `CompressedTensorsW8A8Fp8`, or W8A16Fp8 below
//! 8.9; weights only (`_is_wNa16_group_channel`, no `input_activations`) →
//! `CompressedTensorsWNA16` (Marlin, 80; scales in the model's dtype); fp4 with group
//! 16 (`_is_fp4a4_nvfp4`) → `CompressedTensorsW4A4Fp4`, or W4A16Fp4 (Marlin) without
//! FP4 tensor cores. The per-channel scale count uses `hidden_size` as every layer's
//! input width (exact for q/k/v, o and gate/up; `down_proj`'s wider input has fewer
//! scales per weight, so its scales are overcounted by under 4/`hidden_size` of a byte
//! per weight). The per-token activation scales (one float per token per GEMM) are
//! left out. Asymmetric weight-only schemes (zero points) are not modelled.
//!
//! Sources: vLLM `vllm/model_executor/layers/quantization/__init__.py`
//! (`QUANTIZATION_METHODS`, the names); `fp8.py` (`Fp8Config.get_min_capability` = 80,
//! `cutlass_fp8_supported` needs 8.9, else `apply_fp8_marlin_linear`, W8A16); AWQ / GPTQ
//! checkpoints (`qweight` int32 packs 8 4-bit weights, `scales` fp16 and `qzeros` int32
//! packing 8 4-bit zeros per group of `group_size` = 128 input rows: 2 + 0.5 bytes per
//! 128 weights; GPTQ's optional `g_idx` adds 4 bytes per input row, under 0.1 % of a
//! layer, left out); the Marlin README (IST-DASLab/marlin: FP16×INT4, "close to ideal
//! (4x) speedups up to batchsizes of 16-32 tokens", not optimised for Hopper); OCP
//! Microscaling spec v1.0 (MXFP4: 32 e2m1 elements share one e8m0 scale); NVIDIA's
//! NVFP4 (16 e2m1 elements share one e4m3 scale, plus one fp32 per tensor);
//! bitsandbytes' `Linear4bit` (blocksize 64, fp32 absmax; double quantisation, off by
//! default in transformers' `BitsAndBytesConfig`, is not modelled).
//!
//! Which layers: the linear layers of attention and MLP (and experts). Embeddings
//! and the LM head stay in the model's 16-bit dtype (vLLM's `VocabParallelEmbedding`
//! and `ParallelLMHead` take a quantised method only when a checkpoint asks for a
//! quantised `lm_head`, which none of the methods here does by default). Activations
//! stay 16-bit except in W8A8 / W4A4, whose GEMMs read 1- / 0.5-byte activations.

use crate::specs::{GpuSpec, ModelSpec};

/// `quantization` methods this simulator prices (vLLM's names).
pub const METHODS: &[&str] = &[
    "fp8",
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "bitsandbytes",
    "modelopt_fp4",
    "mxfp4",
    "compressed-tensors",
];

/// `quantization_scheme` values: the compressed-tensors schemes priced here, named
/// after llm-compressor's preset schemes (`W8A8` int8, `FP8`, `W4A16`, `W8A16`,
/// `NVFP4`).
pub const SCHEMES: &[&str] = &["w8a8-int8", "w8a8-fp8", "w4a16", "w8a16", "nvfp4"];

/// `kv_cache_dtype` values (vLLM's `CacheConfig.cache_dtype`; `fp8` is `fp8_e4m3` on
/// CUDA).
pub const KV_CACHE_DTYPES: &[&str] = &["auto", "fp8", "fp8_e4m3", "fp8_e5m2"];

/// Large-m throughput of a weight-only (W4A16 / W8A16) GEMM as a fraction of the
/// 16-bit GEMM of the same shape: the dequantisation (unpack, scale, zero) runs on
/// the CUDA cores inside the GEMM's main loop. Plausible band 0.5–1.0: the Marlin
/// README shows its speedup over FP16 falling towards 1× once the GEMM is compute
/// bound, and Marlin has no Hopper (wgmma) path, so on Hopper it stays below cuBLAS
/// bf16. 0.8 is a stated assumption inside that band, not fitted to any benchmark.
pub const WEIGHT_ONLY_ETA: f64 = 0.8;

/// How weights are stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightFormat {
    /// fp8 e4m3 with a per-tensor scale.
    Fp8,
    /// int4 with a 16-bit scale and a 4-bit zero per group of `group` weights.
    Int4 {
        /// Weights per scale group.
        group: u32,
    },
    /// nf4, an fp32 absmax per block of 64 (bitsandbytes).
    Nf4,
    /// NVFP4: e2m1 with an e4m3 scale per 16.
    Nvfp4,
    /// MXFP4: e2m1 with an e8m0 scale per 32 (MoE experts only).
    Mxfp4,
    /// int8 with an fp32 scale per output channel of `per_scale` input weights
    /// (compressed-tensors W8A8 INT8).
    Int8 {
        /// Weights per scale (a row's input width).
        per_scale: u32,
    },
    /// Symmetric int weights with a 16-bit scale per `per_scale` weights and no zero
    /// point (compressed-tensors W4A16 / W8A16).
    IntSym {
        /// Bits per weight (4 or 8).
        bits: u32,
        /// Weights per scale (the group, or a row's input width per channel).
        per_scale: u32,
    },
}

impl WeightFormat {
    /// Bytes per quantised parameter, scales and zeros included.
    pub fn bytes_per_param(self) -> f64 {
        match self {
            WeightFormat::Fp8 => 1.0,
            WeightFormat::Int4 { group } => 0.5 + 2.5 / group as f64,
            WeightFormat::Nf4 => 0.5 + 4.0 / 64.0,
            WeightFormat::Nvfp4 => 0.5 + 1.0 / 16.0,
            WeightFormat::Mxfp4 => 0.5 + 1.0 / 32.0,
            WeightFormat::Int8 { per_scale } => 1.0 + 4.0 / per_scale as f64,
            WeightFormat::IntSym { bits, per_scale } => bits as f64 / 8.0 + 2.0 / per_scale as f64,
        }
    }
}

/// A `quantization` method: its vLLM name and storage format.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantization {
    /// vLLM's method name.
    pub method: String,
    /// How the weights are stored.
    pub format: WeightFormat,
    /// The compressed-tensors scheme (one of [`SCHEMES`]; `None` for other methods).
    pub scheme: Option<String>,
}

impl Quantization {
    /// The method of a vLLM name, or `None` for one not priced here.
    pub fn from_name(name: &str) -> Option<Quantization> {
        let format = match name {
            "fp8" => WeightFormat::Fp8,
            "awq" | "awq_marlin" | "gptq" | "gptq_marlin" => WeightFormat::Int4 { group: 128 },
            "bitsandbytes" => WeightFormat::Nf4,
            "modelopt_fp4" => WeightFormat::Nvfp4,
            "mxfp4" => WeightFormat::Mxfp4,
            _ => return None,
        };
        Some(Quantization {
            method: name.to_string(),
            format,
            scheme: None,
        })
    }

    /// `compressed-tensors` with `scheme` (one of [`SCHEMES`]) for `model`, or `None`
    /// for a scheme not priced here.
    pub fn compressed(scheme: &str, model: &ModelSpec) -> Option<Quantization> {
        let channel = model.hidden_size.max(1) as u32;
        let format = match scheme {
            "w8a8-int8" => WeightFormat::Int8 { per_scale: channel },
            "w8a8-fp8" => WeightFormat::Fp8,
            "w4a16" => WeightFormat::IntSym {
                bits: 4,
                per_scale: 128,
            },
            "w8a16" => WeightFormat::IntSym {
                bits: 8,
                per_scale: channel,
            },
            "nvfp4" => WeightFormat::Nvfp4,
            _ => return None,
        };
        Some(Quantization {
            method: "compressed-tensors".to_string(),
            format,
            scheme: Some(scheme.to_string()),
        })
    }

    /// vLLM's minimum compute capability of the method (×10), as its
    /// `get_min_capability` states.
    fn min_capability(&self) -> u32 {
        match self.method.as_str() {
            "awq" => 75,
            "gptq" => 60,
            "bitsandbytes" => 70,
            "compressed-tensors" if matches!(self.format, WeightFormat::Int8 { .. }) => 75,
            _ => 80,
        }
    }

    /// Whether a checkpoint stored as `checkpoint` may be served with this method:
    /// the same name, or vLLM's faster kernel for the same checkpoint format
    /// (`awq` → `awq_marlin`, `gptq` → `gptq_marlin`, which their
    /// `override_quantization_method` accept).
    pub fn serves_checkpoint(&self, checkpoint: &str) -> bool {
        self.method == checkpoint
            || matches!(
                (checkpoint, self.method.as_str()),
                ("awq", "awq_marlin") | ("gptq", "gptq_marlin")
            )
    }

    /// The compute path on `gpu`, or why vLLM refuses the method there.
    pub fn path_on(&self, gpu: &GpuSpec) -> Result<ComputePath, String> {
        let cc = compute_capability(gpu);
        if cc < self.min_capability() {
            return Err(format!(
                "the quantization method {} is not supported for the current GPU ({}, compute capability {}); minimum capability: {} (vLLM's get_min_capability)",
                self.method,
                gpu.name,
                gpu.compute_capability,
                self.min_capability()
            ));
        }
        if matches!(self.format, WeightFormat::Int8 { .. }) && gpu.int8_tops <= 0.0 {
            return Err(format!(
                "the compressed-tensors scheme w8a8-int8 needs INT8 tensor cores; {} states int8_tops = 0 (use w8a16 for int8 weights with 16-bit compute)",
                gpu.name
            ));
        }
        Ok(match self.format {
            WeightFormat::Int8 { .. } => ComputePath::W8A8Int8,
            WeightFormat::Fp8 if cc >= 89 && gpu.fp8_tflops > 0.0 => ComputePath::W8A8Fp8,
            WeightFormat::Nvfp4 if gpu.fp4_tflops > 0.0 => ComputePath::W4A4Fp4,
            _ => ComputePath::WeightOnly,
        })
    }
}

/// How a quantised GEMM runs on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputePath {
    /// fp8 weights and activations on FP8 tensor cores.
    W8A8Fp8,
    /// fp4 weights and activations on FP4 tensor cores (NVFP4, Blackwell).
    W4A4Fp4,
    /// int8 weights and activations on INT8 tensor cores (compressed-tensors W8A8).
    W8A8Int8,
    /// Weights dequantised to 16 bits inside the GEMM (Marlin): 16-bit activations
    /// and tensor cores, at [`WEIGHT_ONLY_ETA`] of their throughput.
    WeightOnly,
}

impl ComputePath {
    /// In words, for reports.
    pub fn name(self) -> &'static str {
        match self {
            ComputePath::W8A8Fp8 => "W8A8 on FP8 tensor cores",
            ComputePath::W4A4Fp4 => "W4A4 on FP4 tensor cores",
            ComputePath::W8A8Int8 => "W8A8 on INT8 tensor cores",
            ComputePath::WeightOnly => "weight-only, dequantised to 16 bits in the GEMM",
        }
    }
}

/// The KV cache's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvCacheDtype {
    /// The model's dtype.
    #[default]
    Auto,
    /// fp8 e4m3 (`fp8`, `fp8_e4m3`).
    Fp8E4m3,
    /// fp8 e5m2.
    Fp8E5m2,
}

impl KvCacheDtype {
    /// The dtype of a vLLM name, or `None` for one not in [`KV_CACHE_DTYPES`].
    pub fn from_name(name: &str) -> Option<KvCacheDtype> {
        match name {
            "auto" => Some(KvCacheDtype::Auto),
            "fp8" | "fp8_e4m3" => Some(KvCacheDtype::Fp8E4m3),
            "fp8_e5m2" => Some(KvCacheDtype::Fp8E5m2),
            _ => None,
        }
    }

    /// Bytes per KV element for a model stored in `dtype_bytes`.
    pub fn bytes(self, dtype_bytes: u64) -> u64 {
        match self {
            KvCacheDtype::Auto => dtype_bytes,
            KvCacheDtype::Fp8E4m3 | KvCacheDtype::Fp8E5m2 => 1,
        }
    }
}

/// `major * 10 + minor` of a GPU's compute capability (`"9.0"` → 90); 0 if unreadable.
pub fn compute_capability(gpu: &GpuSpec) -> u32 {
    let mut it = gpu.compute_capability.split('.');
    let major: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    major * 10 + minor
}

/// Parameters a method quantises: every linear layer of attention and MLP (dense
/// and expert), or only the experts for `mxfp4`.
pub fn quantised_params(model: &ModelSpec, q: &Quantization) -> u64 {
    match q.format {
        WeightFormat::Mxfp4 => {
            let experts = model.moe.as_ref().map_or(0, |m| m.num_experts as u64);
            model.moe_layers() as u64 * experts * model.expert_params()
        }
        _ => model.layers_params(),
    }
}

/// Bytes of weights resident on the GPU: the quantised layers in their format, the
/// rest (embeddings, LM head) in the model's dtype.
pub fn weight_bytes(model: &ModelSpec, q: Option<&Quantization>) -> f64 {
    match q {
        None => model.weight_bytes() as f64,
        Some(q) => {
            let qp = quantised_params(model, q);
            (model.param_count() - qp) as f64 * model.dtype_bytes as f64
                + qp as f64 * q.format.bytes_per_param()
        }
    }
}

/// Bytes of weights of `model` in its checkpoint's own format (`model.quantization`:
/// DeepSeek-V3's fp8, gpt-oss's MXFP4; the model's dtype when unquantised or in a
/// format not priced here).
pub fn checkpoint_weight_bytes(model: &ModelSpec) -> f64 {
    let q = model
        .quantization
        .as_deref()
        .and_then(Quantization::from_name);
    weight_bytes(model, q.as_ref())
}

/// KV bytes per token per layer in the cache's dtype.
pub fn kv_bytes_per_token_layer(model: &ModelSpec, kv: KvCacheDtype) -> u64 {
    match kv {
        KvCacheDtype::Auto => model.kv_bytes_per_token_layer(),
        _ => model.kv_bytes_per_token_layer() / model.dtype_bytes * kv.bytes(model.dtype_bytes),
    }
}

/// KV bytes per token (all layers) in the cache's dtype.
pub fn kv_bytes_per_token(model: &ModelSpec, kv: KvCacheDtype) -> u64 {
    match kv {
        KvCacheDtype::Auto => model.kv_bytes_per_token(),
        _ => model.kv_bytes_per_token() / model.dtype_bytes * kv.bytes(model.dtype_bytes),
    }
}

/// A quantised dense GEMM as the curves price it: the peak FLOP/s its path runs at
/// and the bytes per weight and per input activation it reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmFormat {
    /// The path's peak FLOP/s (datasheet, dense) times, for weight-only, the
    /// dequantisation efficiency.
    pub peak_flops: f64,
    /// Bytes per weight (scales included).
    pub weight_bytes: f64,
    /// Bytes per input activation element.
    pub act_bytes: f64,
    /// The path.
    pub path: ComputePath,
}

impl GemmFormat {
    /// The format of `q` on `gpu` (whose compute path must be valid).
    pub fn new(q: &Quantization, gpu: &GpuSpec) -> Result<GemmFormat, String> {
        let path = q.path_on(gpu)?;
        let (peak_flops, act_bytes) = match path {
            ComputePath::W8A8Fp8 => (gpu.fp8_tflops * 1e12, 1.0),
            ComputePath::W8A8Int8 => (gpu.int8_tops * 1e12, 1.0),
            ComputePath::W4A4Fp4 => (gpu.fp4_tflops * 1e12, WeightFormat::Nvfp4.bytes_per_param()),
            ComputePath::WeightOnly => (gpu.peak_flops() * WEIGHT_ONLY_ETA, 2.0),
        };
        Ok(GemmFormat {
            peak_flops,
            weight_bytes: q.format.bytes_per_param(),
            act_bytes,
            path,
        })
    }
}

/// The number formats one cost model prices, resolved for its GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct CostFormats {
    /// The quantised dense GEMMs (`None`: the model's dtype, and for `mxfp4`, which
    /// quantises only the experts).
    pub gemm: Option<GemmFormat>,
    /// The quantised MoE experts (every method quantises them; `None`: the model's
    /// dtype).
    pub experts: Option<GemmFormat>,
    /// The method's name (with its compressed-tensors scheme), with `gemm`.
    pub method: Option<String>,
    /// The KV cache's dtype.
    pub kv: KvCacheDtype,
    /// KV bytes per token per layer in that dtype.
    pub kv_layer: u64,
}

impl CostFormats {
    /// The formats of `deploy` for `model` on `gpu`, or why they cannot be priced.
    pub fn new(
        model: &ModelSpec,
        gpu: &GpuSpec,
        deploy: &super::Deployment,
    ) -> Result<CostFormats, crate::error::CostError> {
        let unsupported = crate::error::CostError::Unsupported;
        let q = deploy.quantization.as_ref();
        if let (Some(c), None) = (&model.quantization, q) {
            return Err(unsupported(format!(
                "{} is stored as {c:?}; its deployment must name that quantization",
                model.name
            )));
        }
        let experts = match q {
            None => None,
            Some(q) => {
                if quantised_params(model, q) == 0 {
                    return Err(unsupported(no_quantised_layers(model, q)));
                }
                Some(GemmFormat::new(q, gpu).map_err(unsupported)?)
            }
        };
        let experts_only = q.is_some_and(|q| q.format == WeightFormat::Mxfp4);
        Ok(CostFormats {
            gemm: if experts_only { None } else { experts },
            experts,
            method: q.map(|q| match &q.scheme {
                Some(s) => format!("{} {s}", q.method),
                None => q.method.clone(),
            }),
            kv: deploy.kv_cache_dtype,
            kv_layer: kv_bytes_per_token_layer(model, deploy.kv_cache_dtype),
        })
    }

    /// Bytes of `params` dense-layer weights (attention and dense MLPs; LM head
    /// excluded), stored in `bpp` bytes each when unquantised.
    pub fn dense_bytes(&self, params: f64, bpp: f64) -> f64 {
        match &self.gemm {
            None => params * bpp,
            Some(f) => params * f.weight_bytes,
        }
    }

    /// In words, for the cost model's description (empty for the default).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let (Some(m), Some(f)) = (&self.method, self.gemm.or(self.experts)) {
            let which = if self.gemm.is_none() { " experts" } else { "" };
            s += &format!(
                "; weights{which} {m} ({}, {} B/param)",
                f.path.name(),
                f.weight_bytes
            );
        }
        if self.kv != KvCacheDtype::Auto {
            s += "; fp8 KV cache (decode attention on the curves)";
        }
        s
    }
}

/// Why a method quantises nothing of a model.
pub fn no_quantised_layers(model: &ModelSpec, q: &Quantization) -> String {
    format!(
        "{} quantises only mixture-of-experts expert weights in vLLM (its linear layers stay unquantised); {} has no experts",
        q.method, model.name
    )
}

/// The quantisation of an engine: the explicit `quantization` if given, else the
/// checkpoint's own format (`ModelSpec.quantization`); an explicit value that
/// contradicts the checkpoint is refused as vLLM refuses it (`ModelConfig.
/// _verify_quantization`: "Quantization method specified in the model config (…)
/// does not match the quantization method specified in the `quantization` argument
/// (…)"). Errors are messages for `engine.quantization`.
pub fn resolve(
    model: &ModelSpec,
    gpu: &GpuSpec,
    explicit: Option<&str>,
) -> Result<Option<Quantization>, String> {
    resolve_scheme(model, gpu, explicit, None).map_err(|(_, m)| m)
}

/// [`resolve`] with the engine's `quantization_scheme`: the compressed-tensors scheme
/// is the explicit one, else the checkpoint's (`ModelSpec.quantization_scheme`); a
/// scheme without compressed-tensors, or one contradicting the checkpoint's, is
/// refused. Errors name their key (`quantization` or `quantization_scheme`).
pub fn resolve_scheme(
    model: &ModelSpec,
    gpu: &GpuSpec,
    explicit: Option<&str>,
    scheme: Option<&str>,
) -> Result<Option<Quantization>, (&'static str, String)> {
    const Q: &str = "quantization";
    const S: &str = "quantization_scheme";
    let method = explicit.or(model.quantization.as_deref());
    if method != Some("compressed-tensors") {
        if let Some(s) = scheme {
            return Err((
                S,
                format!(
                    "got {s:?} with quantization = {}; allowed only with quantization = \"compressed-tensors\" (the scheme of a compressed-tensors checkpoint)",
                    method.map_or("none".to_string(), |m| format!("{m:?}"))
                ),
            ));
        }
        return resolve_named(model, gpu, explicit).map_err(|m| (Q, m));
    }
    if let (Some(e), Some(c)) = (explicit, model.quantization.as_deref()) {
        if e != c {
            return Err((Q, mismatch(model, c, e)));
        }
    }
    let ckpt = model.quantization_scheme.as_deref();
    let name = match (scheme, ckpt) {
        (Some(s), Some(c)) if s != c => {
            return Err((
                S,
                format!(
                    "got {s:?}, but {} is a compressed-tensors checkpoint of scheme {c:?} (its config.json decides the scheme); leave engine.quantization_scheme out",
                    model.name
                ),
            ))
        }
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => {
            return Err((
                S,
                format!(
                    "missing: quantization = \"compressed-tensors\" needs a scheme and {} states none; allowed: {}",
                    model.name,
                    crate::config::reference::quoted_list(SCHEMES)
                ),
            ))
        }
    };
    let q = Quantization::compressed(name, model).ok_or_else(|| {
        (
            S,
            format!(
                "got {name:?}, allowed: {}",
                crate::config::reference::quoted_list(SCHEMES)
            ),
        )
    })?;
    check(model, gpu, q).map(Some).map_err(|m| (S, m))
}

fn resolve_named(
    model: &ModelSpec,
    gpu: &GpuSpec,
    explicit: Option<&str>,
) -> Result<Option<Quantization>, String> {
    let name = match (explicit, model.quantization.as_deref()) {
        (None, None) => return Ok(None),
        (Some(e), ckpt) => {
            let q = Quantization::from_name(e).ok_or_else(|| unknown(e))?;
            if let Some(c) = ckpt {
                if !q.serves_checkpoint(c) {
                    return Err(mismatch(model, c, e));
                }
            }
            return check(model, gpu, q).map(Some);
        }
        (None, Some(c)) => c,
    };
    let q = Quantization::from_name(name).ok_or_else(|| {
        format!(
            "{} is stored as {name:?}, a format not priced here; priced: {}",
            model.name,
            crate::config::reference::quoted_list(METHODS)
        )
    })?;
    check(model, gpu, q).map(Some)
}

fn mismatch(model: &ModelSpec, c: &str, e: &str) -> String {
    format!(
        "quantization method specified in the model config ({c}) does not match the quantization method specified in the `quantization` argument ({e}) (as vLLM refuses it); leave engine.quantization out to serve {}'s own format",
        model.name
    )
}

fn unknown(e: &str) -> String {
    format!(
        "got {e:?}, allowed: {}",
        crate::config::reference::quoted_list(METHODS)
    )
}

fn check(model: &ModelSpec, gpu: &GpuSpec, q: Quantization) -> Result<Quantization, String> {
    if quantised_params(model, &q) == 0 {
        return Err(no_quantised_layers(model, &q));
    }
    q.path_on(gpu)?;
    Ok(q)
}

/// Roofline time of a quantised GEMM (m × k by k × n) on `c`, µs: the curves' shape
/// and anchor ([`Curves::gemm_us`](super::kernels::Curves::gemm_us)) at the format's
/// peak FLOP/s, with its bytes per weight and per input activation (outputs 16-bit).
pub fn gemm_us(c: &super::kernels::Curves, f: &GemmFormat, m: f64, n: f64, k: f64) -> f64 {
    let eta = c.anchor.gemm_eta * m / (m + c.shape.gemm_m_half);
    let tc = 2.0 * m * n * k / (f.peak_flops * eta) * 1e6;
    let bytes = f.act_bytes * m * k + f.weight_bytes * n * k + 2.0 * m * n;
    let tm = bytes / (c.peak_bw * c.anchor.gemm_mem_eta) * 1e6;
    let p = c.shape.gemm_ridge_p;
    let hi = tc.max(tm);
    let lo = tc.min(tm);
    c.anchor.gemm_floor_us + hi * (1.0 + (lo / hi).powf(p)).powf(1.0 / p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_param_by_hand() {
        assert_eq!(WeightFormat::Fp8.bytes_per_param(), 1.0);
        // AWQ: 4 bits, plus an fp16 scale (2 B) and a 4-bit zero (0.5 B) per 128.
        assert_eq!(
            WeightFormat::Int4 { group: 128 }.bytes_per_param(),
            0.5 + 2.5 / 128.0
        );
        assert_eq!(WeightFormat::Nvfp4.bytes_per_param(), 0.5625);
        assert_eq!(WeightFormat::Mxfp4.bytes_per_param(), 0.53125);
        assert_eq!(WeightFormat::Nf4.bytes_per_param(), 0.5625);
    }

    #[test]
    fn every_listed_name_parses() {
        for m in METHODS.iter().filter(|m| **m != "compressed-tensors") {
            assert_eq!(Quantization::from_name(m).unwrap().method, *m);
        }
        for k in KV_CACHE_DTYPES {
            assert!(KvCacheDtype::from_name(k).is_some());
        }
        assert!(Quantization::from_name("compressed-tensors").is_none());
        assert_eq!(KvCacheDtype::Fp8E5m2.bytes(2), 1);
        assert_eq!(KvCacheDtype::Auto.bytes(2), 2);
    }
}
