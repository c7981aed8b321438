//! Fitting the roofline curves on the measured kernel tables, and validating them:
//! `infersim kernels fit` writes `calibration/kernels/curves.toml`; `infersim kernels
//! check` compares the cost model with the tables and predicts each measured GPU's
//! tables with curves fitted without it (leave one GPU out).
//!
//! The fit sees only the tables (never a serving study). Its points are the shapes
//! serving uses: every dense GEMM and LM head of the shipped 16-bit models at the
//! table's m values from 1 to 16,384; prefill attention of their head shapes at
//! 128–16,384 tokens; decode attention at batch 1–256 and 256–16,384 cached keys.
//! The shape of the curves (GEMM ridge sharpness, the m and the length at which
//! efficiency reaches half) is the median over GPUs; each GPU's anchor (efficiencies
//! and fixed times) is then refitted with that shape; an architecture's anchor is the
//! mean of its GPUs', and an architecture without a measured GPU gets the median.

use crate::calibrate::nelder_mead;
use crate::cost::{CostModel, GpuPath, StepShape, GROUP_NAMES};
use crate::kernels::{CurveAnchor, CurveShape, Curves, CurvesFile, KernelTables};
use crate::profile::Profile;
use crate::specs::{GpuSpec, ModelSpec};
use std::collections::BTreeMap;

/// One measured point the curves must reproduce.
#[derive(Debug, Clone, Copy)]
enum Point {
    Gemm { m: f64, n: f64, k: f64, us: f64 },
    Prefill { flops: f64, len: f64, us: f64 },
    Decode { bytes: f64, flops: f64, us: f64 },
}

/// A measured GPU: its spec and tables.
pub struct Measured {
    /// Datasheet.
    pub gpu: GpuSpec,
    /// Tables.
    pub tables: KernelTables,
}

fn points(t: &KernelTables, models: &[ModelSpec]) -> Vec<Point> {
    let mut nk: Vec<(f64, f64)> = models.iter().flat_map(ModelSpec::gemm_nk).collect();
    nk.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    nk.dedup();
    let mut out = Vec::new();
    for &(n, k) in &nk {
        let curve = t.gemm_bf16.m_curve(n, k);
        for (i, &m) in t.gemm_bf16.ms.iter().enumerate() {
            if m <= 16384.0 {
                out.push(Point::Gemm {
                    m,
                    n,
                    k,
                    us: curve[i],
                });
            }
        }
    }
    let mut shapes: Vec<(u32, u32, u64)> = models
        .iter()
        .map(|m| (m.num_heads, m.num_kv_heads, m.head_dim))
        .collect();
    shapes.sort();
    shapes.dedup();
    for &(h, kv, hd) in &shapes {
        let per_pair = 4.0 * (h as u64 * hd) as f64;
        if let Some(g) = t.context_attention.for_shape(h, kv, hd) {
            for (li, &len) in g.lens.iter().enumerate() {
                if (128.0..=16384.0).contains(&len) {
                    out.push(Point::Prefill {
                        flops: per_pair * len * (len + 1.0) / 2.0,
                        len,
                        us: g.lat_us[li],
                    });
                }
            }
        }
        if let Some(g) = t.generation_attention.for_shape(h, kv, hd) {
            let kv_bytes = 2.0 * (kv as u64 * hd) as f64 * 2.0;
            for (bi, &b) in g.batches.iter().enumerate() {
                for (li, &len) in g.lens.iter().enumerate() {
                    if b <= 256.0 && (256.0..=16384.0).contains(&len) {
                        out.push(Point::Decode {
                            bytes: b * len * kv_bytes,
                            flops: b * len * per_pair,
                            us: g.lat_us[bi * g.lens.len() + li],
                        });
                    }
                }
            }
        }
    }
    out
}

fn predict(c: &Curves, p: &Point) -> (f64, f64) {
    match *p {
        Point::Gemm { m, n, k, us } => (c.gemm_us(m, n, k), us),
        Point::Prefill { flops, len, us } => (c.prefill_attn_us(flops, len), us),
        Point::Decode { bytes, flops, us } => (c.decode_attn_us(bytes, flops), us),
    }
}

fn sq_log_err(c: &Curves, pts: &[Point]) -> f64 {
    let mut s = 0.0;
    for p in pts {
        let (pred, meas) = predict(c, p);
        let e = (pred.max(1e-12) / meas.max(1e-12)).ln();
        s += e * e;
    }
    s / pts.len().max(1) as f64
}

fn logit(v: f64) -> f64 {
    let v = v.clamp(1e-6, 1.0 - 1e-6);
    (v / (1.0 - v)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

const START_SHAPE: CurveShape = CurveShape {
    gemm_ridge_p: 2.0,
    gemm_m_half: 32.0,
    attn_l_half: 512.0,
};

const START_ANCHOR: CurveAnchor = CurveAnchor {
    gemm_eta: 0.75,
    gemm_mem_eta: 0.75,
    gemm_floor_us: 5.0,
    attn_eta: 0.5,
    attn_floor_us: 10.0,
    decode_eta: 0.6,
    decode_floor_us: 5.0,
};

/// Parameters of one fit, to and from the unconstrained space.
fn encode(s: &CurveShape, a: &CurveAnchor, with_shape: bool) -> Vec<f64> {
    let mut x = vec![
        logit(a.gemm_eta),
        logit(a.gemm_mem_eta),
        a.gemm_floor_us.ln(),
        logit(a.attn_eta),
        a.attn_floor_us.ln(),
        logit(a.decode_eta),
        a.decode_floor_us.ln(),
    ];
    if with_shape {
        x.extend([
            (s.gemm_ridge_p - 1.0).max(1e-3).ln(),
            s.gemm_m_half.ln(),
            s.attn_l_half.ln(),
        ]);
    }
    x
}

fn decode_x(x: &[f64], shape: &CurveShape) -> (CurveShape, CurveAnchor) {
    let a = CurveAnchor {
        gemm_eta: sigmoid(x[0]),
        gemm_mem_eta: sigmoid(x[1]),
        gemm_floor_us: x[2].exp(),
        attn_eta: sigmoid(x[3]),
        attn_floor_us: x[4].exp(),
        decode_eta: sigmoid(x[5]),
        decode_floor_us: x[6].exp(),
    };
    let s = if x.len() > 7 {
        CurveShape {
            gemm_ridge_p: 1.0 + x[7].exp(),
            gemm_m_half: x[8].exp(),
            attn_l_half: x[9].exp(),
        }
    } else {
        *shape
    };
    (s, a)
}

/// Fits one GPU's anchor (and, with `free_shape`, a shape of its own) on its points.
fn fit_one(
    gpu: &GpuSpec,
    pts: &[Point],
    shape: &CurveShape,
    free_shape: bool,
) -> (CurveShape, CurveAnchor) {
    let curves = |s: CurveShape, a: CurveAnchor| Curves {
        shape: s,
        anchor: a,
        peak_flops: gpu.peak_flops(),
        peak_bw: gpu.peak_bandwidth(),
    };
    let mut f = |x: &[f64]| {
        let (s, a) = decode_x(x, shape);
        sq_log_err(&curves(s, a), pts)
    };
    let mut best = encode(shape, &START_ANCHOR, free_shape);
    let mut best_v = f(&best);
    // Restarts from the best point found: Nelder–Mead stalls on ridges.
    for _ in 0..4 {
        let (x, v, _) = nelder_mead(&mut f, &best, 0.7, 3000);
        if v < best_v - 1e-12 {
            best_v = v;
            best = x;
        } else {
            break;
        }
    }
    decode_x(&best, shape)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn combine(anchors: &[CurveAnchor], how: fn(Vec<f64>) -> f64) -> CurveAnchor {
    let f = |g: fn(&CurveAnchor) -> f64| how(anchors.iter().map(g).collect());
    CurveAnchor {
        gemm_eta: f(|a| a.gemm_eta),
        gemm_mem_eta: f(|a| a.gemm_mem_eta),
        gemm_floor_us: f(|a| a.gemm_floor_us),
        attn_eta: f(|a| a.attn_eta),
        attn_floor_us: f(|a| a.attn_floor_us),
        decode_eta: f(|a| a.decode_eta),
        decode_floor_us: f(|a| a.decode_floor_us),
    }
}

fn mean(v: Vec<f64>) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The curves fitted on `measured` GPUs.
pub fn fit_curves(measured: &[Measured], models: &[ModelSpec]) -> CurvesFile {
    let pts: Vec<Vec<Point>> = measured.iter().map(|m| points(&m.tables, models)).collect();
    let free: Vec<(CurveShape, CurveAnchor)> = measured
        .iter()
        .zip(&pts)
        .map(|(m, p)| fit_one(&m.gpu, p, &START_SHAPE, true))
        .collect();
    let shape = CurveShape {
        gemm_ridge_p: median(free.iter().map(|f| f.0.gemm_ridge_p).collect()),
        gemm_m_half: median(free.iter().map(|f| f.0.gemm_m_half).collect()),
        attn_l_half: median(free.iter().map(|f| f.0.attn_l_half).collect()),
    };
    let mut gpu = BTreeMap::new();
    let mut by_arch: BTreeMap<String, Vec<CurveAnchor>> = BTreeMap::new();
    for (m, p) in measured.iter().zip(&pts) {
        let (_, a) = fit_one(&m.gpu, p, &shape, false);
        let a = round_anchor(a);
        gpu.insert(m.gpu.name.clone(), a);
        by_arch
            .entry(m.gpu.architecture.clone())
            .or_default()
            .push(a);
    }
    let arch: BTreeMap<String, CurveAnchor> = by_arch
        .iter()
        .map(|(k, v)| (k.clone(), round_anchor(combine(v, mean))))
        .collect();
    let default = round_anchor(combine(&arch.values().copied().collect::<Vec<_>>(), median));
    CurvesFile {
        source: format!(
            "fitted by `infersim kernels fit` on the measured kernel tables of {} (calibration/kernels/), at the GEMM and attention shapes of {} shipped models; nothing else",
            measured
                .iter()
                .map(|m| m.gpu.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            models.len()
        ),
        shape: CurveShape {
            gemm_ridge_p: round4(shape.gemm_ridge_p),
            gemm_m_half: round4(shape.gemm_m_half),
            attn_l_half: round4(shape.attn_l_half),
        },
        default,
        arch,
        gpu,
        leave_one_out: Vec::new(),
    }
}

fn round4(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let mag = 10f64.powi(3 - v.abs().log10().floor() as i32);
    (v * mag).round() / mag
}

fn round_anchor(a: CurveAnchor) -> CurveAnchor {
    CurveAnchor {
        gemm_eta: round4(a.gemm_eta),
        gemm_mem_eta: round4(a.gemm_mem_eta),
        gemm_floor_us: round4(a.gemm_floor_us),
        attn_eta: round4(a.attn_eta),
        attn_floor_us: round4(a.attn_floor_us),
        decode_eta: round4(a.decode_eta),
        decode_floor_us: round4(a.decode_floor_us),
    }
}

/// The validation steps: prefill of 1–8,192 tokens and decode of batch 1–256 at
/// contexts 512–2,048.
pub fn validation_steps() -> Vec<(String, StepShape)> {
    let mut v = Vec::new();
    for p in [1u64, 16, 128, 512, 1024, 2048, 4096, 8192] {
        v.push((format!("prefill {p}"), StepShape::prefill_only(p)));
    }
    for b in [1u64, 8, 32, 64, 128, 256] {
        for c in [512u64, 1024, 2048] {
            v.push((format!("decode {b}x{c}"), StepShape::decode_only(b, c, 0)));
        }
    }
    v
}

/// The measured kernel sum of a step: the tables' own GEMM and attention latencies
/// summed over the layers, computed from the tables directly (not through the cost
/// model), µs; `None` when the tables lack the model's attention shape.
pub fn measured_sum(t: &KernelTables, m: &ModelSpec, s: &StepShape) -> Option<f64> {
    let tokens = s.num_tokens() as f64;
    let layers = m.num_layers as f64;
    let g = m.gemm_nk();
    let mut us = 0.0;
    for &(n, k) in &g[..4] {
        us += t.gemm_bf16.latency_us(tokens, n, k) * layers;
    }
    us += t.gemm_bf16.latency_us(s.emitting as f64, g[4].0, g[4].1);
    let shape = (m.num_heads, m.num_kv_heads, m.head_dim);
    for p in &s.prefills {
        let grid = t.context_attention.for_shape(shape.0, shape.1, shape.2)?;
        us += grid.latency_us(1.0, p.new as f64) * layers;
    }
    if s.decodes > 0 {
        let grid = t
            .generation_attention
            .for_shape(shape.0, shape.1, shape.2)?;
        let b = s.decodes as f64;
        us += grid.latency_us(b, s.decode_ctx_full as f64 / b) * layers;
    }
    Some(us)
}

/// GPU time of the groups the tables cover (GEMMs and attention), µs.
pub fn covered_us(cm: &CostModel, s: &StepShape) -> f64 {
    let c = cm.price(s);
    GROUP_NAMES
        .iter()
        .zip(c.group_s)
        .filter(|(n, _)| !matches!(**n, "elementwise" | "sampler"))
        .map(|(_, t)| t)
        .sum::<f64>()
        * 1e6
}

/// Relative errors of `pred` against the measured sums over the validation steps.
fn step_errors(
    t: &KernelTables,
    gpu: &GpuSpec,
    models: &[ModelSpec],
    path: GpuPath,
    stack: &Profile,
) -> Result<Vec<f64>, String> {
    let mut errs = Vec::new();
    // The tables measure attention without a window: sliding-window models are left
    // out of the comparison (their windowed layers are priced by scaling).
    for m in models.iter().filter(|m| m.sliding_window == 0) {
        let cm = CostModel::with_path(m, gpu, stack, path)?;
        for (_, s) in validation_steps() {
            if let Some(meas) = measured_sum(t, m, &s) {
                errs.push(covered_us(&cm, &s) / meas - 1.0);
            }
        }
    }
    Ok(errs)
}

/// Median and worst absolute relative error.
pub fn summarise(errs: &[f64]) -> (f64, f64) {
    let abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
    (median(abs.clone()), abs.iter().copied().fold(0.0, f64::max))
}

/// One GPU's line of the validation.
#[derive(Debug, Clone)]
pub struct Validation {
    /// GPU.
    pub gpu: String,
    /// Cost model (tables path) vs the measured sums: median, worst |error|.
    pub table: (f64, f64),
    /// Shipped curves (the GPU's architecture anchor) vs the measured sums.
    pub roofline: (f64, f64),
    /// Curves fitted without this GPU vs its measured sums.
    pub leave_one_out: (f64, f64),
    /// Which anchor the left-out GPU got.
    pub loo_anchor: String,
}

/// Validates the shipped curves and the tables path on every measured GPU, and
/// predicts each one's tables with curves fitted without it.
pub fn validate(
    measured: &[Measured],
    models: &[ModelSpec],
    stack: &Profile,
) -> Result<Vec<Validation>, String> {
    let mut out = Vec::new();
    for (i, m) in measured.iter().enumerate() {
        let table = summarise(&step_errors(
            &m.tables,
            &m.gpu,
            models,
            GpuPath::Auto,
            stack,
        )?);
        let roofline = summarise(&step_errors(
            &m.tables,
            &m.gpu,
            models,
            GpuPath::Roofline,
            stack,
        )?);
        let others: Vec<Measured> = measured
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| Measured {
                gpu: o.gpu.clone(),
                tables: o.tables.clone(),
            })
            .collect();
        let file = fit_curves(&others, models);
        let (anchor, own) = file.anchor_for(&m.gpu.architecture);
        let loo = summarise(&step_errors(
            &m.tables,
            &m.gpu,
            models,
            GpuPath::Curves(file.shape, anchor),
            stack,
        )?);
        out.push(Validation {
            gpu: m.gpu.name.clone(),
            table,
            roofline,
            leave_one_out: loo,
            loo_anchor: if own {
                format!("{} (other GPUs of the architecture)", m.gpu.architecture)
            } else {
                "cross-architecture default".into()
            },
        });
    }
    Ok(out)
}

/// Every shipped GPU that has measured tables, with them.
pub fn measured_gpus() -> Result<Vec<Measured>, String> {
    let mut out = Vec::new();
    for (name, _) in crate::specs::SHIPPED_GPUS {
        let gpu = crate::specs::load_gpu(name, None, "models", "gpu").map_err(|e| e.to_string())?;
        if let Some(t) = crate::kernels::tables_for(name)? {
            out.push(Measured {
                gpu,
                tables: (*t).clone(),
            });
        }
    }
    Ok(out)
}

/// The shipped 16-bit dense models (the shapes the fit and the validation use; MoE
/// and MLA models' GEMMs are not the dense shapes `gemm_nk` gives).
pub fn serving_models() -> Result<Vec<ModelSpec>, String> {
    let mut out = Vec::new();
    for (name, _) in crate::specs::SHIPPED_MODELS {
        let m =
            crate::specs::load_model(name, None, "models", "model").map_err(|e| e.to_string())?;
        if m.dtype_bytes == 2 && m.moe.is_none() && m.mla.is_none() {
            out.push(m);
        }
    }
    Ok(out)
}
