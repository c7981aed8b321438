//! The prefix cache: prompts' shared blocks (a group per prompt of the workload's pool,
//! per shared system prompt, or per multi-turn session), blocks a preempted request
//! left cached, a finished session turn's context kept for the next turn, and loans
//! of blocks between siblings with identical outputs (a resumed request finds its
//! context in a sibling's blocks).
//!
//! The rule for a group's blocks: a request shares the full blocks of its first
//! `min(shared_tokens, input - 1)` prompt tokens (its last prompt token is always
//! computed, for the logits); it hits a group only if the group's blocks are all
//! cached (held by a running request, or released and none evicted, LRU) and no more
//! than its own shared blocks. A session turn that finishes leaves the full blocks of
//! its KV (`input + output - 1` tokens: the last token has none) as its session's
//! group, released after the rest of its blocks so they are evicted last.

use super::{Instance, PrefixGroup, State, NO_SLOT};
use crate::workload::Request;
use std::collections::BTreeSet;

impl Instance {
    /// Full KV blocks of prompt `prefix` (of the workload's prompt pool) that a new
    /// request with that prompt would find in this instance's prefix cache: held by a
    /// running request, or released and not yet evicted. 0 without the prefix cache.
    /// A load signal for prefix-aware routers.
    pub fn cached_prefix_blocks(&self, prefix: u32) -> u64 {
        if !self.pc {
            return 0;
        }
        let Some(grp) = self.groups.get(prefix as usize) else {
            return 0;
        };
        if grp.held {
            return grp.blocks;
        }
        match grp.cached_at {
            Some(at) => {
                let lb = grp.blocks * self.geo.layers();
                if self.kv.surviving(at, lb) == lb {
                    grp.blocks
                } else {
                    0
                }
            }
            None => 0,
        }
    }

    /// Registers a decoding sequence as a possible lender of its prompt's context.
    pub(super) fn lender_insert(&mut self, slot: u32) {
        let s = &self.seqs[slot as usize];
        // Only requests sharing their whole prompt can share their outputs.
        if !self.identical_outputs
            || !s.attached
            || s.lender != NO_SLOT
            || s.req.prefix_tokens.is_some()
        {
            return;
        }
        let (g, base, rank) = (s.req.prefix.expect("attached") as usize, s.base, s.rank);
        if self.lenders.len() <= g {
            self.lenders.resize(g + 1, BTreeSet::new());
        }
        self.lenders[g].insert((base, rank, slot));
    }

    /// Layer-blocks of the shared prompt prefix that `slot` references (and so does
    /// not count in its own `held`).
    pub(super) fn shared_lb(&self, slot: u32) -> u64 {
        let s = &self.seqs[slot as usize];
        s.borrowed
            + match (s.attached, s.req.prefix) {
                (true, Some(g)) => self.groups[g as usize].blocks * self.geo.layers(),
                _ => 0,
            }
    }

    /// With identical outputs, a resumed request (`slot`, starting from scratch with
    /// `group` prompt blocks found) finds the rest of its context in the blocks of
    /// the sibling with the longest context: (that sibling, whole blocks after the
    /// prompt's to borrow), at most up to its last token, which is always computed.
    pub(super) fn sibling_hit(&self, slot: u32, group: u64) -> Option<(u32, u64)> {
        let s = &self.seqs[slot as usize];
        if !self.identical_outputs
            || group == 0
            || s.generated == 0
            || s.req.prefix_tokens.is_some()
        {
            return None;
        }
        let &(base, _, lender) = self.lenders.get(s.req.prefix? as usize)?.last()?;
        let full = self.geo.whole_blocks((base + self.k as i64) as u64);
        let blocks = full
            .min(self.geo.whole_blocks(s.target - 1))
            .saturating_sub(group);
        (blocks > 0).then_some((lender, blocks))
    }

    /// Ends `slot`'s borrowing and lending before it releases its blocks; returns
    /// the layer-blocks of its own that others still reference (they pass to the
    /// borrower that references the most, which lends them on to the others).
    pub(super) fn settle_loans(&mut self, slot: u32) -> u64 {
        let lender = self.seqs[slot as usize].lender;
        if lender != NO_SLOT {
            if let Some(v) = self.lent_to.get_mut(&lender) {
                v.retain(|&b| b != slot);
                if v.is_empty() {
                    self.lent_to.remove(&lender);
                }
            }
            let s = &mut self.seqs[slot as usize];
            s.lender = NO_SLOT;
            s.borrowed = 0;
        }
        let Some(mut borrowers) = self.lent_to.remove(&slot) else {
            return 0;
        };
        // The new owner: most blocks borrowed, then lowest rank.
        let heir = *borrowers
            .iter()
            .max_by_key(|&&b| {
                let s = &self.seqs[b as usize];
                (s.borrowed, std::cmp::Reverse(s.rank))
            })
            .expect("a lender has borrowers");
        borrowers.retain(|&b| b != heir);
        let h = &mut self.seqs[heir as usize];
        let kept = h.borrowed;
        h.borrowed = 0;
        h.lender = NO_SLOT;
        if matches!(h.state, State::Decoding | State::Padded) {
            // A decoding sequence's holding is derived from its context.
            self.lender_insert(heir);
        } else {
            h.held += kept;
        }
        for &b in &borrowers {
            self.seqs[b as usize].lender = heir;
        }
        if !borrowers.is_empty() {
            self.lent_to.insert(heir, borrowers);
        }
        kept
    }

    pub(super) fn group(&mut self, g: u32) -> &mut PrefixGroup {
        let g = g as usize;
        if self.groups.len() <= g {
            self.groups.resize(g + 1, PrefixGroup::default());
        }
        &mut self.groups[g]
    }

    /// Drops `slot`'s reference to its prompt's shared blocks; the last user leaves
    /// them in the free queue, still cached.
    pub(super) fn detach(&mut self, slot: u32) {
        let s = &mut self.seqs[slot as usize];
        if !s.attached {
            return;
        }
        s.attached = false;
        let g = s.req.prefix.expect("attached implies a prompt");
        let layers = self.geo.layers();
        let at = self.kv.appended;
        let grp = &mut self.groups[g as usize];
        grp.refs -= 1;
        if grp.refs == 0 {
            grp.held = false;
            grp.cached_at = Some(at);
            let lb = grp.blocks * layers;
            self.kv.release(lb);
        }
    }

    /// Whole blocks a request being admitted finds in the prefix cache: (blocks of
    /// its prompt's shared prefix, whether they must be taken back from the free
    /// queue, blocks of its own left when it was preempted).
    pub(super) fn cache_hit(&self, slot: u32) -> (u64, bool, u64) {
        let s = &self.seqs[slot as usize];
        let layers = self.geo.layers();
        let (mut group, mut from_free) = (0, false);
        if let Some(g) = s.req.prefix {
            if let Some(grp) = self
                .groups
                .get(g as usize)
                .filter(|grp| grp.blocks <= self.prefix_blocks(&s.req))
            {
                if grp.blocks > 0 && grp.held {
                    group = grp.blocks;
                } else if let Some(at) = grp.cached_at {
                    let lb = grp.blocks * layers;
                    if grp.blocks > 0 && self.kv.surviving(at, lb) == lb {
                        group = grp.blocks;
                        from_free = true;
                    }
                }
            }
        }
        let own = match s.cached_own {
            Some(c) if c.after_group == 0 || c.after_group == group => c
                .full_blocks
                .min(self.kv.surviving(c.at, c.layer_blocks) / layers),
            _ => 0,
        };
        // At least the last token is always computed (it yields the logits).
        let cap = self.geo.whole_blocks(s.target - 1);
        let own = own.min(cap.saturating_sub(group));
        (group.min(cap), from_free, own)
    }

    /// With the prefix cache, the first request of a prompt to finish its prefill
    /// hands the prompt's full blocks to the prompt's shared group, for later
    /// requests with the same prompt to reuse.
    pub(super) fn share_prompt(&mut self, slot: u32) {
        let s = &self.seqs[slot as usize];
        let Some(g) = s.req.prefix else { return };
        if !self.pc || s.attached {
            return;
        }
        let blocks = self.prefix_blocks(&s.req);
        if blocks == 0 || self.groups.get(g as usize).is_some_and(|x| x.held) {
            return;
        }
        let lb = blocks * self.geo.layers();
        *self.group(g) = PrefixGroup {
            blocks,
            refs: 1,
            held: true,
            cached_at: None,
        };
        let s = &mut self.seqs[slot as usize];
        s.attached = true;
        s.held -= lb;
    }

    /// Full blocks of `req`'s prompt it shares with its prefix group: those of its
    /// first `min(shared_tokens, input - 1)` tokens.
    pub(super) fn prefix_blocks(&self, req: &Request) -> u64 {
        let t = (req.shared_tokens() as u64).min((req.input_tokens as u64).saturating_sub(1));
        self.geo.whole_blocks(t)
    }

    /// With the prefix cache, a finished session turn (`keep_context`) frees its
    /// blocks so that the full blocks of its KV become its session's group, cached
    /// for the next turn: the rest first, then those (evicted last, as vLLM frees a
    /// request's blocks in reverse order). Returns false, changing nothing, when that
    /// does not apply (then the blocks are freed as usual): no prefix cache, not a
    /// kept turn, or the group still in use by another request.
    pub(super) fn keep_context(&mut self, slot: u32) -> bool {
        let s = &self.seqs[slot as usize];
        let Some(g) = s.req.prefix else { return false };
        if !self.pc
            || !s.req.keep_context
            || s.lender != NO_SLOT
            || self.lent_to.contains_key(&slot)
        {
            return false;
        }
        let grp = self.groups.get(g as usize).copied().unwrap_or_default();
        let shared = if s.attached { grp.blocks } else { 0 };
        if (s.attached && grp.refs != 1) || (!s.attached && grp.held) {
            return false;
        }
        let layers = self.geo.layers();
        let kv_tokens = s
            .computed
            .min((s.req.input_tokens as u64 + s.req.output_tokens as u64).saturating_sub(1));
        let total = s.held + shared * layers;
        let keep = self.geo.whole_blocks(kv_tokens).min(total / layers);
        self.kv.release(total - keep * layers);
        let at = self.kv.appended;
        self.kv.release(keep * layers);
        *self.group(g) = PrefixGroup {
            blocks: keep,
            refs: 0,
            held: false,
            cached_at: (keep > 0).then_some(at),
        };
        let s = &mut self.seqs[slot as usize];
        s.attached = false;
        s.held = 0;
        true
    }
}
