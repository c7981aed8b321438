//! Unit tests of `src/specs.rs`.

use super::*;

#[test]
fn every_shipped_spec_parses_and_names_match() {
    for (name, _) in SHIPPED_MODELS {
        let m = load_model(name, None, "test", "model").unwrap();
        assert_eq!(&m.name, name);
    }
    for (name, _) in SHIPPED_GPUS {
        let g = load_gpu(name, None, "test", "gpu").unwrap();
        assert_eq!(&g.name, name);
    }
}

/// Shipped models whose card's active figure leaves out the token embedding (a
/// lookup, no matmul) and keeps the unembedding: the gpt-oss model card's parameter
/// table (arXiv 2508.10925) gives 3.61 B / 5.13 B, equal to our active count less
/// V·d (see the models' TOML notes). The other cards count the embeddings.
const ACTIVE_WITHOUT_EMBEDDING: &[&str] = &["gpt-oss-20b", "gpt-oss-120b"];

#[test]
fn parameter_counts_match_model_cards_within_2_percent() {
    for (name, _) in SHIPPED_MODELS {
        let m = load_model(name, None, "test", "model").unwrap();
        let ours = m.param_count() as f64 / 1e9;
        let rel = (ours - m.model_card_params_b).abs() / m.model_card_params_b;
        assert!(
            rel < 0.02,
            "{name}: derived {ours:.3} B vs card {} B",
            m.model_card_params_b
        );
        // MoE: the active figure too; dense: active equals total.
        match (&m.moe, m.model_card_active_params_b) {
            (Some(_), Some(card)) => {
                let mut active = m.active_param_count();
                if ACTIVE_WITHOUT_EMBEDDING.contains(name) {
                    active -= m.vocab_size * m.hidden_size;
                }
                let active = active as f64 / 1e9;
                let rel = (active - card).abs() / card;
                assert!(rel < 0.02, "{name}: active {active:.3} B vs card {card} B");
                assert!(m.active_param_count() < m.param_count(), "{name}");
            }
            (Some(_), None) => panic!("{name}: a MoE spec needs model_card_active_params_b"),
            (None, _) => assert_eq!(m.active_param_count(), m.param_count(), "{name}"),
        }
    }
}

#[test]
fn mixtral_experts_by_hand() {
    let m = load_model("mixtral-8x7b", None, "test", "model").unwrap();
    // One expert: 3 * 4096 * 14336 = 176,160,768; 8 experts and a router of
    // 4096 * 8 = 32,768 per layer: 1,409,318,912; every one of the 32 layers is MoE.
    assert_eq!(m.expert_params(), 3 * 4096 * 14336);
    assert_eq!(m.expert_params(), 176_160_768);
    assert_eq!(m.moe_layers(), 32);
    assert_eq!(m.moe_layer_shared_params(), 32_768);
    // Attention per layer: q 4096*4096 + k,v 2*4096*1024 + o 4096*4096 = 41,943,040.
    assert_eq!(m.layer_attn_params(), 41_943_040);
    // Embedding and untied head: 2 * 32000 * 4096 = 262,144,000.
    // Total: 262,144,000 + 32 * 41,943,040 + 32 * 1,409,318,912 = 46,702,526,464.
    assert_eq!(m.param_count(), 46_702_526_464);
    // Active, top-2: 262,144,000 + 32 * (41,943,040 + 2 * 176,160,768 + 32,768)
    // = 12,879,659,008 (card: 12.9 B).
    assert_eq!(m.active_param_count(), 12_879_659_008);
}

#[test]
fn deepseek_v3_mla_layer_and_latent_kv_by_hand() {
    let m = load_model("deepseek-v3", None, "test", "model").unwrap();
    // d = 7168, 128 heads, q_lora 1536, kv_lora 512, nope 128, rope 64, v 128:
    //   q_a  7168 * 1536              =  11,010,048
    //   q_b  1536 * 128 * (128 + 64)  =  37,748,736
    //   kv_a 7168 * (512 + 64)        =   4,128,768
    //   kv_b 512 * 128 * (128 + 128)  =  16,777,216
    //   o    128 * 128 * 7168         = 117,440,512
    assert_eq!(
        m.layer_attn_params(),
        11_010_048 + 37_748_736 + 4_128_768 + 16_777_216 + 117_440_512
    );
    assert_eq!(m.layer_attn_params(), 187_105_280);
    // The cache holds the latent and the rotary key: (512 + 64) * 2 bytes per
    // layer, times 61 layers = 70,272 bytes per token (a GQA cache of 128 heads
    // of 192 would be 2 * 128 * 192 * 2 * 61 = 5,996,544).
    assert_eq!(m.kv_bytes_per_token_layer(), (512 + 64) * 2);
    assert_eq!(m.kv_bytes_per_token(), 70_272);
    // 3 dense layers, then 58 MoE layers of 256 routed experts and one shared.
    assert_eq!(m.moe_layers(), 58);
    assert_eq!(m.quantization.as_deref(), Some("fp8"));
}

#[test]
fn llama_3_2_3b_weights_and_kv_by_hand() {
    let m = load_model("llama-3.2-3b-instruct", None, "test", "model").unwrap();
    // Embedding 128256*3072 = 394,002,432; per layer: q 3072*3072 + k,v 2*3072*1024
    // + o 3072*3072 + MLP 3*3072*8192 = 100,663,296; 28 layers = 2,818,572,288.
    assert_eq!(m.param_count(), 394_002_432 + 2_818_572_288);
    // 6.4 GB of fp16 weights, as DESIGN.md says.
    assert!((m.weight_bytes() as f64 / 1e9 - 6.43).abs() < 0.01);
    // KV: 2 * 8 heads * 128 * 2 bytes * 28 layers = 114,688 bytes per token.
    assert_eq!(m.kv_bytes_per_token(), 114_688);
}

#[test]
fn unknown_model_names_the_choices() {
    let e = load_model("gpt-9", None, "x.toml", "model").unwrap_err();
    assert!(e.message.contains("llama-3.1-8b"), "{e}");
    assert_eq!(e.field, "model");
}
