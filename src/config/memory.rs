//! Sizing an instance's memory: weights, the activations vLLM's profiling run
//! reserves, the runtime's own memory, and the KV-cache blocks that fit in the rest.

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
    debug_assert!(
        deploy.is_single_gpu(),
        "per-GPU memory of a sharded deployment"
    );
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
    })
}
