//! The cost of one GPU step (DESIGN §2): count the work of a forward pass, then turn
//! work into time with the GPU's roofline and the profile's efficiencies and overheads.
//!
//! A step is described by a [`StepShape`]: the prefill chunks it runs (each `new`
//! tokens on top of `cached`), and, in aggregate, the decodes (how many, and the sums
//! of their attended context lengths). Pricing is O(prefill chunks), independent of
//! the number of decodes, so a step of 256 decodes costs the same to price as one.
//!
//! Over 600 lines: `price_fixed` and `price_decodes` must stay bit-identical to
//! `price` and are read as one piece with the constants they use; the GPU part
//! (`kernel_part`), breakdowns, deployments and parallelism live in their own files.

mod breakdown;
mod cache;
mod deploy;
pub mod expert_parallel;
mod kernel_part;
pub mod kernels;
pub mod moe;
pub mod parallel;
pub mod profile;
pub mod quant;
pub mod variant;

pub use breakdown::{GroupBreakdown, StepBreakdown};
pub use deploy::{Deployment, PipelineSchedule};
use kernel_part::KernelPart;

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
pub const NUM_GROUPS: usize = 9;

/// Names of the kernel groups, in the order of [`StepCost::groups`]. A profile with a
/// flat roofline (hand-set `eta_compute` and `eta_bandwidth`) prices the QKV, output
/// and MLP GEMMs together as one `dense` group (index 0) and has no `elementwise`
/// group. The last, `allreduce`, is the collectives and stage transfers of tensor
/// and pipeline parallelism (zero, and left out of breakdowns, on one GPU).
pub const GROUP_NAMES: [&str; NUM_GROUPS] = [
    "qkv",
    "o_proj",
    "mlp",
    "lm_head",
    "attn_prefill",
    "attn_decode",
    "elementwise",
    "sampler",
    "allreduce",
];

const QKV: usize = 0;
const O_PROJ: usize = 1;
const MLP: usize = 2;
const HEAD: usize = 3;
const ATTN_P: usize = 4;
const ATTN_D: usize = 5;
const ELEM: usize = 6;
const SAMPLER: usize = 7;
/// Collectives and stage transfers (also: the number of compute groups before it).
const COMM: usize = 8;

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

/// The priced step: its times, and their breakdown by kernel group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepCost {
    /// Work per kernel group (see [`GROUP_NAMES`]).
    pub groups: [GroupWork; NUM_GROUPS],
    /// GPU seconds per kernel group at full (exclusive) speed.
    pub group_s: [f64; NUM_GROUPS],
    /// The step's times (what the simulation needs of it).
    pub times: StepTimes,
}

/// The times of a priced step: what the simulation needs of it (the per-group
/// breakdown of [`StepCost`] is for reports). [`CostModel::price_times`] gives them
/// without building that breakdown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTimes {
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

impl StepTimes {
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
    times: FixedTimes,
    /// Micro-batches the step flows through a pipeline in (1 without one).
    micro_batches: f64,
    /// Stage-to-stage transfer seconds of the step (0 without a pipeline).
    transfers_s: f64,
}

/// The scalars of a [`FixedPart`]: all that completing it into [`StepTimes`] needs on
/// one micro-batch and one rank with the kernel model.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FixedTimes {
    compute_s: f64,
    memory_s: f64,
    decodes: u64,
    gpu_overhead_s: f64,
    cpu_s: f64,
    api_s: f64,
    /// The sampler's seconds (kernel model; also in the part's `group_s`), fixed
    /// with its work, and whether it is compute-bound.
    sampler_s: f64,
    sampler_compute: bool,
}

/// Seconds summed by bound, in order: (compute-bound, memory-bound), each from zero.
fn split_by_bound<const N: usize>(compute: [bool; N], secs: [f64; N]) -> (f64, f64) {
    let (mut c, mut m) = (0.0, 0.0);
    for (is_compute, s) in compute.into_iter().zip(secs) {
        if is_compute {
            c += s;
        } else {
            m += s;
        }
    }
    (c, m)
}

/// The compute- and memory-bound sums of a step's fixed groups with the kernel model,
/// in the order QKV, output, MLP, LM head (`head_s` seconds), prefill attention
/// (`attn`: its bound and seconds), elementwise.
fn fixed_sums(t: &TokenPart, h: &HeadPart, head_s: f64, attn: (bool, f64)) -> (f64, f64) {
    split_by_bound(
        [
            t.compute[0],
            t.compute[1],
            t.compute[2],
            h.head_compute,
            attn.0,
            t.compute[3],
        ],
        [
            t.group_s[0],
            t.group_s[1],
            t.group_s[2],
            head_s,
            attn.1,
            t.group_s[3],
        ],
    )
}

/// The kernel model's groups that depend on a step's token count alone, in the order
/// QKV, output, MLP, elementwise (see [`CostModel::price_fixed`]).
#[derive(Debug, Clone, Copy)]
struct TokenPart {
    groups: [GroupWork; 4],
    group_s: [f64; 4],
    /// Whether each is compute-bound.
    compute: [bool; 4],
}

/// Words of a cached [`TokenPart`]: its seconds and bounds (its work is a few
/// multiplications, worked out again where a breakdown wants it).
const TOKEN_WORDS: usize = 5;

impl TokenPart {
    fn encode(&self) -> [u64; TOKEN_WORDS] {
        let mut w = [0; TOKEN_WORDS];
        for j in 0..4 {
            w[j] = self.group_s[j].to_bits();
            w[4] |= (self.compute[j] as u64) << j;
        }
        w
    }

    /// The part with work `groups` and the seconds and bounds `w` encode.
    fn decode(groups: [GroupWork; 4], w: [u64; TOKEN_WORDS]) -> TokenPart {
        TokenPart {
            groups,
            group_s: std::array::from_fn(|j| f64::from_bits(w[j])),
            compute: std::array::from_fn(|j| w[4] >> j & 1 == 1),
        }
    }
}

/// The kernel model's groups that depend on a step's emitting count alone: the LM
/// head and the sampler (all zero when nothing samples).
#[derive(Debug, Clone, Copy)]
struct HeadPart {
    head: GroupWork,
    sampler: GroupWork,
    head_s: f64,
    sampler_s: f64,
    head_compute: bool,
    sampler_compute: bool,
}

/// Words of a cached [`HeadPart`]: its seconds and bounds (see [`TOKEN_WORDS`]).
const HEAD_WORDS: usize = 3;

impl HeadPart {
    fn encode(&self) -> [u64; HEAD_WORDS] {
        [
            self.head_s.to_bits(),
            self.sampler_s.to_bits(),
            self.head_compute as u64 | (self.sampler_compute as u64) << 1,
        ]
    }

    /// The part with the work `(head, sampler)` and the seconds and bounds `w`
    /// encode.
    fn decode((head, sampler): (GroupWork, GroupWork), w: [u64; HEAD_WORDS]) -> HeadPart {
        HeadPart {
            head,
            sampler,
            head_s: f64::from_bits(w[0]),
            sampler_s: f64::from_bits(w[1]),
            head_compute: w[2] & 1 == 1,
            sampler_compute: w[2] >> 1 & 1 == 1,
        }
    }
}

/// Token counts whose [`TokenPart`] is cached (steps of more are priced every time).
const TOKEN_CAPACITY: usize = 16384;
/// Emitting counts whose [`HeadPart`] is cached.
const HEAD_CAPACITY: usize = 4096;
/// Prompt lengths whose prefill attention price per pair is cached.
const PREFILL_CAPACITY: usize = 16384;

/// The caches of a cost model's count-dependent parts, shared by its clones.
#[derive(Debug)]
struct PriceCache {
    tokens: cache::CountCache<TOKEN_WORDS>,
    heads: cache::CountCache<HEAD_WORDS>,
    /// The prefill table's µs per attended pair of a whole prompt, by its length
    /// (the bits of an `f64`).
    prefill: cache::CountCache<1>,
}

impl PriceCache {
    fn new() -> PriceCache {
        PriceCache {
            tokens: cache::CountCache::new(TOKEN_CAPACITY),
            heads: cache::CountCache::new(HEAD_CAPACITY),
            prefill: cache::CountCache::new(PREFILL_CAPACITY),
        }
    }
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
    /// FLOP/s of the dense GEMMs in their weight format (flat profiles; equal to
    /// `flops_per_s` in 16 bits) and its datasheet peak.
    dense_flops_per_s: f64,
    dense_peak_flops: f64,
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
    /// The layout and formats it prices.
    deploy: Deployment,
    /// Expert parallelism's MoE work and all-to-all (`None` without it).
    ep: Option<Box<expert_parallel::ExpertParallel>>,
    /// Attention FLOPs per cached key in decode, summed over full / window layers
    /// (MLA's absorbed decode differs from its prefill; equal elsewhere).
    attn_flops_key_full: f64,
    attn_flops_key_window: f64,
    /// The MoE MLPs (`None`: a dense model).
    moe: Option<Box<moe::MoeCost>>,
    /// Window layers are chunked (Llama 4), not sliding.
    chunked: bool,
    /// Collectives and pipeline of a sharded deployment (`None` on one GPU).
    par: Option<Box<parallel::Parallel>>,
    /// Exact prices of the parts that depend on a step's token count or emitting
    /// count alone, filled as steps are priced and shared by the model's clones: it
    /// holds only what the fields above (fixed at construction) determine, so a
    /// method that changed one of those would have to start a new cache.
    cache: std::sync::Arc<PriceCache>,
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
        CostModel::for_deployment(model, gpu, profile, path, &Deployment::default())
    }

    /// As [`CostModel::with_path`], for a deployment's layout and formats.
    pub fn for_deployment(
        model: &ModelSpec,
        gpu: &GpuSpec,
        profile: &Profile,
        path: GpuPath,
        deploy: &Deployment,
    ) -> Result<CostModel, CostError> {
        if deploy.expert_parallel && model.moe_layers() == 0 {
            return Err(CostError::Unsupported(format!(
                "expert parallelism needs MoE layers; {} has none",
                model.name
            )));
        }
        // A sharded deployment prices the shard one rank runs (see `parallel`), then
        // adds its collectives.
        let whole = model;
        let shard = deploy.is_sharded().then(|| parallel::shard(model, deploy));
        let model = shard.as_ref().unwrap_or(whole);
        let qf = quant::CostFormats::new(model, gpu, deploy)?;
        let bpp = model.dtype_bytes as f64;
        let d = model.hidden_size as f64;
        let v = model.vocab_size as f64;
        let per_head = (model.num_heads as u64 * model.head_dim) as f64;
        let kv_layer = qf.kv_layer as f64;
        let (eta_c, eta_m) = match (profile.eta_compute, profile.eta_bandwidth) {
            (Some(c), Some(m)) => (c, m),
            _ => (1.0, 1.0),
        };
        let moe = moe::MoeCost::new(model).map(|m| Box::new(m.with_format(qf.experts)));
        let (pair_flops, key_flops) = variant::attn_flops(model);
        let variant = moe.is_some() || model.mla.is_some();
        let dense_params = match variant {
            true => variant::dense_params(model),
            false => model.dense_params() as f64,
        };
        let mut cm = CostModel {
            model: model.name.clone(),
            flops_per_s: gpu.peak_flops() * eta_c,
            dense_flops_per_s: qf.gemm.map_or(gpu.peak_flops(), |f| f.peak_flops) * eta_c,
            dense_peak_flops: qf.gemm.map_or(gpu.peak_flops(), |f| f.peak_flops),
            bytes_per_s: gpu.peak_bandwidth() * eta_m,
            peak_flops: gpu.peak_flops(),
            peak_bw: gpu.peak_bandwidth(),
            dense_flops_per_token: 2.0 * dense_params,
            dense_bytes: qf.dense_bytes(dense_params, bpp),
            head_flops_per_seq: 2.0 * d * v,
            head_bytes: d * v * bpp,
            kv_write_bytes_per_token: kv_layer * model.num_layers as f64,
            attn_flops_pair_full: 4.0 * per_head * model.full_layers() as f64,
            attn_flops_pair_window: 4.0 * per_head * model.window_layers() as f64,
            attn_flops_key_full: 4.0 * per_head * model.full_layers() as f64,
            attn_flops_key_window: 4.0 * per_head * model.window_layers() as f64,
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
            deploy: deploy.clone(),
            ep: expert_parallel::ExpertParallel::new(model, gpu, deploy, moe.as_deref())
                .map(Box::new),
            moe,
            chunked: model.chunked_window,
            par: None,
            cache: std::sync::Arc::new(PriceCache::new()),
        };
        if model.mla.is_some() {
            cm.attn_flops_pair_full = pair_flops * model.full_layers() as f64;
            cm.attn_flops_pair_window = pair_flops * model.window_layers() as f64;
            cm.attn_flops_key_full = key_flops * model.full_layers() as f64;
            cm.attn_flops_key_window = key_flops * model.window_layers() as f64;
        }
        if deploy.is_sharded() {
            // The logits are gathered before sampling: the sampler reads them all.
            cm.sampler_bytes_per_seq = 4.0 * whole.vocab_size as f64 * profile.logits_passes;
            let measured = !profile.is_flat() && path == GpuPath::Auto;
            cm.par = Some(Box::new(parallel::Parallel::new(
                whole, gpu, deploy, measured,
            )?));
        }
        if profile.is_flat() {
            return Ok(cm);
        }
        cm.kernel = Some(Box::new(KernelPart::new(model, gpu, path, &qf)?));
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

    /// The layout and formats it prices.
    pub fn deployment(&self) -> &Deployment {
        &self.deploy
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
        let mut s = match &self.kernel {
            Some(k) => k.sources,
            None => [Source::Flat; NUM_GROUPS],
        };
        if let Some(p) = &self.par {
            if p.measured() {
                s[COMM] = Source::Table;
            }
        }
        s
    }

    /// Micro-batches a step of `seqs` sequences flows through the pipeline in
    /// (1 without one).
    fn micro_batches(&self, seqs: u64) -> f64 {
        match &self.par {
            Some(p) if p.pp > 1 => p.micro_batches(seqs),
            _ => 1.0,
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
        self.price_fixed_in(s, true)
    }

    /// [`CostModel::price_fixed`], taking the parts that depend on the token count
    /// and on the emitting count alone from the cache (`cached`) or computing them.
    fn price_fixed_in(&self, s: &StepShape, cached: bool) -> FixedPart {
        let mut g = [GroupWork::default(); NUM_GROUPS];
        let mut gs = [0.0; NUM_GROUPS];
        // With a pipeline, one stage's share of one (average) micro-batch is priced
        // and `price_decodes` multiplies it by the schedule's stage times.
        let k = self.micro_batches(s.num_seqs());
        let n = s.num_tokens();
        let mut tokens = n as f64;
        let mut emitting = s.emitting as f64;
        if k > 1.0 {
            tokens /= k;
            emitting /= k;
        }
        // With data-parallel attention one rank's share (1/dp, balanced) of the
        // union batch is priced; the MoE layers see all of it (`expert_parallel`).
        let dp = self.dp();
        if dp > 1.0 {
            tokens /= dp;
            emitting /= dp;
        }
        // One micro-batch on one rank: `tokens` and `emitting` are the step's own
        // integer counts, and the parts that depend on them alone are cached.
        let whole = cached && k <= 1.0 && dp <= 1.0;
        g[ATTN_P] = self.prefill_attn_work(s);
        if k > 1.0 {
            g[ATTN_P].flops /= k;
            g[ATTN_P].bytes /= k;
        }
        if dp > 1.0 {
            g[ATTN_P].flops /= dp;
            g[ATTN_P].bytes /= dp;
        }
        let (mut compute_s, mut memory_s) = (0.0, 0.0);
        let mut sampler_compute = false;
        match &self.kernel {
            None => {
                if tokens > 0.0 {
                    g[QKV] = self.dense_work(tokens);
                }
                if s.emitting > 0 {
                    (g[HEAD], g[SAMPLER]) = self.head_work(emitting);
                }
                if let Some(e) = &self.ep {
                    let w = e.work(tokens * dp);
                    g[QKV].flops += w.flops;
                    g[QKV].bytes += w.bytes;
                } else if let Some(m) = &self.moe {
                    let w = m.work(tokens);
                    g[QKV].flops += w.flops;
                    g[QKV].bytes += w.bytes;
                }
                let dense = self.dense_flops_per_s;
                gs[QKV] = self.roofline_at(&g[QKV], dense, &mut compute_s, &mut memory_s);
                for i in [HEAD, ATTN_P] {
                    gs[i] = self.roofline(&g[i], &mut compute_s, &mut memory_s);
                }
            }
            Some(kp) => {
                let (t, h) = match whole {
                    true => self.cached_parts(kp, n, s.emitting),
                    false => (
                        self.token_part(kp, tokens, dp),
                        self.head_part(kp, emitting),
                    ),
                };
                for (j, i) in [QKV, O_PROJ, MLP, ELEM].into_iter().enumerate() {
                    g[i] = t.groups[j];
                    gs[i] = t.group_s[j];
                }
                if s.emitting > 0 {
                    (g[HEAD], g[SAMPLER]) = (h.head, h.sampler);
                    gs[HEAD] = h.head_s;
                }
                // The sampler's time is fixed with its work; `price_decodes` adds it.
                gs[SAMPLER] = h.sampler_s;
                sampler_compute = h.sampler_compute;
                gs[ATTN_P] = kp.prefill_s(self, s, k * dp, cached);
                let attn_compute = self.compute_bound_at(&g[ATTN_P], self.peak_flops);
                (compute_s, memory_s) = fixed_sums(&t, &h, gs[HEAD], (attn_compute, gs[ATTN_P]));
            }
        }
        let mut transfers_s = 0.0;
        if let Some(p) = &self.par {
            // The link's time counts with the memory-bound part: the SMs wait on it.
            (g[COMM], gs[COMM]) = p.stage_comm(tokens, emitting);
            memory_s += gs[COMM];
            transfers_s = p.transfers_s(tokens);
        }
        if let Some(e) = &self.ep {
            let (w, t) = e.a2a(tokens * dp);
            g[COMM].bytes += w.bytes;
            gs[COMM] += t;
            memory_s += t;
        }
        let mut n = s.num_seqs() as f64 / k;
        if dp > 1.0 {
            n /= dp;
        }
        let (gpu_overhead_s, cpu_s, api_s) = self.overheads(s, n);
        FixedPart {
            groups: g,
            group_s: gs,
            times: FixedTimes {
                compute_s,
                memory_s,
                decodes: s.decodes,
                gpu_overhead_s,
                cpu_s,
                api_s,
                sampler_s: gs[SAMPLER],
                sampler_compute,
            },
            micro_batches: k,
            transfers_s,
        }
    }

    /// The overheads of step `s` whose micro-batch holds `seqs` sequences on one rank
    /// (the step's own count without a pipeline or data-parallel attention): GPU
    /// seconds (launches, per-sequence kernels; none for an empty step), the engine's
    /// CPU seconds and the API server's.
    fn overheads(&self, s: &StepShape, seqs: f64) -> (f64, f64, f64) {
        let gpu = if s.num_seqs() > 0 {
            self.gpu_step_s + self.gpu_seq_s * seqs
        } else {
            0.0
        };
        (
            gpu,
            self.cpu_s_for(s.num_seqs()),
            self.api_seq_s * s.emitting as f64,
        )
    }

    /// Work of the prefill attention of a step's chunks (one micro-batch, one rank).
    fn prefill_attn_work(&self, s: &StepShape) -> GroupWork {
        let mut w = GroupWork::default();
        for p in &s.prefills {
            let (full, win) = self.chunk_pair_counts(p);
            self.add_prefill_work(&mut w, p, full, win);
        }
        w
    }

    /// The attended pairs of a prefill chunk in full and in sliding-window layers.
    fn chunk_pair_counts(&self, p: &PrefillChunk) -> (f64, f64) {
        (
            Self::chunk_pairs(p.cached, p.new, 0),
            self.window_pairs(p.cached, p.new),
        )
    }

    /// Adds the work of prefill chunk `p` (with its pair counts) to `w`.
    fn add_prefill_work(&self, w: &mut GroupWork, p: &PrefillChunk, full: f64, win: f64) {
        w.flops += self.attn_flops_pair_full * full + self.attn_flops_pair_window * win;
        let keys = (p.cached + p.new) as f64;
        let keys_w = if self.window == 0 {
            keys
        } else if self.chunked {
            variant::chunked_keys(p.cached, p.new, self.window)
        } else {
            keys.min(self.window as f64)
        };
        w.bytes += self.kv_read_full * keys + self.kv_read_window * keys_w;
    }

    /// The prefill attention's work and seconds on one micro-batch and one rank:
    /// [`CostModel::prefill_attn_work`] and [`KernelPart::prefill_s`] in one pass
    /// over the chunks, each chunk's pair counts worked out once.
    fn prefill_attn(&self, kp: &KernelPart, s: &StepShape) -> (GroupWork, f64) {
        let (mut w, mut us) = (GroupWork::default(), 0.0);
        for p in &s.prefills {
            let (full, win) = self.chunk_pair_counts(p);
            self.add_prefill_work(&mut w, p, full, win);
            us += kp.prefill_chunk_us(self, p, full, win, true);
        }
        (w, us * 1e-6)
    }

    /// Work of the decode attention over `cf` attended keys in full layers and `cw`
    /// in sliding-window layers.
    fn decode_attn_work(&self, cf: f64, cw: f64) -> GroupWork {
        GroupWork {
            flops: self.attn_flops_key_full * cf + self.attn_flops_key_window * cw,
            bytes: self.kv_read_full * cf + self.kv_read_window * cw,
        }
    }

    /// The token-count and emitting-count parts of a step of `n` tokens of which
    /// `emitting` sample, their seconds and bounds from the caches (one micro-batch
    /// on one rank).
    fn cached_parts(&self, kp: &KernelPart, n: u64, emitting: u64) -> (TokenPart, HeadPart) {
        let (t, h) = self.cached_words(kp, n, emitting);
        let head = if emitting > 0 {
            self.head_work(emitting as f64)
        } else {
            Default::default()
        };
        (
            TokenPart::decode(self.token_work(kp, n as f64, 1.0), t),
            HeadPart::decode(head, h),
        )
    }

    /// The cached words of [`CostModel::cached_parts`]: the seconds and bounds
    /// alone, all [`CostModel::price_times`] needs of them.
    fn cached_words(
        &self,
        kp: &KernelPart,
        n: u64,
        emitting: u64,
    ) -> ([u64; TOKEN_WORDS], [u64; HEAD_WORDS]) {
        (
            self.cache
                .tokens
                .get(n, || self.token_part(kp, n as f64, 1.0).encode()),
            self.cache
                .heads
                .get(emitting, || self.head_part(kp, emitting as f64).encode()),
        )
    }

    /// The kernel model, when a step is priced as one micro-batch on one rank (no
    /// pipeline, no data-parallel attention): then [`CostModel::price_times`] and
    /// [`CostModel::decode_times`] take their figures straight from the parts.
    fn plain_kernel(&self) -> Option<&KernelPart> {
        let plain = self.dp() <= 1.0 && self.par.as_ref().is_none_or(|p| p.pp <= 1);
        self.kernel.as_deref().filter(|_| plain)
    }

    /// The times of step `s`, identical to the bit to `self.price(s).times`. With
    /// the kernel model on one micro-batch and one rank (the common case) they are
    /// worked out with the same operations in the same order, without the per-group
    /// arrays of [`StepCost`] (building, copying and returning those took about a
    /// third of the price of a step); otherwise they come from the full price.
    pub fn price_times(&self, s: &StepShape) -> StepTimes {
        let Some(kp) = self.plain_kernel() else {
            return self.price(s).times;
        };
        let n = s.num_tokens();
        let (t, h) = self.cached_words(kp, n, s.emitting);
        let (t, h) = (
            TokenPart::decode([GroupWork::default(); 4], t),
            HeadPart::decode(Default::default(), h),
        );
        let (tokens, emitting) = (n as f64, s.emitting as f64);
        let (attn_p, attn_p_s) = self.prefill_attn(kp, s);
        let head_s = if s.emitting > 0 { h.head_s } else { 0.0 };
        let attn_compute = self.compute_bound_at(&attn_p, self.peak_flops);
        let (compute_s, mut memory_s) = fixed_sums(&t, &h, head_s, (attn_compute, attn_p_s));
        if let Some(p) = &self.par {
            memory_s += p.stage_comm(tokens, emitting).1;
        }
        if let Some(e) = &self.ep {
            memory_s += e.a2a(tokens).1;
        }
        let (gpu_overhead_s, cpu_s, api_s) = self.overheads(s, s.num_seqs() as f64);
        let fixed = FixedTimes {
            compute_s,
            memory_s,
            decodes: s.decodes,
            gpu_overhead_s,
            cpu_s,
            api_s,
            sampler_s: h.sampler_s,
            sampler_compute: h.sampler_compute,
        };
        self.complete_times(kp, &fixed, s.decode_ctx_full, s.decode_ctx_window)
    }

    /// The times of `fixed` completed for these context sums, identical to the bit
    /// to `self.price_decodes(fixed, ctx_full, ctx_window).times` (the same
    /// operations without the per-group arrays where [`CostModel::price_times`] has
    /// them).
    pub fn decode_times(&self, fixed: &FixedPart, ctx_full: u64, ctx_window: u64) -> StepTimes {
        let Some(kp) = self.plain_kernel() else {
            return self.price_decodes(fixed, ctx_full, ctx_window).times;
        };
        self.complete_times(kp, &fixed.times, ctx_full, ctx_window)
    }

    /// [`CostModel::price_decodes`] on one micro-batch and one rank with the kernel
    /// model, for the times alone: decode attention, then the sampler.
    fn complete_times(
        &self,
        kp: &KernelPart,
        f: &FixedTimes,
        ctx_full: u64,
        ctx_window: u64,
    ) -> StepTimes {
        let (mut compute_s, mut memory_s) = (f.compute_s, f.memory_s);
        let (cf, cw) = (ctx_full as f64, ctx_window as f64);
        let (mut work, mut secs) = (GroupWork::default(), 0.0);
        if f.decodes > 0 {
            work = self.decode_attn_work(cf, cw);
            secs = kp.decode_s(self, f.decodes as f64, cf, cw);
        }
        if self.compute_bound_at(&work, self.peak_of(ATTN_D)) {
            compute_s += secs;
        } else {
            memory_s += secs;
        }
        if f.sampler_compute {
            compute_s += f.sampler_s;
        } else {
            memory_s += f.sampler_s;
        }
        StepTimes {
            compute_s,
            memory_s,
            gpu_overhead_s: f.gpu_overhead_s,
            cpu_s: f.cpu_s,
            cpu_overlap: self.cpu_overlap,
            api_s: f.api_s,
        }
    }

    /// Work of the dense GEMMs (all three groups together) and the KV-cache write
    /// for `tokens` tokens.
    fn dense_work(&self, tokens: f64) -> GroupWork {
        GroupWork {
            flops: self.dense_flops_per_token * tokens,
            bytes: self.dense_bytes + tokens * self.kv_write_bytes_per_token,
        }
    }

    /// Work of the LM head and of the sampler for `emitting` sampling sequences.
    fn head_work(&self, emitting: f64) -> (GroupWork, GroupWork) {
        let e = emitting;
        (
            GroupWork {
                flops: self.head_flops_per_seq * e,
                bytes: self.head_bytes,
            },
            GroupWork {
                flops: 0.0,
                bytes: self.sampler_bytes_per_seq * e,
            },
        )
    }

    /// The kernel model's groups that depend on the token count alone (`tokens`
    /// tokens on one rank of `dp`): the dense GEMMs with the MoE layers, and the
    /// streaming kernels; their work, seconds and bound.
    fn token_part(&self, kp: &KernelPart, tokens: f64, dp: f64) -> TokenPart {
        let groups = self.token_work(kp, tokens, dp);
        let mut gs = [0.0; NUM_GROUPS];
        kp.dense_s(self, tokens, &mut gs);
        let ids = [QKV, O_PROJ, MLP, ELEM];
        TokenPart {
            groups,
            group_s: ids.map(|i| gs[i]),
            compute: std::array::from_fn(|j| {
                self.compute_bound_at(&groups[j], self.peak_of(ids[j]))
            }),
        }
    }

    /// The work of [`CostModel::token_part`]'s groups (QKV, output, MLP,
    /// elementwise).
    fn token_work(&self, kp: &KernelPart, tokens: f64, dp: f64) -> [GroupWork; 4] {
        let mut g = [GroupWork::default(); NUM_GROUPS];
        if tokens > 0.0 {
            g[QKV] = self.dense_work(tokens);
        }
        let dense = g[QKV];
        for (i, f) in kp.dense_shares.iter().enumerate() {
            g[QKV + i] = GroupWork {
                flops: dense.flops * f,
                bytes: dense.bytes * f,
            };
        }
        if let Some(e) = &self.ep {
            let w = e.work(tokens * dp);
            g[MLP].flops += w.flops;
            g[MLP].bytes += w.bytes;
        } else if let Some(m) = &self.moe {
            let w = m.work(tokens);
            g[MLP].flops += w.flops;
            g[MLP].bytes += w.bytes;
        }
        g[ELEM] = GroupWork {
            flops: 0.0,
            bytes: tokens * kp.stream_bytes_per_token,
        };
        [QKV, O_PROJ, MLP, ELEM].map(|i| g[i])
    }

    /// The kernel model's groups that depend on the emitting count alone
    /// (`emitting` sampling sequences on one rank): the LM head and the sampler.
    fn head_part(&self, kp: &KernelPart, emitting: f64) -> HeadPart {
        let (mut head, mut sampler) = (GroupWork::default(), GroupWork::default());
        let mut head_s = 0.0;
        if emitting > 0.0 {
            (head, sampler) = self.head_work(emitting);
            head_s = kp.head_s(emitting);
        }
        let sampler_s = if sampler.bytes > 0.0 {
            kp.curves.stream_us(sampler.bytes) * 1e-6
        } else {
            0.0
        };
        HeadPart {
            head,
            sampler,
            head_s,
            sampler_s,
            head_compute: self.compute_bound_at(&head, self.peak_flops),
            sampler_compute: self.compute_bound_at(&sampler, self.peak_flops),
        }
    }

    /// Adds a group's time at the roof that binds it (flat roofline).
    fn roofline(&self, w: &GroupWork, compute_s: &mut f64, memory_s: &mut f64) -> f64 {
        self.roofline_at(w, self.flops_per_s, compute_s, memory_s)
    }

    /// [`CostModel::roofline`] at `flops_per_s` (the dense GEMMs' in their format).
    fn roofline_at(
        &self,
        w: &GroupWork,
        flops_per_s: f64,
        compute_s: &mut f64,
        memory_s: &mut f64,
    ) -> f64 {
        let tc = w.flops / flops_per_s;
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
    /// (datasheet peaks, `peak_flops` being the dense GEMMs' weight format's for them):
    /// FLOPs / peak FLOP/s > bytes / peak bandwidth.
    fn compute_bound_at(&self, w: &GroupWork, peak_flops: f64) -> bool {
        w.flops / peak_flops > w.bytes / self.peak_bw
    }

    /// The datasheet peak FLOP/s a group's bound is judged at: the dense GEMMs'
    /// weight format's for them, the 16-bit tensor peak for the rest.
    fn peak_of(&self, i: usize) -> f64 {
        if i <= MLP {
            self.dense_peak_flops
        } else {
            self.peak_flops
        }
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
        if self.compute_bound_at(&g[i], self.peak_of(i)) {
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
        let k = fixed.micro_batches;
        let (mut b, mut cf, mut cw) = (
            fixed.times.decodes as f64,
            ctx_full as f64,
            ctx_window as f64,
        );
        if k > 1.0 {
            (b, cf, cw) = (b / k, cf / k, cw / k);
        }
        let dp = self.dp();
        if dp > 1.0 {
            (b, cf, cw) = (b / dp, cf / dp, cw / dp);
        }
        if fixed.times.decodes > 0 {
            g[ATTN_D] = self.decode_attn_work(cf, cw);
        }
        let (mut compute_s, mut memory_s) = (fixed.times.compute_s, fixed.times.memory_s);
        match &self.kernel {
            None => {
                for i in [ATTN_D, SAMPLER] {
                    gs[i] = self.roofline(&g[i], &mut compute_s, &mut memory_s);
                }
            }
            Some(kp) => {
                if fixed.times.decodes > 0 {
                    gs[ATTN_D] = kp.decode_s(self, b, cf, cw);
                }
                // The sampler's seconds and bound came with the fixed part.
                self.classify(ATTN_D, &g, &gs, &mut compute_s, &mut memory_s);
                if fixed.times.sampler_compute {
                    compute_s += gs[SAMPLER];
                } else {
                    memory_s += gs[SAMPLER];
                }
            }
        }
        let mut gpu_overhead_s = fixed.times.gpu_overhead_s;
        if let Some(p) = self.par.as_ref().filter(|p| p.pp > 1) {
            // A stage's GPU runs the k micro-batches' work; the step lasts the
            // schedule's stage times, plus the sends on a micro-batch's way.
            let t = p.stage_times(k);
            for i in 0..NUM_GROUPS {
                g[i].flops *= k;
                g[i].bytes *= k;
                gs[i] *= t;
            }
            compute_s *= t;
            memory_s = memory_s * t + fixed.transfers_s;
            gpu_overhead_s *= t;
            gs[COMM] += fixed.transfers_s;
        }
        StepCost {
            groups: g,
            group_s: gs,
            times: StepTimes {
                compute_s,
                memory_s,
                gpu_overhead_s,
                cpu_s: fixed.times.cpu_s,
                cpu_overlap: self.cpu_overlap,
                api_s: fixed.times.api_s,
            },
        }
    }

    /// The CPU parts (serial, overlapped) of [`StepTimes::exclusive_durations`] for
    /// every completion of `fixed` by [`CostModel::price_decodes`]: they do not
    /// depend on the context sums, and are computed as that price computes them,
    /// without pricing decode attention.
    pub fn cpu_durations(&self, fixed: &FixedPart) -> (Dur, Dur) {
        let c = StepTimes {
            cpu_s: fixed.times.cpu_s,
            cpu_overlap: self.cpu_overlap,
            api_s: fixed.times.api_s,
            ..StepTimes::default()
        };
        (
            Dur::from_secs_f64(c.cpu_serial_s()),
            Dur::from_secs_f64(c.cpu_overlapped_s()),
        )
    }

    /// The engine's CPU seconds of a step of `seqs` sequences (its fixed part plus
    /// the per-sequence part), as [`CostModel::price`] computes them.
    pub fn cpu_s_for(&self, seqs: u64) -> f64 {
        if seqs > 0 {
            self.cpu_step_s + self.cpu_seq_s_for(seqs)
        } else {
            0.0
        }
    }

    /// The per-sequence part alone of [`CostModel::cpu_s_for`] (with data-parallel
    /// attention each rank's engine core schedules its own 1/dp share, concurrently).
    pub fn cpu_seq_s_for(&self, seqs: u64) -> f64 {
        let dp = self.dp();
        if dp > 1.0 {
            self.cpu_seq_s * (seqs as f64 / dp)
        } else {
            self.cpu_seq_s * seqs as f64
        }
    }

    /// Data-parallel attention ranks (1 without).
    fn dp(&self) -> f64 {
        self.deploy.data_parallel.max(1) as f64
    }

    /// The expert-parallel part of the price, if the deployment has one.
    pub fn expert_parallel(&self) -> Option<&expert_parallel::ExpertParallel> {
        self.ep.as_deref()
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

impl CostModel {
    /// Attended keys of a prefill chunk in one window layer: sliding
    /// ([`CostModel::chunk_pairs`]) or chunked ([`variant::chunked_pairs`]).
    fn window_pairs(&self, c: u64, p: u64) -> f64 {
        if self.chunked && self.window > 0 {
            variant::chunked_pairs(c, p, self.window)
        } else {
            Self::chunk_pairs(c, p, self.window)
        }
    }

    fn window_len(&self) -> f64 {
        if self.window == 0 {
            f64::INFINITY
        } else {
            self.window as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::resolve_profile;
    use crate::specs::{load_gpu, load_model};

    fn model_on(gpu: &str, model: &str, deploy: &Deployment) -> CostModel {
        let g = load_gpu(gpu, None, "t", "gpu").unwrap();
        let m = load_model(model, None, "t", "model").unwrap();
        let p = resolve_profile(None, "-", "vllm", None, "test", "profile").unwrap();
        CostModel::for_deployment(&m, &g, &p, GpuPath::Auto, deploy).unwrap()
    }

    /// Steps of every kind: decode-only, prefill-only, mixed, several chunks on top
    /// of cached tokens, nothing emitting, and token, emitting and prompt-length
    /// counts beyond the caches' capacities (priced every time).
    fn shapes() -> Vec<StepShape> {
        let mut out = vec![StepShape::default()];
        for (batch, ctx) in [
            (1, 1),
            (1, 500),
            (7, 3000),
            (64, 1200),
            (300, 900),
            (5000, 40),
        ] {
            out.push(StepShape::decode_only(batch, ctx, 0));
            out.push(StepShape::decode_only(batch, ctx, 512));
        }
        for tokens in [
            1, 2, 15, 16, 17, 127, 128, 129, 1000, 2048, 8191, 16383, 16384, 20000,
        ] {
            out.push(StepShape::prefill_only(tokens));
        }
        for (decodes, chunks) in [(3, vec![(0, 100)]), (40, vec![(2000, 512), (0, 33)])] {
            let prefills: Vec<PrefillChunk> = chunks
                .into_iter()
                .map(|(cached, new)| PrefillChunk { cached, new })
                .collect();
            let emitting = decodes + prefills.len() as u64;
            out.push(StepShape {
                prefills,
                decodes,
                decode_ctx_full: decodes * 700,
                decode_ctx_window: decodes * 256,
                emitting,
            });
        }
        // A chunk that does not finish its prompt emits nothing.
        out.push(StepShape {
            prefills: vec![PrefillChunk {
                cached: 30000,
                new: 100,
            }],
            emitting: 0,
            ..StepShape::default()
        });
        out
    }

    /// The cached price is the computed one to the bit, on its first use (which
    /// fills the caches) and on its second (which reads them), on a GPU with kernel
    /// tables and one without, for dense, sliding-window and MoE models, with tensor,
    /// pipeline, expert and data parallelism; and the times alone
    /// ([`CostModel::price_times`], [`CostModel::decode_times`]) are the full price's.
    #[test]
    fn cached_price_equals_computed_price_bit_for_bit() {
        let tp2 = Deployment {
            tensor_parallel: 2,
            ..Deployment::default()
        };
        let pp2 = Deployment {
            pipeline_parallel: 2,
            ..Deployment::default()
        };
        let one = Deployment::default();
        let ep = Deployment {
            tensor_parallel: 2,
            expert_parallel: true,
            ..Deployment::default()
        };
        let dp2 = Deployment {
            data_parallel: 2,
            expert_parallel: true,
            ..Deployment::default()
        };
        let cases = [
            ("a100-80gb", "llama-3.1-8b", &one),
            ("l4", "llama-3.1-8b", &one),
            ("a100-80gb", "gemma-3-1b-it", &one),
            ("l4", "gemma-3-1b-it", &one),
            ("h100-sxm", "qwen3-30b-a3b", &one),
            ("a100-80gb", "llama-3.1-8b", &tp2),
            ("h100-sxm", "llama-3.1-70b", &pp2),
            ("h100-sxm", "qwen3-30b-a3b", &ep),
            ("h100-sxm", "qwen3-30b-a3b", &dp2),
        ];
        // Debug prints every f64 in its shortest round-trip form: equal strings are
        // equal bits (the sign of a zero included).
        let bits = |c: &StepCost| format!("{c:?}");
        for (gpu, model, deploy) in cases {
            let cm = model_on(gpu, model, deploy);
            for s in shapes() {
                let want = cm.price_fixed_in(&s, false);
                for pass in ["fill", "hit"] {
                    let got = cm.price_fixed(&s);
                    assert_eq!(
                        format!("{got:?}"),
                        format!("{want:?}"),
                        "{gpu} {model} {s:?} {pass}"
                    );
                    let (cf, cw) = (s.decode_ctx_full, s.decode_ctx_window);
                    let (a, b) = (
                        cm.price_decodes(&got, cf, cw),
                        cm.price_decodes(&want, cf, cw),
                    );
                    assert_eq!(bits(&a), bits(&b), "{gpu} {model} {s:?} {pass}");
                    assert_eq!(bits(&cm.price(&s)), bits(&b), "{gpu} {model} {s:?} {pass}");
                    let (serial, _, overlapped) = b.times.exclusive_durations();
                    assert_eq!(cm.cpu_durations(&got), (serial, overlapped));
                    // The times alone, without the per-group arrays, to the bit.
                    let times = format!("{:?}", b.times);
                    assert_eq!(
                        format!("{:?}", cm.price_times(&s)),
                        times,
                        "{gpu} {model} {s:?}"
                    );
                    let t = cm.decode_times(&got, cf, cw);
                    assert_eq!(format!("{t:?}"), times, "{gpu} {model} {s:?} {pass}");
                }
            }
            // A clone shares the filled caches (and prices the same).
            let c2 = cm.clone();
            assert!(std::sync::Arc::ptr_eq(&cm.cache, &c2.cache));
            if cm.kernel.is_some() && deploy.pipeline_parallel <= 1 && deploy.data_parallel <= 1 {
                assert!(cm.cache.tokens.filled_pages() > 0, "{gpu} {model}");
                assert!(cm.cache.heads.filled_pages() > 0, "{gpu} {model}");
            }
        }
    }

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
