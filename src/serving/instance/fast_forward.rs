//! Fast-forward of decode stretches: runs in place the steps in which every running
//! sequence decodes one token and nothing else happens, identical to planning them one
//! by one.

use super::{Instance, Stretch};
use crate::metrics::Recorder;
use crate::policy::Admission;
use crate::time::SimTime;

impl Instance {
    /// Whether the scheduler could admit a waiting request at some step before the
    /// decode set changes: never when nothing waits, nor when the policy refuses for a
    /// reason that lasts while the running set is unchanged (a static batch in
    /// progress, `max_num_seqs` reached, the token budget used up by decodes), unless
    /// the scheduler [acts while decoding](crate::policy::Scheduler::acts_while_decoding).
    pub(super) fn may_admit_during_decodes(&self, now: SimTime) -> bool {
        if self.waiting.is_empty() {
            return false;
        }
        if self.sched.as_ref().is_some_and(|s| s.acts_while_decoding()) {
            return true;
        }
        self.policy.admission(&self.view(now, self.dec.n, false)) != Admission::No
    }

    /// Fast-forward of a decode stretch on an exclusive GPU: runs in place, from
    /// `now`, the steps in which every running sequence decodes one token and nothing
    /// else happens, while each ends strictly before `limit` (the next event of the
    /// simulation). It stops before the first step that would admit or prefill
    /// anything, finish a sequence, cross the sliding window, or fail to get its new
    /// KV blocks, so those steps go through [`Instance::plan_step`] as usual.
    ///
    /// Each step is priced as a planned step is
    /// ([`CostModel::price_times`](crate::cost::CostModel::price_times)): its fixed part
    /// once, then [`CostModel::decode_times`](crate::cost::CostModel::decode_times) for
    /// the step's context sums, its time rounded by
    /// [`StepTimes::exclusive_durations`](crate::cost::StepTimes::exclusive_durations),
    /// and its tokens recorded in the same order, so the results are identical to
    /// planning the steps one by one, to the nanosecond; only the bookkeeping of
    /// planning (heaps, admission, the event queue) is skipped.
    pub fn fast_forward(&mut self, now: SimTime, limit: SimTime, rec: &mut Recorder) -> Stretch {
        let mut out = Stretch {
            steps: 0,
            end: now,
            gpu_busy: crate::time::Dur::ZERO,
        };
        // The stack's semantics (multi-step blocks, padding, async scheduling) are
        // applied where a planned step is priced; such steps are planned one by one.
        //
        // When the gap to the next event is no longer than the last step that could
        // not run for reaching it, its first step would most likely reach it too, and
        // pricing it here as well as in `plan_step` doubles the cost of a step (three
        // GPUs stepping in turn: nearly every try). Not trying only leaves the steps to
        // be planned one by one, with the same results; a longer gap tries again.
        if limit.since(now) <= self.ff_short
            || self.in_flight
            || !self.plain_stack
            || self.dec.n == 0
            || !self.partial.is_empty()
            || self.may_admit_during_decodes(now)
        {
            return out;
        }
        // Steps before the first completion and the first window crossing.
        let next_finish = self.dec.finish.peek_step().unwrap_or(u64::MAX);
        let next_cross = self.dec.cross.peek().map_or(u64::MAX, |r| r.0 .0);
        let reserve = self.policy.reserves_whole_batch();
        let bs = self.geo.block_size;
        let (g_below, g_above) = (self.geo.growth(true), self.geo.growth(false));
        let emitted = self.dec.n - self.dec.padded;
        let mut t = now;
        self.shape.prefills.clear();
        self.set_decode_shape(self.k + 1);
        self.shape.emitting = emitted;
        let fixed = self.cost.price_fixed(&self.shape);
        // The CPU parts depend only on the batch, not on the contexts.
        let (serial, overlapped) = self.cost.cpu_durations(&fixed);
        // Context sums grow by one token per sequence per step (below the window
        // only for window layers: no crossing happens inside the stretch).
        let (mut ctx_full, mut ctx_window) =
            (self.shape.decode_ctx_full, self.shape.decode_ctx_window);
        let window_growth = if self.geo.window_layers == 0 {
            0
        } else {
            self.dec.n_below
        };
        let mut r = self.geo.block_residue(self.k as i64) as usize;
        // A step that starts at counter k ends at k + 1: it must not reach a finish
        // (k + 1 < next_finish) nor start at a crossing (k < next_cross).
        while self.k + 1 < next_finish && self.k < next_cross {
            let k1 = self.k + 1;
            let cost = self.cost.decode_times(&fixed, ctx_full, ctx_window);
            let gpu = cost.gpu_duration();
            let end = t + serial + gpu.max(overlapped);
            if end >= limit {
                if out.steps == 0 {
                    self.ff_short = end.since(t);
                }
                break;
            }
            if !reserve {
                let need =
                    self.dec.cnt_below[r] as u64 * g_below + self.dec.cnt_above[r] as u64 * g_above;
                if !self.kv.try_alloc(need) {
                    break;
                }
            }
            self.stats.steps += 1;
            self.stats.decode_seqs += self.dec.n;
            self.stats.busy_s += (end - t).as_secs_f64();
            self.k = k1;
            if emitted > 0 {
                if let Some(prev) = self.last_step_end {
                    rec.itl(end, end - prev, emitted);
                }
            }
            rec.tokens(emitted);
            self.tenant_decode_steps(1);
            self.last_step_end = Some(end);
            out.steps += 1;
            out.gpu_busy = out.gpu_busy + gpu;
            t = end;
            ctx_full += self.dec.n;
            ctx_window += window_growth;
            r = if r + 1 == bs as usize { 0 } else { r + 1 };
        }
        out.end = t;
        out
    }
}
