//! Aborting a request whose client gave up on it (`[client] on_timeout = "abort"`):
//! the instance drops it wherever it is (waiting, prefilling or decoding) and frees
//! its KV blocks, as vLLM's scheduler does for an aborted request
//! (`Scheduler.finish_requests` with `FINISHED_ABORTED`, vllm/v1/core/sched/scheduler.py).
//! An abort happens between steps, never during one: the engine applies aborts when
//! it next schedules.

use super::{Instance, State, REC};
use crate::workload::Request;

/// What an aborted request had cost when it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted {
    /// Output tokens it had emitted (wasted work).
    pub generated: u32,
}

impl Instance {
    /// Drops request `id` and frees what it holds; `None` if the instance does not
    /// hold it, has already completed it (a finished member of a padded static
    /// batch), or is inside a multi-step block (then at its end). Only between steps.
    pub fn abort(&mut self, id: u64) -> Option<Aborted> {
        debug_assert!(!self.in_flight, "aborts happen between steps");
        if self.block_left > 0 {
            // Inside a multi-step block the batch is frozen: vLLM 0.6 applies aborts
            // when it next calls schedule(), at the block's end. Asked again then.
            return None;
        }
        let found = self
            .seqs
            .iter()
            .position(|s| s.req.id == id && !matches!(s.state, State::Free | State::Padded));
        let (req, generated) = match found {
            Some(slot) => self.abort_seq(slot as u32),
            None => {
                // Not admitted yet: a record in the queue, or not here at all.
                let rank = self.recs.iter().position(|w| w.live() && w.id() == id)? as u32;
                self.waiting.retain(|&w| w != REC | rank);
                let w = &mut self.recs[rank as usize];
                w.retire();
                self.free_ranks.push(rank);
                (w.unpack().0, 0)
            }
        };
        self.outstanding -= 1;
        self.outstanding_tokens -= req.input_tokens as u64 + req.output_tokens as u64;
        // A padded static batch whose last unfinished member left ends now, as it
        // would have at the end of the step that finished that member.
        if self.policy.pads_finished() {
            self.end_padded_batch_if_done();
        }
        self.compact_running();
        Some(Aborted { generated })
    }

    /// Drops the request in sequence slot `slot` (waiting after a preemption, or
    /// running); returns it and the tokens it had emitted.
    fn abort_seq(&mut self, slot: u32) -> (Request, u32) {
        match self.seqs[slot as usize].state {
            State::Waiting => {
                self.waiting.retain(|&w| w != slot);
                // Blocks it left cached when it was preempted stay in the free queue
                // as any released blocks do; it holds nothing.
                self.free_seq(slot);
            }
            State::Prefilling => {
                self.partial.retain(|&p| p != slot);
                self.release_slot(slot);
            }
            State::Decoding => {
                self.dec_remove(slot);
                self.release_slot(slot);
            }
            State::Padded | State::Free => unreachable!("filtered above"),
        }
        let s = &self.seqs[slot as usize];
        (s.req, s.generated)
    }
}
