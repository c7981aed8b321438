//! Expert parallelism (issue 15, part 3): a MoE layer's routed experts spread
//! whole over the GPUs of an instance's expert-parallel group, optionally with
//! data-parallel attention (DP + EP, DeepSeek's deployment); the busiest GPU's
//! routed-expert work, the all-to-all that moves tokens to their experts and back,
//! the layout rules, and the weights one GPU holds.
//!
//! # What vLLM runs
//!
//! `--enable-expert-parallel` puts the experts of each MoE layer on the GPUs of an
//! EP group of size TP × DP instead of splitting every expert by TP ("the EP size
//! is automatically calculated as TP × DP", vLLM docs, *Expert Parallel
//! Deployment*, docs.vllm.ai/en/v0.10.1.1/serving/expert_parallel_deployment.html);
//! attention and dense layers stay tensor-parallel within each DP rank. With
//! `--data-parallel-size N` each DP rank is its own engine core with its own
//! scheduler, batch and KV cache (so `max_num_seqs`, `max_num_batched_tokens` and
//! the KV pool are per rank), and "expert layers across all ranks are required to
//! synchronize during every forward pass", idle ranks running dummy batches (vLLM
//! docs, *Data Parallel Deployment*, docs.vllm.ai/en/latest/serving/data_parallel_deployment/).
//!
//! # How it is modelled
//!
//! One simulated instance stands for the N × TP GPUs; its step holds the union of
//! the N ranks' batches (T tokens). Assumption: the router spreads work evenly over
//! the DP ranks, so each rank's attention and dense layers see T / N tokens (priced
//! as one TP rank's shard of T / N tokens: the ranks run concurrently). The MoE
//! layers see all T tokens over the EP group of `ep` = N × TP GPUs, each holding
//! E / ep whole experts:
//!
//! - the busiest GPU receives [`expected_max_load`]`(T, k, E, ep)` token-expert
//!   assignments (uniform routing; the moe branch's derived imbalance, no tuned
//!   parameter) and sets the layer's time: FLOPs 2 · load · P_e; it reads the
//!   weights of its share of the touched experts, E_d(T) / ep · P_e;
//! - router and shared experts run in each DP rank on its T / N tokens, the shared
//!   experts TP-sharded like a dense MLP;
//! - the routed experts are priced on the roofline curves (the measured `moe.csv`
//!   holds one GPU with all E experts, a different kernel shape), as a grouped GEMM
//!   of E_d(T) / ep experts of load / (E_d(T) / ep) rows each.
//!
//! # All-to-all
//!
//! Assumed algorithm: a sparse all-to-all as vLLM's `pplx` and `deepep_*` backends
//! run it (`--all2all-backend`): each GPU writes each of its tokens' hidden states
//! straight into the buffers of the GPUs holding that token's k experts (dispatch)
//! and the expert outputs come back the same way (combine). Each GPU sends its
//! T / ep tokens (a DP rank's T / N split over its TP ranks), k copies each, of
//! which the fraction (ep − 1) / ep leaves the GPU:
//!
//! bytes per GPU per direction per layer = (T / ep) · k · (ep − 1) / ep · d · dtype
//!
//! priced on the [`Link`] like the collectives: one per-message latency (all peers
//! written at once through the NVSwitch) plus the bytes over the per-direction
//! bandwidth, for dispatch and again for combine, in every MoE layer. vLLM's default
//! `allgather_reducescatter` backend moves T · d · (ep − 1)/ep per GPU instead (an
//! all-gather of every rank's tokens); it is not modelled. The all-to-all shares
//! the communication group (`allreduce` in breakdowns) with the TP collectives,
//! counted with the memory-bound part like them (the SMs wait on the link).

use super::deploy::Deployment;
use super::kernels::Curves;
use super::moe::{expected_max_load, MoeCost};
use super::parallel::Link;
use super::GroupWork;
use crate::specs::{GpuSpec, ModelSpec};

/// The expert-parallel part of one instance's step price.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpertParallel {
    /// GPUs of the EP group (TP × DP).
    pub ep: u32,
    /// Data-parallel attention ranks.
    pub dp: u32,
    /// Whole routed experts each GPU holds (E / ep).
    pub experts_per_gpu: u32,
    /// The MoE layers of one rank's shard (whole routed experts, TP-sharded shared
    /// experts).
    pub moe: MoeCost,
    /// Hidden-state bytes per token (hidden × dtype).
    pub hidden_bytes: f64,
    /// The link between the group's GPUs.
    pub link: Link,
}

impl ExpertParallel {
    /// The EP part of `deploy` for `shard` (one rank's model, see
    /// [`super::parallel::shard`]) on `gpu`, whose MoE part (in its weights' format)
    /// is `moe`; `None` without expert parallelism or MoE layers.
    pub fn new(
        shard: &ModelSpec,
        gpu: &GpuSpec,
        deploy: &Deployment,
        moe: Option<&MoeCost>,
    ) -> Option<ExpertParallel> {
        if !deploy.expert_parallel {
            return None;
        }
        let moe = moe?.clone();
        let ep = deploy.ep_size().max(1);
        Some(ExpertParallel {
            ep,
            dp: deploy.data_parallel.max(1),
            experts_per_gpu: moe.experts / ep,
            moe,
            hidden_bytes: (shard.hidden_size * shard.dtype_bytes) as f64,
            link: Link::of(gpu),
        })
    }

    /// Token-expert assignments the busiest GPU computes in one MoE layer for a step
    /// of `tokens` tokens (all DP ranks together).
    pub fn busiest_load(&self, tokens: f64) -> f64 {
        expected_max_load(tokens, self.moe.k, self.moe.experts, self.ep)
    }

    /// Expected distinct experts one GPU's share touches in one MoE layer.
    pub fn local_touched(&self, tokens: f64) -> f64 {
        self.moe.touched(tokens) / self.ep as f64
    }

    /// FLOPs and weight bytes of one GPU's MoE MLPs, all MoE layers: the busiest
    /// GPU's routed experts for the step's `tokens`, and its rank's router and
    /// shared experts for `tokens` / dp.
    pub fn work(&self, tokens: f64) -> GroupWork {
        if tokens <= 0.0 {
            return GroupWork::default();
        }
        let m = &self.moe;
        let rank = tokens / self.dp as f64;
        let flops = 2.0 * (self.busiest_load(tokens) * m.expert_params + rank * m.shared_params);
        let read = self.local_touched(tokens) * m.expert_params + m.shared_params;
        GroupWork {
            flops: flops * m.layers,
            bytes: read * m.bytes_per_param * m.layers,
        }
    }

    /// Microseconds of one layer's routed experts on the busiest GPU (grouped GEMM
    /// on `curves`, launch floor once per kernel, as [`MoeCost::routed_us`]).
    pub fn routed_us(&self, curves: &Curves, tokens: f64) -> f64 {
        let touched = self.local_touched(tokens);
        if touched <= 0.0 {
            return 0.0;
        }
        let m_e = self.busiest_load(tokens) / touched;
        let floor = curves.anchor.gemm_floor_us;
        let grouped =
            |(n, k): (f64, f64)| floor + touched * (self.moe.gemm_us(curves, m_e, n, k) - floor);
        grouped(self.moe.expert_nk[0]) + grouped(self.moe.expert_nk[1])
    }

    /// Seconds of one GPU's MoE MLPs, all MoE layers, on `curves` (routed experts
    /// of the busiest GPU; router and shared experts of its rank's tokens).
    pub fn time_s(&self, curves: &Curves, tokens: f64) -> f64 {
        if tokens <= 0.0 {
            return 0.0;
        }
        let rank = tokens / self.dp as f64;
        (self.routed_us(curves, tokens) + self.moe.common_us(curves, rank)) * self.moe.layers * 1e-6
    }

    /// Bytes one GPU sends in one direction (dispatch, or combine) of one MoE layer.
    pub fn a2a_bytes(&self, tokens: f64) -> f64 {
        let ep = self.ep as f64;
        tokens / ep * self.moe.k as f64 * (ep - 1.0) / ep * self.hidden_bytes
    }

    /// Bytes and seconds of the step's all-to-alls, all MoE layers, dispatch and
    /// combine (see the file's doc).
    pub fn a2a(&self, tokens: f64) -> (GroupWork, f64) {
        if tokens <= 0.0 || self.ep <= 1 {
            return (GroupWork::default(), 0.0);
        }
        let b = self.a2a_bytes(tokens);
        let one = self.link.latency_s + b / self.link.bytes_per_s;
        let n = 2.0 * self.moe.layers;
        (
            GroupWork {
                flops: 0.0,
                bytes: n * b,
            },
            n * one,
        )
    }
}

/// Why `deploy`'s expert or data parallelism cannot run `model` (on `gpu`, if
/// known): (field, message) for each rule it breaks.
pub fn layout_errors(
    model: &ModelSpec,
    gpu: Option<&GpuSpec>,
    deploy: &Deployment,
) -> Vec<(&'static str, String)> {
    let mut errs = Vec::new();
    let dp = deploy.data_parallel.max(1);
    if !deploy.expert_parallel {
        if dp > 1 {
            errs.push(("engine.data_parallel_size", format!(
                "got {dp} without enable_expert_parallel; independent replicas are hardware.num_gpus / (tensor × pipeline) instances behind the router already: set num_gpus instead, or enable_expert_parallel = true for data-parallel attention with expert-parallel MoE layers"
            )));
        }
        return errs;
    }
    let f = "engine.enable_expert_parallel";
    let Some(m) = model.moe.as_ref().filter(|_| model.moe_layers() > 0) else {
        errs.push((
            f,
            format!(
                "{} is a dense model (no MoE layers); expert parallelism needs a mixture-of-experts model; allowed: false",
                model.name
            ),
        ));
        return errs;
    };
    let ep = deploy.ep_size();
    if ep < 2 {
        errs.push((f, "expert parallelism over one GPU changes nothing; set tensor_parallel_size × data_parallel_size to at least 2, or enable_expert_parallel = false".into()));
    } else if m.num_experts % ep != 0 {
        errs.push((f, format!(
            "{} has {} routed experts per MoE layer, which do not divide evenly over the EP group of tensor_parallel_size {} × data_parallel_size {dp} = {ep} GPUs; allowed: an EP size dividing {}",
            model.name, m.num_experts, deploy.tensor_parallel, m.num_experts
        )));
    }
    if deploy.pipeline_parallel > 1 {
        errs.push(("engine.pipeline_parallel_size", format!(
            "got {}, but pipeline parallelism together with expert parallelism is not modelled; allowed with enable_expert_parallel: 1",
            deploy.pipeline_parallel
        )));
    }
    if let Some(g) = gpu {
        if ep > g.gpus_per_node {
            errs.push((f, format!(
                "the EP group of {ep} GPUs spans more than one {} node ({} GPUs); an all-to-all between nodes is not modelled; allowed: tensor_parallel_size × data_parallel_size at most {}",
                g.name, g.gpus_per_node, g.gpus_per_node
            )));
        }
    }
    errs
}

/// Weight bytes one GPU of an expert-parallel instance holds: its TP shard of the
/// attention, dense layers, shared experts, router, embedding and LM head, and
/// E / ep whole routed experts per MoE layer.
pub fn weight_bytes_per_gpu(model: &ModelSpec, deploy: &Deployment) -> f64 {
    let whole = super::parallel::stage_weight_bytes(model, deploy)[0];
    let Some(m) = &model.moe else {
        return whole;
    };
    // `stage_weight_bytes` counts every routed expert whole under expert
    // parallelism; one GPU keeps E / ep of them.
    let ep = deploy.ep_size().max(1) as u64;
    let others = (m.num_experts as u64 - m.num_experts as u64 / ep)
        * model.expert_params()
        * model.moe_layers() as u64;
    // The routed experts are stored in the deployment's format when quantised.
    let bpp = match &deploy.quantization {
        Some(q) => q.format.bytes_per_param(),
        None => model.dtype_bytes as f64,
    };
    whole - others as f64 * bpp
}
