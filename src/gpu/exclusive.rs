//! An exclusive GPU (DESIGN §1): one instance, whose step runs its serial CPU part,
//! then its GPU work at full speed alongside the overlapped CPU part. Nothing else
//! shares the GPU, so a step's end is known when it starts (closed form).

use super::{Job, SharedGpu, Wake};
use crate::cost::StepTimes;
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
        cost: &StepTimes,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> SimTime {
        SimTime::ZERO + Dur::from_millis_f64(x)
    }

    /// A step of 4 ms CPU (half overlapped) and 3 ms GPU from t = 0: serial CPU 0–2,
    /// GPU 2–5, overlapped CPU 2–4, so it ends at 5 ms with 3 ms of GPU busy time.
    /// One of 6 ms CPU and 1 ms GPU from 10 ms ends at its CPU floor, 16 ms; if the
    /// run ends at 13.5 ms, half a millisecond of its GPU span (13–14) has run.
    #[test]
    fn a_step_ends_at_the_later_of_its_gpu_and_cpu_parts() {
        let mut gpu = Exclusive::default();
        let a = StepTimes {
            compute_s: 0.003,
            cpu_s: 0.004,
            cpu_overlap: 0.5,
            ..StepTimes::default()
        };
        assert_eq!(gpu.closed_form_step(ms(0.0), 0, &a), Some(ms(5.0)));
        assert_eq!(gpu.busy(), Dur::ZERO, "counted when the step ends");
        gpu.step_ended(0);
        assert_eq!(gpu.busy(), Dur::from_millis_f64(3.0));
        let b = StepTimes {
            memory_s: 0.001,
            cpu_s: 0.006,
            cpu_overlap: 0.5,
            ..StepTimes::default()
        };
        assert_eq!(gpu.closed_form_step(ms(10.0), 0, &b), Some(ms(16.0)));
        gpu.close(ms(13.5));
        assert_eq!(gpu.busy(), Dur::from_millis_f64(3.5));
    }
}
