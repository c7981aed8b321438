//! One serving instance: a batching policy, a KV-cache pool and the sequences it
//! holds (DESIGN §1).
//!
//! Decodes are tracked **in aggregate**: every decoding sequence advances one token
//! per step, so its context is `base + k` where `k` is the instance's step counter.
//! The instance keeps the sums it needs to price a step (Σ contexts, split at the
//! sliding window), counts of sequences by `context mod block_size` (who needs a new
//! KV block this step), and heaps of the steps at which sequences finish or cross the
//! window. Planning and finishing a step cost O(prefill chunks + events), never
//! O(tokens).

use crate::cost::{CostModel, PrefillChunk, StepCost, StepShape};
use crate::kv::{KvGeometry, KvPool};
use crate::metrics::Recorder;
use crate::policy::{Admission, Policy, View};
use crate::time::SimTime;
use crate::workload::Request;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Prefilling,
    Decoding,
    Padded,
    Free,
}

#[derive(Debug, Clone)]
struct Seq {
    req: Request,
    state: State,
    /// Admission number of the current stay in the running set.
    admit: u64,
    /// Tokens emitted so far (valid outside the decode set).
    generated: u32,
    /// Tokens whose KV is cached (valid outside the decode set).
    computed: u64,
    /// Tokens to compute before the next emission (prompt + generated at admission).
    target: u64,
    /// Layer-blocks held (valid outside the decode set).
    held: u64,
    enqueued: SimTime,
    scheduled: Option<SimTime>,
    first_token: Option<SimTime>,
    last_token: SimTime,
    // Decode-set bookkeeping: context = base + k.
    base: i64,
    k_join: u64,
    gen_join: u32,
    below_window: bool,
}

/// Aggregates over the decode set.
#[derive(Debug, Clone, Default)]
struct DecodeSet {
    n: u64,
    padded: u64,
    sum_base: i64,
    n_below: u64,
    sum_base_below: i64,
    /// Sequences below / past the window by residue `(-base) mod block_size`.
    cnt_below: Vec<u32>,
    cnt_above: Vec<u32>,
    finish: BinaryHeap<Reverse<(u64, u64, u32)>>,
    cross: BinaryHeap<Reverse<(u64, u64, u32)>>,
}

/// Per-instance counters reported in the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceStats {
    /// Steps executed.
    pub steps: u64,
    /// Sequences decoding, summed over steps.
    pub decode_seqs: u64,
    /// Prefill tokens computed, summed over steps (recomputation included).
    pub prefill_tokens: u64,
    /// Requests completed.
    pub served: u64,
    /// Requests preempted (each time).
    pub preemptions: u64,
    /// Longest waiting queue seen.
    pub max_queue: u64,
    /// Seconds the instance had a step in flight.
    pub busy_s: f64,
}

/// A finished request, handed back to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    /// The request.
    pub req: Request,
    /// When its last token came out.
    pub at: SimTime,
}

/// One serving instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Index in the deployment.
    pub id: usize,
    policy: Policy,
    cost: CostModel,
    geo: KvGeometry,
    /// The KV pool.
    pub kv: KvPool,
    seqs: Vec<Seq>,
    free_slots: Vec<u32>,
    waiting: VecDeque<u32>,
    running: Vec<(u32, u64)>,
    running_count: u32,
    partial: Vec<u32>,
    dec: DecodeSet,
    k: u64,
    next_admit: u64,
    chunks: Vec<(u32, u64)>,
    shape: StepShape,
    in_flight: bool,
    step_started: SimTime,
    last_step_end: Option<SimTime>,
    /// Longest prompt + output a sequence may reach.
    max_len: u64,
    /// Outstanding requests (waiting + running), for routers.
    pub outstanding: u64,
    /// Outstanding tokens (prompt + output of outstanding requests), for routers.
    pub outstanding_tokens: u64,
    /// Counters.
    pub stats: InstanceStats,
}

impl Instance {
    /// A new idle instance with a KV pool of `kv_blocks` blocks, serving sequences of
    /// at most `max_len` tokens (prompt + output).
    pub fn new(
        id: usize,
        policy: Policy,
        cost: CostModel,
        geo: KvGeometry,
        kv_blocks: u64,
        max_len: u64,
    ) -> Self {
        let bs = geo.block_size as usize;
        Instance {
            id,
            policy,
            cost,
            geo,
            kv: KvPool::new(kv_blocks, &geo),
            seqs: Vec::new(),
            free_slots: Vec::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            running_count: 0,
            partial: Vec::new(),
            dec: DecodeSet {
                cnt_below: vec![0; bs],
                cnt_above: vec![0; bs],
                ..DecodeSet::default()
            },
            k: 0,
            next_admit: 0,
            chunks: Vec::new(),
            shape: StepShape::default(),
            in_flight: false,
            step_started: SimTime::ZERO,
            last_step_end: None,
            max_len,
            outstanding: 0,
            outstanding_tokens: 0,
            stats: InstanceStats::default(),
        }
    }

    /// Whether a step is executing.
    pub fn busy(&self) -> bool {
        self.in_flight
    }

    /// Whether the instance holds no request at all.
    pub fn is_empty(&self) -> bool {
        self.outstanding == 0
    }

    /// Requests waiting to be admitted.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// Sequences in the running set.
    pub fn running_len(&self) -> u32 {
        self.running_count
    }

    /// The cost model (for `step-time` and tests).
    pub fn cost_model(&self) -> &CostModel {
        &self.cost
    }

    /// Accepts a request from the router.
    pub fn enqueue(&mut self, req: Request, now: SimTime) {
        let seq = Seq {
            req,
            state: State::Waiting,
            admit: 0,
            generated: 0,
            computed: 0,
            target: req.input_tokens as u64,
            held: 0,
            enqueued: now,
            scheduled: None,
            first_token: None,
            last_token: now,
            base: 0,
            k_join: 0,
            gen_join: 0,
            below_window: true,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.seqs[s as usize] = seq;
                s
            }
            None => {
                self.seqs.push(seq);
                (self.seqs.len() - 1) as u32
            }
        };
        self.waiting.push_back(slot);
        self.outstanding += 1;
        self.outstanding_tokens += req.input_tokens as u64 + req.output_tokens as u64;
        self.stats.max_queue = self.stats.max_queue.max(self.waiting.len() as u64);
    }

    // ---- decode set -------------------------------------------------------------

    fn residue(&self, base: i64) -> usize {
        (-base).rem_euclid(self.geo.block_size as i64) as usize
    }

    /// Puts `slot` (with `computed` tokens cached, `generated` emitted) into the decode
    /// set at the current counter.
    fn dec_insert(&mut self, slot: u32) {
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
            let k_cross = (self.geo.window as i64 - base) as u64;
            d.cross.push(Reverse((k_cross, admit, slot)));
        } else {
            d.cnt_above[r] += 1;
        }
        d.finish.push(Reverse((k_fin, admit, slot)));
    }

    /// Takes `slot` out of the decode set, writing its current state back.
    fn dec_remove(&mut self, slot: u32) {
        let k = self.k;
        let r = self.residue(self.seqs[slot as usize].base);
        let s = &mut self.seqs[slot as usize];
        let ctx = (s.base + k as i64) as u64;
        s.computed = ctx;
        s.generated = s.gen_join + (k - s.k_join) as u32;
        if !self.policy.reserves_whole_batch() {
            // Continuous batching grows blocks on demand; static batches reserved all.
            s.held = self.geo.blocks_for(ctx);
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
    fn process_window_crossings(&mut self) {
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

    // ---- running list -----------------------------------------------------------

    fn is_running(&self, entry: (u32, u64)) -> bool {
        let s = &self.seqs[entry.0 as usize];
        s.admit == entry.1 && matches!(s.state, State::Prefilling | State::Decoding | State::Padded)
    }

    fn push_running(&mut self, slot: u32) {
        let admit = self.next_admit;
        self.next_admit += 1;
        self.seqs[slot as usize].admit = admit;
        self.running.push((slot, admit));
        self.running_count += 1;
    }

    /// Drops tombstones when they outnumber live entries.
    fn compact_running(&mut self) {
        if self.running.len() > 64 && self.running.len() > 2 * self.running_count as usize {
            let mut v = std::mem::take(&mut self.running);
            v.retain(|&e| self.is_running(e));
            self.running = v;
        }
    }

    /// Preempts the most recently admitted running sequence (vLLM V1: recompute).
    /// Returns its slot.
    fn preempt_tail(&mut self) -> Option<u32> {
        while let Some(e) = self.running.pop() {
            if !self.is_running(e) {
                continue;
            }
            let slot = e.0;
            match self.seqs[slot as usize].state {
                State::Decoding | State::Padded => self.dec_remove(slot),
                State::Prefilling => self.partial.retain(|&p| p != slot),
                _ => unreachable!(
                    "running entry in state {:?}",
                    self.seqs[slot as usize].state
                ),
            }
            let s = &mut self.seqs[slot as usize];
            let held = s.held;
            s.held = 0;
            s.computed = 0;
            s.target = s.req.input_tokens as u64 + s.generated as u64;
            s.state = State::Waiting;
            self.kv.release(held);
            self.running_count -= 1;
            self.waiting.push_front(slot);
            self.stats.preemptions += 1;
            return Some(slot);
        }
        None
    }

    // ---- planning ---------------------------------------------------------------

    /// Plans the next step at `now`. Returns the priced step, or `None` if there is
    /// nothing to run; in that case `wake_at` may say when to ask again (a batch timer).
    pub fn plan_step(&mut self, now: SimTime, wake_at: &mut Option<SimTime>) -> Option<StepCost> {
        debug_assert!(!self.in_flight);
        *wake_at = None;
        self.process_window_crossings();
        self.chunks.clear();
        let mut preempted = false;

        // 1. Decodes: who needs a new block this step.
        let r = (self.k % self.geo.block_size) as usize;
        let reserve = self.policy.reserves_whole_batch();
        // Static batches reserved their blocks at admission.
        let mut grow = !reserve;
        while grow {
            let need = self.dec.cnt_below[r] as u64 * self.geo.growth(true)
                + self.dec.cnt_above[r] as u64 * self.geo.growth(false);
            if self.kv.try_alloc(need) {
                grow = false;
                continue;
            }
            preempted = true;
            if self.preempt_tail().is_none() {
                break;
            }
        }
        let decode_tokens = self.dec.n;

        // 2. Running prefills (they sit at the tail of the running order).
        let mut budget = match self.policy {
            Policy::Continuous {
                max_num_batched_tokens,
                ..
            } => (max_num_batched_tokens as u64).saturating_sub(decode_tokens),
            _ => u64::MAX,
        };
        let mut i = 0;
        while i < self.partial.len() {
            let slot = self.partial[i];
            let s = &self.seqs[slot as usize];
            let new = (s.target - s.computed).min(budget);
            if new == 0 {
                break;
            }
            let need = self.geo.blocks_for(s.computed + new) - s.held;
            if self.kv.try_alloc(need) {
                self.seqs[slot as usize].held += need;
                self.chunks.push((slot, new));
                budget -= new;
                i += 1;
            } else {
                preempted = true;
                match self.preempt_tail() {
                    Some(p) if p == slot => break,
                    Some(_) => continue,
                    None => break,
                }
            }
        }

        // 3. Admission of waiting requests, as the policy allows.
        let planned: u64 = decode_tokens + self.chunks.iter().map(|c| c.1).sum::<u64>();
        let view = View {
            now,
            running: self.running_count,
            waiting: self.waiting.len() as u32,
            oldest_wait_since: self
                .waiting
                .front()
                .map(|&s| self.seqs[s as usize].enqueued),
            planned_tokens: planned,
            preempted,
        };
        match self.policy.admission(&view) {
            Admission::Admit {
                max_new,
                token_budget,
                chunk,
            } => self.admit(now, max_new, token_budget, chunk),
            Admission::WaitUntil(t) => *wake_at = Some(t),
            Admission::No => {}
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
        self.shape.decodes = self.dec.n;
        self.shape.decode_ctx_full = (self.dec.sum_base + (self.dec.n * k1) as i64) as u64;
        let window = self.geo.window;
        let n_above = self.dec.n - self.dec.n_below;
        self.shape.decode_ctx_window = if self.geo.window_layers == 0 {
            0
        } else {
            (self.dec.sum_base_below + (self.dec.n_below * k1) as i64) as u64 + n_above * window
        };
        self.shape.emitting = emitting;
        self.in_flight = true;
        self.step_started = now;
        self.stats.steps += 1;
        self.stats.decode_seqs += self.shape.decodes;
        self.stats.prefill_tokens += self.shape.prefills.iter().map(|p| p.new).sum::<u64>();
        Some(self.cost.price(&self.shape))
    }

    fn admit(&mut self, now: SimTime, max_new: u32, mut budget: u64, chunk: bool) {
        let reserve = self.policy.reserves_whole_batch();
        let mut admitted = 0;
        // A static batch reserves KV for each member's whole length, so it never
        // preempts; padded members keep growing until the batch's longest output is
        // done (capped at the model length).
        let longest_out = if self.policy.pads_finished() {
            self.waiting
                .iter()
                .take(max_new as usize)
                .map(|&s| self.seqs[s as usize].req.output_tokens)
                .max()
                .unwrap_or(0) as u64
        } else {
            0
        };
        while admitted < max_new && budget > 0 {
            let Some(&slot) = self.waiting.front() else {
                break;
            };
            let s = &self.seqs[slot as usize];
            let remaining = s.target - s.computed;
            if remaining > budget && !chunk {
                break;
            }
            let new = remaining.min(budget);
            let need = if reserve {
                let out = (s.req.output_tokens as u64).max(longest_out);
                self.geo
                    .blocks_for((s.req.input_tokens as u64 + out).min(self.max_len))
            } else {
                self.geo.blocks_for(s.computed + new) - s.held
            };
            if !self.kv.try_alloc(need) {
                break;
            }
            self.waiting.pop_front();
            let s = &mut self.seqs[slot as usize];
            s.held += need;
            s.state = State::Prefilling;
            s.scheduled.get_or_insert(now);
            self.push_running(slot);
            self.partial.push(slot);
            self.chunks.push((slot, new));
            budget -= new;
            admitted += 1;
        }
    }

    // ---- finishing --------------------------------------------------------------

    /// Finishes the step in flight at `now`: emits tokens, completes requests.
    /// Finished requests are appended to `done`.
    pub fn finish_step(&mut self, now: SimTime, rec: &mut Recorder, done: &mut Vec<Finished>) {
        debug_assert!(self.in_flight);
        self.in_flight = false;
        self.stats.busy_s += (now - self.step_started).as_secs_f64();
        self.k += 1;
        let k = self.k;
        let pads = self.policy.pads_finished();

        // Tokens from decodes: one per unpadded decoding sequence, all at `now`.
        let emitted = self.dec.n - self.dec.padded;
        if emitted > 0 {
            if let Some(prev) = self.last_step_end {
                rec.itl(now, now - prev, emitted);
            }
        }
        rec.tokens(emitted);

        // Completions among decodes.
        while let Some(&Reverse((kf, admit, slot))) = self.dec.finish.peek() {
            if kf > k {
                break;
            }
            self.dec.finish.pop();
            let s = &self.seqs[slot as usize];
            if s.admit != admit || s.state != State::Decoding {
                continue;
            }
            if pads {
                self.seqs[slot as usize].state = State::Padded;
                self.dec.padded += 1;
                let s = &self.seqs[slot as usize];
                done.push(self.complete(slot, s.req, now, rec));
            } else {
                self.dec_remove(slot);
                done.push(self.retire(slot, now, rec));
            }
        }

        // Prefill chunks.
        let chunks = std::mem::take(&mut self.chunks);
        for &(slot, new) in &chunks {
            let s = &mut self.seqs[slot as usize];
            s.computed += new;
            if s.computed < s.target {
                continue;
            }
            self.partial.retain(|&p| p != slot);
            let s = &mut self.seqs[slot as usize];
            s.generated += 1;
            rec.tokens(1);
            match s.first_token {
                None => s.first_token = Some(now),
                Some(_) => rec.itl(now, now - s.last_token, 1),
            }
            s.last_token = now;
            if s.generated >= s.req.output_tokens {
                if pads {
                    // Keep it in the batch, computing padding, until the batch ends.
                    let req = s.req;
                    self.dec_insert(slot);
                    self.seqs[slot as usize].state = State::Padded;
                    self.dec.padded += 1;
                    done.push(self.complete(slot, req, now, rec));
                } else {
                    done.push(self.retire(slot, now, rec));
                }
            } else {
                self.dec_insert(slot);
            }
        }
        self.chunks = chunks;
        self.chunks.clear();

        // A padded static batch ends when every member is done.
        if pads && self.dec.n > 0 && self.dec.padded == self.dec.n && self.partial.is_empty() {
            let members: Vec<(u32, u64)> = self.running.drain(..).collect();
            for e in members {
                if self.is_running(e) {
                    self.dec_remove(e.0);
                    self.release_slot(e.0);
                }
            }
        }
        self.compact_running();
        self.last_step_end = Some(now);
    }

    /// Records a completed request's metrics and updates router counters.
    fn complete(&mut self, slot: u32, req: Request, now: SimTime, rec: &mut Recorder) -> Finished {
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
    fn retire(&mut self, slot: u32, now: SimTime, rec: &mut Recorder) -> Finished {
        let req = self.seqs[slot as usize].req;
        let f = self.complete(slot, req, now, rec);
        self.release_slot(slot);
        f
    }

    fn release_slot(&mut self, slot: u32) {
        let s = &mut self.seqs[slot as usize];
        let held = s.held;
        s.held = 0;
        s.state = State::Free;
        self.kv.release(held);
        self.running_count -= 1;
        self.free_slots.push(slot);
    }

    /// Checks the aggregate bookkeeping against a recount over every sequence
    /// (O(sequences); for tests and debug builds).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut held = 0;
        let mut n_dec = 0;
        let mut running = 0;
        for s in &self.seqs {
            match s.state {
                State::Decoding | State::Padded => {
                    let ctx = (s.base + self.k as i64) as u64;
                    held += if self.policy.reserves_whole_batch() {
                        s.held
                    } else {
                        self.geo.blocks_for(ctx)
                    };
                    n_dec += 1;
                    running += 1;
                }
                State::Prefilling => {
                    held += s.held;
                    running += 1;
                }
                _ => {}
            }
        }
        if held != self.kv.used {
            return Err(format!(
                "KV in use {} but sequences hold {held}",
                self.kv.used
            ));
        }
        if self.kv.used > self.kv.capacity {
            return Err(format!(
                "KV {} over capacity {}",
                self.kv.used, self.kv.capacity
            ));
        }
        if n_dec != self.dec.n {
            return Err(format!("decode set {} but {n_dec} decoding", self.dec.n));
        }
        if running != self.running_count as u64 {
            return Err(format!(
                "running {} but {running} counted",
                self.running_count
            ));
        }
        Ok(())
    }
}
