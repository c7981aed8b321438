//! Physical bounds the shipped specs and profiles must respect.

use infersim::cost::{CostModel, StepShape};
use infersim::profile::resolve_profile;
use infersim::specs::{load_gpu, load_model};

fn cost(gpu: &str, model: &str) -> CostModel {
    let g = load_gpu(gpu, None, "test", "gpu").unwrap();
    let m = load_model(model, None, "test", "model").unwrap();
    let p = resolve_profile(None, &g.name, "vllm", None, "test", "profile").unwrap();
    CostModel::new(&m, &g, &p).unwrap()
}

/// Every decode step reads all weights once: Llama-3.2-3B's 6.43 GB over a T4's
/// 320 GB/s is 20.1 ms, a floor no profile may beat (DESIGN §2; measured: 27 ms).
#[test]
fn t4_llama_3b_decode_is_bounded_by_weight_reads() {
    let m = load_model("llama-3.2-3b-instruct", None, "t", "m").unwrap();
    let g = load_gpu("t4", None, "t", "g").unwrap();
    let floor = m.weight_bytes() as f64 / g.peak_bandwidth();
    assert!((floor - 0.0201).abs() < 0.0002, "{floor}");
    let b = cost("t4", "llama-3.2-3b-instruct").explain(&StepShape::decode_only(1, 100, 0));
    assert!(b.seconds >= floor, "{} < {floor}", b.seconds);
    assert!(b.seconds < 0.040, "{}", b.seconds);
    assert_eq!(b.bound, "memory-bound");
}

/// 2048 prompt tokens of Llama-3.1-8B need 2 · 7.0e9 · 2048 ≈ 2.9e13 FLOP of dense
/// matmuls — 92 ms at the A100's peak — against 14 GB of weights (7 ms at 2 TB/s):
/// compute-bound.
#[test]
fn a100_llama_8b_prefill_2048_is_compute_bound() {
    let b = cost("a100-80gb", "llama-3.1-8b").explain(&StepShape::prefill_only(2048));
    assert_eq!(b.bound, "compute-bound");
    assert_eq!(b.dominant_group, "mlp");
    assert!(b.seconds > 2.9e13 / 312e12, "{}", b.seconds);
}

/// A decode step's time grows with batch and with context, never shrinks.
#[test]
fn decode_time_is_monotone_in_batch_and_context() {
    let c = cost("a100-40gb", "qwen3-14b");
    let mut last = 0.0;
    for b in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
        let t = c.price(&StepShape::decode_only(b, 500, 0)).times.wall_s();
        assert!(t >= last, "batch {b}: {t} < {last}");
        last = t;
    }
    let mut last = 0.0;
    for ctx in [1, 10, 100, 1000, 10_000, 40_000] {
        let t = c.price(&StepShape::decode_only(16, ctx, 0)).times.wall_s();
        assert!(t >= last, "context {ctx}: {t} < {last}");
        last = t;
    }
}

/// Gemma 3's sliding window: past 512 tokens only its 4 global layers read more KV,
/// so decode attention traffic grows 26/4 = 6.5× more slowly than below the window.
#[test]
fn sliding_window_caps_attention_reads() {
    let c = cost("l4", "gemma-3-1b-it");
    let attn = infersim::cost::GROUP_NAMES
        .iter()
        .position(|n| *n == "attn_decode")
        .unwrap();
    let bytes = |ctx| c.price(&StepShape::decode_only(1, ctx, 512)).groups[attn].bytes;
    let below = bytes(400) - bytes(300);
    let above = bytes(2100) - bytes(2000);
    assert!((below / above - 6.5).abs() < 1e-9, "{}", below / above);
}

/// A MIG instance is a smaller GPU: `3g.40gb` on an A100-80GB has 3/7 of its tensor
/// FLOP/s and 4/8 of its memory and bandwidth (NVIDIA's MIG user guide), so on a flat
/// roofline a decode step's memory time doubles and a prefill's compute time grows by
/// 7/3, exactly; `7g.80gb` is the whole GPU. With the kernel model (the slice on the
/// Ampere curves, fixed kernel times included) the slice is slower by less than those
/// ratios but more than most of them.
#[test]
fn mig_instances_scale_compute_and_bandwidth() {
    let g = load_gpu("a100-80gb", None, "t", "g").unwrap();
    let m = load_model("llama-3.1-8b", None, "t", "m").unwrap();
    let stack = resolve_profile(None, &g.name, "vllm", None, "t", "p").unwrap();
    let mut p = stack.clone();
    p.eta_compute = Some(0.8);
    p.eta_bandwidth = Some(0.8);
    let profile = |name: &str| g.mig_profiles.iter().find(|x| x.name == name).unwrap();
    let slice = g.mig_slice(profile("3g.40gb"));
    assert!((slice.tensor_tflops - 312.0 * 3.0 / 7.0).abs() < 1e-9);
    assert_eq!(slice.memory_bandwidth_gbps, g.memory_bandwidth_gbps / 2.0);
    assert_eq!(slice.memory_gib, g.memory_gib / 2.0);
    assert_eq!(slice.label(), "a100-80gb MIG 3g.40gb");
    let (full, part) = (
        CostModel::new(&m, &g, &p).unwrap(),
        CostModel::new(&m, &slice, &p).unwrap(),
    );
    let decode = StepShape::decode_only(1, 100, 0);
    let (a, b) = (full.price(&decode), part.price(&decode));
    assert_eq!(b.times.compute_s, 0.0);
    assert!(
        (b.times.memory_s / a.times.memory_s - 2.0).abs() < 1e-12,
        "{}",
        b.times.memory_s / a.times.memory_s
    );
    let prefill = StepShape::prefill_only(2048);
    let (a, b) = (full.price(&prefill), part.price(&prefill));
    assert!((b.times.compute_s / a.times.compute_s - 7.0 / 3.0).abs() < 1e-12);
    // The kernel model: the slice is priced on the Ampere curves (the tables were
    // measured on whole GPUs); compare it with the whole GPU on the same curves.
    let (full, part) = (
        CostModel::with_path(&m, &g, &stack, infersim::cost::GpuPath::Roofline).unwrap(),
        CostModel::new(&m, &slice, &stack).unwrap(),
    );
    let r = part.price(&decode).times.gpu_s() / full.price(&decode).times.gpu_s();
    assert!(r > 1.5 && r <= 2.0 + 1e-9, "decode {r}");
    let r = part.price(&prefill).times.gpu_s() / full.price(&prefill).times.gpu_s();
    assert!(r > 1.9 && r <= 7.0 / 3.0 + 0.1, "prefill {r}");
    let whole = g.mig_slice(profile("7g.80gb"));
    assert_eq!(
        (
            whole.tensor_tflops,
            whole.memory_bandwidth_gbps,
            whole.memory_gib
        ),
        (g.tensor_tflops, g.memory_bandwidth_gbps, g.memory_gib)
    );
}
