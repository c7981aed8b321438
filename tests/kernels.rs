//! The GPU part of the cost model: measured kernel tables, the roofline curves fitted
//! on them, and the stack profile shared by every GPU.

use infersim::cost::{CostModel, GpuPath, StepShape};
use infersim::kernel_fit::{covered_us, measured_sum, validation_steps};
use infersim::kernels::{curves_file, kernels_dir, tables_for};
use infersim::profile::{read_profile, resolve_profile, Profile};
use infersim::specs::{load_gpu, load_model, SHIPPED_GPUS};

fn stack() -> Profile {
    resolve_profile(None, "-", "vllm", None, "test", "profile").unwrap()
}

fn cost(gpu: &str, model: &str, path: GpuPath) -> CostModel {
    let g = load_gpu(gpu, None, "t", "gpu").unwrap();
    let m = load_model(model, None, "t", "model").unwrap();
    CostModel::with_path(&m, &g, &stack(), path).unwrap()
}

/// GPUs that ship measured tables.
fn measured() -> Vec<&'static str> {
    SHIPPED_GPUS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| tables_for(n).unwrap().is_some())
        .collect()
}

/// Every grid point of every shipped GEMM table comes back exactly, read from the
/// CSV independently of the loader.
#[test]
fn gemm_tables_are_exact_on_their_grid_points() {
    let gpus = measured();
    assert!(gpus.len() >= 5, "{gpus:?}");
    for gpu in gpus {
        let t = tables_for(gpu).unwrap().unwrap();
        let text = std::fs::read_to_string(kernels_dir().join(gpu).join("gemm.csv")).unwrap();
        let mut checked = 0;
        for line in text
            .lines()
            .skip(1)
            .filter(|l| l.starts_with("bf16,"))
            .step_by(97)
        {
            let v: Vec<f64> = line
                .split(',')
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            let got = t.gemm_bf16.latency_us(v[0], v[1], v[2]);
            assert!((got - v[3]).abs() <= 1e-9 * v[3], "{gpu} {line}: {got}");
            checked += 1;
        }
        assert!(checked > 10, "{gpu}: {checked}");
    }
}

/// Between grid points of m the table path is monotone where the measurements are:
/// the GEMM groups of a step never get cheaper with more tokens, on every GPU.
#[test]
fn table_gemm_time_is_monotone_in_tokens_between_grid_points() {
    for gpu in measured() {
        let cm = cost(gpu, "llama-3.1-8b", GpuPath::Auto);
        let t = tables_for(gpu).unwrap().unwrap();
        let ms = &t.gemm_bf16.ms;
        for w in ms.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            let at = |m: f64| {
                let c = cm.price(&StepShape::prefill_only(m as u64));
                c.group_s[0] + c.group_s[1] + c.group_s[2]
            };
            let (a, b) = (at(lo), at(hi));
            let mid = at(((lo + hi) / 2.0).floor().max(lo));
            // Linear between the grid points: the midpoint lies between the ends.
            assert!(
                mid >= a.min(b) - 1e-15 && mid <= a.max(b) + 1e-15,
                "{gpu} m {lo}..{hi}"
            );
        }
    }
}

/// The cost model's table path reproduces the measured kernel sums (computed from
/// the tables directly): the GEMM, LM-head and attention groups agree within 1 %.
#[test]
fn table_path_reproduces_measured_kernel_sums() {
    let m = load_model("llama-3.1-8b", None, "t", "model").unwrap();
    for gpu in measured() {
        let t = tables_for(gpu).unwrap().unwrap();
        let cm = cost(gpu, "llama-3.1-8b", GpuPath::Auto);
        for (label, s) in validation_steps() {
            let meas = measured_sum(&t, &m, &s).unwrap();
            let got = covered_us(&cm, &s);
            assert!(
                (got / meas - 1.0).abs() < 0.01,
                "{gpu} {label}: {got} vs {meas}"
            );
        }
    }
}

/// The same GPU forced onto the roofline curves of its architecture agrees with its
/// tables within the curves' stated error (README, "The cost of a step"): median
/// 15 %, worst 50 % over the validation steps of Llama-3.1-8B and Qwen3-14B.
#[test]
fn roofline_path_agrees_with_tables_within_the_stated_curve_error() {
    for gpu in measured() {
        let t = tables_for(gpu).unwrap().unwrap();
        let mut errs = Vec::new();
        for model in ["llama-3.1-8b", "qwen3-14b"] {
            let m = load_model(model, None, "t", "model").unwrap();
            let cm = cost(gpu, model, GpuPath::Roofline);
            for (_, s) in validation_steps() {
                errs.push(covered_us(&cm, &s) / measured_sum(&t, &m, &s).unwrap() - 1.0);
            }
        }
        let (med, worst) = infersim::kernel_fit::summarise(&errs);
        assert!(med <= 0.15, "{gpu}: median {med}");
        assert!(worst <= 0.50, "{gpu}: worst {worst}");
    }
}

/// GEMMs at most ~85 % of peak: a Llama-3.1-8B prefill of 2,048 tokens on an A100
/// takes at least 112 ms, with tables (A100-80GB) and on the Ampere curves
/// (A100-40GB, no tables).
#[test]
fn a100_prefill_of_2048_tokens_takes_at_least_112_ms() {
    for gpu in ["a100-80gb", "a100-40gb"] {
        let b = cost(gpu, "llama-3.1-8b", GpuPath::Auto).explain(&StepShape::prefill_only(2048));
        assert!(b.gpu_seconds >= 0.112, "{gpu}: {}", b.gpu_seconds);
        assert!(b.gpu_seconds < 0.2, "{gpu}: {}", b.gpu_seconds);
        assert_eq!(b.bound, "compute-bound", "{gpu}");
    }
}

/// `step-time` names each group's source: tables on a measured GPU, the roofline
/// elsewhere and for the groups no table covers.
#[test]
fn each_group_says_where_its_time_came_from() {
    let b = cost("h100-sxm", "llama-3.1-8b", GpuPath::Auto)
        .explain(&StepShape::decode_only(8, 1024, 0));
    let src = |n: &str| {
        b.groups
            .iter()
            .find(|g| g.name == n)
            .unwrap()
            .source
            .clone()
    };
    for g in ["qkv", "o_proj", "mlp", "lm_head", "attn_decode"] {
        assert_eq!(src(g), "table", "{g}");
    }
    assert_eq!(src("elementwise"), "roofline");
    assert_eq!(src("sampler"), "roofline");
    let b = cost("t4", "llama-3.2-3b-instruct", GpuPath::Auto)
        .explain(&StepShape::decode_only(8, 1024, 0));
    assert!(b.groups.iter().all(|g| g.source == "roofline"));
    assert!(b.gpu_part.contains("roofline"), "{}", b.gpu_part);
}

/// A step whose engine CPU work exceeds its GPU work is reported as CPU-bound.
#[test]
fn a_cpu_heavy_step_is_reported_cpu_bound() {
    let g = load_gpu("h100-sxm", None, "t", "gpu").unwrap();
    let m = load_model("llama-3.2-1b", None, "t", "model").unwrap();
    let mut p = stack();
    p.cpu_step_overhead_us = 3000.0;
    let b = CostModel::new(&m, &g, &p)
        .unwrap()
        .explain(&StepShape::decode_only(1, 128, 0));
    assert_eq!(b.bound, "cpu-bound");
}

/// Every architecture of a measured GPU has an anchor of its own in the curves, and
/// the shipped anchors are physical (efficiencies in (0, 1], floors of microseconds).
#[test]
fn curves_have_physical_anchors_per_architecture() {
    let c = curves_file().unwrap();
    for gpu in measured() {
        let g = load_gpu(gpu, None, "t", "gpu").unwrap();
        assert!(c.arch.contains_key(&g.architecture), "{}", g.architecture);
        assert!(c.gpu.contains_key(gpu), "{gpu}");
    }
    for a in c.arch.values().chain(c.gpu.values()).chain([&c.default]) {
        for eta in [a.gemm_eta, a.gemm_mem_eta, a.attn_eta, a.decode_eta] {
            assert!(eta > 0.2 && eta <= 1.0, "{a:?}");
        }
        for us in [a.gemm_floor_us, a.attn_floor_us, a.decode_floor_us] {
            assert!((0.5..100.0).contains(&us), "{a:?}");
        }
    }
}

/// The fitted stack profile is the same object on every GPU of that stack.
#[test]
fn the_stack_profile_is_the_same_on_every_gpu() {
    let first = resolve_profile(None, "a100-40gb", "vllm", None, "t", "p").unwrap();
    assert!(!first.is_flat());
    for (gpu, _) in SHIPPED_GPUS {
        let p = resolve_profile(None, gpu, "vllm", None, "t", "p").unwrap();
        assert_eq!(p, first, "{gpu}");
    }
}

/// A stack profile outside a plausibility band is an error that names the parameter.
#[test]
fn plausibility_bands_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let base =
        std::fs::read_to_string(infersim::profile::profiles_dir().join("vllm.toml")).unwrap();
    for (field, bad) in [
        ("cpu_seq_overhead_us", "169.45"),
        ("cpu_step_overhead_us", "10.0"),
        ("api_latency_us", "90000.0"),
        ("gpu_seq_overhead_us", "50.0"),
    ] {
        let text: String = base
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{field} =")) {
                    format!("{field} = {bad}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.path().join(format!("{field}.toml"));
        std::fs::write(&path, text).unwrap();
        let e = read_profile(&path).unwrap_err();
        // The error names the parameter as its field and says the band it must be in.
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains("plausibility band"), "{e}");
    }
}
