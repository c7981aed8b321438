//! The step under construction, as a scheduler sees and shapes it.
//!
//! At every step boundary the instance hands its [`Scheduler`](crate::policy::Scheduler)
//! a [`StepBuilder`]: a view of the queue (each waiting and running request with its
//! arrival, lengths so far, priority and tenant) and the operations that make up a step
//! (grow the decodes' KV, preempt, continue a running prefill, admit a waiting request,
//! ask to be woken). Each operation is checked against the instance's limits when it
//! is made: KV blocks, the cap on running sequences (`max_num_seqs`), the step's token
//! budget (`max_num_batched_tokens`). One that would break a limit is refused and
//! changes nothing; one that names a request in the wrong state is an error in the
//! policy, recorded and reported by the run. What was decided is kept as data in the
//! instance's [`StepPlan`].

use super::{Instance, State, REC};
use crate::policy::{Admission, Policy, View};
use crate::time::SimTime;

/// A request held by an instance, as a scheduler names it (valid during one step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub(crate) u32);

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting to be admitted (new, or preempted and waiting to resume).
    Waiting,
    /// Admitted, its prompt (or recomputed context) partly computed.
    Prefilling,
    /// Decoding one token per step.
    Decoding,
}

/// What a scheduler sees of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReqView {
    /// Handle for the builder's operations.
    pub handle: Handle,
    /// Request id (order of issue).
    pub id: u64,
    /// When the workload issued it.
    pub arrival: SimTime,
    /// When it reached this instance.
    pub enqueued: SimTime,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Output tokens it will generate: the true length, known to the simulator. A
    /// scheduler that reads it is an oracle; realistic ones go through a
    /// [`Predictor`](crate::policy::predictor::Predictor).
    pub output_tokens: u32,
    /// Output tokens generated so far.
    pub generated: u32,
    /// Tokens whose KV is computed.
    pub computed: u64,
    /// Scheduling priority (lower is served first, as vLLM).
    pub priority: i32,
    /// Tenant.
    pub tenant: u32,
    /// Workload class.
    pub class: u16,
    /// Where it is.
    pub phase: Phase,
    /// KV layer-blocks it holds of its own (shared prefix blocks not counted).
    pub blocks_held: u64,
    /// Admission number of its current stay in the running set (running only; later
    /// admissions have larger numbers).
    pub admitted: u64,
}

/// Why an operation was refused (nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The running set is at its cap (`max_num_seqs`, the static batch size, 1 for
    /// sequential serving).
    Seqs,
    /// The step's token budget is spent, or the prompt does not fit it and may not be
    /// split.
    Budget,
    /// Not enough free KV blocks.
    Kv,
    /// The request is not in the state the operation needs (an error in the policy).
    Invalid,
}

/// The instance's limits, as the policy in force sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most sequences running at once.
    pub max_seqs: u32,
    /// Most new tokens in one step (`u64::MAX`: no limit).
    pub max_batched_tokens: u64,
    /// Whether prompts may be split across steps.
    pub chunked_prefill: bool,
}

/// What the scheduler decided for one step, as data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepPlan {
    /// Requests preempted (ids, in order).
    pub preempted: Vec<u64>,
    /// Requests admitted from the waiting queue (ids, in order).
    pub admitted: Vec<u64>,
    /// Prefill chunks run: (request id, new tokens), running prefills first.
    pub prefills: Vec<(u64, u64)>,
    /// Sequences decoding.
    pub decodes: u64,
    /// When the scheduler asked to be woken if nothing else happens.
    pub wake_at: Option<SimTime>,
}

impl StepPlan {
    pub(super) fn clear(&mut self) {
        self.preempted.clear();
        self.admitted.clear();
        self.prefills.clear();
        self.decodes = 0;
        self.wake_at = None;
    }
}

/// The step under construction (see the module documentation).
pub struct StepBuilder<'a> {
    inst: &'a mut Instance,
    now: SimTime,
    /// Whether a KV shortage forced (or asked for) a preemption in this step.
    preempted: bool,
    /// Decode tokens when the decode phase closed (first prefill or admission).
    decode_tokens: Option<u64>,
    /// Tokens left in the step's budget, once the decode phase closed.
    budget: u64,
    /// Cap the last admission decision gave (static batches size their reserve on it).
    admit_cap: u32,
    /// Longest output among a padded static batch's members, once computed.
    longest_out: Option<u64>,
    wake: Option<SimTime>,
    violation: Option<String>,
}

impl<'a> StepBuilder<'a> {
    pub(super) fn new(inst: &'a mut Instance, now: SimTime) -> Self {
        StepBuilder {
            inst,
            now,
            preempted: false,
            decode_tokens: None,
            budget: u64::MAX,
            admit_cap: 0,
            longest_out: None,
            wake: None,
            violation: None,
        }
    }

    pub(super) fn finish(self) -> (Option<SimTime>, Option<String>) {
        (self.wake, self.violation)
    }

    fn violate(&mut self, what: String) -> Refusal {
        self.violation.get_or_insert(what);
        Refusal::Invalid
    }

    /// Now.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The instance's limits.
    pub fn limits(&self) -> Limits {
        self.inst.limits()
    }

    /// Requests waiting.
    pub fn waiting_len(&self) -> usize {
        self.inst.waiting.len()
    }

    /// Sequences running (decoding or mid-prefill).
    pub fn running_len(&self) -> u32 {
        self.inst.running_count
    }

    /// Sequences decoding.
    pub fn decoding_len(&self) -> u64 {
        self.inst.dec.n
    }

    /// Whether a KV shortage forced a preemption in this step (vLLM V1 admits nothing
    /// new in such a step).
    pub fn preempted(&self) -> bool {
        self.preempted
    }

    /// Tokens left in this step's budget (after the decodes and the prefill chunks
    /// planned so far).
    pub fn budget_left(&self) -> u64 {
        match self.decode_tokens {
            Some(_) => self.budget,
            None => self
                .limits()
                .max_batched_tokens
                .saturating_sub(self.inst.dec.n),
        }
    }

    /// Free KV layer-blocks.
    pub fn free_blocks(&self) -> u64 {
        self.inst.kv.free()
    }

    /// Output tokens emitted so far for `tenant` on this instance (counted only when
    /// the scheduler [tracks tenants](crate::policy::Scheduler::tracks_tenants)).
    pub fn tenant_output_tokens(&self, tenant: u32) -> u64 {
        self.inst
            .tenant_out
            .get(tenant as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The sequence slot handle `h` names: its own for a sequence, the one a record
    /// got when it was admitted in this step; `None` for a record still waiting (or
    /// an unknown handle).
    fn seq_slot(&self, h: Handle) -> Option<u32> {
        if h.0 & REC == 0 {
            return Some(h.0);
        }
        let rank = h.0 & !REC;
        self.inst
            .admitted_recs
            .iter()
            .find(|e| e.0 == rank)
            .map(|e| e.1)
    }

    /// What a scheduler sees of the request at queue entry or slot `slot`.
    fn view_of(&self, slot: u32) -> ReqView {
        let inst = &*self.inst;
        if slot & REC != 0 {
            // A request never admitted: nothing generated, computed or held.
            let w = &inst.recs[(slot & !REC) as usize];
            return ReqView {
                handle: Handle(slot),
                id: w.id(),
                arrival: w.arrival(),
                enqueued: w.enqueued(),
                prompt_tokens: w.input_tokens(),
                output_tokens: w.output_tokens(),
                generated: 0,
                computed: 0,
                priority: w.priority(),
                tenant: w.tenant(),
                class: w.class(),
                phase: Phase::Waiting,
                blocks_held: 0,
                admitted: 0,
            };
        }
        let s = &inst.seqs[slot as usize];
        let (phase, computed, generated) = match s.state {
            State::Decoding | State::Padded => {
                let ctx = inst.context(s);
                let generated = s.gen_join + (inst.k - s.k_join) as u32;
                (Phase::Decoding, ctx, generated)
            }
            State::Prefilling => (Phase::Prefilling, s.computed, s.generated),
            _ => (Phase::Waiting, s.computed, s.generated),
        };
        let blocks_held = match phase {
            Phase::Decoding if !inst.policy.reserves_whole_batch() => {
                inst.geo.blocks_for(computed) - inst.shared_lb(slot)
            }
            _ => s.held,
        };
        ReqView {
            handle: Handle(slot),
            id: s.req.id,
            arrival: s.req.arrival,
            enqueued: s.enqueued,
            prompt_tokens: s.req.input_tokens,
            output_tokens: s.req.output_tokens,
            generated,
            computed,
            priority: s.req.priority,
            tenant: s.req.tenant,
            class: s.req.class,
            phase,
            blocks_held,
            admitted: s.admit,
        }
    }

    /// Full KV blocks of `h`'s shared prompt prefix that the instance's prefix cache
    /// holds (0 for a prompt without one, or with the cache off): the signal of
    /// SGLang's longest-prefix-match order.
    pub fn cached_prefix_blocks(&self, h: Handle) -> u64 {
        let prefix = match self.seq_slot(h) {
            Some(slot) => self.inst.seqs.get(slot as usize).and_then(|s| s.req.prefix),
            None => self
                .inst
                .recs
                .get((h.0 & !REC) as usize)
                .filter(|w| w.live())
                .and_then(|w| w.prefix()),
        };
        prefix.map_or(0, |p| self.inst.cached_prefix_blocks(p))
    }

    /// The waiting queue in its order: preempted requests first (most recently
    /// preempted first), then new ones in order of arrival at the instance.
    pub fn waiting(&self) -> impl Iterator<Item = ReqView> + '_ {
        self.inst.waiting.iter().map(|&s| self.view_of(s))
    }

    /// The head of the waiting queue.
    pub fn waiting_front(&self) -> Option<ReqView> {
        self.inst.waiting.front().map(|&s| self.view_of(s))
    }

    /// The head of the waiting queue, by handle only (cheaper than
    /// [`StepBuilder::waiting_front`] when nothing else about it is needed).
    pub fn front_handle(&self) -> Option<Handle> {
        self.inst.waiting.front().map(|&s| Handle(s))
    }

    /// The `i`-th running prefill not yet planned, by handle only (see
    /// [`StepBuilder::prefilling`]).
    pub fn prefilling_handle(&self, i: usize) -> Option<Handle> {
        self.inst.partial.get(i).map(|&s| Handle(s))
    }

    /// The running set in order of admission (oldest first).
    pub fn running(&self) -> impl DoubleEndedIterator<Item = ReqView> + '_ {
        self.inst
            .running
            .iter()
            .filter(|&&e| self.inst.is_running(e))
            .map(|&e| self.view_of(e.0))
    }

    /// The most recently admitted running request.
    pub fn newest_running(&mut self) -> Option<ReqView> {
        let slot = self.inst.newest_running()?;
        Some(self.view_of(slot))
    }

    /// Running prefills not yet planned in this step, in order of admission: the
    /// `i`-th of them.
    pub fn prefilling(&self, i: usize) -> Option<ReqView> {
        self.inst.partial.get(i).map(|&s| self.view_of(s))
    }

    /// Allocates the blocks this step's decodes need (sequences whose context starts a
    /// new block). False, with nothing allocated, when the pool is short: preempt and
    /// try again.
    pub fn grow_decodes(&mut self) -> bool {
        if self.decode_tokens.is_some() {
            self.violate("grow_decodes called after prefills or admissions were planned".into());
            return false;
        }
        let ok = self.inst.grow_decodes();
        if !ok {
            self.preempted = true;
        }
        ok
    }

    fn close_decodes(&mut self) {
        if self.decode_tokens.is_none() {
            let d = self.inst.dec.n;
            self.decode_tokens = Some(d);
            self.budget = self.limits().max_batched_tokens.saturating_sub(d);
        }
    }

    /// Preempts running request `h` (recompute: its KV is released, it waits at the
    /// front of the queue and resumes by recomputing its context).
    pub fn preempt(&mut self, h: Handle) -> Result<(), Refusal> {
        let Some(slot) = self.seq_slot(h) else {
            return match self.inst.recs.get((h.0 & !REC) as usize) {
                Some(w) if w.live() => {
                    let id = w.id();
                    Err(self.violate(format!("preempt: request {id} is not running")))
                }
                _ => Err(self.violate(format!("preempt: no request {}", h.0 & !REC))),
            };
        };
        let Some(s) = self.inst.seqs.get(slot as usize) else {
            return Err(self.violate(format!("preempt: no request {}", h.0)));
        };
        if !matches!(s.state, State::Prefilling | State::Decoding | State::Padded) {
            let id = s.req.id;
            return Err(self.violate(format!("preempt: request {id} is not running")));
        }
        self.preempted = true;
        self.inst.preempt_slot(slot);
        Ok(())
    }

    /// Plans the next chunk of running prefill `h`: as many of its remaining tokens as
    /// the budget allows. `Ok(0)` when the budget is spent; [`Refusal::Kv`] when its
    /// blocks cannot be had (preempt and try again).
    pub fn continue_prefill(&mut self, h: Handle) -> Result<u64, Refusal> {
        self.close_decodes();
        let slot = self.seq_slot(h).unwrap_or(h.0);
        let named = self.inst.rank_of(h.0);
        if !self.inst.partial.contains(&slot) {
            return Err(self.violate(format!(
                "continue_prefill: request in slot {named} is not a running prefill waiting for its next chunk"
            )));
        }
        if self.inst.chunks.iter().any(|c| c.0 == slot) {
            return Err(self.violate(format!(
                "continue_prefill: slot {named} already has a chunk in this step"
            )));
        }
        match self.inst.prefill_one(slot, self.budget) {
            Ok(n) => {
                self.budget -= n;
                if n > 0 {
                    let id = self.inst.seqs[slot as usize].req.id;
                    self.inst.plan.prefills.push((id, n));
                }
                Ok(n)
            }
            Err(r) => {
                self.preempted = true;
                Err(r)
            }
        }
    }

    /// What the batching policy allows for admission now (the cap on new requests,
    /// the token budget, whether prompts may be split, or a time to be woken).
    pub fn admission(&mut self) -> Admission {
        self.close_decodes();
        let planned =
            self.decode_tokens.unwrap_or(0) + self.inst.chunks.iter().map(|c| c.1).sum::<u64>();
        let view: View = self.inst.view(self.now, planned, self.preempted);
        let a = self.inst.policy.admission(&view);
        if let Admission::Admit { max_new, .. } = a {
            self.admit_cap = max_new;
        }
        a
    }

    /// Admits waiting request `h` with at most `max_tokens` new tokens of its prompt
    /// (bounded by the step's budget too), splitting it only if `chunk`. Returns the
    /// tokens planned.
    pub fn admit(&mut self, h: Handle, max_tokens: u64, chunk: bool) -> Result<u64, Refusal> {
        self.close_decodes();
        let Some(pos) = self.inst.waiting.iter().position(|&s| s == h.0) else {
            let named = self.inst.rank_of(h.0);
            return Err(self.violate(format!("admit: request in slot {named} is not waiting")));
        };
        let lim = self.limits();
        if self.inst.running_count >= lim.max_seqs {
            return Err(Refusal::Seqs);
        }
        let budget = max_tokens.min(self.budget);
        if budget == 0 {
            return Err(Refusal::Budget);
        }
        if chunk && !lim.chunked_prefill {
            return Err(
                self.violate("admit: asked to split a prompt with chunked prefill off".to_string())
            );
        }
        let longest_out = self.longest_out();
        let n = self
            .inst
            .admit_one(h.0, pos, self.now, budget, chunk, longest_out)?;
        if self.budget != u64::MAX {
            self.budget -= n;
        }
        let id = *self
            .inst
            .plan
            .admitted
            .last()
            .expect("admit_one records it");
        self.inst.plan.prefills.push((id, n));
        Ok(n)
    }

    /// A padded static batch reserves KV for its longest member's output: the longest
    /// among the first members of the queue (as many as the admission allows).
    fn longest_out(&mut self) -> u64 {
        if !self.inst.policy.pads_finished() {
            return 0;
        }
        if let Some(l) = self.longest_out {
            return l;
        }
        let l = self
            .inst
            .waiting
            .iter()
            .take(self.admit_cap as usize)
            .map(|&e| self.inst.entry_output_tokens(e))
            .max()
            .unwrap_or(0) as u64;
        self.longest_out = Some(l);
        l
    }

    /// Asks to be planned again at `t` if nothing happens before (a batch timer).
    pub fn wake_at(&mut self, t: SimTime) {
        self.wake = Some(t);
    }
}

impl Instance {
    /// The limits the batching policy sets.
    pub fn limits(&self) -> Limits {
        match self.policy {
            Policy::Sequential => Limits {
                max_seqs: 1,
                max_batched_tokens: u64::MAX,
                chunked_prefill: false,
            },
            Policy::Static { batch_size, .. } => Limits {
                max_seqs: batch_size,
                max_batched_tokens: u64::MAX,
                chunked_prefill: false,
            },
            Policy::Continuous {
                max_num_seqs,
                max_num_batched_tokens,
                chunked_prefill,
                ..
            } => Limits {
                max_seqs: max_num_seqs,
                max_batched_tokens: max_num_batched_tokens as u64,
                chunked_prefill,
            },
        }
    }
}
