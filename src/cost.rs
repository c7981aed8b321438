//! The cost of one GPU step (DESIGN §2): count the work of a forward pass, then turn
//! work into time with the GPU's roofline and the profile's efficiencies and overheads.
//!
//! A step is described by a [`StepShape`]: the prefill chunks it runs (each `new`
//! tokens on top of `cached`), and, in aggregate, the decodes (how many, and the sums
//! of their attended context lengths). Pricing is O(prefill chunks), independent of
//! the number of decodes, so a step of 256 decodes costs the same to price as one.

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

/// Names of the kernel groups, in the order of [`StepCost::groups`].
pub const GROUP_NAMES: [&str; 5] = ["dense", "lm_head", "attn_prefill", "attn_decode", "sampler"];

/// The priced step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepCost {
    /// Work per kernel group (see [`GROUP_NAMES`]).
    pub groups: [GroupWork; 5],
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

    /// CPU time that overlaps the instance's own GPU work.
    pub fn cpu_overlapped_s(&self) -> f64 {
        self.cpu_overlap * self.cpu_s
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
    groups: [GroupWork; 5],
    compute_s: f64,
    memory_s: f64,
    decodes: bool,
    gpu_overhead_s: f64,
    cpu_s: f64,
}

/// Constants of one (model, GPU, profile) triple, precomputed for fast pricing.
#[derive(Debug, Clone)]
pub struct CostModel {
    /// The model's name (for reports).
    model: String,
    flops_per_s: f64,
    bytes_per_s: f64,
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
    sampler_bytes_per_seq: f64,
    gpu_step_s: f64,
    gpu_seq_s: f64,
    cpu_step_s: f64,
    cpu_seq_s: f64,
    cpu_overlap: f64,
}

impl CostModel {
    /// Precomputes the constants for pricing steps of `model` on `gpu` with `profile`.
    pub fn new(model: &ModelSpec, gpu: &GpuSpec, profile: &Profile) -> CostModel {
        let bpp = model.dtype_bytes as f64;
        let d = model.hidden_size as f64;
        let v = model.vocab_size as f64;
        let per_head = (model.num_heads as u64 * model.head_dim) as f64;
        let kv_layer = model.kv_bytes_per_token_layer() as f64;
        CostModel {
            model: model.name.clone(),
            flops_per_s: gpu.peak_flops() * profile.eta_compute,
            bytes_per_s: gpu.peak_bandwidth() * profile.eta_bandwidth,
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
            sampler_bytes_per_seq: 4.0 * v * profile.logits_passes,
            gpu_step_s: profile.gpu_step_overhead_us * 1e-6,
            gpu_seq_s: profile.gpu_seq_overhead_us * 1e-6,
            cpu_step_s: profile.cpu_step_overhead_us * 1e-6,
            cpu_seq_s: profile.cpu_seq_overhead_us * 1e-6,
            cpu_overlap: profile.cpu_overlap,
        }
    }

    /// The name of the model it prices.
    pub fn model_name(&self) -> &str {
        &self.model
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
        let mut g = [GroupWork::default(); 5];
        let tokens = s.num_tokens() as f64;
        if tokens > 0.0 {
            g[0] = GroupWork {
                flops: self.dense_flops_per_token * tokens,
                bytes: self.dense_bytes + tokens * self.kv_write_bytes_per_token,
            };
        }
        if s.emitting > 0 {
            let e = s.emitting as f64;
            g[1] = GroupWork {
                flops: self.head_flops_per_seq * e,
                bytes: self.head_bytes,
            };
            g[4] = GroupWork {
                flops: 0.0,
                bytes: self.sampler_bytes_per_seq * e,
            };
        }
        for p in &s.prefills {
            let full = Self::chunk_pairs(p.cached, p.new, 0);
            let win = Self::chunk_pairs(p.cached, p.new, self.window);
            g[2].flops += self.attn_flops_pair_full * full + self.attn_flops_pair_window * win;
            let keys = (p.cached + p.new) as f64;
            let keys_w = if self.window == 0 {
                keys
            } else {
                keys.min(self.window as f64)
            };
            g[2].bytes += self.kv_read_full * keys + self.kv_read_window * keys_w;
        }
        let (mut compute_s, mut memory_s) = (0.0, 0.0);
        for w in &g[..3] {
            self.roofline(w, &mut compute_s, &mut memory_s);
        }
        let n = s.num_seqs() as f64;
        let busy = s.num_seqs() > 0;
        FixedPart {
            groups: g,
            compute_s,
            memory_s,
            decodes: s.decodes > 0,
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
        }
    }

    /// Adds a group's time at the roof that binds it.
    fn roofline(&self, w: &GroupWork, compute_s: &mut f64, memory_s: &mut f64) {
        let tc = w.flops / self.flops_per_s;
        let tm = w.bytes / self.bytes_per_s;
        if tc > tm {
            *compute_s += tc;
        } else {
            *memory_s += tm;
        }
    }

    /// Completes `fixed` with decode attention over `ctx_full` attended keys in full
    /// layers and `ctx_window` in sliding-window layers (sums over the decodes).
    pub fn price_decodes(&self, fixed: &FixedPart, ctx_full: u64, ctx_window: u64) -> StepCost {
        let mut g = fixed.groups;
        if fixed.decodes {
            g[3] = GroupWork {
                flops: self.attn_flops_pair_full * ctx_full as f64
                    + self.attn_flops_pair_window * ctx_window as f64,
                bytes: self.kv_read_full * ctx_full as f64
                    + self.kv_read_window * ctx_window as f64,
            };
        }
        let (mut compute_s, mut memory_s) = (fixed.compute_s, fixed.memory_s);
        for w in &g[3..] {
            self.roofline(w, &mut compute_s, &mut memory_s);
        }
        StepCost {
            groups: g,
            compute_s,
            memory_s,
            gpu_overhead_s: fixed.gpu_overhead_s,
            cpu_s: fixed.cpu_s,
            cpu_overlap: self.cpu_overlap,
        }
    }

    /// Peak FLOP/s the profile achieves.
    pub fn flops_per_s(&self) -> f64 {
        self.flops_per_s
    }

    /// Bandwidth the profile achieves, bytes/s.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes_per_s
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
    /// Seconds in compute-bound groups.
    pub compute_bound_seconds: f64,
    /// Seconds in memory-bound groups.
    pub memory_bound_seconds: f64,
    /// GPU overhead seconds.
    pub gpu_overhead_seconds: f64,
    /// `compute-bound`, `memory-bound` or `overhead-bound`: the largest of the three.
    pub bound: String,
    /// The kernel group with the largest time.
    pub dominant_group: String,
    /// Per group: flops, bytes, time at the compute roof, time at the memory roof.
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
    /// Seconds at the achieved compute roof.
    pub compute_seconds: f64,
    /// Seconds at the achieved memory roof.
    pub memory_seconds: f64,
    /// `compute` or `memory`.
    pub bound: String,
}

impl CostModel {
    /// Prices a step and explains where its time goes.
    pub fn explain(&self, s: &StepShape) -> StepBreakdown {
        let c = self.price(s);
        let mut groups = Vec::new();
        let mut dominant = ("none", 0.0);
        for (name, w) in GROUP_NAMES.iter().zip(c.groups.iter()) {
            let tc = w.flops / self.flops_per_s;
            let tm = w.bytes / self.bytes_per_s;
            if tc.max(tm) > dominant.1 {
                dominant = (name, tc.max(tm));
            }
            groups.push(GroupBreakdown {
                name: name.to_string(),
                flops: w.flops,
                bytes: w.bytes,
                compute_seconds: tc,
                memory_seconds: tm,
                bound: if tc > tm { "compute" } else { "memory" }.into(),
            });
        }
        let bound = if c.compute_s >= c.memory_s && c.compute_s >= c.gpu_overhead_s {
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
            compute_bound_seconds: c.compute_s,
            memory_bound_seconds: c.memory_s,
            gpu_overhead_seconds: c.gpu_overhead_s,
            bound: bound.into(),
            dominant_group: dominant.0.into(),
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
