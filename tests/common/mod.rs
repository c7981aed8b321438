//! Shared builders for integration tests: a tiny model on a slow made-up GPU, so step
//! times can be worked out by hand.
#![allow(dead_code)]

pub mod blocks;
pub mod raw;
pub mod residual;

use infersim::cost::CostModel;
use infersim::gpu::Sharing;
use infersim::kv::KvGeometry;
use infersim::policy::Policy;
use infersim::profile::Profile;
use infersim::router::RouterKind;
use infersim::sim::{InstanceSetup, Scenario};
use infersim::specs::{GpuSpec, MlpKind, ModelSpec};
use infersim::time::Dur;
use infersim::workload::{Arrival, LengthDist, Stop, Trace, Workload};
use std::sync::Arc;

/// Runs the `infersim` binary from the crate root with `args` and extra environment
/// variables: (exit code, stdout, stderr).
pub fn infersim_bin(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infersim"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// 1 layer, d = 8, MLP 16 (plain), 2 heads of 4, vocab 32, fp16.
/// Dense params per layer: q 64 + k,v 128 + o 64 + MLP 256 = 512.
pub fn tiny_model() -> ModelSpec {
    ModelSpec {
        name: "tiny".into(),
        hf_repo: "none".into(),
        num_layers: 1,
        hidden_size: 8,
        intermediate_size: 16,
        num_heads: 2,
        num_kv_heads: 2,
        head_dim: 4,
        vocab_size: 32,
        tied_embeddings: false,
        max_context: 4096,
        dtype_bytes: 2,
        mlp: MlpKind::Plain,
        attention_bias: false,
        sliding_window: 0,
        sliding_window_layers: 0,
        learned_position_embeddings: 0,
        model_card_params_b: 0.0,
        model_card_active_params_b: None,
        chunked_window: false,
        quantization: None,
        quantization_scheme: None,
        moe: None,
        mla: None,
    }
}

/// 1 MFLOP/s and 1 MB/s: one FLOP or one byte takes a microsecond.
pub fn slow_gpu() -> GpuSpec {
    GpuSpec {
        name: "slow".into(),
        full_name: "slow".into(),
        architecture: "test".into(),
        compute_capability: "0".into(),
        tensor_tflops: 1e-6,
        fp8_tflops: 0.0,
        int8_tops: 0.0,
        fp4_tflops: 0.0,
        memory_gib: 1.0,
        memory_bandwidth_gbps: 1e-3,
        sm_count: 1,
        interconnect: "none".into(),
        interconnect_gbps: 1.0,
        link_kind: "nvlink".into(),
        link_gbps_per_direction: 1.0,
        link_latency_us: 0.0,
        gpus_per_node: 8,
        mps_max_clients: 48,
        mig_max_instances: 0,
        mig_profiles: Vec::new(),
        mig: None,
        price_per_gpu_hour_usd: 0.0,
        price_source: "none".into(),
    }
}

/// Efficiencies 1; the given overheads (µs); one sampler pass.
pub fn profile(gpu_step_us: f64, cpu_step_us: f64, cpu_overlap: f64) -> Profile {
    Profile {
        name: "test".into(),
        stack: "vllm".into(),
        status: "default".into(),
        eta_compute: Some(1.0),
        eta_bandwidth: Some(1.0),
        gpu_step_overhead_us: gpu_step_us,
        gpu_seq_overhead_us: 0.0,
        cpu_step_overhead_us: cpu_step_us,
        cpu_seq_overhead_us: 0.0,
        cpu_overlap,
        logits_passes: 1.0,
        api_latency_us: 0.0,
        api_seq_overhead_us: 0.0,
        api_request_us: 0.0,
        api_prompt_token_us: 0.0,
        non_torch_memory_gib: 0.0,
        source: String::new(),
        fit: None,
    }
}

/// The tiny model's cost model on the slow GPU.
pub fn tiny_cost(p: &Profile) -> CostModel {
    CostModel::new(&tiny_model(), &slow_gpu(), p).unwrap()
}

/// A workload replaying explicit (arrival seconds, input, output) rows.
pub fn trace_workload(rows: &[(f64, u32, u32)]) -> Workload {
    Workload {
        arrival: Arrival::Trace(Arc::new(Trace {
            rows: rows
                .iter()
                .map(|&(t, i, o)| (Dur::from_secs_f64(t), i, o))
                .collect(),
            prefixes: Vec::new(),
        })),
        input: LengthDist::Fixed { value: 1 },
        output: LengthDist::Fixed { value: 1 },
        stop: Stop::Requests(rows.len() as u64),
        max_context: 4096,
        prompt_pool: None,
        identical_outputs: false,
        classes: Vec::new(),
        shared: infersim::workload::SharedContext::None,
    }
}

/// One exclusive instance of the tiny model.
pub fn single(
    policy: Policy,
    cost: CostModel,
    block_size: u64,
    kv_blocks: u64,
    workload: Workload,
) -> Scenario {
    let geo = KvGeometry::new(&tiny_model(), block_size);
    alone(workload, policy, &cost, geo, kv_blocks)
}

/// One instance alone on its GPU, any model.
pub fn alone(
    workload: Workload,
    policy: Policy,
    cost: &CostModel,
    geo: KvGeometry,
    kv_blocks: u64,
) -> Scenario {
    Scenario {
        workload,
        gpus: vec![Sharing::Exclusive],
        instances: vec![InstanceSetup {
            gpu: 0,
            policy,
            cost: cost.clone(),
            geo,
            kv_blocks,
            active_thread_fraction: 1.0,
            api_latency: Dur(0),
            scheduler: Default::default(),
            stack: Default::default(),
        }],
        router: RouterKind::RoundRobin,
        front_end: Default::default(),
        client: Default::default(),
    }
}

/// vLLM-default continuous batching.
pub fn continuous() -> Policy {
    Policy::Continuous {
        max_num_seqs: 256,
        max_num_batched_tokens: 2048,
        chunked_prefill: true,
        prefix_caching: false,
    }
}

/// The tiny model (1 layer, d = 8, 2 heads of 4) with a gated MoE MLP: 4 experts of
/// width 4, top-2, no shared expert. Attention params 256; one expert 3 · 8 · 4 = 96;
/// router 8 · 4 = 32.
#[allow(dead_code)]
pub fn tiny_moe() -> ModelSpec {
    ModelSpec {
        name: "tiny-moe".into(),
        mlp: infersim::specs::MlpKind::Gated,
        moe: Some(infersim::specs::MoeSpec {
            num_experts: 4,
            experts_per_token: 2,
            expert_intermediate_size: 4,
            shared_expert_intermediate_size: 0,
            first_dense_layers: 0,
            layer_step: 1,
        }),
        ..tiny_model()
    }
}
