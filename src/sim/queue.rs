//! The event queue of the event loop and its ordering: events pop by [`EventKey`]
//! `(time, phase, seq)`, so at one instant by [`Phase`], then in push order.

use crate::time::SimTime;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Phase of an event: the tie-break among events at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// GPU progress, CPU phases and step completions.
    Complete = 0,
    /// Batch timers.
    Timer = 1,
    /// Request arrivals (open loop, users, offline groups).
    Arrive = 2,
    /// An instance forms its next step.
    Schedule = 3,
    /// A timed run ends.
    End = 4,
}

/// The full ordering key of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventKey {
    /// When.
    pub time: SimTime,
    /// Tie-break among equal times.
    pub phase: Phase,
    /// Insertion order, the last tie-break.
    pub seq: u64,
}

/// The event queue: a binary heap on [`EventKey`]. Equal keys cannot occur (the
/// sequence number is unique), so events at the same time and phase pop in the order
/// they were pushed.
#[derive(Debug)]
pub struct EventQueue<E: Ord> {
    heap: BinaryHeap<Reverse<(EventKey, E)>>,
    seq: u64,
}

impl<E: Ord> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<E: Ord> EventQueue<E> {
    /// Schedules `e` at `time` in `phase`.
    pub fn push(&mut self, time: SimTime, phase: Phase, e: E) {
        let key = EventKey {
            time,
            phase,
            seq: self.seq,
        };
        self.seq += 1;
        self.heap.push(Reverse((key, e)));
    }
    /// The time of the earliest event.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|Reverse(x)| x.0.time)
    }
    /// Removes the earliest event.
    pub fn pop(&mut self) -> Option<(EventKey, E)> {
        self.heap.pop().map(|Reverse(x)| x)
    }
    /// Events pushed so far.
    pub fn pushed(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Dur;

    /// At one instant events pop by phase (completions, timers, arrivals, scheduling,
    /// end), whatever order they were pushed in; within a phase in push order; and
    /// an earlier event before any later one.
    #[test]
    fn events_pop_by_time_then_phase_then_push_order() {
        let t = SimTime::from_secs_f64(1.0);
        let mut q = EventQueue::default();
        q.push(t, Phase::End, "end");
        q.push(t, Phase::Schedule, "schedule a");
        q.push(t, Phase::Arrive, "arrive a");
        q.push(t, Phase::Timer, "timer");
        q.push(t, Phase::Complete, "complete a");
        q.push(t + Dur(1), Phase::Complete, "later");
        q.push(t, Phase::Arrive, "arrive b");
        q.push(t, Phase::Complete, "complete b");
        q.push(t, Phase::Schedule, "schedule b");
        q.push(SimTime::ZERO + Dur(999_999_999), Phase::End, "earlier");
        assert_eq!(q.pushed(), 10);
        assert_eq!(q.peek_time(), Some(SimTime::ZERO + Dur(999_999_999)));
        let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(
            order,
            [
                "earlier",
                "complete a",
                "complete b",
                "timer",
                "arrive a",
                "arrive b",
                "schedule a",
                "schedule b",
                "end",
                "later"
            ]
        );
    }
}
