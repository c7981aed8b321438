//! A [`ModelSpec`] from a Hugging Face `config.json` (issue 15, item 1):
//! `engine.model = "path/config.json"` and
//! `infersim import-model`. Each derived number keeps a note of the config field it
//! came from or how it was derived, so [`to_toml`] can write a spec file in the style
//! of `models/llm/*.toml`, with the parameter-count check block computed here.
//!
//! Supported `model_type`s: see [`SUPPORTED`]. This file reads the dense decoder;
//! mixture-of-experts, MLA, Llama 4's chunked attention and `quantization_config`
//! are read in `hf_import/sparse.rs`. Architectures with parts not modelled
//! (Mamba layers, ...) are refused with an error that says so.
//!
//! Just over 600 lines: one reader with a note per field for eighteen architectures;
//! the TOML writer is in `hf_import/write.rs` (`write_sparse.rs` for MoE/MLA blocks).

use super::{MlpKind, ModelSpec};
use crate::error::ConfigError;
use serde_json::{Map, Value};
use std::path::Path;

mod sparse;
mod write;
mod write_sparse;
pub use write::{param_block, to_toml};

/// `model_type`s this importer reads, with the `architectures` class names each
/// accepts as a cross-check.
pub const SUPPORTED: &[(&str, &[&str])] = &[
    ("llama", &["LlamaForCausalLM"]),
    ("mistral", &["MistralForCausalLM"]),
    ("qwen2", &["Qwen2ForCausalLM"]),
    ("qwen3", &["Qwen3ForCausalLM"]),
    ("gemma2", &["Gemma2ForCausalLM"]),
    ("gemma3_text", &["Gemma3ForCausalLM"]),
    (
        "gemma3",
        &["Gemma3ForConditionalGeneration", "Gemma3ForCausalLM"],
    ),
    ("phi3", &["Phi3ForCausalLM"]),
    ("opt", &["OPTForCausalLM"]),
    ("mixtral", &["MixtralForCausalLM"]),
    ("phimoe", &["PhiMoEForCausalLM"]),
    ("qwen2_moe", &["Qwen2MoeForCausalLM"]),
    ("qwen3_moe", &["Qwen3MoeForCausalLM"]),
    ("deepseek_v2", &["DeepseekV2ForCausalLM"]),
    ("deepseek_v3", &["DeepseekV3ForCausalLM"]),
    ("gpt_oss", &["GptOssForCausalLM"]),
    (
        "llama4",
        &["Llama4ForConditionalGeneration", "Llama4ForCausalLM"],
    ),
    ("llama4_text", &["Llama4ForCausalLM"]),
];

/// `model_type`s known to need features not modelled yet, with what they need.
const NOT_YET: &[(&str, &str)] = &[
    ("olmoe", "its mixture-of-experts fields are not read yet"),
    (
        "dbrx",
        "its fused mixture-of-experts fields are not read yet",
    ),
    (
        "granitemoe",
        "its mixture-of-experts fields are not read yet",
    ),
    ("jamba", "its Mamba layers are not modelled"),
];

/// Fields whose presence means experts, whatever the `model_type` says.
const EXPERT_FIELDS: &[&str] = &["num_local_experts", "num_experts", "n_routed_experts"];

/// A spec read from a `config.json`, with a note per field saying where its value
/// came from.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The spec.
    pub spec: ModelSpec,
    /// (spec field, how it was derived), in the spec's field order.
    pub notes: Vec<(&'static str, String)>,
    /// The `model_type` it was read as.
    pub model_type: String,
}

/// The spec name a `config.json` path gives: the file stem, or for a file called
/// `config.json` the name of the folder that holds it (Hugging Face snapshots are
/// folders named after the model).
pub fn default_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem == "config" {
        if let Some(dir) = path
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(Path::parent)
            .and_then(Path::file_name)
        {
            return dir.to_string_lossy().into_owned();
        }
    }
    stem
}

/// Reads, imports and checks the `config.json` at `path` (the spec named after
/// [`default_name`]).
pub fn load(path: &Path) -> Result<ModelSpec, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError::new(
            &file,
            "(file)",
            format!("cannot read: {e}"),
        )]
    })?;
    let imported = import(&text, &file, &default_name(path)).map_err(|e| vec![e])?;
    let errs = imported.spec.check_all(&file);
    if errs.is_empty() {
        Ok(imported.spec)
    } else {
        Err(errs)
    }
}

/// The fields of one config object, with the file for messages.
struct Cfg<'a> {
    map: &'a Map<String, Value>,
    file: &'a str,
    /// Prefix for field names (`text_config.` for a nested text model).
    prefix: &'static str,
}

impl Cfg<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, format!("{}{field}", self.prefix), msg)
    }

    /// A present, non-null value.
    fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn uint_opt(&self, field: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                self.err(field, format!("got {v}, allowed: a non-negative integer"))
            }),
        }
    }

    fn uint(&self, field: &str) -> Result<u64, ConfigError> {
        self.uint_opt(field)?.ok_or_else(|| {
            self.err(
                field,
                "missing; a Hugging Face config.json of this model_type has it (a non-negative integer)",
            )
        })
    }

    /// A u32 field (layers, heads), range-checked so the conversion cannot wrap.
    fn uint32(&self, field: &str) -> Result<u32, ConfigError> {
        let v = self.uint(field)?;
        u32::try_from(v)
            .map_err(|_| self.err(field, format!("got {v}, allowed: at most {}", u32::MAX)))
    }

    fn bool_opt(&self, field: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("got {v}, allowed: true or false"))),
        }
    }

    fn str_opt(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }
}

fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the spec `name` from the text of a `config.json` (`file` names it in
/// messages). The spec is not range-checked here; [`load`] does that.
pub fn import(text: &str, file: &str, name: &str) -> Result<Imported, ConfigError> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends "at line L column C"; the location goes in front instead.
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        ConfigError::new(file, "(json)", format!("not valid JSON: {msg}")).at(e.line(), e.column())
    })?;
    let Some(top) = root.as_object() else {
        return Err(ConfigError::new(
            file,
            "(json)",
            "not a Hugging Face config.json: the top level must be an object",
        ));
    };
    let top_cfg = Cfg {
        map: top,
        file,
        prefix: "",
    };
    let model_type = top_cfg
        .str_opt("model_type")
        .ok_or_else(|| {
            top_cfg.err(
                "model_type",
                format!("missing (or not a string); supported: {}", supported_list()),
            )
        })?
        .to_string();
    if let Some((_, needs)) = NOT_YET.iter().find(|(t, _)| *t == model_type) {
        return Err(top_cfg.err(
            "model_type",
            format!(
                "{model_type:?} is not supported: {needs}; supported types: {}",
                supported_list()
            ),
        ));
    }
    let Some((_, classes)) = SUPPORTED.iter().find(|(t, _)| *t == model_type) else {
        return Err(top_cfg.err(
            "model_type",
            format!(
                "unknown model_type {model_type:?}; supported types: {}",
                supported_list()
            ),
        ));
    };
    if let Some(archs) = top.get("architectures").and_then(Value::as_array) {
        let names: Vec<&str> = archs.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() && !names.iter().any(|a| classes.contains(a)) {
            return Err(top_cfg.err(
                "architectures",
                format!(
                    "{names:?} does not match model_type {model_type:?}, which expects {}",
                    classes.join(" or ")
                ),
            ));
        }
    }
    // Gemma 3 and Llama 4 multimodal configs keep the language model in `text_config`.
    let cfg = match (model_type.as_str(), top.get("text_config")) {
        ("gemma3" | "llama4", Some(Value::Object(m))) => Cfg {
            map: m,
            file,
            prefix: "text_config.",
        },
        ("gemma3" | "llama4", _) => {
            return Err(top_cfg.err(
                "text_config",
                format!(
                    "missing; a {model_type} config.json keeps the language model's fields there"
                ),
            ))
        }
        _ => top_cfg,
    };
    if !sparse::MOE_TYPES.contains(&model_type.as_str()) {
        for f in EXPERT_FIELDS {
            if let Some(n) = cfg.uint_opt(f)?.filter(|&n| n > 1) {
                return Err(cfg.err(
                    f,
                    format!(
                        "{n} experts in a config of model_type {model_type:?}, a dense architecture; \
                         mixture-of-experts models have their own model_type ({})",
                        sparse::MOE_TYPES.join(", ")
                    ),
                ));
            }
        }
    }
    build(&cfg, &model_type, top, name)
}

fn build(
    cfg: &Cfg,
    model_type: &str,
    top: &Map<String, Value>,
    name: &str,
) -> Result<Imported, ConfigError> {
    let p = cfg.prefix;
    let mut notes: Vec<(&'static str, String)> = Vec::new();
    let opt = model_type == "opt";
    let gemma = model_type.starts_with("gemma");

    let num_layers = cfg.uint32("num_hidden_layers")?;
    notes.push((
        "num_layers",
        format!("config.json: {p}num_hidden_layers = {num_layers}"),
    ));
    let hidden_size = cfg.uint("hidden_size")?;
    notes.push((
        "hidden_size",
        format!("config.json: {p}hidden_size = {hidden_size}"),
    ));
    if opt {
        if let Some(w) = cfg.uint_opt("word_embed_proj_dim")? {
            if w != hidden_size {
                return Err(cfg.err(
                    "word_embed_proj_dim",
                    format!("{w} differs from hidden_size = {hidden_size}: OPT's project_in/out matrices are not modelled"),
                ));
            }
        }
    }
    let mlp_field = match model_type {
        "opt" => "ffn_dim",
        // Llama 4: `intermediate_size` is an expert's width, the dense MLPs' is this.
        "llama4" | "llama4_text" => "intermediate_size_mlp",
        _ => "intermediate_size",
    };
    let intermediate_size = cfg.uint(mlp_field)?;
    notes.push((
        "intermediate_size",
        format!("config.json: {p}{mlp_field} = {intermediate_size}"),
    ));
    let num_heads = cfg.uint32("num_attention_heads")?;
    notes.push((
        "num_heads",
        format!("config.json: {p}num_attention_heads = {num_heads}"),
    ));
    let num_kv_heads = match cfg.uint_opt("num_key_value_heads")? {
        Some(k) => {
            let k = u32::try_from(k)
                .map_err(|_| cfg.err("num_key_value_heads", format!("got {k}, too large")))?;
            notes.push((
                "num_kv_heads",
                format!("config.json: {p}num_key_value_heads = {k}"),
            ));
            k
        }
        None => {
            notes.push((
                "num_kv_heads",
                "no num_key_value_heads in config.json -> equals num_attention_heads (plain MHA)"
                    .into(),
            ));
            num_heads
        }
    };
    if num_heads == 0 {
        return Err(cfg.err("num_attention_heads", "got 0, allowed: at least 1"));
    }
    let mla_qk = match (
        cfg.uint_opt("qk_nope_head_dim")?,
        cfg.uint_opt("qk_rope_head_dim")?,
    ) {
        (Some(a), Some(b)) if model_type.starts_with("deepseek_v") => Some((a, b)),
        _ => None,
    };
    let head_dim = match cfg.uint_opt("head_dim")? {
        _ if mla_qk.is_some() => {
            let (a, b) = mla_qk.unwrap_or_default();
            notes.push((
                "head_dim",
                format!("MLA: a query/key head is qk_nope_head_dim + qk_rope_head_dim = {a} + {b} (the cache holds the latent, see [mla])"),
            ));
            a + b
        }
        Some(h) => {
            notes.push(("head_dim", format!("config.json: {p}head_dim = {h}")));
            h
        }
        None => {
            if hidden_size % num_heads as u64 != 0 {
                return Err(cfg.err(
                    "head_dim",
                    format!("missing, and hidden_size = {hidden_size} is not a multiple of num_attention_heads = {num_heads}"),
                ));
            }
            let h = hidden_size / num_heads as u64;
            notes.push((
                "head_dim",
                format!("no head_dim in config.json -> hidden_size / num_heads = {hidden_size} / {num_heads}"),
            ));
            h
        }
    };
    let vocab_size = cfg.uint("vocab_size")?;
    notes.push((
        "vocab_size",
        format!("config.json: {p}vocab_size = {vocab_size}"),
    ));
    // transformers' per-architecture default: Gemma and OPT tie, the others do not.
    let tie_default = gemma || opt;
    let tied_embeddings = match cfg.bool_opt("tie_word_embeddings")? {
        Some(t) => {
            notes.push((
                "tied_embeddings",
                format!("config.json: {p}tie_word_embeddings = {t}"),
            ));
            t
        }
        None => match top.get("tie_word_embeddings").and_then(Value::as_bool) {
            Some(t) if !p.is_empty() => {
                notes.push((
                    "tied_embeddings",
                    format!("config.json: tie_word_embeddings = {t}"),
                ));
                t
            }
            _ => {
                notes.push((
                    "tied_embeddings",
                    format!("no tie_word_embeddings in config.json -> the {model_type} default, {tie_default}"),
                ));
                tie_default
            }
        },
    };
    let max_context = cfg.uint("max_position_embeddings")?;
    notes.push((
        "max_context",
        format!("config.json: {p}max_position_embeddings = {max_context}"),
    ));
    let (dtype_field, dtype) = match (top.get("torch_dtype"), top.get("dtype")) {
        (Some(Value::String(s)), _) => ("torch_dtype", s.as_str()),
        (_, Some(Value::String(s))) => ("dtype", s.as_str()),
        _ => {
            return Err(ConfigError::new(
                cfg.file,
                "torch_dtype",
                "missing; allowed: \"bfloat16\", \"float16\" or \"float32\"",
            ))
        }
    };
    let dtype_bytes = match dtype {
        "bfloat16" | "float16" => 2,
        "float32" => 4,
        other => {
            return Err(ConfigError::new(
                cfg.file,
                dtype_field,
                format!("got {other:?}, allowed: \"bfloat16\", \"float16\" or \"float32\" (quantised formats are issue 15 item 5, not there yet)"),
            ))
        }
    };
    notes.push((
        "dtype_bytes",
        format!("config.json: {dtype_field} = {dtype:?}"),
    ));
    let act = cfg
        .str_opt("hidden_activation")
        .or_else(|| cfg.str_opt("hidden_act"))
        .or_else(|| cfg.str_opt("activation_function"))
        .unwrap_or("?");
    let mlp = if opt {
        notes.push(("mlp", format!("OPT: fc1 -> {act} -> fc2 (2 matrices)")));
        MlpKind::Plain
    } else {
        let fused = if model_type == "phi3" {
            " (phi3's fused gate_up_proj has the same shapes)"
        } else {
            ""
        };
        notes.push((
            "mlp",
            format!("activation {act}; gated gate/up/down, 3 matrices{fused}"),
        ));
        MlpKind::Gated
    };
    let attention_bias = match model_type {
        "qwen2" | "qwen2_moe" => {
            notes.push((
                "attention_bias",
                "Qwen2 architecture: q/k/v projections have biases".into(),
            ));
            true
        }
        "opt" => {
            let b = cfg.bool_opt("enable_bias")?.unwrap_or(true);
            notes.push((
                "attention_bias",
                format!("OPT enable_bias = {b} (default true)"),
            ));
            b
        }
        "phi3" => {
            notes.push(("attention_bias", "Phi-3 qkv_proj has no bias".into()));
            false
        }
        _ => {
            let b = cfg.bool_opt("attention_bias")?;
            notes.push((
                "attention_bias",
                match b {
                    Some(b) => format!("config.json: {p}attention_bias = {b}"),
                    None => "no attention_bias in config.json -> false".into(),
                },
            ));
            b.unwrap_or(false)
        }
    };
    let (sliding_window, sliding_window_layers, note) = sliding(cfg, model_type, num_layers)?;
    notes.push(("sliding_window", note.0));
    notes.push(("sliding_window_layers", note.1));
    let learned_position_embeddings = if opt {
        notes.push((
            "learned_position_embeddings",
            format!("OPT's learned position table has max_position_embeddings + 2 rows = {max_context} + 2"),
        ));
        max_context + 2
    } else {
        notes.push((
            "learned_position_embeddings",
            "RoPE, no learned position table".into(),
        ));
        0
    };
    let hf_repo = top
        .get("_name_or_path")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(name)
        .to_string();
    let mut spec = ModelSpec {
        name: name.to_string(),
        hf_repo,
        num_layers,
        hidden_size,
        intermediate_size,
        num_heads,
        num_kv_heads,
        head_dim,
        vocab_size,
        tied_embeddings,
        max_context,
        dtype_bytes,
        mlp,
        attention_bias,
        sliding_window,
        sliding_window_layers,
        learned_position_embeddings,
        model_card_params_b: 0.0,
        model_card_active_params_b: None,
        chunked_window: false,
        quantization: None,
        quantization_scheme: None,
        moe: None,
        mla: None,
    };
    sparse::extend(cfg, model_type, top, &mut spec, &mut notes)?;
    notes.push((
        "model_card_params_b",
        "not in config.json: fill in from the model card (0: unknown)".into(),
    ));
    Ok(Imported {
        spec,
        notes,
        model_type: model_type.to_string(),
    })
}

/// (window, sliding layers, (note for each)).
fn sliding(
    cfg: &Cfg,
    model_type: &str,
    n: u32,
) -> Result<(u64, u32, (String, String)), ConfigError> {
    let p = cfg.prefix;
    let none = |why: String| Ok((0, 0, (why, String::new())));
    match model_type {
        "llama" | "opt" | "deepseek_v2" | "deepseek_v3" => {
            return none(format!("{model_type} has no sliding-window attention"))
        }
        "llama4" | "llama4_text" => return sparse::llama4_chunks(cfg, n),
        "qwen2" | "qwen3" | "qwen2_moe" | "qwen3_moe"
            if cfg.bool_opt("use_sliding_window")? != Some(true) =>
        {
            return none(format!(
                "config.json: {p}use_sliding_window = false (sliding_window is ignored when disabled)"
            ))
        }
        _ => {}
    }
    let Some(w) = cfg.uint_opt("sliding_window")? else {
        return none(format!(
            "config.json: {p}sliding_window absent or null -> no sliding window"
        ));
    };
    if w == 0 {
        return none(format!("config.json: {p}sliding_window = 0"));
    }
    let wnote = format!("config.json: {p}sliding_window = {w}");
    // An explicit per-layer list wins over every rule.
    if let Some(types) = cfg.get("layer_types") {
        let arr = types.as_array().ok_or_else(|| {
            cfg.err(
                "layer_types",
                "not a list of \"full_attention\" / \"sliding_attention\"",
            )
        })?;
        if arr.len() != n as usize {
            return Err(cfg.err(
                "layer_types",
                format!("has {} entries, num_hidden_layers = {n}", arr.len()),
            ));
        }
        let mut k = 0;
        for (i, t) in arr.iter().enumerate() {
            match t.as_str() {
                Some("sliding_attention") => k += 1,
                Some("full_attention") => {}
                _ => {
                    return Err(cfg.err(
                        &format!("layer_types[{i}]"),
                        format!("got {t}, allowed: \"full_attention\" or \"sliding_attention\""),
                    ))
                }
            }
        }
        return Ok((
            w,
            k,
            (
                wnote,
                format!("config.json: {p}layer_types lists {k} \"sliding_attention\" of {n}"),
            ),
        ));
    }
    Ok(match model_type {
        "gemma2" => {
            let k = n.div_ceil(2);
            (
                w,
                k,
                (
                    wnote,
                    format!(
                        "Gemma 2 alternates: even-numbered layers (from 0) slide -> ceil({n} / 2)"
                    ),
                ),
            )
        }
        "gemma3" | "gemma3_text" => {
            let pat = cfg.uint_opt("sliding_window_pattern")?;
            let pat_v = pat.unwrap_or(6);
            if pat_v == 0 {
                return Err(cfg.err("sliding_window_pattern", "got 0, allowed: at least 1"));
            }
            let full = n as u64 / pat_v;
            let k = n - full as u32;
            let src = match pat {
                Some(v) => format!("config.json: {p}sliding_window_pattern = {v}"),
                None => "no sliding_window_pattern -> the Gemma 3 default, 6".into(),
            };
            (
                w,
                k,
                (
                    wnote,
                    format!("{src}: every {pat_v}th layer is global -> {n} - {full} = {k} sliding"),
                ),
            )
        }
        "qwen2" | "qwen3" | "qwen2_moe" | "qwen3_moe" => {
            let m = cfg
                .uint_opt("max_window_layers")?
                .unwrap_or(0)
                .min(n as u64) as u32;
            (w, n - m, (wnote, format!("use_sliding_window = true: layers from max_window_layers = {m} on slide -> {n} - {m}")))
        }
        _ => (
            w,
            n,
            (
                wnote,
                format!("{model_type} applies the window on every layer (all {n})"),
            ),
        ),
    })
}
