//! Cost-model behaviour that the end-to-end tests do not pin, for mutants that survived
//! them: the flat roofline's rates and sliding-window prefill attention.

mod common;

use common::*;
use infersim::cost::{CostModel, GpuPath, StepShape};
use infersim::profile::Profile;
use infersim::specs::{load_gpu, load_model, ModelSpec};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// The slow GPU does 1e6 FLOP/s and 1e6 B/s at its peak; a flat profile's
/// efficiencies (0.5 compute, 0.25 bandwidth) scale them.
#[test]
fn flat_profile_rates_are_peak_times_efficiency() {
    let p = Profile {
        eta_compute: Some(0.5),
        eta_bandwidth: Some(0.25),
        ..profile(0.0, 0.0, 0.0)
    };
    let cm = CostModel::new(&tiny_model(), &slow_gpu(), &p).unwrap();
    assert!(close(cm.flops_per_s(), 0.5e6), "{}", cm.flops_per_s());
    assert!(close(cm.bytes_per_s(), 0.25e6), "{}", cm.bytes_per_s());
}

/// A prompt shorter than the window attends the same pairs on a sliding-window layer
/// as on a full one, so Gemma 3 1B (22 of 26 layers with a 512-token window) prices a
/// 300-token prefill as the same model with every layer full, on the measured tables
/// and on the roofline curves alike. (Beyond the window the windowed model is
/// cheaper.)
#[test]
fn a_prompt_inside_the_window_costs_what_full_attention_does() {
    let windowed = load_model("gemma-3-1b-it", None, "test", "model").unwrap();
    let full = ModelSpec {
        sliding_window: 0,
        sliding_window_layers: 0,
        ..windowed.clone()
    };
    let gpu = load_gpu("a100-80gb", None, "test", "gpu").unwrap();
    let p = Profile {
        eta_compute: None,
        eta_bandwidth: None,
        ..profile(0.0, 0.0, 0.0)
    };
    for path in [GpuPath::Auto, GpuPath::Roofline] {
        let price = |m: &ModelSpec, n| {
            let cm = CostModel::with_path(m, &gpu, &p, path).unwrap();
            cm.price(&StepShape::prefill_only(n)).times.gpu_s()
        };
        let (w, f) = (price(&windowed, 300), price(&full, 300));
        assert!(close(w, f), "{path:?}: {w} against {f}");
        let (w, f) = (price(&windowed, 3000), price(&full, 3000));
        assert!(w < f, "{path:?}: {w} against {f}");
    }
}

/// Efficiencies are fractions in (0, 1]: 1 and 0.5 pass, 0, 1.5 and NaN are refused
/// naming the field and the range.
#[test]
fn profile_efficiencies_must_be_fractions() {
    let with = |c: f64| Profile {
        eta_compute: Some(c),
        eta_bandwidth: Some(0.5),
        ..profile(0.0, 0.0, 0.0)
    };
    assert!(with(1.0).check("p.toml").is_ok());
    assert!(with(0.5).check("p.toml").is_ok());
    for bad in [0.0, 1.5, f64::NAN] {
        let e = with(bad).check("p.toml").expect_err("refused");
        assert_eq!(e.field, "eta_compute", "{e}");
        assert!(e.message.contains("(0, 1]"), "{e}");
    }
}
