//! Tensor and pipeline parallelism, worked by hand: a TP = 2 step of the tiny model
//! is half its work plus its all-reduces; KV heads split or replicate as vLLM does;
//! a two-stage pipeline has the textbook bubble; Llama-3.1-70B fits on two H100s
//! and not on one, by the stated margins.

mod common;

use common::{profile, slow_gpu, tiny_model};
use infersim::config::plan_memory;
use infersim::cost::parallel::{kv_heads_per_rank, shard, stage_layers, stage_weight_bytes};
use infersim::cost::{CostModel, Deployment, GpuPath, PipelineSchedule, StepShape, GROUP_NAMES};
use infersim::specs::{load_gpu, load_model, GpuSpec, ModelSpec, GIB};

/// The slow GPU (1 FLOP or 1 byte of memory takes 1 µs) with a link of 1 MB/s per
/// direction (1 byte takes 1 µs) and 10 µs per message.
fn linked_gpu() -> GpuSpec {
    GpuSpec {
        link_gbps_per_direction: 1e-3,
        link_latency_us: 10.0,
        ..slow_gpu()
    }
}

/// The tiny model with a vocabulary of 128 (a multiple of vLLM's padding of 64, so
/// two ranks hold 64 rows each).
fn tiny128() -> ModelSpec {
    ModelSpec {
        vocab_size: 128,
        ..tiny_model()
    }
}

fn cost(model: &ModelSpec, tp: u32, pp: u32, schedule: PipelineSchedule) -> CostModel {
    let d = Deployment {
        tensor_parallel: tp,
        pipeline_parallel: pp,
        pipeline_schedule: schedule,
        ..Deployment::default()
    };
    CostModel::for_deployment(
        model,
        &linked_gpu(),
        &profile(0.0, 0.0, 0.0),
        GpuPath::Auto,
        &d,
    )
    .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

const ALLREDUCE: usize = 8;

/// One decode of one sequence attending 10 keys, tiny model (1 layer, d = 8, plain
/// MLP 16, 2 heads and 2 KV heads of 4, vocab 128, 2 bytes), flat roofline.
///
/// One GPU: dense 512 params: 1024 FLOPs, 1024 + 32 (KV write) bytes → 1056 µs; LM
/// head 8 × 128: 2048 FLOPs = 2048 bytes → 2048 µs; attention 4 · 8 · 10 = 320
/// FLOPs, 32 · 10 = 320 bytes → 320 µs; sampler 4 · 128 bytes → 512 µs: 3936 µs.
///
/// TP = 2: every part but the sampler halves (528 + 1024 + 160 µs; the logits are
/// gathered, so the sampler still reads 512 bytes), plus three all-reduces (two per
/// layer, one after the embedding) of 1 token × 8 × 2 = 16 bytes, one-shot on two
/// GPUs 10 + 16 = 26 µs each (two-shot would be 20 + 16), and the gather of 256
/// bytes of logits, 10 + 256/2 = 138 µs: 2224 + 78 + 138 = 2440 µs.
#[test]
fn tp2_step_is_half_the_work_plus_its_collectives() {
    let m = tiny128();
    let s = StepShape::decode_only(1, 10, 0);
    let one = CostModel::new(&m, &linked_gpu(), &profile(0.0, 0.0, 0.0))
        .unwrap()
        .price(&s);
    assert!(close(one.times.gpu_s(), 3936e-6), "{}", one.times.gpu_s());
    let two = cost(&m, 2, 1, PipelineSchedule::Steady).price(&s);
    assert_eq!(GROUP_NAMES[ALLREDUCE], "allreduce");
    assert!(
        close(two.group_s[ALLREDUCE], 216e-6),
        "{}",
        two.group_s[ALLREDUCE]
    );
    assert!(close(two.times.gpu_s(), 2440e-6), "{}", two.times.gpu_s());
    // Group by group: half the dense, head and attention work.
    for i in [0, 3, 5] {
        assert_eq!(
            two.groups[i].flops * 2.0,
            one.groups[i].flops,
            "{}",
            GROUP_NAMES[i]
        );
        assert_eq!(
            two.groups[i].bytes * 2.0,
            one.groups[i].bytes,
            "{}",
            GROUP_NAMES[i]
        );
    }
    assert_eq!(
        two.groups[7].bytes, one.groups[7].bytes,
        "sampler reads all logits"
    );
    // Single-GPU prices have no collectives.
    assert_eq!(one.group_s[ALLREDUCE], 0.0);
}

/// vLLM's KV-head rule: tp 8 on 8 KV heads holds one each; tp 8 on 4 replicates, so
/// each rank still holds one (Llama-3.1-70B: 2 · 1 · 128 · 2 bytes · 80 layers =
/// 40 KiB per token per rank, an eighth of the model's 320 KiB; with 4 KV heads the
/// model has 160 KiB and the 8 ranks hold 2 × that between them).
#[test]
fn kv_heads_split_or_replicate() {
    assert_eq!(kv_heads_per_rank(8, 8), 1);
    assert_eq!(kv_heads_per_rank(4, 8), 1);
    assert_eq!(kv_heads_per_rank(8, 2), 4);
    let m = load_model("llama-3.1-70b", None, "t", "model").unwrap();
    let d8 = Deployment {
        tensor_parallel: 8,
        ..Deployment::default()
    };
    assert_eq!(m.kv_bytes_per_token(), 320 * 1024);
    let r = shard(&m, &d8);
    assert_eq!((r.num_heads, r.num_kv_heads), (8, 1));
    assert_eq!(r.kv_bytes_per_token(), 40 * 1024);
    let m4 = ModelSpec {
        num_kv_heads: 4,
        ..m.clone()
    };
    let r4 = shard(&m4, &d8);
    assert_eq!(r4.num_kv_heads, 1);
    assert_eq!(r4.kv_bytes_per_token(), 40 * 1024);
    assert_eq!(8 * r4.kv_bytes_per_token(), 2 * m4.kv_bytes_per_token());
}

/// vLLM's `get_pp_indices`: the remainder goes to the stages before the last.
#[test]
fn stages_split_layers_as_vllm() {
    assert_eq!(stage_layers(80, 4), vec![20, 20, 20, 20]);
    assert_eq!(stage_layers(7, 3), vec![2, 3, 2]);
    assert_eq!(stage_layers(43, 10), vec![4, 4, 4, 4, 4, 4, 5, 5, 5, 4]);
}

/// Two stages of the tiny model with two layers (one each), a decode step of two
/// sequences attending 10 keys each: k = min(2, 2) = 2 micro-batches of one
/// sequence. A stage's micro-batch (priced as the stage with the LM head) is 1056 +
/// 2048 + 320 + 512 = 3936 µs (as the one-layer step above); a micro-batch crosses
/// one boundary with its hidden states and residual, 2 · 8 · 2 = 32 bytes: 10 + 32 =
/// 42 µs. Steady: max(k, pp) = 2 stage times, 7872 + 42 µs. Flush (GPipe): k + pp −
/// 1 = 3 stage times, 11808 + 42 µs, a bubble of (pp − 1)/(k + pp − 1) = 1/3. One
/// sequence (k = 1): both take pp = 2 stage times, half of them idle.
#[test]
fn two_stage_pipeline_has_the_textbook_bubble() {
    let m = ModelSpec {
        num_layers: 2,
        ..tiny128()
    };
    let s = StepShape::decode_only(2, 10, 0);
    let steady = cost(&m, 1, 2, PipelineSchedule::Steady).price(&s);
    let flush = cost(&m, 1, 2, PipelineSchedule::Flush).price(&s);
    assert!(
        close(steady.times.gpu_s(), 7914e-6),
        "{}",
        steady.times.gpu_s()
    );
    assert!(
        close(flush.times.gpu_s(), 11850e-6),
        "{}",
        flush.times.gpu_s()
    );
    let stage = 3936e-6;
    let bubble = (flush.times.gpu_s() - 42e-6 - 2.0 * stage) / (flush.times.gpu_s() - 42e-6);
    assert!((bubble - 1.0 / 3.0).abs() < 1e-9, "{bubble}");
    assert!(close(steady.group_s[ALLREDUCE], 42e-6));
    let one = StepShape::decode_only(1, 10, 0);
    let a = cost(&m, 1, 2, PipelineSchedule::Steady).price(&one);
    let b = cost(&m, 1, 2, PipelineSchedule::Flush).price(&one);
    assert!(
        close(a.times.gpu_s(), 2.0 * stage + 42e-6),
        "{}",
        a.times.gpu_s()
    );
    assert_eq!(a.times.gpu_s(), b.times.gpu_s());
    // The stage's GPU runs both micro-batches' work: the step's dense FLOPs on its
    // one layer, half the two-layer model's.
    let whole = CostModel::new(&m, &linked_gpu(), &profile(0.0, 0.0, 0.0))
        .unwrap()
        .price(&s);
    assert!(close(steady.groups[0].flops * 2.0, whole.groups[0].flops));
}

/// The price of a pipelined step splits into a fixed part and its decodes exactly as
/// a single GPU's does (the fast-forward relies on it).
#[test]
fn pipelined_fixed_part_completes_to_the_same_price() {
    let m = ModelSpec {
        num_layers: 4,
        ..tiny128()
    };
    let c = cost(&m, 2, 2, PipelineSchedule::Steady);
    let s = StepShape::decode_only(7, 33, 0);
    let f = c.price_fixed(&s);
    assert_eq!(
        c.price(&s),
        c.price_decodes(&f, s.decode_ctx_full, s.decode_ctx_window)
    );
}

/// Llama-3.1-70B in bf16 on H100-SXM at gpu_memory_utilization 0.9 (budget 0.9 ×
/// 79.19 GiB = 71.27 GiB): on one GPU its 131.4 GiB of weights exceed the budget;
/// on two each GPU holds half of every layer and half of the embedding and LM head,
/// (L / 2 + 2 · V · d / 2) · 2 bytes = 65.7 GiB, leaving room for a KV cache.
#[test]
fn llama_70b_fits_on_two_h100_and_not_on_one() {
    let m = load_model("llama-3.1-70b", None, "t", "model").unwrap();
    let g = load_gpu("h100-sxm", None, "t", "gpu").unwrap();
    let p = profile(0.0, 0.0, 0.0);
    let d1 = Deployment::default();
    let err = plan_memory(&m, &g, &p, 0.9, 16, 2048, 256, &d1, "t").unwrap_err();
    let budget = 0.9 * 79.19 * GIB;
    let weights1 = m.weight_bytes() as f64;
    let reserve1 = infersim::config::activation_bytes(&m, 2048, 256);
    let excess = (weights1 + reserve1 - budget) / GIB;
    assert!(
        err.message.contains(&format!("by {excess:.2} GiB")),
        "{}",
        err.message
    );
    let d2 = Deployment {
        tensor_parallel: 2,
        ..Deployment::default()
    };
    let plan = plan_memory(&m, &g, &p, 0.9, 16, 2048, 256, &d2, "t").unwrap();
    let by_hand =
        (m.layers_params() as f64 / 2.0 + 2.0 * (m.vocab_size * m.hidden_size) as f64 / 2.0) * 2.0;
    assert_eq!(plan.weights, by_hand);
    assert_eq!(stage_weight_bytes(&m, &d2), vec![by_hand]);
    assert!(
        (plan.weights / GIB - 65.71).abs() < 0.01,
        "{}",
        plan.weights / GIB
    );
    // Each GPU holds the same blocks of its 4 KV heads: 160 KiB per token.
    assert_eq!(plan.kv_bytes_per_token, 160.0 * 1024.0);
    let free = budget - plan.weights - plan.reserve;
    assert_eq!(plan.blocks, (free / (16.0 * 160.0 * 1024.0)).floor() as u64);
    // A half-memory budget does not fit: by the stated excess.
    let err = plan_memory(&m, &g, &p, 0.5, 16, 2048, 256, &d2, "t").unwrap_err();
    let short = (plan.weights + plan.reserve - 0.5 * 79.19 * GIB) / GIB;
    assert!(
        err.message.contains(&format!("by {short:.2} GiB")),
        "{}",
        err.message
    );
    assert_eq!(err.field, "engine.tensor_parallel_size");
}

/// On the shipped GPUs with measured all-reduce tables, more tensor parallelism
/// makes a decode step of Llama-3.1-70B faster but each all-reduce slower (more
/// GPUs), and the collectives take a share that grows with the group.
#[test]
fn more_tensor_parallelism_is_faster_with_a_growing_allreduce_share() {
    let m = load_model("llama-3.1-70b", None, "t", "model").unwrap();
    for gpu in ["h100-sxm", "a100-80gb"] {
        let g = load_gpu(gpu, None, "t", "gpu").unwrap();
        let p = infersim::profile::resolve_profile(None, &g.name, "vllm", None, "t", "p").unwrap();
        let s = StepShape::decode_only(64, 1024, 0);
        let mut last = (f64::INFINITY, 0.0);
        for tp in [2, 4, 8] {
            let d = Deployment {
                tensor_parallel: tp,
                ..Deployment::default()
            };
            let c = CostModel::for_deployment(&m, &g, &p, GpuPath::Auto, &d).unwrap();
            let b = c.explain(&s);
            let share = b.allreduce_share.unwrap();
            assert!(b.gpu_seconds < last.0, "{gpu} tp {tp}");
            assert!(share > last.1, "{gpu} tp {tp}: {share}");
            assert!(b
                .groups
                .iter()
                .any(|g| g.name == "allreduce" && g.source == "table"));
            last = (b.gpu_seconds, share);
        }
    }
}
