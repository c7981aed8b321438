//! CUDA MPS (DESIGN §1): the steps of several instances run on the GPU at once and
//! share its SMs and memory bandwidth as a fluid, each instance's compute capped by
//! its active-thread fraction. Speeds are recomputed ([`fluid_speeds`]) whenever a
//! job starts or ends; between those instants every job progresses linearly. The
//! recomputation reuses the GPU's scratch buffers ([`FluidScratch`]): no allocation
//! per step start or end once the buffers have grown to the number of instances.

use super::{Job, SharedGpu, Wake};
use crate::time::{Dur, SimTime};

/// An MPS-shared GPU.
#[derive(Debug, Clone, Default)]
pub struct Mps {
    jobs: Vec<Job>,
    speeds: Vec<f64>,
    scratch: FluidScratch,
    last: SimTime,
    version: u64,
    busy: Dur,
}

impl Mps {
    /// Progress of every job from the last change to `now`.
    fn advance(&mut self, now: SimTime) {
        let span = now - self.last;
        let dt = span.as_secs_f64();
        if !self.jobs.is_empty() {
            self.busy = self.busy + span;
        }
        for (j, s) in self.jobs.iter_mut().zip(self.speeds.iter()) {
            j.remaining -= s * dt / j.total_s;
        }
        self.last = now;
    }

    /// New speeds from `now` on, and the wake at the first job to finish.
    fn reschedule(&mut self, now: SimTime) -> Option<Wake> {
        fluid_speeds_with(&self.jobs, &mut self.speeds, &mut self.scratch);
        self.version += 1;
        let mut next = f64::INFINITY;
        for (j, s) in self.jobs.iter().zip(self.speeds.iter()) {
            if *s > 0.0 {
                next = next.min(j.remaining.max(0.0) * j.total_s / s);
            }
        }
        // Rounded to the nanosecond; a job within 1 ns of done counts as done.
        next.is_finite().then(|| Wake {
            at: now + Dur::from_secs_f64(next),
            token: self.version,
        })
    }
}

impl SharedGpu for Mps {
    fn add_busy(&mut self, busy: Dur) {
        self.busy = self.busy + busy;
    }

    fn submit(&mut self, now: SimTime, job: Job) -> Option<Wake> {
        self.advance(now);
        self.jobs.push(job);
        self.reschedule(now)
    }

    fn wake(&mut self, now: SimTime, token: u64, finished: &mut Vec<usize>) -> Option<Wake> {
        if token != self.version {
            return None;
        }
        self.advance(now);
        self.jobs.retain(|j| {
            let done = j.remaining * j.total_s <= 1e-9;
            if done {
                finished.push(j.instance);
            }
            !done
        });
        self.reschedule(now)
    }

    fn close(&mut self, now: SimTime) {
        self.advance(now);
    }

    fn busy(&self) -> Dur {
        self.busy
    }
}

/// The speed (fraction of exclusive speed) of every job when they run together:
/// progressive filling (max-min fairness) over two resources, the SMs and the memory
/// bandwidth, each of capacity 1, with each job's SM use capped at `cap`.
/// A job running at speed `s` uses `s · sm_share` of the SMs and `s · bw_share` of
/// the bandwidth.
pub fn fluid_speeds(jobs: &[Job], out: &mut Vec<f64>) {
    fluid_speeds_with(jobs, out, &mut FluidScratch::default());
}

/// Buffers [`fluid_speeds_with`] reuses from one call to the next.
#[derive(Debug, Clone, Default)]
pub struct FluidScratch {
    frozen: Vec<bool>,
    active: Vec<usize>,
}

/// [`fluid_speeds`] with its working buffers borrowed from `scratch` (the same
/// arithmetic in the same order, so the same speeds to the bit).
pub fn fluid_speeds_with(jobs: &[Job], out: &mut Vec<f64>, scratch: &mut FluidScratch) {
    out.clear();
    out.resize(jobs.len(), 0.0);
    let FluidScratch { frozen, active } = scratch;
    frozen.clear();
    frozen.resize(jobs.len(), false);
    let (mut sm_left, mut bw_left) = (1.0f64, 1.0f64);
    loop {
        active.clear();
        active.extend((0..jobs.len()).filter(|&i| !frozen[i]));
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
        for &i in active.iter() {
            d = d.min(1.0 - out[i]);
            if jobs[i].sm_share > 0.0 {
                d = d.min((jobs[i].cap - out[i] * jobs[i].sm_share) / jobs[i].sm_share);
            }
        }
        let d = d.max(0.0);
        for &i in active.iter() {
            out[i] += d;
        }
        sm_left -= d * sm_demand;
        bw_left -= d * bw_demand;
        // Freeze jobs that hit a limit.
        let eps = 1e-12;
        let sm_full = sm_left <= eps;
        let bw_full = bw_left <= eps;
        let mut any = false;
        for &i in active.iter() {
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

#[cfg(test)]
mod model_tests {
    use super::*;
    use crate::gpu::GpuWork;

    fn at(s: f64) -> SimTime {
        SimTime::from_secs_f64(s)
    }

    /// Two 1 s bandwidth-bound jobs, the second joining at 0.5 s: from then on each
    /// runs at half speed, so the first ends at 1.5 s and the second, alone again
    /// with 0.5 s of work left, at 2 s. The GPU is busy throughout.
    #[test]
    fn a_job_joining_halves_the_speed_of_the_one_running() {
        let w = GpuWork {
            compute_s: 0.0,
            memory_s: 1.0,
            overhead_s: 0.0,
        };
        let mut gpu = Mps::default();
        let first = gpu.submit(at(0.0), Job::new(0, &w, 1.0)).unwrap();
        assert_eq!(first.at, at(1.0));
        let second = gpu.submit(at(0.5), Job::new(1, &w, 1.0)).unwrap();
        assert_eq!(second.at, at(1.5));
        let mut done = Vec::new();
        assert_eq!(gpu.wake(first.at, first.token, &mut done), None);
        assert!(done.is_empty(), "the superseded wake is ignored");
        let third = gpu.wake(second.at, second.token, &mut done).unwrap();
        assert_eq!(done, vec![0]);
        assert_eq!(third.at, at(2.0));
        assert_eq!(gpu.wake(third.at, third.token, &mut done), None);
        assert_eq!(done, vec![0, 1]);
        assert_eq!(gpu.busy(), Dur::from_secs_f64(2.0));
    }
}
