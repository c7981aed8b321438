//! GPUs and how instances share them (DESIGN §1): the seam between an instance's
//! priced step and the time it takes.
//!
//! A step is CPU work that cannot overlap the instance's own GPU work (`serial`), then
//! GPU work, with the rest of the CPU work (`overlapped`) running alongside. The step
//! ends when both the GPU work and the overlapped CPU work are done. Sharing modes
//! differ only in how fast the GPU work of concurrent steps progresses:
//! - `exclusive`: one instance per GPU; GPU work runs at full speed.
//! - `mps`: steps of several instances run at once; the GPU's compute and bandwidth are
//!   divided among them (fluid sharing, recomputed whenever a step starts or ends),
//!   compute capped per instance by its active-thread percentage.
//! - `time-slice`: one instance's context at a time, round-robin in quanta, each switch
//!   costing time; a step longer than its turn is suspended and resumed.

use crate::cost::StepCost;
use crate::time::Dur;

/// How a GPU is shared among the instances placed on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sharing {
    /// One instance.
    Exclusive,
    /// CUDA MPS.
    Mps,
    /// Time-slicing with quantum and switch cost.
    TimeSlice {
        /// Length of a turn.
        quantum: Dur,
        /// Cost of a context switch.
        switch_cost: Dur,
    },
}

impl Sharing {
    /// Name used in configs and results.
    pub fn name(&self) -> &'static str {
        match self {
            Sharing::Exclusive => "exclusive",
            Sharing::Mps => "mps",
            Sharing::TimeSlice { .. } => "time-slice",
        }
    }
}

/// GPU work of one step in exclusive-GPU seconds, by the resource that bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GpuWork {
    /// Seconds bound by tensor-core throughput.
    pub compute_s: f64,
    /// Seconds bound by memory bandwidth.
    pub memory_s: f64,
    /// Seconds of launch and per-sequence overhead (occupies the SMs like compute).
    pub overhead_s: f64,
}

impl GpuWork {
    /// From a priced step.
    pub fn of(c: &StepCost) -> Self {
        GpuWork {
            compute_s: c.compute_s,
            memory_s: c.memory_s,
            overhead_s: c.gpu_overhead_s,
        }
    }
    /// Exclusive-GPU seconds.
    pub fn total(&self) -> f64 {
        self.compute_s + self.memory_s + self.overhead_s
    }
}

/// A step's GPU job in flight on a shared GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    /// Instance that owns it.
    pub instance: usize,
    /// Remaining fraction of the job, in (0, 1].
    pub remaining: f64,
    /// Exclusive-GPU seconds of the whole job.
    pub total_s: f64,
    /// Remaining exclusive-GPU nanoseconds (time-slicing runs jobs at full speed, so
    /// it counts work in integer time).
    pub left_ns: u64,
    /// Fraction of the job's time that needs the SMs (compute + overhead).
    pub sm_share: f64,
    /// Fraction that needs memory bandwidth.
    pub bw_share: f64,
    /// Compute cap of its instance (active-thread fraction).
    pub cap: f64,
}

/// The speed (fraction of exclusive speed) of every job when they run together:
/// progressive filling (max-min fairness) over two resources, the SMs and the memory
/// bandwidth, each of capacity 1, with each job's SM use capped at `cap`.
/// A job running at speed `s` uses `s · sm_share` of the SMs and `s · bw_share` of
/// the bandwidth.
pub fn fluid_speeds(jobs: &[Job], out: &mut Vec<f64>) {
    out.clear();
    out.resize(jobs.len(), 0.0);
    let mut frozen = vec![false; jobs.len()];
    let (mut sm_left, mut bw_left) = (1.0f64, 1.0f64);
    loop {
        let active: Vec<usize> = (0..jobs.len()).filter(|&i| !frozen[i]).collect();
        if active.is_empty() {
            break;
        }
        let sm_demand: f64 = active.iter().map(|&i| jobs[i].sm_share).sum();
        let bw_demand: f64 = active.iter().map(|&i| jobs[i].bw_share).sum();
        // Largest common increment d of speed for all active jobs.
        let mut d = f64::INFINITY;
        if sm_demand > 0.0 {
            d = d.min(sm_left / sm_demand);
        }
        if bw_demand > 0.0 {
            d = d.min(bw_left / bw_demand);
        }
        for &i in &active {
            d = d.min(1.0 - out[i]);
            if jobs[i].sm_share > 0.0 {
                d = d.min((jobs[i].cap - out[i] * jobs[i].sm_share) / jobs[i].sm_share);
            }
        }
        let d = d.max(0.0);
        for &i in &active {
            out[i] += d;
        }
        sm_left -= d * sm_demand;
        bw_left -= d * bw_demand;
        // Freeze jobs that hit a limit.
        let eps = 1e-12;
        let sm_full = sm_left <= eps;
        let bw_full = bw_left <= eps;
        let mut any = false;
        for &i in &active {
            let j = &jobs[i];
            let hit = out[i] >= 1.0 - eps
                || (j.sm_share > 0.0 && (sm_full || out[i] * j.sm_share >= j.cap - eps))
                || (j.bw_share > 0.0 && bw_full);
            if hit {
                frozen[i] = true;
                any = true;
            }
        }
        if !any {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(sm: f64, bw: f64, cap: f64) -> Job {
        Job {
            instance: 0,
            remaining: 1.0,
            total_s: 1.0,
            left_ns: 1_000_000_000,
            sm_share: sm,
            bw_share: bw,
            cap,
        }
    }

    #[test]
    fn two_bandwidth_bound_jobs_share_bandwidth_equally() {
        let mut s = Vec::new();
        fluid_speeds(&[job(0.0, 1.0, 1.0), job(0.0, 1.0, 1.0)], &mut s);
        assert_eq!(s, vec![0.5, 0.5]);
    }

    #[test]
    fn a_compute_job_and_a_memory_job_do_not_slow_each_other() {
        let mut s = Vec::new();
        fluid_speeds(&[job(1.0, 0.0, 1.0), job(0.0, 1.0, 1.0)], &mut s);
        assert_eq!(s, vec![1.0, 1.0]);
    }

    #[test]
    fn a_capped_job_never_exceeds_its_share_and_leaves_the_rest() {
        let mut s = Vec::new();
        fluid_speeds(&[job(1.0, 0.0, 0.25), job(1.0, 0.0, 1.0)], &mut s);
        assert!((s[0] - 0.25).abs() < 1e-12);
        assert!((s[1] - 0.75).abs() < 1e-12);
        fluid_speeds(&[job(1.0, 0.0, 0.3)], &mut s);
        assert!((s[0] - 0.3).abs() < 1e-12);
    }
}
