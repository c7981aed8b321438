//! Sizing an instance's memory: weights, the activations vLLM's profiling run
//! reserves, the runtime's own memory, and the KV-cache blocks that fit in the rest;
//! per GPU for a tensor- or pipeline-parallel instance (each GPU holds its rank's
//! shard of its stage's layers, and vLLM sizes the KV cache by the GPU with the
//! least room: every rank holds the same number of blocks of its own heads and
//! layers).

use crate::cost::parallel::{shard, stage_layers, stage_weight_bytes};
use crate::cost::Deployment;
use crate::error::ConfigError;
use crate::profile::Profile;
use crate::specs::{GpuSpec, ModelSpec, GIB};

/// Estimated activation memory vLLM's profiling run reserves: the MLP intermediate of
/// a full token budget plus fp32 logits and probabilities of a full batch.
pub fn activation_bytes(model: &ModelSpec, batch_tokens: u64, batch_seqs: u64) -> f64 {
    let per_token = (2 * model.intermediate_size + 4 * model.hidden_size) * model.dtype_bytes;
    (batch_tokens * per_token) as f64 + (batch_seqs * model.vocab_size * 4 * 2) as f64
}

/// Bytes of weights resident on the GPU, in the deployment's weight format (the
/// quantised linear layers in theirs, the rest in the model's dtype).
pub fn weight_bytes(model: &ModelSpec, deploy: &Deployment) -> f64 {
    crate::cost::quant::weight_bytes(model, deploy.quantization.as_ref())
}

/// KV-cache bytes per token (all layers), in the deployment's KV dtype.
pub fn kv_bytes_per_token(model: &ModelSpec, deploy: &Deployment) -> u64 {
    crate::cost::quant::kv_bytes_per_token(model, deploy.kv_cache_dtype)
}

/// Memory arithmetic of one instance.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPlan {
    /// util × capacity, bytes.
    pub budget: f64,
    /// Weights, bytes.
    pub weights: f64,
    /// Activations + non-torch, bytes.
    pub reserve: f64,
    /// KV blocks.
    pub blocks: u64,
    /// KV bytes one token takes on the GPU that bounds the cache (all layers on one
    /// GPU; its heads and stage's layers on a sharded instance), with `weights` that
    /// GPU's.
    pub kv_bytes_per_token: f64,
}

/// Sizes an instance's KV pool; errors if the model does not fit.
#[allow(clippy::too_many_arguments)]
pub fn plan_memory(
    model: &ModelSpec,
    gpu: &GpuSpec,
    profile: &Profile,
    util: f64,
    block_size: u64,
    batch_tokens: u64,
    batch_seqs: u64,
    deploy: &Deployment,
    file: &str,
) -> Result<MemoryPlan, ConfigError> {
    if deploy.is_sharded() {
        return plan_sharded(
            model,
            gpu,
            profile,
            util,
            block_size,
            batch_tokens,
            batch_seqs,
            deploy,
            file,
        );
    }
    let budget = util * gpu.memory_bytes();
    let weights = weight_bytes(model, deploy);
    let reserve =
        activation_bytes(model, batch_tokens, batch_seqs) + profile.non_torch_memory_gib * GIB;
    let kv = budget - weights - reserve;
    if kv <= 0.0 {
        return Err(ConfigError::new(
            file,
            "engine.model",
            format!(
                "{} does not fit on {} at gpu_memory_utilization {util}: weights {:.2} GiB + activations and runtime {:.2} GiB exceed the {:.2} GiB budget by {:.2} GiB",
                model.name,
                gpu.label(),
                weights / GIB,
                reserve / GIB,
                budget / GIB,
                -kv / GIB
            ),
        ));
    }
    let per_block = (block_size * kv_bytes_per_token(model, deploy)) as f64;
    Ok(MemoryPlan {
        budget,
        weights,
        reserve,
        blocks: (kv / per_block).floor() as u64,
        kv_bytes_per_token: kv_bytes_per_token(model, deploy) as f64,
    })
}

/// [`plan_memory`] for a sharded instance, GPU by GPU (one rank of each stage: the
/// ranks of a stage hold equal shards).
#[allow(clippy::too_many_arguments)]
fn plan_sharded(
    model: &ModelSpec,
    gpu: &GpuSpec,
    profile: &Profile,
    util: f64,
    block_size: u64,
    batch_tokens: u64,
    batch_seqs: u64,
    deploy: &Deployment,
    file: &str,
) -> Result<MemoryPlan, ConfigError> {
    let (tp, pp) = (deploy.tensor_parallel, deploy.pipeline_parallel);
    let budget = util * gpu.memory_bytes();
    let rank = shard(model, deploy);
    // A rank's MLP intermediate is its share; the logits are gathered whole.
    let act = ModelSpec {
        vocab_size: model.vocab_size,
        ..rank.clone()
    };
    let reserve =
        activation_bytes(&act, batch_tokens, batch_seqs) + profile.non_torch_memory_gib * GIB;
    let kv_layer =
        crate::cost::quant::kv_bytes_per_token_layer(&rank, deploy.kv_cache_dtype) as f64;
    let weights = if deploy.expert_parallel {
        // Every GPU of the EP group holds the same: TP shards and E / ep experts.
        vec![crate::cost::expert_parallel::weight_bytes_per_gpu(
            model, deploy,
        )]
    } else {
        stage_weight_bytes(model, deploy)
    };
    let layers = stage_layers(model.num_layers, pp);
    let mut best: Option<(f64, f64, f64)> = None;
    for (i, (&w, &l)) in weights.iter().zip(&layers).enumerate() {
        let kv = budget - w - reserve;
        if kv <= 0.0 {
            let stage = if pp > 1 {
                format!(" of stage {} of {pp} ({l} layers)", i + 1)
            } else if deploy.expert_parallel {
                format!(
                    " (each of the {} GPUs, with {} of the routed experts)",
                    deploy.gpus(),
                    model
                        .moe
                        .as_ref()
                        .map_or(0, |m| m.num_experts / deploy.ep_size())
                )
            } else {
                String::new()
            };
            let (field, layout) = match deploy.expert_parallel {
                true => (
                    "engine.enable_expert_parallel",
                    format!(
                        "tensor_parallel_size {tp}, data_parallel_size {} and expert parallelism",
                        deploy.data_parallel
                    ),
                ),
                false => (
                    "engine.tensor_parallel_size",
                    format!("tensor_parallel_size {tp} and pipeline_parallel_size {pp}"),
                ),
            };
            return Err(ConfigError::new(
                file,
                field,
                format!(
                    "{} with {layout} does not fit on {} at gpu_memory_utilization {util}: per GPU{stage}, weights {:.2} GiB + activations and runtime {:.2} GiB exceed the {:.2} GiB budget by {:.2} GiB; use more GPUs per instance",
                    model.name,
                    gpu.label(),
                    w / GIB,
                    reserve / GIB,
                    budget / GIB,
                    -kv / GIB
                ),
            ));
        }
        let per_token = kv_layer * l as f64;
        let tokens = kv / per_token;
        if best.is_none_or(|b| tokens < b.0) {
            best = Some((tokens, w, per_token));
        }
    }
    let (tokens, w, per_token) = best.expect("at least one stage");
    Ok(MemoryPlan {
        budget,
        weights: w,
        reserve,
        blocks: (tokens / block_size as f64).floor() as u64,
        kv_bytes_per_token: per_token,
    })
}
