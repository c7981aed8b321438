//! The event queue of the event loop and its ordering: events pop by [`EventKey`]
//! `(time, phase, seq)`, so at one instant by [`Phase`], then in push order.
//!
//! The next open-loop arrival waits in a slot of its own beside the heap
//! ([`EventQueue::push_arrival`]): arrivals come in time order and one at a time, so
//! merging that slot with the heap's head gives the same order as pushing every
//! arrival into the heap (the slot's key takes its sequence number from the same
//! counter), without a heap push and pop per request.
//!
//! Most other events are pushed nearly in order too: a `Schedule` at the current
//! time, a `Deliver` a constant API latency after it, a single instance's step ends
//! one after the other. So completions, arrivals and scheduling events each have a
//! FIFO lane that takes a push whose key is at least the lane's last key (the lane
//! stays sorted); any other push goes to the heap. A pop takes the least of the
//! lanes' heads, the heap's head and the arrival slot: a merge of sorted sequences
//! of unique keys, which is exactly the order one heap holding every event would
//! pop them in, without a heap push and pop for most events. Keys are packed into
//! one `u128` (time, then phase, then sequence number) so that each comparison is
//! one integer comparison.

use crate::time::SimTime;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

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

impl Phase {
    /// The phase of a packed key's 3 phase bits.
    fn from_bits(b: u8) -> Phase {
        match b {
            0 => Phase::Complete,
            1 => Phase::Timer,
            2 => Phase::Arrive,
            3 => Phase::Schedule,
            _ => Phase::End,
        }
    }

    /// The FIFO lane events of this phase try first, if the phase has one.
    fn lane(self) -> Option<usize> {
        match self {
            Phase::Complete => Some(0),
            Phase::Arrive => Some(1),
            Phase::Schedule => Some(2),
            Phase::Timer | Phase::End => None,
        }
    }
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

/// Bits of a packed key below the phase: the sequence number's.
const SEQ_BITS: u32 = 61;

impl EventKey {
    /// The key as one integer that orders as the key does: time in the top 64
    /// bits, then the phase in 3 bits, then the sequence number in 61 bits.
    fn pack(self) -> u128 {
        debug_assert!(self.seq < 1 << SEQ_BITS);
        (u128::from(self.time.0) << 64)
            | (u128::from(self.phase as u8) << SEQ_BITS)
            | u128::from(self.seq)
    }

    /// The key [`EventKey::pack`] packed.
    fn unpack(k: u128) -> EventKey {
        EventKey {
            time: SimTime((k >> 64) as u64),
            phase: Phase::from_bits(((k >> SEQ_BITS) & 7) as u8),
            seq: (k as u64) & ((1 << SEQ_BITS) - 1),
        }
    }
}

/// An event in the heap, ordered by its packed key alone (keys are unique).
#[derive(Debug)]
struct Entry<E>(u128, E);

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.cmp(&o.0)
    }
}

/// Packed key of an empty source: after every real key (a real key's time is below
/// `SimTime::MAX` or its phase bits below 7).
const NONE: u128 = u128::MAX;

/// Number of FIFO lanes ([`Phase::lane`]).
const LANES: usize = 3;

/// The event queue: FIFO lanes, a binary heap and an arrival slot, popped in
/// [`EventKey`] order. Equal keys cannot occur (the sequence number is unique), so
/// events at the same time and phase pop in the order they were pushed.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    /// Sorted runs of pushes, one per phase that has one ([`Phase::lane`]).
    lanes: [VecDeque<(u128, E)>; LANES],
    /// The one pending arrival kept out of the heap ([`EventQueue::push_arrival`]).
    arrival: Option<(u128, E)>,
    seq: u64,
    /// The earliest event's packed key and where it is ([`NONE`] when empty), kept
    /// up to date by every push and pop: the event loop asks for the next event's
    /// time between pops, and the five sources are then not compared again.
    head: (u128, Source),
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            lanes: std::array::from_fn(|_| VecDeque::new()),
            arrival: None,
            seq: 0,
            head: (NONE, Source::Heap),
        }
    }
}

/// Where the earliest event is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Heap,
    Lane(usize),
    Arrival,
}

impl<E> EventQueue<E> {
    /// The next key, counting it.
    fn key(&mut self, time: SimTime, phase: Phase) -> u128 {
        let key = EventKey {
            time,
            phase,
            seq: self.seq,
        };
        self.seq += 1;
        key.pack()
    }

    /// Schedules `e` at `time` in `phase`.
    pub fn push(&mut self, time: SimTime, phase: Phase, e: E) {
        let key = self.key(time, phase);
        if let Some(l) = phase.lane() {
            let lane = &mut self.lanes[l];
            if lane.back().is_none_or(|b| b.0 < key) {
                lane.push_back((key, e));
                self.note(key, Source::Lane(l));
                return;
            }
        }
        self.heap.push(Reverse(Entry(key, e)));
        self.note(key, Source::Heap);
    }

    /// Makes a pushed key the head if it comes first.
    fn note(&mut self, key: u128, src: Source) {
        if key < self.head.0 {
            self.head = (key, src);
        }
    }

    /// Schedules `e` at `time` in [`Phase::Arrive`] in the arrival slot beside the
    /// heap: it pops exactly where [`EventQueue::push`] would have put it. At most one
    /// event is held there at a time (the caller pushes the next arrival once the
    /// previous one popped); a second one while the slot is full goes to the heap.
    pub fn push_arrival(&mut self, time: SimTime, e: E) {
        if self.arrival.is_some() {
            return self.push(time, Phase::Arrive, e);
        }
        let key = self.key(time, Phase::Arrive);
        self.arrival = Some((key, e));
        self.note(key, Source::Arrival);
    }

    /// The earliest event's packed key and where it is ([`NONE`] when empty).
    fn first(&self) -> (u128, Source) {
        let mut best = (
            self.heap.peek().map_or(NONE, |Reverse(x)| x.0),
            Source::Heap,
        );
        for (l, lane) in self.lanes.iter().enumerate() {
            if let Some(&(k, _)) = lane.front() {
                if k < best.0 {
                    best = (k, Source::Lane(l));
                }
            }
        }
        if let Some((k, _)) = self.arrival {
            if k < best.0 {
                best = (k, Source::Arrival);
            }
        }
        best
    }

    /// The time of the earliest event.
    pub fn peek_time(&self) -> Option<SimTime> {
        debug_assert_eq!(self.head, self.first());
        let (k, _) = self.head;
        (k != NONE).then(|| EventKey::unpack(k).time)
    }

    /// Removes the earliest event.
    pub fn pop(&mut self) -> Option<(EventKey, E)> {
        debug_assert_eq!(self.head, self.first());
        let (k, src) = self.head;
        if k == NONE {
            return None;
        }
        let e = match src {
            Source::Heap => self.heap.pop().map(|Reverse(x)| x.1),
            Source::Lane(l) => self.lanes[l].pop_front().map(|x| x.1),
            Source::Arrival => self.arrival.take().map(|x| x.1),
        }?;
        self.head = self.first();
        Some((EventKey::unpack(k), e))
    }

    /// Removes the earliest event if it comes before `t` and `which` accepts it.
    pub fn pop_before(&mut self, t: SimTime, which: impl Fn(&E) -> bool) -> Option<(EventKey, E)> {
        let (k, src) = self.head;
        if k == NONE || EventKey::unpack(k).time >= t {
            return None;
        }
        let e = match src {
            Source::Heap => self.heap.peek().map(|Reverse(x)| &x.1),
            Source::Lane(l) => self.lanes[l].front().map(|x| &x.1),
            Source::Arrival => self.arrival.as_ref().map(|x| &x.1),
        }?;
        if !which(e) {
            return None;
        }
        self.pop()
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
    /// Packing keeps the key's order and unpacks to the same key.
    #[test]
    fn packed_keys_order_as_keys() {
        let phases = [
            Phase::Complete,
            Phase::Timer,
            Phase::Arrive,
            Phase::Schedule,
            Phase::End,
        ];
        let mut keys = Vec::new();
        for t in [0, 1, u64::MAX - 1, u64::MAX] {
            for p in phases {
                for seq in [0, 1, (1 << SEQ_BITS) - 1] {
                    keys.push(EventKey {
                        time: SimTime(t),
                        phase: p,
                        seq,
                    });
                }
            }
        }
        for a in &keys {
            assert_eq!(EventKey::unpack(a.pack()), *a);
            assert!(a.pack() < NONE);
            for b in &keys {
                assert_eq!(a.cmp(b), a.pack().cmp(&b.pack()), "{a:?} {b:?}");
            }
        }
    }

    /// One step of a random script: push (time, phase index), push an arrival, or pop.
    #[derive(Debug, Clone)]
    enum Op {
        Push(u64, u8),
        Arrival(u64),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..12, 0u8..5).prop_map(|(t, p)| Op::Push(t, p)),
            1 => (0u64..12).prop_map(Op::Arrival),
            3 => Just(Op::Pop),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Lanes, heap and arrival slot pop in exactly the order of one plain heap
        /// of (key, event), for random scripts of pushes (in and out of order, with
        /// ties at one instant), arrival pushes and pops, peeks included; times may
        /// move relative to the current one as the engine's never do, and the order
        /// holds all the same.
        #[test]
        fn lanes_pop_like_one_heap(script in proptest::collection::vec(op(), 0..200)) {
            let phases = [Phase::Complete, Phase::Timer, Phase::Arrive, Phase::Schedule, Phase::End];
            let mut q = EventQueue::default();
            let mut reference: BinaryHeap<Reverse<(EventKey, u32)>> = BinaryHeap::new();
            let mut seq = 0u64;
            let mut now = 0u64;
            let mut push_ref = |reference: &mut BinaryHeap<_>, t: u64, phase: Phase, e: u32| {
                reference.push(Reverse((EventKey { time: SimTime(t), phase, seq }, e)));
                seq += 1;
            };
            let mut pushes = 0u64;
            for (label, o) in script.into_iter().chain(std::iter::repeat_n(Op::Pop, 200)).enumerate() {
                let label = label as u32;
                match o {
                    Op::Push(dt, p) => {
                        let ph = phases[p as usize];
                        q.push(SimTime(now + dt), ph, label);
                        push_ref(&mut reference, now + dt, ph, label);
                        pushes += 1;
                    }
                    Op::Arrival(dt) => {
                        q.push_arrival(SimTime(now + dt), label);
                        push_ref(&mut reference, now + dt, Phase::Arrive, label);
                        pushes += 1;
                    }
                    Op::Pop => {
                        let want = reference.peek().map(|Reverse(x)| x.0.time);
                        prop_assert_eq!(q.peek_time(), want);
                        let got = q.pop();
                        let want = reference.pop().map(|Reverse(x)| x);
                        prop_assert_eq!(got, want);
                        if let Some((k, _)) = got {
                            // Sometimes step back, so pushes land behind lanes' tails.
                            now = if label % 7 == 0 { k.time.0 / 2 } else { k.time.0 };
                        }
                    }
                }
                prop_assert_eq!(q.pushed(), pushes);
                // The kept head is the sources' earliest after every push and pop.
                prop_assert_eq!(q.head, q.first());
            }
        }
    }
}
