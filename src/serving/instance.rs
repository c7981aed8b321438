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
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

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
    /// Holds a reference to its prompt's shared prefix blocks (which it then does
    /// not count in `held`).
    attached: bool,
    /// Blocks it released when preempted, possibly still cached.
    cached_own: Option<CachedOwn>,
    /// Layer-blocks, right after its prompt's shared blocks, that it references in
    /// `lender`'s KV instead of holding its own (identical outputs: a resumed request
    /// finds its context in a sibling's blocks). Not counted in `held`.
    borrowed: u64,
    /// The sequence whose blocks it borrows ([`NO_SLOT`] if none).
    lender: u32,
}

/// No sequence.
const NO_SLOT: u32 = u32::MAX;

/// What a preempted sequence left in the prefix cache.
#[derive(Debug, Clone, Copy)]
struct CachedOwn {
    /// Free-queue position where its blocks were released.
    at: u64,
    /// Layer-blocks released.
    layer_blocks: u64,
    /// Full blocks of its own (reusable on resume).
    full_blocks: u64,
    /// Shared prompt blocks that precede them (0 if it held none).
    after_group: u64,
}

/// The shared, cacheable prefix of one prompt of the workload's prompt pool.
#[derive(Debug, Clone, Copy, Default)]
struct PrefixGroup {
    /// Full blocks of the prompt that later requests can reuse.
    blocks: u64,
    /// Running requests holding it.
    refs: u32,
    /// Whether it is in use (counted in the pool's `used`).
    held: bool,
    /// Free-queue position where it was released when its last user left.
    cached_at: Option<u64>,
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
    /// Prompt (and recomputed) tokens not computed thanks to the prefix cache.
    pub prefix_hit_tokens: u64,
    /// Requests completed.
    pub served: u64,
    /// Requests preempted (each time).
    pub preemptions: u64,
    /// Resumed requests that found their context in a sibling's blocks (identical
    /// outputs).
    pub sibling_hits: u64,
    /// Longest waiting queue seen.
    pub max_queue: u64,
    /// Seconds the instance had a step in flight.
    pub busy_s: f64,
}

/// What [`Instance::fast_forward`] ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    /// Steps run.
    pub steps: u64,
    /// When the last of them ended (the start time if none ran).
    pub end: SimTime,
    /// GPU time of those steps.
    pub gpu_busy: crate::time::Dur,
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
    /// Whether the prefix cache is modelled (continuous policy with it on, and a
    /// model without sliding-window layers).
    pc: bool,
    groups: Vec<PrefixGroup>,
    /// Whether requests with the same prompt produce the same tokens (greedy
    /// sampling), so the prefix cache also holds their generated tokens.
    identical_outputs: bool,
    /// Per prompt: decoding sequences attached to it that borrow nothing, by
    /// (base, slot): the possible lenders, the one with the longest context last.
    lenders: Vec<BTreeSet<(i64, u32)>>,
    /// Per lender: the sequences borrowing its blocks.
    lent_to: BTreeMap<u32, Vec<u32>>,
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
        let pc = policy.prefix_caching() && geo.window_layers == 0;
        let mut inst = Instance {
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
            pc: false,
            groups: Vec::new(),
            identical_outputs: false,
            lenders: Vec::new(),
            lent_to: BTreeMap::new(),
            outstanding: 0,
            outstanding_tokens: 0,
            stats: InstanceStats::default(),
        };
        inst.pc = pc;
        inst
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

    /// Fraction of the KV pool in use (0 to 1). A load signal for routers.
    pub fn kv_used_fraction(&self) -> f64 {
        self.kv.used as f64 / self.kv.capacity.max(1) as f64
    }

    /// The cost model (for `step-time` and tests).
    pub fn cost_model(&self) -> &CostModel {
        &self.cost
    }

    /// Counts a request the router sent here (it may still be in transit).
    pub fn note_routed(&mut self, req: &Request) {
        self.outstanding += 1;
        self.outstanding_tokens += req.input_tokens as u64 + req.output_tokens as u64;
    }

    /// Accepts a request from the router (after [`Instance::note_routed`]).
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
            attached: false,
            cached_own: None,
            borrowed: 0,
            lender: NO_SLOT,
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
        self.stats.max_queue = self.stats.max_queue.max(self.waiting.len() as u64);
    }

    /// Declares whether requests with the same prompt produce the same tokens
    /// (greedy sampling): a resumed request then finds its generated tokens in a
    /// sibling's blocks. Only with the prefix cache modelled; set before any request.
    pub fn set_identical_outputs(&mut self, on: bool) {
        self.identical_outputs = on && self.pc;
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
            if self.geo.window_layers > 0 {
                // Only a model with a window has a crossing to wait for.
                let k_cross = (self.geo.window as i64 - base) as u64;
                d.cross.push(Reverse((k_cross, admit, slot)));
            }
        } else {
            d.cnt_above[r] += 1;
        }
        d.finish.push(Reverse((k_fin, admit, slot)));
        self.lender_insert(slot);
    }

    /// Registers a decoding sequence as a possible lender of its prompt's context.
    fn lender_insert(&mut self, slot: u32) {
        let s = &self.seqs[slot as usize];
        if !self.identical_outputs || !s.attached || s.lender != NO_SLOT {
            return;
        }
        let (g, base) = (s.req.prefix.expect("attached") as usize, s.base);
        if self.lenders.len() <= g {
            self.lenders.resize(g + 1, BTreeSet::new());
        }
        self.lenders[g].insert((base, slot));
    }

    /// Takes `slot` out of the decode set, writing its current state back.
    fn dec_remove(&mut self, slot: u32) {
        let k = self.k;
        let r = self.residue(self.seqs[slot as usize].base);
        let shared = self.shared_lb(slot);
        let reserve = self.policy.reserves_whole_batch();
        if let Some(g) = self.seqs[slot as usize].req.prefix {
            if let Some(set) = self.lenders.get_mut(g as usize) {
                set.remove(&(self.seqs[slot as usize].base, slot));
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

    // ---- prefix cache -----------------------------------------------------------

    /// Layer-blocks of the shared prompt prefix that `slot` references (and so does
    /// not count in its own `held`).
    fn shared_lb(&self, slot: u32) -> u64 {
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
    fn sibling_hit(&self, slot: u32, group: u64) -> Option<(u32, u64)> {
        let s = &self.seqs[slot as usize];
        if !self.identical_outputs || group == 0 || s.generated == 0 {
            return None;
        }
        let &(base, lender) = self.lenders.get(s.req.prefix? as usize)?.last()?;
        let bs = self.geo.block_size;
        let full = (base + self.k as i64) as u64 / bs;
        let blocks = full.min((s.target - 1) / bs).saturating_sub(group);
        (blocks > 0).then_some((lender, blocks))
    }

    /// Ends `slot`'s borrowing and lending before it releases its blocks; returns
    /// the layer-blocks of its own that others still reference (they pass to the
    /// borrower that references the most, which lends them on to the others).
    fn settle_loans(&mut self, slot: u32) -> u64 {
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
        // The new owner: most blocks borrowed, then lowest slot.
        let heir = *borrowers
            .iter()
            .max_by_key(|&&b| (self.seqs[b as usize].borrowed, std::cmp::Reverse(b)))
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

    fn group(&mut self, g: u32) -> &mut PrefixGroup {
        let g = g as usize;
        if self.groups.len() <= g {
            self.groups.resize(g + 1, PrefixGroup::default());
        }
        &mut self.groups[g]
    }

    /// Drops `slot`'s reference to its prompt's shared blocks; the last user leaves
    /// them in the free queue, still cached.
    fn detach(&mut self, slot: u32) {
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
    fn cache_hit(&self, slot: u32) -> (u64, bool, u64) {
        let s = &self.seqs[slot as usize];
        let layers = self.geo.layers();
        let (mut group, mut from_free) = (0, false);
        if let Some(g) = s.req.prefix {
            if let Some(grp) = self.groups.get(g as usize) {
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
        let cap = (s.target - 1) / self.geo.block_size;
        let own = own.min(cap.saturating_sub(group));
        (group.min(cap), from_free, own)
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
    /// Returns its slot. With the prefix cache its full blocks stay cached in the
    /// free queue until evicted.
    fn preempt_tail(&mut self) -> Option<u32> {
        while let Some(e) = self.running.pop() {
            if !self.is_running(e) {
                continue;
            }
            let slot = e.0;
            match self.seqs[slot as usize].state {
                State::Decoding | State::Padded => {
                    self.dec_remove(slot);
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
            let shared_blocks = self.shared_lb(slot) / self.geo.layers().max(1);
            let lent = self.settle_loans(slot);
            let at = self.kv.appended;
            let bs = self.geo.block_size;
            // Blocks it lent stay in use, with their new owner; it resumes from a
            // sibling's blocks instead.
            let pc = self.pc && lent == 0;
            let s = &mut self.seqs[slot as usize];
            let held = s.held - lent;
            s.cached_own = pc.then(|| CachedOwn {
                at,
                layer_blocks: held,
                full_blocks: (s.computed / bs).saturating_sub(shared_blocks),
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
            let need = self.geo.blocks_for(s.computed + new) - s.held - self.shared_lb(slot);
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
        let view = self.view(now, planned, preempted);
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
        self.set_decode_shape(k1);
        self.shape.emitting = emitting;
        self.in_flight = true;
        self.step_started = now;
        self.stats.steps += 1;
        self.stats.decode_seqs += self.shape.decodes;
        self.stats.prefill_tokens += self.shape.prefills.iter().map(|p| p.new).sum::<u64>();
        Some(self.cost.price(&self.shape))
    }

    /// What the policy sees when it decides on admission.
    fn view(&self, now: SimTime, planned_tokens: u64, preempted: bool) -> View {
        View {
            now,
            running: self.running_count,
            waiting: self.waiting.len() as u32,
            oldest_wait_since: self
                .waiting
                .front()
                .map(|&s| self.seqs[s as usize].enqueued),
            planned_tokens,
            preempted,
        }
    }

    /// Sets the decode part of the step shape for a step that ends at counter `k1`.
    fn set_decode_shape(&mut self, k1: u64) {
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

    /// Whether the policy could admit a waiting request at some step before the
    /// decode set changes: never when nothing waits, nor when the policy refuses for a
    /// reason that lasts while the running set is unchanged (a static batch in
    /// progress, `max_num_seqs` reached, the token budget used up by decodes).
    fn may_admit_during_decodes(&self, now: SimTime) -> bool {
        if self.waiting.is_empty() {
            return false;
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
    /// Each step is priced as [`CostModel::price`] prices it (its fixed part once,
    /// then [`CostModel::price_decodes`] for the step's context sums), its time
    /// rounded by [`StepCost::exclusive_durations`] as a planned step's is, and its
    /// tokens recorded in the same order, so the results are identical to planning
    /// the steps one by one, to the nanosecond; only the bookkeeping of planning
    /// (heaps, admission, the event queue) is skipped.
    pub fn fast_forward(&mut self, now: SimTime, limit: SimTime, rec: &mut Recorder) -> Stretch {
        let mut out = Stretch {
            steps: 0,
            end: now,
            gpu_busy: crate::time::Dur::ZERO,
        };
        if self.in_flight
            || self.dec.n == 0
            || !self.partial.is_empty()
            || self.may_admit_during_decodes(now)
        {
            return out;
        }
        // Steps before the first completion and the first window crossing.
        let next_finish = self.dec.finish.peek().map_or(u64::MAX, |r| r.0 .0);
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
        let (serial, _, overlapped) = self.cost.price_decodes(&fixed, 0, 0).exclusive_durations();
        // Context sums grow by one token per sequence per step (below the window
        // only for window layers: no crossing happens inside the stretch).
        let (mut ctx_full, mut ctx_window) =
            (self.shape.decode_ctx_full, self.shape.decode_ctx_window);
        let window_growth = if self.geo.window_layers == 0 {
            0
        } else {
            self.dec.n_below
        };
        let mut r = (self.k % bs) as usize;
        // A step that starts at counter k ends at k + 1: it must not reach a finish
        // (k + 1 < next_finish) nor start at a crossing (k < next_cross).
        while self.k + 1 < next_finish && self.k < next_cross {
            let k1 = self.k + 1;
            let cost = self.cost.price_decodes(&fixed, ctx_full, ctx_window);
            let gpu = cost.gpu_duration();
            let end = t + serial + gpu.max(overlapped);
            if end >= limit {
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

    fn admit(&mut self, now: SimTime, max_new: u32, mut budget: u64, chunk: bool) {
        let reserve = self.policy.reserves_whole_batch();
        let layers = self.geo.layers();
        let bs = self.geo.block_size;
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
                break;
            }
            let new = remaining.min(budget);
            let taken_back = (if from_free { group * layers } else { 0 }) + own * layers;
            let need = if reserve {
                let out = (s.req.output_tokens as u64).max(longest_out);
                self.geo
                    .blocks_for((s.req.input_tokens as u64 + out).min(self.max_len))
            } else {
                self.geo.blocks_for(start + new) - s.held - (group + own + borrow) * layers
            };
            if need + taken_back > self.kv.free() {
                break;
            }
            self.kv.reacquire(taken_back);
            let ok = self.kv.try_alloc(need);
            debug_assert!(ok);
            self.waiting.pop_front();
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
            self.stats.prefix_hit_tokens += hit;
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
            self.share_prompt(slot);
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

    /// With the prefix cache, the first request of a prompt to finish its prefill
    /// hands the prompt's full blocks to the prompt's shared group, for later
    /// requests with the same prompt to reuse.
    fn share_prompt(&mut self, slot: u32) {
        let s = &self.seqs[slot as usize];
        let Some(g) = s.req.prefix else { return };
        if !self.pc || s.attached {
            return;
        }
        let blocks = (s.req.input_tokens as u64).saturating_sub(1) / self.geo.block_size;
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
        let lent = self.settle_loans(slot);
        let s = &mut self.seqs[slot as usize];
        let held = s.held - lent;
        s.held = 0;
        s.state = State::Free;
        s.cached_own = None;
        self.kv.release(held);
        self.detach(slot);
        self.running_count -= 1;
        self.free_slots.push(slot);
    }

    /// Tokens whose KV `s` holds: derived from the counter in the decode set, kept in
    /// `computed` outside it.
    fn context(&self, s: &Seq) -> u64 {
        match s.state {
            State::Decoding | State::Padded => (s.base + self.k as i64) as u64,
            _ => s.computed,
        }
    }

    /// Checks that every loan of blocks links two running sequences of the same
    /// prompt, both ways, and lends no more than the lender's own full blocks.
    fn check_loans(&self) -> Result<(), String> {
        let live = |s: &Seq| matches!(s.state, State::Decoding | State::Padded | State::Prefilling);
        let mut loans = 0;
        for (slot, s) in self.seqs.iter().enumerate() {
            if s.lender == NO_SLOT {
                if s.borrowed != 0 {
                    return Err(format!(
                        "sequence {slot} borrows {} without a lender",
                        s.borrowed
                    ));
                }
                continue;
            }
            loans += 1;
            let l = &self.seqs[s.lender as usize];
            let listed = self
                .lent_to
                .get(&s.lender)
                .is_some_and(|v| v.contains(&(slot as u32)));
            if !live(s) || !live(l) || l.lender != NO_SLOT || !listed {
                return Err(format!("sequence {slot}: broken loan from {}", s.lender));
            }
            if !(s.attached && l.attached && s.req.prefix == l.req.prefix) {
                return Err(format!(
                    "sequence {slot} borrows from another prompt's sequence"
                ));
            }
            let group = self.groups[l.req.prefix.unwrap_or(0) as usize].blocks;
            let own_full =
                (self.context(l) / self.geo.block_size).saturating_sub(group) * self.geo.layers();
            if s.borrowed > own_full {
                return Err(format!(
                    "sequence {slot} borrows {} layer-blocks, its lender has {own_full}",
                    s.borrowed
                ));
            }
        }
        let listed: usize = self.lent_to.values().map(Vec::len).sum();
        if listed != loans {
            return Err(format!("{listed} loans listed, {loans} held"));
        }
        Ok(())
    }

    /// Checks the aggregate bookkeeping against a recount over every sequence
    /// (O(sequences); for tests and debug builds).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut held = 0;
        let mut n_dec = 0;
        let mut running = 0;
        for (slot, s) in self.seqs.iter().enumerate() {
            match s.state {
                State::Decoding | State::Padded => {
                    held += if self.policy.reserves_whole_batch() {
                        s.held
                    } else {
                        self.geo.blocks_for(self.context(s)) - self.shared_lb(slot as u32)
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
        let mut refs = vec![0u32; self.groups.len()];
        for s in &self.seqs {
            if s.attached && matches!(s.state, State::Decoding | State::Padded | State::Prefilling)
            {
                refs[s.req.prefix.unwrap_or(0) as usize] += 1;
            }
        }
        for (g, grp) in self.groups.iter().enumerate() {
            if grp.held {
                held += grp.blocks * self.geo.layers();
            }
            if grp.refs != refs[g] || grp.held != (grp.refs > 0) {
                return Err(format!(
                    "prompt {g}: {} references counted, {} held",
                    grp.refs, refs[g]
                ));
            }
        }
        self.check_loans()?;
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
