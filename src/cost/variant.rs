//! Layer variants that change the kernel model's shapes: multi-head latent
//! attention (MLA, DeepSeek-V2/V3), Llama 4's chunked attention in window layers,
//! and mixture-of-experts MLPs (whose work and time live in [`super::moe`]). Dense
//! models with full or sliding-window attention never reach this file's code: they
//! are priced exactly as before.
//!
//! # MLA
//!
//! The KV cache holds one latent of `kv_lora_rank` plus a shared rotary key of
//! `qk_rope_head_dim` per token and layer ([`ModelSpec::kv_bytes_per_token_layer`]).
//! The projections are GEMMs of the step's tokens over the (n, k) shapes of
//! [`ModelSpec::layer_attn_params`]' terms: q (through `q_a` and `q_b` when
//! `q_lora_rank` > 0), `kv_a` (latent and rotary key), `kv_b` (the latent expanded
//! to per-head keys and values) in the QKV group, `o` in the output group.
//!
//! vLLM's MLA backend (`vllm/v1/attention/backends/mla/common.py`, after the
//! DeepSeek-V2 paper) runs two algorithms. Decode is the "data-movement friendly"
//! one: `W_UK` is absorbed into the query and `W_UV` into the output, so attention
//! runs over the latent itself, like multi-query attention with one 576-wide key:
//! per cached key and layer 2 · H · (kv_lora + rope) FLOPs for the scores and
//! 2 · H · kv_lora for the values, reading only the latent (the absorbed matmuls
//! cost what `kv_b` costs per token, priced with it). Prefill is the "compute
//! friendly" one: the latent is expanded by `kv_b` and attention is ordinary
//! multi-head attention with keys of nope + rope and values of `v_head_dim`:
//! 2 · H · (qk_nope + qk_rope + v) FLOPs per attended pair. Approximation: a chunk
//! prefilled on top of cached tokens also expands the cached latents through `kv_b`
//! in vLLM; that is priced per new token only. Attention is priced on the curves
//! (the measured attention tables are of GQA shapes).
//!
//! # Chunked attention
//!
//! In a chunked layer of chunk size C (Llama 4, `chunked_window`) a token at
//! position p (0-based) attends the keys of its own chunk: (p mod C) + 1, not
//! min(p + 1, C) as under a sliding window ([`chunked_pairs`]). Decode steps keep
//! the sliding-window sums of [`super::StepShape`] (Σ min(ctx, C)), which the
//! instance keeps incrementally; the chunked count (ctx − 1) mod C + 1 is never
//! larger and equal while ctx ≤ C, so window-layer decode attention is exact for
//! contexts within the first chunk (8192 tokens in Llama 4) and an upper bound past
//! it, by at most C − 1 keys per sequence (on average about C / 2: positions spread
//! evenly over a chunk attend (C + 1) / 2 keys, against C). Taking the chunked rule
//! in decode would need the instance to track each sequence's position in its chunk,
//! which its aggregate context sums (kept in O(1) per step) do not.

use super::kernel_part::KernelPart;
use super::kernels::KernelTables;
use super::moe::MoeCost;
use super::quant::{self, CostFormats, GemmFormat};
use super::{CostModel, Source, ATTN_D, ATTN_P, MLP, O_PROJ, QKV};
use crate::specs::{MlpKind, ModelSpec};

/// Σ over the positions c..c+p of ((pos mod C) + 1): the keys a chunk of `p` new
/// tokens on top of `c` cached ones attends in a chunked layer of chunk `chunk`.
pub fn chunked_pairs(c: u64, p: u64, chunk: u64) -> f64 {
    // S(n) = Σ_{pos < n} ((pos mod C) + 1) = q · C(C+1)/2 + r(r+1)/2, n = qC + r.
    let s = |n: u64| {
        let (q, r) = (n / chunk, n % chunk);
        q as f64 * (chunk as f64 * (chunk as f64 + 1.0) / 2.0) + r as f64 * (r as f64 + 1.0) / 2.0
    };
    s(c + p) - s(c)
}

/// Cached keys a chunk of `p` new tokens on `c` cached reads in a chunked layer:
/// those from the start of the chunk holding its first new token.
pub fn chunked_keys(c: u64, p: u64, chunk: u64) -> f64 {
    ((c + p) - c / chunk * chunk) as f64
}

/// Attention FLOPs of one layer per attended (query, key) pair in prefill and per
/// cached key in decode (see the file's doc; dense: 4 · H · head_dim for both).
pub fn attn_flops(model: &ModelSpec) -> (f64, f64) {
    let h = model.num_heads as f64;
    match &model.mla {
        Some(a) => {
            let (lora, rope) = (a.kv_lora_rank as f64, a.qk_rope_head_dim as f64);
            let qk = (a.qk_nope_head_dim + a.qk_rope_head_dim) as f64;
            (
                2.0 * h * (qk + a.v_head_dim as f64),
                2.0 * h * (lora + rope) + 2.0 * h * lora,
            )
        }
        None => {
            let f = 4.0 * h * model.head_dim as f64;
            (f, f)
        }
    }
}

/// Parameters of the dense matmuls of a forward pass that every token uses in
/// full (attention projections of every layer, the MLPs of dense layers): the dense
/// work of a MoE or MLA model, its MoE MLPs priced apart.
pub fn dense_params(model: &ModelSpec) -> f64 {
    let layers = model.num_layers as u64;
    let dense = layers - model.moe_layers() as u64;
    (model.layer_attn_params() * layers + dense * model.mlp_params(model.intermediate_size)) as f64
}

/// (n, k) of a GEMM.
type Nk = (f64, f64);

/// (n, k) of the QKV group's GEMMs and of the output GEMM of an MLA layer.
fn mla_nk(model: &ModelSpec) -> Option<(Vec<Nk>, Nk)> {
    let a = model.mla.as_ref()?;
    let d = model.hidden_size as f64;
    let h = model.num_heads as f64;
    let qk = (a.qk_nope_head_dim + a.qk_rope_head_dim) as f64;
    let (ql, kl) = (a.q_lora_rank as f64, a.kv_lora_rank as f64);
    let mut qkv = if a.q_lora_rank == 0 {
        vec![(h * qk, d)]
    } else {
        vec![(ql, d), (h * qk, ql)]
    };
    qkv.push((kl + a.qk_rope_head_dim as f64, d));
    qkv.push((h * (a.qk_nope_head_dim + a.v_head_dim) as f64, kl));
    Some((qkv, (d, h * a.v_head_dim as f64)))
}

/// What a variant model changes in the kernel part's pricing.
#[derive(Debug, Clone)]
pub(super) struct Variant {
    /// The dense layers' quantised format (`None`: the model's dtype), for the MLA
    /// projections priced on the curves.
    dense_format: Option<GemmFormat>,
    /// MLA: the QKV group's GEMM shapes and the output GEMM's.
    mla: Option<(Vec<Nk>, Nk)>,
    /// Dense-MLP layers over all layers (1 without MoE).
    dense_mlp_frac: f64,
    /// The routed experts' measured token grid and latency (µs, one layer).
    moe_table: Option<(Vec<f64>, Vec<f64>)>,
}

impl Variant {
    /// Adjusts a kernel part built for the model's dense shapes (and `tables`, the
    /// GPU's measured tables if any); leaves it untouched for a dense model with
    /// ordinary attention.
    pub(super) fn adjust(
        model: &ModelSpec,
        tables: Option<&KernelTables>,
        qf: &CostFormats,
        k: &mut KernelPart,
    ) {
        let moe = MoeCost::new(model).map(|m| m.with_format(qf.experts));
        let mla = mla_nk(model);
        if moe.is_none() && mla.is_none() {
            return;
        }
        let layers = model.num_layers as f64;
        let dense_mlp_frac = (layers - model.moe_layers() as f64) / layers;
        let bpe = model.dtype_bytes as f64;
        let w = |s: &[(f64, f64)]| s.iter().map(|(n, k)| n * k).sum::<f64>();
        let (wq, wo) = match &mla {
            Some((qkv, o)) => (w(qkv), o.0 * o.1),
            None => (w(&k.gemm_nk[..1]), w(&k.gemm_nk[1..2])),
        };
        let wm = w(&k.gemm_nk[2..]) * dense_mlp_frac;
        let t = wq + wo + wm;
        k.dense_shares = [wq / t, wo / t, wm / t];
        if let Some(a) = &model.mla {
            let (pair, key) = attn_flops(model);
            k.pair_flops = pair;
            k.key_flops = key;
            k.prefill = None;
            k.decode = None;
            let h = model.num_heads as f64;
            let rope = a.qk_rope_head_dim as f64;
            k.stream_layer[1] = 2.0 * (h * rope + rope) * bpe;
            k.stream_layer[2] = 2.0 * model.kv_bytes_per_token_layer() as f64;
            for i in [QKV, O_PROJ, ATTN_P, ATTN_D] {
                k.sources[i] = Source::Roofline;
            }
        }
        let mut moe_table = None;
        if let (Some(m), Some(spec)) = (&moe, &model.moe) {
            // The measured MoE kernels are bf16: quantised experts go on the curves.
            moe_table = m
                .table_shape(model)
                .filter(|_| m.format.is_none())
                .and_then(|shape| {
                    let t = tables?.moe.as_ref()?.for_shape(shape)?;
                    Some((t.0.to_vec(), t.1.to_vec()))
                });
            let (up, f) = (k.gemm_nk[2].0, k.gemm_nk[3].1);
            let fs = spec.shared_expert_intermediate_size as f64;
            let up_s = match model.mlp {
                MlpKind::Gated => 2.0 * fs,
                MlpKind::Plain => fs,
            };
            let moe_act = m.act_bytes_per_token + (up_s + fs) * bpe;
            k.stream_layer[4] = dense_mlp_frac * (up + f) * bpe + (1.0 - dense_mlp_frac) * moe_act;
            k.sources[MLP] = match moe_table {
                Some(_) => Source::Table,
                None => Source::Roofline,
            };
        }
        k.stream_bytes_per_token =
            k.stream_layer.iter().sum::<f64>() * layers + k.stream_step.iter().sum::<f64>();
        k.variant = Some(Box::new(Variant {
            dense_format: qf.gemm,
            mla,
            dense_mlp_frac,
            moe_table,
        }));
    }

    /// Re-prices the dense groups of a step of `tokens` tokens: MLA projections on
    /// the curves, the MLP group as the dense layers' share of the dense MLP plus the
    /// MoE layers.
    pub(super) fn price_dense(
        &self,
        k: &KernelPart,
        cm: &CostModel,
        tokens: f64,
        gs: &mut [f64; super::NUM_GROUPS],
    ) {
        let g = |(n, kk): (f64, f64)| {
            let us = match &self.dense_format {
                None => k.curves.gemm_us(tokens, n, kk),
                Some(f) => quant::gemm_us(&k.curves, f, tokens, n, kk),
            };
            us * cm.layers * 1e-6
        };
        if let Some((qkv, o)) = &self.mla {
            gs[QKV] = qkv.iter().map(|s| g(*s)).sum();
            gs[O_PROJ] = g(*o);
        }
        gs[MLP] *= self.dense_mlp_frac;
        if let Some(e) = &cm.ep {
            // `tokens` is one data-parallel rank's share; the EP group sees them all.
            gs[MLP] += e.time_s(&k.curves, tokens * e.dp as f64);
        } else if let Some(m) = &cm.moe {
            let table = self.moe_table.as_ref().map(|(t, l)| (&t[..], &l[..]));
            gs[MLP] += m.time_s(&k.curves, table, tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_pairs_by_hand() {
        // Chunk 4, positions 0..6: 1 + 2 + 3 + 4 + 1 + 2 = 13.
        assert_eq!(chunked_pairs(0, 6, 4), 13.0);
        // Positions 3..5 (3 new on 3 cached): 4 + 1 + 2 = 7; keys read from 0: 6.
        assert_eq!(chunked_pairs(3, 3, 4), 7.0);
        assert_eq!(chunked_keys(3, 3, 4), 6.0);
        // Positions 5..6 on 5 cached: 2 + 3; keys read from position 4: 3.
        assert_eq!(chunked_pairs(5, 2, 4), 5.0);
        assert_eq!(chunked_keys(5, 2, 4), 3.0);
    }
}
