//! One serving instance: a batching policy, a KV-cache pool and the sequences it
//! holds (DESIGN §1).
//!
//! Decodes are tracked **in aggregate**: every decoding sequence advances one token
//! per step, so its context is `base + k` where `k` is the instance's step counter.
//! The instance keeps the sums it needs to price a step (Σ contexts, split at the
//! sliding window), counts of sequences by `context mod block_size` (who needs a new
//! KV block this step), the steps at which sequences finish (a timing wheel,
//! `wheel.rs`) and a heap of those at which they cross the window. Planning and
//! finishing a step cost O(prefill chunks + events), never O(tokens).

use crate::cost::{CostModel, StepShape};
use crate::kv::{KvGeometry, KvPool};
use crate::policy::{fcfs::Fcfs, Policy, Scheduler, StepPlan, Victim};
use crate::stacks::StackSemantics;
use crate::time::SimTime;
use crate::workload::Request;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

pub use abort::Aborted;

mod abort;
pub mod builder;
mod decode;
mod fast_forward;
mod invariants;
mod multi_step;
mod prefix;
mod step;
#[cfg(test)]
mod tests;
mod waiter;
mod wheel;

use waiter::{Waiter, REC};

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
    /// Its rank (`waiter.rs`): the number ties between sequences are broken by.
    rank: u32,
}

impl Seq {
    /// A request that reached the instance at `enqueued`, before any admission.
    fn new(req: Request, enqueued: SimTime, rank: u32) -> Seq {
        Seq {
            req,
            state: State::Waiting,
            admit: 0,
            generated: 0,
            computed: 0,
            target: req.input_tokens as u64,
            held: 0,
            enqueued,
            scheduled: None,
            first_token: None,
            last_token: enqueued,
            base: 0,
            k_join: 0,
            gen_join: 0,
            below_window: true,
            attached: false,
            cached_own: None,
            borrowed: 0,
            lender: NO_SLOT,
            rank,
        }
    }
}

/// No sequence.
const NO_SLOT: u32 = u32::MAX;

/// A request that finds fewer than this many requests waiting waits as its sequence
/// slot, built at once, rather than as a record: it is admitted soon, and packing it
/// to unpack it a few steps later costs more than the bytes save (continuous-90pct,
/// whose queue peaks at 17, ran 2.6 % more instructions with every new request a
/// record). A long queue's requests beyond the first `SHORT_QUEUE` are records, so
/// it takes at most `SHORT_QUEUE` slots more than records would.
const SHORT_QUEUE: usize = 32;

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
    finish: wheel::StepWheel,
    /// The finish entries taken at a step's end (kept for its capacity).
    due: Vec<wheel::Entry>,
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
#[derive(Debug)]
pub struct Instance {
    /// Index in the deployment.
    pub id: usize,
    policy: Policy,
    cost: CostModel,
    geo: KvGeometry,
    /// The KV pool.
    pub kv: KvPool,
    /// Sequences: admitted requests, and preempted ones waiting to resume.
    seqs: Vec<Seq>,
    free_slots: Vec<u32>,
    /// Requests never admitted, waiting, by rank (`waiter.rs`); unused records are
    /// not live.
    recs: Vec<Waiter>,
    /// Ranks free for the next request, the last freed first.
    free_ranks: Vec<u32>,
    /// Records admitted in the step being planned: (rank, sequence slot), so that
    /// their handles stay valid for the step.
    admitted_recs: Vec<(u32, u32)>,
    /// The waiting queue: sequence slots, and ranks of records marked with [`REC`].
    waiting: VecDeque<u32>,
    /// Queue length below which a new request waits as its sequence rather than a
    /// record ([`SHORT_QUEUE`]; tests set 0 to make every new request a record).
    short_queue: usize,
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
    /// Length of the last decode step [`Instance::fast_forward`] priced and could not
    /// run because it reached the next event: a stretch is not tried again while the
    /// gap to the next event is no longer (see there).
    ff_short: crate::time::Dur,
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
    /// (base, rank, slot): the possible lenders, the one with the longest context
    /// (then the highest rank) last.
    lenders: Vec<BTreeSet<(i64, u32, u32)>>,
    /// Per lender: the sequences borrowing its blocks.
    lent_to: BTreeMap<u32, Vec<u32>>,
    /// Outstanding requests (waiting + running), for routers.
    pub outstanding: u64,
    /// Outstanding tokens (prompt + output of outstanding requests), for routers.
    pub outstanding_tokens: u64,
    /// Counters.
    pub stats: InstanceStats,
    /// The step scheduler (taken out while it plans a step).
    sched: Option<Box<dyn Scheduler>>,
    /// What the scheduler decided for the step in flight (or the last one).
    plan: StepPlan,
    /// The first operation a scheduler got wrong (a request in the wrong state).
    policy_error: Option<String>,
    /// Whether output tokens are counted per tenant (for the scheduler).
    track_tenants: bool,
    /// Per tenant: sequences in the decode set.
    tenant_dec: Vec<u64>,
    /// Per tenant: output tokens emitted.
    tenant_out: Vec<u64>,
    /// Whether the decodes got their blocks for the step being planned.
    grown_this_step: bool,
    /// Multi-step scheduling, CUDA-graph padding, async scheduling (`stacks.rs`).
    stack: StackSemantics,
    /// `stack.is_plain()`, asked every step (kept since `stack` is set once).
    plain_stack: bool,
    /// Steps left in the multi-step block after the step in flight (0: the next
    /// step boundary calls the scheduler).
    block_left: u32,
    /// Outputs of the running block held back for its end
    /// (`multi_step_stream_outputs = false`, `multi_step.rs`).
    held: Option<multi_step::HeldOutputs>,
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
            recs: Vec::new(),
            free_ranks: Vec::new(),
            admitted_recs: Vec::new(),
            short_queue: SHORT_QUEUE,
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
            ff_short: crate::time::Dur::ZERO,
            max_len,
            pc: false,
            groups: Vec::new(),
            identical_outputs: false,
            lenders: Vec::new(),
            lent_to: BTreeMap::new(),
            outstanding: 0,
            outstanding_tokens: 0,
            stats: InstanceStats::default(),
            sched: Some(Box::new(Fcfs {
                victim: Victim::Newest,
            })),
            plan: StepPlan::default(),
            policy_error: None,
            track_tenants: false,
            tenant_dec: Vec::new(),
            tenant_out: Vec::new(),
            grown_this_step: false,
            stack: StackSemantics::default(),
            plain_stack: true,
            block_left: 0,
            held: None,
        };
        inst.pc = pc;
        inst
    }

    /// Replaces the step scheduler (FCFS with the newest request as preemption victim
    /// by default). Set before any request arrives.
    pub fn set_scheduler(&mut self, sched: Box<dyn Scheduler>) {
        self.track_tenants = sched.tracks_tenants();
        self.sched = Some(sched);
    }

    /// Sets the stack's scheduler semantics (multi-step blocks, CUDA-graph padding,
    /// async scheduling; the plain stack's by default). Set before any request. They
    /// belong to continuous batching: with another policy they are ignored.
    pub fn set_stack_semantics(&mut self, stack: StackSemantics) {
        if matches!(self.policy, Policy::Continuous { .. }) {
            self.plain_stack = stack.is_plain();
            self.stack = stack;
        }
    }

    /// The scheduler's name.
    pub fn scheduler_name(&self) -> &str {
        self.sched.as_ref().map_or("", |s| s.name())
    }

    /// What the scheduler decided for the step in flight (or the last one planned).
    pub fn last_plan(&self) -> &StepPlan {
        &self.plan
    }

    /// The first error the scheduler made (an operation on a request in the wrong
    /// state), if any: the run reports it.
    pub fn policy_error(&self) -> Option<&str> {
        self.policy_error.as_deref()
    }

    /// Output tokens emitted for `tenant` (counted when the scheduler tracks tenants).
    pub fn tenant_output_tokens(&self, tenant: u32) -> u64 {
        self.tenant_out.get(tenant as usize).copied().unwrap_or(0)
    }

    /// Counts `n` output tokens for `tenant` (when tenants are tracked).
    fn tenant_emit(&mut self, tenant: u32, n: u64) {
        if self.track_tenants {
            let t = tenant as usize;
            if self.tenant_out.len() <= t {
                self.tenant_out.resize(t + 1, 0);
            }
            self.tenant_out[t] += n;
        }
    }

    /// Counts the decode set's tokens of `steps` steps per tenant.
    fn tenant_decode_steps(&mut self, steps: u64) {
        if self.track_tenants {
            if self.tenant_out.len() < self.tenant_dec.len() {
                self.tenant_out.resize(self.tenant_dec.len(), 0);
            }
            for (o, d) in self.tenant_out.iter_mut().zip(&self.tenant_dec) {
                *o += d * steps;
            }
        }
    }

    /// Moves `slot`'s tenant count into (`+1`) or out of (`-1`) the decode set.
    fn tenant_decoding(&mut self, slot: u32, delta: i64) {
        if self.track_tenants {
            let t = self.seqs[slot as usize].req.tenant as usize;
            if self.tenant_dec.len() <= t {
                self.tenant_dec.resize(t + 1, 0);
            }
            self.tenant_dec[t] = (self.tenant_dec[t] as i64 + delta) as u64;
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

    /// Bytes a request that has never been admitted takes while it waits in an
    /// instance's long queue: its compact record (the request and when it arrived
    /// here; its sequence slot is built when it is admitted) plus its entry in the
    /// waiting queue. Vector growth slack is not counted (`infersim bench` reports
    /// the peak-RSS figure beside it). A preempted request, and a new one that finds
    /// fewer than 32 waiting, wait in their sequence slots instead.
    pub fn bytes_per_waiting_request() -> usize {
        std::mem::size_of::<Waiter>() + std::mem::size_of::<u32>()
    }

    /// Calls `f` with every request the instance holds that has not finished
    /// (waiting, prefilling or decoding), and when its first token came if it did:
    /// what a timed run's end leaves in flight.
    pub fn for_each_unfinished(&self, mut f: impl FnMut(&Request, Option<SimTime>)) {
        for s in &self.seqs {
            if matches!(
                s.state,
                State::Waiting | State::Prefilling | State::Decoding
            ) {
                f(&s.req, s.first_token);
            }
        }
        // Requests never admitted wait as records, not in sequence slots.
        for &e in self.waiting.iter().filter(|&&e| e & REC != 0) {
            let (req, _) = self.recs[(e & !REC) as usize].unpack();
            f(&req, None);
        }
    }

    /// Requests waiting to be admitted.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// Sequences in the running set.
    pub fn running_len(&self) -> u32 {
        self.running_count
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
        let rank = match self.free_ranks.pop() {
            Some(r) => r,
            None => {
                self.recs.push(Waiter::default());
                (self.recs.len() - 1) as u32
            }
        };
        assert!(rank < REC, "more than 2^31 requests held by one instance");
        let packed = if self.waiting.len() < self.short_queue {
            None
        } else {
            Waiter::pack(&req, now)
        };
        let entry = match packed {
            Some(w) => {
                self.recs[rank as usize] = w;
                REC | rank
            }
            None => self.alloc_seq(Seq::new(req, now, rank)),
        };
        self.waiting.push_back(entry);
        self.stats.max_queue = self.stats.max_queue.max(self.waiting.len() as u64);
    }

    /// Puts `seq` in a free sequence slot; returns the slot.
    fn alloc_seq(&mut self, seq: Seq) -> u32 {
        match self.free_slots.pop() {
            Some(s) => {
                self.seqs[s as usize] = seq;
                s
            }
            None => {
                self.seqs.push(seq);
                let slot = (self.seqs.len() - 1) as u32;
                assert!(slot < REC, "more than 2^31 sequences in one instance");
                slot
            }
        }
    }

    /// Frees sequence slot `slot` and its request's rank.
    fn free_seq(&mut self, slot: u32) {
        let s = &mut self.seqs[slot as usize];
        s.state = State::Free;
        s.cached_own = None;
        self.free_ranks.push(s.rank);
        self.free_slots.push(slot);
    }

    /// The number a queue entry or handle is named by in messages: its rank (the
    /// slot number of earlier versions).
    fn rank_of(&self, entry: u32) -> u32 {
        if entry & REC != 0 {
            entry & !REC
        } else {
            self.seqs.get(entry as usize).map_or(entry, |s| s.rank)
        }
    }

    /// Output tokens of the request at queue entry `entry`.
    fn entry_output_tokens(&self, entry: u32) -> u32 {
        if entry & REC != 0 {
            self.recs[(entry & !REC) as usize].output_tokens()
        } else {
            self.seqs[entry as usize].req.output_tokens
        }
    }

    /// When the request at queue entry `entry` reached the instance.
    fn entry_enqueued(&self, entry: u32) -> SimTime {
        if entry & REC != 0 {
            self.recs[(entry & !REC) as usize].enqueued()
        } else {
            self.seqs[entry as usize].enqueued
        }
    }

    /// Declares whether requests with the same prompt produce the same tokens
    /// (greedy sampling): a resumed request then finds its generated tokens in a
    /// sibling's blocks. Only with the prefix cache modelled; set before any request.
    pub fn set_identical_outputs(&mut self, on: bool) {
        self.identical_outputs = on && self.pc;
    }

    /// Tokens whose KV `s` holds: derived from the counter in the decode set, kept in
    /// `computed` outside it.
    fn context(&self, s: &Seq) -> u64 {
        match s.state {
            State::Decoding | State::Padded => (s.base + self.k as i64) as u64,
            _ => s.computed,
        }
    }
}
