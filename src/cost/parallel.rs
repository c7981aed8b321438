//! Tensor and pipeline parallelism (issue 15, parts 2, 3 and 6): which layouts vLLM
//! accepts, the per-rank shard of a model that one GPU of a tensor-parallel group in
//! one pipeline stage runs, its weights per GPU, and the price of the collectives
//! and stage-to-stage transfers a sharded step adds.
//!
//! What a rank runs (vLLM's `ColumnParallelLinear` / `RowParallelLinear`,
//! `VocabParallelEmbedding` / `ParallelLMHead`, `get_pp_indices`):
//! - query heads / tp; KV heads / tp, or one replicated KV head per rank when
//!   tp > KV heads (vLLM's `QKVParallelLinear` replicates them, needing
//!   tp % kv_heads == 0);
//! - MLP width / tp (routed and shared experts likewise, without expert parallelism);
//! - vocabulary / tp for the embedding and the LM head (vocabulary padded to a
//!   multiple of 64, vLLM's `DEFAULT_VOCAB_PADDING_SIZE`); the logits are gathered
//!   before sampling, so the sampler sees the whole vocabulary;
//! - layers / pp per stage: `get_pp_indices` gives each stage ⌊L/pp⌋ layers and one
//!   more to the L mod pp stages just before the last (the last also runs the final
//!   norm and LM head).
//!
//! The collectives (vLLM `vllm/model_executor/models/llama.py` and
//! `layers/linear.py`): each layer's attention output projection and MLP down
//! projection are `RowParallelLinear` with `reduce_results=True`, so a layer issues
//! two all-reduces of tokens × hidden × dtype bytes; `VocabParallelEmbedding` masks
//! its rows and all-reduces its output once per step; the LM head's logits are
//! gathered (`LogitsProcessor._gather_logits`). Pipeline stages hand tokens × hidden
//! × dtype bytes of activations (and as many of the residual) to the next stage.
//!
//! An all-reduce is priced from the GPU's measured table (`allreduce.csv`, vLLM's
//! custom all-reduce under CUDA graphs) where it has one for the group size; else
//! from the link: min(one-shot, two-shot), one-shot = α + (n − 1) · M / B (every GPU
//! reads its n − 1 peers' buffers), two-shot = 2α + 2 (n − 1)/n · M / B (reduce-scatter
//! then all-gather, the ring's bytes), with α the link's per-message latency and B
//! its per-direction bandwidth. The link model ignores protocol efficiency (the
//! measured NVLink tables run at about half of it for large messages), so it is a
//! lower bound on the time. Gathers and point-to-point sends always use the link.

use super::deploy::Deployment;
use super::kernels;
use super::GroupWork;
use crate::error::CostError;
use crate::specs::{GpuSpec, ModelSpec};

/// vLLM pads the vocabulary of `VocabParallelEmbedding` / `ParallelLMHead` to a
/// multiple of this (`DEFAULT_VOCAB_PADDING_SIZE`).
const VOCAB_PADDING: u64 = 64;

/// KV heads one rank of a `tp`-way group holds: its share, or one (replicated) when
/// there are fewer KV heads than ranks.
pub fn kv_heads_per_rank(kv_heads: u32, tp: u32) -> u32 {
    if tp >= kv_heads {
        1
    } else {
        kv_heads / tp
    }
}

/// Layers of each pipeline stage, as vLLM's `get_pp_indices` splits them: ⌊L/pp⌋
/// each, one more for each of the L mod pp stages before the last.
pub fn stage_layers(layers: u32, pp: u32) -> Vec<u32> {
    let pp = pp.max(1);
    let mut v = vec![layers / pp; pp as usize];
    let n = v.len();
    for i in 2..(layers % pp + 2) as usize {
        v[n - i] += 1;
    }
    v
}

/// Why `deploy` cannot run `model` (on `gpu`, if known): (field, message) for each
/// rule it breaks.
pub fn layout_errors(
    model: &ModelSpec,
    gpu: Option<&GpuSpec>,
    deploy: &Deployment,
) -> Vec<(&'static str, String)> {
    let (tp, pp) = (deploy.tensor_parallel, deploy.pipeline_parallel);
    let mut errs = Vec::new();
    let f = "engine.tensor_parallel_size";
    if model.num_heads % tp != 0 {
        errs.push((f, format!(
            "got {tp}, but {} has {} attention heads and vLLM requires num_attention_heads % tensor_parallel_size == 0; allowed: a divisor of {}",
            model.name, model.num_heads, model.num_heads
        )));
    } else if model.mla.is_none() {
        let kv = model.num_kv_heads;
        if (tp < kv && kv % tp != 0) || (tp > kv && tp % kv != 0) {
            errs.push((f, format!(
                "got {tp}, but {} has {kv} KV heads: vLLM needs num_key_value_heads % tensor_parallel_size == 0, or tensor_parallel_size % num_key_value_heads == 0 to replicate them",
                model.name
            )));
        }
    }
    if tp > 1 && model.intermediate_size % tp as u64 != 0 {
        errs.push((
            f,
            format!(
                "got {tp}, but the MLP width of {} ({}) does not split evenly over {tp} GPUs",
                model.name, model.intermediate_size
            ),
        ));
    }
    if let Some(g) = gpu {
        if tp > g.gpus_per_node {
            errs.push((f, format!(
                "got {tp}, but one node of {} holds {} GPUs and a tensor-parallel group spanning nodes is not modelled; allowed: at most {}",
                g.name, g.gpus_per_node, g.gpus_per_node
            )));
        }
    }
    if pp > model.num_layers {
        errs.push((
            "engine.pipeline_parallel_size",
            format!(
                "got {pp}, but {} has {} layers; allowed: at most one stage per layer",
                model.name, model.num_layers
            ),
        ));
    }
    errs
}

/// The model one rank runs: the shard of a tensor-parallel rank in the pipeline
/// stage with the most layers (which, with the LM head it is priced with, bounds
/// the pipeline's rate; exact when pp divides the layers).
pub fn shard(model: &ModelSpec, deploy: &Deployment) -> ModelSpec {
    let tp = deploy.tensor_parallel.max(1);
    let pp = deploy.pipeline_parallel.max(1);
    let layers = stage_layers(model.num_layers, pp)
        .into_iter()
        .max()
        .unwrap_or(model.num_layers);
    let mut s = model.clone();
    s.name = format!("{} (one rank of tp {tp}, pp {pp})", model.name);
    s.num_heads = model.num_heads / tp;
    s.num_kv_heads = kv_heads_per_rank(model.num_kv_heads, tp);
    s.intermediate_size = model.intermediate_size.div_ceil(tp as u64);
    s.vocab_size = vocab_per_rank(model.vocab_size, tp);
    if let Some(m) = &mut s.moe {
        // Shared experts are an ordinary TP-sharded MLP either way; under expert
        // parallelism a routed expert stays whole on the GPU holding it.
        if !deploy.expert_parallel {
            m.expert_intermediate_size = m.expert_intermediate_size.div_ceil(tp as u64);
        }
        m.shared_expert_intermediate_size = m.shared_expert_intermediate_size.div_ceil(tp as u64);
    }
    if layers != model.num_layers {
        s.sliding_window_layers =
            ((model.sliding_window_layers as u64 * layers as u64) / model.num_layers as u64) as u32;
        s.num_layers = layers;
    }
    s
}

/// Vocabulary rows one rank of a `tp`-way group holds (padded, then split).
pub fn vocab_per_rank(vocab: u64, tp: u32) -> u64 {
    if tp <= 1 {
        vocab
    } else {
        vocab.div_ceil(VOCAB_PADDING) * VOCAB_PADDING / tp as u64
    }
}

/// Weight bytes on one GPU of each pipeline stage: its layers' shards, the
/// vocabulary shard of the embedding on the first stage and of the LM head on the
/// last (an own copy even when tied, once the two sit on different stages), learned
/// position embeddings replicated.
pub fn stage_weight_bytes(model: &ModelSpec, deploy: &Deployment) -> Vec<f64> {
    let tp = deploy.tensor_parallel.max(1);
    let pp = deploy.pipeline_parallel.max(1);
    let mut one = shard(
        model,
        &Deployment {
            pipeline_parallel: 1,
            ..deploy.clone()
        },
    );
    one.num_layers = model.num_layers;
    one.sliding_window_layers = model.sliding_window_layers;
    // The layers' weights in the deployment's format (the quantised share in its
    // bytes per parameter, the rest in the model's dtype); embeddings and LM head
    // stay in the model's dtype.
    let dtype = model.dtype_bytes as f64;
    let layer_bytes = match &deploy.quantization {
        None => one.layers_params() as f64 * dtype,
        Some(q) => {
            let qp = super::quant::quantised_params(&one, q) as f64;
            qp * q.format.bytes_per_param() + (one.layers_params() as f64 - qp) * dtype
        }
    };
    let per_layer = layer_bytes / model.num_layers as f64;
    let vocab = (vocab_per_rank(model.vocab_size, tp) * model.hidden_size) as f64;
    let pos = (model.learned_position_embeddings * model.hidden_size) as f64;
    let stages = stage_layers(model.num_layers, pp);
    let last = stages.len() - 1;
    stages
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let mut p = 0.0;
            if i == 0 {
                p += vocab + pos;
            }
            if i == last && (!model.tied_embeddings || pp > 1) {
                p += vocab;
            }
            per_layer * l as f64 + p * dtype
        })
        .collect()
}

/// The link between the GPUs of an instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Per-message latency, seconds.
    pub latency_s: f64,
    /// Bandwidth per direction, bytes/s.
    pub bytes_per_s: f64,
}

impl Link {
    /// The GPU spec's link.
    pub fn of(gpu: &GpuSpec) -> Link {
        Link {
            latency_s: gpu.link_latency_us * 1e-6,
            bytes_per_s: gpu.link_gbps_per_direction * 1e9,
        }
    }

    /// Seconds of an all-reduce of `bytes` over `n` GPUs: the better of one-shot and
    /// two-shot (see the module doc).
    pub fn allreduce_s(&self, n: u32, bytes: f64) -> f64 {
        let n = n as f64;
        let one = self.latency_s + (n - 1.0) * bytes / self.bytes_per_s;
        let two = 2.0 * self.latency_s + 2.0 * (n - 1.0) / n * bytes / self.bytes_per_s;
        one.min(two)
    }

    /// Seconds to gather `bytes` in all (each of `n` GPUs holding 1/n) on every GPU.
    pub fn gather_s(&self, n: u32, bytes: f64) -> f64 {
        self.latency_s + (n as f64 - 1.0) / n as f64 * bytes / self.bytes_per_s
    }

    /// Seconds of a point-to-point send of `bytes`.
    pub fn p2p_s(&self, bytes: f64) -> f64 {
        self.latency_s + bytes / self.bytes_per_s
    }
}

/// What a sharded step adds to a rank's price: collectives and stage transfers.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Parallel {
    pub(super) tp: u32,
    pub(super) pp: u32,
    pub(super) schedule: super::deploy::PipelineSchedule,
    /// Layers of the priced stage.
    layers: f64,
    /// Hidden-state bytes per token (hidden × dtype).
    hidden_bytes: f64,
    /// Logit bytes per emitting sequence (whole vocabulary × dtype).
    logit_bytes: f64,
    link: Link,
    /// Measured all-reduce latency (µs) over message bytes for `tp` GPUs.
    table: Option<(Vec<f64>, Vec<f64>)>,
}

impl Parallel {
    /// The collectives of `deploy` for `model` on `gpu`; the measured all-reduce
    /// table when `measured` and the GPU has one for the group size.
    pub(super) fn new(
        model: &ModelSpec,
        gpu: &GpuSpec,
        deploy: &Deployment,
        measured: bool,
    ) -> Result<Parallel, CostError> {
        let tp = deploy.tensor_parallel.max(1);
        let table = if measured && tp > 1 {
            kernels::tables_for(&gpu.name)?.and_then(|t| t.allreduce.get(&tp).cloned())
        } else {
            None
        };
        let layers = stage_layers(model.num_layers, deploy.pipeline_parallel)
            .into_iter()
            .max()
            .unwrap_or(model.num_layers);
        Ok(Parallel {
            tp,
            pp: deploy.pipeline_parallel.max(1),
            schedule: deploy.pipeline_schedule,
            layers: layers as f64,
            hidden_bytes: (model.hidden_size * model.dtype_bytes) as f64,
            logit_bytes: (model.vocab_size * model.dtype_bytes) as f64,
            link: Link::of(gpu),
            table,
        })
    }

    /// Whether the all-reduces come from a measured table.
    pub(super) fn measured(&self) -> bool {
        self.table.is_some()
    }

    /// Seconds of one all-reduce of `bytes` over the tensor-parallel group.
    pub(super) fn allreduce_s(&self, bytes: f64) -> f64 {
        match &self.table {
            Some((xs, ys)) => kernels::interp_log(xs, ys, bytes) * 1e-6,
            None => self.link.allreduce_s(self.tp, bytes),
        }
    }

    /// The collectives of one stage for a micro-batch of `tokens` tokens of which
    /// `emitting` sample: two all-reduces per layer and one after the embedding,
    /// and the logits' gather (nothing without tensor parallelism).
    pub(super) fn stage_comm(&self, tokens: f64, emitting: f64) -> (GroupWork, f64) {
        if self.tp <= 1 || tokens <= 0.0 {
            return (GroupWork::default(), 0.0);
        }
        let msg = tokens * self.hidden_bytes;
        let ars = 2.0 * self.layers + 1.0;
        let mut bytes = ars * msg;
        let mut s = ars * self.allreduce_s(msg);
        if emitting > 0.0 {
            let logits = emitting * self.logit_bytes;
            bytes += logits;
            s += self.link.gather_s(self.tp, logits);
        }
        (GroupWork { flops: 0.0, bytes }, s)
    }

    /// Seconds of the stage-to-stage sends of one micro-batch of `tokens` tokens on
    /// its way through the pipeline (hidden states and residual, pp − 1 hops).
    pub(super) fn transfers_s(&self, tokens: f64) -> f64 {
        if self.pp <= 1 || tokens <= 0.0 {
            return 0.0;
        }
        (self.pp - 1) as f64 * self.link.p2p_s(2.0 * tokens * self.hidden_bytes)
    }

    /// Micro-batches a step of `seqs` sequences splits into: min(pp, seqs).
    pub(super) fn micro_batches(&self, seqs: u64) -> f64 {
        (self.pp as u64).min(seqs).max(1) as f64
    }

    /// Stage times a step of `k` micro-batches takes.
    pub(super) fn stage_times(&self, k: f64) -> f64 {
        self.schedule.stage_times(k as u64, self.pp as u64) as f64
    }
}
