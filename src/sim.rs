//! The discrete-event loop: workload → router → instances → GPUs → metrics.
//!
//! Events are ordered by [`EventKey`] `(time, phase, seq)`, the whole ordering key in
//! one type: at equal times, GPU progress and step completions come first, then
//! timers, then arrivals, then scheduling decisions, then the end of a timed run;
//! within a phase, events pop in the order they were pushed. Scheduling after
//! arrivals means a step formed at time t sees every request that arrived at t.
//!
//! GPUs are reached only through [`crate::gpu::SharedGpu`], routers only through
//! [`crate::router::Router`]; the queue and its ordering live in `sim/queue.rs`.
//! Over 600 lines because the engine is one state machine over one struct (arrivals,
//! routing, steps, the fast-forward, completions) plus the run's summary.

mod client;
mod queue;
mod sessions;

pub use queue::{EventKey, EventQueue, Phase};

use crate::cost::StepTimes;
use crate::error::SimError;
use crate::frontend::{ClientSetup, FrontEndSetup};
use crate::gpu::{self, GpuWork, Job, SharedGpu, Sharing, Wake};
use crate::instance::{Finished, Instance, InstanceStats};
use crate::metrics::{GpuRow, InstanceRow, Recorder, RequestRecord, Summary};
use crate::router::{InstanceLoad, Router, RouterKind};
use crate::time::{Dur, SimTime};
use crate::workload::{
    self, streams, Arrival, ClassMix, LengthSampler, OpenLoop, Request, Stop, Workload,
};
use crate::{
    cost::CostModel,
    kv::KvGeometry,
    policy::{Policy, SchedulerChoice},
};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    OpenArrival,
    UserSend(u32),
    SessionTurn(u32),
    OfflineGroup,
    Deliver(u32),
    CpuDone(u32),
    StepDone(u32),
    GpuCheck(u32, u64),
    Timer(u32),
    Schedule(u32),
    /// The front end has tokenised a request (index into the client's ingress).
    FrontIn(u32),
    /// A client's timeout for a request (its id).
    Timeout(u64),
    /// The client saw a request complete: a slot of its semaphore frees.
    Release,
    End,
}

/// One instance of a deployment, ready to simulate.
#[derive(Debug, Clone)]
pub struct InstanceSetup {
    /// Index of the GPU it runs on.
    pub gpu: usize,
    /// Batching policy.
    pub policy: Policy,
    /// Cost model of its model on its GPU.
    pub cost: CostModel,
    /// KV block geometry.
    pub geo: KvGeometry,
    /// KV pool in blocks.
    pub kv_blocks: u64,
    /// MPS active-thread fraction (1 when unset).
    pub active_thread_fraction: f64,
    /// Time from a request's arrival to the engine seeing it (API front end).
    pub api_latency: Dur,
    /// Step scheduler (FCFS by default).
    pub scheduler: SchedulerChoice,
    /// The stack's scheduler semantics (multi-step, CUDA-graph padding, async
    /// scheduling); the plain stack's by default.
    pub stack: crate::stacks::StackSemantics,
}

/// A scenario: everything one simulation needs except the seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Arrivals and lengths.
    pub workload: Workload,
    /// Sharing mode of each GPU.
    pub gpus: Vec<Sharing>,
    /// Instances.
    pub instances: Vec<InstanceSetup>,
    /// Router.
    pub router: RouterKind,
    /// The API front end (default: a fixed delay, as fitted).
    pub front_end: FrontEndSetup,
    /// The benchmark client's behaviour (default: sends every request on arrival).
    pub client: ClientSetup,
}

/// Options of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Keep per-request records.
    pub keep_records: bool,
    /// Check instance invariants after every step (slow; tests).
    pub check_invariants: bool,
    /// Route every step through the event queue (the reference path) instead of
    /// fast-forwarding stretches in which nothing else can happen.
    pub step_by_step: bool,
}

/// Runs one simulation, streaming every counted request to `csv` as it completes
/// (memory stays independent of the number of requests).
pub fn run_with_csv(
    sc: &Scenario,
    seed: u64,
    opts: RunOptions,
    csv: Box<dyn std::io::Write + Send>,
) -> Result<RunResult, SimError> {
    run_inner(sc, seed, opts, Some(csv))
}

/// What one run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// `benchmark_serving`'s metrics plus ours (serialised in a stable order).
    pub summary: Summary,
    /// Per-request records, if asked for.
    pub records: Option<Vec<RequestRecord>>,
    /// Per-instance counters.
    pub instances: Vec<InstanceStats>,
    /// Events processed (steps fast-forwarded in place count as one event each).
    pub events: u64,
    /// Steps run by the decode-stretch fast-forward ([`Instance::fast_forward`]),
    /// without planning; 0 step by step.
    pub fast_forwarded_steps: u64,
    /// Simulated time at the end.
    pub end: SimTime,
    /// Tokens emitted in all.
    pub tokens_emitted: u64,
    /// Requests issued by the workload.
    pub issued: u64,
    /// KV layer-blocks still in use per instance when the run ended.
    pub kv_in_use_at_end: Vec<u64>,
}

/// The step in flight on an instance whose GPU is shared (not closed-form).
#[derive(Debug, Clone, Default)]
struct StepState {
    /// The step's CPU floor: it cannot end before this.
    floor: SimTime,
    /// Its GPU work, submitted when the serial CPU part is done.
    work: GpuWork,
    gpu_done: bool,
}

/// A GPU: its sharing model, and its busy time once the run is over.
#[derive(Debug)]
struct GpuState {
    model: Box<dyn SharedGpu>,
    /// Copied from the model when the run ends ([`Engine::settle_gpus`]).
    busy: Dur,
}

struct Engine<'a> {
    sc: &'a Scenario,
    q: EventQueue<Ev>,
    inst: Vec<Instance>,
    steps: Vec<StepState>,
    sched_pending: Vec<bool>,
    in_transit: Vec<VecDeque<Request>>,
    gpus: Vec<GpuState>,
    /// Scratch: instances whose GPU work a wake finished.
    finished_gpu: Vec<usize>,
    router: Box<dyn Router>,
    /// Scratch: the instances' loads the router sees.
    loads: Vec<InstanceLoad>,
    rec: Recorder,
    lengths: LengthSampler,
    open: Option<OpenLoop>,
    /// Arrivals of a workload made of classes.
    mix: Option<ClassMix>,
    /// The live sessions of a multi-turn workload.
    sessions: Option<workload::SessionBook>,
    think_rng: ChaCha8Rng,
    next_id: u64,
    issued: u64,
    limit: Option<u64>,
    end: SimTime,
    offline_left: u64,
    offline_started: SimTime,
    done: Vec<Finished>,
    check: bool,
    fast: bool,
    /// Open-loop arrivals and their deliveries may be handled in place during a
    /// fast-forwarded step ([`Engine::step_done`]): one instance, no client, a plain
    /// open-loop workload.
    inline_arrivals: bool,
    inline_steps: u64,
    /// Events handled in place (arrivals and deliveries).
    inline_events: u64,
    stretch_steps: u64,
    /// Latest time reached (fast-forwarded steps can end after the last event).
    end_time: SimTime,
    /// The client and the front end, when modelled.
    client: client::ClientState,
}

/// Runs one simulation.
pub fn run(sc: &Scenario, seed: u64, opts: RunOptions) -> Result<RunResult, SimError> {
    run_inner(sc, seed, opts, None)
}

fn run_inner(
    sc: &Scenario,
    seed: u64,
    opts: RunOptions,
    csv: Option<Box<dyn std::io::Write + Send>>,
) -> Result<RunResult, SimError> {
    let (limit, end, warmup) = match sc.workload.stop {
        Stop::Requests(n) => (Some(n), SimTime::MAX, SimTime::ZERO),
        Stop::Timed { duration, warmup } => {
            (None, SimTime::ZERO + duration, SimTime::ZERO + warmup)
        }
    };
    let inst: Vec<Instance> = sc
        .instances
        .iter()
        .enumerate()
        .map(|(i, s)| -> Result<Instance, SimError> {
            let mut inst = Instance::new(
                i,
                s.policy.clone(),
                s.cost.clone(),
                s.geo,
                s.kv_blocks,
                sc.workload.max_context,
            );
            inst.set_identical_outputs(sc.workload.identical_outputs);
            inst.set_stack_semantics(s.stack.clone());
            inst.set_scheduler(
                s.scheduler
                    .build(seed)
                    .map_err(SimError::UnknownScheduler)?,
            );
            Ok(inst)
        })
        .collect::<Result<_, SimError>>()?;
    let n = inst.len();
    let mut e = Engine {
        sc,
        q: EventQueue::default(),
        inst,
        steps: vec![StepState::default(); n],
        sched_pending: vec![false; n],
        in_transit: vec![VecDeque::new(); n],
        gpus: sc
            .gpus
            .iter()
            .map(|&s| GpuState {
                model: gpu::build(s),
                busy: Dur::ZERO,
            })
            .collect(),
        finished_gpu: Vec::new(),
        router: sc.router.build(workload::rng(seed, streams::ROUTER)),
        loads: Vec::with_capacity(n),
        rec: {
            let mut r = Recorder::new(warmup, opts.keep_records);
            if let Some(n) = limit {
                r.expect_requests(n);
            }
            r.set_classes(&sc.workload.classes);
            if let Some(slo) = &sc.client.slo {
                r.set_slo(slo);
            }
            r
        },
        lengths: LengthSampler::new(&sc.workload, seed),
        open: None,
        mix: None,
        sessions: sessions::book(&sc.workload, seed),
        think_rng: workload::rng(seed, streams::THINK),
        next_id: 0,
        issued: 0,
        limit,
        end,
        offline_left: 0,
        offline_started: SimTime::ZERO,
        done: Vec::new(),
        check: opts.check_invariants,
        // A queueing front end takes each step's chunks at the step's end.
        fast: !opts.step_by_step && !sc.front_end.is_queue(),
        inline_arrivals: false,
        inline_steps: 0,
        inline_events: 0,
        stretch_steps: 0,
        end_time: SimTime::ZERO,
        client: client::ClientState::new(&sc.front_end, &sc.client, n),
    };
    let (defer_requests, queue) = (e.client.defers_requests(), e.client.is_queue());
    e.rec.defer(defer_requests, queue);
    if let Some(w) = csv {
        e.rec
            .stream_csv(w)
            .map_err(|err| SimError::RequestsCsv(err.to_string()))?;
    }
    e.start(seed);
    e.inline_arrivals = e.fast
        && e.inst.len() == 1
        && !e.client.on
        && e.open.is_some()
        && e.mix.is_none()
        && e.sessions.is_none();
    let mut now = SimTime::ZERO;
    let mut events = 0u64;
    while let Some((key, ev)) = e.q.pop() {
        if key.time < now {
            return Err(SimError::TimeWentBack {
                from: now,
                to: key.time,
            });
        }
        now = key.time;
        events += 1;
        if ev == Ev::End {
            e.finalize(now);
            break;
        }
        // The event handlers fail only on a broken instance invariant.
        e.handle(now, ev).map_err(SimError::Invariant)?;
    }
    let now = now.max(e.end_time);
    e.settle_gpus();
    e.rec.finish_csv()?;
    for i in &e.inst {
        if let Some(err) = i.policy_error() {
            return Err(SimError::InvalidPlan {
                instance: i.id,
                scheduler: i.scheduler_name().to_string(),
                what: err.to_string(),
            });
        }
    }
    if limit.is_some() {
        for i in &e.inst {
            if !i.is_empty() {
                return Err(SimError::Unfinished {
                    instance: i.id,
                    requests: i.outstanding,
                });
            }
        }
    }
    let duration_s = match sc.workload.stop {
        // A client that saw failures finished when it saw the last one, if later.
        Stop::Requests(_) => e.rec.last_finish.max(e.client.last_failure).as_secs_f64(),
        Stop::Timed { duration, warmup } => duration.as_secs_f64() - warmup.as_secs_f64(),
    };
    let elapsed = now.as_secs_f64();
    let mut summary = e.rec.take_summary(duration_s);
    // The drain after the last admission (an offline batch drains by design).
    if matches!(sc.workload.stop, Stop::Requests(_))
        && !matches!(sc.workload.arrival, Arrival::Offline { .. })
    {
        summary.drain_s = Some((duration_s - e.rec.last_scheduled.as_secs_f64()).max(0.0));
    }
    let busy: f64 = e.gpus.iter().map(|g| g.busy.as_secs_f64()).sum();
    let frac = |x: f64| if elapsed > 0.0 { x / elapsed } else { 0.0 };
    let kv_frac = |i: &Instance| i.kv.peak as f64 / i.kv.capacity.max(1) as f64;
    summary.gpu_busy_fraction = frac(busy / e.gpus.len().max(1) as f64);
    summary.kv_cache_peak_fraction = e.inst.iter().map(kv_frac).fold(0.0, f64::max);
    summary.preemptions = e.inst.iter().map(|i| i.stats.preemptions).sum();
    summary.max_queue_len = e.inst.iter().map(|i| i.stats.max_queue).max().unwrap_or(0);
    let steps: u64 = e.inst.iter().map(|i| i.stats.steps).sum();
    let dec: u64 = e.inst.iter().map(|i| i.stats.decode_seqs).sum();
    summary.steps = steps;
    summary.mean_decode_batch = if steps > 0 {
        dec as f64 / steps as f64
    } else {
        0.0
    };
    summary.prefill_tokens_computed = e.inst.iter().map(|i| i.stats.prefill_tokens).sum();
    summary.prefix_cache_hit_tokens = e.inst.iter().map(|i| i.stats.prefix_hit_tokens).sum();
    summary.prefix_cache_hit_rate = sessions::hit_rate(&sc.workload, &summary);
    e.client.summarize(&mut summary, now - SimTime::ZERO);
    if e.inst.len() > 1 || e.gpus.len() > 1 {
        summary.per_instance = e
            .inst
            .iter()
            .map(|i| InstanceRow {
                instance: i.id as u64,
                gpu: sc.instances[i.id].gpu as u64,
                model: sc.instances[i.id].cost.model_name().to_string(),
                policy: sc.instances[i.id].policy.name().to_string(),
                requests_served: i.stats.served,
                busy_fraction: frac(i.stats.busy_s),
                kv_cache_peak_fraction: kv_frac(i),
                preemptions: i.stats.preemptions,
            })
            .collect();
        summary.per_gpu = e
            .gpus
            .iter()
            .enumerate()
            .map(|(g, st)| {
                let on: Vec<&Instance> = e
                    .inst
                    .iter()
                    .filter(|i| sc.instances[i.id].gpu == g)
                    .collect();
                GpuRow {
                    gpu: g as u64,
                    instances: on.len() as u64,
                    requests_served: on.iter().map(|i| i.stats.served).sum(),
                    busy_fraction: frac(st.busy.as_secs_f64()),
                    kv_cache_peak_fraction: on.iter().map(|i| kv_frac(i)).fold(0.0, f64::max),
                }
            })
            .collect();
    }
    Ok(RunResult {
        summary,
        records: e.rec.records.take(),
        instances: e.inst.iter().map(|i| i.stats.clone()).collect(),
        events: events + e.inline_steps + e.inline_events,
        fast_forwarded_steps: e.stretch_steps,
        end: now,
        tokens_emitted: e.rec.tokens_emitted,
        issued: e.issued,
        kv_in_use_at_end: e.inst.iter().map(|i| i.kv.used).collect(),
    })
}

impl Engine<'_> {
    /// Counts GPU busy time of work still in flight when the run ends at `now`, and
    /// the requests still in flight against the SLO bounds they have already missed
    /// ([`Recorder::unfinished`]): those at the instances, in transit to them, and in
    /// the front end's ingress queue (not those the client has given up on, already
    /// counted as failed, nor those it has not sent).
    fn finalize(&mut self, now: SimTime) {
        for g in &mut self.gpus {
            g.model.close(now);
        }
        let (rec, client) = (&mut self.rec, &self.client);
        for i in &self.inst {
            i.for_each_unfinished(|r, first| {
                if !client.abandoned(r.id) {
                    rec.unfinished(r, first, now);
                }
            });
        }
        for r in self.in_transit.iter().flatten() {
            if !client.abandoned(r.id) {
                rec.unfinished(r, None, now);
            }
        }
        client.for_each_in_ingress(|r| rec.unfinished(r, None, now));
    }

    /// Copies every GPU's busy time out of its model, for the summary.
    fn settle_gpus(&mut self) {
        for g in &mut self.gpus {
            g.busy = g.model.busy();
        }
    }

    fn may_issue(&self) -> bool {
        self.limit.is_none_or(|l| self.issued < l)
    }

    fn start(&mut self, seed: u64) {
        if self.end != SimTime::MAX {
            self.q.push(self.end, Phase::End, Ev::End);
        }
        match &self.sc.workload.arrival {
            Arrival::ClosedLoop {
                users, spawn_rate, ..
            } => {
                for u in 0..*users {
                    let t = SimTime::from_secs_f64(u as f64 / spawn_rate);
                    self.q.push(t, Phase::Arrive, Ev::UserSend(u));
                }
            }
            Arrival::Offline { .. } => self.q.push(SimTime::ZERO, Phase::Arrive, Ev::OfflineGroup),
            _ if !self.sc.workload.classes.is_empty() => {
                let m = ClassMix::new(&self.sc.workload, seed);
                if let Some(t) = m.peek_time() {
                    self.q.push_arrival(t, Ev::OpenArrival);
                }
                self.mix = Some(m);
            }
            _ => {
                let g = OpenLoop::new(&self.sc.workload, seed);
                if let Some(t) = g.peek_time() {
                    self.q.push_arrival(t, Ev::OpenArrival);
                }
                self.open = Some(g);
            }
        }
    }

    fn new_request(
        &mut self,
        now: SimTime,
        user: Option<u32>,
        group: Option<u32>,
        lengths: Option<(u32, u32)>,
    ) -> Request {
        let (i, o, prefix) = match lengths {
            Some((i, o)) => {
                let (i, o) = self.lengths.clamp(i as u64, o as u64);
                (i, o, None)
            }
            None => self.lengths.draw(),
        };
        let r = Request {
            user,
            group,
            prefix,
            session: user,
            prefix_tokens: prefix.and(self.lengths.prefix_tokens()),
            ..Request::new(self.next_id, now, i, o)
        };
        self.next_id += 1;
        self.issued += 1;
        r
    }

    fn route(&mut self, now: SimTime, r: Request) {
        // With one instance there is nothing to choose: no router is asked (so none
        // draws a random number).
        let i = if self.inst.len() == 1 {
            0
        } else {
            self.loads.clear();
            let prefix = r.prefix;
            self.loads
                .extend(self.inst.iter().map(|x| InstanceLoad::of(x, prefix)));
            self.router.pick(&r, &self.loads)
        };
        self.inst[i].note_routed(&r);
        if self.client.on {
            self.routed(r.id, i);
        }
        let lat = self.sc.instances[i].api_latency;
        if lat.0 == 0 {
            self.deliver(now, i, r);
        } else {
            // Requests reach the engine in the order they were sent.
            self.in_transit[i].push_back(r);
            self.q.push(now + lat, Phase::Arrive, Ev::Deliver(i as u32));
        }
    }

    fn deliver(&mut self, now: SimTime, i: usize, r: Request) {
        self.inst[i].enqueue(r, now);
        if self.client.on && !self.inst[i].busy() {
            self.apply_aborts(now, i);
        }
        self.want_schedule(now, i);
    }

    fn want_schedule(&mut self, now: SimTime, i: usize) {
        if !self.sched_pending[i] && !self.inst[i].busy() {
            self.sched_pending[i] = true;
            self.q.push(now, Phase::Schedule, Ev::Schedule(i as u32));
        }
    }

    fn handle(&mut self, now: SimTime, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::OpenArrival if self.mix.is_some() => {
                let m = self.mix.as_mut().expect("class mix");
                if let Some((_, c, lengths)) = m.next_arrival() {
                    let class = &self.sc.workload.classes[c];
                    let (priority, tenant) = (class.priority, class.tenant);
                    let mut r = self.new_request(now, None, None, Some(lengths));
                    r.class = c as u16;
                    r.priority = priority;
                    r.tenant = tenant;
                    self.send(now, r);
                }
                if let Some(t) = self.mix.as_ref().and_then(|m| m.peek_time()) {
                    self.q.push_arrival(t, Ev::OpenArrival);
                }
            }
            Ev::OpenArrival if self.sessions.is_some() => self.session_arrival(now),
            Ev::OpenArrival => {
                let g = self.open.as_mut().expect("open-loop generator");
                if let Some((_, row, lengths)) = g.next_arrival() {
                    let mut r = self.new_request(now, None, None, lengths);
                    self.trace_prefix(&mut r, row);
                    self.send(now, r);
                }
                let g = self.open.as_ref().expect("open-loop generator");
                if let Some(t) = g.peek_time() {
                    self.q.push_arrival(t, Ev::OpenArrival);
                }
            }
            Ev::UserSend(u) if self.sessions.is_some() => self.user_turn(now, u),
            Ev::SessionTurn(s) => self.session_turn(now, s),
            Ev::UserSend(u) => {
                if self.may_issue() && now < self.end {
                    let r = self.new_request(now, Some(u), None, None);
                    self.send(now, r);
                }
            }
            Ev::OfflineGroup => {
                let Arrival::Offline { batch_size } = self.sc.workload.arrival else {
                    unreachable!()
                };
                self.offline_started = now;
                self.offline_left = 0;
                let group = (self.issued / batch_size.max(1) as u64) as u32;
                for _ in 0..batch_size {
                    if !self.may_issue() {
                        break;
                    }
                    let r = self.new_request(now, None, Some(group), None);
                    self.offline_left += 1;
                    self.route(now, r);
                }
            }
            Ev::Schedule(i) | Ev::Timer(i) => {
                let i = i as usize;
                if matches!(ev, Ev::Schedule(_)) {
                    self.sched_pending[i] = false;
                }
                if self.inst[i].busy() {
                    return Ok(());
                }
                let mut wake = None;
                match self.inst[i].plan_step(now, &mut wake) {
                    Some(cost) => self.start_step(now, i, &cost),
                    None => {
                        if let Some(t) = wake {
                            self.q.push(t, Phase::Timer, Ev::Timer(i as u32));
                        }
                    }
                }
            }
            Ev::Deliver(i) => {
                let r = self.in_transit[i as usize]
                    .pop_front()
                    .expect("a request in transit");
                self.deliver(now, i as usize, r);
            }
            Ev::FrontIn(idx) => self.front_in(now, idx),
            Ev::Timeout(id) => self.timeout(now, id),
            Ev::Release => self.release(now),
            Ev::CpuDone(i) => self.submit_gpu(now, i as usize),
            Ev::GpuCheck(g, v) => self.gpu_check(now, g as usize, v),
            Ev::StepDone(i) => self.step_done(now, i as usize)?,
            Ev::End => {}
        }
        Ok(())
    }

    fn start_step(&mut self, now: SimTime, i: usize, cost: &StepTimes) {
        let g = self.sc.instances[i].gpu;
        if let Some(end) = self.gpus[g].model.closed_form_step(now, i, cost) {
            self.steps[i].gpu_done = true;
            self.q.push(end, Phase::Complete, Ev::StepDone(i as u32));
            return;
        }
        let serial = Dur::from_secs_f64(cost.cpu_serial_s());
        let st = &mut self.steps[i];
        st.work = GpuWork::of(cost);
        st.gpu_done = false;
        st.floor = now + serial + Dur::from_secs_f64(cost.cpu_overlapped_s());
        if serial.0 > 0 {
            self.q
                .push(now + serial, Phase::Complete, Ev::CpuDone(i as u32));
        } else {
            self.submit_gpu(now, i);
        }
    }

    /// The step's GPU part finished at `now`.
    fn gpu_part_done(&mut self, now: SimTime, i: usize) {
        let st = &mut self.steps[i];
        st.gpu_done = true;
        let t = st.floor.max(now);
        self.q.push(t, Phase::Complete, Ev::StepDone(i as u32));
    }

    /// Schedules the check a GPU asked for.
    fn gpu_wake(&mut self, g: usize, wake: Option<Wake>) {
        if let Some(w) = wake {
            self.q
                .push(w.at, Phase::Complete, Ev::GpuCheck(g as u32, w.token));
        }
    }

    fn submit_gpu(&mut self, now: SimTime, i: usize) {
        let w = self.steps[i].work;
        if w.total() <= 0.0 {
            self.gpu_part_done(now, i);
            return;
        }
        let job = Job::new(i, &w, self.sc.instances[i].active_thread_fraction);
        let g = self.sc.instances[i].gpu;
        let wake = self.gpus[g].model.submit(now, job);
        self.gpu_wake(g, wake);
    }

    /// A GPU's check at `now`: steps whose GPU work finished end (at their CPU floor
    /// at the latest), then the GPU's next check is scheduled, in that order.
    fn gpu_check(&mut self, now: SimTime, g: usize, token: u64) {
        let mut finished = std::mem::take(&mut self.finished_gpu);
        finished.clear();
        let wake = self.gpus[g].model.wake(now, token, &mut finished);
        for &i in &finished {
            self.gpu_part_done(now, i);
        }
        self.finished_gpu = finished;
        self.gpu_wake(g, wake);
    }

    // ---- Step completion ---------------------------------------------------------------

    fn step_done(&mut self, now: SimTime, i: usize) -> Result<(), String> {
        self.finish_step(now, i)?;
        let g = self.sc.instances[i].gpu;
        if self.fast && self.gpus[g].model.closed_form() {
            // Fast-forward: while no other event can come before the next step
            // boundary, run this instance's steps in place instead of going through
            // the event queue: first the stretch of pure decode steps in which nothing
            // but tokens happens (`Instance::fast_forward`, without planning), then
            // the step that changes the batch, planned as usual. The same code prices
            // every step, and the conditions below keep the order the queue would
            // give (an event at the same instant always goes first), so the results
            // are identical to step-by-step, to the nanosecond.
            let mut now = now;
            loop {
                // Nothing below pushes an event until the step that ends the loop, so
                // the queue's next time is read once per round.
                let next = self.q.peek_time();
                if self.sched_pending[i]
                    || next.is_some_and(|t| t <= now)
                    || self.client.aborts_pending(i)
                {
                    // (An abort the instance could not apply yet, inside a multi-step
                    // block, is retried at each step's end.)
                    break;
                }
                let limit = next.unwrap_or(SimTime::MAX);
                let run = self.inst[i].fast_forward(now, limit, &mut self.rec);
                if run.steps > 0 {
                    now = run.end;
                    self.inline_steps += run.steps;
                    self.stretch_steps += run.steps;
                    self.gpus[g].model.add_busy(run.gpu_busy);
                    self.end_time = self.end_time.max(now);
                    if self.check {
                        self.inst[i].check_invariants().map_err(|e| {
                            format!("after decode steps fast-forwarded to {now}: {e}")
                        })?;
                    }
                }
                let mut wake = None;
                let Some(cost) = self.inst[i].plan_step(now, &mut wake) else {
                    if let Some(t) = wake {
                        self.q.push(t, Phase::Timer, Ev::Timer(i as u32));
                    }
                    return Ok(());
                };
                let end = self.gpus[g]
                    .model
                    .closed_form_step(now, i, &cost)
                    .expect("a closed-form GPU prices the whole step");
                if self.inline_arrivals {
                    // The open-loop arrivals, and their deliveries to this instance
                    // after the API latency, that come before the step ends are
                    // handled here, in the order and at the times the queue would
                    // give them: each is the queue's next event when taken, and
                    // handling one (a request for this busy instance) pushes nothing
                    // but arrival-phase events (its delivery, the next arrival), so
                    // the step's end event, pushed after them instead of before, is
                    // still the only completion. Same events, same order; a push and
                    // a pop of the step's end are saved, and a trip through the event
                    // loop per event.
                    let inline = |e: &Ev| matches!(e, Ev::OpenArrival | Ev::Deliver(_));
                    while let Some((key, ev)) = self.q.pop_before(end, inline) {
                        self.inline_events += 1;
                        self.handle(key.time, ev)?;
                    }
                }
                if self.q.peek_time().is_some_and(|t| t <= end) {
                    self.q.push(end, Phase::Complete, Ev::StepDone(i as u32));
                    return Ok(());
                }
                now = end;
                self.inline_steps += 1;
                self.finish_step(now, i)?;
            }
            self.want_schedule(now, i);
            return Ok(());
        }
        self.want_schedule(now, i);
        Ok(())
    }

    /// Applies the end of instance `i`'s step at `now`.
    fn finish_step(&mut self, now: SimTime, i: usize) -> Result<(), String> {
        debug_assert!(self.steps[i].gpu_done);
        self.end_time = self.end_time.max(now);
        let g = self.sc.instances[i].gpu;
        self.gpus[g].model.step_ended(i);
        let mut done = std::mem::take(&mut self.done);
        done.clear();
        self.client.tokens_before = self.rec.tokens_emitted;
        self.inst[i].finish_step(now, &mut self.rec, &mut done);
        self.after_step(now, i);
        if self.check {
            self.inst[i]
                .check_invariants()
                .map_err(|e| format!("after a step ended at {now}: {e}"))?;
        }
        for f in &done {
            if let Some(seen) = self.client_finished(now, i, f) {
                self.on_finished(seen, f);
            }
        }
        self.done = done;
        Ok(())
    }

    fn on_finished(&mut self, now: SimTime, f: &Finished) {
        if self.sessions.is_some() {
            return self.session_finished(now, f);
        }
        match &self.sc.workload.arrival {
            Arrival::ClosedLoop { think, .. } => {
                if let Some(u) = f.req.user {
                    let t = now + think.sample(&mut self.think_rng);
                    if t < self.end && self.may_issue() {
                        self.q.push(t, Phase::Arrive, Ev::UserSend(u));
                    }
                }
            }
            Arrival::Offline { .. } => {
                self.offline_left -= 1;
                if self.offline_left == 0 {
                    self.rec.batch(now - self.offline_started);
                    if self.may_issue() {
                        self.q.push(now, Phase::Arrive, Ev::OfflineGroup);
                    }
                }
            }
            _ => {}
        }
    }
}
