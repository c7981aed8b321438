//! Expert parallelism and DP + EP (src/cost/expert_parallel.rs): a tiny MoE over an
//! EP group of 2 on a round-number GPU with a flat roofline, worked by hand (experts
//! per GPU, the busiest GPU's load, the all-to-all's bytes and time, weights per
//! GPU); data-parallel attention priced at batch / N; the N-fold pool and batch
//! limits of a DP + EP instance; Qwen3-30B-A3B and DeepSeek-V3 on real GPUs.

mod common;

use common::{infersim_bin, profile, slow_gpu, tiny_moe};
use infersim::cost::expert_parallel::weight_bytes_per_gpu;
use infersim::cost::moe::expected_max_load;
use infersim::cost::{CostModel, Deployment, GpuPath, StepShape};
use infersim::specs::{load_gpu, load_model, GpuSpec, ModelSpec};
use std::path::Path;

/// The slow GPU (1 FLOP or byte per µs) with a link of 1 byte per µs per direction
/// and 2 µs per message.
fn gpu() -> GpuSpec {
    GpuSpec {
        link_gbps_per_direction: 1e-3,
        link_latency_us: 2.0,
        ..slow_gpu()
    }
}

fn deploy(tp: u32, dp: u32, ep: bool) -> Deployment {
    Deployment {
        tensor_parallel: tp,
        data_parallel: dp,
        expert_parallel: ep,
        ..Deployment::default()
    }
}

fn cost(model: &ModelSpec, d: &Deployment) -> CostModel {
    CostModel::for_deployment(model, &gpu(), &profile(0.0, 0.0, 0.0), GpuPath::Auto, d).unwrap()
}

#[test]
fn ep2_experts_load_and_all_to_all_by_hand() {
    let cm = cost(&tiny_moe(), &deploy(2, 1, true));
    let e = cm.expert_parallel().expect("an EP part");
    assert_eq!((e.ep, e.dp, e.experts_per_gpu), (2, 1, 2));
    // Routed experts stay whole under EP: 96 params each.
    assert_eq!(e.moe.expert_params, 96.0);
    // 64 tokens top-2: 128 assignments over 2 GPUs, mean 64, σ = √(128 · ½ · ½) = √32;
    // the busiest GPU's expected load 64 + √32 · √(2 ln 2).
    let load = 64.0 + 32f64.sqrt() * (2.0 * 2f64.ln()).sqrt();
    assert!((e.busiest_load(64.0) - load).abs() < 1e-12);
    assert_eq!(e.busiest_load(64.0), expected_max_load(64.0, 2, 4, 2));
    // Its work: 2 · load · 96 routed FLOPs + 2 · 64 · 32 router FLOPs; it reads its
    // half of the touched experts, E_d(64) / 2 = 2 (1 − 2⁻⁶⁴) ≈ 2 experts, and the router.
    let w = e.work(64.0);
    assert!((w.flops - (2.0 * load * 96.0 + 2.0 * 64.0 * 32.0)).abs() < 1e-9);
    assert!((w.bytes - (2.0 * 96.0 + 32.0) * 2.0).abs() < 1e-9);
    // All-to-all per GPU per direction: (64 / 2) tokens · k 2 · (2 − 1)/2 leave · d 8
    // · 2 bytes = 512 bytes; dispatch + combine in 1 layer: 2 · (2 µs + 512 µs).
    assert_eq!(e.a2a_bytes(64.0), 512.0);
    let (aw, at) = e.a2a(64.0);
    assert_eq!(aw.bytes, 1024.0);
    assert!((at - 1028e-6).abs() < 1e-15);

    // In the step: against TP 2 without EP (same TP collectives), the communication
    // group grows by exactly the all-to-all, and the dense group's MoE part changes
    // from the TP shard's (experts of width 2: 48 params) to the busiest GPU's.
    let tp = cost(&tiny_moe(), &deploy(2, 1, false));
    let s = StepShape::prefill_only(64);
    let (a, b) = (cm.price(&s), tp.price(&s));
    assert!((a.group_s[8] - b.group_s[8] - 1028e-6).abs() < 1e-12);
    assert_eq!(a.groups[8].bytes - b.groups[8].bytes, 1024.0);
    let tp_moe = 2.0 * 64.0 * (2.0 * 48.0 + 32.0);
    let diff = a.groups[0].flops - b.groups[0].flops;
    assert!((diff - (w.flops - tp_moe)).abs() < 1e-9, "{diff}");
}

#[test]
fn dp_ep_attention_per_rank_is_batch_over_n() {
    // DP 2 + EP over 2 GPUs (TP 1): the union step of 4 decodes of 10 keys each is
    // priced as one rank's 2 decodes: 20 keys, 4 · 2 heads · 4 = 32 FLOPs and
    // 2 · 2 · 4 · 2 = 32 bytes of KV per key.
    let cm = cost(&tiny_moe(), &deploy(1, 2, true));
    let c = cm.price(&StepShape::decode_only(4, 10, 0));
    assert_eq!(c.groups[5].flops, 640.0);
    assert_eq!(c.groups[5].bytes, 640.0);
    // Equal to a single GPU's decode attention of the rank's own 2 sequences.
    let one = CostModel::new(&tiny_moe(), &gpu(), &profile(0.0, 0.0, 0.0)).unwrap();
    let r = one.price(&StepShape::decode_only(2, 10, 0));
    assert_eq!(c.groups[5], r.groups[5]);
    // Dense group: the rank's 2 tokens through the attention projections (256
    // params: 2 · 256 · 2 FLOPs) and the router (2 · 2 · 32), the busiest GPU's
    // routed experts for all 4 tokens (2 · load · 96).
    let e = cm.expert_parallel().unwrap();
    let want = 2.0 * 256.0 * 2.0 + 2.0 * 2.0 * 32.0 + 2.0 * e.busiest_load(4.0) * 96.0;
    assert!((c.groups[0].flops - want).abs() < 1e-9);
    // The all-to-all moves all 4 tokens: 4 / 2 · 2 · ½ · 16 = 32 bytes each way.
    assert_eq!(e.a2a_bytes(4.0), 32.0);
    assert!((c.group_s[8] - 2.0 * (2e-6 + 32e-6)).abs() < 1e-15);
}

#[test]
fn weights_per_gpu_by_hand() {
    // TP 2 + EP: attention shard 128 params (q 32, k 32, v 32, o 32), 2 of the 4 whole
    // experts (192), the router (32), the vocabulary shard of the embedding and of
    // the LM head (32 padded to 64, halved: 32 rows · 8 = 256 each): 864 params, fp16.
    assert_eq!(
        weight_bytes_per_gpu(&tiny_moe(), &deploy(2, 1, true)),
        1728.0
    );
    // DP 2 + EP (TP 1): the whole attention (256), 2 experts (192), router (32),
    // the whole vocabulary twice (no padding without TP: 2 · 256): 992 params.
    assert_eq!(
        weight_bytes_per_gpu(&tiny_moe(), &deploy(1, 2, true)),
        1984.0
    );
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A model spec under tests/fixtures/.
fn fixture(rel: &str) -> ModelSpec {
    let f = root().join("tests/fixtures").join(rel);
    load_model(f.to_str().unwrap(), None, "test", "model").unwrap()
}

#[test]
fn qwen3_30b_a3b_ep_on_two_h100() {
    let m = fixture("moe/qwen3-30b-a3b.toml");
    let h100 = load_gpu("h100-sxm", None, "test", "gpu").unwrap();
    // 128 experts over 2 GPUs: 64 each. Weights per GPU: 48 layers · 64 experts ·
    // 3 · 2048 · 768 params fp16 = 28.99 GB of experts, plus the half of attention
    // and vocabulary.
    let d = deploy(1, 2, true);
    let w = weight_bytes_per_gpu(&m, &d);
    let experts = 48.0 * 64.0 * 3.0 * 2048.0 * 768.0 * 2.0;
    let attn = 48.0 * (2048.0 * 4096.0 * 2.0 + 2.0 * 2048.0 * 512.0) * 2.0;
    let vocab = 2.0 * 151936.0 * 2048.0 * 2.0;
    let router = 48.0 * 2048.0 * 128.0 * 2.0;
    assert!((w - (experts + attn + vocab + router)).abs() < 1.0, "{w}");
    let p = infersim::profile::resolve_profile(None, "h100-sxm", "vllm", None, "t", "p").unwrap();
    let cm = CostModel::for_deployment(&m, &h100, &p, GpuPath::Auto, &d).unwrap();
    assert_eq!(cm.expert_parallel().unwrap().experts_per_gpu, 64);
    // A decode step of 64 sequences: the all-to-all shows in the communication
    // group, and the step is dearer with more sequences (monotone).
    let a = cm.price(&StepShape::decode_only(64, 1024, 0));
    let b = cm.price(&StepShape::decode_only(128, 1024, 0));
    assert!(a.group_s[8] > 0.0);
    assert!(b.times.gpu_s() > a.times.gpu_s());
}

/// A Qwen3-30B-A3B experiment on `gpus` H100s with `engine` lines.
fn qwen_experiment(dir: &Path, gpus: u32, engine: &str) -> String {
    let model = root().join("tests/fixtures/moe/qwen3-30b-a3b.toml");
    let text = format!(
        "name = \"t\"\n[hardware]\ngpu = \"h100-sxm\"\nnum_gpus = {gpus}\n[engine]\nmodel = \"{}\"\npolicy = \"continuous\"\nmax_model_len = 4096\n{engine}\n[engine.continuous]\nmax_num_seqs = 64\nmax_num_batched_tokens = 1024\n[workload]\narrival = \"poisson\"\nrate_per_s = 5.0\nnum_requests = 50\ninput_tokens = {{ dist = \"fixed\", value = 256 }}\noutput_tokens = {{ dist = \"fixed\", value = 32 }}\n",
        model.display()
    );
    let f = dir.join(format!("exp-{gpus}.toml"));
    std::fs::write(&f, text).unwrap();
    f.display().to_string()
}

#[test]
fn dp_ep_instance_pools_and_limits_are_n_times_a_rank() {
    let dir = tempfile::tempdir().unwrap();
    // DP 2 + EP on 2 GPUs is one instance; DP 2 + EP on 4 GPUs is two.
    let f = qwen_experiment(
        dir.path(),
        4,
        "enable_expert_parallel = true\ndata_parallel_size = 2",
    );
    let out = dir.path().join("out");
    let (code, _, err) = infersim_bin(&["run", &f, "--out", out.to_str().unwrap(), "--quiet"], &[]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let row = &summary[0];
    assert_eq!(row["gpus"], 4);
    assert_eq!(row["instances"], 2);
    assert_eq!(row["completed"], 50);
    // The per-GPU plan of one rank (its batch limits: 1024 tokens, 64 sequences):
    // weights as by hand, the rest of 0.9 of the GPU for KV; the instance pools two
    // ranks' caches.
    let m = fixture("moe/qwen3-30b-a3b.toml");
    let h100 = load_gpu("h100-sxm", None, "test", "gpu").unwrap();
    let p = infersim::profile::resolve_profile(None, "h100-sxm", "vllm", None, "t", "p").unwrap();
    let d = deploy(1, 2, true);
    let plan =
        infersim::config::memory::plan_memory(&m, &h100, &p, 0.9, 16, 1024, 64, &d, "t").unwrap();
    assert_eq!(plan.weights, weight_bytes_per_gpu(&m, &d));
    assert_eq!(row["kv_cache_tokens"], 2 * plan.blocks * 16, "{row}");
}

#[test]
fn deepseek_v3_bf16_does_not_fit_on_one_h200_node() {
    // DeepSeek-V3 in bf16 (the checkpoint is fp8; pricing fp8 weights is the quant
    // branch's): DP 8 + EP on 8 H200 holds 32 of the 256 experts per GPU.
    let m = fixture("ep/deepseek-v3-bf16.toml");
    assert!(m.quantization.is_none());
    let d = deploy(1, 8, true);
    let w = weight_bytes_per_gpu(&m, &d);
    // 58 MoE layers · 32 experts · 3 · 7168 · 2048 params, bf16 = 163.5 GB of experts
    // alone per GPU: more than an H200's 139.8 GiB.
    let experts = 58.0 * 32.0 * 44_040_192.0 * 2.0;
    assert!(w > experts);
    let h200 = load_gpu("h200", None, "test", "gpu").unwrap();
    assert!(experts > h200.memory_bytes());
}

#[test]
fn dp_ep_fast_forward_equals_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let f = qwen_experiment(
        dir.path(),
        2,
        "enable_expert_parallel = true\ndata_parallel_size = 2",
    );
    let mut out = Vec::new();
    for (name, extra) in [("ff", None), ("sbs", Some("--step-by-step"))] {
        let o = dir.path().join(name);
        let mut args = vec!["run", &f, "--out", o.to_str().unwrap(), "--quiet"];
        args.extend(extra);
        let (code, _, err) = infersim_bin(&args, &[]);
        assert_eq!(code, 0, "{err}");
        out.push(std::fs::read(o.join("summary.json")).unwrap());
    }
    assert_eq!(out[0], out[1]);
}
