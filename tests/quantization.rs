//! Quantised weights and KV cache, by hand: AWQ's bytes on a tiny model with a flat
//! roofline, fp8 on an H100 equal to its measured fp8 GEMM table, fp8 on an A100
//! weight-only (16-bit compute, half the bytes), an fp8 KV cache doubling a memory
//! plan's blocks, 70B fitting one H100 in AWQ, the checkpoint's format as the
//! default, and every shipped GPU's low-precision rates; compressed-tensors schemes:
//! W8A8 INT8's bytes (fp32 channel scales) and INT8 peak by hand, where it is refused,
//! the scheme key's rules, and an llm-compressor config.json imported with its scheme.

mod common;

use common::{profile, slow_gpu, tiny_model};
use infersim::config::plan_memory;
use infersim::cost::quant::{self, ComputePath, KvCacheDtype, Quantization, WEIGHT_ONLY_ETA};
use infersim::cost::{kernels, CostModel, Deployment, GpuPath, StepShape};
use infersim::profile::resolve_profile;
use infersim::specs::{load_gpu, load_model, GpuSpec, ModelSpec};

const QKV: usize = 0;
const MLP: usize = 2;

fn deploy(method: Option<&str>, kv: KvCacheDtype) -> Deployment {
    Deployment {
        quantization: method.map(|m| Quantization::from_name(m).unwrap()),
        kv_cache_dtype: kv,
        ..Deployment::default()
    }
}

fn flat(model: &ModelSpec, gpu: &GpuSpec, d: &Deployment) -> CostModel {
    CostModel::for_deployment(model, gpu, &profile(0.0, 0.0, 0.0), GpuPath::Auto, d).unwrap()
}

/// An Ampere-like slow GPU: 1 GFLOP/s, 1 MB/s (one byte takes a microsecond; a
/// decode step of the tiny model is memory bound), compute capability 8.0.
fn slow_ampere() -> GpuSpec {
    GpuSpec {
        compute_capability: "8.0".into(),
        tensor_tflops: 1e-3,
        ..slow_gpu()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[test]
fn awq_weights_read_a_quarter_of_the_bytes_plus_the_group_scales() {
    // Tiny model: 512 dense parameters (one layer); K and V: 2 × 2 heads × 4 × 2 B =
    // 32 B per token. AWQ: 4 bits + (2 B scale + 0.5 B zero) per 128 weights =
    // 0.51953125 B per parameter: 512 × 0.51953125 = 266 B.
    let m = tiny_model();
    let gpu = slow_ampere();
    let step = StepShape::decode_only(1, 10, 0);
    let bf16 = flat(&m, &gpu, &Deployment::default()).price(&step);
    let awq = flat(&m, &gpu, &deploy(Some("awq_marlin"), KvCacheDtype::Auto)).price(&step);
    assert_eq!(bf16.groups[QKV].bytes, 1024.0 + 32.0);
    assert_eq!(awq.groups[QKV].bytes, 266.0 + 32.0);
    // Same FLOPs; memory bound at 1 MB/s: 298 µs against 1,056 µs.
    assert_eq!(awq.groups[QKV].flops, bf16.groups[QKV].flops);
    assert!(close(awq.group_s[QKV], 298e-6), "{}", awq.group_s[QKV]);
    assert!(close(bf16.group_s[QKV], 1056e-6), "{}", bf16.group_s[QKV]);
    // Resident weights: embeddings and LM head (2 × 32 × 8 params) stay 16-bit.
    assert_eq!(quant::weight_bytes(&m, None), 2048.0);
    let q = Quantization::from_name("awq").unwrap();
    assert_eq!(quant::weight_bytes(&m, Some(&q)), 1024.0 + 266.0);
}

#[test]
fn weight_only_computes_at_the_16_bit_peak_times_its_dequantisation_efficiency() {
    // A prefill of 1,000 tokens is compute bound on the slow GPU: 2 × 512 × 1,000
    // FLOPs at 1 GFLOP/s × 0.8 (AWQ) against at 1 GFLOP/s (bf16).
    let m = tiny_model();
    // 1 TB/s: the prompt's 33 kB of KV writes take 33 ns, its FLOPs a millisecond.
    let gpu = GpuSpec {
        memory_bandwidth_gbps: 1e3,
        ..slow_ampere()
    };
    let step = StepShape::prefill_only(1000);
    let bf16 = flat(&m, &gpu, &Deployment::default()).price(&step);
    let awq = flat(&m, &gpu, &deploy(Some("gptq_marlin"), KvCacheDtype::Auto)).price(&step);
    assert!(close(bf16.group_s[QKV], 1.024e6 / 1e9));
    assert!(close(awq.group_s[QKV], 1.024e6 / (1e9 * WEIGHT_ONLY_ETA)));
}

fn shipped(model: &str, gpu: &str) -> (ModelSpec, GpuSpec) {
    (
        load_model(model, None, "t", "m").unwrap(),
        load_gpu(gpu, None, "t", "g").unwrap(),
    )
}

#[test]
fn fp8_on_h100_uses_the_measured_fp8_table() {
    let (m, gpu) = shipped("llama-3.1-8b", "h100-sxm");
    let p = resolve_profile(None, &gpu.name, "vllm", None, "t", "p").unwrap();
    let d = deploy(Some("fp8"), KvCacheDtype::Auto);
    let cm = CostModel::for_deployment(&m, &gpu, &p, GpuPath::Auto, &d).unwrap();
    let bf = CostModel::new(&m, &gpu, &p).unwrap();
    let t = kernels::tables_for("h100-sxm").unwrap().unwrap();
    let fp8 = t.gemm_fp8.as_ref().expect("h100-sxm has fp8 GEMM rows");
    let [qkv, _, up, down, _] = m.gemm_nk();
    let layers = m.num_layers as f64;
    // 64 tokens: a grid point; 100: between 96 and 128 (linear in m).
    for tokens in [64u64, 100] {
        let x = tokens as f64;
        let c = cm.price(&StepShape::decode_only(tokens, 512, 0));
        let want_qkv = fp8.latency_us(x, qkv.0, qkv.1) * layers * 1e-6;
        let want_mlp =
            (fp8.latency_us(x, up.0, up.1) + fp8.latency_us(x, down.0, down.1)) * layers * 1e-6;
        assert!(
            close(c.group_s[QKV], want_qkv),
            "{} {want_qkv}",
            c.group_s[QKV]
        );
        assert!(
            close(c.group_s[MLP], want_mlp),
            "{} {want_mlp}",
            c.group_s[MLP]
        );
        // And faster than the bf16 table at this size (half the weight bytes).
        let b = bf.price(&StepShape::decode_only(tokens, 512, 0));
        assert!(c.group_s[MLP] < b.group_s[MLP]);
    }
    assert_eq!(
        Quantization::from_name("fp8").unwrap().path_on(&gpu),
        Ok(ComputePath::W8A8Fp8)
    );
}

#[test]
fn fp8_on_a100_is_weight_only_at_fp16_compute_with_half_the_bytes() {
    let (m, gpu) = shipped("llama-3.1-8b", "a100-80gb");
    assert_eq!(gpu.fp8_tflops, 0.0);
    let fp8 = deploy(Some("fp8"), KvCacheDtype::Auto);
    assert_eq!(
        fp8.quantization.as_ref().unwrap().path_on(&gpu),
        Ok(ComputePath::WeightOnly)
    );
    let dense = m.dense_params() as f64;
    // Decode of one token: memory bound; the weights are read in 1 byte each.
    let step = StepShape::decode_only(1, 100, 0);
    let a = flat(&m, &gpu, &fp8).price(&step);
    let b = flat(&m, &gpu, &Deployment::default()).price(&step);
    let kv_write = m.kv_bytes_per_token() as f64;
    assert_eq!(a.groups[QKV].bytes, dense + kv_write);
    assert_eq!(b.groups[QKV].bytes, 2.0 * dense + kv_write);
    assert!(close(a.group_s[QKV], (dense + kv_write) / 2039e9));
    // A long prefill: compute bound at the A100's 312 TFLOP/s × 0.8, not at an FP8
    // rate it does not have.
    let step = StepShape::prefill_only(8192);
    let a = flat(&m, &gpu, &fp8).price(&step);
    assert!(close(
        a.group_s[QKV],
        2.0 * dense * 8192.0 / (312e12 * WEIGHT_ONLY_ETA)
    ));
    // On an H100 the same flat prefill runs at its FP8 rate, 1,979 TFLOP/s.
    let (_, h100) = shipped("llama-3.1-8b", "h100-sxm");
    let h = flat(&m, &h100, &fp8).price(&step);
    assert!(close(h.group_s[QKV], 2.0 * dense * 8192.0 / 1979e12));
}

#[test]
fn an_fp8_kv_cache_doubles_the_blocks_of_a_memory_plan() {
    let (m, gpu) = shipped("llama-3.1-8b", "h100-sxm");
    let p = resolve_profile(None, &gpu.name, "vllm", None, "t", "p").unwrap();
    let plan = |kv| plan_memory(&m, &gpu, &p, 0.9, 16, 2048, 256, &deploy(None, kv), "t").unwrap();
    let auto = plan(KvCacheDtype::Auto);
    let fp8 = plan(KvCacheDtype::Fp8E4m3);
    // Same weights and reserve; 32 layers × 2 × 8 KV heads × 128 × 2 B = 128 KiB
    // per token in bf16, 64 KiB in fp8; a block holds 16 tokens.
    assert_eq!(auto.weights, fp8.weights);
    let free = auto.budget - auto.weights - auto.reserve;
    assert_eq!(auto.blocks, (free / (16.0 * 131072.0)).floor() as u64);
    assert_eq!(fp8.blocks, (free / (16.0 * 65536.0)).floor() as u64);
    assert!(fp8.blocks == 2 * auto.blocks || fp8.blocks == 2 * auto.blocks + 1);
    // And decode attention reads half the KV bytes.
    let step = StepShape::decode_only(8, 4096, 0);
    let a = flat(&m, &gpu, &deploy(None, KvCacheDtype::Auto)).price(&step);
    let b = flat(&m, &gpu, &deploy(None, KvCacheDtype::Fp8E5m2)).price(&step);
    assert_eq!(b.groups[5].bytes * 2.0, a.groups[5].bytes);
}

#[test]
fn awq_on_h100_fits_llama_70b_where_bf16_does_not() {
    let (m, gpu) = shipped("llama-3.1-70b", "h100-sxm");
    let p = resolve_profile(None, &gpu.name, "vllm", None, "t", "p").unwrap();
    let plan = |d: &Deployment| plan_memory(&m, &gpu, &p, 0.9, 16, 2048, 256, d, "t");
    assert!(plan(&Deployment::default()).is_err());
    let awq = plan(&deploy(Some("awq_marlin"), KvCacheDtype::Auto)).unwrap();
    // Layers at 0.51953125 B/param, embeddings and LM head in bf16.
    let layers = m.layers_params() as f64;
    let rest = (m.param_count() - m.layers_params()) as f64;
    assert_eq!(awq.weights, rest * 2.0 + layers * (0.5 + 2.5 / 128.0));
    assert!(awq.blocks > 0);
}

#[test]
fn the_checkpoint_format_is_the_default_and_a_different_method_is_refused() {
    let (mut m, gpu) = shipped("llama-3.1-8b", "h100-sxm");
    m.quantization = Some("fp8".into());
    let q = quant::resolve(&m, &gpu, None).unwrap().unwrap();
    assert_eq!(q.method, "fp8");
    let e = quant::resolve(&m, &gpu, Some("awq")).unwrap_err();
    assert!(e.contains("does not match"), "{e}");
    // vLLM's faster kernel for the same checkpoint format is accepted.
    m.quantization = Some("gptq".into());
    assert_eq!(
        quant::resolve(&m, &gpu, Some("gptq_marlin"))
            .unwrap()
            .unwrap()
            .method,
        "gptq_marlin"
    );
    // A quantised checkpoint priced as 16-bit would be wrong: refused.
    let p = profile(0.0, 0.0, 0.0);
    assert!(CostModel::new(&m, &gpu, &p).is_err());
    // NVFP4 is W4A4 where FP4 tensor cores exist, weight-only elsewhere.
    let nv = Quantization::from_name("modelopt_fp4").unwrap();
    let (_, b200) = shipped("llama-3.1-8b", "b200");
    assert_eq!(nv.path_on(&b200), Ok(ComputePath::W4A4Fp4));
    assert_eq!(nv.path_on(&gpu), Ok(ComputePath::WeightOnly));
}

#[test]
fn every_shipped_gpu_states_its_low_precision_rates() {
    // FP8 exactly on Ada, Hopper and Blackwell; FP4 exactly on Blackwell; each about
    // 2× the 16-bit rate where present (L40S's datasheet: 733 against 362.05), 4× for
    // FP4.
    for (name, _) in infersim::specs::SHIPPED_GPUS {
        let g = load_gpu(name, None, "t", "g").unwrap();
        let cc = quant::compute_capability(&g);
        assert_eq!(g.fp8_tflops > 0.0, cc >= 89, "{name}");
        assert_eq!(g.fp4_tflops > 0.0, cc >= 100, "{name}");
        if g.fp8_tflops > 0.0 {
            assert!(
                (g.fp8_tflops / g.tensor_tflops - 2.0).abs() < 0.03,
                "{name}"
            );
        }
        if g.fp4_tflops > 0.0 {
            assert!(
                (g.fp4_tflops / g.tensor_tflops - 4.0).abs() < 0.01,
                "{name}"
            );
        }
        assert!(g.int8_tops >= g.tensor_tflops, "{name}");
        // A MIG slice keeps the ratios.
        if let Some(p) = g.mig_profiles.first() {
            let s = g.mig_slice(p);
            assert!((s.fp8_tflops * g.tensor_tflops - g.fp8_tflops * s.tensor_tflops).abs() < 1e-6);
        }
    }
}

/// A slow Ampere-like GPU with INT8 tensor cores at `int8` TOPS and 1 TB/s.
fn int8_gpu(int8: f64) -> GpuSpec {
    GpuSpec {
        memory_bandwidth_gbps: 1e3,
        int8_tops: int8,
        ..slow_ampere()
    }
}

fn ct(scheme: &str, m: &ModelSpec) -> Deployment {
    Deployment {
        quantization: Some(Quantization::compressed(scheme, m).unwrap()),
        ..Deployment::default()
    }
}

#[test]
fn w8a8_int8_stores_one_byte_plus_an_fp32_scale_per_output_channel() {
    // Tiny model: d = 8, so each output row of 8 input weights has one fp32 scale:
    // 1 + 4/8 = 1.5 B per parameter; 512 dense parameters: 768 B (bf16: 1,024 B).
    let m = tiny_model();
    let q = Quantization::compressed("w8a8-int8", &m).unwrap();
    assert_eq!(q.format.bytes_per_param(), 1.5);
    assert_eq!(q.method, "compressed-tensors");
    assert_eq!(quant::weight_bytes(&m, Some(&q)), 1024.0 + 768.0);
    // A decode step reads the weights once plus the 32 B of K and V of one token
    // (memory bound at 1 MB/s: 800 µs).
    let gpu = GpuSpec {
        int8_tops: 1e-3,
        ..slow_ampere()
    };
    let c = flat(&m, &gpu, &ct("w8a8-int8", &m)).price(&StepShape::decode_only(1, 10, 0));
    assert_eq!(c.groups[QKV].bytes, 768.0 + 32.0);
    assert!(close(c.group_s[QKV], 800e-6), "{}", c.group_s[QKV]);
    // The other schemes, by hand: w4a16 a 16-bit scale per group of 128, w8a16 per
    // output channel, w8a8-fp8 and nvfp4 as fp8 and modelopt_fp4.
    let bpp = |s: &str| {
        Quantization::compressed(s, &m)
            .unwrap()
            .format
            .bytes_per_param()
    };
    assert_eq!(bpp("w4a16"), 0.5 + 2.0 / 128.0);
    assert_eq!(bpp("w8a16"), 1.0 + 2.0 / 8.0);
    assert_eq!(bpp("w8a8-fp8"), 1.0);
    assert_eq!(bpp("nvfp4"), 0.5625);
    for s in quant::SCHEMES {
        assert_eq!(
            Quantization::compressed(s, &m).unwrap().scheme.as_deref(),
            Some(*s)
        );
    }
    assert!(Quantization::compressed("w4a4-int", &m).is_none());
}

#[test]
fn w8a8_int8_computes_at_the_int8_peak_where_the_gpu_has_int8_tensor_cores() {
    // A 1,000-token prefill: 2 × 512 × 1,000 FLOPs (compute bound at 1 TB/s) at
    // 2 TOPS of INT8 against 1 TFLOP/s of bf16; w8a16 at 1 TFLOP/s × 0.8.
    let m = tiny_model();
    let gpu = int8_gpu(2e-3);
    let step = StepShape::prefill_only(1000);
    let int8 = flat(&m, &gpu, &ct("w8a8-int8", &m)).price(&step);
    let w8a16 = flat(&m, &gpu, &ct("w8a16", &m)).price(&step);
    assert!(
        close(int8.group_s[QKV], 1.024e6 / 2e9),
        "{}",
        int8.group_s[QKV]
    );
    assert!(close(w8a16.group_s[QKV], 1.024e6 / (1e9 * WEIGHT_ONLY_ETA)));
    let q = Quantization::compressed("w8a8-int8", &m).unwrap();
    assert_eq!(q.path_on(&gpu), Ok(ComputePath::W8A8Int8));
    // No INT8 tensor cores: refused (as a GPU without them cannot run CUTLASS int8).
    let e = q.path_on(&slow_ampere()).unwrap_err();
    assert!(e.contains("INT8 tensor cores"), "{e}");
    // Below vLLM's CompressedTensorsW8A8Int8.get_min_capability (75): refused.
    let volta = GpuSpec {
        compute_capability: "7.0".into(),
        ..gpu.clone()
    };
    let e = q.path_on(&volta).unwrap_err();
    assert!(e.contains("minimum capability: 75"), "{e}");
    // The T4 (7.5) runs it, where it cannot run fp8.
    let (_, t4) = shipped("llama-3.1-8b", "t4");
    assert_eq!(q.path_on(&t4), Ok(ComputePath::W8A8Int8));
    let (_, h100) = shipped("llama-3.1-8b", "h100-sxm");
    let g = quant::GemmFormat::new(&q, &h100).unwrap();
    assert_eq!(g.peak_flops, h100.int8_tops * 1e12);
    assert_eq!(g.act_bytes, 1.0);
}

#[test]
fn the_scheme_needs_compressed_tensors_and_defaults_to_the_checkpoints() {
    let m = tiny_model();
    let gpu = int8_gpu(1e-3);
    let key = |r: Result<Option<Quantization>, (&'static str, String)>| r.unwrap_err().0;
    assert_eq!(
        key(quant::resolve_scheme(
            &m,
            &gpu,
            Some("fp8"),
            Some("w8a8-int8")
        )),
        "quantization_scheme"
    );
    assert_eq!(
        key(quant::resolve_scheme(&m, &gpu, None, Some("w8a8-int8"))),
        "quantization_scheme"
    );
    assert_eq!(
        key(quant::resolve_scheme(
            &m,
            &gpu,
            Some("compressed-tensors"),
            None
        )),
        "quantization_scheme"
    );
    assert_eq!(
        key(quant::resolve_scheme(
            &m,
            &gpu,
            Some("compressed-tensors"),
            Some("int4")
        )),
        "quantization_scheme"
    );
    let got = quant::resolve_scheme(&m, &gpu, Some("compressed-tensors"), Some("w4a16"))
        .unwrap()
        .unwrap();
    assert_eq!(got, Quantization::compressed("w4a16", &m).unwrap());
    // A checkpoint's scheme is the default; naming another is refused.
    let ckpt = ModelSpec {
        quantization: Some("compressed-tensors".into()),
        quantization_scheme: Some("w8a8-int8".into()),
        ..tiny_model()
    };
    let got = quant::resolve_scheme(&ckpt, &gpu, None, None)
        .unwrap()
        .unwrap();
    assert_eq!(got.scheme.as_deref(), Some("w8a8-int8"));
    assert_eq!(
        key(quant::resolve_scheme(&ckpt, &gpu, None, Some("w8a16"))),
        "quantization_scheme"
    );
    assert_eq!(
        key(quant::resolve_scheme(&ckpt, &gpu, Some("fp8"), None)),
        "quantization"
    );
}

#[test]
fn a_compressed_tensors_config_json_imports_with_its_scheme() {
    // RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8's layout: int8 channel
    // weights, dynamic per-token int8 activations.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf/llama-3.1-8b-w8a8/config.json");
    let m = load_model(path.to_str().unwrap(), None, "t", "m").unwrap();
    assert_eq!(m.quantization.as_deref(), Some("compressed-tensors"));
    assert_eq!(m.quantization_scheme.as_deref(), Some("w8a8-int8"));
    let (bf16, h100) = shipped("llama-3.1-8b", "h100-sxm");
    assert_eq!(m.param_count(), bf16.param_count());
    let q = quant::resolve(&m, &h100, None).unwrap().unwrap();
    assert_eq!(q.path_on(&h100), Ok(ComputePath::W8A8Int8));
    // Embeddings and LM head in bf16, the layers at 1 + 4/4096 B per parameter.
    let lp = m.layers_params() as f64;
    let want = (m.param_count() as f64 - lp) * 2.0 + lp * (1.0 + 4.0 / 4096.0);
    assert_eq!(quant::weight_bytes(&m, Some(&q)), want);
    // Priced on the curves (there is no int8 table): a decode step is faster than
    // bf16's, which reads twice the weight bytes.
    let d = Deployment {
        quantization: Some(q),
        ..Deployment::default()
    };
    let p = resolve_profile(None, &h100.name, "vllm", None, "t", "p").unwrap();
    let step = StepShape::decode_only(8, 512, 0);
    let int8 = CostModel::for_deployment(&m, &h100, &p, GpuPath::Auto, &d)
        .unwrap()
        .price(&step);
    let base = CostModel::for_deployment(&bf16, &h100, &p, GpuPath::Auto, &Deployment::default())
        .unwrap()
        .price(&step);
    assert!(
        int8.times.gpu_s() < base.times.gpu_s(),
        "{} vs {}",
        int8.times.gpu_s(),
        base.times.gpu_s()
    );
}
