//! The event queue of the event loop and its ordering: events pop by [`EventKey`]
//! `(time, phase, seq)`, so at one instant by [`Phase`], then in push order.
//!
//! The next open-loop arrival waits in a slot of its own beside the heap
//! ([`EventQueue::push_arrival`]): arrivals come in time order and one at a time, so
//! merging that slot with the heap's head gives the same order as pushing every
//! arrival into the heap (the slot's key takes its sequence number from the same
//! counter), without a heap push and pop per request.

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
    /// The one pending arrival kept out of the heap ([`EventQueue::push_arrival`]).
    arrival: Option<(EventKey, E)>,
    seq: u64,
}

impl<E: Ord> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            arrival: None,
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
    /// Schedules `e` at `time` in [`Phase::Arrive`] in the arrival slot beside the
    /// heap: it pops exactly where [`EventQueue::push`] would have put it. At most one
    /// event is held there at a time (the caller pushes the next arrival once the
    /// previous one popped); a second one while the slot is full goes to the heap.
    pub fn push_arrival(&mut self, time: SimTime, e: E) {
        if self.arrival.is_some() {
            return self.push(time, Phase::Arrive, e);
        }
        let key = EventKey {
            time,
            phase: Phase::Arrive,
            seq: self.seq,
        };
        self.seq += 1;
        self.arrival = Some((key, e));
    }
    /// Whether the arrival slot's event comes before the heap's head.
    fn arrival_first(&self) -> bool {
        match (&self.arrival, self.heap.peek()) {
            (Some((k, _)), Some(Reverse((h, _)))) => k < h,
            (a, _) => a.is_some(),
        }
    }
    /// The time of the earliest event.
    pub fn peek_time(&self) -> Option<SimTime> {
        let h = self.heap.peek().map(|Reverse(x)| x.0.time);
        match (&self.arrival, h) {
            (Some((k, _)), Some(h)) => Some(k.time.min(h)),
            (Some((k, _)), None) => Some(k.time),
            (None, h) => h,
        }
    }
    /// Removes the earliest event.
    pub fn pop(&mut self) -> Option<(EventKey, E)> {
        if self.arrival_first() {
            return self.arrival.take();
        }
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

    /// Arrivals held in the slot pop exactly where the heap would have put them:
    /// the same sequence of pushes through `push` and through `push_arrival` (for
    /// the arrivals) pops in the same order, ties at one instant included.
    #[test]
    fn the_arrival_slot_pops_like_the_heap() {
        let ns = |n: u64| SimTime::ZERO + Dur(n);
        // (time, phase, label); arrivals are pushed one at a time, the next after
        // the previous popped, as the engine does.
        let mut via_heap = EventQueue::default();
        let mut via_slot = EventQueue::default();
        let script: [(u64, Phase, u32); 6] = [
            (5, Phase::Complete, 1),
            (5, Phase::Schedule, 2),
            (3, Phase::Arrive, 3),
            (5, Phase::Timer, 4),
            (7, Phase::End, 5),
            (5, Phase::Arrive, 6),
        ];
        for (t, ph, l) in script {
            via_heap.push(ns(t), ph, l);
            via_slot.push(ns(t), ph, l);
        }
        let mut next_arrival = [5u64, 5, 6, 9].into_iter();
        let t0 = next_arrival.next().unwrap();
        via_heap.push(ns(t0), Phase::Arrive, 100);
        via_slot.push_arrival(ns(t0), 100);
        let mut a = Vec::new();
        let mut label = 101;
        loop {
            assert_eq!(via_heap.peek_time(), via_slot.peek_time());
            let (x, y) = (via_heap.pop(), via_slot.pop());
            assert_eq!(x, y);
            let Some((_, e)) = x else { break };
            a.push(e);
            if e >= 100 {
                if let Some(t) = next_arrival.next() {
                    via_heap.push(ns(t), Phase::Arrive, label);
                    via_slot.push_arrival(ns(t), label);
                    label += 1;
                }
            }
        }
        assert_eq!(a, [3, 1, 4, 6, 100, 101, 2, 102, 5, 103]);
    }
}
