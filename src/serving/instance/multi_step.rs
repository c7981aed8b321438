//! The stack's scheduler semantics inside an instance (`crate::stacks`): multi-step
//! blocks (vLLM 0.6 `--num-scheduler-steps`), CUDA-graph padding of a step's batch,
//! and async scheduling, applied where a planned step is priced.
//!
//! A multi-step block: a decode-only step planned by the scheduler with
//! `num_scheduler_steps = n > 1` opens a block of n steps (with chunked prefill on,
//! so does a step whose prefills all finish their prompts: they decode in the rest). Its later n − 1 steps are
//! planned here without the scheduler: the decodes get their KV blocks and run, and
//! nothing is admitted, so a request that arrives during the block waits for its end.
//! A sequence that finishes inside the block completes (its last token is out) but
//! stays in the batch, computed as padding, until the block ends, when its slot and
//! blocks are released: in vLLM 0.6 the frozen batch runs all its steps on the GPU
//! and finished sequence groups are freed by the next `schedule()` call. The block
//! ends early when no sequence in it is left to emit, or when the decodes cannot get
//! their blocks (the scheduler then preempts as usual).
//!
//! When the block's outputs reach the client (`multi_step_stream_outputs`): after
//! every step (true), or all at the block's end (false, vLLM 0.6.0's only
//! behaviour: one chunk per 10 tokens in the Lambda study's raw `itls`). With false the tokens are generated (and counted) step by step, but
//! each sequence's tokens of the block are one chunk delivered at its end
//! ([`HeldOutputs`]): one inter-token gap per sequence per block, from its previous
//! chunk; a first token generated in the block (chunked prefill) is its TTFT; a
//! request finishing inside the block completes at its end. A block that could not
//! get its next step's KV blocks ends at the step before (decided when that step
//! ends, so the held outputs go out then); the scheduler preempts as usual.

use super::{Finished, Instance, State};
use crate::cost::StepTimes;
use crate::metrics::Recorder;
use crate::time::SimTime;

/// A running block's outputs held back for its end (`multi_step_stream_outputs =
/// false`).
#[derive(Debug, Default)]
pub(crate) struct HeldOutputs {
    /// When the decodes of the block's first step last got a chunk: the end of the
    /// step before the block.
    since: Option<SimTime>,
    /// Those decodes (one chunk each at the block's end, after an earlier one).
    chunks: u64,
    /// Sequences whose prompt completed in the block's first step: their first
    /// token (or first after a recompute) goes out with the block.
    first: Vec<u32>,
    /// Sequences that finished inside the block: they complete at its end.
    done: Vec<u32>,
}

impl Instance {
    /// At a step boundary inside a multi-step block: plans the block's next step (the
    /// decodes only) and returns true; false when no block is running (or it has to
    /// end here), with any padding of the ended block released.
    pub(super) fn continue_block(&mut self) -> bool {
        if self.block_left == 0 {
            return false;
        }
        if self.dec.n > self.dec.padded && self.grow_decodes() {
            self.block_left -= 1;
            return true;
        }
        debug_assert!(
            self.held.is_none(),
            "a held block ends when its last step does"
        );
        self.block_left = 0;
        self.release_block_padding();
        false
    }

    /// Opens a block after the scheduler planned a step that may run as one: a
    /// decode-only step; with chunked prefill on, also a step whose prefills all
    /// complete their prompts (vLLM 0.6's multi-step chunked prefill computes the
    /// scheduled prompts whole in the block's first step and decodes them in the
    /// rest: `vllm/worker/multi_step_model_runner.py`
    /// `StatefulModelInput.maybe_advance_sampling_metadata`).
    pub(super) fn maybe_open_block(&mut self) {
        let n = self.stack.num_scheduler_steps;
        if n <= 1 || (self.dec.n == 0 && self.chunks.is_empty()) {
            return;
        }
        let opens = if self.limits().chunked_prefill {
            self.chunks.iter().all(|&(slot, new)| {
                let s = &self.seqs[slot as usize];
                s.computed + new == s.target
            })
        } else {
            self.chunks.is_empty()
        };
        if opens {
            self.block_left = n - 1;
        }
    }

    /// Whether sequences finishing in the step that just ended keep their slot (the
    /// block goes on after it).
    pub(super) fn block_goes_on(&self) -> bool {
        self.block_left > 0
    }

    /// Whether the step that just ended belongs to a block whose outputs are held
    /// for its end.
    pub(super) fn holds_outputs(&self) -> bool {
        !self.stack.multi_step_stream_outputs && (self.block_left > 0 || self.held.is_some())
    }

    /// At the end of a held block's step: at its first, notes its `emitted` decodes
    /// and when they last got a chunk.
    pub(super) fn hold_block(&mut self, emitted: u64) {
        if self.held.is_none() {
            self.held = Some(HeldOutputs {
                since: self.last_step_end,
                chunks: emitted,
                ..HeldOutputs::default()
            });
        }
    }

    fn held_mut(&mut self) -> &mut HeldOutputs {
        self.held.get_or_insert_with(HeldOutputs::default)
    }

    /// Sequence `slot`'s first token was generated in the held block.
    pub(super) fn hold_first(&mut self, slot: u32) {
        self.held_mut().first.push(slot);
    }

    /// Sequence `slot` finished inside the held block.
    pub(super) fn hold_done(&mut self, slot: u32) {
        self.held_mut().done.push(slot);
    }

    /// Delivers the held outputs at the block's end `now`.
    fn deliver_held(&mut self, now: SimTime, rec: &mut Recorder, done: &mut Vec<Finished>) {
        let Some(h) = self.held.take() else { return };
        if let Some(since) = h.since {
            rec.itl(now, now - since, h.chunks);
        }
        for slot in h.first {
            let s = &mut self.seqs[slot as usize];
            match s.first_token {
                None => s.first_token = Some(now),
                Some(_) => rec.itl(now, now - s.last_token, 1),
            }
            s.last_token = now;
        }
        for slot in h.done {
            let req = self.seqs[slot as usize].req;
            done.push(self.complete(slot, req, now, rec));
        }
    }

    /// After a step ended at `now`: closes a block nobody is left to emit in (and,
    /// when its outputs are held, one whose next step cannot get its KV blocks),
    /// delivers the held outputs of a block that is over and releases its padding.
    pub(super) fn settle_block(
        &mut self,
        now: SimTime,
        rec: &mut Recorder,
        done: &mut Vec<Finished>,
    ) {
        if self.block_left > 0 && self.dec.n == self.dec.padded {
            self.block_left = 0;
        }
        if self.held.is_some() {
            // The next step's blocks, as `continue_block` will ask for them (window
            // crossings before it only lower the need; nothing else allocates here).
            if self.block_left > 0
                && !self.policy.reserves_whole_batch()
                && self.decode_growth() > self.kv.free()
            {
                self.block_left = 0;
            }
            if self.block_left == 0 {
                self.deliver_held(now, rec, done);
            }
        }
        if self.block_left == 0 {
            self.release_block_padding();
        }
    }

    /// Releases the sequences that finished inside the block.
    fn release_block_padding(&mut self) {
        if self.dec.padded == 0 || self.policy.pads_finished() {
            return;
        }
        let padded: Vec<u32> = self
            .running
            .iter()
            .filter(|&&e| self.is_running(e) && self.seqs[e.0 as usize].state == State::Padded)
            .map(|e| e.0)
            .collect();
        for slot in padded {
            self.dec_remove(slot);
            self.release_slot(slot);
        }
        self.compact_running();
    }

    /// Prices the planned step (`self.shape`), with the stack's semantics:
    /// CUDA-graph padding, the CPU part of a block's later steps (`continuation`),
    /// async scheduling. The plain stack's times are [`CostModel::price_times`]',
    /// untouched.
    ///
    /// [`CostModel::price_times`]: crate::cost::CostModel::price_times
    pub(super) fn price_planned(&mut self, continuation: bool) -> StepTimes {
        if self.plain_stack {
            return self.cost.price_times(&self.shape);
        }
        let real_seqs = self.shape.num_seqs();
        let rows = self.shape.num_tokens();
        let pad = if self.chunks.is_empty() || self.stack.pad_mixed_steps {
            self.stack.padded_size(rows).map_or(0, |p| p - rows)
        } else {
            0
        };
        let saved = (
            self.shape.decodes,
            self.shape.decode_ctx_full,
            self.shape.decode_ctx_window,
        );
        if pad > 0 {
            // Padding rows: dense work for P tokens, one attended key each (vLLM
            // gives a padding row seq_len 1), no LM head or sampling.
            self.shape.decodes += pad;
            self.shape.decode_ctx_full += pad;
            if self.geo.window_layers > 0 {
                self.shape.decode_ctx_window += pad;
            }
        }
        let mut cost = self.cost.price_times(&self.shape);
        if pad > 0 {
            (
                self.shape.decodes,
                self.shape.decode_ctx_full,
                self.shape.decode_ctx_window,
            ) = saved;
            // The engine's CPU work sees the real sequences only.
            cost.cpu_s = self.cost.cpu_s_for(real_seqs);
        }
        if continuation {
            // The scheduler and input preparation ran at the block's start; what is
            // left per step is each sequence's output processing, done while the
            // next step computes.
            cost.cpu_s = self.cost.cpu_seq_s_for(real_seqs);
            cost.cpu_overlap = 1.0;
        }
        if self.stack.async_scheduling {
            cost.cpu_overlap = 1.0;
        }
        cost
    }
}
