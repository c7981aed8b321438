//! The GPU part of the kernel model: per-group time functions of a (model, GPU) pair,
//! from the GPU's measured kernel tables where it has them, else from the fitted
//! roofline curves (DESIGN §2).

use super::kernels::{self, AttnGrid, Curves};
use super::quant::{self, CostFormats, GemmFormat};
use super::*;

/// The GPU part of a (model, GPU) pair in the kernel model: per-group time
/// functions, from the GPU's tables where it has them, else from its curves.
#[derive(Debug, Clone)]
pub(super) struct KernelPart {
    pub(super) curves: Curves,
    /// m grid and the latency over it (µs, all layers) of the QKV, output and MLP
    /// GEMMs; `None`: priced on the curves.
    pub(super) dense: Option<(Vec<f64>, [Vec<f64>; 3])>,
    /// (n, k) of the QKV, output, MLP-up (gate and up together) and MLP-down GEMMs.
    pub(super) gemm_nk: [(f64, f64); 4],
    /// The dense GEMMs' quantised format when they are priced on the curves.
    pub(super) gemm_fmt: Option<GemmFormat>,
    /// (n, k) of the LM head.
    pub(super) head_nk: (f64, f64),
    /// Shares of the dense work in the QKV, output and MLP groups (∝ n · k).
    pub(super) dense_shares: [f64; 3],
    /// Attention FLOPs per attended (query, key) pair in one layer (4 · heads · d).
    pub(super) pair_flops: f64,
    /// Decode attention FLOPs per cached key in one layer (the pair's, but MLA's).
    pub(super) key_flops: f64,
    /// MoE MLPs or latent attention (`None`: a dense model, ordinary attention).
    pub(super) variant: Option<Box<super::variant::Variant>>,
    /// K and V bytes per cached key in one layer.
    pub(super) key_bytes: f64,
    /// The LM head's m grid and latency (µs).
    pub(super) head: Option<(Vec<f64>, Vec<f64>)>,
    /// Prefill attention, one layer, batch 1, over the sequence length.
    pub(super) prefill: Option<(Vec<f64>, Vec<f64>)>,
    /// Decode attention, one layer, over (batch, cached keys).
    pub(super) decode: Option<AttnGrid>,
    /// Bytes per token per layer of the streaming kernels (norms with residual
    /// adds, rotary, KV-cache write, activation), and per step (embedding and
    /// final norm).
    pub(super) stream_layer: [f64; 5],
    pub(super) stream_step: [f64; 2],
    /// Their bytes per token over the whole step (all layers).
    pub(super) stream_bytes_per_token: f64,
    pub(super) sources: [Source; NUM_GROUPS],
    /// What the GPU part is, in words.
    pub(super) describe: String,
}

impl KernelPart {
    pub(super) fn new(
        model: &ModelSpec,
        gpu: &GpuSpec,
        path: GpuPath,
        qf: &CostFormats,
    ) -> Result<KernelPart, CostError> {
        if let GpuPath::Curves(shape, anchor) = path {
            let mut k = KernelPart::build(model, gpu, None, shape, anchor, qf);
            k.describe = "roofline curves given by the caller".into();
            return Ok(k);
        }
        let file = kernels::curves_file()?;
        // Tables apply to the whole GPU in 16-bit weights; a MIG slice smaller than
        // the whole GPU (every profile but `7g.*`) or another dtype is priced on the
        // curves.
        let whole = gpu.mig.as_deref().is_none_or(|m| m.starts_with("7g."));
        let tables = match (path, whole, model.dtype_bytes) {
            (GpuPath::Auto, true, 2) => kernels::tables_for(&gpu.name)?,
            _ => None,
        };
        let (arch_anchor, own_arch) = file.anchor_for(&gpu.architecture);
        // A GPU with tables prices what its tables lack (streaming kernels, the
        // sampler) with the anchor fitted on its own tables.
        let anchor = match (&tables, file.gpu.get(&gpu.name)) {
            (Some(_), Some(a)) => *a,
            _ => arch_anchor,
        };
        let mut k = KernelPart::build(model, gpu, tables.as_deref(), file.shape, anchor, qf);
        let anchor_words = match (&tables, own_arch) {
            (Some(_), _) => format!("its own fitted anchor ({})", gpu.name),
            (None, true) => format!("the {} anchor", gpu.architecture),
            (None, false) => format!(
                "the cross-architecture default anchor (no measured {} GPU)",
                gpu.architecture
            ),
        };
        k.describe = match &tables {
            Some(t) => format!(
                "measured kernel tables of {} (calibration/kernels/{}; {} of {} groups from tables), the rest on the curves with {anchor_words}",
                t.gpu,
                t.gpu,
                k.sources[..COMM].iter().filter(|s| **s == Source::Table).count(),
                COMM
            ),
            None => format!("roofline curves with {anchor_words} on the datasheet"),
        } + &qf.describe();
        Ok(k)
    }

    /// The kernel part from `tables` (if any) and the curves of `shape` and `anchor`.
    pub(super) fn build(
        model: &ModelSpec,
        gpu: &GpuSpec,
        tables: Option<&kernels::KernelTables>,
        shape: kernels::CurveShape,
        anchor: kernels::CurveAnchor,
        qf: &CostFormats,
    ) -> KernelPart {
        let d = model.hidden_size as f64;
        let q = (model.num_heads as u64 * model.head_dim) as f64;
        let kvd = (model.num_kv_heads as u64 * model.head_dim) as f64;
        let bpe = model.dtype_bytes as f64;
        let [qkv, o, up, down, head_nk] = model.gemm_nk();
        let gemm_nk = [qkv, o, up, down];
        let (up, f) = (up.0, down.1);
        let curves = Curves {
            shape,
            anchor,
            peak_flops: gpu.peak_flops(),
            peak_bw: gpu.peak_bandwidth(),
        };
        let mut sources = [Source::Roofline; NUM_GROUPS];
        let layers = model.num_layers as f64;
        let (mut dense, mut head, mut prefill, mut decode) = (None, None, None, None);
        let mut gemm_fmt = qf.gemm;
        if let Some(t) = tables {
            // The dense GEMMs: the bf16 table in 16 bits, the fp8 (W8A8) table for fp8
            // on FP8 tensor cores where measured, else the curves in their format.
            let dense_table = match (&qf.gemm, &t.gemm_fp8) {
                (None, _) => Some(&t.gemm_bf16),
                (Some(f), Some(fp8)) if f.path == quant::ComputePath::W8A8Fp8 => {
                    gemm_fmt = None;
                    Some(fp8)
                }
                _ => None,
            };
            let ms = t.gemm_bf16.ms.clone();
            if let Some(dt) = dense_table {
                let ms_d = dt.ms.clone();
                let c = |(n, k): (f64, f64)| dt.m_curve(n, k);
                let scale = |v: Vec<f64>| v.into_iter().map(|x| x * layers).collect::<Vec<_>>();
                let mlp: Vec<f64> = c(gemm_nk[2])
                    .iter()
                    .zip(c(gemm_nk[3]))
                    .map(|(a, b)| a + b)
                    .collect();
                dense = Some((
                    ms_d,
                    [scale(c(gemm_nk[0])), scale(c(gemm_nk[1])), scale(mlp)],
                ));
                sources[QKV] = Source::Table;
                sources[O_PROJ] = Source::Table;
                sources[MLP] = Source::Table;
            }
            head = Some((ms, t.gemm_bf16.m_curve(head_nk.0, head_nk.1)));
            sources[HEAD] = Source::Table;
            let shape = (model.num_heads, model.num_kv_heads, model.head_dim);
            if let Some(g) = t.context_attention.for_shape(shape.0, shape.1, shape.2) {
                let nl = g.lens.len();
                prefill = Some((g.lens.clone(), g.lat_us[..nl].to_vec()));
                sources[ATTN_P] = Source::Table;
            }
            // The decode table was measured with a bf16 KV cache; an fp8 cache reads
            // half the bytes, priced on the curves.
            if let (Some(g), quant::KvCacheDtype::Auto) = (
                t.generation_attention.for_shape(shape.0, shape.1, shape.2),
                qf.kv,
            ) {
                decode = Some(g);
                sources[ATTN_D] = Source::Table;
            }
        }
        // The KV-cache write reads K and V in 16 bits and stores them in the cache's
        // dtype.
        let kv_write = match qf.kv {
            quant::KvCacheDtype::Auto => 4.0 * kvd * bpe,
            kv => 2.0 * kvd * bpe + 2.0 * kvd * kv.bytes(model.dtype_bytes) as f64,
        };
        let stream_layer = [
            4.0 * d * bpe,
            2.0 * (q + kvd) * bpe,
            kv_write,
            4.0 * d * bpe,
            (up + f) * bpe,
        ];
        let stream_step = [2.0 * d * bpe, 4.0 * d * bpe];
        let mut k = KernelPart {
            curves,
            dense,
            gemm_nk,
            gemm_fmt,
            head_nk,
            pair_flops: 4.0 * q,
            key_flops: 4.0 * q,
            variant: None,
            key_bytes: qf.kv_layer as f64,
            dense_shares: {
                let w: Vec<f64> = gemm_nk.iter().map(|(n, k)| n * k).collect();
                let t: f64 = w.iter().sum();
                [w[0] / t, w[1] / t, (w[2] + w[3]) / t]
            },
            head,
            prefill,
            decode,
            stream_bytes_per_token: stream_layer.iter().sum::<f64>() * layers
                + stream_step.iter().sum::<f64>(),
            stream_layer,
            stream_step,
            sources,
            describe: String::new(),
        };
        super::variant::Variant::adjust(model, tables, qf, &mut k);
        k
    }

    /// Fills the group seconds of the dense GEMMs (QKV, output, MLP) and of the
    /// streaming kernels for `tokens` tokens (all zero for none): the part of a
    /// step's price that depends on its token count alone.
    pub(super) fn dense_s(&self, cm: &CostModel, tokens: f64, gs: &mut [f64; NUM_GROUPS]) {
        if tokens > 0.0 {
            match &self.dense {
                Some((ms, curves)) => {
                    for (i, c) in curves.iter().enumerate() {
                        gs[QKV + i] = kernels::interp_linear(ms, c, tokens) * 1e-6;
                    }
                }
                None => {
                    let g = |(n, k): (f64, f64)| {
                        let us = match &self.gemm_fmt {
                            None => self.curves.gemm_us(tokens, n, k),
                            Some(f) => quant::gemm_us(&self.curves, f, tokens, n, k),
                        };
                        us * cm.layers
                    };
                    gs[QKV] = g(self.gemm_nk[0]) * 1e-6;
                    gs[O_PROJ] = g(self.gemm_nk[1]) * 1e-6;
                    gs[MLP] = (g(self.gemm_nk[2]) + g(self.gemm_nk[3])) * 1e-6;
                }
            }
            if let Some(v) = &self.variant {
                v.price_dense(self, cm, tokens, gs);
            }
            let mut us = 0.0;
            for b in self.stream_layer {
                us += self.curves.stream_us(tokens * b) * cm.layers;
            }
            for b in self.stream_step {
                us += self.curves.stream_us(tokens * b);
            }
            gs[ELEM] = us * 1e-6;
        }
    }

    /// Seconds of the LM head for `emitting` sampling sequences (more than none).
    pub(super) fn head_s(&self, emitting: f64) -> f64 {
        let e = emitting;
        (match &self.head {
            Some((ms, c)) => kernels::interp_linear(ms, c, e),
            None => self.curves.gemm_us(e, self.head_nk.0, self.head_nk.1),
        }) * 1e-6
    }

    /// Seconds of the prefill attention of the step's chunks: the whole step, or with
    /// a pipeline one of its `micro_batches` (1/`micro_batches` of the chunks'). With
    /// `cached`, a table's price per pair of a prompt length comes from the cost
    /// model's cache.
    pub(super) fn prefill_s(
        &self,
        cm: &CostModel,
        s: &StepShape,
        micro_batches: f64,
        cached: bool,
    ) -> f64 {
        let mut us = 0.0;
        for p in &s.prefills {
            let (full, win) = cm.chunk_pair_counts(p);
            us += self.prefill_chunk_us(cm, p, full, win, cached);
        }
        if micro_batches > 1.0 {
            us /= micro_batches;
        }
        us * 1e-6
    }

    /// Microseconds of the prefill attention of chunk `p`, which attends `full`
    /// pairs in full layers and `win` in window layers (see
    /// [`KernelPart::prefill_s`]).
    pub(super) fn prefill_chunk_us(
        &self,
        cm: &CostModel,
        p: &PrefillChunk,
        full: f64,
        win: f64,
        cached: bool,
    ) -> f64 {
        let len = (p.cached + p.new) as f64;
        match &self.prefill {
            Some((lens, lat)) => {
                // The table prices a whole prompt of `len` tokens; a chunk on top of
                // cached tokens attends a share of its pairs.
                let per_pair = || {
                    let whole = kernels::interp_linear(lens, lat, len);
                    let pairs = len * (len + 1.0) / 2.0;
                    whole / pairs
                };
                let per_pair = match cached {
                    true => f64::from_bits(
                        cm.cache
                            .prefill
                            .get(p.cached + p.new, || [per_pair().to_bits()])[0],
                    ),
                    false => per_pair(),
                };
                per_pair * (full * cm.full_layers + win * cm.window_layers)
            }
            None => {
                let c = &self.curves;
                c.prefill_attn_us(self.pair_flops * full, len) * cm.full_layers
                    + c.prefill_attn_us(self.pair_flops * win, len.min(cm.window_len()))
                        * cm.window_layers
            }
        }
    }

    /// Decode attention seconds for `bf` decodes with the given context sums (as
    /// reals: a pipeline's average micro-batch has a share of the step's).
    pub(super) fn decode_s(&self, cm: &CostModel, bf: f64, ctx_full: f64, ctx_window: f64) -> f64 {
        let us = match &self.decode {
            Some(g) => {
                let full = if cm.full_layers > 0.0 {
                    g.latency_us(bf, ctx_full / bf) * cm.full_layers
                } else {
                    0.0
                };
                let win = if cm.window_layers > 0.0 {
                    g.latency_us(bf, ctx_window / bf) * cm.window_layers
                } else {
                    0.0
                };
                full + win
            }
            None => {
                let layer = |ctx: f64, layers: f64| {
                    let keys = ctx;
                    self.curves
                        .decode_attn_us(self.key_bytes * keys, self.key_flops * keys)
                        * layers
                };
                layer(ctx_full, cm.full_layers) + layer(ctx_window, cm.window_layers)
            }
        };
        us * 1e-6
    }
}
