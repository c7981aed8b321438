//! Writing an imported spec as a TOML file in the style of `models/llm/*.toml`: a
//! comment per derived value and the parameter-count check block, computed.

use super::Imported;
use crate::specs::{MlpKind, ModelSpec};

/// `1234567` as `1,234,567`.
pub(super) fn grouped(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The spec as a TOML file in the style of `models/llm/*.toml`: a comment per derived
/// value and the parameter-count check block.
pub fn to_toml(imp: &Imported, source: &str) -> String {
    let s = &imp.spec;
    let mut out = format!(
        "# {} (model_type {:?}). Imported by `infersim import-model` from {source}.\n\
         # Each value's comment names the config.json field it came from or how it was derived.\n",
        s.name, imp.model_type
    );
    let value = |field: &str| -> String {
        match field {
            "num_layers" => s.num_layers.to_string(),
            "hidden_size" => s.hidden_size.to_string(),
            "intermediate_size" => s.intermediate_size.to_string(),
            "num_heads" => s.num_heads.to_string(),
            "num_kv_heads" => s.num_kv_heads.to_string(),
            "head_dim" => s.head_dim.to_string(),
            "vocab_size" => s.vocab_size.to_string(),
            "tied_embeddings" => s.tied_embeddings.to_string(),
            "max_context" => s.max_context.to_string(),
            "dtype_bytes" => s.dtype_bytes.to_string(),
            "mlp" => match s.mlp {
                MlpKind::Gated => "\"gated\"".into(),
                MlpKind::Plain => "\"plain\"".into(),
            },
            "attention_bias" => s.attention_bias.to_string(),
            "sliding_window" => s.sliding_window.to_string(),
            "sliding_window_layers" => s.sliding_window_layers.to_string(),
            "learned_position_embeddings" => s.learned_position_embeddings.to_string(),
            "model_card_params_b" => "0.0".into(),
            "chunked_window" => s.chunked_window.to_string(),
            "quantization" => format!("{:?}", s.quantization.as_deref().unwrap_or_default()),
            "quantization_scheme" => {
                format!("{:?}", s.quantization_scheme.as_deref().unwrap_or_default())
            }
            f => super::write_sparse::table_value(s, f)
                .unwrap_or_else(|| unreachable!("every note names a spec field")),
        }
    };
    out += &format!("name = {:?}\n", s.name);
    out += &format!("hf_repo = {:?}\n", s.hf_repo);
    let line = |out: &mut String, key: &str, field: &str, note: &str| {
        let line = format!("{key} = {}", value(field));
        if note.is_empty() {
            *out += &format!("{line}\n");
        } else {
            *out += &format!("{line:<34} # {note}\n");
        }
    };
    // Top-level keys first, then the `[moe]` and `[mla]` tables (TOML's order).
    for (field, note) in imp.notes.iter().filter(|(f, _)| !f.contains('.')) {
        line(&mut out, field, field, note);
    }
    if s.moe.is_some() {
        out += "# model_card_active_params_b = ?       # MoE: active parameters per token, from the model card\n";
    }
    for table in ["moe", "mla"] {
        let prefix = format!("{table}.");
        let mut fields = imp
            .notes
            .iter()
            .filter(|(f, _)| f.starts_with(&prefix))
            .peekable();
        if fields.peek().is_some() {
            out += &format!("\n[{table}]\n");
        }
        for (field, note) in fields {
            line(&mut out, &field[prefix.len()..], field, note);
        }
    }
    out += &param_block(s);
    out
}

/// The parameter check block, computed from the spec (equal to
/// [`ModelSpec::param_count`]).
pub fn param_block(s: &ModelSpec) -> String {
    if s.moe.is_some() || s.mla.is_some() {
        return super::write_sparse::param_block(s);
    }
    let d = s.hidden_size;
    let (h, kvh, hd, i, v) = (
        s.num_heads as u64,
        s.num_kv_heads as u64,
        s.head_dim,
        s.intermediate_size,
        s.vocab_size,
    );
    let (qw, kvw) = (h * hd, kvh * hd);
    let row = |label: &str, expr: String, n: u64| {
        format!("#   {label:<29}= {expr:<18}= {:>15}\n", grouped(n))
    };
    let mut b = format!(
        "\n# Parameter check (weights only; norms and biases ignored; d={d}, q width = H*hd = {qw}, kv width = KVH*hd = {kvw}):\n"
    );
    b += &row("token embedding  V*d", format!("{v}*{d}"), v * d);
    if s.learned_position_embeddings > 0 {
        let pe = s.learned_position_embeddings;
        b += &row("position table   P*d", format!("{pe}*{d}"), pe * d);
    }
    b += &row("per layer: q     d*(H*hd)", format!("{d}*{qw}"), d * qw);
    b += &row(
        "           k,v   2*d*(KVH*hd)",
        format!("2*{d}*{kvw}"),
        2 * d * kvw,
    );
    b += &row("           o     (H*hd)*d", format!("{qw}*{d}"), qw * d);
    let (m, mlp) = match s.mlp {
        MlpKind::Gated => (3, "3*d*I"),
        MlpKind::Plain => (2, "2*d*I"),
    };
    b += &row(
        &format!("           MLP   {mlp}"),
        format!("{m}*{d}*{i}"),
        m * d * i,
    );
    let layer = s.layer_dense_params();
    b += &format!(
        "#              layer total{:<27}= {:>15}  x {} = {}\n",
        "",
        grouped(layer),
        s.num_layers,
        grouped(s.dense_params())
    );
    if s.tied_embeddings {
        b += &format!("#   {:<49}= {:>15}\n", "LM head: tied", 0);
    } else {
        b += &row("LM head (untied) V*d", format!("{v}*{d}"), v * d);
    }
    let total = s.param_count();
    b += &format!(
        "#   total{:<44}= {:>15}  ({:.4} B)\n",
        "",
        grouped(total),
        total as f64 / 1e9
    );
    b
}
