//! The decode set, tracked in aggregate: every decoding sequence advances one token per
//! step, so its context is `base + k` where `k` is the instance's step counter. The
//! instance keeps the sums it needs to price a step (Σ contexts, split at the sliding
//! window), counts of sequences by `context mod block_size` (who needs a new KV block
//! this step), the steps at which sequences finish (a timing wheel, `wheel.rs`) and a
//! heap of those at which they cross the window.

use super::{Instance, State};
use std::cmp::Reverse;

impl Instance {
    pub(super) fn residue(&self, base: i64) -> usize {
        self.geo.block_residue(-base) as usize
    }

    /// Puts `slot` (with `computed` tokens cached, `generated` emitted) into the decode
    /// set at the current counter.
    pub(super) fn dec_insert(&mut self, slot: u32) {
        let k = self.k;
        let s = &mut self.seqs[slot as usize];
        let base = s.computed as i64 - k as i64;
        s.base = base;
        s.k_join = k;
        s.gen_join = s.generated;
        s.state = State::Decoding;
        s.below_window = s.computed < self.geo.window;
        let below = s.below_window;
        let admit = s.admit;
        let k_fin = k + (s.req.output_tokens - s.generated) as u64;
        let r = self.residue(base);
        let d = &mut self.dec;
        d.n += 1;
        d.sum_base += base;
        if below {
            d.n_below += 1;
            d.sum_base_below += base;
            d.cnt_below[r] += 1;
            if self.geo.window_layers > 0 {
                // Only a model with a window has a crossing to wait for.
                let k_cross = (self.geo.window as i64 - base) as u64;
                d.cross.push(Reverse((k_cross, admit, slot)));
            }
        } else {
            d.cnt_above[r] += 1;
        }
        d.finish.push((k_fin, admit, slot));
        self.lender_insert(slot);
        self.tenant_decoding(slot, 1);
    }

    /// Takes `slot` out of the decode set, writing its current state back.
    pub(super) fn dec_remove(&mut self, slot: u32) {
        self.tenant_decoding(slot, -1);
        let k = self.k;
        let r = self.residue(self.seqs[slot as usize].base);
        let shared = self.shared_lb(slot);
        let reserve = self.policy.reserves_whole_batch();
        if let Some(g) = self.seqs[slot as usize].req.prefix {
            if let Some(set) = self.lenders.get_mut(g as usize) {
                let s = &self.seqs[slot as usize];
                set.remove(&(s.base, s.rank, slot));
            }
        }
        let s = &mut self.seqs[slot as usize];
        let ctx = (s.base + k as i64) as u64;
        s.computed = ctx;
        s.generated = s.gen_join + (k - s.k_join) as u32;
        if !reserve {
            // Continuous batching grows blocks on demand; static batches reserved all.
            s.held = self.geo.blocks_for(ctx) - shared;
        }
        let d = &mut self.dec;
        d.n -= 1;
        d.sum_base -= s.base;
        if s.state == State::Padded {
            d.padded -= 1;
        }
        if s.below_window {
            d.n_below -= 1;
            d.sum_base_below -= s.base;
            d.cnt_below[r] -= 1;
        } else {
            d.cnt_above[r] -= 1;
        }
    }

    /// Moves sequences whose context reached the window at counter `k` to the
    /// past-the-window class.
    pub(super) fn process_window_crossings(&mut self) {
        while let Some(&Reverse((kc, admit, slot))) = self.dec.cross.peek() {
            if kc > self.k {
                break;
            }
            self.dec.cross.pop();
            let s = &self.seqs[slot as usize];
            if s.admit != admit
                || !matches!(s.state, State::Decoding | State::Padded)
                || !s.below_window
            {
                continue;
            }
            let base = s.base;
            let r = self.residue(base);
            self.seqs[slot as usize].below_window = false;
            let d = &mut self.dec;
            d.n_below -= 1;
            d.sum_base_below -= base;
            d.cnt_below[r] -= 1;
            d.cnt_above[r] += 1;
        }
    }

    /// Sets the decode part of the step shape for a step that ends at counter `k1`.
    pub(super) fn set_decode_shape(&mut self, k1: u64) {
        self.shape.decodes = self.dec.n;
        self.shape.decode_ctx_full = (self.dec.sum_base + (self.dec.n * k1) as i64) as u64;
        let n_above = self.dec.n - self.dec.n_below;
        self.shape.decode_ctx_window = if self.geo.window_layers == 0 {
            0
        } else {
            (self.dec.sum_base_below + (self.dec.n_below * k1) as i64) as u64
                + n_above * self.geo.window
        };
    }
}
