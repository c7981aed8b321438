//! Mixture-of-experts layers, latent attention (MLA) and chunked attention in the cost
//! model: expected distinct experts against the closed form and a Monte Carlo, step
//! prices of tiny models on the flat roofline worked by hand, the measured MoE table
//! and the curves' grouped-GEMM rule on real shapes, monotonicity in the step's tokens.

mod common;

use common::{profile, slow_gpu, tiny_model, tiny_moe};
use infersim::cost::moe::{expected_distinct_experts, expected_max_load, MoeCost};
use infersim::cost::variant::{chunked_keys, chunked_pairs};
use infersim::cost::{kernels, CostModel, PrefillChunk, Source, StepShape};
use infersim::profile::Profile;
use infersim::specs::{load_gpu, load_model, MlaSpec, MlpKind, ModelSpec, MoeSpec};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Mean and standard error of the distinct experts `tokens` tokens touch, each
/// choosing `k` distinct of `experts` uniformly, over `trials` seeded draws.
fn monte_carlo(tokens: usize, k: usize, experts: usize, trials: usize, seed: u64) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut sum, mut sq) = (0.0, 0.0);
    let mut hit = vec![false; experts];
    for _ in 0..trials {
        hit.iter_mut().for_each(|h| *h = false);
        for _ in 0..tokens {
            for e in sample(&mut rng, experts, k) {
                hit[e] = true;
            }
        }
        let n = hit.iter().filter(|h| **h).count() as f64;
        sum += n;
        sq += n * n;
    }
    let t = trials as f64;
    let mean = sum / t;
    let var = (sq / t - mean * mean).max(0.0) * t / (t - 1.0);
    (mean, (var / t).sqrt())
}

#[test]
fn distinct_experts_closed_form_matches_monte_carlo() {
    let cases: Vec<(usize, usize, usize)> = (1..=64)
        .map(|t| (t, 2, 8))
        .chain([1, 2, 3, 5, 8, 16, 32, 64, 128, 256].map(|t| (t, 8, 128)))
        .collect();
    for (i, &(t, k, e)) in cases.iter().enumerate() {
        let (mean, se) = monte_carlo(t, k, e, 4000, 17 + i as u64);
        let closed = expected_distinct_experts(t as f64, k as u32, e as u32);
        // Four standard errors (a miss has probability ~6e-5 per case). Where nearly
        // every draw touches all experts the sample's error is 0, so it is floored
        // by the error misses would have if independent (an upper bound: one token's
        // experts are distinct, which correlates the misses negatively): an expert
        // is missed with probability q = (1 − k/E)^T.
        let q = (1.0 - k as f64 / e as f64).powi(t as i32);
        let se_indep = (e as f64 * q * (1.0 - q) / 4000.0).sqrt();
        assert!(
            (mean - closed).abs() <= 4.0 * se.max(se_indep),
            "T {t}, k {k}, E {e}: Monte Carlo {mean} ± {se}, closed form {closed}"
        );
    }
    // Hand values: E = 8, k = 2, T = 2: 8 · (1 − 0.75²) = 3.5; T = 3: 8 · (1 − 0.421875).
    assert!((expected_distinct_experts(2.0, 2, 8) - 3.5).abs() < 1e-12);
    assert!((expected_distinct_experts(3.0, 2, 8) - 4.625).abs() < 1e-12);
}

#[test]
fn max_load_is_the_mean_plus_a_balls_into_bins_tail() {
    // 64 tokens top-2 over 8 groups: n = 128, mean 16, σ = √(128 · 1/8 · 7/8) = √14,
    // expected maximum 16 + √14 · √(2 ln 8).
    let want = 16.0 + 14f64.sqrt() * (2.0 * 8f64.ln()).sqrt();
    assert!((expected_max_load(64.0, 2, 8, 8) - want).abs() < 1e-12);
    // One group takes everything; the maximum never exceeds all assignments.
    assert_eq!(expected_max_load(64.0, 2, 8, 1), 128.0);
    assert!(expected_max_load(1.0, 2, 8, 8) <= 2.0);
    // The imbalance ratio falls toward 1 as the loads grow (law of large numbers).
    let m = MoeCost::new(&tiny_moe()).unwrap();
    assert!(m.imbalance(16.0) > m.imbalance(4096.0));
    assert!(m.imbalance(4096.0) > 1.0 && m.imbalance(4096.0) < 1.1);
}

#[test]
fn weights_read_go_from_k_experts_to_all() {
    let m = MoeCost::new(&tiny_moe()).unwrap();
    // T = 1: 2 experts of 96 params + the router's 32, fp16.
    assert_eq!(m.work(1.0).bytes, (2.0 * 96.0 + 32.0) * 2.0);
    // T large: all 4 experts.
    let big = m.work(1e6).bytes;
    assert!((big - (4.0 * 96.0 + 32.0) * 2.0).abs() < 1e-9);
    // FLOPs: 2 · T · (k · 96 + 32).
    assert_eq!(m.work(3.0).flops, 2.0 * 3.0 * (2.0 * 96.0 + 32.0));
    assert_eq!(m.work(0.0).bytes, 0.0);
    // A shared expert of width 4 (3 · 8 · 4 = 96 params) is read and computed by every
    // step and token: T = 1 reads 2 routed + 1 shared expert + the router.
    let mut shared = tiny_moe();
    shared.moe.as_mut().unwrap().shared_expert_intermediate_size = 4;
    let m = MoeCost::new(&shared).unwrap();
    assert_eq!(m.work(1.0).bytes, (3.0 * 96.0 + 32.0) * 2.0);
    assert_eq!(m.work(1.0).flops, 2.0 * (3.0 * 96.0 + 32.0));
}

#[test]
fn tiny_moe_step_on_flat_roofline_by_hand() {
    // Slow GPU: one FLOP or one byte per µs; efficiencies 1; no overheads.
    let cm = CostModel::new(&tiny_moe(), &slow_gpu(), &profile(0.0, 0.0, 0.0)).unwrap();
    // Decode of one sequence: attention projections 2 · 256 FLOPs and 512 bytes, KV
    // write 2 · 2 · 4 · 2 = 32 bytes; MoE 2 · (2 · 96 + 32) = 448 FLOPs and
    // (2 · 96 + 32) · 2 = 448 bytes (E_d(1) = 2).
    let c = cm.price(&StepShape::decode_only(1, 10, 0));
    assert_eq!(c.groups[0].flops, 512.0 + 448.0);
    assert_eq!(c.groups[0].bytes, 512.0 + 32.0 + 448.0);
    assert!((c.group_s[0] - 992e-6).abs() < 1e-15);
    // Prefill of 8 tokens: E_d(8) = 4 · (1 − 2⁻⁸) = 3.984375 experts read.
    let c = cm.price(&StepShape::prefill_only(8));
    let moe_bytes = (3.984375 * 96.0 + 32.0) * 2.0;
    assert_eq!(c.groups[0].flops, 2.0 * 256.0 * 8.0 + 2.0 * 8.0 * 224.0);
    assert!((c.groups[0].bytes - (512.0 + 8.0 * 32.0 + moe_bytes)).abs() < 1e-9);
    // Compute-bound: 7680 FLOPs = 7680 µs.
    assert!((c.group_s[0] - 7680e-6).abs() < 1e-12);
}

#[test]
fn dense_layers_of_a_moe_model_keep_the_dense_mlp() {
    // 4 layers, the first dense (DeepSeek's first_k_dense_replace = 1): dense work is
    // 4 · 256 attention + 1 · (3 · 8 · 16) dense MLP params.
    let mut m = tiny_moe();
    m.num_layers = 4;
    m.moe.as_mut().unwrap().first_dense_layers = 1;
    assert_eq!(m.moe_layers(), 3);
    let cm = CostModel::new(&m, &slow_gpu(), &profile(0.0, 0.0, 0.0)).unwrap();
    let c = cm.price(&StepShape::decode_only(1, 10, 0));
    let dense = 4.0 * 256.0 + 3.0 * 8.0 * 16.0;
    assert_eq!(c.groups[0].flops, 2.0 * dense + 3.0 * 448.0);
}

/// The tiny model with MLA: 2 heads, q projected directly, latent 6, rotary 2, nope 4,
/// v 4.
fn tiny_mla() -> ModelSpec {
    ModelSpec {
        name: "tiny-mla".into(),
        mla: Some(MlaSpec {
            q_lora_rank: 0,
            kv_lora_rank: 6,
            qk_nope_head_dim: 4,
            qk_rope_head_dim: 2,
            v_head_dim: 4,
        }),
        ..tiny_model()
    }
}

#[test]
fn mla_kv_and_attention_by_hand() {
    let m = tiny_mla();
    // Latent 6 + rotary key 2, fp16: 16 bytes per token per layer.
    assert_eq!(m.kv_bytes_per_token_layer(), 16);
    let cm = CostModel::new(&m, &slow_gpu(), &profile(0.0, 0.0, 0.0)).unwrap();
    // Decode, one sequence attending 10 keys: reads 10 latents (160 bytes); absorbed
    // attention 2 · 2 · (6 + 2) + 2 · 2 · 6 = 56 FLOPs per key.
    let c = cm.price(&StepShape::decode_only(1, 10, 0));
    assert_eq!(c.groups[5].bytes, 160.0);
    assert_eq!(c.groups[5].flops, 560.0);
    // Prefill of 3: 6 pairs of expanded attention, 2 · 2 · (4 + 2 + 4) = 40 FLOPs each.
    let c = cm.price(&StepShape::prefill_only(3));
    assert_eq!(c.groups[4].flops, 240.0);
    assert_eq!(c.groups[4].bytes, 48.0);
    // Projections: q 8 · 2 · 6 = 96, kv_a 8 · 8 = 64, kv_b 6 · 2 · 8 = 96, o 8 · 8 = 64
    // (320), MLP 2 · 8 · 16 = 256: 2 · 576 FLOPs per token.
    assert_eq!(m.layer_attn_params(), 320);
    assert_eq!(c.groups[0].flops, 3.0 * 2.0 * 576.0);
}

#[test]
fn chunked_attention_by_hand() {
    // Chunk 4: positions 0..5 attend 1, 2, 3, 4, 1, 2 = 13 keys (a sliding window
    // of 4 would attend 1, 2, 3, 4, 4, 4 = 18).
    assert_eq!(chunked_pairs(0, 6, 4), 13.0);
    assert_eq!(chunked_pairs(4, 2, 4), 3.0);
    assert_eq!(chunked_pairs(2, 5, 4), 3.0 + 4.0 + 1.0 + 2.0 + 3.0);
    assert_eq!(chunked_keys(2, 5, 4), 7.0);
    assert_eq!(chunked_keys(6, 1, 4), 3.0);
    // In a model: one chunked layer, window 4, prefill of 6 tokens: 13 pairs of
    // 4 · 2 · 4 = 32 FLOPs, 6 keys of 32 bytes read.
    let m = ModelSpec {
        sliding_window: 4,
        sliding_window_layers: 1,
        chunked_window: true,
        ..tiny_model()
    };
    let cm = CostModel::new(&m, &slow_gpu(), &profile(0.0, 0.0, 0.0)).unwrap();
    let c = cm.price(&StepShape::prefill_only(6));
    assert_eq!(c.groups[4].flops, 13.0 * 32.0);
    assert_eq!(c.groups[4].bytes, 6.0 * 32.0);
    // A chunk of 2 on 5 cached (positions 5, 6): 2 + 3 pairs, keys from position 4.
    let s = StepShape {
        prefills: vec![PrefillChunk { cached: 5, new: 2 }],
        emitting: 1,
        ..StepShape::default()
    };
    let c = cm.price(&s);
    assert_eq!(c.groups[4].flops, 5.0 * 32.0);
    assert_eq!(c.groups[4].bytes, 3.0 * 32.0);
}

fn fixture(name: &str) -> ModelSpec {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moe");
    load_model(name, Some(&base), "test", "model").unwrap()
}

fn default_profile() -> Profile {
    Profile {
        eta_compute: None,
        eta_bandwidth: None,
        ..profile(0.0, 0.0, 0.0)
    }
}

#[test]
fn fixtures_count_parameters_like_their_model_cards() {
    let m = fixture("mixtral-8x7b.toml");
    let total = m.param_count() as f64 / 1e9;
    let active = m.active_param_count() as f64 / 1e9;
    assert!((total - 46.7).abs() / 46.7 < 0.01, "{total}");
    assert!((active - 12.9).abs() / 12.9 < 0.01, "{active}");
    let q = fixture("qwen3-30b-a3b.toml");
    let total = q.param_count() as f64 / 1e9;
    assert!((total - 30.5).abs() / 30.5 < 0.01, "{total}");
}

#[test]
fn measured_moe_table_prices_mixtral_on_h100() {
    let m = fixture("mixtral-8x7b.toml");
    let gpu = load_gpu("h100-sxm", None, "test", "gpu").unwrap();
    let cm = CostModel::new(&m, &gpu, &default_profile()).unwrap();
    assert_eq!(cm.sources()[2], Source::Table);
    // One decode: calibration/kernels/h100-sxm/moe.csv has 258.7 µs per layer for
    // (4096, 14336, top-2, 8 experts) at 1 token; plus the router GEMM (n = 8) on the
    // curves, a few µs per layer.
    let c = cm.price(&StepShape::decode_only(1, 100, 0));
    let mlp_us = c.group_s[2] * 1e6 / 32.0;
    assert!(mlp_us > 258.7 && mlp_us < 258.7 + 15.0, "{mlp_us}");
    // Physical band: 2 experts' weights (2 · 3 · 4096 · 14336 · 2 bytes) at no more
    // than the datasheet's 3.35 TB/s.
    let floor_us = 2.0 * 3.0 * 4096.0 * 14336.0 * 2.0 / 3.35e12 * 1e6;
    assert!(mlp_us > floor_us);
}

#[test]
fn grouped_gemm_rule_on_the_curves_tracks_the_measured_table() {
    // The curves' rule (E_d GEMMs of T·k/E_d rows, one launch floor per kernel) against
    // the measured fused-MoE latency of two real shapes on H100 and H200. Measured
    // ratios: 0.67–1.14 up to 256 tokens (memory-bound: the weights streamed), 0.57–1.0
    // beyond (the fused Triton kernel reaches less of the tensor peak than the dense
    // GEMMs the curves were fitted on). The band is a factor 2 either way.
    for gpu in ["h100-sxm", "h200"] {
        let spec = load_gpu(gpu, None, "test", "gpu").unwrap();
        let tables = kernels::tables_for(gpu).unwrap().unwrap();
        let file = kernels::curves_file().unwrap();
        let curves = kernels::Curves {
            shape: file.shape,
            anchor: file.gpu[gpu],
            peak_flops: spec.peak_flops(),
            peak_bw: spec.peak_bandwidth(),
        };
        for name in ["mixtral-8x7b.toml", "qwen3-30b-a3b.toml"] {
            let model = fixture(name);
            let m = MoeCost::new(&model).unwrap();
            let shape = m.table_shape(&model).unwrap();
            let (ts, lat) = tables.moe.as_ref().unwrap().for_shape(shape).unwrap();
            for (t, l) in ts.iter().zip(lat) {
                // The table's balanced routing touches min(E, T·k) experts; compare at
                // uniform routing's E_d(T), as priced.
                let balanced = (t * m.k as f64).min(m.experts as f64);
                let r = m.routed_us(&curves, *t) / (l * m.touched(*t) / balanced);
                assert!(
                    (0.5..2.0).contains(&r),
                    "{gpu} {name} T {t}: curves / measured = {r}"
                );
            }
        }
    }
}

#[test]
fn price_is_monotone_in_the_step_tokens() {
    let flat = profile(0.0, 0.0, 0.0);
    let gpu = load_gpu("h100-sxm", None, "test", "gpu").unwrap();
    let l4 = load_gpu("l4", None, "test", "gpu").unwrap();
    // DeepSeek-like: MLA with a compressed query, a dense first layer, a shared expert.
    let mut deepseek = tiny_mla();
    deepseek.num_layers = 3;
    deepseek.mla.as_mut().unwrap().q_lora_rank = 4;
    deepseek.moe = Some(MoeSpec {
        shared_expert_intermediate_size: 4,
        first_dense_layers: 1,
        ..tiny_moe().moe.unwrap()
    });
    deepseek.mlp = MlpKind::Gated;
    let models = [
        tiny_moe(),
        deepseek,
        fixture("mixtral-8x7b.toml"),
        fixture("qwen3-30b-a3b.toml"),
    ];
    for m in &models {
        let cms = [
            CostModel::new(m, &slow_gpu(), &flat).unwrap(),
            // L4 has no tables: curves.
            CostModel::new(m, &l4, &default_profile()).unwrap(),
        ];
        for cm in &cms {
            let mut last = 0.0;
            for t in 1..=2048u64 {
                let s = cm.price(&StepShape::prefill_only(t)).times.gpu_s();
                assert!(s >= last, "{} T {t}: {s} < {last}", m.name);
                last = s;
            }
        }
        // Decode batches: more sequences (each its own tokens) never cost less.
        let cm = CostModel::new(m, &gpu, &default_profile()).unwrap();
        let mut last = 0.0;
        for b in 1..=256u64 {
            let s = cm.price(&StepShape::decode_only(b, 512, 0)).times.gpu_s();
            assert!(s >= last * 0.98, "{} batch {b}: {s} < {last}", m.name);
            last = last.max(s);
        }
    }
}

#[test]
fn quantised_checkpoints_are_still_refused() {
    let m = ModelSpec {
        quantization: Some("fp8".into()),
        ..tiny_moe()
    };
    assert!(CostModel::new(&m, &slow_gpu(), &profile(0.0, 0.0, 0.0)).is_err());
}
