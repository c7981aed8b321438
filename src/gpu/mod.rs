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
//!
//! Each mode is one file implementing [`SharedGpu`] (`exclusive.rs`, `mps.rs`,
//! `timeslice.rs`); [`build`] makes a GPU's model from its [`Sharing`]. The event loop
//! talks to GPUs only through the trait: it hands a step's GPU work to
//! [`SharedGpu::submit`], schedules a check at the [`Wake`] it gets back, and at that
//! time calls [`SharedGpu::wake`], which advances the GPU and names the instances
//! whose GPU work finished. A new sharing mode is a new file, a [`Sharing`] variant
//! and a line in [`build`]; the event loop does not change.

mod exclusive;
mod mps;
mod timeslice;

pub use exclusive::Exclusive;
pub use mps::{fluid_speeds, Mps};
pub use timeslice::TimeSlice;

use crate::cost::StepTimes;
use crate::time::{Dur, SimTime};

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
    pub fn of(c: &StepTimes) -> Self {
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

impl Job {
    /// The whole of `work` (whose [`GpuWork::total`] must be positive) for
    /// `instance`, whose compute is capped at `cap`.
    pub fn new(instance: usize, work: &GpuWork, cap: f64) -> Self {
        let total = work.total();
        Job {
            instance,
            remaining: 1.0,
            total_s: total,
            left_ns: Dur::from_secs_f64(total).0,
            sm_share: (work.compute_s + work.overhead_s) / total,
            bw_share: work.memory_s / total,
            cap,
        }
    }
}

/// When a GPU wants to be woken: call [`SharedGpu::wake`] at `at` with `token`. A
/// later wake supersedes an earlier one; a superseded wake is ignored (its token is
/// stale), so the event loop never has to cancel one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    /// When.
    pub at: SimTime,
    /// Identifies this wake to the GPU.
    pub token: u64,
}

/// A GPU as the event loop sees it: it runs the GPU part of the steps of the
/// instances placed on it and says when they finish.
///
/// Two ways in. A GPU that runs one instance's work at full speed prices a whole step
/// when it starts ([`SharedGpu::closed_form_step`] returns its end; the event loop may
/// then run such steps in place, see `sim`). Otherwise a step's GPU work is handed
/// over with [`SharedGpu::submit`] once its serial CPU part is done, and finishes at
/// some later [`SharedGpu::wake`].
pub trait SharedGpu: std::fmt::Debug + Send {
    /// Whether steps on this GPU are priced whole when they start.
    fn closed_form(&self) -> bool {
        false
    }
    /// If [`SharedGpu::closed_form`]: starts `instance`'s step priced `cost` at `now`
    /// and returns when it ends (GPU and CPU parts both done). `None` otherwise.
    fn closed_form_step(
        &mut self,
        _now: SimTime,
        _instance: usize,
        _cost: &StepTimes,
    ) -> Option<SimTime> {
        None
    }
    /// Counts `busy` GPU time of closed-form steps the event loop ran in place.
    fn add_busy(&mut self, busy: Dur);
    /// `instance`'s step (closed-form or not) has ended.
    fn step_ended(&mut self, _instance: usize) {}
    /// Hands over a step's GPU work at `now`; returns the next wake if it moved.
    fn submit(&mut self, now: SimTime, job: Job) -> Option<Wake>;
    /// Advances to `now`, the time of a wake with `token`, pushing onto `finished` the
    /// instances whose GPU work finished (in the order their steps should end);
    /// returns the next wake if it moved. A stale token does nothing.
    fn wake(&mut self, now: SimTime, token: u64, finished: &mut Vec<usize>) -> Option<Wake>;
    /// The run ends at `now`: counts the busy time of work still in flight.
    fn close(&mut self, now: SimTime);
    /// GPU busy time so far (time in which some GPU work was running).
    fn busy(&self) -> Dur;
}

/// The model of a GPU shared as `sharing`.
pub fn build(sharing: Sharing) -> Box<dyn SharedGpu> {
    match sharing {
        Sharing::Exclusive => Box::new(Exclusive::default()),
        Sharing::Mps => Box::new(Mps::default()),
        Sharing::TimeSlice {
            quantum,
            switch_cost,
        } => Box::new(TimeSlice::new(quantum, switch_cost)),
    }
}
