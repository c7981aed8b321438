//! The paged KV cache of one instance, counted in layer-blocks.
//!
//! A *layer-block* holds `block_size` tokens of K and V for one layer. A sequence that
//! has `c` tokens cached holds `ceil(c / b)` blocks in each full-attention layer and
//! `ceil(min(c, w) / b)` in each sliding-window layer (a window layer drops what falls
//! out of its window). Counting per layer keeps Gemma-style mixed models exact while
//! a uniform model behaves exactly as vLLM's block pool of `num_blocks` blocks.

use crate::specs::ModelSpec;

/// Block geometry of one model and block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvGeometry {
    /// Tokens per block.
    pub block_size: u64,
    /// Full-attention layers.
    pub full_layers: u64,
    /// Sliding-window layers.
    pub window_layers: u64,
    /// Window length in tokens (`u64::MAX / 4` when there is none).
    pub window: u64,
}

impl KvGeometry {
    /// Geometry of `model` with `block_size`-token blocks.
    pub fn new(model: &ModelSpec, block_size: u64) -> Self {
        KvGeometry {
            block_size,
            full_layers: model.full_layers() as u64,
            window_layers: model.window_layers() as u64,
            window: if model.sliding_window == 0 {
                u64::MAX / 4
            } else {
                model.sliding_window
            },
        }
    }

    /// Layers in all.
    pub fn layers(&self) -> u64 {
        self.full_layers + self.window_layers
    }

    /// Layer-blocks held by a sequence with `c` tokens cached.
    pub fn blocks_for(&self, c: u64) -> u64 {
        self.ceil_blocks(c) * self.full_layers
            + self.ceil_blocks(c.min(self.window)) * self.window_layers
    }

    /// Whole blocks in `c` tokens: `c / block_size`. A shift when the block size is a
    /// power of two (it always is in vLLM): an integer division takes tens of cycles,
    /// and admitting or finishing a request did several.
    #[inline]
    pub fn whole_blocks(&self, c: u64) -> u64 {
        let b = self.block_size;
        if b.is_power_of_two() {
            c >> b.trailing_zeros()
        } else {
            c / b
        }
    }

    /// Blocks that hold `c` tokens: `c.div_ceil(block_size)` (see
    /// [`KvGeometry::whole_blocks`]).
    #[inline]
    pub fn ceil_blocks(&self, c: u64) -> u64 {
        let b = self.block_size;
        if b.is_power_of_two() {
            (c >> b.trailing_zeros()) + u64::from(c & (b - 1) != 0)
        } else {
            c.div_ceil(b)
        }
    }

    /// `x mod block_size`, in `0..block_size` for any sign of `x` (`rem_euclid`).
    #[inline]
    pub fn block_residue(&self, x: i64) -> u64 {
        let b = self.block_size;
        if b.is_power_of_two() {
            x as u64 & (b - 1)
        } else {
            x.rem_euclid(b as i64) as u64
        }
    }

    /// Layer-blocks a sequence takes on when it grows from `c` to `c + 1` tokens and
    /// `c` is a multiple of the block size, below the window or past it.
    pub fn growth(&self, below_window: bool) -> u64 {
        if below_window {
            self.layers()
        } else {
            self.full_layers
        }
    }
}

/// The pool of layer-blocks.
///
/// Free blocks form an LRU queue, as vLLM's free-block queue: released blocks join
/// its tail, allocations take from its head. Two counters place every block in that
/// queue without storing it: a block released when `appended` was `a` is evicted
/// (reused) once `popped` exceeds `a`. The prefix cache uses them to tell whether
/// blocks freed earlier still hold their tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPool {
    /// Capacity in layer-blocks.
    pub capacity: u64,
    /// In use.
    pub used: u64,
    /// Highest `used` seen.
    pub peak: u64,
    /// Layer-blocks ever put at the tail of the free queue (the initial free blocks
    /// count as positions 0..capacity).
    pub appended: u64,
    /// Layer-blocks ever taken from the head of the free queue.
    pub popped: u64,
}

impl KvPool {
    /// A pool of `blocks` whole blocks (each spanning every layer).
    pub fn new(blocks: u64, geo: &KvGeometry) -> Self {
        let capacity = blocks * geo.layers();
        KvPool {
            capacity,
            used: 0,
            peak: 0,
            appended: capacity,
            popped: 0,
        }
    }

    /// Free layer-blocks.
    pub fn free(&self) -> u64 {
        self.capacity - self.used
    }

    /// Takes `n` layer-blocks if they are free.
    pub fn try_alloc(&mut self, n: u64) -> bool {
        if n <= self.free() {
            self.used += n;
            self.popped += n;
            self.peak = self.peak.max(self.used);
            true
        } else {
            false
        }
    }

    /// Takes back `n` free layer-blocks that still hold cached tokens (a prefix-cache
    /// hit): they leave the free queue without evicting anything. The caller checks
    /// that they are free.
    pub fn reacquire(&mut self, n: u64) {
        debug_assert!(n <= self.free());
        self.used += n;
        self.peak = self.peak.max(self.used);
    }

    /// How many of `n` layer-blocks released when `appended` was `at` have not been
    /// evicted yet.
    pub fn surviving(&self, at: u64, n: u64) -> u64 {
        (at + n).saturating_sub(self.popped.max(at)).min(n)
    }

    /// Returns `n` layer-blocks.
    pub fn release(&mut self, n: u64) {
        debug_assert!(
            n <= self.used,
            "KV release of {n} with {} in use",
            self.used
        );
        self.used -= n.min(self.used);
        self.appended += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_layers_stop_growing_at_the_window() {
        let g = KvGeometry {
            block_size: 16,
            full_layers: 1,
            window_layers: 5,
            window: 32,
        };
        assert_eq!(g.blocks_for(1), 6);
        assert_eq!(g.blocks_for(16), 6);
        assert_eq!(g.blocks_for(17), 12);
        assert_eq!(g.blocks_for(32), 12);
        assert_eq!(g.blocks_for(33), 13);
        assert_eq!(g.blocks_for(100), 7 + 10);
        assert_eq!(g.growth(true), 6);
        assert_eq!(g.growth(false), 1);
    }

    /// The shift and mask forms are the divisions, for power-of-two block sizes and
    /// others, at zero, around multiples and at the extremes, negative residues too.
    #[test]
    fn block_arithmetic_is_division() {
        for b in [1u64, 2, 3, 16, 24, 32, 100, 256, 1 << 20] {
            let g = KvGeometry {
                block_size: b,
                full_layers: 1,
                window_layers: 0,
                window: u64::MAX / 4,
            };
            for base in [0u64, 1, b - 1, b, b + 1, 7 * b, 7 * b + 3, u64::MAX / 2] {
                for c in [base, base.saturating_sub(1), base + 1] {
                    assert_eq!(g.whole_blocks(c), c / b, "{c} / {b}");
                    assert_eq!(g.ceil_blocks(c), c.div_ceil(b), "{c} / {b}");
                    for x in [c as i64, -(c as i64)] {
                        assert_eq!(
                            g.block_residue(x),
                            x.rem_euclid(b as i64) as u64,
                            "{x} % {b}"
                        );
                    }
                }
            }
            assert_eq!(
                g.block_residue(i64::MIN),
                i64::MIN.rem_euclid(b as i64) as u64
            );
        }
    }
}
