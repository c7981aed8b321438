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

#[test]
fn parameter_counts_match_model_cards_within_3_percent() {
    for (name, _) in SHIPPED_MODELS {
        let m = load_model(name, None, "test", "model").unwrap();
        let ours = m.param_count() as f64 / 1e9;
        let rel = (ours - m.model_card_params_b).abs() / m.model_card_params_b;
        assert!(
            rel < 0.03,
            "{name}: derived {ours:.3} B vs card {} B",
            m.model_card_params_b
        );
    }
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
