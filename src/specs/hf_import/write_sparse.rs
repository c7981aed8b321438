//! The TOML writer's part for mixture-of-experts and MLA specs: the values of the
//! `[moe]` and `[mla]` tables, and a parameter check block that spells out the
//! expert, shared-expert, router and latent-attention terms, total and active.

use super::write::grouped;
use crate::specs::{MlpKind, ModelSpec};

/// The TOML value of a `moe.*` or `mla.*` field.
pub(super) fn table_value(s: &ModelSpec, field: &str) -> Option<String> {
    let m = s.moe.as_ref();
    let a = s.mla.as_ref();
    Some(match field {
        "moe.num_experts" => m?.num_experts.to_string(),
        "moe.experts_per_token" => m?.experts_per_token.to_string(),
        "moe.expert_intermediate_size" => m?.expert_intermediate_size.to_string(),
        "moe.shared_expert_intermediate_size" => m?.shared_expert_intermediate_size.to_string(),
        "moe.first_dense_layers" => m?.first_dense_layers.to_string(),
        "moe.layer_step" => m?.layer_step.to_string(),
        "mla.q_lora_rank" => a?.q_lora_rank.to_string(),
        "mla.kv_lora_rank" => a?.kv_lora_rank.to_string(),
        "mla.qk_nope_head_dim" => a?.qk_nope_head_dim.to_string(),
        "mla.qk_rope_head_dim" => a?.qk_rope_head_dim.to_string(),
        "mla.v_head_dim" => a?.v_head_dim.to_string(),
        _ => return None,
    })
}

fn row(label: &str, expr: String, n: u64) -> String {
    format!("#   {label:<36}= {expr:<22}= {:>15}\n", grouped(n))
}

/// The parameter check block of a MoE or MLA spec, computed from it (its total is
/// [`ModelSpec::param_count`], its active line [`ModelSpec::active_param_count`]).
pub(super) fn param_block(s: &ModelSpec) -> String {
    let d = s.hidden_size;
    let (h, v, l) = (s.num_heads as u64, s.vocab_size, s.num_layers as u64);
    let mut b = format!(
        "\n# Parameter check (weights only; norms and biases ignored; d={d}, H={h}, L={l}):\n"
    );
    b += &row("token embedding  V*d", format!("{v}*{d}"), v * d);
    match &s.mla {
        Some(a) => {
            let qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
            if a.q_lora_rank == 0 {
                b += &row(
                    "per layer: q     d*H*(nope+rope)",
                    format!("{d}*{h}*{qk}"),
                    d * h * qk,
                );
            } else {
                let r = a.q_lora_rank;
                b += &row("per layer: q_a   d*q_lora", format!("{d}*{r}"), d * r);
                b += &row(
                    "           q_b   q_lora*H*(nope+rope)",
                    format!("{r}*{h}*{qk}"),
                    r * h * qk,
                );
            }
            let kr = a.kv_lora_rank + a.qk_rope_head_dim;
            b += &row(
                "           kv_a  d*(kv_lora+rope)",
                format!("{d}*{kr}"),
                d * kr,
            );
            let nv = a.qk_nope_head_dim + a.v_head_dim;
            b += &row(
                "           kv_b  kv_lora*H*(nope+v)",
                format!("{}*{h}*{nv}", a.kv_lora_rank),
                a.kv_lora_rank * h * nv,
            );
            b += &row(
                "           o     H*v*d",
                format!("{h}*{}*{d}", a.v_head_dim),
                h * a.v_head_dim * d,
            );
        }
        None => {
            let (qw, kvw) = (h * s.head_dim, s.num_kv_heads as u64 * s.head_dim);
            b += &row("per layer: q     d*(H*hd)", format!("{d}*{qw}"), d * qw);
            b += &row(
                "           k,v   2*d*(KVH*hd)",
                format!("2*{d}*{kvw}"),
                2 * d * kvw,
            );
            b += &row("           o     (H*hd)*d", format!("{qw}*{d}"), qw * d);
        }
    }
    let attn = s.layer_attn_params();
    b += &format!(
        "#   attention, all layers{:<38}= {:>15}  x {l} = {}\n",
        "",
        grouped(attn),
        grouped(attn * l)
    );
    let m3 = match s.mlp {
        MlpKind::Gated => 3,
        MlpKind::Plain => 2,
    };
    let moe_l = s.moe_layers() as u64;
    let dense_l = l - moe_l;
    if dense_l > 0 {
        let i = s.intermediate_size;
        b += &format!(
            "#   {:<36}= {:<22}= {:>15}  x {dense_l} dense layers = {}\n",
            format!("dense MLP {m3}*d*I"),
            format!("{m3}*{d}*{i}"),
            grouped(m3 * d * i),
            grouped(m3 * d * i * dense_l)
        );
    }
    if let Some(m) = &s.moe {
        let (e, k, ie, is) = (
            m.num_experts as u64,
            m.experts_per_token as u64,
            m.expert_intermediate_size,
            m.shared_expert_intermediate_size,
        );
        let expert = s.expert_params();
        b += &row(
            "per MoE layer: one expert",
            format!("{m3}*{d}*{ie}"),
            expert,
        );
        b += &row(
            "           routed experts E*expert",
            format!("{e}*{}", grouped(expert)),
            e * expert,
        );
        if is > 0 {
            b += &row(
                "           shared experts",
                format!("{m3}*{d}*{is}"),
                s.mlp_params(is),
            );
        }
        b += &row("           router  d*E", format!("{d}*{e}"), d * e);
        let layer = s.moe_layer_shared_params() + e * expert;
        b += &format!(
            "#              MoE layer total{:<30}= {:>15}  x {moe_l} MoE layers = {}\n",
            "",
            grouped(layer),
            grouped(layer * moe_l)
        );
        let active_layer = s.moe_layer_shared_params() + k * expert;
        b += &format!(
            "#   active per MoE layer: top-{k} experts + shared + router = {}\n",
            grouped(active_layer)
        );
    }
    if s.tied_embeddings {
        b += &format!("#   {:<60}= {:>15}\n", "LM head: tied", 0);
    } else {
        b += &row("LM head (untied) V*d", format!("{v}*{d}"), v * d);
    }
    let total = s.param_count();
    b += &format!(
        "#   total{:<55}= {:>15}  ({:.4} B)\n",
        "",
        grouped(total),
        total as f64 / 1e9
    );
    let active = s.active_param_count();
    b += &format!(
        "#   active per token (embeddings, attention, dense MLPs, top-k and shared experts) = {}  ({:.4} B)\n",
        grouped(active),
        active as f64 / 1e9
    );
    b
}
