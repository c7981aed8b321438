//! The parts of a Hugging Face `config.json` beyond a dense decoder (issue 15, item 1):
//! mixture-of-experts MLPs (Mixtral, Phi-3.5-MoE, Qwen2-MoE, Qwen3-MoE, DeepSeek-V2/V3,
//! gpt-oss, Llama 4), multi-head latent attention (DeepSeek), Llama 4's chunked local
//! attention, and the checkpoint's `quantization_config`, recorded under vLLM's
//! method name (the format is priced elsewhere; here it is only read). Each value
//! keeps a note of the config field it came from, as the dense reader's do.
//!
//! Sources of the field semantics (read, not copied): transformers' configuration and
//! modelling files of each architecture (`MixtralConfig`, `Qwen2MoeConfig.decoder_sparse_step`
//! / `mlp_only_layers`, `DeepseekV3Config.first_k_dense_replace` / `moe_layer_freq`,
//! `Llama4TextConfig.interleave_moe_layer_step` / `no_rope_layers`, `GptOssConfig`), and
//! vLLM's `QUANTIZATION_METHODS` list for the quantisation names.

use super::Cfg;
use crate::error::ConfigError;
use crate::specs::{MlaSpec, ModelSpec, MoeSpec};
use serde_json::{Map, Value};

/// Notes, as the dense reader keeps them: (spec field, how it was derived).
pub(super) type Notes = Vec<(&'static str, String)>;

/// `model_type`s whose MLP is a mixture of experts.
pub(super) const MOE_TYPES: &[&str] = &[
    "mixtral",
    "phimoe",
    "qwen2_moe",
    "qwen3_moe",
    "deepseek_v2",
    "deepseek_v3",
    "gpt_oss",
    "llama4",
    "llama4_text",
];

/// Hugging Face `quant_method` values and the vLLM method name each maps to (vLLM's
/// `QUANTIZATION_METHODS`; most are spelled the same).
const QUANT_METHODS: &[(&str, &str)] = &[
    ("fp8", "fp8"),
    ("fbgemm_fp8", "fbgemm_fp8"),
    ("awq", "awq"),
    ("gptq", "gptq"),
    ("compressed-tensors", "compressed-tensors"),
    ("compressed_tensors", "compressed-tensors"),
    ("mxfp4", "mxfp4"),
    ("bitsandbytes", "bitsandbytes"),
    ("gguf", "gguf"),
    ("aqlm", "aqlm"),
    ("hqq", "hqq"),
    ("quark", "quark"),
    ("torchao", "torchao"),
    ("auto-round", "auto-round"),
    ("experts_int8", "experts_int8"),
    ("marlin", "marlin"),
    ("bitblas", "bitblas"),
    ("gptq_marlin", "gptq_marlin"),
    ("awq_marlin", "awq_marlin"),
];

/// The checkpoint's quantisation from `quantization_config.quant_method`, as vLLM
/// names it, with its note; `None` without a `quantization_config`.
pub(super) fn quantization(
    top: &Map<String, Value>,
    file: &str,
) -> Result<Option<(String, String)>, ConfigError> {
    let Some(q) = top.get("quantization_config").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let err = |field: &str, msg: String| {
        ConfigError::new(file, format!("quantization_config.{field}"), msg)
    };
    let known = || {
        QUANT_METHODS
            .iter()
            .map(|(m, _)| *m)
            .chain(["modelopt"])
            .collect::<Vec<_>>()
            .join(", ")
    };
    let method = q
        .get("quant_method")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            err(
                "quant_method",
                format!("missing (or not a string); allowed: {}", known()),
            )
        })?;
    // NVIDIA ModelOpt checkpoints say which format in `quant_algo`; vLLM has one
    // method per format.
    if method == "modelopt" {
        let algo = q.get("quant_algo").and_then(Value::as_str).unwrap_or("FP8");
        let name = if algo.eq_ignore_ascii_case("nvfp4") {
            "modelopt_fp4"
        } else {
            "modelopt"
        };
        return Ok(Some((
            name.to_string(),
            format!("config.json: quantization_config.quant_method = \"modelopt\", quant_algo = {algo:?} -> vLLM method {name:?}"),
        )));
    }
    let Some((_, vllm)) = QUANT_METHODS.iter().find(|(m, _)| *m == method) else {
        return Err(err(
            "quant_method",
            format!("got {method:?}, allowed: {}", known()),
        ));
    };
    let bits = q
        .get("bits")
        .and_then(Value::as_u64)
        .map(|b| format!(", bits = {b}"))
        .unwrap_or_default();
    Ok(Some((
        vllm.to_string(),
        format!("config.json: quantization_config.quant_method = {method:?}{bits} -> vLLM method {vllm:?}"),
    )))
}

/// The compressed-tensors scheme of `quantization_config.config_groups` (llm-compressor
/// checkpoints), as `cost::quant::SCHEMES` names it, with its note; `None` without
/// `config_groups` (the engine then names the scheme). The selection follows vLLM's
/// `CompressedTensorsConfig._get_scheme_from_parts`: `weights.type` "int" with 8 bits
/// and 8-bit `input_activations` → W8A8 INT8; "float" 8 bits with activations → W8A8
/// FP8; "float" 4 bits with group 16 (`format` "nvfp4-pack-quantized") → NVFP4;
/// weights only ("int", 4 or 8 bits, no `input_activations`) → W4A16 / W8A16. Every
/// group must give the same scheme (a mixed checkpoint is refused).
fn compressed_scheme(
    top: &Map<String, Value>,
    file: &str,
) -> Result<Option<(String, String)>, ConfigError> {
    let q = &top["quantization_config"];
    let Some(groups) = q.get("config_groups").and_then(Value::as_object) else {
        return Ok(None);
    };
    let mut found: Option<(String, String)> = None;
    for (name, g) in groups {
        let field = format!("quantization_config.config_groups.{name}");
        let err = |msg: String| ConfigError::new(file, field.clone(), msg);
        let w = g
            .get("weights")
            .filter(|v| v.is_object())
            .ok_or_else(|| err("missing \"weights\" (the weights' quantization args)".into()))?;
        let bits = w.get("num_bits").and_then(Value::as_u64).unwrap_or(0);
        let ty = w.get("type").and_then(Value::as_str).unwrap_or("int");
        let acts = g.get("input_activations").is_some_and(|v| !v.is_null());
        let group = w.get("group_size").and_then(Value::as_u64);
        let scheme = match (ty, bits, acts) {
            ("int", 8, true) => "w8a8-int8",
            ("float", 8, true) => "w8a8-fp8",
            ("float", 4, _) if group == Some(16) => "nvfp4",
            ("int", 4, false) => "w4a16",
            ("int", 8, false) => "w8a16",
            _ => {
                return Err(err(format!(
                    "weights type {ty:?}, num_bits {bits}, input_activations {}: a scheme not priced here; priced: int 8-bit with 8-bit activations (w8a8-int8), float 8-bit with activations (w8a8-fp8), float 4-bit group 16 (nvfp4), int 4- or 8-bit weight-only (w4a16, w8a16)",
                    if acts { "present" } else { "absent" }
                )))
            }
        };
        let fmt = q.get("format").and_then(Value::as_str).unwrap_or("?");
        let strategy = w.get("strategy").and_then(Value::as_str).unwrap_or("?");
        let note = format!(
            "config.json: quantization_config.config_groups.{name}: weights {ty} {bits}-bit ({strategy}{}), input_activations {}, format {fmt:?} -> scheme {scheme:?}",
            group.map(|g| format!(", group_size {g}")).unwrap_or_default(),
            if acts { "present" } else { "absent" }
        );
        match &found {
            Some((s, _)) if s != scheme => {
                return Err(err(format!(
                    "scheme {scheme:?}, but another group is {s:?}; a checkpoint mixing schemes is not priced here"
                )))
            }
            Some(_) => {}
            None => found = Some((scheme.to_string(), note)),
        }
    }
    Ok(found)
}

/// Whether layer `i` of `n` has a MoE MLP under the architecture's own rule.
fn moe_layer_rule(cfg: &Cfg, model_type: &str, n: u32) -> Result<(Vec<bool>, String), ConfigError> {
    let p = cfg.prefix;
    Ok(match model_type {
        "qwen2_moe" | "qwen3_moe" => {
            let step = cfg.uint_opt("decoder_sparse_step")?.unwrap_or(1).max(1) as u32;
            let only: Vec<u64> = match cfg.get("mlp_only_layers") {
                None => Vec::new(),
                Some(v) => v
                    .as_array()
                    .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| {
                        cfg.err(
                            "mlp_only_layers",
                            format!("got {v}, allowed: a list of layer indices"),
                        )
                    })?,
            };
            (
                (0..n)
                    .map(|i| !only.contains(&(i as u64)) && (i + 1) % step == 0)
                    .collect(),
                format!(
                    "{p}decoder_sparse_step = {step}, {p}mlp_only_layers = {only:?}: layer i is MoE when not listed and (i + 1) % {step} == 0"
                ),
            )
        }
        "deepseek_v2" | "deepseek_v3" => {
            let first = cfg.uint_opt("first_k_dense_replace")?.unwrap_or(0) as u32;
            let freq = cfg.uint_opt("moe_layer_freq")?.unwrap_or(1).max(1) as u32;
            (
                (0..n).map(|i| i >= first && i % freq == 0).collect(),
                format!(
                    "{p}first_k_dense_replace = {first}, {p}moe_layer_freq = {freq}: layer i is MoE when i >= {first} and i % {freq} == 0"
                ),
            )
        }
        "llama4" | "llama4_text" => {
            let step = cfg
                .uint_opt("interleave_moe_layer_step")?
                .unwrap_or(1)
                .max(1) as u32;
            (
                (0..n).map(|i| (i + 1) % step == 0).collect(),
                format!("{p}interleave_moe_layer_step = {step}: layer i is MoE when (i + 1) % {step} == 0"),
            )
        }
        _ => (vec![true; n as usize], "every layer's MLP is a MoE".into()),
    })
}

/// The MoE MLP of a MoE `model_type`, with notes (`moe.*` fields); `None` for a
/// dense one.
pub(super) fn moe(
    cfg: &Cfg,
    model_type: &str,
    n: u32,
) -> Result<Option<(MoeSpec, Notes)>, ConfigError> {
    if !MOE_TYPES.contains(&model_type) {
        return Ok(None);
    }
    let p = cfg.prefix;
    let mut notes: Notes = Vec::new();
    let experts_field = match model_type {
        "qwen2_moe" | "qwen3_moe" => "num_experts",
        "deepseek_v2" | "deepseek_v3" => "n_routed_experts",
        _ => "num_local_experts",
    };
    let num_experts =
        u32::try_from(cfg.uint(experts_field)?).map_err(|_| cfg.err(experts_field, "too large"))?;
    notes.push((
        "moe.num_experts",
        format!("config.json: {p}{experts_field} = {num_experts}"),
    ));
    // gpt-oss spells top-k `experts_per_token` (its configs carry both).
    let k_field = if model_type == "gpt_oss" && cfg.get("num_experts_per_tok").is_none() {
        "experts_per_token"
    } else {
        "num_experts_per_tok"
    };
    let k = u32::try_from(cfg.uint(k_field)?).map_err(|_| cfg.err(k_field, "too large"))?;
    notes.push((
        "moe.experts_per_token",
        format!("config.json: {p}{k_field} = {k} (top-k)"),
    ));
    let width_field = match model_type {
        "mixtral" | "phimoe" | "gpt_oss" | "llama4" | "llama4_text" => "intermediate_size",
        _ => "moe_intermediate_size",
    };
    let width = cfg.uint(width_field)?;
    let bias = if model_type == "gpt_oss" {
        "; gpt-oss experts and router carry biases (E*(2*I + d) + E per layer, under 0.05 %, left out)"
    } else {
        ""
    };
    notes.push((
        "moe.expert_intermediate_size",
        format!("config.json: {p}{width_field} = {width}; each expert a gated MLP (3*d*I){bias}"),
    ));
    let (shared, note) = match model_type {
        "qwen2_moe" => {
            let s = cfg.uint("shared_expert_intermediate_size")?;
            (s, format!("config.json: {p}shared_expert_intermediate_size = {s} (its sigmoid gate, d weights, left out)"))
        }
        "deepseek_v2" | "deepseek_v3" => {
            let s = cfg.uint_opt("n_shared_experts")?.unwrap_or(0);
            (
                s * width,
                format!(
                    "config.json: {p}n_shared_experts * {p}moe_intermediate_size = {s} * {width}"
                ),
            )
        }
        "llama4" | "llama4_text" => (
            width,
            format!(
                "Llama 4: one shared expert of {p}intermediate_size = {width} in every MoE layer"
            ),
        ),
        _ => (0, format!("{model_type} has no shared expert")),
    };
    notes.push(("moe.shared_expert_intermediate_size", note));
    let (is_moe, rule) = moe_layer_rule(cfg, model_type, n)?;
    let count = is_moe.iter().filter(|&&m| m).count() as u32;
    let first = is_moe.iter().take_while(|&&m| !m).count() as u32;
    // The spec's form: `first` dense layers, then every `step`-th layer a MoE one.
    let (first, step) = if count == 0 {
        return Err(cfg.err(
            experts_field,
            format!("{rule}: no layer of {n} is a MoE layer"),
        ));
    } else if count == n - first {
        (first, 1)
    } else {
        let step = n / count;
        (0, step)
    };
    if (n - first) / step != count {
        return Err(cfg.err(
            experts_field,
            format!("{rule}: {count} MoE layers of {n}, a pattern infersim cannot state (leading dense layers, then every k-th layer MoE)"),
        ));
    }
    notes.push((
        "moe.first_dense_layers",
        format!("{rule} -> {count} MoE layers of {n}"),
    ));
    notes.push(("moe.layer_step", String::new()));
    Ok(Some((
        MoeSpec {
            num_experts,
            experts_per_token: k,
            expert_intermediate_size: width,
            shared_expert_intermediate_size: shared,
            first_dense_layers: first,
            layer_step: step,
        },
        notes,
    )))
}

/// DeepSeek's multi-head latent attention, with notes (`mla.*` fields).
pub(super) fn mla(cfg: &Cfg, model_type: &str) -> Result<Option<(MlaSpec, Notes)>, ConfigError> {
    if !model_type.starts_with("deepseek_v") {
        return Ok(None);
    }
    let p = cfg.prefix;
    let mut notes: Notes = Vec::new();
    let q = cfg.uint_opt("q_lora_rank")?;
    notes.push((
        "mla.q_lora_rank",
        match q {
            Some(q) => format!("config.json: {p}q_lora_rank = {q}"),
            None => format!("config.json: {p}q_lora_rank = null -> 0, queries projected directly"),
        },
    ));
    let mut get = |field: &'static str, key: &'static str| -> Result<u64, ConfigError> {
        let v = cfg.uint(field)?;
        notes.push((key, format!("config.json: {p}{field} = {v}")));
        Ok(v)
    };
    let kv = get("kv_lora_rank", "mla.kv_lora_rank")?;
    let nope = get("qk_nope_head_dim", "mla.qk_nope_head_dim")?;
    let rope = get("qk_rope_head_dim", "mla.qk_rope_head_dim")?;
    let v = get("v_head_dim", "mla.v_head_dim")?;
    Ok(Some((
        MlaSpec {
            q_lora_rank: q.unwrap_or(0),
            kv_lora_rank: kv,
            qk_nope_head_dim: nope,
            qk_rope_head_dim: rope,
            v_head_dim: v,
        },
        notes,
    )))
}

/// Llama 4's chunked attention: (chunk, chunked layers, notes). The RoPE layers
/// (`no_rope_layers[i] = 1`; by default all but every `no_rope_layer_interval`-th,
/// 4) attend within chunks of `attention_chunk_size`; the NoPE layers are global.
pub(super) fn llama4_chunks(
    cfg: &Cfg,
    n: u32,
) -> Result<(u64, u32, (String, String)), ConfigError> {
    let p = cfg.prefix;
    let Some(chunk) = cfg.uint_opt("attention_chunk_size")?.filter(|&c| c > 0) else {
        return Ok((
            0,
            0,
            (
                format!("config.json: {p}attention_chunk_size absent -> every layer global"),
                String::new(),
            ),
        ));
    };
    let list = cfg
        .get("no_rope_layers")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    let (k, how) = match list {
        Some(a) => {
            if a.len() != n as usize {
                return Err(cfg.err(
                    "no_rope_layers",
                    format!("has {} entries, num_hidden_layers = {n}", a.len()),
                ));
            }
            let mut k = 0;
            for (i, v) in a.iter().enumerate() {
                match v.as_u64() {
                    Some(1) => k += 1,
                    Some(0) => {}
                    _ => {
                        return Err(cfg.err(
                            &format!("no_rope_layers[{i}]"),
                            format!("got {v}, allowed: 0 (NoPE, global) or 1 (RoPE, chunked)"),
                        ))
                    }
                }
            }
            (k, format!("config.json: {p}no_rope_layers marks {k} of {n} layers RoPE (chunked); the NoPE layers are global"))
        }
        None => {
            let every = cfg.uint_opt("no_rope_layer_interval")?.unwrap_or(4).max(1) as u32;
            let k = n - n / every;
            (k, format!("no no_rope_layers -> every {every}th layer NoPE (global): {n} - {} = {k} chunked", n / every))
        }
    };
    Ok((
        chunk,
        k,
        (
            format!("config.json: {p}attention_chunk_size = {chunk} (chunked, see chunked_window)"),
            how,
        ),
    ))
}

/// Sets the spec's MoE, MLA, chunked-window and quantisation fields from the config,
/// appending their notes (top-level fields first, then the `moe.*` and `mla.*` tables).
pub(super) fn extend(
    cfg: &Cfg,
    model_type: &str,
    top: &Map<String, Value>,
    spec: &mut ModelSpec,
    notes: &mut Notes,
) -> Result<(), ConfigError> {
    if model_type.starts_with("llama4") && spec.sliding_window > 0 {
        spec.chunked_window = true;
        notes.push((
            "chunked_window",
            "Llama 4 chunked local attention: a token sees the keys of its own chunk".into(),
        ));
    }
    if let Some((q, note)) = quantization(top, cfg.file)? {
        let ct = q == "compressed-tensors";
        spec.quantization = Some(q);
        notes.push(("quantization", note));
        if ct {
            if let Some((scheme, note)) = compressed_scheme(top, cfg.file)? {
                spec.quantization_scheme = Some(scheme);
                notes.push(("quantization_scheme", note));
            }
        }
    }
    if model_type == "gpt_oss" {
        if let Some((_, n)) = notes.iter_mut().find(|(f, _)| *f == "attention_bias") {
            *n += "; gpt-oss also learns one attention-sink logit per head and layer (H scalars, \
                   no measurable cost, left out)";
        }
    }
    if let Some((m, mut n)) = moe(cfg, model_type, spec.num_layers)? {
        spec.moe = Some(m);
        notes.append(&mut n);
    }
    if let Some((a, mut n)) = mla(cfg, model_type)? {
        spec.mla = Some(a);
        notes.append(&mut n);
    }
    Ok(())
}
