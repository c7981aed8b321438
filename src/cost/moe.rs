//! The cost of mixture-of-experts layers: how many experts a step of T tokens
//! touches, how uneven their loads are, and the work and time of the MoE MLP
//! (router, shared experts and vLLM's `fused_moe` grouped GEMM) of one step.
//!
//! # Work of one MoE layer for a step of T tokens
//!
//! Each token goes through the router (`d × E`), the shared experts (if any) and
//! `k` of the `E` routed experts, so
//!
//! FLOPs = 2 · T · (k · P_e + P_shared + d · E)
//!
//! with `P_e` one expert's parameters. The weights read are those of the experts the
//! step touches, plus the shared ones:
//!
//! bytes = (E_d(T) · P_e + P_shared + d · E) · bytes per parameter
//!
//! where `E_d(T)` is the expected number of distinct experts the T tokens route to
//! ([`expected_distinct_experts`]). At T = 1 it is `k`, and it tends to `E` as T
//! grows: a decode step of one sequence reads `k` experts, a large prefill reads
//! them all. Dense layers of a MoE model (`first_dense_layers`, `layer_step`) keep
//! the dense MLP, priced with the rest of the dense work.
//!
//! # Time of the fused kernel
//!
//! vLLM runs the routed experts of a layer as one `fused_moe` Triton kernel for the
//! gate and up projections and one for the down projection (`fused_experts`, in
//! `vllm/model_executor/layers/fused_moe/fused_moe.py`): a grouped GEMM whose tiles
//! each belong to one expert. It is priced on the GPU's roofline curves as E_d
//! GEMMs of m_e = T · k / E_d rows over the expert's (n, k) shapes, the fixed time
//! of a launch (the curves' GEMM floor) counted once per kernel, not once per
//! expert:
//!
//! t(n, k) = floor + E_d · (gemm(m_e, n, k) − floor)
//!
//! The router and the shared experts are ordinary GEMMs of T rows, on the curves.
//! Where the GPU's folder has `moe.csv` (AIConfigurator's measured vLLM fused-MoE
//! latency, bf16, one GPU, tokens spread evenly) and it holds the model's exact
//! (hidden, expert width, top-k, experts) shape, the routed experts are interpolated
//! in it over the step's tokens instead (linear between grid points, proportional
//! beyond the last), and the MLP group's source is `table`. The table measures vLLM's
//! `fused_experts` (the routed experts only: no router) with AIConfigurator's
//! `balanced` routing (`balanced_logits` in its collector's `helper.py`: token i goes
//! to experts (i + j · ⌈E/k⌉) mod E), which touches min(E, T · k) distinct experts,
//! more than uniform routing's E_d(T) at small T. The measured latency is scaled by
//! E_d(T) / min(E, T · k), the ratio of expert weights streamed: that is where the
//! time of a small step goes (memory-bound), and the ratio tends to 1 by the step
//! sizes where compute matters (T · k ≫ E).
//!
//! # Load imbalance
//!
//! With uniform routing the busiest expert gets more than the mean T · k / E tokens;
//! [`expected_max_load`] gives its expected load over `groups` equal groups of
//! experts (one group per GPU under expert parallelism, where the busiest GPU sets
//! the layer's time). On one GPU the grouped GEMM's total work does not depend on
//! how the tokens split: it only changes how full each expert's last row tile is,
//! and the curves' efficiency at the mean m_e stands for that (a second-order effect
//! left out). [`MoeCost::imbalance`] records the derived ratio for reports and for
//! expert parallelism; it does not enter the single-GPU price.

use super::kernels::Curves;
use super::quant::GemmFormat;
use super::GroupWork;
use crate::specs::{MlpKind, ModelSpec};

/// Expected number of distinct experts that `tokens` tokens touch, each routing to
/// `k` distinct experts of `experts`, uniformly and independently:
///
/// E · (1 − (1 − k/E)^T).
///
/// Derivation: one token picks `k` of `E` experts, so a given expert is missed by it
/// with probability 1 − k/E; by independence it is missed by all T tokens with
/// probability (1 − k/E)^T, and by linearity of expectation the expected number of
/// experts hit is E times the probability that one is hit. `tokens` may be
/// fractional (the formula is smooth in T); 0 tokens touch no expert.
pub fn expected_distinct_experts(tokens: f64, k: u32, experts: u32) -> f64 {
    if tokens <= 0.0 || experts == 0 {
        return 0.0;
    }
    let e = experts as f64;
    let k = (k.min(experts)) as f64;
    e * (1.0 - (1.0 - k / e).powf(tokens))
}

/// Expected load (token-expert assignments) of the busiest of `groups` equal groups
/// of experts, when `tokens` tokens each route to `k` of `experts` experts uniformly.
///
/// A group holds E / G experts and receives each assignment with probability 1 / G;
/// there are n = T · k assignments. The number a group gets is close to binomial
/// (n, 1/G) (exact for k = 1; for k > 1 a token's k experts are distinct, which
/// makes the loads slightly more even, so this is an upper estimate). Its expected
/// maximum over G groups is taken from the normal approximation of the binomial and
/// the expected maximum of G independent normals, μ + σ · √(2 ln G) (the classical
/// balls-into-bins bound, Raab and Steger 1998, in its heavily loaded regime), never
/// above n and never below the mean. With one group the load is n.
pub fn expected_max_load(tokens: f64, k: u32, experts: u32, groups: u32) -> f64 {
    let n = tokens.max(0.0) * k.min(experts) as f64;
    if groups <= 1 || n == 0.0 {
        return n;
    }
    let g = groups as f64;
    let p = 1.0 / g;
    let mean = n * p;
    let sd = (n * p * (1.0 - p)).sqrt();
    (mean + sd * (2.0 * g.ln()).sqrt()).clamp(mean, n)
}

/// The MoE MLP of a model, precomputed for pricing steps.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeCost {
    /// MoE layers.
    pub layers: f64,
    /// Routed experts per MoE layer.
    pub experts: u32,
    /// Experts per token.
    pub k: u32,
    /// Parameters of one routed expert.
    pub expert_params: f64,
    /// Parameters every token uses in a MoE layer: shared experts and router.
    pub shared_params: f64,
    /// Bytes per parameter.
    pub bytes_per_param: f64,
    /// (n, k) of an expert's up (gate and up together when gated) and down GEMMs.
    pub expert_nk: [(f64, f64); 2],
    /// (n, k) of the shared experts' up and down GEMMs (`None`: no shared expert).
    pub shared_nk: Option<[(f64, f64); 2]>,
    /// (n, k) of the router GEMM (E, d).
    pub router_nk: (f64, f64),
    /// Bytes per token per MoE layer of the routed activations (each of the k
    /// experts' intermediate written and read, and the k outputs summed).
    pub act_bytes_per_token: f64,
    /// The experts' quantised format (`None`: the model's dtype): their weight bytes
    /// and the peak their grouped GEMMs run at on the curves.
    pub format: Option<GemmFormat>,
}

impl MoeCost {
    /// The MoE part of `model`; `None` for a dense model or one without MoE layers.
    pub fn new(model: &ModelSpec) -> Option<MoeCost> {
        let m = model.moe.as_ref()?;
        let layers = model.moe_layers();
        if layers == 0 {
            return None;
        }
        let d = model.hidden_size as f64;
        let up = |f: u64| match model.mlp {
            MlpKind::Gated => 2.0 * f as f64,
            MlpKind::Plain => f as f64,
        };
        let fe = m.expert_intermediate_size;
        let fs = m.shared_expert_intermediate_size;
        let bpe = model.dtype_bytes as f64;
        let k = m.experts_per_token.min(m.num_experts);
        Some(MoeCost {
            layers: layers as f64,
            experts: m.num_experts,
            k,
            expert_params: model.expert_params() as f64,
            shared_params: model.moe_layer_shared_params() as f64,
            bytes_per_param: bpe,
            expert_nk: [(up(fe), d), (d, fe as f64)],
            shared_nk: (fs > 0).then(|| [(up(fs), d), (d, fs as f64)]),
            router_nk: (m.num_experts as f64, d),
            act_bytes_per_token: k as f64 * (up(fe) + fe as f64 + d) * bpe,
            format: None,
        })
    }

    /// The same MoE part with its experts (routed and shared) stored in `format`
    /// (`None`: the model's dtype). The router stays in the model's dtype; its
    /// d · E weights are under 0.1 % of a layer's experts, so its bytes are counted
    /// at the experts' width.
    pub fn with_format(mut self, format: Option<GemmFormat>) -> MoeCost {
        if let Some(f) = format {
            self.bytes_per_param = f.weight_bytes;
        }
        self.format = format;
        self
    }

    /// Microseconds of one GEMM of `m` rows in the experts' format on `curves`.
    pub fn gemm_us(&self, curves: &Curves, m: f64, n: f64, k: f64) -> f64 {
        match &self.format {
            None => curves.gemm_us(m, n, k),
            Some(f) => super::quant::gemm_us(curves, f, m, n, k),
        }
    }

    /// Expected distinct experts one MoE layer reads for a step of `tokens` tokens.
    pub fn touched(&self, tokens: f64) -> f64 {
        expected_distinct_experts(tokens, self.k, self.experts)
    }

    /// The ratio of the busiest expert's expected load to the mean load, for a step
    /// of `tokens` tokens under uniform routing (each expert its own group): the
    /// derived default of the load imbalance (1 when the loads are equal).
    pub fn imbalance(&self, tokens: f64) -> f64 {
        let mean = tokens * self.k as f64 / self.experts as f64;
        if mean <= 0.0 {
            return 1.0;
        }
        expected_max_load(tokens, self.k, self.experts, self.experts) / mean
    }

    /// FLOPs and weight bytes of the MoE MLPs of all MoE layers for `tokens` tokens.
    pub fn work(&self, tokens: f64) -> GroupWork {
        if tokens <= 0.0 {
            return GroupWork::default();
        }
        let per_token = self.k as f64 * self.expert_params + self.shared_params;
        let read = self.touched(tokens) * self.expert_params + self.shared_params;
        GroupWork {
            flops: 2.0 * tokens * per_token * self.layers,
            bytes: read * self.bytes_per_param * self.layers,
        }
    }

    /// The shape under which `moe.csv` measures this model's routed experts:
    /// (hidden, expert width, top-k, experts); `None` when its experts are not gated
    /// (the measured kernels are SwiGLU).
    pub fn table_shape(&self, model: &ModelSpec) -> Option<super::kernels::MoeShape> {
        let m = model.moe.as_ref()?;
        (model.mlp == MlpKind::Gated).then_some((
            model.hidden_size,
            m.expert_intermediate_size,
            self.k,
            self.experts,
        ))
    }

    /// Microseconds of one layer's routed experts for `tokens` tokens on `curves`:
    /// the two grouped GEMMs, launch floor once per kernel (see the file's doc).
    pub fn routed_us(&self, curves: &Curves, tokens: f64) -> f64 {
        let touched = self.touched(tokens);
        let m_e = tokens * self.k as f64 / touched;
        let floor = curves.anchor.gemm_floor_us;
        let grouped =
            |(n, k): (f64, f64)| floor + touched * (self.gemm_us(curves, m_e, n, k) - floor);
        grouped(self.expert_nk[0]) + grouped(self.expert_nk[1])
    }

    /// Microseconds of one layer's router and shared experts for `tokens` tokens.
    pub fn common_us(&self, curves: &Curves, tokens: f64) -> f64 {
        let mut us = curves.gemm_us(tokens, self.router_nk.0, self.router_nk.1);
        if let Some([up, down]) = self.shared_nk {
            us += self.gemm_us(curves, tokens, up.0, up.1)
                + self.gemm_us(curves, tokens, down.0, down.1);
        }
        us
    }

    /// Seconds of the MoE MLPs of all MoE layers for `tokens` tokens: the routed
    /// experts from `table` (tokens grid, µs per layer) where the GPU measured this
    /// shape, else on `curves`; router and shared experts on `curves`.
    pub fn time_s(&self, curves: &Curves, table: Option<(&[f64], &[f64])>, tokens: f64) -> f64 {
        if tokens <= 0.0 {
            return 0.0;
        }
        let routed = match table {
            Some((ts, lat)) => {
                let balanced = (tokens * self.k as f64).min(self.experts as f64);
                super::kernels::interp_linear(ts, lat, tokens) * self.touched(tokens) / balanced
            }
            None => self.routed_us(curves, tokens),
        };
        (routed + self.common_us(curves, tokens)) * self.layers * 1e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_experts_ends() {
        assert_eq!(expected_distinct_experts(0.0, 2, 8), 0.0);
        assert!((expected_distinct_experts(1.0, 2, 8) - 2.0).abs() < 1e-12);
        assert!((expected_distinct_experts(1e4, 2, 8) - 8.0).abs() < 1e-9);
        // k = E: every token touches every expert.
        assert!((expected_distinct_experts(1.0, 8, 8) - 8.0).abs() < 1e-12);
    }

    #[test]
    fn max_load_bounds() {
        // One group holds everything; G groups: between the mean and the total.
        assert_eq!(expected_max_load(10.0, 2, 8, 1), 20.0);
        let m = expected_max_load(100.0, 2, 8, 8);
        assert!(m > 25.0 && m < 200.0);
    }
}
