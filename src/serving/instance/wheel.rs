//! The steps at which decoding sequences finish: a timing wheel over the step counter,
//! popped in exactly the order of a min-heap of `(step, admission, slot)` entries.
//!
//! Why: a sequence finishes at a step known when it joins the decode set (its
//! remaining output tokens from now), so the entries of the next few hundred steps
//! can sit in one bucket per step instead of a binary heap whose pop, one per
//! request, cost about 200 instructions and a mispredicted branch per level.
//!
//! How: entries whose step lies in the window `[lo, lo + SLOTS)` go into the bucket of
//! their step modulo [`SLOTS`] (one step per bucket within the window), with a bitmap
//! of the non-empty buckets; the others (far ahead, or before `lo`) wait in a heap
//! and move into the wheel as the window reaches them. Taking the entries due at a
//! step collects the heap's and the buckets' and sorts them by the full key, so the
//! order is the heap's, ties included.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One entry: (finish step, admission number, slot).
pub(super) type Entry = (u64, u64, u32);

/// Steps (buckets) in the wheel's window; a multiple of 64 (one bitmap word each).
const SLOTS: usize = 512;

/// Finish steps of the decode set (see the module documentation).
#[derive(Debug, Clone, Default)]
pub(super) struct StepWheel {
    /// Entries with a step in `[lo, lo + SLOTS)`, by step modulo [`SLOTS`]; allocated
    /// on first use.
    buckets: Vec<Vec<Entry>>,
    /// Bit `b % 64` of word `b / 64`: bucket `b` is not empty.
    occupied: [u64; SLOTS / 64],
    /// The other entries.
    far: BinaryHeap<Reverse<Entry>>,
    /// The least step an entry in the buckets may have.
    lo: u64,
}

impl StepWheel {
    /// Adds an entry.
    pub(super) fn push(&mut self, e: Entry) {
        if e.0 >= self.lo && e.0 - self.lo < SLOTS as u64 {
            self.put(e);
        } else {
            self.far.push(Reverse(e));
        }
    }

    /// Puts an entry whose step is in the window into its bucket.
    fn put(&mut self, e: Entry) {
        if self.buckets.is_empty() {
            self.buckets = vec![Vec::new(); SLOTS];
        }
        let b = (e.0 % SLOTS as u64) as usize;
        self.buckets[b].push(e);
        self.occupied[b / 64] |= 1 << (b % 64);
    }

    /// The least step of any entry (stale ones included), if any.
    pub(super) fn peek_step(&self) -> Option<u64> {
        let near = self.next_occupied(self.lo, self.lo + SLOTS as u64 - 1);
        let far = self.far.peek().map(|r| r.0 .0);
        match (near, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The least step in `[from, last]` whose bucket is not empty; `lo <= from` and
    /// `last < lo + SLOTS`, so each bucket stands for one step.
    fn next_occupied(&self, from: u64, last: u64) -> Option<u64> {
        let mut step = from;
        while step <= last {
            let b = (step % SLOTS as u64) as usize;
            let word = self.occupied[b / 64] >> (b % 64);
            if word != 0 {
                let s = step + u64::from(word.trailing_zeros());
                return (s <= last).then_some(s);
            }
            // On to the next word (SLOTS is a multiple of 64: words never straddle
            // the wrap of the bucket index).
            step += 64 - (b % 64) as u64;
        }
        None
    }

    /// Moves every entry with a step at or before `k` into `due` (cleared first),
    /// sorted by the whole entry (a heap's pop order), and moves the window to start
    /// after `k`.
    pub(super) fn take_due(&mut self, k: u64, due: &mut Vec<Entry>) {
        due.clear();
        while let Some(&Reverse(e)) = self.far.peek() {
            if e.0 > k {
                break;
            }
            self.far.pop();
            due.push(e);
        }
        if k < self.lo {
            // Nothing in the buckets is due yet.
            due.sort_unstable();
            return;
        }
        let last = k.min(self.lo + SLOTS as u64 - 1);
        let mut from = self.lo;
        while let Some(s) = self.next_occupied(from, last) {
            let b = (s % SLOTS as u64) as usize;
            // (A bucket holds one entry or two: a loop, not a call to memcpy.)
            let bucket = &mut self.buckets[b];
            for &e in bucket.iter() {
                due.push(e);
            }
            bucket.clear();
            self.occupied[b / 64] &= !(1 << (b % 64));
            from = s + 1;
        }
        // The buckets now hold steps after `k` only; the window starts there, and
        // takes in the far entries it reaches.
        self.lo = k + 1;
        while let Some(&Reverse(e)) = self.far.peek() {
            if e.0 - self.lo >= SLOTS as u64 {
                break;
            }
            self.far.pop();
            self.put(e);
        }
        if due.len() > 1 {
            due.sort_unstable();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: a binary heap's pops of the entries at or before `k`.
    fn heap_due(h: &mut BinaryHeap<Reverse<Entry>>, k: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        while let Some(&Reverse(e)) = h.peek() {
            if e.0 > k {
                break;
            }
            h.pop();
            out.push(e);
        }
        out
    }

    #[test]
    fn due_entries_come_in_heap_order_across_the_window() {
        let mut w = StepWheel::default();
        // Same step, admissions out of order; one far beyond the window; one before
        // the window's start once it has moved.
        w.push((3, 9, 1));
        w.push((3, 2, 7));
        w.push((5, 1, 0));
        w.push((2_000, 4, 4));
        let mut due = Vec::new();
        w.take_due(3, &mut due);
        assert_eq!(due, vec![(3, 2, 7), (3, 9, 1)]);
        w.push((3, 5, 5));
        assert_eq!(w.peek_step(), Some(3));
        w.take_due(4, &mut due);
        assert_eq!(due, vec![(3, 5, 5)]);
        assert_eq!(w.peek_step(), Some(5));
        w.take_due(1_999, &mut due);
        assert_eq!(due, vec![(5, 1, 0)]);
        assert_eq!(w.peek_step(), Some(2_000));
        w.take_due(2_000, &mut due);
        assert_eq!(due, vec![(2_000, 4, 4)]);
        assert_eq!(w.peek_step(), None);
    }

    proptest! {
        /// Any interleaving of pushes (steps from before the window to far past it)
        /// and takes (the counter moving by 1 or leaping) gives the heap's pops, and
        /// the least step is the heap's head.
        #[test]
        fn matches_a_binary_heap(ops in proptest::collection::vec(
            (0u8..4, 0u64..1_500, 0u64..50, 0u32..8), 1..300)) {
            let mut w = StepWheel::default();
            let mut h = BinaryHeap::new();
            let mut k = 0u64;
            let mut due = Vec::new();
            for (op, a, admit, slot) in ops {
                match op {
                    0 | 1 => {
                        // Mostly near the counter, sometimes behind it.
                        let step = (k + a).saturating_sub(if op == 0 { 0 } else { 20 });
                        w.push((step, admit, slot));
                        h.push(Reverse((step, admit, slot)));
                    }
                    2 => {
                        k += 1;
                        w.take_due(k, &mut due);
                        prop_assert_eq!(&due, &heap_due(&mut h, k));
                    }
                    _ => {
                        k += a;
                        w.take_due(k, &mut due);
                        prop_assert_eq!(&due, &heap_due(&mut h, k));
                    }
                }
                prop_assert_eq!(w.peek_step(), h.peek().map(|r| r.0 .0));
            }
        }
    }
}
