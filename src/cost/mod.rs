//! The cost of one GPU step (DESIGN §2): count the work of a forward pass, then turn
//! work into time with the GPU's roofline and the profile's efficiencies and overheads.
//!
//! A step is described by a [`StepShape`]: the prefill chunks it runs (each `new`
//! tokens on top of `cached`), and, in aggregate, the decodes (how many, and the sums
//! of their attended context lengths). Pricing is O(prefill chunks), independent of
//! the number of decodes, so a step of 256 decodes costs the same to price as one.

pub mod kernels;
pub mod profile;

use self::kernels::{AttnGrid, Curves};
use crate::error::CostError;
use crate::profile::Profile;
use crate::specs::{GpuSpec, ModelSpec};
use crate::time::Dur;
use serde::Serialize;

/// One prefill chunk in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefillChunk {
    /// Tokens of this sequence already in the KV cache.
    pub cached: u64,
    /// New tokens computed in this step.
    pub new: u64,
}

/// What one step computes, in aggregate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepShape {
    /// Prefill chunks (usually few).
    pub prefills: Vec<PrefillChunk>,
    /// Sequences decoding one token each (including padded ones in static batches).
    pub decodes: u64,
    /// Σ over decodes of the attended length (cached tokens + 1) in full layers.
    pub decode_ctx_full: u64,
    /// Σ over decodes of min(attended length, window) for sliding-window layers.
    pub decode_ctx_window: u64,
    /// Sequences that sample a token at the end of this step (LM head and sampler).
    pub emitting: u64,
}

impl StepShape {
    /// A step of `batch` decodes each attending `context` tokens (cached + 1).
    pub fn decode_only(batch: u64, context: u64, window: u64) -> StepShape {
        let w = if window == 0 {
            context
        } else {
            context.min(window)
        };
        StepShape {
            prefills: Vec::new(),
            decodes: batch,
            decode_ctx_full: batch * context,
            decode_ctx_window: batch * w,
            emitting: batch,
        }
    }

    /// A step that prefills one sequence of `tokens` from scratch.
    pub fn prefill_only(tokens: u64) -> StepShape {
        StepShape {
            prefills: vec![PrefillChunk {
                cached: 0,
                new: tokens,
            }],
            emitting: 1,
            ..StepShape::default()
        }
    }

    /// Sequences in the batch (prefill chunks plus decodes).
    pub fn num_seqs(&self) -> u64 {
        self.prefills.len() as u64 + self.decodes
    }

    /// New tokens computed in the step.
    pub fn num_tokens(&self) -> u64 {
        self.prefills.iter().map(|p| p.new).sum::<u64>() + self.decodes
    }
}

/// Work of one group of kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GroupWork {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes moved to or from GPU memory.
    pub bytes: f64,
}

/// Number of kernel groups.
pub const NUM_GROUPS: usize = 8;

/// Names of the kernel groups, in the order of [`StepCost::groups`]. A profile with a
/// flat roofline (hand-set `eta_compute` and `eta_bandwidth`) prices the QKV, output
/// and MLP GEMMs together as one `dense` group (index 0) and has no `elementwise`
/// group.
pub const GROUP_NAMES: [&str; NUM_GROUPS] = [
    "qkv",
    "o_proj",
    "mlp",
    "lm_head",
    "attn_prefill",
    "attn_decode",
    "elementwise",
    "sampler",
];

const QKV: usize = 0;
const O_PROJ: usize = 1;
const MLP: usize = 2;
const HEAD: usize = 3;
const ATTN_P: usize = 4;
const ATTN_D: usize = 5;
const ELEM: usize = 6;
const SAMPLER: usize = 7;

/// Where a group's time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Interpolated in the GPU's measured kernel table.
    Table,
    /// Roofline with the efficiency curves anchored on the GPU's datasheet.
    Roofline,
    /// Roofline with one hand-set efficiency per roof (flat profile).
    Flat,
}

impl Source {
    /// `table`, `roofline` or `flat`.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Table => "table",
            Source::Roofline => "roofline",
            Source::Flat => "flat",
        }
    }
}

/// The priced step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepCost {
    /// Work per kernel group (see [`GROUP_NAMES`]).
    pub groups: [GroupWork; NUM_GROUPS],
    /// GPU seconds per kernel group at full (exclusive) speed.
    pub group_s: [f64; NUM_GROUPS],
    /// Seconds of GPU time spent in compute-bound groups at full (exclusive) speed.
    pub compute_s: f64,
    /// Seconds of GPU time spent in memory-bound groups at full speed.
    pub memory_s: f64,
    /// GPU-side overhead seconds (launches, per-sequence kernels).
    pub gpu_overhead_s: f64,
    /// CPU-side seconds (engine scheduling and output handling).
    pub cpu_s: f64,
    /// Fraction of `cpu_s` that overlaps the instance's own GPU work.
    pub cpu_overlap: f64,
    /// API-server seconds of this step's streamed outputs (detokenising and sending a
    /// chunk per sequence). The API server is another process: this runs while the
    /// engine computes, so it bounds the step from below without adding to it.
    pub api_s: f64,
}

impl StepCost {
    /// GPU time of the step when the GPU is exclusive.
    pub fn gpu_s(&self) -> f64 {
        self.compute_s + self.memory_s + self.gpu_overhead_s
    }

    /// CPU time that cannot overlap the instance's own GPU work (runs before it).
    pub fn cpu_serial_s(&self) -> f64 {
        (1.0 - self.cpu_overlap) * self.cpu_s
    }

    /// CPU time that overlaps the instance's own GPU work: the engine's overlapped
    /// share, or the API server's work on the step's outputs if longer (the two run in
    /// different processes, side by side).
    pub fn cpu_overlapped_s(&self) -> f64 {
        (self.cpu_overlap * self.cpu_s).max(self.api_s)
    }

    /// GPU time of the step when the GPU is exclusive, rounded to the nanosecond.
    pub fn gpu_duration(&self) -> Dur {
        Dur::from_secs_f64(self.gpu_s())
    }

    /// How the step divides on an exclusive GPU, each part rounded to the nanosecond:
    /// (serial CPU part, GPU part, CPU part that overlaps the GPU). The step takes
    /// `serial + max(gpu, overlapped)`.
    pub fn exclusive_durations(&self) -> (Dur, Dur, Dur) {
        (
            Dur::from_secs_f64(self.cpu_serial_s()),
            self.gpu_duration(),
            Dur::from_secs_f64(self.cpu_overlapped_s()),
        )
    }

    /// Wall time of the step on an exclusive GPU:
    /// serial CPU part, then max(GPU time, overlapped CPU part).
    pub fn wall_s(&self) -> f64 {
        self.cpu_serial_s() + self.gpu_s().max(self.cpu_overlapped_s())
    }
}

/// A step's price without its decode attention (see [`CostModel::price_fixed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedPart {
    groups: [GroupWork; NUM_GROUPS],
    group_s: [f64; NUM_GROUPS],
    compute_s: f64,
    memory_s: f64,
    decodes: u64,
    gpu_overhead_s: f64,
    cpu_s: f64,
    api_s: f64,
}

/// The GPU part of a (model, GPU) pair in the kernel model: per-group time
/// functions, from the GPU's tables where it has them, else from its curves.
#[derive(Debug, Clone)]
struct KernelPart {
    curves: Curves,
    /// m grid and the latency over it (µs, all layers) of the QKV, output and MLP
    /// GEMMs; `None`: priced on the curves.
    dense: Option<(Vec<f64>, [Vec<f64>; 3])>,
    /// (n, k) of the QKV, output, MLP-up (gate and up together) and MLP-down GEMMs.
    gemm_nk: [(f64, f64); 4],
    /// (n, k) of the LM head.
    head_nk: (f64, f64),
    /// Shares of the dense work in the QKV, output and MLP groups (∝ n · k).
    dense_shares: [f64; 3],
    /// Attention FLOPs per attended (query, key) pair in one layer (4 · heads · d).
    pair_flops: f64,
    /// K and V bytes per cached key in one layer.
    key_bytes: f64,
    /// The LM head's m grid and latency (µs).
    head: Option<(Vec<f64>, Vec<f64>)>,
    /// Prefill attention, one layer, batch 1, over the sequence length.
    prefill: Option<(Vec<f64>, Vec<f64>)>,
    /// Decode attention, one layer, over (batch, cached keys).
    decode: Option<AttnGrid>,
    /// Bytes per token per layer of the streaming kernels (norms with residual
    /// adds, rotary, KV-cache write, activation), and per step (embedding and
    /// final norm).
    stream_layer: [f64; 5],
    stream_step: [f64; 2],
    /// Their bytes per token over the whole step (all layers).
    stream_bytes_per_token: f64,
    sources: [Source; NUM_GROUPS],
    /// What the GPU part is, in words.
    describe: String,
}

/// How the GPU part of a cost model was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum GpuPath {
    /// Tables where the GPU has them, curves elsewhere (the default).
    #[default]
    Auto,
    /// The curves of the GPU's architecture even where tables exist (to compare).
    Roofline,
    /// These curves, tables or not (validation of the curves' fit).
    Curves(kernels::CurveShape, kernels::CurveAnchor),
}

/// Constants of one (model, GPU, profile) triple, precomputed for fast pricing.
#[derive(Debug, Clone)]
pub struct CostModel {
    /// The model's name (for reports).
    model: String,
    flops_per_s: f64,
    bytes_per_s: f64,
    peak_flops: f64,
    peak_bw: f64,
    dense_flops_per_token: f64,
    dense_bytes: f64,
    head_flops_per_seq: f64,
    head_bytes: f64,
    kv_write_bytes_per_token: f64,
    /// Attention FLOPs per attended (query, key) pair, summed over full layers.
    attn_flops_pair_full: f64,
    attn_flops_pair_window: f64,
    /// KV bytes read per attended key, summed over full / window layers.
    kv_read_full: f64,
    kv_read_window: f64,
    window: u64,
    full_layers: f64,
    window_layers: f64,
    layers: f64,
    sampler_bytes_per_seq: f64,
    gpu_step_s: f64,
    gpu_seq_s: f64,
    cpu_step_s: f64,
    cpu_seq_s: f64,
    cpu_overlap: f64,
    /// API-server seconds per emitting sequence per step (0 for offline batches).
    api_seq_s: f64,
    api_seq_profile_s: f64,
    kernel: Option<Box<KernelPart>>,
}

impl CostModel {
    /// Precomputes the constants for pricing steps of `model` on `gpu` with `profile`:
    /// tables where the GPU has them, curves elsewhere; a flat roofline when the
    /// profile sets `eta_compute` and `eta_bandwidth` itself.
    pub fn new(
        model: &ModelSpec,
        gpu: &GpuSpec,
        profile: &Profile,
    ) -> Result<CostModel, CostError> {
        CostModel::with_path(model, gpu, profile, GpuPath::Auto)
    }

    /// As [`CostModel::new`], choosing how the GPU part is priced.
    pub fn with_path(
        model: &ModelSpec,
        gpu: &GpuSpec,
        profile: &Profile,
        path: GpuPath,
    ) -> Result<CostModel, CostError> {
        let bpp = model.dtype_bytes as f64;
        let d = model.hidden_size as f64;
        let v = model.vocab_size as f64;
        let per_head = (model.num_heads as u64 * model.head_dim) as f64;
        let kv_layer = model.kv_bytes_per_token_layer() as f64;
        let (eta_c, eta_m) = match (profile.eta_compute, profile.eta_bandwidth) {
            (Some(c), Some(m)) => (c, m),
            _ => (1.0, 1.0),
        };
        let mut cm = CostModel {
            model: model.name.clone(),
            flops_per_s: gpu.peak_flops() * eta_c,
            bytes_per_s: gpu.peak_bandwidth() * eta_m,
            peak_flops: gpu.peak_flops(),
            peak_bw: gpu.peak_bandwidth(),
            dense_flops_per_token: 2.0 * model.dense_params() as f64,
            dense_bytes: model.dense_params() as f64 * bpp,
            head_flops_per_seq: 2.0 * d * v,
            head_bytes: d * v * bpp,
            kv_write_bytes_per_token: kv_layer * model.num_layers as f64,
            attn_flops_pair_full: 4.0 * per_head * model.full_layers() as f64,
            attn_flops_pair_window: 4.0 * per_head * model.window_layers() as f64,
            kv_read_full: kv_layer * model.full_layers() as f64,
            kv_read_window: kv_layer * model.window_layers() as f64,
            window: model.sliding_window,
            full_layers: model.full_layers() as f64,
            window_layers: model.window_layers() as f64,
            layers: model.num_layers as f64,
            sampler_bytes_per_seq: 4.0 * v * profile.logits_passes,
            gpu_step_s: profile.gpu_step_overhead_us * 1e-6,
            gpu_seq_s: profile.gpu_seq_overhead_us * 1e-6,
            cpu_step_s: profile.cpu_step_overhead_us * 1e-6,
            cpu_seq_s: profile.cpu_seq_overhead_us * 1e-6,
            cpu_overlap: profile.cpu_overlap,
            api_seq_s: profile.api_seq_overhead_us * 1e-6,
            api_seq_profile_s: profile.api_seq_overhead_us * 1e-6,
            kernel: None,
        };
        if profile.is_flat() {
            return Ok(cm);
        }
        cm.kernel = Some(Box::new(KernelPart::new(model, gpu, path)?));
        Ok(cm)
    }

    /// Whether requests reach the engine through an API server (open and closed
    /// loop) or in-process (offline batches, which stream nothing): the API server's
    /// per-sequence work applies only with it.
    pub fn set_front_end(&mut self, on: bool) {
        self.api_seq_s = if on { self.api_seq_profile_s } else { 0.0 };
    }

    /// The name of the model it prices.
    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// How the GPU part is priced, in words (tables and their provenance, the
    /// curves' anchor, or the flat roofline).
    pub fn gpu_part(&self) -> String {
        match &self.kernel {
            Some(k) => k.describe.clone(),
            None => "flat roofline (the profile's eta_compute and eta_bandwidth)".into(),
        }
    }

    /// Where each group's time comes from.
    pub fn sources(&self) -> [Source; NUM_GROUPS] {
        match &self.kernel {
            Some(k) => k.sources,
            None => [Source::Flat; NUM_GROUPS],
        }
    }

    /// Σ_{j=1..p} min(c + j, w): attended keys of a chunk of `p` new tokens on top of
    /// `c` cached ones, with a window `w` (0: none).
    fn chunk_pairs(c: u64, p: u64, w: u64) -> f64 {
        let full = |c: u64, p: u64| p as f64 * c as f64 + (p as f64) * (p as f64 + 1.0) / 2.0;
        if w == 0 || c + p <= w {
            full(c, p)
        } else if c >= w {
            p as f64 * w as f64
        } else {
            let below = w - c;
            full(c, below) + (p - below) as f64 * w as f64
        }
    }

    /// Prices one step.
    pub fn price(&self, s: &StepShape) -> StepCost {
        self.price_decodes(&self.price_fixed(s), s.decode_ctx_full, s.decode_ctx_window)
    }

    /// The part of a step's price that does not depend on the decodes' context
    /// lengths: every kernel group but decode attention, and the overheads. A stretch
    /// of decode steps with the same batch shares it; [`CostModel::price_decodes`]
    /// completes it for given context sums, with the same arithmetic in the same order
    /// as [`CostModel::price`], so the result is identical to the bit.
    pub fn price_fixed(&self, s: &StepShape) -> FixedPart {
        let mut g = [GroupWork::default(); NUM_GROUPS];
        let mut gs = [0.0; NUM_GROUPS];
        let tokens = s.num_tokens() as f64;
        if tokens > 0.0 {
            g[QKV] = GroupWork {
                flops: self.dense_flops_per_token * tokens,
                bytes: self.dense_bytes + tokens * self.kv_write_bytes_per_token,
            };
        }
        if s.emitting > 0 {
            let e = s.emitting as f64;
            g[HEAD] = GroupWork {
                flops: self.head_flops_per_seq * e,
                bytes: self.head_bytes,
            };
            g[SAMPLER] = GroupWork {
                flops: 0.0,
                bytes: self.sampler_bytes_per_seq * e,
            };
        }
        for p in &s.prefills {
            let full = Self::chunk_pairs(p.cached, p.new, 0);
            let win = Self::chunk_pairs(p.cached, p.new, self.window);
            g[ATTN_P].flops += self.attn_flops_pair_full * full + self.attn_flops_pair_window * win;
            let keys = (p.cached + p.new) as f64;
            let keys_w = if self.window == 0 {
                keys
            } else {
                keys.min(self.window as f64)
            };
            g[ATTN_P].bytes += self.kv_read_full * keys + self.kv_read_window * keys_w;
        }
        let (mut compute_s, mut memory_s) = (0.0, 0.0);
        match &self.kernel {
            None => {
                for i in [QKV, HEAD, ATTN_P] {
                    gs[i] = self.roofline(&g[i], &mut compute_s, &mut memory_s);
                }
            }
            Some(k) => {
                let dense = g[QKV];
                for (i, f) in k.dense_shares.iter().enumerate() {
                    g[QKV + i] = GroupWork {
                        flops: dense.flops * f,
                        bytes: dense.bytes * f,
                    };
                }
                g[ELEM] = GroupWork {
                    flops: 0.0,
                    bytes: tokens * k.stream_bytes_per_token,
                };
                k.price_fixed(self, s, tokens, &mut gs);
                for i in [QKV, O_PROJ, MLP, HEAD, ATTN_P, ELEM] {
                    self.classify(i, &g, &gs, &mut compute_s, &mut memory_s);
                }
            }
        }
        let n = s.num_seqs() as f64;
        let busy = s.num_seqs() > 0;
        FixedPart {
            groups: g,
            group_s: gs,
            compute_s,
            memory_s,
            decodes: s.decodes,
            gpu_overhead_s: if busy {
                self.gpu_step_s + self.gpu_seq_s * n
            } else {
                0.0
            },
            cpu_s: if busy {
                self.cpu_step_s + self.cpu_seq_s * n
            } else {
                0.0
            },
            api_s: self.api_seq_s * s.emitting as f64,
        }
    }

    /// Adds a group's time at the roof that binds it (flat roofline).
    fn roofline(&self, w: &GroupWork, compute_s: &mut f64, memory_s: &mut f64) -> f64 {
        let tc = w.flops / self.flops_per_s;
        let tm = w.bytes / self.bytes_per_s;
        if tc > tm {
            *compute_s += tc;
            tc
        } else {
            *memory_s += tm;
            tm
        }
    }

    /// Whether a group's work sits under the compute roof rather than the memory roof
    /// (datasheet peaks): FLOPs / peak FLOP/s > bytes / peak bandwidth.
    fn compute_bound(&self, w: &GroupWork) -> bool {
        w.flops / self.peak_flops > w.bytes / self.peak_bw
    }

    /// Adds a kernel-model group's time to the compute or memory part by its bound.
    fn classify(
        &self,
        i: usize,
        g: &[GroupWork; NUM_GROUPS],
        gs: &[f64; NUM_GROUPS],
        compute_s: &mut f64,
        memory_s: &mut f64,
    ) {
        if self.compute_bound(&g[i]) {
            *compute_s += gs[i];
        } else {
            *memory_s += gs[i];
        }
    }

    /// Completes `fixed` with decode attention over `ctx_full` attended keys in full
    /// layers and `ctx_window` in sliding-window layers (sums over the decodes).
    pub fn price_decodes(&self, fixed: &FixedPart, ctx_full: u64, ctx_window: u64) -> StepCost {
        let mut g = fixed.groups;
        let mut gs = fixed.group_s;
        if fixed.decodes > 0 {
            g[ATTN_D] = GroupWork {
                flops: self.attn_flops_pair_full * ctx_full as f64
                    + self.attn_flops_pair_window * ctx_window as f64,
                bytes: self.kv_read_full * ctx_full as f64
                    + self.kv_read_window * ctx_window as f64,
            };
        }
        let (mut compute_s, mut memory_s) = (fixed.compute_s, fixed.memory_s);
        match &self.kernel {
            None => {
                for i in [ATTN_D, SAMPLER] {
                    gs[i] = self.roofline(&g[i], &mut compute_s, &mut memory_s);
                }
            }
            Some(k) => {
                if fixed.decodes > 0 {
                    gs[ATTN_D] = k.decode_s(self, fixed.decodes, ctx_full, ctx_window);
                }
                if g[SAMPLER].bytes > 0.0 {
                    gs[SAMPLER] = k.curves.stream_us(g[SAMPLER].bytes) * 1e-6;
                }
                for i in [ATTN_D, SAMPLER] {
                    self.classify(i, &g, &gs, &mut compute_s, &mut memory_s);
                }
            }
        }
        StepCost {
            groups: g,
            group_s: gs,
            compute_s,
            memory_s,
            gpu_overhead_s: fixed.gpu_overhead_s,
            cpu_s: fixed.cpu_s,
            cpu_overlap: self.cpu_overlap,
            api_s: fixed.api_s,
        }
    }

    /// Peak FLOP/s the profile achieves (flat profiles; the datasheet peak otherwise).
    pub fn flops_per_s(&self) -> f64 {
        self.flops_per_s
    }

    /// Bandwidth the profile achieves, bytes/s (flat profiles; the datasheet peak
    /// otherwise).
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes_per_s
    }
}

impl KernelPart {
    fn new(model: &ModelSpec, gpu: &GpuSpec, path: GpuPath) -> Result<KernelPart, CostError> {
        if let GpuPath::Curves(shape, anchor) = path {
            return Ok(KernelPart::on_curves(model, gpu, shape, anchor));
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
        let mut k = KernelPart::build(model, gpu, tables.as_deref(), file.shape, anchor);
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
                k.sources.iter().filter(|s| **s == Source::Table).count(),
                NUM_GROUPS
            ),
            None => format!("roofline curves with {anchor_words} on the datasheet"),
        };
        Ok(k)
    }

    /// The kernel part from `tables` (if any) and the curves of `shape` and `anchor`.
    fn build(
        model: &ModelSpec,
        gpu: &GpuSpec,
        tables: Option<&kernels::KernelTables>,
        shape: kernels::CurveShape,
        anchor: kernels::CurveAnchor,
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
        if let Some(t) = tables {
            let ms = t.gemm_bf16.ms.clone();
            let c = |(n, k): (f64, f64)| t.gemm_bf16.m_curve(n, k);
            let scale = |v: Vec<f64>| v.into_iter().map(|x| x * layers).collect::<Vec<_>>();
            let mlp: Vec<f64> = c(gemm_nk[2])
                .iter()
                .zip(c(gemm_nk[3]))
                .map(|(a, b)| a + b)
                .collect();
            dense = Some((
                ms.clone(),
                [scale(c(gemm_nk[0])), scale(c(gemm_nk[1])), scale(mlp)],
            ));
            head = Some((ms, t.gemm_bf16.m_curve(head_nk.0, head_nk.1)));
            sources[QKV] = Source::Table;
            sources[O_PROJ] = Source::Table;
            sources[MLP] = Source::Table;
            sources[HEAD] = Source::Table;
            let shape = (model.num_heads, model.num_kv_heads, model.head_dim);
            if let Some(g) = t.context_attention.for_shape(shape.0, shape.1, shape.2) {
                let nl = g.lens.len();
                prefill = Some((g.lens.clone(), g.lat_us[..nl].to_vec()));
                sources[ATTN_P] = Source::Table;
            }
            if let Some(g) = t.generation_attention.for_shape(shape.0, shape.1, shape.2) {
                decode = Some(g);
                sources[ATTN_D] = Source::Table;
            }
        }
        let stream_layer = [
            4.0 * d * bpe,
            2.0 * (q + kvd) * bpe,
            4.0 * kvd * bpe,
            4.0 * d * bpe,
            (up + f) * bpe,
        ];
        let stream_step = [2.0 * d * bpe, 4.0 * d * bpe];
        KernelPart {
            curves,
            dense,
            gemm_nk,
            head_nk,
            pair_flops: 4.0 * q,
            key_bytes: model.kv_bytes_per_token_layer() as f64,
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
        }
    }

    /// The kernel part on given curves, without tables.
    fn on_curves(
        model: &ModelSpec,
        gpu: &GpuSpec,
        shape: kernels::CurveShape,
        anchor: kernels::CurveAnchor,
    ) -> KernelPart {
        let mut k = KernelPart::build(model, gpu, None, shape, anchor);
        k.describe = "roofline curves given by the caller".into();
        k
    }

    /// Fills the group seconds of everything but decode attention and the sampler.
    fn price_fixed(&self, cm: &CostModel, s: &StepShape, tokens: f64, gs: &mut [f64; NUM_GROUPS]) {
        if tokens > 0.0 {
            match &self.dense {
                Some((ms, curves)) => {
                    for (i, c) in curves.iter().enumerate() {
                        gs[QKV + i] = kernels::interp_linear(ms, c, tokens) * 1e-6;
                    }
                }
                None => {
                    let g = |(n, k): (f64, f64)| self.curves.gemm_us(tokens, n, k) * cm.layers;
                    gs[QKV] = g(self.gemm_nk[0]) * 1e-6;
                    gs[O_PROJ] = g(self.gemm_nk[1]) * 1e-6;
                    gs[MLP] = (g(self.gemm_nk[2]) + g(self.gemm_nk[3])) * 1e-6;
                }
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
        if s.emitting > 0 {
            let e = s.emitting as f64;
            gs[HEAD] = match &self.head {
                Some((ms, c)) => kernels::interp_linear(ms, c, e),
                None => self.curves.gemm_us(e, self.head_nk.0, self.head_nk.1),
            } * 1e-6;
        }
        let mut us = 0.0;
        for p in &s.prefills {
            let len = (p.cached + p.new) as f64;
            let full = CostModel::chunk_pairs(p.cached, p.new, 0);
            let win = CostModel::chunk_pairs(p.cached, p.new, cm.window);
            match &self.prefill {
                Some((lens, lat)) => {
                    // The table prices a whole prompt of `len` tokens; a chunk on top
                    // of cached tokens attends a share of its pairs.
                    let whole = kernels::interp_linear(lens, lat, len);
                    let pairs = len * (len + 1.0) / 2.0;
                    us += whole / pairs * (full * cm.full_layers + win * cm.window_layers);
                }
                None => {
                    let c = &self.curves;
                    us += c.prefill_attn_us(self.pair_flops * full, len) * cm.full_layers
                        + c.prefill_attn_us(self.pair_flops * win, len.min(cm.window_len()))
                            * cm.window_layers;
                }
            }
        }
        gs[ATTN_P] = us * 1e-6;
    }

    /// Decode attention seconds for `b` decodes with the given context sums.
    fn decode_s(&self, cm: &CostModel, b: u64, ctx_full: u64, ctx_window: u64) -> f64 {
        let bf = b as f64;
        let us = match &self.decode {
            Some(g) => {
                let full = if cm.full_layers > 0.0 {
                    g.latency_us(bf, ctx_full as f64 / bf) * cm.full_layers
                } else {
                    0.0
                };
                let win = if cm.window_layers > 0.0 {
                    g.latency_us(bf, ctx_window as f64 / bf) * cm.window_layers
                } else {
                    0.0
                };
                full + win
            }
            None => {
                let layer = |ctx: u64, layers: f64| {
                    let keys = ctx as f64;
                    self.curves
                        .decode_attn_us(self.key_bytes * keys, self.pair_flops * keys)
                        * layers
                };
                layer(ctx_full, cm.full_layers) + layer(ctx_window, cm.window_layers)
            }
        };
        us * 1e-6
    }
}

impl CostModel {
    fn window_len(&self) -> f64 {
        if self.window == 0 {
            f64::INFINITY
        } else {
            self.window as f64
        }
    }
}

/// A human- and JSON-readable breakdown of one priced step (the `step-time` command).
#[derive(Debug, Clone, Serialize)]
pub struct StepBreakdown {
    /// Wall time of the step on an exclusive GPU, seconds.
    pub seconds: f64,
    /// GPU time, seconds.
    pub gpu_seconds: f64,
    /// CPU time, seconds (part of it may overlap the GPU time).
    pub cpu_seconds: f64,
    /// CPU time that overlaps the GPU work, seconds.
    pub cpu_overlapped_seconds: f64,
    /// Seconds in compute-bound groups.
    pub compute_bound_seconds: f64,
    /// Seconds in memory-bound groups.
    pub memory_bound_seconds: f64,
    /// GPU overhead seconds.
    pub gpu_overhead_seconds: f64,
    /// `cpu-bound` (the engine's CPU work per step, or the API server's on the
    /// step's outputs, exceeds the GPU's), else
    /// `compute-bound`, `memory-bound` or `overhead-bound`: the largest GPU part.
    pub bound: String,
    /// The kernel group with the largest time.
    pub dominant_group: String,
    /// How the GPU part is priced, in words.
    pub gpu_part: String,
    /// Per group: work, time, where the time came from and which roof binds it.
    pub groups: Vec<GroupBreakdown>,
}

/// One group of [`StepBreakdown`].
#[derive(Debug, Clone, Serialize)]
pub struct GroupBreakdown {
    /// Group name.
    pub name: String,
    /// FLOPs.
    pub flops: f64,
    /// Bytes.
    pub bytes: f64,
    /// Seconds the group takes in this step.
    pub seconds: f64,
    /// `table`, `roofline` or `flat`.
    pub source: String,
    /// Seconds at the datasheet compute roof (FLOPs / peak FLOP/s).
    pub compute_roof_seconds: f64,
    /// Seconds at the datasheet memory roof (bytes / peak bandwidth).
    pub memory_roof_seconds: f64,
    /// `compute` or `memory`: the roof nearer to the group's work.
    pub bound: String,
}

impl CostModel {
    /// Prices a step and explains where its time goes.
    pub fn explain(&self, s: &StepShape) -> StepBreakdown {
        let c = self.price(s);
        let sources = self.sources();
        let mut groups = Vec::new();
        let mut dominant = ("none", 0.0);
        for (i, name) in GROUP_NAMES.iter().enumerate() {
            let name = if self.kernel.is_none() && i == QKV {
                "dense"
            } else {
                name
            };
            if self.kernel.is_none() && (i == O_PROJ || i == MLP || i == ELEM) {
                continue;
            }
            let w = c.groups[i];
            if c.group_s[i] > dominant.1 {
                dominant = (name, c.group_s[i]);
            }
            groups.push(GroupBreakdown {
                name: name.to_string(),
                flops: w.flops,
                bytes: w.bytes,
                seconds: c.group_s[i],
                source: sources[i].name().into(),
                compute_roof_seconds: w.flops / self.peak_flops,
                memory_roof_seconds: w.bytes / self.peak_bw,
                bound: if (self.kernel.is_none()
                    && w.flops / self.flops_per_s > w.bytes / self.bytes_per_s)
                    || (self.kernel.is_some() && self.compute_bound(&w))
                {
                    "compute"
                } else {
                    "memory"
                }
                .into(),
            });
        }
        let cpu = c.cpu_s.max(c.api_s);
        let bound = if cpu >= c.gpu_s() && cpu > 0.0 {
            "cpu-bound"
        } else if c.compute_s >= c.memory_s && c.compute_s >= c.gpu_overhead_s {
            "compute-bound"
        } else if c.memory_s >= c.gpu_overhead_s {
            "memory-bound"
        } else {
            "overhead-bound"
        };
        StepBreakdown {
            seconds: c.wall_s(),
            gpu_seconds: c.gpu_s(),
            cpu_seconds: c.cpu_s,
            cpu_overlapped_seconds: c.cpu_overlapped_s(),
            compute_bound_seconds: c.compute_s,
            memory_bound_seconds: c.memory_s,
            gpu_overhead_seconds: c.gpu_overhead_s,
            bound: bound.into(),
            dominant_group: dominant.0.into(),
            gpu_part: self.gpu_part(),
            groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_pairs_by_hand() {
        // 3 new tokens on 2 cached: attend 3 + 4 + 5 = 12 keys.
        assert_eq!(CostModel::chunk_pairs(2, 3, 0), 12.0);
        // Window 4: min(3,4) + min(4,4) + min(5,4) = 11.
        assert_eq!(CostModel::chunk_pairs(2, 3, 4), 11.0);
        // Entirely past the window.
        assert_eq!(CostModel::chunk_pairs(10, 3, 4), 12.0);
        // Entirely inside the window.
        assert_eq!(CostModel::chunk_pairs(0, 3, 8), 6.0);
    }
}
