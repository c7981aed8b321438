//! The client and the API front end in the event loop: sending requests through the
//! `max_concurrency` semaphore and the rate limiter, the front end's ingress queue,
//! client timeouts (abandon, and abort on the server if configured), and what the
//! client sees of each completion (the front end's streaming delay). The models
//! themselves are in [`crate::frontend`].
//!
//! None of this runs unless the scenario asks for it ([`ClientState::on`]): then
//! every request goes straight to the router, as before.
//!
//! Latency is measured from when a request is *sent* (after any wait for the
//! semaphore), as `vllm bench serve` does: `limited_request_func` enters `async with
//! semaphore` and only then calls the request function, which starts its timer
//! (`st = time.perf_counter()`) and times the first token, the gaps between chunks
//! and the last token as they arrive (vllm-project/vllm benchmarks/benchmark_serving.py
//! `benchmark`, benchmarks/backend_request_func.py
//! `async_request_openai_completions`). Its `benchmark_duration` ends when every
//! request, failed ones included, has ended: so does a finite run's duration here.

use super::{Engine, Ev, Phase};
use crate::frontend::{ClientSetup, FrontEnd, FrontEndSetup, OnTimeout, OverLimit, RateLimiter};
use crate::instance::Finished;
use crate::metrics::{ClientClock, ClientSummary, FrontEndSummary, Summary};
use crate::time::{Dur, SimTime};
use crate::workload::Request;
use std::collections::{HashMap, VecDeque};

/// A request the client has sent and not yet seen end.
#[derive(Debug, Clone, Copy)]
struct Flight {
    req: Request,
    /// When the client gives up on it.
    deadline: SimTime,
    /// Its API server (queue mode).
    server: u16,
    /// The instance it was routed to, once routed.
    instance: Option<usize>,
    /// The client gave up on it (timed out); the server may still hold it.
    abandoned: bool,
    /// The engine finished it, but too late for the client (its deadline comes
    /// before the client would see the last token).
    engine_done: bool,
}

/// The client's and the front end's state in one run.
#[derive(Debug)]
pub(super) struct ClientState {
    /// Whether any of it is modelled.
    pub(super) on: bool,
    setup: ClientSetup,
    fe: Option<FrontEnd>,
    limiter: Option<RateLimiter>,
    flights: HashMap<u64, Flight>,
    /// Arrivals waiting for the semaphore.
    waiting: VecDeque<Request>,
    in_flight: u32,
    /// Requests in the front end's ingress queue (indexed by `Ev::FrontIn`).
    ingress: Vec<Option<Request>>,
    ingress_free: Vec<u32>,
    /// Per instance: timed-out requests to abort at its next step boundary.
    aborts: Vec<Vec<u64>>,
    sent: u64,
    timed_out: u64,
    rejected: u64,
    wasted: u64,
    /// Tokens emitted before the step being finished (queue mode: the step's chunks).
    pub(super) tokens_before: u64,
    /// When the client saw its last failure (a finite run lasts until then at least,
    /// as `benchmark_serving`'s duration waits for every request).
    pub(super) last_failure: SimTime,
}

impl ClientState {
    pub(super) fn new(fe: &FrontEndSetup, client: &ClientSetup, instances: usize) -> Self {
        ClientState {
            on: fe.is_queue() || fe.rate_limit.is_some() || client.is_active(),
            setup: *client,
            fe: fe.is_queue().then(|| FrontEnd::new(fe)),
            limiter: fe.rate_limit.map(RateLimiter::new),
            flights: HashMap::new(),
            waiting: VecDeque::new(),
            in_flight: 0,
            ingress: Vec::new(),
            ingress_free: Vec::new(),
            aborts: vec![Vec::new(); instances],
            sent: 0,
            timed_out: 0,
            rejected: 0,
            wasted: 0,
            tokens_before: 0,
            last_failure: SimTime::ZERO,
        }
    }

    /// Whether the client has given up on request `id` (timed out).
    pub(super) fn abandoned(&self, id: u64) -> bool {
        self.flights.get(&id).is_some_and(|f| f.abandoned)
    }

    /// Calls `f` with every request in the front end's ingress queue (sent, not yet
    /// at an instance) that the client still waits for.
    pub(super) fn for_each_in_ingress(&self, mut f: impl FnMut(&Request)) {
        for r in self.ingress.iter().flatten() {
            if !self.abandoned(r.id) {
                f(r);
            }
        }
    }

    /// Whether the front end is a queue (steps then run one by one: each step's
    /// chunks enter it at the step's end).
    pub(super) fn is_queue(&self) -> bool {
        self.fe.is_some()
    }

    /// Whether instance `i` has timed-out requests still to drop.
    pub(super) fn aborts_pending(&self, i: usize) -> bool {
        self.aborts.get(i).is_some_and(|a| !a.is_empty())
    }

    /// Whether the recorder must hold completed requests until the client's view of
    /// them is known.
    pub(super) fn defers_requests(&self) -> bool {
        self.on
    }

    /// When the client of a request on `server` sees a token `instance` emitted at
    /// `t`.
    fn seen(&self, server: u16, instance: usize, t: SimTime) -> SimTime {
        self.fe
            .as_ref()
            .map_or(t, |fe| fe.delivered(server, instance, t))
    }

    /// The summary keys of what was modelled.
    pub(super) fn summarize(&self, s: &mut Summary, elapsed: Dur) {
        if !self.setup.is_active() && self.limiter.is_none() && self.fe.is_none() {
            return;
        }
        if self.setup.is_active() || self.limiter.is_some() {
            let failed = self.timed_out + self.rejected;
            s.client = Some(ClientSummary {
                sent: self.sent,
                failed,
                timed_out: self.timed_out,
                rejected: self.rejected,
                success_rate: if self.sent > 0 {
                    s.completed as f64 / self.sent as f64
                } else {
                    0.0
                },
                wasted_output_tokens: self.wasted,
            });
        }
        if let Some(fe) = &self.fe {
            s.front_end = Some(FrontEndSummary {
                api_server_count: fe.len() as u64,
                api_server_busy_fraction: fe.busy_fractions(elapsed),
                mean_api_queue_wait_ms: fe.mean_ingress_wait_ms(),
            });
        }
    }
}

impl ClientClock for ClientState {
    fn request_times(
        &self,
        req: &Request,
        instance: usize,
        first: SimTime,
        finish: SimTime,
    ) -> Option<(SimTime, SimTime)> {
        let f = self.flights.get(&req.id)?;
        let first = self.seen(f.server, instance, first);
        let finish = self.seen(f.server, instance, finish);
        (!f.abandoned && finish <= f.deadline).then_some((first, finish))
    }

    fn itl(
        &self,
        instance: usize,
        now: SimTime,
        gap: Dur,
        weight: u64,
        out: &mut dyn FnMut(SimTime, Dur, u64),
    ) {
        let Some(fe) = &self.fe else {
            out(now, gap, weight);
            return;
        };
        // Round-robin spreads the streams evenly over the servers.
        let k = fe.len() as u64;
        let prev = SimTime(now.0 - gap.0);
        for s in 0..k {
            let w = weight / k + u64::from(s < weight % k);
            if w > 0 {
                let t = fe.delivered(s as u16, instance, now);
                out(t, t - fe.delivered(s as u16, instance, prev), w);
            }
        }
    }
}

impl Engine<'_> {
    /// A request arrives from the workload at `now` (open or closed loop): it goes to
    /// the router, through the client and the front end when they are modelled.
    pub(super) fn send(&mut self, now: SimTime, r: Request) {
        if !self.client.on {
            self.route(now, r);
            return;
        }
        self.client.waiting.push_back(r);
        self.pump(now);
    }

    /// Sends waiting arrivals while the semaphore has room.
    fn pump(&mut self, now: SimTime) {
        let cap = self.client.setup.max_concurrency.unwrap_or(u32::MAX);
        while self.client.in_flight < cap {
            let Some(r) = self.client.waiting.pop_front() else {
                break;
            };
            self.dispatch(now, r);
        }
    }

    /// Sends `r` at `now`: its latency counts from here.
    fn dispatch(&mut self, now: SimTime, mut r: Request) {
        r.arrival = now;
        let c = &mut self.client;
        c.sent += 1;
        let over = c
            .limiter
            .as_mut()
            .and_then(|l| (!l.admit(now)).then(|| l.over()));
        if over == Some(OverLimit::Reject) {
            // HTTP 429: the client sees the failure at once.
            c.rejected += 1;
            self.gave_up(now, r, false);
            return;
        }
        c.in_flight += 1;
        let deadline = match c.setup.timeout {
            Some(t) => {
                self.q.push(now + t, Phase::Timer, Ev::Timeout(r.id));
                now + t
            }
            None => SimTime::MAX,
        };
        let mut flight = Flight {
            req: r,
            deadline,
            server: 0,
            instance: None,
            abandoned: false,
            engine_done: false,
        };
        if over == Some(OverLimit::Drop) {
            // Never answered: its timer (the config requires one) ends it.
            c.flights.insert(r.id, flight);
            return;
        }
        if let Some(fe) = &mut c.fe {
            let (server, done) = fe.ingress(now, r.input_tokens);
            flight.server = server;
            let idx = match c.ingress_free.pop() {
                Some(i) => {
                    c.ingress[i as usize] = Some(r);
                    i
                }
                None => {
                    c.ingress.push(Some(r));
                    (c.ingress.len() - 1) as u32
                }
            };
            c.flights.insert(r.id, flight);
            self.q.push(done, Phase::Arrive, Ev::FrontIn(idx));
            return;
        }
        c.flights.insert(r.id, flight);
        self.route(now, r);
    }

    /// The front end has parsed and tokenised request `idx` at `now`.
    pub(super) fn front_in(&mut self, now: SimTime, idx: u32) {
        let c = &mut self.client;
        let r = c.ingress[idx as usize]
            .take()
            .expect("a request in ingress");
        c.ingress_free.push(idx);
        let abort = c.setup.on_timeout == OnTimeout::Abort;
        if abort && c.flights.get(&r.id).is_some_and(|f| f.abandoned) {
            // Its client is gone: the server drops it before the engine sees it.
            c.flights.remove(&r.id);
            return;
        }
        self.route(now, r);
    }

    /// The router sent request `id` to instance `i`.
    pub(super) fn routed(&mut self, id: u64, i: usize) {
        if let Some(f) = self.client.flights.get_mut(&id) {
            f.instance = Some(i);
        }
    }

    /// The client's timer for request `id` fires at `now`.
    pub(super) fn timeout(&mut self, now: SimTime, id: u64) {
        let c = &mut self.client;
        let Some(f) = c.flights.get_mut(&id) else {
            return; // completed in time
        };
        if f.abandoned {
            return;
        }
        f.abandoned = true;
        c.timed_out += 1;
        let (req, instance, engine_done) = (f.req, f.instance, f.engine_done);
        if engine_done {
            c.flights.remove(&id);
        } else if c.setup.on_timeout == OnTimeout::Abort {
            if let Some(i) = instance {
                c.aborts[i].push(id);
                if !self.inst[i].busy() {
                    self.apply_aborts(now, i);
                }
            }
        }
        self.gave_up(now, req, true);
    }

    /// Instance `i` is between steps at `now`: drops the requests whose clients
    /// timed out and that it holds.
    pub(super) fn apply_aborts(&mut self, now: SimTime, i: usize) {
        if self.client.aborts[i].is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.client.aborts[i]);
        let mut freed = false;
        ids.retain(|&id| {
            let Some(a) = self.inst[i].abort(id) else {
                // Not there yet (in transit to it): keep it for later.
                return self.client.flights.contains_key(&id);
            };
            self.client.wasted += a.generated as u64;
            self.client.flights.remove(&id);
            freed = true;
            false
        });
        self.client.aborts[i] = ids;
        if freed {
            self.want_schedule(now, i);
        }
    }

    /// The client is done with `req` at `now` without a success (timed out or
    /// rejected): a closed-loop user moves on, the semaphore frees a slot.
    fn gave_up(&mut self, now: SimTime, req: Request, held_slot: bool) {
        self.client.last_failure = self.client.last_failure.max(now);
        let f = Finished { req, at: now };
        self.on_finished(now, &f);
        if held_slot {
            self.release(now);
        }
    }

    /// A slot of the semaphore frees at `now`: the next waiting arrival is sent.
    pub(super) fn release(&mut self, now: SimTime) {
        self.client.in_flight -= 1;
        self.pump(now);
    }

    /// Instance `i`'s step ended at `now` and its tokens and completions are
    /// recorded: the step's chunks enter the front end, the held records are
    /// mapped to what the client saw, and pending aborts are applied.
    pub(super) fn after_step(&mut self, now: SimTime, i: usize) {
        if !self.client.on {
            return;
        }
        if let Some(fe) = &mut self.client.fe {
            fe.egress(now, i, self.rec.tokens_emitted - self.client.tokens_before);
        }
        self.rec.flush(&self.client, i);
        self.apply_aborts(now, i);
    }

    /// Instance `i` completed `f` at `now`: when the client sees it complete, or
    /// `None` if the client had given up on it (or will have, before it sees the end).
    pub(super) fn client_finished(
        &mut self,
        now: SimTime,
        i: usize,
        f: &Finished,
    ) -> Option<SimTime> {
        if !self.client.on {
            return Some(now);
        }
        let c = &mut self.client;
        let fl = *c
            .flights
            .get(&f.req.id)
            .expect("a completed request in flight");
        let seen = c.seen(fl.server, i, now);
        if fl.abandoned {
            c.wasted += f.req.output_tokens as u64;
            c.flights.remove(&f.req.id);
            return None;
        }
        if seen > fl.deadline {
            // Its timer, still to fire, counts the failure.
            c.wasted += f.req.output_tokens as u64;
            if let Some(x) = c.flights.get_mut(&f.req.id) {
                x.engine_done = true;
            }
            return None;
        }
        c.flights.remove(&f.req.id);
        if seen == now {
            self.release(now);
        } else {
            self.q.push(seen, Phase::Arrive, Ev::Release);
        }
        Some(seen)
    }
}
