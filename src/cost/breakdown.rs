//! Explaining a priced step: where its time goes, group by group (the `step-time`
//! command), and for a sharded deployment the collectives' share.

use super::*;

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
    /// Seconds of collectives and stage transfers (tensor and pipeline parallelism;
    /// counted in the memory-bound seconds; absent on one GPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allreduce_seconds: Option<f64>,
    /// Their share of the GPU time (absent on one GPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allreduce_share: Option<f64>,
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
            if i == COMM && self.par.is_none() {
                continue;
            }
            let w = c.groups[i];
            // The dense GEMMs' compute roof is their weight format's (quantisation).
            let (peak, flops_per_s) = if i <= MLP {
                (self.dense_peak_flops, self.dense_flops_per_s)
            } else {
                (self.peak_flops, self.flops_per_s)
            };
            if c.group_s[i] > dominant.1 {
                dominant = (name, c.group_s[i]);
            }
            groups.push(GroupBreakdown {
                name: name.to_string(),
                flops: w.flops,
                bytes: w.bytes,
                seconds: c.group_s[i],
                source: sources[i].name().into(),
                compute_roof_seconds: w.flops / peak,
                memory_roof_seconds: w.bytes / self.peak_bw,
                bound: if (self.kernel.is_none()
                    && w.flops / flops_per_s > w.bytes / self.bytes_per_s)
                    || (self.kernel.is_some() && self.compute_bound_at(&w, peak))
                {
                    "compute"
                } else {
                    "memory"
                }
                .into(),
            });
        }
        let cpu = c.times.cpu_s.max(c.times.api_s);
        let comm = c.group_s[COMM];
        let bound = if cpu >= c.times.gpu_s() && cpu > 0.0 {
            "cpu-bound"
        } else if comm > 0.0 && comm >= c.times.compute_s && comm >= c.times.memory_s - comm {
            "communication-bound"
        } else if c.times.compute_s >= c.times.memory_s
            && c.times.compute_s >= c.times.gpu_overhead_s
        {
            "compute-bound"
        } else if c.times.memory_s >= c.times.gpu_overhead_s {
            "memory-bound"
        } else {
            "overhead-bound"
        };
        StepBreakdown {
            seconds: c.times.wall_s(),
            gpu_seconds: c.times.gpu_s(),
            cpu_seconds: c.times.cpu_s,
            cpu_overlapped_seconds: c.times.cpu_overlapped_s(),
            compute_bound_seconds: c.times.compute_s,
            memory_bound_seconds: c.times.memory_s,
            gpu_overhead_seconds: c.times.gpu_overhead_s,
            allreduce_seconds: self.par.as_ref().map(|_| comm),
            allreduce_share: self.par.as_ref().map(|_| comm / c.times.gpu_s()),
            bound: bound.into(),
            dominant_group: dominant.0.into(),
            gpu_part: self.gpu_part(),
            groups,
        }
    }
}
