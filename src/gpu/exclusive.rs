//! An exclusive GPU (DESIGN §1): one instance, whose step runs its serial CPU part,
//! then its GPU work at full speed alongside the overlapped CPU part. Nothing else
//! shares the GPU, so a step's end is known when it starts (closed form).

use super::{Job, SharedGpu, Wake};
use crate::cost::StepCost;
use crate::time::{Dur, SimTime};

/// An exclusive GPU.
#[derive(Debug, Clone, Default)]
pub struct Exclusive {
    /// GPU span (start, end) of the step in flight, by instance.
    spans: Vec<Option<(SimTime, SimTime)>>,
    busy: Dur,
}

impl SharedGpu for Exclusive {
    fn closed_form(&self) -> bool {
        true
    }

    /// Serial CPU, then max(GPU, overlapped CPU), rounded as the shared modes round
    /// them so one instance gives identical times.
    fn closed_form_step(
        &mut self,
        now: SimTime,
        instance: usize,
        cost: &StepCost,
    ) -> Option<SimTime> {
        let (serial, gpu, overlapped) = cost.exclusive_durations();
        let floor = now + serial + overlapped;
        let gpu_end = now + serial + gpu;
        if self.spans.len() <= instance {
            self.spans.resize(instance + 1, None);
        }
        self.spans[instance] = Some((now + serial, gpu_end));
        Some(gpu_end.max(floor))
    }

    fn add_busy(&mut self, busy: Dur) {
        self.busy = self.busy + busy;
    }

    fn step_ended(&mut self, instance: usize) {
        if let Some((a, b)) = self.spans.get_mut(instance).and_then(Option::take) {
            self.busy = self.busy + (b - a);
        }
    }

    fn submit(&mut self, _now: SimTime, _job: Job) -> Option<Wake> {
        unreachable!("exclusive steps are closed-form")
    }

    fn wake(&mut self, _now: SimTime, _token: u64, _finished: &mut Vec<usize>) -> Option<Wake> {
        None
    }

    fn close(&mut self, now: SimTime) {
        for (a, b) in self.spans.iter().flatten() {
            self.busy = self.busy + ((*b).min(now) - *a);
        }
    }

    fn busy(&self) -> Dur {
        self.busy
    }
}
