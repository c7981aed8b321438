//! Planning and finishing a step: the running list, admission, preemption, pricing the
//! planned step, and emitting tokens and completing requests when it ends.

use super::builder::{Refusal, StepBuilder};
use super::{CachedOwn, Finished, Instance, Seq, State, REC};
use crate::cost::{PrefillChunk, StepTimes};
use crate::metrics::Recorder;
use crate::policy::View;
use crate::time::SimTime;
use crate::workload::Request;

impl Instance {
    pub(super) fn is_running(&self, entry: (u32, u64)) -> bool {
        let s = &self.seqs[entry.0 as usize];
        s.admit == entry.1 && matches!(s.state, State::Prefilling | State::Decoding | State::Padded)
    }

    pub(super) fn push_running(&mut self, slot: u32) {
        let admit = self.next_admit;
        self.next_admit += 1;
        self.seqs[slot as usize].admit = admit;
        self.running.push((slot, admit));
        self.running_count += 1;
    }

    /// Drops tombstones when they outnumber live entries.
    pub(super) fn compact_running(&mut self) {
        if self.running.len() > 64 && self.running.len() > 2 * self.running_count as usize {
            let mut v = std::mem::take(&mut self.running);
            v.retain(|&e| self.is_running(e));
            self.running = v;
        }
    }

    /// The most recently admitted running sequence, dropping the tombstones after it.
    pub(super) fn newest_running(&mut self) -> Option<u32> {
        while let Some(&e) = self.running.last() {
            if self.is_running(e) {
                return Some(e.0);
            }
            self.running.pop();
        }
        None
    }

    /// Preempts running sequence `slot` (vLLM V1: recompute): it goes back to the front
    /// of the waiting queue. With the prefix cache its full blocks stay cached in the
    /// free queue until evicted. The newest running sequence is popped from the running
    /// list; any other leaves a tombstone there.
    pub(super) fn preempt_slot(&mut self, slot: u32) {
        if self.running.last().is_some_and(|e| e.0 == slot) {
            self.running.pop();
        }
        match self.seqs[slot as usize].state {
            State::Decoding | State::Padded => {
                // Blocks the decodes got for this step, if it was among those needing
                // one: they go back with the rest.
                let s = &self.seqs[slot as usize];
                let grown = if self.grown_this_step
                    && self.residue(s.base) == self.geo.block_residue(self.k as i64) as usize
                {
                    self.geo.growth(s.below_window)
                } else {
                    0
                };
                self.dec_remove(slot);
                self.seqs[slot as usize].held += grown;
                // A decoding sequence last emitted at the end of the previous step
                // (decode tokens are recorded for the whole set, not per sequence):
                // the gap to its next token, after the recompute, counts from there.
                if let Some(t) = self.last_step_end {
                    self.seqs[slot as usize].last_token = t;
                }
            }
            State::Prefilling => self.partial.retain(|&p| p != slot),
            _ => unreachable!(
                "running entry in state {:?}",
                self.seqs[slot as usize].state
            ),
        }
        {
            let shared_blocks = self.shared_lb(slot) / self.geo.layers().max(1);
            let lent = self.settle_loans(slot);
            let at = self.kv.appended;
            // Blocks it lent stay in use, with their new owner; it resumes from a
            // sibling's blocks instead.
            let pc = self.pc && lent == 0;
            let s = &mut self.seqs[slot as usize];
            let held = s.held - lent;
            s.cached_own = pc.then(|| CachedOwn {
                at,
                layer_blocks: held,
                full_blocks: self
                    .geo
                    .whole_blocks(s.computed)
                    .saturating_sub(shared_blocks),
                after_group: shared_blocks,
            });
            s.held = 0;
            s.computed = 0;
            s.target = s.req.input_tokens as u64 + s.generated as u64;
            s.state = State::Waiting;
            self.kv.release(held);
            self.detach(slot);
            self.running_count -= 1;
            self.waiting.push_front(slot);
            self.stats.preemptions += 1;
            self.plan.preempted.push(self.seqs[slot as usize].req.id);
        }
    }

    /// Plans the next step at `now`. Returns the priced step, or `None` if there is
    /// nothing to run; in that case `wake_at` may say when to ask again (a batch timer).
    pub fn plan_step(&mut self, now: SimTime, wake_at: &mut Option<SimTime>) -> Option<StepTimes> {
        debug_assert!(!self.in_flight);
        *wake_at = None;
        self.process_window_crossings();
        self.chunks.clear();
        self.plan.clear();
        self.admitted_recs.clear();
        self.grown_this_step = false;
        // Inside a multi-step block the scheduler is not called (multi_step.rs).
        let continuation = self.continue_block();
        if !continuation {
            let mut sched = self
                .sched
                .take()
                .expect("the scheduler is in place between steps");
            let mut b = StepBuilder::new(self, now);
            sched.schedule(&mut b);
            let (wake, violation) = b.finish();
            self.sched = Some(sched);
            *wake_at = wake;
            self.plan.wake_at = wake;
            if let Some(v) = violation {
                self.policy_error.get_or_insert(v);
            }
            self.maybe_open_block();
        }
        self.plan.decodes = self.dec.n;
        // The step's limits, whatever the scheduler did: new tokens within the budget
        // its decodes leave, running sequences within the cap.
        let lim = self.limits();
        let prefill: u64 = self.chunks.iter().map(|c| c.1).sum();
        if prefill > lim.max_batched_tokens.saturating_sub(self.dec.n)
            || self.running_count > lim.max_seqs
        {
            self.policy_error.get_or_insert(format!(
                "step plans {prefill} prefill tokens besides {} decodes with {} running; limits: {} tokens, {} sequences",
                self.dec.n, self.running_count, lim.max_batched_tokens, lim.max_seqs
            ));
        }

        if self.dec.n == 0 && self.chunks.is_empty() {
            return None;
        }
        // 4. Price the step.
        let k1 = self.k + 1;
        self.shape.prefills.clear();
        let mut emitting = self.dec.n - self.dec.padded;
        for &(slot, new) in &self.chunks {
            let s = &self.seqs[slot as usize];
            self.shape.prefills.push(PrefillChunk {
                cached: s.computed,
                new,
            });
            if s.computed + new == s.target {
                emitting += 1;
            }
        }
        self.set_decode_shape(k1);
        self.shape.emitting = emitting;
        self.in_flight = true;
        self.step_started = now;
        self.stats.steps += 1;
        self.stats.decode_seqs += self.shape.decodes;
        self.stats.prefill_tokens += prefill;
        Some(self.price_planned(continuation))
    }

    /// What the policy sees when it decides on admission.
    pub(super) fn view(&self, now: SimTime, planned_tokens: u64, preempted: bool) -> View {
        View {
            now,
            running: self.running_count,
            waiting: self.waiting.len() as u32,
            oldest_wait_since: self.waiting.front().map(|&e| self.entry_enqueued(e)),
            planned_tokens,
            preempted,
        }
    }

    /// Admits the waiting request at queue entry `entry` (at `pos` in the waiting
    /// queue) with at most `budget` new tokens, splitting its prompt if `chunk`;
    /// static batches reserve KV for `longest_out` output tokens at least. A record
    /// (never admitted before) gets its sequence slot now. Nothing changes when it is
    /// refused.
    pub(super) fn admit_one(
        &mut self,
        entry: u32,
        pos: usize,
        now: SimTime,
        budget: u64,
        chunk: bool,
        longest_out: u64,
    ) -> Result<u64, Refusal> {
        if entry & REC != 0 {
            return self.admit_record(entry & !REC, pos, now, budget, chunk, longest_out);
        }
        let slot = entry;
        let reserve = self.policy.reserves_whole_batch();
        let layers = self.geo.layers();
        let bs = self.geo.block_size;
        // Prefix-cache hit (whole blocks) for a request starting from scratch.
        let (group, from_free, mut own) = if self.pc && self.seqs[slot as usize].computed == 0 {
            self.cache_hit(slot)
        } else {
            (0, false, 0)
        };
        // Or in a sibling's blocks, where outputs are identical.
        let loan = self
            .sibling_hit(slot, group)
            .filter(|&(_, b)| b >= own && !from_free);
        let borrow = loan.map_or(0, |(_, b)| b);
        if borrow > 0 {
            own = 0;
        }
        let hit = (group + own + borrow) * bs;
        let s = &self.seqs[slot as usize];
        let start = s.computed.max(hit);
        let remaining = s.target - start;
        if remaining > budget && !chunk {
            return Err(Refusal::Budget);
        }
        let new = remaining.min(budget);
        let taken_back = (if from_free { group * layers } else { 0 }) + own * layers;
        // A static batch reserves KV for each member's whole length, so it never
        // preempts; padded members keep growing until the batch's longest output is
        // done (capped at the model length).
        let need = if reserve {
            let out = (s.req.output_tokens as u64).max(longest_out);
            self.geo
                .blocks_for((s.req.input_tokens as u64 + out).min(self.max_len))
        } else {
            self.geo.blocks_for(start + new) - s.held - (group + own + borrow) * layers
        };
        if need + taken_back > self.kv.free() {
            return Err(Refusal::Kv);
        }
        self.kv.reacquire(taken_back);
        let ok = self.kv.try_alloc(need);
        debug_assert!(ok);
        let removed = if pos == 0 {
            self.waiting.pop_front()
        } else {
            self.waiting.remove(pos)
        };
        debug_assert!(removed.is_some_and(|e| e == slot || e & REC != 0));
        if group > 0 {
            let g = self.seqs[slot as usize]
                .req
                .prefix
                .expect("a hit implies a prompt");
            let grp = self.group(g);
            grp.refs += 1;
            grp.held = true;
            grp.cached_at = None;
        }
        if let Some((lender, b)) = loan {
            let s = &mut self.seqs[slot as usize];
            s.borrowed = b * layers;
            s.lender = lender;
            self.lent_to.entry(lender).or_default().push(slot);
            self.stats.sibling_hits += 1;
        }
        let s = &mut self.seqs[slot as usize];
        s.attached = group > 0;
        s.cached_own = None;
        s.computed = start;
        s.held += need + own * layers;
        s.state = State::Prefilling;
        s.scheduled.get_or_insert(now);
        let id = s.req.id;
        self.stats.prefix_hit_tokens += hit;
        self.push_running(slot);
        self.partial.push(slot);
        self.chunks.push((slot, new));
        self.plan.admitted.push(id);
        Ok(new)
    }

    /// [`Instance::admit_one`] for the record of rank `rank`: its sequence is built
    /// in a free slot, and given back if the admission is refused.
    #[inline(never)]
    fn admit_record(
        &mut self,
        rank: u32,
        pos: usize,
        now: SimTime,
        budget: u64,
        chunk: bool,
        longest_out: u64,
    ) -> Result<u64, Refusal> {
        let (req, enqueued) = self.recs[rank as usize].unpack();
        let slot = self.alloc_seq(Seq::new(req, enqueued, rank));
        match self.admit_one(slot, pos, now, budget, chunk, longest_out) {
            Ok(n) => {
                self.recs[rank as usize].retire();
                self.admitted_recs.push((rank, slot));
                Ok(n)
            }
            Err(r) => {
                // The record still waits; the slot goes back unused.
                self.seqs[slot as usize].state = State::Free;
                self.free_slots.push(slot);
                Err(r)
            }
        }
    }

    /// Schedules the next chunk of running prefill `slot`: at most `budget` tokens.
    /// `Ok(0)` when the budget is spent; [`Refusal::Kv`] (nothing changed) when its
    /// blocks cannot be had.
    pub(super) fn prefill_one(&mut self, slot: u32, budget: u64) -> Result<u64, Refusal> {
        let s = &self.seqs[slot as usize];
        let new = (s.target - s.computed).min(budget);
        if new == 0 {
            return Ok(0);
        }
        let need = self.geo.blocks_for(s.computed + new) - s.held - self.shared_lb(slot);
        if !self.kv.try_alloc(need) {
            return Err(Refusal::Kv);
        }
        self.seqs[slot as usize].held += need;
        self.chunks.push((slot, new));
        Ok(new)
    }

    /// The blocks the decode set needs for a step starting at counter `self.k`.
    pub(super) fn decode_growth(&self) -> u64 {
        let r = self.geo.block_residue(self.k as i64) as usize;
        self.dec.cnt_below[r] as u64 * self.geo.growth(true)
            + self.dec.cnt_above[r] as u64 * self.geo.growth(false)
    }

    /// Allocates the blocks the decode set needs this step (sequences whose context
    /// starts a new block); false (nothing allocated) when the pool is short.
    pub(super) fn grow_decodes(&mut self) -> bool {
        if self.policy.reserves_whole_batch() {
            // Static batches reserved their blocks at admission.
            return true;
        }
        let ok = self.kv.try_alloc(self.decode_growth());
        self.grown_this_step |= ok;
        ok
    }

    /// Finishes the step in flight at `now`: emits tokens, completes requests.
    /// Finished requests are appended to `done`.
    pub fn finish_step(&mut self, now: SimTime, rec: &mut Recorder, done: &mut Vec<Finished>) {
        debug_assert!(self.in_flight);
        self.in_flight = false;
        self.stats.busy_s += (now - self.step_started).as_secs_f64();
        self.k += 1;
        let k = self.k;
        let pads = self.policy.pads_finished() || self.block_goes_on();
        // Inside a block whose outputs come at its end (multi_step.rs), tokens are
        // generated now and delivered then.
        let hold = self.holds_outputs();

        // Tokens from decodes: one per unpadded decoding sequence, all at `now`.
        let emitted = self.dec.n - self.dec.padded;
        if hold {
            self.hold_block(emitted);
        } else if emitted > 0 {
            if let Some(prev) = self.last_step_end {
                rec.itl(now, now - prev, emitted);
            }
        }
        rec.tokens(emitted);
        self.tenant_decode_steps(1);

        // Completions among decodes.
        // (Nothing below adds to the finish steps: taking the due ones first and then
        // processing them is popping them one by one.)
        let mut due = std::mem::take(&mut self.dec.due);
        self.dec.finish.take_due(k, &mut due);
        for &(_, admit, slot) in &due {
            let s = &self.seqs[slot as usize];
            if s.admit != admit || s.state != State::Decoding {
                continue;
            }
            if pads {
                self.seqs[slot as usize].state = State::Padded;
                self.dec.padded += 1;
                let s = &self.seqs[slot as usize];
                if hold {
                    self.hold_done(slot);
                } else {
                    done.push(self.complete(slot, s.req, now, rec));
                }
            } else {
                self.dec_remove(slot);
                done.push(self.retire(slot, now, rec));
            }
        }
        self.dec.due = due;

        // Prefill chunks.
        let chunks = std::mem::take(&mut self.chunks);
        for &(slot, new) in &chunks {
            let s = &mut self.seqs[slot as usize];
            s.computed += new;
            if s.computed < s.target {
                continue;
            }
            self.partial.retain(|&p| p != slot);
            self.share_prompt(slot);
            let tenant = self.seqs[slot as usize].req.tenant;
            self.tenant_emit(tenant, 1);
            let s = &mut self.seqs[slot as usize];
            s.generated += 1;
            rec.tokens(1);
            if hold {
                self.hold_first(slot);
            } else {
                let s = &mut self.seqs[slot as usize];
                match s.first_token {
                    None => s.first_token = Some(now),
                    Some(_) => rec.itl(now, now - s.last_token, 1),
                }
                s.last_token = now;
            }
            let s = &self.seqs[slot as usize];
            if s.generated >= s.req.output_tokens {
                if pads {
                    // Keep it in the batch, computing padding, until the batch ends.
                    let req = s.req;
                    self.dec_insert(slot);
                    self.seqs[slot as usize].state = State::Padded;
                    self.dec.padded += 1;
                    if hold {
                        self.hold_done(slot);
                    } else {
                        done.push(self.complete(slot, req, now, rec));
                    }
                } else {
                    done.push(self.retire(slot, now, rec));
                }
            } else {
                self.dec_insert(slot);
            }
        }
        self.chunks = chunks;
        self.chunks.clear();

        if pads {
            self.end_padded_batch_if_done();
        }
        self.settle_block(now, rec, done);
        self.compact_running();
        self.last_step_end = Some(now);
    }

    /// A padded batch (finished members kept in it) ends when every member is done:
    /// all of them leave the running set and release their blocks.
    pub(super) fn end_padded_batch_if_done(&mut self) {
        if self.dec.n > 0 && self.dec.padded == self.dec.n && self.partial.is_empty() {
            let members: Vec<(u32, u64)> = self.running.drain(..).collect();
            for e in members {
                if self.is_running(e) {
                    self.dec_remove(e.0);
                    self.release_slot(e.0);
                }
            }
        }
    }

    /// Records a completed request's metrics and updates router counters.
    pub(super) fn complete(
        &mut self,
        slot: u32,
        req: Request,
        now: SimTime,
        rec: &mut Recorder,
    ) -> Finished {
        let s = &self.seqs[slot as usize];
        rec.request(
            &req,
            self.id,
            s.scheduled.unwrap_or(now),
            s.first_token.unwrap_or(now),
            now,
        );
        self.outstanding -= 1;
        self.outstanding_tokens -= req.input_tokens as u64 + req.output_tokens as u64;
        self.stats.served += 1;
        Finished { req, at: now }
    }

    /// Completes a request and frees its slot and blocks (it is out of the decode set).
    pub(super) fn retire(&mut self, slot: u32, now: SimTime, rec: &mut Recorder) -> Finished {
        let req = self.seqs[slot as usize].req;
        let f = self.complete(slot, req, now, rec);
        self.release_slot(slot);
        f
    }

    pub(super) fn release_slot(&mut self, slot: u32) {
        if !self.keep_context(slot) {
            let lent = self.settle_loans(slot);
            let s = &mut self.seqs[slot as usize];
            let held = s.held - lent;
            s.held = 0;
            self.kv.release(held);
            self.detach(slot);
        }
        self.running_count -= 1;
        self.free_seq(slot);
    }
}
