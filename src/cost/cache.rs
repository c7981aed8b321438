//! Lazily filled tables of exact results by integer count: the parts of a step's
//! price that depend only on the step's token count (the dense GEMM groups and the
//! streaming kernels) or only on its emitting count (the LM head and the sampler),
//! for the common case of one micro-batch and one data-parallel rank, where those
//! counts are the step's own integers.
//!
//! Why: pricing a step interpolated the same GEMM tables (or evaluated the same
//! roofline curves, two `powf` each) and the same seven streaming kernels for every
//! step, about 1 k instructions, although a run meets only a few thousand distinct
//! token counts. A cached entry holds the bits the computation returned for that
//! count, so a hit is identical to the bit to computing it again; nothing is
//! interpolated or reassociated.
//!
//! How: a table of pages of slots, each page allocated on first touch, each slot
//! filled on first use. The table is shared by every clone of a cost model (an
//! `Arc`), across threads: slots are atomics, written with the same bits by whichever
//! thread computes them first and published by a release store of their `ready`
//! word, so a `&CostModel` stays `Sync` and a hit costs plain loads. Counts beyond
//! the table's capacity are computed every time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Slots per page.
const PAGE: usize = 128;

/// One count's words and whether they are filled.
struct Slot<const W: usize> {
    /// Non-zero once `words` hold the count's result.
    ready: AtomicU64,
    words: [AtomicU64; W],
}

impl<const W: usize> Slot<W> {
    fn empty() -> Slot<W> {
        Slot {
            ready: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A lazily filled table of `W` words per count, for counts `0..capacity`.
pub(super) struct CountCache<const W: usize> {
    pages: Box<[OnceLock<Box<[Slot<W>]>>]>,
}

impl<const W: usize> CountCache<W> {
    /// An empty table for counts below `capacity` (rounded up to whole pages); the
    /// pages themselves are allocated on first touch.
    pub(super) fn new(capacity: usize) -> CountCache<W> {
        CountCache {
            pages: (0..capacity.div_ceil(PAGE))
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// Pages allocated so far.
    #[cfg(test)]
    pub(super) fn filled_pages(&self) -> usize {
        self.pages.iter().filter(|p| p.get().is_some()).count()
    }

    /// Counts the table can hold.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.pages.len() * PAGE
    }

    /// The words of count `n`: the stored ones if `n` was seen before, else `f()`,
    /// stored for next time when `n` is within the table. `f` must be a pure function
    /// of `n` (every caller passes the same computation for the same count).
    #[inline]
    pub(super) fn get(&self, n: u64, f: impl FnOnce() -> [u64; W]) -> [u64; W] {
        let p = (n / PAGE as u64) as usize;
        let Some(page) = self.pages.get(p) else {
            return f();
        };
        let page = page.get_or_init(|| (0..PAGE).map(|_| Slot::empty()).collect());
        let slot = &page[(n % PAGE as u64) as usize];
        if slot.ready.load(Ordering::Acquire) != 0 {
            return std::array::from_fn(|j| slot.words[j].load(Ordering::Relaxed));
        }
        let w = f();
        for (s, v) in slot.words.iter().zip(w) {
            s.store(v, Ordering::Relaxed);
        }
        slot.ready.store(1, Ordering::Release);
        w
    }
}

impl<const W: usize> std::fmt::Debug for CountCache<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filled = self.pages.iter().filter(|p| p.get().is_some()).count();
        write!(f, "CountCache({} of {} pages)", filled, self.pages.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn stores_on_first_use_and_returns_the_stored_words() {
        let c: CountCache<2> = CountCache::new(200);
        assert_eq!(c.capacity(), 256);
        let calls = Cell::new(0);
        let f = |n: u64| {
            calls.set(calls.get() + 1);
            [n, n * 3]
        };
        assert_eq!(c.get(5, || f(5)), [5, 15]);
        assert_eq!(c.get(5, || unreachable!()), [5, 15]);
        // Count 0, the last slot of a page and the first of the next are distinct.
        assert_eq!(c.get(0, || f(0)), [0, 0]);
        assert_eq!(c.get(127, || f(127)), [127, 381]);
        assert_eq!(c.get(128, || f(128)), [128, 384]);
        assert_eq!(c.get(127, || unreachable!()), [127, 381]);
        assert_eq!(c.get(128, || unreachable!()), [128, 384]);
        assert_eq!(calls.get(), 4);
        // Beyond the capacity: computed every time.
        assert_eq!(c.get(256, || f(256)), [256, 768]);
        assert_eq!(c.get(256, || f(256)), [256, 768]);
        assert_eq!(calls.get(), 6);
    }

    #[test]
    fn threads_share_one_table() {
        let c: CountCache<1> = CountCache::new(1000);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = &c;
                s.spawn(move || {
                    for n in 0..1000u64 {
                        let m = (n * 7 + t * 13) % 1000;
                        assert_eq!(c.get(m, || [m * m]), [m * m]);
                    }
                });
            }
        });
        for n in 0..1000u64 {
            assert_eq!(c.get(n, || unreachable!()), [n * n]);
        }
    }
}
