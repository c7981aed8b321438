//! Time-slicing (DESIGN §1): one instance's context on the GPU at a time. Steps queue
//! in the order their GPU work is submitted; the running one has the whole GPU for a
//! turn of `quantum`, and is suspended at the end of its turn if another waits.
//! Switching to another instance's context costs `switch_cost`, during which nothing
//! runs. Jobs run at full speed, so work is counted in integer nanoseconds.

use super::{Job, SharedGpu, Wake};
use crate::time::{Dur, SimTime};
use std::collections::VecDeque;

/// A time-sliced GPU.
#[derive(Debug, Clone)]
pub struct TimeSlice {
    quantum: Dur,
    switch_cost: Dur,
    queue: VecDeque<Job>,
    /// Instance whose context is loaded.
    ctx: Option<usize>,
    /// (job, since, turn end).
    running: Option<(Job, SimTime, SimTime)>,
    /// The job whose context is being loaded, and when that is done.
    switching: Option<(Job, SimTime)>,
    version: u64,
    busy: Dur,
}

impl TimeSlice {
    /// An idle GPU with turns of `quantum` and context switches of `switch_cost`.
    pub fn new(quantum: Dur, switch_cost: Dur) -> Self {
        TimeSlice {
            quantum,
            switch_cost,
            queue: VecDeque::new(),
            ctx: None,
            running: None,
            switching: None,
            version: 0,
            busy: Dur::ZERO,
        }
    }

    fn wake_at(&mut self, at: SimTime) -> Wake {
        self.version += 1;
        Wake {
            at,
            token: self.version,
        }
    }

    /// Starts the next queued job, switching context first if it is another
    /// instance's.
    fn dispatch(&mut self, now: SimTime) -> Option<Wake> {
        let job = self.queue.pop_front()?;
        if self.ctx == Some(job.instance) || self.ctx.is_none() || self.switch_cost.0 == 0 {
            self.ctx = Some(job.instance);
            Some(self.run(now, job))
        } else {
            let at = now + self.switch_cost;
            self.switching = Some((job, at));
            Some(self.wake_at(at))
        }
    }

    /// Gives `job` a turn from `now`.
    fn run(&mut self, now: SimTime, job: Job) -> Wake {
        let turn_end = now + self.quantum;
        let finish = now + Dur(job.left_ns);
        self.running = Some((job, now, turn_end));
        self.wake_at(finish.min(turn_end))
    }
}

impl SharedGpu for TimeSlice {
    fn add_busy(&mut self, busy: Dur) {
        self.busy = self.busy + busy;
    }

    fn submit(&mut self, now: SimTime, job: Job) -> Option<Wake> {
        self.queue.push_back(job);
        if self.running.is_none() && self.switching.is_none() {
            self.dispatch(now)
        } else {
            None
        }
    }

    fn wake(&mut self, now: SimTime, token: u64, finished: &mut Vec<usize>) -> Option<Wake> {
        if token != self.version {
            return None;
        }
        if let Some((job, _)) = self.switching.take() {
            self.ctx = Some(job.instance);
            return Some(self.run(now, job));
        }
        let (mut job, since, turn_end) = self.running.take()?;
        let ran = now - since;
        self.busy = self.busy + ran;
        job.left_ns -= ran.0.min(job.left_ns);
        if job.left_ns == 0 {
            finished.push(job.instance);
            self.dispatch(now)
        } else if now >= turn_end && !self.queue.is_empty() {
            self.queue.push_back(job);
            self.dispatch(now)
        } else {
            Some(self.run(now, job))
        }
    }

    fn close(&mut self, now: SimTime) {
        if let Some((_, since, _)) = self.running {
            self.busy = self.busy + (now - since);
        }
    }

    fn busy(&self) -> Dur {
        self.busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::GpuWork;

    fn ms(x: u64) -> SimTime {
        SimTime::ZERO + Dur::from_millis_f64(x as f64)
    }

    fn job(instance: usize, ms: f64) -> Job {
        let w = GpuWork {
            compute_s: ms / 1e3,
            memory_s: 0.0,
            overhead_s: 0.0,
        };
        Job::new(instance, &w, 1.0)
    }

    /// Two instances' 3 ms jobs with 2 ms turns and 1 ms switches, worked by hand:
    /// A 0–2, switch, B 3–5, switch, A 6–7 (done), switch, B 8–9 (done).
    #[test]
    fn two_jobs_take_turns_and_pay_for_each_switch() {
        let mut gpu = TimeSlice::new(Dur::from_millis_f64(2.0), Dur::from_millis_f64(1.0));
        let mut w = gpu.submit(ms(0), job(0, 3.0)).unwrap();
        assert_eq!(w.at, ms(2));
        assert_eq!(gpu.submit(ms(0), job(1, 3.0)), None);
        let mut done = Vec::new();
        let mut ends = Vec::new();
        let mut wakes = vec![w.at];
        loop {
            let stale = w.token - 1;
            assert_eq!(
                gpu.wake(w.at, stale, &mut done),
                None,
                "a stale wake does nothing"
            );
            let before = done.len();
            let next = gpu.wake(w.at, w.token, &mut done);
            for &i in &done[before..] {
                ends.push((i, w.at));
            }
            match next {
                Some(n) => {
                    wakes.push(n.at);
                    w = n;
                }
                None => break,
            }
        }
        assert_eq!(wakes, [2, 3, 5, 6, 7, 8, 9].map(ms));
        assert_eq!(ends, vec![(0, ms(7)), (1, ms(9))]);
        assert_eq!(gpu.busy(), Dur::from_millis_f64(6.0));
    }
}
